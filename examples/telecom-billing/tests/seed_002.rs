//! Seed 002's flow end to end, with the real binaries on a real dev server and Postgres: the
//! "Telecom Billing System" service is created with its workflows listed; the platform's
//! `osp-worker` runs `deployWorkerWorkflow` for it, which writes the seed-shaped manifest and
//! runs a deployer command that launches `telecom-billing-worker` as a local process with
//! `MANIFEST_PATH` set; the registry row goes `pending` -> `deploying` -> `deployed`; the new
//! worker becomes ready on `telecom_billing_service_789-tasks`; an `invoice.requested` event
//! then runs `processBilling` on it through the real bridge; SIGTERM stops the worker and its
//! registry row says `stopped`.
//!
//! `osp-worker` must be built (`make test` builds it first; alone:
//! `cargo build -p osp-worker`).

#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use osp_activities::events::{self, NewEvent};
use osp_core::payloads::{DeploymentStatus, ServiceData, WorkerDeploymentRequest, WorkflowSpec};
use osp_core::validate::ServiceSchema;
use osp_core::workflows::deploy_worker_workflow_id;
use osp_testkit::{OspProcess, TestEnv, osp_binary, test_env_with};
use rustix::process::{Pid, Signal, kill_process};
use serde_json::json;
use telecom_billing::payloads::{BillingRequest, UsageLine};
use telecom_billing::{MIGRATIONS, ProcessBilling, SERVICE_SCHEMA, TASK_QUEUE};
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};
use uuid::Uuid;

const SERVICE_WORKER: &str = env!("CARGO_BIN_EXE_telecom-billing-worker");

/// The service worker the deployer launched; killed if the test ends before it stopped it.
struct Launched {
    pid_file: PathBuf,
}

impl Launched {
    fn pid(&self) -> Option<Pid> {
        let text = std::fs::read_to_string(&self.pid_file).ok()?;
        Pid::from_raw(text.trim().parse().ok()?)
    }

    fn signal(&self, signal: Signal) {
        if let Some(pid) = self.pid() {
            let _ = kill_process(pid, signal);
        }
    }

    fn is_running(&self) -> bool {
        self.pid().is_some_and(|pid| {
            // A zombie has exited; only its parent (init, here) has yet to reap it.
            std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()))
                .is_ok_and(|stat| !stat.contains(") Z "))
        })
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        if self.is_running() {
            self.signal(Signal::KILL);
        }
    }
}

fn free_port() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], osp_testkit::free_port().unwrap()))
}

/// `GET /readyz` answers 200.
async fn ready(addr: SocketAddr) -> bool {
    matches!(osp_testkit::get(addr.port(), "/readyz").await, Ok((200, _)))
}

async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The deployer: launches the service's worker in the background with the manifest the
/// workflow wrote, records its pid, and exits (as `railway up` returns once deployed).
fn deployer_command(service_port: u16, log: &Path, pid_file: &Path) -> String {
    let script = "HEALTH_CHECK_PORT=\"$1\" MANIFEST_PATH=\"$2\" OSP_SHUTDOWN_GRACE_SECONDS=1 \
                  nohup \"$0\" >\"$3\" 2>&1 </dev/null & echo $! >\"$4\"; \
                  echo launched {service_schema} on {task_queue}";
    serde_json::to_string(&[
        "sh",
        "-c",
        script,
        SERVICE_WORKER,
        &service_port.to_string(),
        "{manifest_path}",
        &log.display().to_string(),
        &pid_file.display().to_string(),
    ])
    .unwrap()
}

fn platform_worker(env: &TestEnv, deployer: String) -> OspProcess {
    let settings = [
        ("TEMPORAL_ADDRESS", env.temporal_address()),
        ("TEMPORAL_TASK_QUEUE", env.task_queue().to_owned()),
        ("DATABASE_URL", env.database_url()),
        ("LOG_FORMAT", "json".to_owned()),
        ("OSP_SHUTDOWN_GRACE_SECONDS", "1".to_owned()),
        (
            "OSP_MANIFEST_DIR",
            env.scratch_dir().join("manifests").display().to_string(),
        ),
        ("OSP_DEPLOYER_COMMAND", deployer),
    ];
    OspProcess::start(
        &osp_binary("osp-worker").unwrap(),
        &settings,
        &env.scratch_dir().join("osp-worker.log"),
    )
    .unwrap()
}

