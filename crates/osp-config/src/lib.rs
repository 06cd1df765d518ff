//! Layered configuration (defaults < TOML file < environment), parsed from injected sources.
//!
//! Each program loads the configuration it needs ([`WorkerConfig`], [`BridgeConfig`],
//! [`MigrateConfig`]) from [`Sources`]: the environment as a [`Strings`] and a file reader.
//! Nothing here touches the process environment or the file system itself, so tests pass
//! a map and a closure. A bad configuration yields one [`ConfigError`] listing every
//! problem; secret values never appear in it, nor in `Debug` or `Display` of the settings.
//! `docs/configuration.md` describes every setting.

mod bridge;
mod error;
mod keys;
mod layers;
mod sections;
mod temporal_profile;
#[cfg(test)]
mod tests;
mod values;
mod worker;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

pub use bridge::*;
pub use error::{ConfigError, ConfigProblem};
pub use keys::{
    DATABASE_URL, ENABLE_HEALTH_CHECK, HEALTH_CHECK_PORT, KEYS, Key, LISTEN_DATABASE_URL,
    LOG_FORMAT, MANIFEST_PATH, OSP_CONFIG, OTEL_EXPORTER_OTLP_ENDPOINT, RUST_LOG,
    SUPABASE_SERVICE_ROLE_KEY, SUPABASE_URL, TEMPORAL_ADDRESS, TEMPORAL_API_KEY,
    TEMPORAL_GRPC_COMPRESSION, TEMPORAL_NAMESPACE, TEMPORAL_TASK_QUEUE, TEMPORAL_TLS,
    TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_CA_CERT_PATH,
};
pub use sections::{
    DEFAULT_LOG_FILTER, DEFAULT_NAMESPACE, DatabaseSettings, GrpcCompression, HealthSettings,
    LogFormat, LogSettings, SupabaseSettings, TelemetrySettings, TemporalSettings, TlsSettings,
};
pub use temporal_profile::{TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE};
pub use values::{DatabaseUrl, HostPort, InvalidValue, Secret, redact_url};
pub use worker::*;

use layers::Context;
use sections::{Fields, write_fields};

/// A source of string settings keyed by environment-variable name (the process
/// environment in binaries, a map in tests).
pub trait Strings {
    /// The value of `key`, or `None` when it is not set.
    fn get(&self, key: &str) -> Option<String>;
}

impl Strings for HashMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        HashMap::get(self, key).cloned()
    }
}

impl Strings for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<String> {
        BTreeMap::get(self, key).cloned()
    }
}

/// Everything configuration is read from. In a binary: the process environment and
/// `std::fs::read_to_string`.
pub struct Sources<'a> {
    /// Environment variables.
    pub env: &'a dyn Strings,
    /// Reads the `OSP_CONFIG` file and the TLS files it or the environment names.
    pub read_file: &'a dyn Fn(&Path) -> std::io::Result<String>,
}

impl fmt::Debug for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The environment holds secrets, so only the shape is shown.
        f.debug_struct("Sources").finish_non_exhaustive()
    }
}

/// Writes `section.key=value` pairs; `None` sections print as `section=none`.
fn write_sections(f: &mut fmt::Formatter<'_>, sections: &[(&str, Option<Fields>)]) -> fmt::Result {
    for (i, (name, fields)) in sections.iter().enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        match fields {
            Some(fields) => write_fields(f, name, fields)?,
            None => write!(f, "{name}=none")?,
        }
    }
    Ok(())
}

/// What `osp-worker` needs to run a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Temporal connection and task queue.
    pub temporal: TemporalSettings,
    /// Postgres for activities.
    pub database: DatabaseSettings,
    /// Supabase Realtime, when configured.
    pub supabase: Option<SupabaseSettings>,
    /// Worker manifest; `None` runs the built-in workflows only.
    pub manifest_path: Option<PathBuf>,
    /// Health server.
    pub health: HealthSettings,
    /// Logging.
    pub log: LogSettings,
    /// OpenTelemetry export.
    pub telemetry: TelemetrySettings,
    /// Concurrency, shutdown, versioning, registry, manifests and deployer.
    pub worker: WorkerSettings,
    /// The bootstrap's DNS provider.
    pub dns: DnsSettings,
    /// The bootstrap's email provider.
    pub email: EmailSettings,
}

