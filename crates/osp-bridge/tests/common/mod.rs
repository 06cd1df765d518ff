//! Shared by the bridge's integration tests: a migrated database on the testkit's stack,
//! bridge configurations, concurrent writers of bootstrap events, polling with a deadline,
//! queries of the queue and of Temporal, and a worker that runs the bootstrap workflow.

#![allow(
    dead_code,
    clippy::unwrap_used,
    reason = "each test binary uses a part; tests"
)]

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use futures::StreamExt;
use osp_bridge::{Bridge, BridgeError, ListenTiming};
use osp_config::{BridgeConfig, Sources};
use osp_core::events::{ORGANIZATION_BOOTSTRAP_INITIATED, ORGANIZATION_STREAM};
use osp_core::workflows::{ORGANIZATION_BOOTSTRAP_WORKFLOW, organization_bootstrap_workflow_id};
use osp_runtime::{Health, Metrics};
use osp_testkit::Stack;
use serde_json::{Value, json};
use temporalio_client::{Client, WorkflowListOptions};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_postgres::NoTls;
use tokio_postgres::types::Type;
use uuid::Uuid;

/// Tests that load the machine (hundreds of events, restarts) take turns, so that one
/// test's timing is not another's: the machine has two cores.
pub static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Log lines of the bridge in test output, filtered by `RUST_LOG` (default `warn`).
pub fn init_logging() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".to_owned());
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    });
}

/// One connection for the test itself (not through the pooler, so ordinary statements).
pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// The stack with one migrated database, shaped like a Supabase project's.
pub struct Env {
    pub stack: Stack,
    /// The database, reached directly.
    pub direct_url: String,
    /// The same database through the transaction-mode PgBouncer.
    pub pooled_url: String,
}

impl Env {
    pub async fn start() -> Env {
        init_logging();
        let stack = Stack::start().await.unwrap();
        let direct_url = stack.postgres.create_database("osp").await.unwrap();
        // Shaped like a Supabase project (roles, default privileges) before the migrations.
        stack.postgres.apply_supabase_roles("osp").await.unwrap();
        let pooled_url = stack.pgbouncer.url("osp");
        let mut client = connect(&direct_url).await;
        osp_activities::migrate(&mut client).await.unwrap();
        Env {
            stack,
            direct_url,
            pooled_url,
        }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.direct_url).await
    }

    /// The environment a bridge gets: this stack, no health server, text logs, fast sweeps
    /// (tests do not wait 15 s), plus `extra` (which wins).
    pub fn env(
        &self,
        database_url: &str,
        listen_url: &str,
        extra: &[(&str, &str)],
    ) -> HashMap<String, String> {
        let mut env: HashMap<String, String> = [
            ("TEMPORAL_ADDRESS", self.stack.temporal.address().as_str()),
            ("DATABASE_URL", database_url),
            ("LISTEN_DATABASE_URL", listen_url),
            ("ENABLE_HEALTH_CHECK", "false"),
            ("LOG_FORMAT", "text"),
            ("OSP_BRIDGE_SWEEP_INTERVAL_MS", "5000"),
            ("OSP_BRIDGE_FALLBACK_SWEEP_INTERVAL_MS", "500"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (key, value) in extra {
            env.insert((*key).to_owned(), (*value).to_owned());
        }
        env
    }

    pub fn config(
        &self,
        database_url: &str,
        listen_url: &str,
        extra: &[(&str, &str)],
    ) -> BridgeConfig {
        let env = self.env(database_url, listen_url, extra);
        let read_file = |path: &std::path::Path| std::fs::read_to_string(path);
        BridgeConfig::load(&Sources {
            env: &env,
            read_file: &read_file,
        })
        .unwrap()
    }

    /// A Temporal client on the stack's server.
    pub async fn temporal(&self) -> Client {
        let config = self.config(&self.direct_url, &self.direct_url, &[]);
        osp_runtime::temporal::connect(&config.temporal, "osp-bridge-tests", None)
            .await
            .unwrap()
    }
}

/// LISTEN timing for tests: probes often, so a broken LISTEN is noticed in a second.
pub fn fast_listen() -> ListenTiming {
    ListenTiming {
        ping_interval: Duration::from_secs(2),
        probe_timeout: Duration::from_secs(2),
        reconnect_initial: Duration::from_millis(200),
        reconnect_max: Duration::from_secs(2),
    }
}

/// An in-process bridge on its own task.
pub struct RunningBridge {
    stop: Option<oneshot::Sender<()>>,
    handle: JoinHandle<Result<(), BridgeError>>,
    pub health: Health,
    pub metrics: Metrics,
    pub worker_id: String,
}

impl RunningBridge {
    pub fn spawn(config: BridgeConfig) -> RunningBridge {
        Self::spawn_bridge(Bridge::new(config).with_listen_timing(fast_listen()))
    }

    pub fn spawn_bridge(bridge: Bridge) -> RunningBridge {
        let (stop, stopped) = oneshot::channel::<()>();
        let health = bridge.health();
        let metrics = bridge.metrics();
        let worker_id = bridge.worker_id().to_owned();
        let handle = tokio::spawn(bridge.run(async {
            let _ = stopped.await;
        }));
        RunningBridge {
            stop: Some(stop),
            handle,
            health,
            metrics,
            worker_id,
        }
    }

    /// Asks it to stop and waits until it has drained.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        (&mut self.handle).await.unwrap().unwrap();
    }

    /// The value of one series of `/metrics` (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        metric_value(&self.metrics.render().await, series)
    }
}

