//! The `osp-worker` binary as a process, against a real PostgreSQL and Temporal dev server:
//! readiness on polling, metrics, graceful shutdown during an activity, manifests, bad
//! configurations, outages at start-up, and no secret in any output.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use osp_core::payloads::{
    DeploymentStatus, ServiceData, WorkerDeployment, WorkerDeploymentRequest, WorkflowSpec,
};
use osp_testkit::{OspProcess, Postgres, TemporalDevServer};
use osp_workflows::{CreateServiceWorkflow, DeployWorkerWorkflow};
use temporalio_client::{
    Client, ClientOptions, Connection, ConnectionOptions, Url, WorkflowFetchHistoryOptions,
    WorkflowGetResultOptions, WorkflowStartOptions,
};
use temporalio_common::protos::temporal::api::enums::v1::EventType;
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
use tokio_postgres::NoTls;

const WORKER: &str = env!("CARGO_BIN_EXE_osp-worker");

/// A throwaway database and Temporal server, the schema applied, and a scratch directory.
struct Env {
    postgres: Postgres,
    temporal: TemporalDevServer,
    dir: PathBuf,
}

impl Env {
    async fn start() -> Env {
        let (postgres, temporal) = tokio::join!(Postgres::start(), TemporalDevServer::start());
        let (postgres, temporal) = (postgres.unwrap(), temporal.unwrap());
        let mut client = osp_activities::db::connect(&postgres.url("postgres"))
            .await
            .unwrap();
        osp_activities::migrate(&mut client).await.unwrap();
        let dir = postgres.root_dir().join("worker-test");
        std::fs::create_dir_all(&dir).unwrap();
        Env {
            postgres,
            temporal,
            dir,
        }
    }

    fn env(
        &self,
        task_queue: &str,
        extra: &[(&'static str, String)],
    ) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("TEMPORAL_ADDRESS", self.temporal.address()),
            ("TEMPORAL_TASK_QUEUE", task_queue.to_owned()),
            ("DATABASE_URL", self.postgres.url("postgres")),
            ("LOG_FORMAT", "json".to_owned()),
            ("OSP_SHUTDOWN_GRACE_SECONDS", "10".to_owned()),
            ("OSP_REGISTRY_HEARTBEAT_SECONDS", "1".to_owned()),
        ];
        env.extend_from_slice(extra);
        env
    }

    fn worker(&self, name: &str, env: &[(&'static str, String)]) -> OspProcess {
        OspProcess::start(
            Path::new(WORKER),
            env,
            &self.dir.join(format!("{name}.log")),
        )
        .unwrap()
    }

    async fn client(&self) -> Client {
        let url = Url::parse(&format!("http://{}", self.temporal.address())).unwrap();
        let connection = Connection::connect(ConnectionOptions::new(url).build())
            .await
            .unwrap();
        Client::new(connection, ClientOptions::new("default").build()).unwrap()
    }

    async fn query_one(&self, sql: &str) -> Vec<String> {
        let (client, connection) = tokio_postgres::connect(&self.postgres.url("postgres"), NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .simple_query(sql)
            .await
            .unwrap()
            .into_iter()
            .filter_map(|message| match message {
                tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                    (0..row.len())
                        .map(|i| row.get(i).unwrap_or("").to_owned())
                        .collect::<Vec<_>>()
                        .join("|"),
                ),
                _ => None,
            })
            .collect()
    }

    /// The database password must never be printed by the worker.
    fn assert_no_secret(&self, output: &str) {
        assert!(
            !output.contains(self.postgres.password()),
            "the database password leaked:\n{output}"
        );
    }
}

/// Polls `check` until it holds or the deadline passes.
async fn eventually<F, Fut>(what: &str, deadline: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: not within {deadline:?}");
}

#[tokio::test]
async fn ready_only_once_polling_survives_temporal_starting_late_and_exposes_metrics() {
    let mut env = Env::start().await;
    // Temporal is down when the worker starts, and comes up 10 s later.
    env.temporal.stop().await.unwrap();
    let mut worker = env.worker("late", &env.env("late-queue", &[]));
    worker.wait_alive(Duration::from_secs(30)).await.unwrap();
    let (status, body) = worker.get("/readyz").await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("temporal") && body.contains("cannot connect"),
        "{body}"
    );
    let down_since = Instant::now();
    eventually("retries logged", Duration::from_secs(30), || {
        let log = worker.log();
        async move { log.matches("temporal unavailable").count() >= 3 }
    })
    .await;
    // Deliberate scenario timing, not a wait for something: the outage lasts 10 s.
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(down_since.elapsed())).await;
    assert_eq!(worker.get("/readyz").await.unwrap().0, 503);
    env.temporal.start_again().await.unwrap();
    worker.wait_ready(Duration::from_secs(60)).await.unwrap();