/// The seed's `serviceConfig`, as the service row holds it.
fn service() -> ServiceData {
    let metadata = json!({"workflows": [
        {"name": "processBilling", "activities": ["calculateCharges", "sendInvoice"]},
        {"name": "handlePayment", "activities": ["processPayment", "updateAccount"]}
    ]});
    ServiceData {
        name: "Telecom Billing System".to_owned(),
        description: None,
        service_schema: Some(SERVICE_SCHEMA.to_owned()),
        metadata: metadata.as_object().cloned(),
    }
}

/// The seed's `deployWorkerForService(serviceConfig)`: the deployment request from the row.
async fn deployment_request(db: &tokio_postgres::Client) -> WorkerDeploymentRequest {
    let row = db
        .query_one(
            "select name, service_schema, metadata from public.services where service_schema = $1",
            &[&SERVICE_SCHEMA],
        )
        .await
        .unwrap();
    let metadata: serde_json::Value = row.get(2);
    WorkerDeploymentRequest {
        service_schema: row.get(1),
        service_name: Some(row.get(0)),
        workflows: serde_json::from_value::<Vec<WorkflowSpec>>(metadata["workflows"].clone())
            .unwrap(),
        task_queue: None,
    }
}

async fn registry_status(db: &tokio_postgres::Client, id: Option<Uuid>) -> Option<String> {
    let sql = match id {
        Some(_) => "select deployment_status from osp_metadata.worker_registry where id = $1",
        None => {
            "select deployment_status from osp_metadata.worker_registry
             where service_schema = $1 and worker_identity is not null"
        }
    };
    let rows = match id {
        Some(id) => db.query(sql, &[&id]).await.unwrap(),
        None => db.query(sql, &[&SERVICE_SCHEMA]).await.unwrap(),
    };
    rows.first().map(|row| row.get(0))
}

