//! Tests for configuration loading: each setting, the layers, problem reporting and
//! secret redaction, driven through one `check` helper over an injected environment
//! and file map.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::io;
use std::path::Path;

use super::*;

const CONFIG_FILE: &str = "/etc/osp/osp.toml";
const CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIBclient\n-----END CERTIFICATE-----\n";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIBkey\n-----END PRIVATE KEY-----\n";
const CA: &str = "-----BEGIN CERTIFICATE-----\nMIIBca\n-----END CERTIFICATE-----\n";

/// Set in every `check` unless the test overrides it. An empty value removes it, since
/// empty environment values count as unset.
const BASE_ENV: &[(&str, &str)] = &[
    ("TEMPORAL_ADDRESS", "localhost:7233"),
    ("DATABASE_URL", "postgres://osp:pw@localhost:5432/osp"),
];

/// Files the fake reader knows, besides the config file a test passes.
const FILES: &[(&str, &str)] = &[
    ("/tls/client.pem", CERT),
    ("/tls/client.key", KEY),
    ("/tls/ca.pem", CA),
    ("/tls/notes.txt", "not a certificate"),
];

fn env_map(env: &[(&str, &str)]) -> HashMap<String, String> {
    env.iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A file reader backed by `files`; `/denied/...` fails with permission denied and any
/// other unknown path with not found.
fn fake_reader(files: Vec<(String, String)>) -> impl Fn(&Path) -> io::Result<String> {
    move |path: &Path| {
        if path.starts_with("/denied") {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "custom text that must not leak",
            ));
        }
        files
            .iter()
            .find(|(name, _)| Path::new(name) == path)
            .map(|(_, text)| text.clone())
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
}

/// Loads with exactly `env` and `files` (no base environment).
fn load_exact<C>(
    env: &[(&str, &str)],
    files: &[(&str, &str)],
    load: fn(&Sources<'_>) -> Result<C, ConfigError>,
) -> Result<C, ConfigError> {
    let env = env_map(env);
    let read = fake_reader(
        files
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    );
    load(&Sources {
        env: &env,
        read_file: &read,
    })
}

/// `BASE_ENV` overridden by `env`, plus `OSP_CONFIG` naming `file` when one is given.
fn test_env<'a>(env: &[(&'a str, &'a str)], file: Option<&str>) -> Vec<(&'a str, &'a str)> {
    let mut all: Vec<(&str, &str)> = BASE_ENV
        .iter()
        .filter(|(k, _)| !env.iter().any(|(e, _)| e == k))
        .copied()
        .collect();
    if file.is_some() && !env.iter().any(|(k, _)| *k == OSP_CONFIG) {
        all.push((OSP_CONFIG, CONFIG_FILE));
    }
    all.extend_from_slice(env);
    all
}

