//! The bridge's `osp_bridge_*` series: jobs claimed, started, failed, retried and released,
//! the time from the routed event's commit to Temporal's acknowledgement of the start, the
//! time of each step on the way (claim statement, start request, settlement statement), queue
//! depth, dispatches in flight and the state of each wake-up source.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// Why registering a series failed (a name registered twice).
#[derive(Debug, thiserror::Error)]
#[error("registering bridge metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// Every series the bridge updates. Cheap to clone.
#[derive(Debug, Clone)]
pub struct BridgeMetrics {
    /// Jobs claimed.
    pub claimed: IntCounter,
    /// Workflow starts acknowledged, by `outcome`: `started` or `existing`.
    pub started: IntCounterVec,
    /// Jobs that ended failed, by `reason`: `invalid` (never startable), `rejected` (Temporal
    /// refused the request), `attempts` (Temporal unavailable too often).
    pub failed: IntCounterVec,
    /// Failed attempts put back to pending for a retry.
    pub retried: IntCounter,
    /// Jobs given back at shutdown.
    pub released: IntCounter,
    /// Settlements refused because another claim held the job by then.
    pub fenced: IntCounter,
    /// Seconds from the routed event's commit to the start's acknowledgement.
    pub event_to_start: Histogram,
    /// Seconds a claim statement took, from sending it to its rows.
    pub claim: Histogram,
    /// Seconds a start request took in Temporal, until its answer (acknowledged or refused).
    pub start: Histogram,
    /// Seconds a settlement statement took, from sending it to its rows.
    pub settle: Histogram,
    /// Jobs by `state`: `ready`, `scheduled`, `processing`.
    pub queue_depth: IntGaugeVec,
    /// Dispatches running now.
    pub in_flight: IntGauge,
    /// 1 while the wake-up `source` (`listen`, `realtime`) is delivering, else 0.
    pub wakeup_source_up: IntGaugeVec,
    /// Wake-ups by `source`: `notify`, `realtime`, `sweep`, `retry`.
    pub wakeups: IntCounterVec,
    /// Claim statements that failed.
    pub claim_errors: IntCounter,
}

impl BridgeMetrics {
    /// Creates the series and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<Self, MetricsError> {
        let metrics = BridgeMetrics {
            claimed: IntCounter::new("osp_bridge_jobs_claimed_total", "Workflow jobs claimed.")?,
            started: IntCounterVec::new(
                Opts::new(
                    "osp_bridge_workflows_started_total",
                    "Workflow starts acknowledged by Temporal, by outcome (started, existing).",
                ),
                &["outcome"],
            )?,
            failed: IntCounterVec::new(
                Opts::new(
                    "osp_bridge_jobs_failed_total",
                    "Workflow jobs that ended failed, by reason (invalid, rejected, attempts).",
                ),
                &["reason"],
            )?,
            retried: IntCounter::new(
                "osp_bridge_jobs_retried_total",
                "Failed start attempts put back to pending for a retry.",
            )?,
            released: IntCounter::new(
                "osp_bridge_jobs_released_total",
                "Claimed jobs given back at shutdown.",
            )?,
            fenced: IntCounter::new(
                "osp_bridge_settlements_fenced_total",
                "Settlements refused because the claim no longer held the job.",
            )?,
            event_to_start: Histogram::with_opts(
                HistogramOpts::new(
                    "osp_bridge_event_to_start_seconds",
                    "Seconds from the routed event's commit to Temporal acknowledging its workflow start.",
                )
                .buckets(vec![
                    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                ]),
            )?,
            claim: step_histogram(
                "osp_bridge_claim_seconds",
                "Seconds a claim statement took (api.claim_workflow_jobs), sent to answered.",
            )?,
            start: step_histogram(
                "osp_bridge_temporal_start_seconds",
                "Seconds a workflow start request took in Temporal, sent to answered.",
            )?,
            settle: step_histogram(
                "osp_bridge_settle_seconds",
                "Seconds a settlement statement took (api.settle_workflow_jobs), sent to answered.",
            )?,
            queue_depth: IntGaugeVec::new(
                Opts::new(
                    "osp_bridge_queue_depth",
                    "Workflow jobs by state (ready, scheduled, processing).",
                ),
                &["state"],
            )?,
            in_flight: IntGauge::new(
                "osp_bridge_dispatches_in_flight",
                "Workflow starts in progress.",
            )?,
            wakeup_source_up: IntGaugeVec::new(
                Opts::new(
                    "osp_bridge_wakeup_source_up",
                    "1 while the wake-up source (listen, realtime) delivers notifications.",
                ),
                &["source"],
            )?,
            wakeups: IntCounterVec::new(
                Opts::new(
                    "osp_bridge_wakeups_total",
                    "Wake-ups of the claim loop by source (notify, realtime, sweep, retry).",
                ),
                &["source"],
            )?,
            claim_errors: IntCounter::new(
                "osp_bridge_claim_errors_total",
                "Claim statements that failed.",
            )?,
        };
        registry.register(Box::new(metrics.claimed.clone()))?;
        registry.register(Box::new(metrics.started.clone()))?;
        registry.register(Box::new(metrics.failed.clone()))?;
        registry.register(Box::new(metrics.retried.clone()))?;
        registry.register(Box::new(metrics.released.clone()))?;
        registry.register(Box::new(metrics.fenced.clone()))?;
        registry.register(Box::new(metrics.event_to_start.clone()))?;
        registry.register(Box::new(metrics.claim.clone()))?;
        registry.register(Box::new(metrics.start.clone()))?;
        registry.register(Box::new(metrics.settle.clone()))?;
        registry.register(Box::new(metrics.queue_depth.clone()))?;
        registry.register(Box::new(metrics.in_flight.clone()))?;
        registry.register(Box::new(metrics.wakeup_source_up.clone()))?;
        registry.register(Box::new(metrics.wakeups.clone()))?;
        registry.register(Box::new(metrics.claim_errors.clone()))?;
        // Series that read 0 before anything happens are still listed.
        for outcome in ["started", "existing"] {
            metrics.started.with_label_values(&[outcome]);
        }
        for reason in ["invalid", "rejected", "attempts"] {
            metrics.failed.with_label_values(&[reason]);
        }
        for state in ["ready", "scheduled", "processing"] {
            metrics.queue_depth.with_label_values(&[state]);
        }
        for source in ["listen", "realtime"] {
            metrics.wakeup_source_up.with_label_values(&[source]);
        }
        for source in ["notify", "realtime", "sweep", "retry"] {
            metrics.wakeups.with_label_values(&[source]);
        }
        Ok(metrics)
    }
}

/// A histogram of one step's duration. The buckets start at half a millisecond: a claim or a
/// settlement of one job takes about one on a local database, and the latency goal of issue
/// 16 is counted in single milliseconds, so `osp_bridge_event_to_start_seconds`'s 5 ms
/// floor would hide where they go.
fn step_histogram(name: &str, help: &str) -> Result<Histogram, prometheus::Error> {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(vec![
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    ]))
}
