//! The settings of each section (Temporal, database, Supabase, health, log, telemetry),
//! each parsed once here and composed by the programs' configurations.
//!
//! A section parser reads every one of its keys before giving up, so that all of a
//! section's problems are recorded; it returns `None` only after recording one.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::keys::{
    DATABASE_URL, ENABLE_HEALTH_CHECK, HEALTH_CHECK_PORT, Key, LISTEN_DATABASE_URL, LOG_FORMAT,
    MANIFEST_PATH, OTEL_EXPORTER_OTLP_ENDPOINT, RUST_LOG, SUPABASE_SERVICE_ROLE_KEY, SUPABASE_URL,
    TEMPORAL_ADDRESS, TEMPORAL_API_KEY, TEMPORAL_GRPC_COMPRESSION, TEMPORAL_NAMESPACE,
    TEMPORAL_TASK_QUEUE, TEMPORAL_TLS, TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH,
    TEMPORAL_TLS_SERVER_CA_CERT_PATH,
};
use super::layers::{Context, Setting};
use super::values::{
    DatabaseUrl, HostPort, InvalidValue, REDACTED, Secret, parse_bool, parse_http_url, parse_name,
    parse_non_empty, parse_port, redact_url,
};

/// Namespace used when `TEMPORAL_NAMESPACE` is unset.
pub const DEFAULT_NAMESPACE: &str = "default";
/// Log filter used when `RUST_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info";

/// `key=value` pairs that `Display` prints; a configuration prints its sections' pairs
/// under the section's TOML table name, so the output reads like the file.
pub(super) type Fields = Vec<(String, String)>;

fn fields<const N: usize>(pairs: [(&str, String); N]) -> Fields {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value))
        .collect()
}

pub(super) fn write_fields(
    f: &mut fmt::Formatter<'_>,
    prefix: &str,
    fields: &Fields,
) -> fmt::Result {
    for (i, (name, value)) in fields.iter().enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        if prefix.is_empty() {
            write!(f, "{name}={value}")?;
        } else {
            write!(f, "{prefix}.{name}={value}")?;
        }
    }
    Ok(())
}

fn shown_secret(secret: Option<&Secret>) -> String {
    secret.map_or_else(|| "none".to_owned(), |_| REDACTED.to_owned())
}

macro_rules! display_by_fields {
    ($($ty:ty),*) => {$(
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write_fields(f, "", &self.fields())
            }
        }
    )*};
}
display_by_fields!(
    TemporalSettings,
    TlsSettings,
    DatabaseSettings,
    SupabaseSettings,
    HealthSettings,
    LogSettings,
    TelemetrySettings
);

/// How to reach Temporal.
#[derive(Debug, Clone)]
pub struct TemporalSettings {
    /// Frontend address.
    pub address: HostPort,
    /// Namespace (non-empty, no whitespace, at most 1000 characters).
    pub namespace: String,
    /// Temporal Cloud API key, sent as a bearer token; implies TLS.
    pub api_key: Option<Secret>,
    /// `Some` when the connection uses TLS.
    pub tls: Option<TlsSettings>,
    /// Task queue (same rules as the namespace).
    pub task_queue: String,
    /// Compression of the requests sent to Temporal.
    pub compression: GrpcCompression,
    /// gRPC metadata (headers) sent with every request, from the `temporal.toml` profile's
    /// `grpc_meta`; names lowercased with hyphens, values hidden.
    pub grpc_meta: BTreeMap<String, Secret>,
}

impl TemporalSettings {
    pub(super) fn fields(&self) -> Fields {
        let mut out = fields([
            ("address", self.address.to_string()),
            ("namespace", self.namespace.clone()),
            ("task_queue", self.task_queue.clone()),
            ("grpc_compression", self.compression.to_string()),
            ("api_key", shown_secret(self.api_key.as_ref())),
            (
                "tls",
                if self.tls.is_some() { "on" } else { "off" }.to_owned(),
            ),
        ]);
        if let Some(tls) = &self.tls {
            out.extend(
                tls.fields()
                    .into_iter()
                    .map(|(name, value)| (format!("tls.{name}"), value)),
            );
        }
        if !self.grpc_meta.is_empty() {
            // The names only: a header such as `authorization` is a credential.
            let names: Vec<&str> = self.grpc_meta.keys().map(String::as_str).collect();
            out.push(("grpc_meta".to_owned(), names.join(",")));
        }
        out
    }