    let (_, metrics) = worker.get("/metrics").await.unwrap();
    for series in [
        "osp_worker_ready 1",
        "osp_worker_startup_seconds",
        "osp_worker_connect_failures_total{target=\"temporal\"}",
        "temporal_num_pollers",
        "temporal_worker_task_slots_available",
    ] {
        assert!(
            metrics.contains(series),
            "missing {series} in /metrics:\n{metrics}"
        );
    }
    // Backoff, not a crash loop: a handful of attempts in 10 s, each logged once.
    let attempts = worker.log().matches("temporal unavailable").count();
    assert!((3..=15).contains(&attempts), "{attempts} attempts");

    let status = worker.stop(Duration::from_secs(30)).await.unwrap();
    assert!(status.success(), "{status}");
    env.assert_no_secret(&worker.log());
}

#[tokio::test]
async fn sigterm_during_an_activity_lets_it_finish_and_exits_zero() {
    let env = Env::start().await;
    let marker = env.dir.join("deployer-ran");
    let deployer = format!(
        r#"["sh", "-c", "sleep 2; echo deployed {{service_schema}} > {}"]"#,
        marker.display()
    );
    let worker_env = env.env(
        "drain-queue",
        &[
            ("OSP_DEPLOYER_COMMAND", deployer),
            (
                "OSP_MANIFEST_DIR",
                env.dir.join("manifests").display().to_string(),
            ),
        ],
    );
    let mut worker = env.worker("drain", &worker_env);
    worker.wait_ready(Duration::from_secs(60)).await.unwrap();

    let client = env.client().await;
    let request = WorkerDeploymentRequest {
        service_schema: "billing".into(),
        service_name: None,
        workflows: vec![WorkflowSpec {
            name: "createServiceWorkflow".into(),
            activities: vec!["createEntity".into()],
        }],
        task_queue: None,
    };
    let handle = client
        .start_workflow(
            DeployWorkerWorkflow::run,
            request,
            WorkflowStartOptions::new("drain-queue", "deploy-worker-billing").build(),
        )
        .await
        .unwrap();
    // The deployer is running once its attempt is recorded.
    eventually(
        "the deployer attempt to start",
        Duration::from_secs(30),
        || async {
            env.query_one(
                "select 1 from osp_metadata.worker_registry where deployment_status = 'deploying'",
            )
            .await
            .len()
                == 1
        },
    )
    .await;
    let signalled = Instant::now();
    let status = worker.stop(Duration::from_secs(20)).await.unwrap();
    assert!(status.success(), "{status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "took {:?}, past the grace period",
        signalled.elapsed()
    );
    // The in-flight activity finished before the process exited.
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap().trim(),
        "deployed billing"
    );
    let rows = env.query_one("select deployment_status from osp_metadata.worker_registry where worker_identity is not null").await;
    assert_eq!(rows, ["stopped"]);

    // The workflow's remaining steps run on the next worker: nothing was lost.
    let mut next = env.worker("drain-next", &worker_env);
    next.wait_ready(Duration::from_secs(60)).await.unwrap();
    let deployment: WorkerDeployment = tokio::time::timeout(
        Duration::from_secs(60),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(deployment.status, DeploymentStatus::Deployed);
    assert_eq!(deployment.attempts, 1);
    assert!(next.stop(Duration::from_secs(20)).await.unwrap().success());
    env.assert_no_secret(&worker.log());
    env.assert_no_secret(&next.log());
}

