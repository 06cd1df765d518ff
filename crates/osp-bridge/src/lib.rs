//! OSP bridge: turns queued workflow jobs into workflow starts. The queue row is the truth
//! and every notification a hint: jobs are claimed from `workflow_queue_projection` through
//! one SQL function (`api.claim_workflow_jobs`), woken by LISTEN, Supabase Realtime or a
//! sweep; each is started in Temporal under its deterministic workflow id, where a duplicate
//! start counts as started, and settled only while this bridge still holds its lease.

mod bridge;
pub mod check;
mod dispatch;
mod error;
mod jobs;
pub mod listen;
pub mod metrics;
pub mod queue;
pub mod realtime;
mod settle;
pub mod start;
mod wake;

use std::future::Future;
use std::net::SocketAddr;

use osp_config::BridgeConfig;
use osp_runtime::server::HealthServer;
use temporalio_common::telemetry::{TelemetryOptions, telemetry_init};

pub use bridge::Bridge;
pub use error::BridgeError;
pub use jobs::{JobsCommand, JobsCommandError, run_jobs};
pub use listen::ListenTiming;
pub use realtime::RealtimeTiming;

/// The crate version, for `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Runs a bridge from its configuration until `shutdown` resolves, serving `/healthz`,
/// `/readyz` and `/metrics` when the health server is enabled.
pub async fn run(
    config: BridgeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), BridgeError> {
    let health_settings = config.health;
    // The Temporal client's series (`temporal_request_latency`, ...) join the bridge's own;
    // the exporter stops when `_exporter` is dropped, on every return path.
    let (metrics, meter, _exporter) = osp_runtime::Metrics::new().start_sdk_exporter()?;
    // Through the SDK's telemetry, so that the series get its `temporal_` prefix and labels.
    let telemetry = telemetry_init(TelemetryOptions::builder().metrics(meter).build())
        .map_err(|error| BridgeError::Telemetry(error.into_boxed_dyn_error()))?;
    let mut bridge = Bridge::new(config).with_metrics(metrics);
    if let Some(meter) = telemetry.get_temporal_metric_meter() {
        bridge = bridge.with_temporal_meter(meter);
    }
    // Stopped (its port closed) when dropped, like the worker's.
    let _server = if health_settings.enabled {
        let addr = SocketAddr::from(([0, 0, 0, 0], health_settings.port));
        Some(HealthServer::start(addr, bridge.health(), bridge.metrics()).await?)
    } else {
        None
    };
    bridge.run(shutdown).await
}
