//! Process plumbing the OSP binaries share: connecting to Temporal from typed settings,
//! readiness state, the `/healthz`, `/readyz` and `/metrics` server, logging, signals,
//! start-up backoff and the tokio runtime. Binaries call these; libraries never need them.

pub mod backoff;
pub mod chain;
pub mod health;
pub mod logging;
pub mod metrics;
pub mod retry;
pub mod server;
pub mod shutdown;
pub mod temporal;
pub mod threads;

pub use chain::error_chain;
pub use health::Health;
pub use metrics::Metrics;