/// `BASE_ENV` overridden by `pairs`, loaded by `load`; the error as its text.
pub(crate) fn load_over_base<C>(
    pairs: &[(&str, &str)],
    load: fn(&Sources<'_>) -> Result<C, ConfigError>,
) -> Result<C, String> {
    load_exact(&test_env(pairs, None), FILES, load).map_err(|error| error.to_string())
}

fn load_worker(env: &[(&str, &str)], file: Option<&str>) -> Result<WorkerConfig, ConfigError> {
    let mut files = FILES.to_vec();
    if let Some(text) = file {
        files.push((CONFIG_FILE, text));
    }
    load_exact(&test_env(env, file), &files, WorkerConfig::load)
}

/// Loads a worker configuration from `BASE_ENV` + `env` and the optional TOML `file`.
///
/// When loading succeeds, `expected` is a space-separated list of `key=value` fields that
/// must all appear in the configuration's `Display`. When it fails, `expected` is every
/// problem, one `KEY: message` per line, in order.
#[track_caller]
fn check(env: &[(&str, &str)], file: Option<&str>, expected: &str) {
    match load_worker(env, file) {
        Ok(config) => {
            let shown = config.to_string();
            let fields: Vec<&str> = shown.split(' ').collect();
            for want in expected.split(' ') {
                assert!(
                    fields.contains(&want),
                    "missing `{want}` in:\n{shown}\n(env {env:?}, file {file:?})"
                );
            }
        }
        Err(err) => {
            let problems: Vec<String> = err.problems.iter().map(ToString::to_string).collect();
            assert_eq!(
                problems.join("\n"),
                expected,
                "(env {env:?}, file {file:?})"
            );
        }
    }
}

/// Runs `check` for each `(variable, value, expected)`.
#[track_caller]
fn check_each(cases: &[(&str, &str, &str)]) {
    for (key, value, expected) in cases {
        check(&[(key, value)], None, expected);
    }
}

#[test]
fn defaults_when_unset() {
    check(
        &[],
        None,
        "temporal.address=localhost:7233 temporal.namespace=default temporal.task_queue=osp-queue \
         temporal.grpc_compression=none temporal.api_key=none temporal.tls=off \
         database.url=postgres://osp:[redacted]@localhost:5432/osp \
         database.listen_url=postgres://osp:[redacted]@localhost:5432/osp \
         supabase=none worker.manifest_path=none health.enabled=true health.port=8080 \
         log.format=json log.filter=info telemetry.otlp_endpoint=none",
    );
}

#[test]
fn temporal_address() {
    check_each(&[
        (
            "TEMPORAL_ADDRESS",
            "temporal.example.com:7233",
            "temporal.address=temporal.example.com:7233",
        ),
        (
            "TEMPORAL_ADDRESS",
            "  10.0.0.5:7233\n",
            "temporal.address=10.0.0.5:7233",
        ),
        (
            "TEMPORAL_ADDRESS",
            "[::1]:7233",
            "temporal.address=[::1]:7233",
        ),
        (
            "TEMPORAL_ADDRESS",
            "",
            "TEMPORAL_ADDRESS: is required (or set temporal.address in the OSP_CONFIG file)",
        ),
        (
            "TEMPORAL_ADDRESS",
            "localhost",
            "TEMPORAL_ADDRESS: is missing a port; expected host:port, such as localhost:7233 (got `localhost`)",
        ),
        (
            "TEMPORAL_ADDRESS",
            "localhost:",
            "TEMPORAL_ADDRESS: is missing a port; expected host:port, such as localhost:7233 (got `localhost:`)",
        ),
        (
            "TEMPORAL_ADDRESS",
            "[::1]",
            "TEMPORAL_ADDRESS: is missing a port; expected host:port, such as localhost:7233 (got `[::1]`)",
        ),
        (
            "TEMPORAL_ADDRESS",
            "localhost:abc",
            "TEMPORAL_ADDRESS: port is not a number (got `localhost:abc`)",
        ),
        (
            "TEMPORAL_ADDRESS",
            "localhost:-1",
            "TEMPORAL_ADDRESS: port is not a number (got `localhost:-1`)",
        ),
        (
            "TEMPORAL_ADDRESS",
            "localhost:0",
            "TEMPORAL_ADDRESS: port is out of range 1..=65535 (got `localhost:0`)",
        ),
        (
            "TEMPORAL_ADDRESS",
            "localhost:65536",
            "TEMPORAL_ADDRESS: port is out of range 1..=65535 (got `localhost:65536`)",
        ),
        (
            "TEMPORAL_ADDRESS",
            "localhost:99999999999999999999",
            "TEMPORAL_ADDRESS: port is out of range 1..=65535 (got `localhost:99999999999999999999`)",
        ),
        (
            "TEMPORAL_ADDRESS",
            ":7233",
            "TEMPORAL_ADDRESS: has no host (got `:7233`)",
        ),
        (
            "TEMPORAL_ADDRESS",
            "::1:7233",
            "TEMPORAL_ADDRESS: has an IPv6 address without brackets; write it as [::1]:7233 (got `::1:7233`)",
        ),
        (
            "TEMPORAL_ADDRESS",
            "http://localhost:7233",
            "TEMPORAL_ADDRESS: must be host:port without a scheme, such as localhost:7233 (got `http://localhost:7233`)",
        ),
        (
            "TEMPORAL_ADDRESS",
            "localhost:7233/x",
            "TEMPORAL_ADDRESS: must be host:port, such as localhost:7233 (got `localhost:7233/x`)",
        ),
        (
            "TEMPORAL_ADDRESS",
            "[::1:7233",
            "TEMPORAL_ADDRESS: has `[` without a closing `]` (got `[::1:7233`)",
        ),
    ]);
}

#[test]
fn host_port_keeps_ipv6_host_without_brackets() {
    let address: HostPort = "[::1]:7233".parse().unwrap();
    assert_eq!(
        address,
        HostPort {
            host: "::1".to_owned(),
            port: 7233
        }
    );
    assert_eq!(address.to_string(), "[::1]:7233");
    let address: HostPort = "ap-south-1.aws.api.temporal.io:7233".parse().unwrap();
    assert_eq!(address.host, "ap-south-1.aws.api.temporal.io");
    assert_eq!(address.port, 7233);
}

#[test]
fn temporal_namespace_and_task_queue() {
    let longest = "n".repeat(1000);
    let too_long = "n".repeat(1001);
    let too_long_message = format!(
        "TEMPORAL_NAMESPACE: is 1001 characters long; at most 1000 are allowed (got `{}…`)",
        "n".repeat(80)
    );
    check_each(&[
        (
            "TEMPORAL_NAMESPACE",
            "quickstart-osp.v5egj",
            "temporal.namespace=quickstart-osp.v5egj",
        ),
        (
            "TEMPORAL_NAMESPACE",
            &longest,
            &format!("temporal.namespace={longest}"),
        ),
        (
            "TEMPORAL_NAMESPACE",
            "my ns",
            "TEMPORAL_NAMESPACE: contains whitespace (got `my ns`)",
        ),
        ("TEMPORAL_NAMESPACE", &too_long, &too_long_message),
        (
            "TEMPORAL_TASK_QUEUE",
            "tenant-workflows",
            "temporal.task_queue=tenant-workflows",
        ),
        (
            "TEMPORAL_TASK_QUEUE",
            "a\tb",
            "TEMPORAL_TASK_QUEUE: contains whitespace (got `a\tb`)",
        ),
    ]);
    check(
        &[],
        Some("temporal.task_queue = \"\""),
        "temporal.task_queue in /etc/osp/osp.toml: is empty",
    );
}

#[test]
fn temporal_grpc_compression() {
    check_each(&[
        (
            "TEMPORAL_GRPC_COMPRESSION",
            "gzip",
            "temporal.grpc_compression=gzip",
        ),
        (
            "TEMPORAL_GRPC_COMPRESSION",
            "NONE",
            "temporal.grpc_compression=none",
        ),
        (
            "TEMPORAL_GRPC_COMPRESSION",
            "zstd",
            "TEMPORAL_GRPC_COMPRESSION: is not a gRPC compression; use none or gzip (got `zstd`)",
        ),
    ]);
}

#[test]
fn temporal_api_key_and_tls() {
    check_each(&[
        (
            "TEMPORAL_API_KEY",
            "eyJhbGciOi.key",
            "temporal.api_key=[redacted] temporal.tls=on",
        ),
        (
            "TEMPORAL_TLS",
            "true",
            "temporal.tls=on temporal.tls.client_cert=none temporal.tls.server_ca=system",
        ),
        ("TEMPORAL_TLS", "YES", "temporal.tls=on"),
        ("TEMPORAL_TLS", "On", "temporal.tls=on"),
        ("TEMPORAL_TLS", "1", "temporal.tls=on"),
        ("TEMPORAL_TLS", "false", "temporal.tls=off"),
        ("TEMPORAL_TLS", "no", "temporal.tls=off"),
        ("TEMPORAL_TLS", "OFF", "temporal.tls=off"),
        ("TEMPORAL_TLS", "0", "temporal.tls=off"),
        (
            "TEMPORAL_TLS",
            "maybe",
            "TEMPORAL_TLS: is not a boolean; use true/false, 1/0, yes/no or on/off (got `maybe`)",
        ),
        (
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
            "/tls/ca.pem",
            "temporal.tls=on temporal.tls.server_ca=custom temporal.tls.client_cert=none temporal.tls.client_key=none",
        ),
        (
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
            "/tls/missing.pem",
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH: cannot read `/tls/missing.pem`: entity not found",
        ),
        (
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
            "/denied/ca.pem",
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH: cannot read `/denied/ca.pem`: permission denied",
        ),
        (
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
            "/tls/notes.txt",
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH: `/tls/notes.txt` is not a PEM file (no -----BEGIN line)",
        ),
        (
            "TEMPORAL_TLS_CLIENT_CERT_PATH",
            "/tls/client.pem",
            "TEMPORAL_TLS_CLIENT_CERT_PATH: is set but TEMPORAL_TLS_CLIENT_KEY_PATH is not (a client certificate needs its key)",
        ),
        (
            "TEMPORAL_TLS_CLIENT_KEY_PATH",
            "/tls/client.key",
            "TEMPORAL_TLS_CLIENT_KEY_PATH: is set but TEMPORAL_TLS_CLIENT_CERT_PATH is not (a client key needs its certificate)",
        ),
    ]);
    check(
        &[
            ("TEMPORAL_TLS_CLIENT_CERT_PATH", "/tls/client.pem"),
            ("TEMPORAL_TLS_CLIENT_KEY_PATH", "/tls/client.key"),
        ],
        None,
        "temporal.tls=on temporal.tls.client_cert=set temporal.tls.client_key=[redacted] temporal.tls.server_ca=system",
    );
    check(
        &[("TEMPORAL_TLS", "false"), ("TEMPORAL_API_KEY", "k")],
        None,
        "TEMPORAL_TLS: is false but TEMPORAL_API_KEY is set (Temporal Cloud API keys need TLS)",
    );
    check(
        &[
            ("TEMPORAL_TLS", "false"),
            ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "/tls/ca.pem"),
        ],
        None,
        "TEMPORAL_TLS: is false but TEMPORAL_TLS_SERVER_CA_CERT_PATH is set (TLS files need TLS on)",
    );
    // A missing file and a missing partner are two problems, not one hiding the other.
    check(
        &[("TEMPORAL_TLS_CLIENT_CERT_PATH", "/tls/missing.pem")],
        None,
        "TEMPORAL_TLS_CLIENT_CERT_PATH: cannot read `/tls/missing.pem`: entity not found\n\
         TEMPORAL_TLS_CLIENT_CERT_PATH: is set but TEMPORAL_TLS_CLIENT_KEY_PATH is not (a client certificate needs its key)",
    );
}

