//! `deployWorkerWorkflow` end to end on the dev server and Postgres: the manifest written,
//! the deployer run and every attempt recorded in `osp_metadata.worker_registry` (directly
//! and through PgBouncer); a deployer that keeps failing, its retries' backoff skipped by
//! time skipping; and a service schema with shell metacharacters refused.

use std::time::{Duration, Instant};

use crate::common::{Database, count, record};
use osp_core::payloads::{DeploymentStatus, WorkerDeploymentRequest, WorkflowSpec};
use osp_core::workflows::deploy_worker_workflow_id;
use osp_testkit::{TestError, test_env};
use osp_workflows::{DEPLOYER_ATTEMPTS, DeployWorkerWorkflow, INVALID_INPUT};

fn request(schema: &str) -> WorkerDeploymentRequest {
    WorkerDeploymentRequest {
        service_schema: schema.to_owned(),
        service_name: Some("Billing".to_owned()),
        workflows: vec![WorkflowSpec {
            name: "invoiceWorkflow".to_owned(),
            activities: vec!["sendInvoice".to_owned()],
        }],
        task_queue: None,
    }
}

fn command(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|part| (*part).to_owned()).collect()
}

/// Deploys `schema`'s worker. Each caller has a schema of its own: the workflow id is the
/// schema's (`deploy-worker-{schema}`, so that a service is deployed once at a time), and the
/// tests share the dev server's namespace and run at once, so a shared schema made the later
/// start fail with "Workflow already started".
async fn deploys(database: Database, schema: &str) {
    let env = test_env().await.unwrap();
    let schema = osp_core::validate::ServiceSchema::parse(schema).unwrap();
    let deployment = env
        .worker()
        .workflow::<DeployWorkerWorkflow>()
        .activities(
            database
                .platform(&env)
                .deployer_command(command(&[
                    "sh",
                    "-c",
                    "echo deploying {service_schema} on {task_queue} from {manifest_path}",
                ]))
                .build()
                .unwrap(),
        )
        .run_until(async {
            let workflow = env
                .start_with_id(
                    DeployWorkerWorkflow::run,
                    request(schema.as_str()),
                    &deploy_worker_workflow_id(&schema),
                )
                .await?;
            let deployment = workflow.result().await?;
            // One checked-in history, from the direct run.
            if database == Database::Direct {
                record(&workflow, "deploy_worker").await;
            }
            Ok::<_, TestError>(deployment)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(deployment.status, DeploymentStatus::Deployed);
    assert_eq!(deployment.attempts, 1);
    assert_eq!(deployment.task_queue, format!("{schema}-tasks"));
    let manifest = std::fs::read_to_string(&deployment.manifest_path).unwrap();
    assert!(manifest.contains("invoiceWorkflow"), "{manifest}");

    let db = env.db().await.unwrap();
    let row = db
        .query_one(
            "select deployment_status, logs from osp_metadata.worker_registry where id = $1",
            &[&deployment.registry_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "deployed");
    let logs: String = row.get(1);
    assert!(
        logs.contains(&format!("deploying {schema} on {schema}-tasks")),
        "{logs}"
    );
}

#[tokio::test]
async fn deploys_a_worker_directly() {
    deploys(Database::Direct, "billing").await;
}

#[tokio::test]
async fn deploys_a_worker_through_pgbouncer() {
    deploys(Database::PgBouncer, "billing_pooled").await;
}

#[tokio::test]
async fn a_failing_deployer_is_retried_then_recorded_as_failed() {
    // Four attempts with 5, 10 and 20 s of backoff between them: 35 s of waiting that time
    // skipping removes.
    let env = test_env().await.unwrap();
    let started = Instant::now();
    let deployment = env
        .worker()
        .workflow::<DeployWorkerWorkflow>()
        .activities(
            env.platform()
                .deployer_command(command(&["sh", "-c", "echo chart not found >&2; exit 3"]))
                .build()
                .unwrap(),
        )
        .run_until(async {
            let workflow = env
                .start(DeployWorkerWorkflow::run, request("billing"))
                .await?;
            let deployment = workflow.result_skipping_time().await?;
            record(&workflow, "deploy_worker_failed").await;
            Ok::<_, TestError>(deployment)
        })
        .await
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(deployment.status, DeploymentStatus::Failed);
    assert_eq!(deployment.attempts, DEPLOYER_ATTEMPTS);
    let error = deployment.error.unwrap_or_default();
    assert!(error.contains("chart not found"), "{error}");
    assert_eq!(
        count(
            &env,
            "select count(*) from osp_metadata.worker_registry where deployment_status = 'failed'"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn a_service_schema_with_shell_metacharacters_is_refused() {
    let env = test_env().await.unwrap();
    let (failure, history) = env
        .worker()
        .workflow::<DeployWorkerWorkflow>()
        .activities(
            env.platform()
                .deployer_command(command(&["sh", "-c", "echo {service_schema}"]))
                .build()
                .unwrap(),
        )
        .run_until(async {
            let workflow = env
                .start(DeployWorkerWorkflow::run, request("billing; rm -rf / #"))
                .await?;
            let failure = workflow.failure().await?;
            Ok::<_, TestError>((failure, workflow.history().await?))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        failure.type_name.as_deref(),
        Some(INVALID_INPUT),
        "{failure}"
    );
    assert!(failure.non_retryable, "{failure}");
    assert!(failure.message.contains("service_schema: "), "{failure}");
    assert!(history.activities().is_empty());
    assert_eq!(
        count(&env, "select count(*) from osp_metadata.worker_registry").await,
        0
    );
    assert!(!env.scratch_dir().join("manifests").exists());
}
