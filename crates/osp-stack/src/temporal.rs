//! A throwaway Temporal dev server (`temporal server start-dev`, in-memory persistence) on
//! free ports, stopped and removed when dropped.

use std::path::{Path, PathBuf};
use std::time::Duration;

use temporalio_client::tonic;
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, GrpcCompression, RetryOptions, Url,
};
use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeNamespaceRequest;

use super::process::{self, Launch, PortPlan, ServerProcess, StopSignal, TempDir};
use super::{LocalClientError, ProbeError, StackError, binaries, cpus};

/// How long a started dev server gets to answer for every namespace it was asked to create.
const READY_DEADLINE: Duration = Duration::from_secs(60);

const HOST: &str = "127.0.0.1";
const DEFAULT_NAMESPACE: &str = "default";

/// Extra settings for [`TemporalDevServer::start_with`].
#[derive(Debug, Clone, Default)]
pub struct TemporalOptions {
    /// Each pair becomes `--dynamic-config-value KEY=VALUE`; the value is JSON
    /// (`("frontend.enableUpdateWorkflowExecution".into(), "true".into())`).
    pub dynamic_config: Vec<(String, String)>,
    /// Namespaces to create besides `default` (`--namespace`).
    pub namespaces: Vec<String>,
    /// The CPUs the server runs on, kept across [`TemporalDevServer::start_again`]; empty:
    /// those of the process that starts it.
    pub cpus: Vec<usize>,
}

/// The three ports the dev server binds that we choose (it picks its internal membership
/// ports itself, also free ones).
#[derive(Debug, Clone, Copy)]
struct Ports {
    grpc: u16,
    http: u16,
    metrics: u16,
}

/// A running (or stopped, see [`TemporalDevServer::stop`]) Temporal dev server with
/// in-memory state, headless (no web UI).
#[derive(Debug)]
pub struct TemporalDevServer {
    /// `None` while stopped. Declared before `dir` so it stops before the dir is removed.
    process: Option<ServerProcess>,
    binary: PathBuf,
    options: TemporalOptions,
    ports: Ports,
    dir: TempDir,
}

impl TemporalDevServer {
    /// Starts a dev server with the defaults: namespace `default` only.
    pub async fn start() -> Result<TemporalDevServer, StackError> {
        Self::start_with(TemporalOptions::default()).await
    }

    /// Starts a dev server with extra namespaces and dynamic config.
    pub async fn start_with(options: TemporalOptions) -> Result<TemporalDevServer, StackError> {
        Self::start_on(options, PortPlan::Fresh).await
    }

    async fn start_on(
        options: TemporalOptions,
        ports: PortPlan,
    ) -> Result<TemporalDevServer, StackError> {
        let binary = binaries::temporal_binary()?;
        let dir = TempDir::create("temporal")?;
        let mut server = TemporalDevServer {
            process: None,
            binary,
            options,
            ports: Ports {
                grpc: 0,
                http: 0,
                metrics: 0,
            },
            dir,
        };
        server.launch(ports).await?;
        Ok(server)
    }

    /// The frontend gRPC address, `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("{HOST}:{}", self.ports.grpc)
    }

    /// Always `default`.
    pub fn namespace(&self) -> &str {
        DEFAULT_NAMESPACE
    }

    /// The CLI process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }

    /// The instance's temp dir (the server's cwd) with `temporal.log`.
    pub fn root_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server, which loses its in-memory state; the address stays the same for
    /// [`TemporalDevServer::start_again`]. Does nothing when already stopped.
    pub async fn stop(&mut self) -> Result<(), StackError> {
        if let Some(mut process) = self.process.take() {
            process.stop().await?;
        }
        Ok(())
    }

    /// Starts the stopped server again on the same gRPC port (empty: the state was in
    /// memory). Does nothing when already running.
    pub async fn start_again(&mut self) -> Result<(), StackError> {
        if self.process.is_some() {
            return Ok(());
        }
        self.launch(PortPlan::Keep).await
    }

    /// Starts the CLI, on other ports while one is taken. With [`PortPlan::Keep`] (a restart)
    /// the frontend port stays; the HTTP and metrics ports, which nobody is told about, may
    /// change.
    async fn launch(&mut self, plan: PortPlan) -> Result<(), StackError> {
        let log = self.log_path();
        let launch = Launch {
            what: "temporal dev server",
            log: &log,
            plan,
            deadline: READY_DEADLINE,
            other_ports: true,
        };
        let server = process::launch(launch, |grpc| {
            let [http, metrics] = process::free_ports()?;
            self.ports = Ports {
                grpc: grpc.unwrap_or(self.ports.grpc),
                http,
                metrics,
            };
            let command = self.command();
            let server = cpus::spawn_on(&self.options.cpus, || {
                ServerProcess::spawn("temporal dev server", command, &log, StopSignal::Terminate)
            })?;
            let address = self.address();
            let mut namespaces = vec![DEFAULT_NAMESPACE.to_owned()];
            namespaces.extend(self.options.namespaces.iter().cloned());
            let probe = move || probe(address.clone(), namespaces.clone());
            Ok((server, self.ports.grpc, probe))
        })
        .await?;
        self.process = Some(server);
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("temporal.log")
    }

    fn command(&self) -> std::process::Command {
        // Temporal has no objection to root, so it runs as the current user.
        let mut command = process::command(&self.binary, self.dir.path(), false);
        command
            .args(["server", "start-dev", "--ip", HOST, "--headless"])
            .args(["--log-level", "warn"])
            .arg("--port")
            .arg(self.ports.grpc.to_string())
            .arg("--http-port")
            .arg(self.ports.http.to_string())
            .arg("--metrics-port")
            .arg(self.ports.metrics.to_string());
        for namespace in &self.options.namespaces {
            command.arg("--namespace").arg(namespace);
        }
        for (key, value) in &self.options.dynamic_config {
            command
                .arg("--dynamic-config-value")
                .arg(format!("{key}={value}"));
        }
        // The CLI's client settings (address, TLS, profile) must not leak into the server.
        for variable in [
            "TEMPORAL_ADDRESS",
            "TEMPORAL_NAMESPACE",
            "TEMPORAL_API_KEY",
            "TEMPORAL_TLS",
            "TEMPORAL_PROFILE",
            "TEMPORAL_CONFIG_FILE",
        ] {
            command.env_remove(variable);
        }
        command
    }
}