#[tokio::test(flavor = "multi_thread")]
async fn seed_002_a_created_service_gets_a_deployed_worker_that_runs_its_routed_workflow() {
    let env = test_env_with(MIGRATIONS)
        .await
        .unwrap()
        .with_deadline(Duration::from_secs(90));
    let db = env.db().await.unwrap();
    let service_health = free_port();
    let launched = Launched {
        pid_file: env.scratch_dir().join("service-worker.pid"),
    };
    let service_log = env.scratch_dir().join("service-worker.log");
    let mut platform = platform_worker(
        &env,
        deployer_command(service_health.port(), &service_log, &launched.pid_file),
    );
    platform.wait_ready(Duration::from_secs(60)).await.unwrap();

    // 1. The service is created with its workflows listed.
    let created = env
        .client()
        .start_workflow(
            osp_workflows::CreateServiceWorkflow::run,
            service(),
            WorkflowStartOptions::new(env.task_queue(), env.workflow_id("create-service")).build(),
        )
        .await
        .unwrap()
        .get_result(WorkflowGetResultOptions::default())
        .await
        .unwrap();
    assert_eq!(created.name, "Telecom Billing System");

    // 2. Its worker is deployed from it; the registry row is watched while that runs.
    let request = deployment_request(&db).await;
    let schema = ServiceSchema::parse(SERVICE_SCHEMA).unwrap();
    let handle = env
        .client()
        .start_workflow(
            osp_workflows::DeployWorkerWorkflow::run,
            request,
            WorkflowStartOptions::new(env.task_queue(), deploy_worker_workflow_id(&schema)).build(),
        )
        .await
        .unwrap();
    let mut seen: Vec<String> = Vec::new();
    let watch = async {
        loop {
            let status = db
                .query_opt(
                    "select deployment_status from osp_metadata.worker_registry
                     where service_schema = $1 and worker_identity is null",
                    &[&SERVICE_SCHEMA],
                )
                .await
                .unwrap()
                .map(|row| row.get::<_, String>(0));
            if let Some(status) = status
                && seen.last() != Some(&status)
            {
                seen.push(status);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let deployment = tokio::select! {
        result = handle.get_result(WorkflowGetResultOptions::default()) => result.unwrap(),
        () = watch => unreachable!("the watch never ends"),
    };
    assert_eq!(
        deployment.status,
        DeploymentStatus::Deployed,
        "{deployment:?}"
    );
    assert_eq!(deployment.task_queue, TASK_QUEUE);
    assert_eq!(
        registry_status(&db, Some(deployment.registry_id))
            .await
            .as_deref(),
        Some("deployed")
    );
    // Every status the row took, in order; the logs prove the steps the 5 ms watch missed.
    let order = ["pending", "deploying", "deployed"];
    let positions: Vec<usize> = seen
        .iter()
        .map(|status| order.iter().position(|known| known == status).unwrap())
        .collect();
    assert!(positions.is_sorted(), "{seen:?}");
    let logs: String = db
        .query_one(
            "select logs from osp_metadata.worker_registry where id = $1",
            &[&deployment.registry_id],
        )
        .await
        .unwrap()
        .get(0);
    let steps = [
        "manifest written",
        "attempt 1 started",
        "launched telecom_billing_service_789 on telecom_billing_service_789-tasks",
        "deployment deployed",
    ];
    let mut at = 0;
    for step in steps {
        let found = logs[at..].find(step);
        assert!(found.is_some(), "{step:?} missing in order from:\n{logs}");
        at += found.unwrap_or_default();
    }

    // The manifest is the seed's generateServiceManifest shape for this service.
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&deployment.manifest_path).unwrap()).unwrap();
    assert_eq!(manifest["service_schema"], SERVICE_SCHEMA);
    assert_eq!(manifest["workflows"][0]["name"], "processBilling");
    assert_eq!(manifest["workflows"][0]["task_queue"], TASK_QUEUE);
    assert_eq!(
        manifest["workflows"][1]["activities"],
        json!(["processPayment", "updateAccount"])
    );

    // 3. The launched worker becomes ready (polling its queue) and records itself.
    eventually("the service worker ready on its queue", || {
        ready(service_health)
    })
    .await;
    assert_eq!(
        registry_status(&db, None).await.as_deref(),
        Some("deployed")
    );

    // 4. invoice.requested runs processBilling on it through the bridge.
    let bridge = env.bridge(&[]).unwrap();
    let account = Uuid::new_v4();
    let billing = BillingRequest {
        account_id: account,
        period: "2026-11".to_owned(),
        usage: vec![UsageLine {
            item: "voice_minutes".to_owned(),
            quantity: 300,
            unit_price_cents: 4,
        }],
        email: "ops@telecom.test".to_owned(),
    };
    events::append(
        &db,
        &NewEvent::new(
            "account",
            account,
            "invoice.requested",
            // The route fills account_id from the stream.
            {
                let mut data = serde_json::to_value(&billing).unwrap();
                data.as_object_mut().unwrap().remove("account_id");
                data
            },
        ),
    )
    .await
    .unwrap();
    let workflow_id = common::started_workflow(&db, account, "invoice.requested")
        .await
        .unwrap();
    let outcome = env
        .workflow::<ProcessBilling>(&workflow_id)
        .result()
        .await
        .unwrap();
    assert_eq!(outcome.invoice.total_cents, 1200);
    let told: Vec<String> = env
        .stream_events(account)
        .await
        .unwrap()
        .into_iter()
        .map(|event| event.event_type)
        .filter(|event_type| !event_type.starts_with("workflow.queue."))
        .collect();
    assert_eq!(
        told,
        ["invoice.requested", "invoice.calculated", "invoice.sent"]
    );
    bridge.stop().await.unwrap();

    // 5. Stopping the worker marks its row stopped.
    launched.signal(Signal::TERM);
    eventually("the service worker's row stopped", || async {
        registry_status(&db, None).await.as_deref() == Some("stopped")
    })
    .await;
    eventually("the service worker exited", || async {
        !launched.is_running()
    })
    .await;
    let log = std::fs::read_to_string(&service_log).unwrap();
    assert!(log.contains("worker stopped"), "{log}");
    assert!(
        platform
            .stop(Duration::from_secs(20))
            .await
            .unwrap()
            .success()
    );
}
