//! The LISTEN wake-up source: one dedicated connection (`LISTEN_DATABASE_URL`, direct or
//! session mode) listening on `osp_workflow_queue`. It counts as delivering only once a
//! NOTIFY sent from another session (the query pool) has come back on it, and that proof is
//! repeated on an interval: behind a transaction-mode pooler LISTEN fails silently, and a
//! connection can die without a word. On any failure it reconnects with backoff; each
//! (re)connection is followed by a sweep, which claims whatever was notified meanwhile.

use std::sync::Arc;
use std::time::Duration;

use osp_config::DatabaseUrl;
use osp_core::events::WORKFLOW_QUEUE_CHANNEL;
use osp_runtime::backoff::Backoff;
use osp_runtime::error_chain;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;
use tokio_postgres::Notification;
use tokio_postgres::types::Type;

use crate::wake::{Source, Wakeups};

/// The private channel the delivery probes use, so that `osp_workflow_queue` only ever
/// carries job ids.
pub const PROBE_CHANNEL: &str = "osp_bridge_probe";

/// Timing of the LISTEN source.
#[derive(Debug, Clone, Copy)]
pub struct ListenTiming {
    /// Between two delivery probes.
    pub ping_interval: Duration,
    /// How long a probe's NOTIFY may take to come back.
    pub probe_timeout: Duration,
    /// Ceiling of the first reconnection delay; doubles up to `reconnect_max`, each delay drawn
    /// from the upper half of its ceiling (jitter).
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
}

impl Default for ListenTiming {
    fn default() -> Self {
        ListenTiming {
            ping_interval: Duration::from_secs(10),
            probe_timeout: Duration::from_secs(5),
            reconnect_initial: Duration::from_millis(500),
            reconnect_max: Duration::from_secs(30),
        }
    }
}

/// Runs until the task is aborted.
pub async fn run(
    url: DatabaseUrl,
    pool: deadpool_postgres::Pool,
    wakeups: Arc<Wakeups>,
    timing: ListenTiming,
) {
    let mut backoff = Backoff::new(timing.reconnect_initial, timing.reconnect_max);
    loop {
        let started = Instant::now();
        let error = session(&url, &pool, &wakeups, timing).await;
        wakeups.set_up(Source::Listen, false);
        // A session that delivered for a while earns a fresh backoff.
        if started.elapsed() > timing.reconnect_max {
            backoff.reset();
        }
        let (delay, attempt) = backoff.next_delay();
        tracing::warn!(
            error = %error_chain(&error),
            url = %url,
            retry_in_ms = delay.as_millis(),
            attempt,
            "LISTEN connection not delivering; reconnecting"
        );
        tokio::time::sleep(delay).await;
    }
}

/// Why a LISTEN session ended; the next one starts after a backoff.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    #[error("cannot connect")]
    Connect(#[source] osp_activities::db::DbError),
    #[error("LISTEN failed")]
    Listen(#[source] tokio_postgres::Error),
    #[error("connection closed")]
    Closed,
    #[error("no pooled connection to send the probe NOTIFY")]
    ProbePool(#[source] deadpool_postgres::PoolError),
    #[error("probe NOTIFY could not be sent")]
    ProbeSend(#[source] tokio_postgres::Error),
    #[error("probe NOTIFY could not be sent in time")]
    ProbeSendTimeout,
    #[error(
        "a NOTIFY from another session did not arrive within {0} ms (is LISTEN_DATABASE_URL a transaction-mode pooler?)"
    )]
    ProbeLost(u128),
}

/// One connection, from connect to failure; returns why it ended.
async fn session(
    url: &DatabaseUrl,
    pool: &deadpool_postgres::Pool,
    wakeups: &Wakeups,
    timing: ListenTiming,
) -> SessionEnd {
    let (client, mut notifications) =
        match osp_activities::db::connect_listening(url.expose()).await {
            Ok(connected) => connected,
            Err(error) => return SessionEnd::Connect(error),
        };
    if let Err(error) = client
        .batch_execute(&format!(
            "listen {WORKFLOW_QUEUE_CHANNEL}; listen {PROBE_CHANNEL}"
        ))
        .await
    {
        return SessionEnd::Listen(error);
    }
    let mut ticker = tokio::time::interval(timing.ping_interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut proven = false;
    loop {
        tokio::select! {
            notification = notifications.recv() => match notification {
                Some(notification) => {
                    handle(&notification, wakeups, None);
                }
                None => return SessionEnd::Closed,
            },
            _ = ticker.tick() => {
                if let Err(error) = probe(pool, &mut notifications, wakeups, timing.probe_timeout).await {
                    return error;
                }
                if !proven {
                    proven = true;
                    tracing::debug!("LISTEN proven by a self-notification");
                }
                wakeups.set_up(Source::Listen, true);
            }
        }
    }
}

/// Wakes the claim loop for a job notification; true when `notification` is the probe
/// with `token`.
fn handle(notification: &Notification, wakeups: &Wakeups, token: Option<&str>) -> bool {
    if notification.channel() == PROBE_CHANNEL {
        return token.is_some_and(|token| notification.payload() == token);
    }
    wakeups.wake(Source::Listen);
    false
}

/// Sends a NOTIFY from another session and waits for it here.
async fn probe(
    pool: &deadpool_postgres::Pool,
    notifications: &mut UnboundedReceiver<Notification>,
    wakeups: &Wakeups,
    timeout: Duration,
) -> Result<(), SessionEnd> {
    let token = uuid::Uuid::new_v4().to_string();
    let deadline = Instant::now() + timeout;
    let send = async {
        let client = pool.get().await.map_err(SessionEnd::ProbePool)?;
        client
            .query_typed(
                "select pg_notify($1, $2)",
                &[(&PROBE_CHANNEL, Type::TEXT), (&token, Type::TEXT)],
            )
            .await
            .map_err(SessionEnd::ProbeSend)
    };
    match tokio::time::timeout_at(deadline, send).await {
        Err(_) => return Err(SessionEnd::ProbeSendTimeout),
        Ok(Err(error)) => return Err(error),
        Ok(Ok(_)) => {}
    }
    loop {
        match tokio::time::timeout_at(deadline, notifications.recv()).await {
            Err(_) => {
                return Err(SessionEnd::ProbeLost(timeout.as_millis()));
            }
            Ok(None) => return Err(SessionEnd::Closed),
            Ok(Some(notification)) => {
                if handle(&notification, wakeups, Some(&token)) {
                    return Ok(());
                }
            }
        }
    }
}
