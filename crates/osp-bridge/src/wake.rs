//! Wake-ups of the claim loop: hints from LISTEN and Realtime, and whether either source is
//! healthy, which decides how often the loop sweeps on its own. A hint is never needed for
//! correctness; it only makes the next claim come sooner.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use crate::metrics::BridgeMetrics;

/// Where a wake-up came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A `NOTIFY osp_workflow_queue` on the LISTEN connection.
    Listen,
    /// A change delivered by Supabase Realtime.
    Realtime,
}

impl Source {
    fn label(self) -> &'static str {
        match self {
            Source::Listen => "listen",
            Source::Realtime => "realtime",
        }
    }

    fn wakeup_label(self) -> &'static str {
        match self {
            Source::Listen => "notify",
            Source::Realtime => "realtime",
        }
    }
}

/// Shared by the sources and the claim loop.
#[derive(Debug)]
pub struct Wakeups {
    notify: Notify,
    listen_up: AtomicBool,
    realtime_up: AtomicBool,
    metrics: BridgeMetrics,
}

impl Wakeups {
    pub fn new(metrics: BridgeMetrics) -> Self {
        Wakeups {
            notify: Notify::new(),
            listen_up: AtomicBool::new(false),
            realtime_up: AtomicBool::new(false),
            metrics,
        }
    }

    fn flag(&self, source: Source) -> &AtomicBool {
        match source {
            Source::Listen => &self.listen_up,
            Source::Realtime => &self.realtime_up,
        }
    }

    /// Something may be waiting: claim now. Wake-ups that arrive while the loop is busy
    /// collapse into one.
    pub fn wake(&self, source: Source) {
        self.metrics
            .wakeups
            .with_label_values(&[source.wakeup_label()])
            .inc();
        self.notify.notify_one();
    }

    /// A retry this bridge scheduled falls due.
    pub fn wake_for_retry(&self) {
        self.metrics.wakeups.with_label_values(&["retry"]).inc();
        self.notify.notify_one();
    }

    /// Counts a sweep the loop made on its own (no hint came within the interval).
    pub fn count_sweep(&self) {
        self.metrics.wakeups.with_label_values(&["sweep"]).inc();
    }

    /// Records whether `source` delivers. On a change the loop sweeps at once: after a
    /// (re)connection whatever was notified meanwhile is claimed, and after a loss the loop
    /// switches to the shorter sweep interval.
    pub fn set_up(&self, source: Source, up: bool) {
        let was = self.flag(source).swap(up, Ordering::SeqCst);
        self.metrics
            .wakeup_source_up
            .with_label_values(&[source.label()])
            .set(i64::from(up));
        if was != up {
            if up {
                tracing::info!(source = source.label(), "wake-up source delivering");
            } else {
                tracing::warn!(
                    source = source.label(),
                    "wake-up source lost; sweeping more often"
                );
            }
            self.notify.notify_one();
        }
    }

    /// Whether any source is delivering.
    pub fn any_up(&self) -> bool {
        self.listen_up.load(Ordering::SeqCst) || self.realtime_up.load(Ordering::SeqCst)
    }

    /// Whether `source` is delivering.
    pub fn is_up(&self, source: Source) -> bool {
        self.flag(source).load(Ordering::SeqCst)
    }

    /// Resolves at the next wake-up (at once if one came since the last call).
    pub async fn notified(&self) {
        self.notify.notified().await;
    }
}