/// The value of `series` (name with labels, as printed) in Prometheus text, 0 when absent.
pub fn metric_value(text: &str, series: &str) -> f64 {
    osp_testkit::metric_value(text, series).unwrap_or(0.0)
}

/// Polls `check` every 50 ms until it yields a value; panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn bootstrap_data(organization: Uuid) -> Value {
    json!({
        "organization_id": organization,
        "name": format!("Org {}", &organization.simple().to_string()[..8]),
        "subdomain": format!("org-{}", &organization.simple().to_string()[..12]),
        "admin_users": [{"email": format!("admin@{}.example.test", organization.simple()), "name": "Admin"}]
    })
}

/// Appends one event on `stream` (an organization stream unless the event says otherwise).
pub async fn emit(
    client: &tokio_postgres::Client,
    stream: Uuid,
    event_type: &str,
    data: &Value,
) -> Uuid {
    // Unnamed statements, so that writers may go through the transaction-mode pooler.
    client
        .query_typed(
            "select api.emit_domain_event($1, $2, $3, $4)",
            &[
                (&stream, Type::UUID),
                (&ORGANIZATION_STREAM, Type::TEXT),
                (&event_type, Type::TEXT),
                (data, Type::JSONB),
            ],
        )
        .await
        .unwrap()[0]
        .get(0)
}

/// One bootstrap request for a new organization; its id (the stream).
pub async fn emit_bootstrap(client: &tokio_postgres::Client) -> Uuid {
    let organization = Uuid::new_v4();
    emit(
        client,
        organization,
        ORGANIZATION_BOOTSTRAP_INITIATED,
        &bootstrap_data(organization),
    )
    .await;
    organization
}

/// `total` bootstrap requests from `writers` concurrent connections; the organization ids.
pub async fn emit_bootstraps(url: &str, total: usize, writers: usize) -> Vec<Uuid> {
    let mut tasks = Vec::new();
    for writer in 0..writers {
        let url = url.to_owned();
        let count = total / writers + usize::from(writer < total % writers);
        tasks.push(tokio::spawn(async move {
            let client = connect(&url).await;
            let mut organizations = Vec::with_capacity(count);
            for _ in 0..count {
                let organization = emit_bootstrap(&client).await;
                organizations.push(organization);
            }
            organizations
        }));
    }
    let mut all = Vec::with_capacity(total);
    for task in tasks {
        all.extend(task.await.unwrap());
    }
    all
}

