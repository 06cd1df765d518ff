//! The name of every setting in each layer: environment variable, accepted aliases and
//! key in the `OSP_CONFIG` TOML file.

/// Environment variable naming the TOML file that forms the middle layer. It is read from
/// the environment only: a file cannot name another file.
pub const OSP_CONFIG: &str = "OSP_CONFIG";

/// Where one setting is looked up in each layer, and whether its value must be hidden.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// Environment variable name; problems about a missing value are reported under it.
    pub env: &'static str,
    /// Other environment names accepted (seed names), consulted in order only when `env`
    /// is unset.
    pub aliases: &'static [&'static str],
    /// Dotted path of the key in the TOML file (`temporal.tls.enabled` is the key
    /// `enabled` in the table `[temporal.tls]`).
    pub file: &'static str,
    /// The value never appears in messages, `Debug` or `Display` output.
    pub secret: bool,
    /// The value every program uses when no layer sets it, as the lowest layer of the merge;
    /// `None` when the setting is required, optional, or defaults differently per program.
    pub default: Option<&'static str>,
}

impl Key {
    /// A setting without aliases that is not secret.
    pub(super) const fn new(env: &'static str, file: &'static str) -> Self {
        Key {
            env,
            aliases: &[],
            file,
            secret: false,
            default: None,
        }
    }

    /// The same setting with a default value.
    pub(super) const fn or(self, default: &'static str) -> Self {
        Key {
            default: Some(default),
            ..self
        }
    }
}

/// `host:port` of the Temporal frontend. Required by the worker and the bridge.
pub const TEMPORAL_ADDRESS: Key = Key::new("TEMPORAL_ADDRESS", "temporal.address");
/// Temporal namespace; default `default`.
pub const TEMPORAL_NAMESPACE: Key =
    Key::new("TEMPORAL_NAMESPACE", "temporal.namespace").or(super::DEFAULT_NAMESPACE);
/// Temporal Cloud API key; turns TLS on.
pub const TEMPORAL_API_KEY: Key = Key {
    env: "TEMPORAL_API_KEY",
    aliases: &[],
    file: "temporal.api_key",
    secret: true,
    default: None,
};
/// Task queue polled by the worker and used by the bridge; default `osp-queue`, the
/// contract's default queue, shared with the workflow routes.
pub const TEMPORAL_TASK_QUEUE: Key = Key::new("TEMPORAL_TASK_QUEUE", "temporal.task_queue")
    .or(osp_core::workflows::DEFAULT_TASK_QUEUE);
/// Compression of the gRPC messages sent to Temporal: `none` (default) or `gzip`.
pub const TEMPORAL_GRPC_COMPRESSION: Key =
    Key::new("TEMPORAL_GRPC_COMPRESSION", "temporal.grpc_compression").or("none");
/// Boolean: connect to Temporal over TLS.
pub const TEMPORAL_TLS: Key = Key::new("TEMPORAL_TLS", "temporal.tls.enabled");
/// Path of the PEM client certificate for mTLS.
pub const TEMPORAL_TLS_CLIENT_CERT_PATH: Key = Key::new(
    "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "temporal.tls.client_cert_path",
);
/// Path of the PEM client private key for mTLS. The path is not secret; the file's
/// contents are.
pub const TEMPORAL_TLS_CLIENT_KEY_PATH: Key = Key::new(
    "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "temporal.tls.client_key_path",
);
/// Path of the PEM CA certificate that signs the server's certificate.
pub const TEMPORAL_TLS_SERVER_CA_CERT_PATH: Key = Key::new(
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "temporal.tls.server_ca_cert_path",
);
/// Postgres URL for activities and the bridge (may be a transaction-mode pooler). Secret
/// because it usually carries a password.
pub const DATABASE_URL: Key = Key {
    env: "DATABASE_URL",
    aliases: &["SUPABASE_DB_URL"],
    file: "database.url",
    secret: true,
    default: None,
};
/// Postgres URL for `LISTEN` (a direct or session-mode connection); defaults to the
/// `DATABASE_URL` value.
pub const LISTEN_DATABASE_URL: Key = Key {
    env: "LISTEN_DATABASE_URL",
    aliases: &[],
    file: "database.listen_url",
    secret: true,
    default: None,
};
/// Supabase project URL (Realtime transport).
pub const SUPABASE_URL: Key = Key {
    env: "SUPABASE_URL",
    aliases: &["PUBLIC_SUPABASE_URL"],
    file: "supabase.url",
    secret: false,
    default: None,
};
/// Supabase service-role key.
pub const SUPABASE_SERVICE_ROLE_KEY: Key = Key {
    env: "SUPABASE_SERVICE_ROLE_KEY",
    aliases: &[],
    file: "supabase.service_role_key",
    secret: true,
    default: None,
};
/// Path of the worker manifest.
pub const MANIFEST_PATH: Key = Key::new("MANIFEST_PATH", "worker.manifest_path");
/// Boolean: serve `/healthz`, `/readyz` and `/metrics`; default true.
pub const ENABLE_HEALTH_CHECK: Key = Key::new("ENABLE_HEALTH_CHECK", "health.enabled").or("true");
/// Port of the health server; default 8080.
pub const HEALTH_CHECK_PORT: Key = Key::new("HEALTH_CHECK_PORT", "health.port").or("8080");
/// `json` or `text`; default `json`.
pub const LOG_FORMAT: Key = Key::new("LOG_FORMAT", "log.format").or("json");
/// Log filter (`tracing` env-filter syntax); default `info`.
pub const RUST_LOG: Key = Key::new("RUST_LOG", "log.filter").or(super::DEFAULT_LOG_FILTER);
/// OTLP endpoint; OpenTelemetry export is off when unset.
pub const OTEL_EXPORTER_OTLP_ENDPOINT: Key =
    Key::new("OTEL_EXPORTER_OTLP_ENDPOINT", "telemetry.otlp_endpoint");