impl Drop for TemporalDevServer {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take()
            && let Err(error) = process.stop_blocking()
        {
            tracing::warn!(%error, "stopping the testkit temporal dev server on drop");
        }
    }
}

/// How long [`local_client`] waits for the dev server to answer.
const CLIENT_DEADLINE: Duration = Duration::from_secs(30);

/// A client of namespace `default` on the dev server at `address` (plain gRPC, no
/// compression: requests of a few hundred bytes on loopback gain nothing from gzip), for
/// tests, the demo and the benchmarks. The one place such a client is made; production
/// connections (TLS, API keys, profiles) are `osp-runtime`'s.
pub async fn local_client(address: &str, identity: &str) -> Result<Client, LocalClientError> {
    let url =
        Url::parse(&format!("http://{address}")).map_err(|source| LocalClientError::Address {
            address: address.to_owned(),
            source,
        })?;
    let connect = Connection::connect(
        ConnectionOptions::new(url)
            .identity(identity.to_owned())
            .connect_timeout(Duration::from_secs(10))
            .grpc_compression(GrpcCompression::None)
            .build(),
    );
    let connection = tokio::time::timeout(CLIENT_DEADLINE, connect)
        .await
        .map_err(|_| LocalClientError::TimedOut {
            address: address.to_owned(),
            after: CLIENT_DEADLINE,
        })?
        .map_err(|source| LocalClientError::Connect {
            address: address.to_owned(),
            source,
        })?;
    Client::new(connection, ClientOptions::new("default").build()).map_err(LocalClientError::Client)
}

/// One readiness check: a gRPC connection (which calls GetSystemInfo) and DescribeNamespace
/// for each namespace, since the CLI registers them after the frontend starts listening.
async fn probe(address: String, namespaces: Vec<String>) -> Result<(), ProbeError> {
    let url = Url::parse(&format!("http://{address}")).map_err(|source| ProbeError::Address {
        address: address.clone(),
        source,
    })?;
    let options = ConnectionOptions::new(url)
        .identity("osp-testkit")
        .connect_timeout(Duration::from_secs(2))
        // We poll ourselves; the client's own retries would only blur the deadline.
        .retry_options(RetryOptions::no_retries())
        .build();
    let connection = Connection::connect(options)
        .await
        .map_err(ProbeError::Connect)?;
    let mut service = connection.workflow_service();
    for namespace in namespaces {
        let request = DescribeNamespaceRequest {
            namespace: namespace.clone(),
            ..Default::default()
        };
        service
            .describe_namespace(tonic::Request::new(request))
            .await
            .map_err(|source| ProbeError::Namespace { namespace, source })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_is_detected_and_another_one_used() {
        let squatter = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).unwrap();
        let taken = squatter.local_addr().unwrap().port();
        let options = TemporalOptions {
            dynamic_config: vec![("limit.maxIDLength".to_owned(), "255".to_owned())],
            namespaces: vec!["osp-extra".to_owned()],
            cpus: Vec::new(),
        };
        let server = TemporalDevServer::start_on(options, PortPlan::FirstThenFresh(taken))
            .await
            .unwrap();
        assert_ne!(server.ports.grpc, taken);
        let log = process::log_tail(&server.log_path());
        assert!(log.contains("address already in use"), "{log}");
        // Ready means every namespace answered, the extra one included.
        probe(server.address(), vec!["osp-extra".to_owned()])
            .await
            .unwrap();
    }
}
