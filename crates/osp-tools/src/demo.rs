//! `osp-tools demo` (what `make demo` runs): a throwaway PostgreSQL, PgBouncer and Temporal
//! dev server; the schema; the real `osp-worker` and `osp-bridge` binaries; one
//! `createServiceWorkflow`; one bootstrap request through `api.emit_domain_event`; then its
//! pending job and its whole event chain with the time of each event.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use osp_activities::events::{NewEvent, append};
use osp_core::events::{
    ORGANIZATION_BOOTSTRAP_COMPLETED, ORGANIZATION_BOOTSTRAP_FAILED,
    ORGANIZATION_BOOTSTRAP_INITIATED, ORGANIZATION_STREAM,
};
use osp_core::payloads::ServiceData;
use osp_core::workflows::DEFAULT_TASK_QUEUE;
use osp_workflows::CreateServiceWorkflow;
use serde_json::json;
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};
use tokio_postgres::NoTls;
use uuid::Uuid;

use osp_stack::Stack;
use osp_stack::{OspProcess, osp_binary};

macro_rules! say {
    ($($arg:tt)*) => {{
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, $($arg)*);
    }};
}

/// Runs the demo; everything it started stops when it returns or is dropped (Ctrl-C).
pub async fn run() -> anyhow::Result<()> {
    let worker_bin = osp_binary("osp-worker")?;
    let bridge_bin = osp_binary("osp-bridge")?;
    say!("OSP demo: starting a throwaway PostgreSQL, PgBouncer and Temporal dev server...");
    let started = Instant::now();
    let stack = Stack::start().await.context("starting the local stack")?;
    say!(
        "  postgres   127.0.0.1:{}  (pgbouncer 127.0.0.1:{}, transaction mode)",
        stack.postgres.port(),
        stack.pgbouncer.port()
    );
    say!(
        "  temporal   {}  ({} ms)",
        stack.temporal.address(),
        started.elapsed().as_millis()
    );

    let direct = stack.postgres.url("postgres");
    let pooled = stack.pgbouncer.url("postgres");
    let mut migrator = osp_activities::db::connect(&direct).await?;
    let report = osp_activities::migrate(&mut migrator).await?;
    say!("  schema     {report}");

    let env = vec![
        ("TEMPORAL_ADDRESS", stack.temporal.address()),
        // Queries and activities through the transaction-mode pooler, as on Supabase.
        ("DATABASE_URL", pooled.clone()),
        ("LISTEN_DATABASE_URL", direct.clone()),
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
        ("OSP_SHUTDOWN_GRACE_SECONDS", "5".to_owned()),
    ];
    let logs = stack.postgres.root_dir();
    let mut worker = start_ready("worker", &worker_bin, &env, logs).await?;
    let mut bridge = start_ready("bridge", &bridge_bin, &env, logs).await?;

    create_service(&stack).await?;
    let (db, connection) = tokio_postgres::connect(&pooled, NoTls).await?;
    let driver = tokio::spawn(connection);
    let organization = request_bootstrap(&db).await?;
    let complete = show_chain(&db, organization).await?;

    let status = bridge.stop(Duration::from_secs(15)).await?;
    say!("\nbridge stopped ({status})");
    let status = worker.stop(Duration::from_secs(15)).await?;
    say!("worker stopped ({status})");
    driver.abort();
    drop(stack);
    say!(
        "stack stopped and removed; {} s in all",
        started.elapsed().as_secs()
    );
    anyhow::ensure!(
        complete,
        "the bootstrap did not complete within 60 s; see the logs above"
    );
    Ok(())
}