    pub(super) fn parse(cx: &mut Context<'_>) -> Option<Self> {
        let address = cx.get(&TEMPORAL_ADDRESS, HostPort::from_str);
        let address = cx.required(&TEMPORAL_ADDRESS, address);
        let namespace = cx.get(&TEMPORAL_NAMESPACE, parse_name).value();
        let api_key = cx.get(&TEMPORAL_API_KEY, |s| parse_non_empty(s).map(Secret::new));
        let task_queue = cx.get(&TEMPORAL_TASK_QUEUE, parse_name).value();
        let compression = cx
            .get(&TEMPORAL_GRPC_COMPRESSION, GrpcCompression::from_str)
            .value();
        let tls = TlsSettings::parse(cx, &api_key);
        Some(TemporalSettings {
            address: address?,
            namespace: namespace?,
            api_key: api_key.optional()?,
            tls: tls?,
            task_queue: task_queue?,
            compression: compression?,
            grpc_meta: cx
                .profile
                .as_ref()
                .map(|profile| profile.grpc_meta.clone())
                .unwrap_or_default(),
        })
    }
}

/// TLS for the Temporal connection. Files are read when the configuration loads, so a
/// missing file stops the program at start rather than at the first connection.
#[derive(Debug, Clone)]
pub struct TlsSettings {
    /// PEM client certificate, for mTLS.
    pub client_cert_pem: Option<String>,
    /// PEM client private key, for mTLS; set exactly when `client_cert_pem` is.
    pub client_key_pem: Option<Secret>,
    /// PEM CA certificate for the server; `None` trusts the system roots.
    pub server_ca_cert_pem: Option<String>,
    /// The name the server's certificate is checked against (and sent as SNI) when it is
    /// not the host of the address; from the `temporal.toml` profile's `tls.server_name`.
    pub server_name: Option<String>,
}

impl TlsSettings {
    fn fields(&self) -> Fields {
        let present = |set: bool| if set { "set" } else { "none" }.to_owned();
        let mut out = fields([
            ("client_cert", present(self.client_cert_pem.is_some())),
            ("client_key", shown_secret(self.client_key_pem.as_ref())),
            (
                "server_ca",
                if self.server_ca_cert_pem.is_some() {
                    "custom"
                } else {
                    "system"
                }
                .to_owned(),
            ),
        ]);
        if let Some(name) = &self.server_name {
            out.push(("server_name".to_owned(), name.clone()));
        }
        out
    }

    /// `Some(None)` when TLS is off.
    fn parse(cx: &mut Context<'_>, api_key: &Setting<Secret>) -> Option<Option<Self>> {
        let enabled = cx.get(&TEMPORAL_TLS, parse_bool);
        let cert = pem_file(cx, &TEMPORAL_TLS_CLIENT_CERT_PATH);
        let key = pem_file(cx, &TEMPORAL_TLS_CLIENT_KEY_PATH);
        let ca = pem_file(cx, &TEMPORAL_TLS_SERVER_CA_CERT_PATH);

        let mut consistent = true;
        if let Setting::Valid {
            value: false,
            origin,
        } = &enabled
        {
            if let Some(other) = api_key.origin() {
                cx.problem(
                    origin.clone(),
                    format!("is false but {other} is set (Temporal Cloud API keys need TLS)"),
                );
                consistent = false;
            }
            for other in [cert.origin(), key.origin(), ca.origin()]
                .into_iter()
                .flatten()
            {
                cx.problem(
                    origin.clone(),
                    format!("is false but {other} is set (TLS files need TLS on)"),
                );
                consistent = false;
            }
        }
        match (cert.origin(), key.origin()) {
            (Some(origin), None) => {
                let message = format!(
                    "is set but {} is not (a client certificate needs its key)",
                    TEMPORAL_TLS_CLIENT_KEY_PATH.env
                );
                cx.problem(origin, message);
                consistent = false;
            }
            (None, Some(origin)) => {
                let message = format!(
                    "is set but {} is not (a client key needs its certificate)",
                    TEMPORAL_TLS_CLIENT_CERT_PATH.env
                );
                cx.problem(origin, message);
                consistent = false;
            }
            _ => {}
        }

        let on = matches!(enabled, Setting::Valid { value: true, .. })
            || api_key.is_set()
            || cert.is_set()
            || key.is_set()
            || ca.is_set();
        let tls = TlsSettings {
            client_cert_pem: cert.optional()?,
            client_key_pem: key.optional()?.map(Secret::new),
            server_ca_cert_pem: ca.optional()?,
            server_name: cx
                .profile
                .as_ref()
                .and_then(|profile| profile.server_name.clone()),
        };
        enabled.optional()?;
        if !consistent {
            return None;
        }
        Some(on.then_some(tls))
    }
}