#[test]
fn tls_files_are_read_into_the_settings() {
    let config = load_worker(
        &[
            ("TEMPORAL_API_KEY", "the-key"),
            ("TEMPORAL_TLS_CLIENT_CERT_PATH", "/tls/client.pem"),
            ("TEMPORAL_TLS_CLIENT_KEY_PATH", "/tls/client.key"),
            ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "/tls/ca.pem"),
        ],
        None,
    )
    .unwrap();
    let temporal = &config.temporal;
    assert_eq!(
        temporal.api_key.as_ref().map(Secret::expose),
        Some("the-key")
    );
    let tls = temporal.tls.as_ref().unwrap();
    assert_eq!(tls.client_cert_pem.as_deref(), Some(CERT));
    assert_eq!(tls.client_key_pem.as_ref().map(Secret::expose), Some(KEY));
    assert_eq!(tls.server_ca_cert_pem.as_deref(), Some(CA));
}

#[test]
fn database_urls() {
    check_each(&[
        (
            "DATABASE_URL",
            "postgres://postgres:s3cret@db:5432/postgres",
            "database.url=postgres://postgres:[redacted]@db:5432/postgres \
             database.listen_url=postgres://postgres:[redacted]@db:5432/postgres",
        ),
        (
            "DATABASE_URL",
            "postgresql://db.example.supabase.co/postgres?sslmode=require",
            "database.url=postgresql://db.example.supabase.co/postgres?sslmode=require",
        ),
        (
            "DATABASE_URL",
            "postgres://app@db/osp?sslmode=require&password=s3cret",
            "database.url=postgres://app@db/osp?sslmode=require&password=[redacted]",
        ),
        (
            "DATABASE_URL",
            "postgres://u:p@h1:5432,h2:5433/db",
            "database.url=postgres://u:[redacted]@h1:5432,h2:5433/db",
        ),
        (
            "DATABASE_URL",
            "POSTGRES://[::1]:5432/db",
            "database.url=POSTGRES://[::1]:5432/db",
        ),
        (
            "DATABASE_URL",
            "",
            "DATABASE_URL: is required (or set SUPABASE_DB_URL, or database.url in the OSP_CONFIG file)",
        ),
        (
            "DATABASE_URL",
            "mysql://u:p@db/x",
            "DATABASE_URL: must be a postgres:// or postgresql:// URL",
        ),
        (
            "DATABASE_URL",
            "host=db user=postgres",
            "DATABASE_URL: must be a postgres:// or postgresql:// URL",
        ),
        (
            "DATABASE_URL",
            "postgres://u:p@/db",
            "DATABASE_URL: has no host",
        ),
        (
            "DATABASE_URL",
            "postgres:///db?host=/run/postgresql",
            "DATABASE_URL: has no host",
        ),
        (
            "DATABASE_URL",
            "postgres://u:p@db:abc/x",
            "DATABASE_URL: port is not a number",
        ),
        (
            "DATABASE_URL",
            "postgres://u:p@db:0/x",
            "DATABASE_URL: port is out of range 1..=65535",
        ),
        (
            "DATABASE_URL",
            "postgres://u:p@db:70000/x",
            "DATABASE_URL: port is out of range 1..=65535",
        ),
        (
            "DATABASE_URL",
            "postgres://u:p@ss/w@db/x",
            "DATABASE_URL: has `@` after the host; percent-encode special characters in the password (`@` as %40, `/` as %2F)",
        ),
        (
            "LISTEN_DATABASE_URL",
            "postgres://postgres:pw@db.direct:5432/postgres",
            "database.url=postgres://osp:[redacted]@localhost:5432/osp \
             database.listen_url=postgres://postgres:[redacted]@db.direct:5432/postgres",
        ),
        (
            "LISTEN_DATABASE_URL",
            "postgres://u:p@",
            "LISTEN_DATABASE_URL: has no host",
        ),
        (
            "LISTEN_DATABASE_URL",
            "https://db",
            "LISTEN_DATABASE_URL: must be a postgres:// or postgresql:// URL",
        ),
    ]);
    check(
        &[
            ("DATABASE_URL", ""),
            ("SUPABASE_DB_URL", "postgres://alias@db/x"),
        ],
        None,
        "database.url=postgres://alias@db/x database.listen_url=postgres://alias@db/x",
    );
    check(
        &[("DATABASE_URL", ""), ("SUPABASE_DB_URL", "mysql://db")],
        None,
        "SUPABASE_DB_URL: must be a postgres:// or postgresql:// URL",
    );
}