/// Starts one of the binaries with `env`, logging to `{name}.log` in `logs`, and waits until
/// its `/readyz` passes.
async fn start_ready(
    name: &str,
    binary: &Path,
    env: &[(&'static str, String)],
    logs: &Path,
) -> anyhow::Result<OspProcess> {
    let clock = Instant::now();
    let mut process = OspProcess::start(binary, env, &logs.join(format!("{name}.log")))?;
    process.wait_ready(Duration::from_secs(60)).await?;
    say!(
        "  {name:<10} ready in {} ms (pid {}, metrics on :{})",
        clock.elapsed().as_millis(),
        process.pid().unwrap_or_default(),
        process.health_port()
    );
    Ok(process)
}

/// `createServiceWorkflow`, started as a client does. A client in another language would do
/// the same with its own SDK or `temporal workflow start`.
async fn create_service(stack: &Stack) -> anyhow::Result<()> {
    let client = osp_stack::local_client(&stack.temporal.address(), "osp-demo").await?;
    let workflow_id = format!("demo-service-{}", Uuid::new_v4().simple());
    let clock = Instant::now();
    let handle = client
        .start_workflow(
            CreateServiceWorkflow::run,
            ServiceData {
                name: "demo-service".into(),
                description: Some("created by make demo".into()),
                service_schema: Some("demo_service".into()),
                metadata: None,
            },
            WorkflowStartOptions::new(DEFAULT_TASK_QUEUE, &workflow_id).build(),
        )
        .await?;
    let service = handle
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    say!(
        "\ncreateServiceWorkflow {workflow_id} completed in {} ms:",
        clock.elapsed().as_millis()
    );
    say!("  {}", serde_json::to_string(&service)?);
    Ok(())
}

/// A bootstrap request as a client writes it from CONTRACTS.md: one event on the new
/// organization's stream. The organization id is left out: the route fills it from the
/// stream. Returns the stream (the organization's id).
async fn request_bootstrap(db: &tokio_postgres::Client) -> anyhow::Result<Uuid> {
    let organization = Uuid::new_v4();
    let data = json!({
        "name": "Acme Demo",
        "subdomain": "acme-demo",
        "admin_users": [{"email": "admin@acme.example", "name": "Ada Admin"}],
        "plan": "pro"
    });
    let event_id = append(
        db,
        &NewEvent::new(
            ORGANIZATION_STREAM,
            organization,
            ORGANIZATION_BOOTSTRAP_INITIATED,
            data,
        ),
    )
    .await?;
    say!("\n{ORGANIZATION_BOOTSTRAP_INITIATED} emitted: event {event_id} on stream {organization}");
    let job = db
        .query_typed(
            "select id, status, workflow_type, task_queue, workflow_id from public.workflow_queue_projection
             where stream_id = $1",
            &[(&organization, tokio_postgres::types::Type::UUID)],
        )
        .await?;
    if let Some(job) = job.first() {
        say!(
            "the triggers queued job {}: {} on task queue {}, workflow id {} (status now: {})",
            job.get::<_, Uuid>(0),
            job.get::<_, String>(2),
            job.get::<_, String>(3),
            job.get::<_, Option<String>>(4).unwrap_or_default(),
            job.get::<_, String>(1)
        );
    }
    Ok(organization)
}

/// Waits (at most 60 s) for the stream's chain to end and prints it; whether it completed.
async fn show_chain(db: &tokio_postgres::Client, organization: Uuid) -> anyhow::Result<bool> {
    // The chain ends with completed (or failed); poll the stream with a deadline.
    let deadline = Instant::now() + Duration::from_secs(60);
    let rows = loop {
        let rows = db
            .query_typed(
                "select stream_version, event_type,
                        (extract(epoch from created_at - min(created_at) over ()) * 1000.0)::float8
                 from public.domain_events where stream_id = $1 order by stream_version",
                &[(&organization, tokio_postgres::types::Type::UUID)],
            )
            .await?;
        let done = rows.iter().any(|row| {
            let event_type: String = row.get(1);
            event_type == ORGANIZATION_BOOTSTRAP_COMPLETED
                || event_type == ORGANIZATION_BOOTSTRAP_FAILED
        });
        if done || Instant::now() > deadline {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    say!("\nevent chain of stream {organization} (ms after the request):");
    for row in &rows {
        let version: i32 = row.get(0);
        let event_type: String = row.get(1);
        let offset: f64 = row.get::<_, Option<f64>>(2).unwrap_or_default();
        say!("  {offset:>9.1}  {version:>2}  {event_type}");
    }
    Ok(rows
        .iter()
        .any(|row| row.get::<_, String>(1) == ORGANIZATION_BOOTSTRAP_COMPLETED))
}
