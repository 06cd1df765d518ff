//! The tokio runtime a binary runs on: by default everything on the main thread, because
//! both binaries mostly wait on the network and a second runtime thread costs more CPU in
//! wake-ups and hand-offs than it saves (docs/performance.md has the figures for each).

/// Where the runtime runs tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threads {
    /// Everything on the main thread (tokio's current-thread runtime).
    Main,
    /// This many worker threads.
    Workers(usize),
}

impl Threads {
    /// The runtime for `threads` configured threads (`OSP_RUNTIME_THREADS`,
    /// `OSP_BRIDGE_RUNTIME_THREADS`). The OTLP exporter's flush at exit blocks its thread
    /// until the exporter's task answers, which then needs a thread of its own: while spans
    /// are exported, 1 means one worker thread beside the main one.
    pub fn configured(threads: usize, exports_spans: bool) -> Self {
        match (threads, exports_spans) {
            (0 | 1, false) => Threads::Main,
            (threads, _) => Threads::Workers(threads.max(1)),
        }
    }

    /// Builds the runtime, with I/O and timers enabled.
    pub fn runtime(self) -> std::io::Result<tokio::runtime::Runtime> {
        let mut builder = match self {
            Threads::Main => tokio::runtime::Builder::new_current_thread(),
            Threads::Workers(threads) => {
                let mut builder = tokio::runtime::Builder::new_multi_thread();
                builder.worker_threads(threads);
                builder
            }
        };
        builder.enable_all().build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_thread_is_the_main_one_unless_spans_are_exported() {
        assert_eq!(Threads::configured(1, false), Threads::Main);
        assert_eq!(Threads::configured(1, true), Threads::Workers(1));
        assert_eq!(Threads::configured(4, false), Threads::Workers(4));
        assert_eq!(Threads::configured(4, true), Threads::Workers(4));
    }

    #[test]
    fn both_kinds_run_a_task() {
        for threads in [Threads::Main, Threads::Workers(2)] {
            let runtime = threads.runtime().unwrap();
            let answer = runtime.block_on(async { tokio::spawn(async { 42 }).await.unwrap() });
            assert_eq!(answer, 42, "{threads:?}");
        }
    }
}