#[test]
fn database_url_exposes_the_full_url() {
    let url: DatabaseUrl = "postgres://postgres:pw@db:5432/postgres".parse().unwrap();
    assert_eq!(url.expose(), "postgres://postgres:pw@db:5432/postgres");
    assert_eq!(
        url.to_string(),
        "postgres://postgres:[redacted]@db:5432/postgres"
    );
    assert_eq!(
        format!("{url:?}"),
        "postgres://postgres:[redacted]@db:5432/postgres"
    );
}

#[test]
fn supabase() {
    check_each(&[
        (
            "SUPABASE_URL",
            "https://x.supabase.co",
            "SUPABASE_SERVICE_ROLE_KEY: is required when SUPABASE_URL is set",
        ),
        (
            "PUBLIC_SUPABASE_URL",
            "https://x.supabase.co",
            "SUPABASE_SERVICE_ROLE_KEY: is required when PUBLIC_SUPABASE_URL is set",
        ),
        (
            "SUPABASE_SERVICE_ROLE_KEY",
            "role",
            "SUPABASE_URL: is required when SUPABASE_SERVICE_ROLE_KEY is set",
        ),
    ]);
    let key = ("SUPABASE_SERVICE_ROLE_KEY", "role");
    check(
        &[("SUPABASE_URL", "https://x.supabase.co"), key],
        None,
        "supabase.url=https://x.supabase.co supabase.service_role_key=[redacted]",
    );
    check(
        &[("SUPABASE_URL", "http://localhost:54321"), key],
        None,
        "supabase.url=http://localhost:54321",
    );
    check(
        &[("SUPABASE_URL", "x.supabase.co"), key],
        None,
        "SUPABASE_URL: must be an http:// or https:// URL (got `x.supabase.co`)",
    );
    check(
        &[("SUPABASE_URL", "https://"), key],
        None,
        "SUPABASE_URL: has no host (got `https://`)",
    );
    check(
        &[("SUPABASE_URL", "https://x:99999"), key],
        None,
        "SUPABASE_URL: port is out of range 1..=65535 (got `https://x:99999`)",
    );
    // An invalid URL without its key is two problems.
    check(
        &[("SUPABASE_URL", "ftp://x")],
        None,
        "SUPABASE_URL: must be an http:// or https:// URL (got `ftp://x`)\n\
         SUPABASE_SERVICE_ROLE_KEY: is required when SUPABASE_URL is set",
    );
    let config = load_worker(&[("SUPABASE_URL", "https://x.supabase.co"), key], None).unwrap();
    assert_eq!(config.supabase.unwrap().service_role_key.expose(), "role");
}

#[test]
fn manifest_health_log_telemetry() {
    check_each(&[
        (
            "MANIFEST_PATH",
            "manifests/healthcare_service_123.json",
            "worker.manifest_path=manifests/healthcare_service_123.json",
        ),
        ("ENABLE_HEALTH_CHECK", "off", "health.enabled=false"),
        ("ENABLE_HEALTH_CHECK", "TRUE", "health.enabled=true"),
        (
            "ENABLE_HEALTH_CHECK",
            "enabled",
            "ENABLE_HEALTH_CHECK: is not a boolean; use true/false, 1/0, yes/no or on/off (got `enabled`)",
        ),
        ("HEALTH_CHECK_PORT", "9090", "health.port=9090"),
        (
            "HEALTH_CHECK_PORT",
            "abc",
            "HEALTH_CHECK_PORT: is not a number (got `abc`)",
        ),
        (
            "HEALTH_CHECK_PORT",
            "0",
            "HEALTH_CHECK_PORT: is out of range 1..=65535 (got `0`)",
        ),
        (
            "HEALTH_CHECK_PORT",
            "65536",
            "HEALTH_CHECK_PORT: is out of range 1..=65535 (got `65536`)",
        ),
        ("LOG_FORMAT", "text", "log.format=text"),
        ("LOG_FORMAT", "JSON", "log.format=json"),
        (
            "LOG_FORMAT",
            "xml",
            "LOG_FORMAT: is not a log format; use json or text (got `xml`)",
        ),
        (
            "RUST_LOG",
            "info,osp_worker=debug",
            "log.filter=info,osp_worker=debug",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://otel-collector:4317",
            "telemetry.otlp_endpoint=http://otel-collector:4317",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://otlp.example.com/v1",
            "telemetry.otlp_endpoint=https://otlp.example.com/v1",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "otel-collector:4317",
            "OTEL_EXPORTER_OTLP_ENDPOINT: must be an http:// or https:// URL (got `otel-collector:4317`)",
        ),
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "http://:4317",
            "OTEL_EXPORTER_OTLP_ENDPOINT: has no host (got `http://:4317`)",
        ),
    ]);
    check(
        &[],
        Some("[log]\nfilter = \" \""),
        "log.filter in /etc/osp/osp.toml: is empty",
    );
    check(
        &[],
        Some("worker.manifest_path = \"\""),
        "worker.manifest_path in /etc/osp/osp.toml: is empty",
    );
}