/// Reads the PEM file a path setting names; problems name the setting and the path. Below
/// every path, a `temporal.toml` profile may give the PEM inline (`client_cert_data`, ...).
fn pem_file(cx: &mut Context<'_>, key: &Key) -> Setting<String> {
    let (text, origin, what) = match cx.get(key, parse_path) {
        // No TLS file has a default, so a defaulted path cannot occur: it counts as unset.
        Setting::Unset | Setting::Default { .. } => {
            let inline = cx.profile.as_ref().and_then(|p| p.data.get(key.file));
            let Some((text, origin)) = inline.cloned() else {
                return Setting::Unset;
            };
            (text, origin, "the value".to_owned())
        }
        Setting::Invalid { origin } => return Setting::Invalid { origin },
        Setting::Valid {
            value: path,
            origin,
        } => match cx.read(&origin, &path) {
            Some(text) => (text, origin, format!("`{}`", path.display())),
            None => return Setting::Invalid { origin },
        },
    };
    // A cheap check that catches a swapped or DER-encoded file at start.
    if text.contains("-----BEGIN ") {
        return Setting::Valid {
            value: text,
            origin,
        };
    }
    cx.problem(
        origin.clone(),
        format!("{what} is not a PEM file (no -----BEGIN line)"),
    );
    Setting::Invalid { origin }
}

fn parse_path(s: &str) -> Result<PathBuf, InvalidValue> {
    parse_non_empty(s).map(PathBuf::from)
}

/// How to reach Postgres.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    /// Connection for queries (may be a transaction-mode pooler).
    pub url: DatabaseUrl,
    /// Connection for `LISTEN` (direct or session-mode); `url` unless set.
    pub listen_url: DatabaseUrl,
}

impl DatabaseSettings {
    pub(super) fn fields(&self) -> Fields {
        fields([
            ("url", self.url.to_string()),
            ("listen_url", self.listen_url.to_string()),
        ])
    }

    pub(super) fn parse(cx: &mut Context<'_>) -> Option<Self> {
        let url = cx.get(&DATABASE_URL, DatabaseUrl::from_str);
        let url = cx.required(&DATABASE_URL, url);
        let listen_url = cx
            .get(&LISTEN_DATABASE_URL, DatabaseUrl::from_str)
            .optional();
        let url = url?;
        let listen_url = listen_url?.unwrap_or_else(|| url.clone());
        Some(DatabaseSettings { url, listen_url })
    }
}

/// Supabase Realtime transport.
#[derive(Debug, Clone)]
pub struct SupabaseSettings {
    /// Project URL (`http://` or `https://`).
    pub url: String,
    /// Service-role key.
    pub service_role_key: Secret,
}

impl SupabaseSettings {
    pub(super) fn fields(&self) -> Fields {
        fields([
            ("url", redact_url(&self.url)),
            ("service_role_key", REDACTED.to_owned()),
        ])
    }

    /// `Some(None)` when neither setting is given.
    pub(super) fn parse(cx: &mut Context<'_>) -> Option<Option<Self>> {
        let url = cx.get(&SUPABASE_URL, parse_http_url);
        let key = cx.get(&SUPABASE_SERVICE_ROLE_KEY, |s| {
            parse_non_empty(s).map(Secret::new)
        });
        let mut consistent = true;
        match (url.origin(), key.origin()) {
            (Some(origin), None) => {
                cx.problem(
                    SUPABASE_SERVICE_ROLE_KEY.env,
                    format!("is required when {origin} is set"),
                );
                consistent = false;
            }
            (None, Some(origin)) => {
                cx.problem(
                    SUPABASE_URL.env,
                    format!("is required when {origin} is set"),
                );
                consistent = false;
            }
            _ => {}
        }
        let (url, key) = (url.optional()?, key.optional()?);
        if !consistent {
            return None;
        }
        match (url, key) {
            (Some(url), Some(service_role_key)) => Some(Some(SupabaseSettings {
                url,
                service_role_key,
            })),
            _ => Some(None),
        }
    }
}