/// Jobs by status.
pub async fn job_statuses(client: &tokio_postgres::Client) -> BTreeMap<String, i64> {
    client
        .query(
            "select status, count(*) from workflow_queue_projection group by status",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

/// Waits until `total` jobs exist and every one is completed or failed.
pub async fn wait_settled(
    client: &tokio_postgres::Client,
    total: i64,
    timeout: Duration,
) -> BTreeMap<String, i64> {
    eventually(timeout, &format!("{total} jobs settled"), || async {
        let statuses = job_statuses(client).await;
        let settled = statuses.get("completed").copied().unwrap_or(0)
            + statuses.get("failed").copied().unwrap_or(0);
        let all: i64 = statuses.values().sum();
        (all == total && settled == total).then_some(statuses)
    })
    .await
}

/// Every bootstrap execution Temporal lists: workflow id -> run ids.
pub async fn bootstrap_executions(temporal: &Client) -> BTreeMap<String, Vec<String>> {
    let mut stream = temporal.list_workflows(
        format!("WorkflowType = '{ORGANIZATION_BOOTSTRAP_WORKFLOW}'"),
        WorkflowListOptions::default(),
    );
    let mut executions: BTreeMap<String, Vec<String>> = BTreeMap::new();
    while let Some(execution) = stream.next().await {
        let execution = execution.unwrap();
        executions
            .entry(execution.id().to_owned())
            .or_default()
            .push(execution.run_id().to_owned());
    }
    executions
}

/// Waits until Temporal lists exactly one execution per organization (visibility lags the
/// starts a little), and checks that no id has two runs.
pub async fn assert_one_execution_each(
    temporal: &Client,
    organizations: &[Uuid],
    timeout: Duration,
) {
    let expected: std::collections::BTreeSet<String> = organizations
        .iter()
        .map(|organization| organization_bootstrap_workflow_id(*organization))
        .collect();
    let executions = eventually(timeout, "Temporal to list every execution", || async {
        let executions = bootstrap_executions(temporal).await;
        (executions.len() >= expected.len()).then_some(executions)
    })
    .await;
    let ids: std::collections::BTreeSet<String> = executions.keys().cloned().collect();
    assert_eq!(ids, expected, "executions differ from the expected ids");
    let doubled: Vec<_> = executions
        .iter()
        .filter(|(_, runs)| runs.len() != 1)
        .collect();
    assert!(
        doubled.is_empty(),
        "workflow ids with more than one run: {doubled:?}"
    );
}

/// Per job: how many claimed, started and completed events its stream holds, and whether a
/// start found an existing execution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobEvents {
    pub claimed: usize,
    pub started: usize,
    pub completed: usize,
    pub failed: usize,
    pub existing: usize,
    pub claimers: Vec<String>,
}

pub async fn job_events(client: &tokio_postgres::Client) -> HashMap<Uuid, JobEvents> {
    let rows = client
        .query(
            "select (event_data ->> 'job_id')::uuid, event_type, event_data
             from domain_events
             where event_type in ('workflow.queue.claimed', 'workflow.queue.completed',
                                  'workflow.queue.failed', 'organization.bootstrap.workflow_started')
             order by stream_id, stream_version",
            &[],
        )
        .await
        .unwrap();
    let mut jobs: HashMap<Uuid, JobEvents> = HashMap::new();
    for row in rows {
        let job: Uuid = row.get(0);
        let event_type: String = row.get(1);
        let data: Value = row.get(2);
        let entry = jobs.entry(job).or_default();
        match event_type.as_str() {
            "workflow.queue.claimed" => {
                entry.claimed += 1;
                entry
                    .claimers
                    .push(data["worker_id"].as_str().unwrap_or_default().to_owned());
            }
            "workflow.queue.completed" => entry.completed += 1,
            "workflow.queue.failed" => entry.failed += 1,
            _ => {
                entry.started += 1;
                if data["existing_execution"] == json!(true) {
                    entry.existing += 1;
                }
            }
        }
    }
    jobs
}

/// The event types of a stream, in order.
pub async fn stream_events(client: &tokio_postgres::Client, stream: Uuid) -> Vec<String> {
    client
        .query(
            "select event_type from domain_events where stream_id = $1 order by stream_version",
            &[&stream],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

/// Runs a worker with the OSP workflows and activities on `osp-queue` while `body` runs, on
/// this task (the SDK's worker is not `Send`).
pub async fn with_worker<T>(env: &Env, body: impl Future<Output = T>) -> T {
    use osp_activities::PlatformActivities;
    use osp_activities::deployer::Deployer;
    use osp_activities::dns::LogDns;
    use osp_activities::email::LogMailer;
    use temporalio_sdk::runtime::RuntimeOptions;
    use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
    use temporalio_sdk::{Runtime, Worker, WorkerOptions};

    let runtime = Runtime::from_current_tokio(RuntimeOptions::builder().build().unwrap()).unwrap();
    let client = env.temporal().await;
    let pool = osp_activities::db::pool(&env.direct_url, 16).unwrap();
    let manifests = std::env::temp_dir().join(format!("osp-bridge-tests-{}", Uuid::new_v4()));
    let activities = PlatformActivities::new(
        pool,
        Arc::new(LogDns::new("example.test")),
        Arc::new(LogMailer),
        Deployer {
            manifest_dir: manifests,
            command: None,
        },
    );
    let tuner = TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(50))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(50))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(10))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(2))
        .build();
    let mut options = WorkerOptions::new(osp_core::workflows::DEFAULT_TASK_QUEUE)
        .register_activities(activities)
        .tuner(tuner)
        .build();
    osp_workflows::register_all(&mut options).unwrap();
    let mut worker = Worker::new(&runtime, client, options).unwrap();
    let shutdown = worker.shutdown_handle();
    let mut running = std::pin::pin!(worker.run());
    let mut body = std::pin::pin!(body);
    let result = tokio::select! {
        result = &mut body => result,
        outcome = &mut running => panic!("the worker stopped early: {outcome:?}"),
    };
    shutdown();
    running.await.unwrap();
    result
}