#[test]
fn layers_default_then_file_then_env() {
    let file = "[temporal]\nnamespace = \"from-file\"\n[health]\nport = 9000\nenabled = false\n";
    check(
        &[],
        Some(file),
        "temporal.namespace=from-file health.port=9000 health.enabled=false",
    );
    check(
        &[
            ("TEMPORAL_NAMESPACE", "from-env"),
            ("HEALTH_CHECK_PORT", "9100"),
        ],
        Some(file),
        "temporal.namespace=from-env health.port=9100 health.enabled=false",
    );
    // An empty environment value does not hide the file's.
    check(
        &[("TEMPORAL_NAMESPACE", "")],
        Some(file),
        "temporal.namespace=from-file",
    );
    // Problems with file values name the TOML key and the file.
    check(
        &[("TEMPORAL_ADDRESS", "")],
        Some("temporal.address = \"nohost\""),
        "temporal.address in /etc/osp/osp.toml: is missing a port; expected host:port, such as localhost:7233 (got `nohost`)",
    );
    check(
        &[],
        Some("health.port = 80.5\ntemporal.tls.enabled = [true]"),
        "temporal.tls.enabled in /etc/osp/osp.toml: must be a string, integer or boolean, not array\n\
         health.port in /etc/osp/osp.toml: must be a string, integer or boolean, not float",
    );
    // The environment overrides a bad file value without complaint.
    check(
        &[("HEALTH_CHECK_PORT", "8081")],
        Some("health.port = 80.5"),
        "health.port=8081",
    );
}

#[test]
fn file_alone_configures_everything() {
    let file = r#"
[temporal]
address = "temporal-frontend.temporal.svc.cluster.local:7233"
namespace = "osp"
api_key = "k"
task_queue = "tenant-workflows"
grpc_compression = "gzip"

[temporal.tls]
enabled = true
server_ca_cert_path = "/tls/ca.pem"

[database]
url = "postgres://postgres:pw@pooler:6543/postgres"
listen_url = "postgres://postgres:pw@db:5432/postgres"

[supabase]
url = "https://x.supabase.co"
service_role_key = "role"

[worker]
manifest_path = "/manifests/worker.json"

[health]
enabled = true
port = 9090

[log]
format = "text"
filter = "debug"

[telemetry]
otlp_endpoint = "http://otel:4317"
"#;
    let env = [(OSP_CONFIG, CONFIG_FILE)];
    let mut files = FILES.to_vec();
    files.push((CONFIG_FILE, file));
    let config = load_exact(&env, &files, WorkerConfig::load).unwrap();
    assert_eq!(
        config.to_string(),
        "temporal.address=temporal-frontend.temporal.svc.cluster.local:7233 temporal.namespace=osp \
         temporal.task_queue=tenant-workflows temporal.grpc_compression=gzip temporal.api_key=[redacted] \
         temporal.tls=on temporal.tls.client_cert=none temporal.tls.client_key=none temporal.tls.server_ca=custom \
         database.url=postgres://postgres:[redacted]@pooler:6543/postgres \
         database.listen_url=postgres://postgres:[redacted]@db:5432/postgres \
         supabase.url=https://x.supabase.co supabase.service_role_key=[redacted] \
         worker.manifest_path=/manifests/worker.json worker.max_concurrent_workflow_tasks=10 \
         worker.max_concurrent_activities=10 worker.workflow_task_pollers=sdk \
         worker.activity_task_pollers=sdk worker.max_cached_workflows=1000 \
         worker.runtime_threads=1 worker.shutdown_grace_seconds=30 \
         worker.database_pool_size=10 worker.registry_heartbeat_seconds=15 \
         worker.manifest_dir=manifests worker.deployer_command=none dns.provider=log \
         dns.zone=localhost email.provider=log health.enabled=true health.port=9090 \
         log.format=text log.filter=debug telemetry.otlp_endpoint=http://otel:4317"
    );
}

#[test]
fn aliases() {
    let primary = ("DATABASE_URL", "postgres://primary@db/x");
    let alias = ("SUPABASE_DB_URL", "postgres://alias@db/x");
    check(
        &[primary, alias],
        None,
        "database.url=postgres://primary@db/x",
    );
    check(
        &[("DATABASE_URL", ""), alias],
        None,
        "database.url=postgres://alias@db/x",
    );
    // The alias is an environment name, so it beats the file.
    check(
        &[("DATABASE_URL", ""), alias],
        Some("database.url = \"postgres://file@db/x\""),
        "database.url=postgres://alias@db/x",
    );
    let key = ("SUPABASE_SERVICE_ROLE_KEY", "role");
    check(
        &[
            ("SUPABASE_URL", "https://primary.supabase.co"),
            ("PUBLIC_SUPABASE_URL", "https://alias.supabase.co"),
            key,
        ],
        None,
        "supabase.url=https://primary.supabase.co",
    );
    check(
        &[("PUBLIC_SUPABASE_URL", "https://alias.supabase.co"), key],
        None,
        "supabase.url=https://alias.supabase.co",
    );
    // An invalid primary is reported even when the alias is fine: the primary wins.
    check(
        &[
            ("SUPABASE_URL", "nope"),
            ("PUBLIC_SUPABASE_URL", "https://alias.supabase.co"),
            key,
        ],
        None,
        "SUPABASE_URL: must be an http:// or https:// URL (got `nope`)",
    );
}

#[test]
fn unknown_and_misplaced_file_keys() {
    check(
        &[],
        Some("[temporal]\nadress = \"x:1\"\n[tempral]\nnamespace = \"n\"\n[foo]\nbar = 1"),
        "foo in /etc/osp/osp.toml: unknown key\n\
         temporal.adress in /etc/osp/osp.toml: unknown key (did you mean `temporal.address`?)\n\
         tempral in /etc/osp/osp.toml: unknown key",
    );
    check(
        &[],
        Some("TEMPORAL_ADDRESS = \"x:1\"\nsupabase_db_url = \"postgres://db\""),
        "TEMPORAL_ADDRESS in /etc/osp/osp.toml: unknown key (did you mean `temporal.address`?)\n\
         supabase_db_url in /etc/osp/osp.toml: unknown key (did you mean `database.url`?)",
    );
    check(
        &[],
        Some("temporal = \"x:1\""),
        "temporal in /etc/osp/osp.toml: must be a table, not string",
    );
    check(
        &[],
        Some("[temporal.tls]\nenable = true"),
        "temporal.tls.enable in /etc/osp/osp.toml: unknown key (did you mean `temporal.tls.enabled`?)",
    );
}

