//! A throwaway nginx terminating TLS in front of a plaintext gRPC server (the Temporal dev
//! server speaks no TLS), so that TLS, mTLS and API-key connections to Temporal are exercised
//! against an independent implementation: nginx's TLS, client-certificate checks and its
//! `grpc_pass`, configured like a Temporal Cloud endpoint that wants `authorization: Bearer`.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::process::{self, Launch, PortPlan, ServerProcess, StopSignal, TempDir};
use super::{ProbeError, StackError, binaries};

/// How long a started nginx gets to listen.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// What the proxy demands of its clients.
#[derive(Debug, Clone)]
pub struct TlsProxyOptions {
    /// The server certificate chain (PEM) it presents.
    pub certificate: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// When set, clients must present a certificate signed by this CA (PEM): mTLS.
    pub client_ca: Option<PathBuf>,
    /// When set, every request must carry `authorization: Bearer <this>` (else HTTP 401,
    /// which gRPC clients report as `Unauthenticated`).
    pub bearer_token: Option<String>,
}

/// A running nginx on 127.0.0.1 forwarding gRPC over TLS to a plaintext upstream.
pub struct TlsGrpcProxy {
    /// Declared before `dir` so it stops before the dir is removed.
    process: Option<ServerProcess>,
    port: u16,
    dir: TempDir,
}

impl fmt::Debug for TlsGrpcProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsGrpcProxy")
            .field("port", &self.port)
            .field("root_dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl TlsGrpcProxy {
    /// Starts nginx on a free port, forwarding to `upstream` (`host:port`, plaintext gRPC).
    pub async fn start(upstream: &str, options: &TlsProxyOptions) -> Result<Self, StackError> {
        let binary = binaries::nginx_binary()?;
        let dir = TempDir::create("nginx")?;
        for name in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"] {
            std::fs::create_dir_all(dir.path().join(name)).map_err(|error| {
                StackError::io(format!("creating nginx's {name} directory"), error)
            })?;
        }
        let mut proxy = TlsGrpcProxy {
            process: None,
            port: 0,
            dir,
        };
        let log = proxy.log_path();
        let launch = Launch {
            what: "nginx",
            log: &log,
            plan: PortPlan::Fresh,
            deadline: READY_DEADLINE,
            other_ports: false,
        };
        let server = process::launch(launch, |port| {
            if let Some(port) = port {
                proxy.port = port;
            }
            let config = proxy.dir.path().join("nginx.conf");
            let text = config_text(proxy.port, proxy.dir.path(), upstream, options);
            std::fs::write(&config, text)
                .map_err(|error| StackError::io(format!("writing {}", config.display()), error))?;
            // As the calling user: a high port and files of the test's own, nothing that
            // needs dropping privileges (unlike Postgres, which refuses to run as root).
            let mut command = process::command(&binary, proxy.dir.path(), false);
            command
                .arg("-p")
                .arg(proxy.dir.path())
                .arg("-c")
                .arg(&config)
                .arg("-e")
                .arg(&log);
            let server = ServerProcess::spawn("nginx", command, &log, StopSignal::Terminate)?;
            // Listening is the readiness: `launch` checks that nginx holds the port itself.
            Ok((server, proxy.port, || async { Ok::<(), ProbeError>(()) }))
        })
        .await?;
        proxy.process = Some(server);
        Ok(proxy)
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its error log (TLS handshake failures, refused requests).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("error.log")
    }
}

impl Drop for TlsGrpcProxy {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take()
            && let Err(error) = process.stop_blocking()
        {
            tracing::warn!(%error, "stopping the testkit nginx on drop");
        }
    }
}

fn config_text(port: u16, dir: &Path, upstream: &str, options: &TlsProxyOptions) -> String {
    // nginx's own refusals are HTML pages a gRPC client cannot read; like Temporal Cloud,
    // answer with a gRPC status instead (16, UNAUTHENTICATED), from the named locations below.
    let client_ca = options.client_ca.as_ref().map_or(String::new(), |ca| {
        format!(
            "ssl_client_certificate {};\n        ssl_verify_client on;\n        \
             error_page 495 496 = @no_client_certificate;",
            ca.display()
        )
    });
    // The token goes into the config file in a temp dir of the test's own, never a log.
    let bearer = options
        .bearer_token
        .as_ref()
        .map_or(String::new(), |token| {
            format!("if ($http_authorization != \"Bearer {token}\") {{ return 418; }}")
        });
    format!(
        "\
# One process in the foreground, everything under {dir}.
daemon off;
master_process off;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {certificate};
        ssl_certificate_key {key};
        {client_ca}
        location @unauthenticated {{
            default_type application/grpc;
            add_header grpc-status 16 always;
            add_header grpc-message \"missing or invalid API key\" always;
            return 204;
        }}
        location @no_client_certificate {{
            default_type application/grpc;
            add_header grpc-status 16 always;
            add_header grpc-message \"a valid client certificate is required\" always;
            return 204;
        }}
        location / {{
            error_page 418 = @unauthenticated;
            {bearer}
            # Workers long-poll for about a minute; nginx's default of 60 s would cut them.
            grpc_read_timeout 300s;
            grpc_send_timeout 300s;
            grpc_pass grpc://{upstream};
        }}
    }}
}}
",
        dir = dir.display(),
        certificate = options.certificate.display(),
        key = options.key.display(),
    )
}