/// The manifest seed 002's `generateServiceManifest` wrote, naming OSP workflows.
const SEED_MANIFEST: &str = r#"{
  "service_schema": "billing",
  "activities_path": "./workers/generated/service/activities.js",
  "workflows": [
    {
      "name": "createServiceWorkflow",
      "task_queue": "billing-tasks",
      "workflows_path": "./workflows/service/createServiceWorkflow.js",
      "activities": ["createEntity"]
    }
  ]
}"#;

#[tokio::test]
async fn a_seed_shaped_manifest_serves_exactly_its_workflows_on_the_service_queue() {
    let env = Env::start().await;
    let manifest = env.dir.join("billing.json");
    std::fs::write(&manifest, SEED_MANIFEST).unwrap();
    let mut worker = env.worker(
        "manifest",
        &env.env(
            "ignored-queue",
            &[("MANIFEST_PATH", manifest.display().to_string())],
        ),
    );
    worker.wait_ready(Duration::from_secs(60)).await.unwrap();
    let log = worker.log();
    assert!(
        log.contains("activities_path") && log.contains("JavaScript-only"),
        "{log}"
    );

    let client = env.client().await;
    let service = client
        .start_workflow(
            CreateServiceWorkflow::run,
            ServiceData {
                name: "billing".into(),
                description: None,
                service_schema: Some("billing".into()),
                metadata: None,
            },
            WorkflowStartOptions::new("billing-tasks", "svc-billing").build(),
        )
        .await
        .unwrap()
        .get_result(WorkflowGetResultOptions::default())
        .await
        .unwrap();
    assert_eq!(service.name, "billing");

    // A workflow the manifest does not list is not served: its task fails on this worker.
    let unlisted = client
        .start_workflow(
            osp_workflows::OrganizationBootstrapWorkflow::run,
            serde_json::from_value(serde_json::json!({
                "organization_id": "6f1c2b3a-0000-4000-8000-000000000001", "name": "Acme",
                "subdomain": "acme", "admin_users": [{"email": "a@acme.io"}]
            }))
            .unwrap(),
            WorkflowStartOptions::new("billing-tasks", "org-bootstrap-unlisted").build(),
        )
        .await
        .unwrap();
    let mut failure = None;
    let started = Instant::now();
    while failure.is_none() && started.elapsed() < Duration::from_secs(30) {
        let events = unlisted
            .fetch_history(WorkflowFetchHistoryOptions::default())
            .into_events()
            .await
            .unwrap();
        failure = events
            .iter()
            .find_map(|event| match (&event.attributes, event.event_type()) {
                (
                    Some(Attributes::WorkflowTaskFailedEventAttributes(attributes)),
                    EventType::WorkflowTaskFailed,
                ) => Some(
                    attributes
                        .failure
                        .as_ref()
                        .map(|f| f.message.clone())
                        .unwrap_or_default(),
                ),
                _ => None,
            });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let failure = failure.expect("the unlisted workflow's task fails");
    assert!(
        failure.contains("organizationBootstrapWorkflow"),
        "{failure}"
    );
    assert!(
        worker
            .stop(Duration::from_secs(20))
            .await
            .unwrap()
            .success()
    );
    env.assert_no_secret(&worker.log());
}

fn run_to_exit(env: &[(&str, String)]) -> (i32, String) {
    let output = Command::new(WORKER)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code().unwrap_or(-1), text)
}