#[test]
fn malformed_file() {
    check(
        &[],
        Some("[temporal]\nnamespace = \"osp\"\naddress = \"x:1\n"),
        "OSP_CONFIG: `/etc/osp/osp.toml` is not valid TOML at line 3, column 15: invalid basic string, expected `\"`",
    );
    check(
        &[],
        Some("[temporal]\nnamespace = \"a\"\nnamespace = \"b\"\n"),
        "OSP_CONFIG: `/etc/osp/osp.toml` is not valid TOML at line 3, column 1: duplicate key",
    );
    // The other problems are still reported.
    check(
        &[("TEMPORAL_ADDRESS", "")],
        Some("[temporal]\nnamespace = osp\n"),
        "OSP_CONFIG: `/etc/osp/osp.toml` is not valid TOML at line 2, column 13: string values must be quoted, expected literal string\n\
         TEMPORAL_ADDRESS: is required (or set temporal.address in the OSP_CONFIG file)",
    );
}

#[test]
fn unreadable_file() {
    check(
        &[
            (OSP_CONFIG, "/etc/osp/missing.toml"),
            ("TEMPORAL_ADDRESS", ""),
        ],
        None,
        "OSP_CONFIG: cannot read `/etc/osp/missing.toml`: entity not found\n\
         TEMPORAL_ADDRESS: is required (or set temporal.address in the OSP_CONFIG file)",
    );
    check(
        &[(OSP_CONFIG, "/denied/osp.toml")],
        None,
        "OSP_CONFIG: cannot read `/denied/osp.toml`: permission denied",
    );
}

#[test]
fn all_problems_at_once() {
    let err = load_worker(
        &[
            ("TEMPORAL_ADDRESS", ""),
            ("HEALTH_CHECK_PORT", "80a"),
            ("LOG_FORMAT", "yaml"),
            ("TEMPORAL_TLS_CLIENT_CERT_PATH", "/tls/client.pem"),
            ("DATABASE_URL", ""),
        ],
        None,
    )
    .unwrap_err();
    // Copied into docs/configuration.md.
    assert_eq!(
        err.to_string(),
        "invalid configuration (5 problems):
  - TEMPORAL_ADDRESS: is required (or set temporal.address in the OSP_CONFIG file)
  - TEMPORAL_TLS_CLIENT_CERT_PATH: is set but TEMPORAL_TLS_CLIENT_KEY_PATH is not (a client certificate needs its key)
  - DATABASE_URL: is required (or set SUPABASE_DB_URL, or database.url in the OSP_CONFIG file)
  - HEALTH_CHECK_PORT: is not a number (got `80a`)
  - LOG_FORMAT: is not a log format; use json or text (got `yaml`)"
    );
    let one = load_worker(&[("LOG_FORMAT", "yaml")], None).unwrap_err();
    assert_eq!(
        one.to_string(),
        "invalid configuration (1 problem):\n  - LOG_FORMAT: is not a log format; use json or text (got `yaml`)"
    );
}

#[test]
fn programs_read_only_what_they_need() {
    // Migration needs only the database: Temporal and health problems do not stop it.
    let env = [
        ("DATABASE_URL", "postgres://u:p@db/x"),
        ("HEALTH_CHECK_PORT", "nope"),
        ("LOG_FORMAT", "text"),
    ];
    let migrate = load_exact(&env, &[], MigrateConfig::load).unwrap();
    assert_eq!(
        migrate.to_string(),
        "database.url=postgres://u:[redacted]@db/x database.listen_url=postgres://u:[redacted]@db/x \
         log.format=text log.filter=info"
    );
    let err = load_exact(&[], &[], MigrateConfig::load).unwrap_err();
    assert_eq!(err.problems.len(), 1);
    assert_eq!(err.problems[0].key, "DATABASE_URL");

    // The bridge has no manifest, and a bad one does not concern it.
    let env = [
        ("TEMPORAL_ADDRESS", "t:7233"),
        ("DATABASE_URL", "postgres://db"),
        ("MANIFEST_PATH", ""),
    ];
    let bridge = load_exact(&env, &[], BridgeConfig::load).unwrap();
    assert_eq!(
        bridge.to_string(),
        "temporal.address=t:7233 temporal.namespace=default temporal.task_queue=osp-queue \
         temporal.grpc_compression=none temporal.api_key=none temporal.tls=off database.url=postgres://db database.listen_url=postgres://db \
         supabase=none health.enabled=true health.port=8080 log.format=json log.filter=info \
         telemetry.otlp_endpoint=none bridge.id=osp-bridge bridge.batch_size=100 \
         bridge.max_in_flight=32 bridge.lease_seconds=60 bridge.max_attempts=10 \
         bridge.retry_initial_ms=1000 bridge.retry_max_ms=60000 bridge.sweep_interval_ms=15000 \
         bridge.fallback_sweep_interval_ms=1000 bridge.max_payload_bytes=262144 \
         bridge.runtime_threads=1 bridge.realtime=false database.pool_size=4 \
         shutdown.grace_seconds=30"
    );
    let err = load_exact(&[], &[], BridgeConfig::load).unwrap_err();
    let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["TEMPORAL_ADDRESS", "DATABASE_URL"]);

    // A worker-only key in the shared file is not an unknown key for the bridge.
    let env = [
        (OSP_CONFIG, CONFIG_FILE),
        ("TEMPORAL_ADDRESS", "t:7233"),
        ("DATABASE_URL", "postgres://db"),
    ];
    let files = [(CONFIG_FILE, "[worker]\nmanifest_path = \"/m.json\"")];
    load_exact(&env, &files, BridgeConfig::load).unwrap();
}