/// Every setting, in the order problems and documentation list them.
pub const KEYS: &[Key] = &[
    TEMPORAL_ADDRESS,
    TEMPORAL_NAMESPACE,
    TEMPORAL_API_KEY,
    TEMPORAL_TASK_QUEUE,
    TEMPORAL_GRPC_COMPRESSION,
    TEMPORAL_TLS,
    TEMPORAL_TLS_CLIENT_CERT_PATH,
    TEMPORAL_TLS_CLIENT_KEY_PATH,
    TEMPORAL_TLS_SERVER_CA_CERT_PATH,
    DATABASE_URL,
    LISTEN_DATABASE_URL,
    SUPABASE_URL,
    SUPABASE_SERVICE_ROLE_KEY,
    MANIFEST_PATH,
    ENABLE_HEALTH_CHECK,
    HEALTH_CHECK_PORT,
    LOG_FORMAT,
    RUST_LOG,
    OTEL_EXPORTER_OTLP_ENDPOINT,
    // The worker's own settings (worker.rs).
    super::worker::OSP_MAX_CONCURRENT_WORKFLOW_TASKS,
    super::worker::OSP_MAX_CONCURRENT_ACTIVITIES,
    super::worker::OSP_WORKFLOW_TASK_POLLERS,
    super::worker::OSP_ACTIVITY_TASK_POLLERS,
    super::worker::OSP_MAX_CACHED_WORKFLOWS,
    super::worker::OSP_RUNTIME_THREADS,
    super::worker::OSP_SHUTDOWN_GRACE_SECONDS,
    super::worker::OSP_DATABASE_POOL_SIZE,
    super::worker::OSP_REGISTRY_HEARTBEAT_SECONDS,
    super::worker::TEMPORAL_DEPLOYMENT_NAME,
    super::worker::TEMPORAL_WORKER_BUILD_ID,
    super::worker::OSP_MANIFEST_DIR,
    super::worker::OSP_DEPLOYER_COMMAND,
    super::worker::DNS_PROVIDER,
    super::worker::DNS_ZONE,
    super::worker::DNS_TARGET,
    super::worker::CLOUDFLARE_API_URL,
    super::worker::CLOUDFLARE_ZONE_ID,
    super::worker::CLOUDFLARE_API_TOKEN,
    super::worker::EMAIL_PROVIDER,
    super::worker::SMTP_HOST,
    super::worker::SMTP_PORT,
    super::worker::SMTP_SECURITY,
    super::worker::SMTP_USERNAME,
    super::worker::SMTP_PASSWORD,
    super::worker::SMTP_FROM,
    // The bridge's own settings (bridge.rs).
    super::bridge::OSP_BRIDGE_ID,
    super::bridge::OSP_BRIDGE_BATCH_SIZE,
    super::bridge::OSP_BRIDGE_MAX_IN_FLIGHT,
    super::bridge::OSP_BRIDGE_LEASE_SECONDS,
    super::bridge::OSP_BRIDGE_MAX_ATTEMPTS,
    super::bridge::OSP_BRIDGE_RETRY_INITIAL_MS,
    super::bridge::OSP_BRIDGE_RETRY_MAX_MS,
    super::bridge::OSP_BRIDGE_SWEEP_INTERVAL_MS,
    super::bridge::OSP_BRIDGE_FALLBACK_SWEEP_INTERVAL_MS,
    super::bridge::OSP_BRIDGE_MAX_PAYLOAD_BYTES,
    super::bridge::OSP_BRIDGE_RUNTIME_THREADS,
    super::bridge::OSP_BRIDGE_REALTIME,
];