impl WorkerConfig {
    /// Loads and validates the worker's settings, reporting every problem at once.
    pub fn load(sources: &Sources<'_>) -> Result<Self, ConfigError> {
        let mut cx = Context::new(sources);
        let temporal = TemporalSettings::parse(&mut cx);
        let database = DatabaseSettings::parse(&mut cx);
        let supabase = SupabaseSettings::parse(&mut cx);
        let manifest_path = sections::parse_manifest_path(&mut cx);
        let health = HealthSettings::parse(&mut cx);
        let log = LogSettings::parse(&mut cx);
        let telemetry = TelemetrySettings::parse(&mut cx);
        let worker = WorkerSettings::parse(&mut cx);
        let dns = DnsSettings::parse(&mut cx);
        let email = EmailSettings::parse(&mut cx);
        let config = (|| {
            Some(WorkerConfig {
                temporal: temporal?,
                database: database?,
                supabase: supabase?,
                manifest_path: manifest_path?,
                health: health?,
                log: log?,
                telemetry: telemetry?,
                worker: worker?,
                dns: dns?,
                email: email?,
            })
        })();
        cx.finish(config)
    }
}

impl fmt::Display for WorkerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let manifest = self
            .manifest_path
            .as_ref()
            .map_or_else(|| "none".to_owned(), |p| p.display().to_string());
        write_sections(
            f,
            &[
                ("temporal", Some(self.temporal.fields())),
                ("database", Some(self.database.fields())),
                (
                    "supabase",
                    self.supabase.as_ref().map(SupabaseSettings::fields),
                ),
                (
                    "worker",
                    Some({
                        let mut fields = vec![("manifest_path".to_owned(), manifest)];
                        fields.extend(self.worker.fields());
                        fields
                    }),
                ),
                ("dns", Some(self.dns.fields())),
                ("email", Some(self.email.fields())),
                ("health", Some(self.health.fields())),
                ("log", Some(self.log.fields())),
                ("telemetry", Some(self.telemetry.fields())),
            ],
        )
    }
}

/// What `osp-bridge` needs to move queued events into Temporal.
#[derive(Debug, Clone)]
pub struct BridgeConfig {
    /// Temporal connection and default task queue.
    pub temporal: TemporalSettings,
    /// Postgres for claiming jobs and for `LISTEN`.
    pub database: DatabaseSettings,
    /// Supabase Realtime, when configured.
    pub supabase: Option<SupabaseSettings>,
    /// Health server.
    pub health: HealthSettings,
    /// Logging.
    pub log: LogSettings,
    /// OpenTelemetry export.
    pub telemetry: TelemetrySettings,
    /// Claiming, dispatching, retrying, sweeping and shutting down.
    pub bridge: BridgeSettings,
}

impl BridgeConfig {
    /// Loads and validates the bridge's settings, reporting every problem at once.
    pub fn load(sources: &Sources<'_>) -> Result<Self, ConfigError> {
        let mut cx = Context::new(sources);
        let temporal = TemporalSettings::parse(&mut cx);
        let database = DatabaseSettings::parse(&mut cx);
        let supabase = SupabaseSettings::parse(&mut cx);
        let health = HealthSettings::parse(&mut cx);
        let log = LogSettings::parse(&mut cx);
        let telemetry = TelemetrySettings::parse(&mut cx);
        let bridge = BridgeSettings::parse(&mut cx, supabase.as_ref());
        let config = (|| {
            Some(BridgeConfig {
                temporal: temporal?,
                database: database?,
                supabase: supabase?,
                health: health?,
                log: log?,
                telemetry: telemetry?,
                bridge: bridge?,
            })
        })();
        cx.finish(config)
    }
}

impl fmt::Display for BridgeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_sections(
            f,
            &[
                ("temporal", Some(self.temporal.fields())),
                ("database", Some(self.database.fields())),
                (
                    "supabase",
                    self.supabase.as_ref().map(SupabaseSettings::fields),
                ),
                ("health", Some(self.health.fields())),
                ("log", Some(self.log.fields())),
                ("telemetry", Some(self.telemetry.fields())),
                ("bridge", Some(self.bridge.fields())),
                ("", Some(self.bridge.shared_fields())),
            ],
        )
    }
}

/// What `osp-worker migrate` needs: only the database (and logging).
#[derive(Debug, Clone)]
pub struct MigrateConfig {
    /// Postgres to migrate.
    pub database: DatabaseSettings,
    /// Logging.
    pub log: LogSettings,
}

impl MigrateConfig {
    /// Loads and validates the migration's settings, reporting every problem at once.
    pub fn load(sources: &Sources<'_>) -> Result<Self, ConfigError> {
        let mut cx = Context::new(sources);
        let database = DatabaseSettings::parse(&mut cx);
        let log = LogSettings::parse(&mut cx);
        let config = (|| {
            Some(MigrateConfig {
                database: database?,
                log: log?,
            })
        })();
        cx.finish(config)
    }
}

impl fmt::Display for MigrateConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_sections(
            f,
            &[
                ("database", Some(self.database.fields())),
                ("log", Some(self.log.fields())),
            ],
        )
    }
}