#[test]
fn strings_from_a_btree_map() {
    let env: BTreeMap<String, String> = [
        ("TEMPORAL_ADDRESS", "t:7233"),
        ("DATABASE_URL", "postgres://db"),
    ]
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .into();
    let read = |_: &Path| -> io::Result<String> { Err(io::ErrorKind::NotFound.into()) };
    let sources = Sources {
        env: &env,
        read_file: &read,
    };
    assert_eq!(format!("{sources:?}"), "Sources { .. }");
    assert_eq!(
        WorkerConfig::load(&sources).unwrap().temporal.address.port,
        7233
    );
}

#[test]
fn keys_are_unique_and_complete() {
    let mut names: Vec<&str> = KEYS
        .iter()
        .flat_map(|k| std::iter::once(k.env).chain(k.aliases.iter().copied()))
        .collect();
    let mut files: Vec<&str> = KEYS.iter().map(|k| k.file).collect();
    let count = (names.len(), files.len());
    names.sort_unstable();
    names.dedup();
    files.sort_unstable();
    files.dedup();
    assert_eq!((names.len(), files.len()), count);
    assert_eq!(KEYS.len(), 19 + WORKER_KEYS.len() + BRIDGE_KEYS.len());
    let secret: Vec<&str> = KEYS.iter().filter(|k| k.secret).map(|k| k.env).collect();
    assert_eq!(
        secret,
        [
            "TEMPORAL_API_KEY",
            "DATABASE_URL",
            "LISTEN_DATABASE_URL",
            "SUPABASE_SERVICE_ROLE_KEY",
            "CLOUDFLARE_API_TOKEN",
            "SMTP_PASSWORD",
        ]
    );
}

/// Distinctive values that must never be shown.
const SENTINELS: &[&str] = &[
    "SENTINEL-API",
    "SENTINEL-ROLE",
    "SENTINEL-DBPW",
    "SENTINEL-LISTENPW",
    "SENTINEL-QUERYPW",
    "SENTINEL-KEYFILE",
    "SENTINEL-TOML",
];

#[track_caller]
fn assert_hidden(what: &str, shown: &str) {
    for sentinel in SENTINELS {
        assert!(
            !shown.contains(sentinel),
            "{what} shows {sentinel}:\n{shown}"
        );
    }
}

/// Both `Debug` and `Display` of `value`.
fn shown<T: fmt::Debug + fmt::Display>(value: &T) -> String {
    format!("{value:?}\n{value}")
}

/// Whatever loading gave, error or configuration, shows no secret.
#[track_caller]
fn assert_result_hidden<C: fmt::Debug + fmt::Display>(result: Result<C, ConfigError>) {
    match result {
        Ok(config) => assert_hidden("config", &shown(&config)),
        Err(err) => assert_hidden("error", &shown(&err)),
    }
}

#[test]
fn secrets_never_shown() {
    let key_pem = "-----BEGIN PRIVATE KEY-----\nSENTINEL-KEYFILE\n-----END PRIVATE KEY-----\n";
    let mut files = FILES.to_vec();
    files.push(("/tls/sentinel.key", key_pem));
    files.push(("/tls/sentinel-not-pem.key", "SENTINEL-KEYFILE"));
    let valid = [
        ("TEMPORAL_ADDRESS", "t:7233"),
        ("TEMPORAL_API_KEY", "SENTINEL-API"),
        ("TEMPORAL_TLS_CLIENT_CERT_PATH", "/tls/client.pem"),
        ("TEMPORAL_TLS_CLIENT_KEY_PATH", "/tls/sentinel.key"),
        ("SUPABASE_URL", "https://x.supabase.co"),
        ("SUPABASE_SERVICE_ROLE_KEY", "SENTINEL-ROLE"),
        (
            "DATABASE_URL",
            "postgres://postgres:SENTINEL-DBPW@db:5432/postgres",
        ),
        (
            "LISTEN_DATABASE_URL",
            "postgres://postgres:SENTINEL-LISTENPW@db:5432/postgres?password=SENTINEL-QUERYPW",
        ),
    ];

    let worker = load_exact(&valid, &files, WorkerConfig::load).unwrap();
    // The values are there, only hidden.
    assert_eq!(
        worker.temporal.api_key.as_ref().unwrap().expose(),
        "SENTINEL-API"
    );
    assert!(
        worker
            .database
            .listen_url
            .expose()
            .contains("SENTINEL-QUERYPW")
    );
    assert!(
        worker
            .temporal
            .tls
            .as_ref()
            .unwrap()
            .client_key_pem
            .as_ref()
            .unwrap()
            .expose()
            .contains("SENTINEL-KEYFILE")
    );
    assert_hidden("worker", &shown(&worker));
    assert_hidden("temporal", &shown(&worker.temporal));
    assert_hidden("tls", &shown(worker.temporal.tls.as_ref().unwrap()));
    assert_hidden("database", &shown(&worker.database));
    assert_hidden("supabase", &shown(worker.supabase.as_ref().unwrap()));
    assert_hidden("health", &shown(&worker.health));
    assert_hidden("log", &shown(&worker.log));
    assert_hidden("telemetry", &shown(&worker.telemetry));
    assert_hidden(
        "bridge",
        &shown(&load_exact(&valid, &files, BridgeConfig::load).unwrap()),
    );
    assert_hidden(
        "migrate",
        &shown(&load_exact(&valid, &files, MigrateConfig::load).unwrap()),
    );

    // Invalid environments: each secret is wrong in a way whose message could quote it.
    let invalid: &[&[(&str, &str)]] = &[
        &[
            ("TEMPORAL_TLS", "false"),
            ("TEMPORAL_API_KEY", "SENTINEL-API"),
            ("SUPABASE_SERVICE_ROLE_KEY", "SENTINEL-ROLE"),
        ],
        &[
            ("DATABASE_URL", "mysql://u:SENTINEL-DBPW@db/x"),
            ("LISTEN_DATABASE_URL", "postgres://u:SENTINEL-LISTENPW@/x"),
        ],
        &[
            ("DATABASE_URL", "postgres://u:SENTINEL-DBPW"),
            (
                "LISTEN_DATABASE_URL",
                "postgres://u:p@db:SENTINEL-LISTENPW/x",
            ),
        ],
        &[
            ("DATABASE_URL", "postgres://u:SENTINEL/DBPW@db/x"),
            (
                "LISTEN_DATABASE_URL",
                "postgres://u:1?SENTINEL-LISTENPW@db/x",
            ),
        ],
        &[(
            "DATABASE_URL",
            "postgres://u:p@db:0/x?password=SENTINEL-QUERYPW",
        )],
        &[
            ("DATABASE_URL", "SENTINEL-DBPW"),
            ("SUPABASE_DB_URL", "SENTINEL-DBPW"),
        ],
        &[
            ("TEMPORAL_TLS_CLIENT_CERT_PATH", "/tls/client.pem"),
            ("TEMPORAL_TLS_CLIENT_KEY_PATH", "/tls/sentinel-not-pem.key"),
        ],
        &[("TEMPORAL_TLS_CLIENT_KEY_PATH", "/tls/sentinel.key")],
    ];
    for env in invalid {
        let env = test_env(env, None);
        let err = load_exact(&env, &files, WorkerConfig::load).unwrap_err();
        assert_hidden("worker error", &shown(&err));
        assert_result_hidden(load_exact(&env, &files, BridgeConfig::load));
        assert_result_hidden(load_exact(&env, &files, MigrateConfig::load));
    }

    // Secrets in the file: invalid values, values of the wrong type, a malformed line.
    let bad_files = [
        "[database]\nurl = \"mysql://u:SENTINEL-TOML@db\"\nlisten_url = \"postgres://u:SENTINEL-TOML@db:x/y\"",
        "[temporal]\napi_key = [\"SENTINEL-TOML\"]\n[supabase]\nservice_role_key = { v = \"SENTINEL-TOML\" }",
        "[database]\nurl = \"postgres://u:SENTINEL-TOML@db/x\nlisten_url = \"x\"",
        "[temporal]\napi_key = SENTINEL-TOML\n",
        "[temporal]\napi_key = \"SENTINEL-TOML\\q\"\n",
        "[temporal]\napi_key = 'SENTINEL-TOML\n",
        "[temporal]\napi_key = \"\"\"SENTINEL-TOML",
        "[temporal]\napi_key = \"a\"\napi_key = \"SENTINEL-TOML\"\n",
        "[temporal]\napi_key = \"SENTINEL-TOML\" x\n",
        "[SENTINEL-TOML\n",
    ];
    for text in bad_files {
        let env = [
            (OSP_CONFIG, CONFIG_FILE),
            ("DATABASE_URL", ""),
            ("TEMPORAL_ADDRESS", "t:1"),
        ];
        let mut files = files.clone();
        files.push((CONFIG_FILE, text));
        let err = load_exact(&env, &files, WorkerConfig::load).unwrap_err();
        assert_hidden(text, &shown(&err));
    }
}

