//! The worker's own `osp_*` metrics, beside the SDK's `temporal_*` ones.

use prometheus::{Gauge, IntCounterVec, IntGauge, Opts, Registry};

use crate::plan::Plan;

/// Registered once at start.
#[derive(Debug, Clone)]
pub(crate) struct WorkerMetrics {
    /// 1 while this worker polls.
    pub ready: IntGauge,
    /// Seconds from process start to the first poll the server saw.
    pub startup_seconds: Gauge,
    /// Failed attempts to reach Temporal or the database.
    pub connect_failures: IntCounterVec,
}

impl WorkerMetrics {
    pub(crate) fn register(
        registry: &Registry,
        plan: &Plan,
        version: &str,
    ) -> Result<Self, prometheus::Error> {
        let info = IntGauge::with_opts(
            Opts::new("osp_worker_info", "Static facts about this worker")
                .const_label("task_queue", plan.task_queue.clone())
                .const_label("service_schema", plan.service_schema.clone())
                .const_label("version", version.to_owned()),
        )?;
        info.set(1);
        let metrics = Self {
            ready: IntGauge::new("osp_worker_ready", "1 while the worker is polling")?,
            startup_seconds: Gauge::new(
                "osp_worker_startup_seconds",
                "Seconds from process start to polling",
            )?,
            connect_failures: IntCounterVec::new(
                Opts::new(
                    "osp_worker_connect_failures_total",
                    "Failed connection attempts by target",
                ),
                &["target"],
            )?,
        };
        registry.register(Box::new(info))?;
        registry.register(Box::new(metrics.ready.clone()))?;
        registry.register(Box::new(metrics.startup_seconds.clone()))?;
        registry.register(Box::new(metrics.connect_failures.clone()))?;
        Ok(metrics)
    }
}