/// The worker manifest path (`MANIFEST_PATH`).
pub(super) fn parse_manifest_path(cx: &mut Context<'_>) -> Option<Option<PathBuf>> {
    cx.get(&MANIFEST_PATH, parse_path).optional()
}

/// The `/healthz`, `/readyz` and `/metrics` server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// Whether to serve it.
    pub enabled: bool,
    /// TCP port to listen on.
    pub port: u16,
}

impl HealthSettings {
    pub(super) fn fields(&self) -> Fields {
        fields([
            ("enabled", self.enabled.to_string()),
            ("port", self.port.to_string()),
        ])
    }

    pub(super) fn parse(cx: &mut Context<'_>) -> Option<Self> {
        let enabled = cx.get(&ENABLE_HEALTH_CHECK, parse_bool).value();
        let port = cx
            .get(&HEALTH_CHECK_PORT, |s| {
                parse_port(s).map_err(InvalidValue::from)
            })
            .value();
        Some(HealthSettings {
            enabled: enabled?,
            port: port?,
        })
    }
}

/// Compression of the gRPC requests to Temporal. Off by default: OSP's messages are a few
/// hundred bytes to a few KiB, gzip saves little on them and cost the worker 1.4 ms of CPU per
/// `createServiceWorkflow` in `make bench` (docs/performance.md); `gzip` is for links where
/// bytes cost more than CPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrpcCompression {
    None,
    Gzip,
}

impl fmt::Display for GrpcCompression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            GrpcCompression::None => "none",
            GrpcCompression::Gzip => "gzip",
        })
    }
}

impl FromStr for GrpcCompression {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("none") {
            Ok(GrpcCompression::None)
        } else if s.eq_ignore_ascii_case("gzip") {
            Ok(GrpcCompression::Gzip)
        } else {
            Err(InvalidValue::new(
                "is not a gRPC compression; use none or gzip",
            ))
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for collectors.
    Json,
    /// Human-readable lines, for terminals.
    Text,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Json => "json",
            LogFormat::Text => "text",
        })
    }
}

impl FromStr for LogFormat {
    type Err = InvalidValue;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("json") {
            Ok(LogFormat::Json)
        } else if s.eq_ignore_ascii_case("text") {
            Ok(LogFormat::Text)
        } else {
            Err(InvalidValue::new("is not a log format; use json or text"))
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSettings {
    /// Line format.
    pub format: LogFormat,
    /// `tracing` env-filter directives; their syntax is checked by the binary that
    /// installs the subscriber.
    pub filter: String,
}

impl LogSettings {
    pub(super) fn fields(&self) -> Fields {
        fields([
            ("format", self.format.to_string()),
            ("filter", self.filter.clone()),
        ])
    }

    pub(super) fn parse(cx: &mut Context<'_>) -> Option<Self> {
        let format = cx.get(&LOG_FORMAT, LogFormat::from_str).value();
        let filter = cx.get(&RUST_LOG, parse_non_empty).value();
        Some(LogSettings {
            format: format?,
            filter: filter?,
        })
    }
}

/// OpenTelemetry export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelemetrySettings {
    /// OTLP endpoint (`http://` or `https://`); export is off when `None`.
    pub otlp_endpoint: Option<String>,
}

impl TelemetrySettings {
    pub(super) fn fields(&self) -> Fields {
        fields([(
            "otlp_endpoint",
            self.otlp_endpoint
                .as_deref()
                .map_or_else(|| "none".to_owned(), redact_url),
        )])
    }

    pub(super) fn parse(cx: &mut Context<'_>) -> Option<Self> {
        let otlp_endpoint = cx
            .get(&OTEL_EXPORTER_OTLP_ENDPOINT, parse_http_url)
            .optional();
        Some(TelemetrySettings {
            otlp_endpoint: otlp_endpoint?,
        })
    }
}