#[test]
fn secret_and_sources_debug() {
    let secret = Secret::new("SENTINEL-API");
    assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
    assert_eq!(secret.expose(), "SENTINEL-API");
}

const DOCS: &str = include_str!("../../../docs/configuration.md");

#[test]
fn docs_list_every_key_and_their_example_file_loads() {
    for key in KEYS {
        for name in std::iter::once(&key.env).chain(key.aliases) {
            assert!(
                DOCS.contains(&format!("`{name}`")),
                "docs/configuration.md misses {name}"
            );
        }
        assert!(
            DOCS.contains(&format!("`{}`", key.file)),
            "docs/configuration.md misses {}",
            key.file
        );
    }
    let example = DOCS
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .unwrap();
    let env = [(OSP_CONFIG, CONFIG_FILE)];
    let config = load_exact(&env, &[(CONFIG_FILE, example)], WorkerConfig::load).unwrap();
    assert_eq!(config.temporal.namespace, "quickstart-osp.v5egj");
    assert!(config.temporal.tls.is_some());
}

#[test]
fn point_11_url_credentials_never_reach_the_configuration_line_or_its_problems() {
    const PASSWORD: &str = "hunter2";
    let key = ("SUPABASE_SERVICE_ROLE_KEY", "role");
    let env = [
        ("SUPABASE_URL", "https://osp:hunter2@x.supabase.co"),
        key,
        (
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "https://collector:hunter2@otel:4317",
        ),
        ("DNS_PROVIDER", "cloudflare"),
        ("DNS_ZONE", "example.com"),
        ("DNS_TARGET", "lb.example.com"),
        ("CLOUDFLARE_ZONE_ID", "zone"),
        ("CLOUDFLARE_API_TOKEN", "token"),
        (
            "CLOUDFLARE_API_URL",
            "https://cf:hunter2@cloudflare.test/client/v4",
        ),
    ];
    let shown = load_worker(&env, None).unwrap().to_string();
    assert!(!shown.contains(PASSWORD), "{shown}");
    for want in [
        "supabase.url=https://osp:[redacted]@x.supabase.co",
        "telemetry.otlp_endpoint=https://collector:[redacted]@otel:4317",
        "dns.cloudflare_api_url=https://cf:[redacted]@cloudflare.test/client/v4",
    ] {
        assert!(
            shown.split(' ').any(|field| field == want),
            "missing `{want}` in {shown}"
        );
    }
    // A URL that is otherwise wrong is quoted in the problem, without its password.
    let problems = load_worker(
        &[("SUPABASE_URL", "https://osp:hunter2@x:99999"), key],
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(!problems.contains(PASSWORD), "{problems}");
    assert!(problems.contains("osp:[redacted]@x:99999"), "{problems}");
    // The bridge's line too.
    let shown = load_exact(&test_env(&env[..2], None), &[], BridgeConfig::load)
        .unwrap()
        .to_string();
    assert!(!shown.contains(PASSWORD), "{shown}");
}
