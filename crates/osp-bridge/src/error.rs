//! Why the bridge stopped: only what no retry can fix. Everything else (databases, Temporal,
//! Realtime coming and going) is retried while the process stays up.

/// A fatal bridge error. Never contains a database URL or a key.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The database URL was refused by the driver.
    #[error(transparent)]
    Database(#[from] osp_activities::db::DbError),
    /// The bridge's metrics could not be registered.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// The Temporal client's metrics exporter could not start.
    #[error(transparent)]
    SdkMetrics(#[from] osp_runtime::metrics::MetricsError),
    /// The SDK's telemetry could not be set up.
    #[error("temporal telemetry")]
    Telemetry(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The health server's port could not be bound.
    #[error(transparent)]
    Health(#[from] osp_runtime::server::BindError),
}