#[tokio::test]
async fn bad_manifests_stop_start_up_naming_the_problem() {
    let dir = std::env::temp_dir().join(format!("osp-worker-manifests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unknown = dir.join("unknown.json");
    std::fs::write(
        &unknown,
        SEED_MANIFEST.replace("createServiceWorkflow\",", "processBilling\","),
    )
    .unwrap();
    let malformed = dir.join("malformed.json");
    std::fs::write(
        &malformed,
        "{\"service_schema\": \"billing\", \"workflows\": [",
    )
    .unwrap();
    let missing = dir.join("missing.json");
    let base = |manifest: &Path| {
        vec![
            // Nothing listens here: the manifest must be refused before any connection.
            ("TEMPORAL_ADDRESS", "127.0.0.1:9".to_owned()),
            (
                "DATABASE_URL",
                "postgres://osp:db-PASSWORD-SENTINEL@127.0.0.1:9/osp".to_owned(),
            ),
            ("MANIFEST_PATH", manifest.display().to_string()),
            ("LOG_FORMAT", "text".to_owned()),
            ("ENABLE_HEALTH_CHECK", "false".to_owned()),
        ]
    };
    for (manifest, expected) in [
        (
            &unknown,
            vec![
                "workflow `processBilling`",
                "known workflows: createServiceWorkflow, organizationBootstrapWorkflow, deployWorkerWorkflow",
            ],
        ),
        (
            &malformed,
            vec!["malformed manifest at line 1", "EOF while parsing"],
        ),
        (
            &missing,
            vec!["missing.json: cannot read it", "No such file"],
        ),
    ] {
        let (code, output) = run_to_exit(&base(manifest));
        assert_ne!(code, 0, "{output}");
        for expected in expected {
            assert!(
                output.contains(expected),
                "missing {expected:?} in:\n{output}"
            );
        }
        assert!(!output.contains("PASSWORD-SENTINEL"), "{output}");
        assert!(
            !output.contains("temporal unavailable"),
            "connected before checking the manifest:\n{output}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn bad_configurations_exit_non_zero_listing_every_problem_without_secrets() {
    // (environment, what the error must say)
    type Case = (Vec<(&'static str, String)>, Vec<&'static str>);
    let cases: Vec<Case> = vec![
        (
            vec![(
                "DATABASE_URL",
                "postgres://osp:db-PASSWORD-SENTINEL@db/osp".into(),
            )],
            vec!["TEMPORAL_ADDRESS: is required"],
        ),
        (
            vec![
                ("TEMPORAL_ADDRESS", "localhost".into()),
                ("TEMPORAL_API_KEY", "API-KEY-SENTINEL".into()),
                ("HEALTH_CHECK_PORT", "eighty".into()),
            ],
            vec![
                "TEMPORAL_ADDRESS:",
                "is missing a port",
                "HEALTH_CHECK_PORT:",
                "DATABASE_URL: is required",
            ],
        ),
        (
            vec![
                ("TEMPORAL_ADDRESS", "localhost:port".into()),
                (
                    "DATABASE_URL",
                    "mysql://osp:db-PASSWORD-SENTINEL@db/osp".into(),
                ),
                ("TEMPORAL_API_KEY", "API-KEY-SENTINEL".into()),
            ],
            vec!["TEMPORAL_ADDRESS:", "DATABASE_URL:"],
        ),
        (
            vec![
                ("TEMPORAL_ADDRESS", "localhost:7233".into()),
                (
                    "DATABASE_URL",
                    "postgres://osp:db-PASSWORD-SENTINEL@db/osp".into(),
                ),
                (
                    "TEMPORAL_TLS_CLIENT_CERT_PATH",
                    "/nonexistent/client.pem".into(),
                ),
                (
                    "TEMPORAL_TLS_CLIENT_KEY_PATH",
                    "/nonexistent/client.key".into(),
                ),
                (
                    "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
                    "/nonexistent/ca.pem".into(),
                ),
            ],
            vec![
                "TEMPORAL_TLS_CLIENT_CERT_PATH",
                "TEMPORAL_TLS_CLIENT_KEY_PATH",
                "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
                "/nonexistent/client.pem",
            ],
        ),
    ];
    for (env, expected) in cases {
        let (code, output) = run_to_exit(&env);
        assert_eq!(code, 2, "{output}");
        assert!(output.contains("invalid configuration"), "{output}");
        for expected in expected {
            assert!(
                output.contains(expected),
                "missing {expected:?} in:\n{output}"
            );
        }
        for secret in ["PASSWORD-SENTINEL", "API-KEY-SENTINEL"] {
            assert!(!output.contains(secret), "{secret} leaked:\n{output}");
        }
    }
}

#[test]
fn an_api_key_never_reaches_the_logs_while_retrying() {
    // A valid configuration whose Temporal is unreachable over TLS: the worker keeps trying
    // and logging, and the key never shows. It is stopped after a few attempts.
    let mut child = Command::new(WORKER)
        .env_clear()
        .envs([
            ("TEMPORAL_ADDRESS", "127.0.0.1:9"),
            ("TEMPORAL_API_KEY", "API-KEY-SENTINEL"),
            (
                "DATABASE_URL",
                "postgres://osp:db-PASSWORD-SENTINEL@127.0.0.1:9/osp",
            ),
            ("ENABLE_HEALTH_CHECK", "false"),
            ("LOG_FORMAT", "json"),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut lines = Vec::new();
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let enough = line.contains("database unavailable")
                && lines
                    .iter()
                    .any(|l: &String| l.contains("temporal unavailable"));
            lines.push(line);
            if enough && lines.len() > 4 {
                break;
            }
        }
        lines
    });
    let lines = reader.join().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let output = lines.join("\n");
    assert!(output.contains("temporal unavailable"), "{output}");
    assert!(
        output.contains("[redacted]"),
        "the configuration line shows redacted secrets:\n{output}"
    );
    for secret in ["PASSWORD-SENTINEL", "API-KEY-SENTINEL"] {
        assert!(!output.contains(secret), "{secret} leaked:\n{output}");
    }
}

#[tokio::test]
async fn spans_are_exported_over_otlp_when_an_endpoint_is_set() {
    let env = Env::start().await;
    // A stand-in collector: it only has to see the exporter's gRPC (HTTP/2) connection.
    let collector = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", collector.local_addr().unwrap());
    let received = tokio::spawn(async move {
        let (mut stream, _) = collector.accept().await.unwrap();
        let mut preface = [0u8; 24];
        tokio::io::AsyncReadExt::read_exact(&mut stream, &mut preface)
            .await
            .unwrap();
        preface
    });
    let mut worker = env.worker(
        "otlp",
        &env.env("otlp-queue", &[("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)]),
    );
    worker.wait_ready(Duration::from_secs(60)).await.unwrap();
    // Shutdown flushes the buffered spans, so the export happens by then at the latest.
    assert!(
        worker
            .stop(Duration::from_secs(30))
            .await
            .unwrap()
            .success()
    );
    let preface = tokio::time::timeout(Duration::from_secs(15), received)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&preface, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    env.assert_no_secret(&worker.log());
}

#[tokio::test]
async fn worker_controller_variables_turn_worker_versioning_on() {
    let env = Env::start().await;
    let mut worker = env.worker(
        "versioned",
        &env.env(
            "versioned-queue",
            &[
                ("TEMPORAL_DEPLOYMENT_NAME", "osp".to_owned()),
                ("TEMPORAL_WORKER_BUILD_ID", "build-7".to_owned()),
            ],
        ),
    );
    worker.wait_ready(Duration::from_secs(60)).await.unwrap();
    // What the Worker Controller does once a version is healthy: make it current.
    let temporal = osp_testkit::temporal_cli().unwrap();
    let address = env.temporal.address();
    let set_current = tokio::task::spawn_blocking(move || {
        Command::new(temporal)
            .args([
                "worker",
                "deployment",
                "set-current-version",
                "--address",
                &address,
            ])
            .args(["--deployment-name", "osp", "--build-id", "build-7", "--yes"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        set_current.status.success(),
        "{}",
        String::from_utf8_lossy(&set_current.stderr)
    );

    let client = env.client().await;
    let handle = client
        .start_workflow(
            CreateServiceWorkflow::run,
            ServiceData {
                name: "versioned".into(),
                description: None,
                service_schema: None,
                metadata: None,
            },
            WorkflowStartOptions::new("versioned-queue", "svc-versioned").build(),
        )
        .await
        .unwrap();
    let service = tokio::time::timeout(
        Duration::from_secs(30),
        handle.get_result(WorkflowGetResultOptions::default()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(service.name, "versioned");
    let description = client
        .get_workflow_handle::<CreateServiceWorkflow>("svc-versioned")
        .describe(Default::default())
        .await
        .unwrap();
    let versioning = description
        .raw()
        .workflow_execution_info
        .as_ref()
        .and_then(|info| info.versioning_info.as_ref());
    let text = format!("{versioning:?}");
    assert!(text.contains("build-7") && text.contains("osp"), "{text}");
    assert!(
        worker
            .stop(Duration::from_secs(30))
            .await
            .unwrap()
            .success()
    );
}
