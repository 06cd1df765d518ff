//! Logging through `tracing`: JSON (the default, for collectors) or text, filtered by the
//! `RUST_LOG` setting.

use osp_core::config::{LogFormat, LogSettings};
use tracing_subscriber::EnvFilter;

/// Why logging could not start.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// `RUST_LOG` does not parse as a filter.
    #[error("RUST_LOG: `{filter}` is not a log filter: {reason}")]
    Filter { filter: String, reason: String },
    /// A subscriber was already installed.
    #[error("logging was already initialised")]
    AlreadyInitialised,
}

/// Checks the filter, without installing anything.
pub fn filter(settings: &LogSettings) -> Result<EnvFilter, LoggingError> {
    EnvFilter::try_new(&settings.filter).map_err(|error| LoggingError::Filter {
        filter: settings.filter.clone(),
        reason: error.to_string(),
    })
}

/// Installs the global subscriber, writing to standard error.
pub fn init(settings: &LogSettings) -> Result<(), LoggingError> {
    let filter = filter(settings)?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true);
    let installed = match settings.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    installed.map_err(|_| LoggingError::AlreadyInitialised)
}
