//! The worker builder as a library user embeds it, against the testkit's real Postgres and
//! dev server: a manifest chooses among the workflows registered in the binary (an unknown
//! name stops start-up listing them), a service's own activities get the worker's pool, and
//! every resource `run` starts (health server, SDK exporter, connections) is gone when it
//! returns, on the shutdown path and on an error path.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use osp_config::{Sources, WorkerConfig};
use osp_core::payloads::ServiceData;
use osp_testkit::{TestEnv, test_env};
use osp_worker::WorkerBuilder;
use osp_workflows::CreateServiceWorkflow;
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};

fn config(env: &TestEnv, extra: &[(&str, String)]) -> WorkerConfig {
    let mut vars: HashMap<String, String> = [
        ("TEMPORAL_ADDRESS", env.temporal_address()),
        ("TEMPORAL_TASK_QUEUE", env.task_queue().to_owned()),
        ("DATABASE_URL", env.database_url()),
        ("ENABLE_HEALTH_CHECK", "false".to_owned()),
        ("OSP_SHUTDOWN_GRACE_SECONDS", "1".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    for (key, value) in extra {
        vars.insert((*key).to_owned(), value.clone());
    }
    let read_file = |path: &std::path::Path| std::fs::read_to_string(path);
    WorkerConfig::load(&Sources {
        env: &vars,
        read_file: &read_file,
    })
    .unwrap()
}

/// The inodes of the TCP sockets this process listens on.
fn listening_sockets() -> BTreeSet<u64> {
    let ours: BTreeSet<u64> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|link| {
            link.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?
                .parse()
                .ok()
        })
        .collect();
    let mut listening = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // State 0A is LISTEN; field 9 the inode.
            if fields.get(3) == Some(&"0A")
                && let Some(inode) = fields.get(9).and_then(|inode| inode.parse().ok())
                && ours.contains(&inode)
            {
                listening.insert(inode);
            }
        }
    }
    listening
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn free_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], osp_testkit::free_port().unwrap()))
}

/// `GET /readyz` answers 200.
async fn ready(addr: SocketAddr) -> bool {
    matches!(osp_testkit::get(addr.port(), "/readyz").await, Ok((200, _)))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_naming_a_workflow_the_binary_does_not_register_lists_the_registered_ones() {
    let env = test_env().await.unwrap();
    let manifest = env.scratch_dir().join("billing.json");
    std::fs::write(
        &manifest,
        r#"{"service_schema": "billing", "workflows": [
             {"name": "processBilling", "task_queue": "billing-tasks", "activities": []}]}"#,
    )
    .unwrap();
    let config = config(&env, &[("MANIFEST_PATH", manifest.display().to_string())]);
    let error = WorkerBuilder::service(config)
        .workflow::<CreateServiceWorkflow>()
        .run(std::future::pending())
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("workflow `processBilling`"), "{error}");
    assert!(
        error.contains("known workflows: createServiceWorkflow;"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_resource_the_builder_starts_stops_when_run_returns() {
    let env = test_env().await.unwrap();
    let before = listening_sockets();

    // Shutdown path: polling and ready, then asked to stop.
    let health = free_port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // The SDK's worker is not Send: the worker runs beside the test's body on this task.
    let worker = WorkerBuilder::service(config(&env, &[]))
        .workflow::<CreateServiceWorkflow>()
        .activities(&["createEntity"], |pool| {
            // The service's activities get the worker's own pool.
            osp_activities::PlatformActivities::new(
                pool,
                std::sync::Arc::new(osp_activities::dns::LogDns::new("osp.test")),
                std::sync::Arc::new(osp_activities::email::LogMailer),
                osp_activities::deployer::Deployer {
                    manifest_dir: std::env::temp_dir(),
                    command: None,
                },
            )
        })
        .health_server(health)
        .registry(false)
        .run(async {
            let _ = stopped.await;
        });
    let body = async {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !ready(health).await {
            assert!(Instant::now() < deadline, "the worker never became ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let during = listening_sockets();
        assert!(
            during.difference(&before).count() >= 2,
            "the health server and the SDK exporter listen while running: {before:?} -> {during:?}"
        );
        let service = env
            .client()
            .start_workflow(
                CreateServiceWorkflow::run,
                ServiceData {
                    name: "billing".into(),
                    description: None,
                    service_schema: None,
                    metadata: None,
                },
                WorkflowStartOptions::new(env.task_queue(), env.workflow_id("svc")).build(),
            )
            .await
            .unwrap()
            .get_result(WorkflowGetResultOptions::default())
            .await
            .unwrap();
        assert_eq!(service.name, "billing");
        stop.send(()).unwrap();
    };
    let (outcome, ()) = tokio::join!(worker, body);
    outcome.unwrap();
    eventually("the shutdown path's sockets closed", || {
        listening_sockets() == before
    })
    .await;
    assert!(!ready(health).await);

    // Error path: the namespace does not exist, so the worker fails once it starts.
    let health = free_port();
    let error = WorkerBuilder::service(config(
        &env,
        &[("TEMPORAL_NAMESPACE", "no-such-namespace".to_owned())],
    ))
    .workflow::<CreateServiceWorkflow>()
    .health_server(health)
    .registry(false)
    .run(std::future::pending())
    .await
    .unwrap_err();
    assert!(
        osp_runtime::error_chain(&error).contains("no-such-namespace"),
        "{error:?}"
    );
    eventually("the error path's sockets closed", || {
        listening_sockets() == before
    })
    .await;
}
