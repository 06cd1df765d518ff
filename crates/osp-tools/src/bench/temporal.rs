//! The benchmark's Temporal side: a client, raw workflow starts shaped exactly like the
//! bridge's (so the two can be compared), typed start-and-wait for the worker and ceiling
//! runs, an in-process worker for the ceilings, and execution start times read back from
//! the server's visibility store.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt as _;
use osp_core::activities::OspActivities;
use osp_core::payloads::{Service, ServiceData};
use osp_workflows::CreateServiceWorkflow;
use serde_json::Value;
use temporalio_client::grpc::WorkflowService as _;
use temporalio_client::tonic;
use temporalio_client::{
    Client, NamespacedClient as _, WorkflowGetResultOptions, WorkflowListOptions,
    WorkflowStartOptions,
};
use temporalio_common::HasWorkflowDefinition;
use temporalio_common::protos::temporal::api::common::v1::{Payload, Payloads, WorkflowType};
use temporalio_common::protos::temporal::api::enums::v1::TaskQueueKind;
use temporalio_common::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_common::protos::temporal::api::workflowservice::v1::StartWorkflowExecutionRequest;
use temporalio_common::worker::WorkerDeploymentOptions;
use temporalio_sdk::runtime::RuntimeOptions;
use temporalio_sdk::{Runtime, Worker, WorkerOptions};
use uuid::Uuid;

use super::BenchError;
use osp_testkit::Replacement;

/// The bench-only workflow without activities: the cheapest workflow a worker can run, one
/// workflow task from start to completion. Its rate is what the server allows.
mod noop {
    use osp_core::payloads::ServiceData;
    use temporalio_macros::{workflow, workflow_methods};
    use temporalio_sdk::{WorkflowContext, WorkflowResult};

    /// Returns its input: same payload sizes as `createServiceWorkflow`, no activity.
    #[workflow]
    #[derive(Debug, Default)]
    pub struct BenchNoActivityWorkflow;

    #[workflow_methods]
    impl BenchNoActivityWorkflow {
        #[run(name = "ospBenchNoActivityWorkflow")]
        pub async fn run(
            _ctx: &mut WorkflowContext<Self>,
            input: ServiceData,
        ) -> WorkflowResult<ServiceData> {
            Ok(input)
        }
    }
}

pub use noop::BenchNoActivityWorkflow;

/// Workflow task slots of the in-process ceiling worker: the seed's concurrency of 10, which
/// the bench also gives the `osp-worker` it measures (`OSP_MAX_CONCURRENT_WORKFLOW_TASKS`), so
/// that the ceiling and the worker differ only in what runs, not in how much the server is
/// asked at once, whatever the worker's default becomes.
pub const WORKFLOW_SLOTS: usize = 10;
/// Activity slots, likewise (`OSP_MAX_CONCURRENT_ACTIVITIES`).
pub const ACTIVITY_SLOTS: usize = 10;

/// Connects a client to `address`, namespace `default`, without gzip: the ceilings are meant
/// to be the cheapest way to ask the server.
pub async fn connect(address: &str) -> Result<Client, BenchError> {
    osp_stack::local_client(address, "osp-bench")
        .await
        .map_err(|error| BenchError::Temporal(osp_stack::error_chain(&error)))
}

/// `ServiceData` for the `index`-th workflow of a run.
pub fn service_data(run: &str, index: usize) -> ServiceData {
    ServiceData {
        name: format!("bench-{run}-{index}"),
        description: Some("osp-tools bench".to_owned()),
        service_schema: Some("bench_service".to_owned()),
        metadata: None,
    }
}

/// Starts `workflow` and waits for its result; the error is the first failure's message.
pub async fn start_and_wait<W>(
    client: &Client,
    workflow: W,
    input: W::Input,
    task_queue: &str,
    workflow_id: String,
) -> Result<(), String>
where
    W: HasWorkflowDefinition,
    W::Input: Send,
{
    let handle = client
        .start_workflow(
            workflow,
            input,
            WorkflowStartOptions::new(task_queue, workflow_id).build(),
        )
        .await
        .map_err(|error| format!("start: {error}"))?;
    handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .map(drop)
        .map_err(|error| format!("result: {error}"))
}

/// Starts `workflow_type` with `input` as its one `json/plain` argument, the request the
/// bridge sends (`osp-bridge/src/start.rs`), minus the id policies that only matter for
/// duplicates. Nothing polls `task_queue`, so the execution stays open.
pub async fn raw_start(
    client: &Client,
    workflow_type: &str,
    task_queue: &str,
    workflow_id: String,
    input: &Value,
) -> Result<(), String> {
    let request = StartWorkflowExecutionRequest {
        namespace: client.namespace(),
        workflow_id,
        workflow_type: Some(WorkflowType {
            name: workflow_type.to_owned(),
        }),
        task_queue: Some(TaskQueue {
            name: task_queue.to_owned(),
            kind: TaskQueueKind::Normal as i32,
            normal_name: String::new(),
        }),
        input: Some(Payloads {
            payloads: vec![Payload {
                metadata: [("encoding".to_owned(), b"json/plain".to_vec())].into(),
                data: serde_json::to_vec(input).unwrap_or_default(),
                ..Default::default()
            }],
        }),
        identity: client.identity(),
        request_id: Uuid::new_v4().to_string(),
        ..Default::default()
    };
    let mut service = client.clone();
    service
        .start_workflow_execution(tonic::Request::new(request))
        .await
        .map(drop)
        .map_err(|status| format!("{:?}: {}", status.code(), status.message()))
}

/// What the in-process ceiling worker runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeilingWorkload {
    /// [`BenchNoActivityWorkflow`].
    NoActivity,
    /// The real `createServiceWorkflow` whose `createEntity` returns a made-up row at once:
    /// the server's share of the worker's workflow (two workflow tasks and one activity).
    StubActivity,
}

/// Runs an in-process worker on `task_queue` (the SDK's worker is not `Send`, so it runs on
/// this task) while `body` runs; stops it afterwards.
pub async fn with_ceiling_worker<F: Future>(
    client: &Client,
    task_queue: &str,
    workload: CeilingWorkload,
    body: F,
) -> Result<F::Output, BenchError> {
    // The worker's own tuner construction, at the bench's slot counts.
    let tuner = osp_worker::tuner(WORKFLOW_SLOTS, ACTIVITY_SLOTS);
    let mut options = WorkerOptions::new(task_queue)
        // A fixed build id: the default hashes the executable.
        .deployment_options(WorkerDeploymentOptions::from_build_id(
            "osp-bench".to_owned(),
        ))
        .tuner(tuner)
        .graceful_shutdown_period(Duration::ZERO)
        .build();
    match workload {
        CeilingWorkload::NoActivity => {
            options
                .register_workflow::<BenchNoActivityWorkflow>()
                .map_err(|error| BenchError::Temporal(error.to_string()))?;
        }
        CeilingWorkload::StubActivity => {
            options
                .register_workflow::<CreateServiceWorkflow>()
                .map_err(|error| BenchError::Temporal(error.to_string()))?;
            options.register_activities(Replacement::new(
                OspActivities::create_entity,
                |input: ServiceData| async move {
                    Ok(Service {
                        id: Uuid::new_v4(),
                        name: input.name,
                        description: input.description,
                        service_schema: input.service_schema,
                        metadata: input.metadata.unwrap_or_default(),
                        created_at: "2026-01-01T00:00:00+00:00".to_owned(),
                    })
                },
            ));
        }
    }
    let runtime_options = RuntimeOptions::builder()
        .heartbeat_interval(None)
        .build()
        .map_err(BenchError::Temporal)?;
    let runtime = Runtime::from_current_tokio(runtime_options)
        .map_err(|error| BenchError::Temporal(error.to_string()))?;
    let mut worker = Worker::new(&runtime, client.clone(), options)
        .map_err(|error| BenchError::Temporal(error.to_string()))?;
    let stop = worker.shutdown_handle();
    let running = worker.run();
    tokio::pin!(running);
    tokio::pin!(body);
    let output = tokio::select! {
        output = &mut body => output,
        result = &mut running => {
            return Err(BenchError::Temporal(match result {
                Ok(()) => "the ceiling worker stopped on its own".to_owned(),
                Err(error) => format!("the ceiling worker failed: {error}"),
            }));
        }
    };
    stop();
    match tokio::time::timeout(Duration::from_secs(30), running).await {
        Ok(Ok(())) => Ok(output),
        Ok(Err(error)) => Err(BenchError::Temporal(format!(
            "the ceiling worker failed while stopping: {error}"
        ))),
        Err(_) => Err(BenchError::Temporal(
            "the ceiling worker did not stop within 30 s".to_owned(),
        )),
    }
}

/// Seconds since the Unix epoch.
pub fn epoch_seconds(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The start time (seconds since the epoch) of each execution in `ids` of `workflow_type`
/// started since `since` (an RFC 3339 instant), as the server recorded it. Visibility trails
/// the start by a moment, so this lists again until every id is seen or `deadline` passes.
pub async fn start_times(
    client: &Client,
    workflow_type: &str,
    since: &str,
    ids: &HashSet<String>,
    deadline: Duration,
) -> Result<HashMap<String, f64>, BenchError> {
    let query = format!("WorkflowType = '{workflow_type}' AND StartTime >= '{since}'");
    let give_up = Instant::now() + deadline;
    loop {
        let mut found = HashMap::with_capacity(ids.len());
        let mut stream = client.list_workflows(query.clone(), WorkflowListOptions::default());
        while let Some(execution) = stream.next().await {
            let execution =
                execution.map_err(|error| BenchError::Temporal(format!("listing: {error}")))?;
            if ids.contains(execution.id())
                && let Some(start) = execution.start_time()
            {
                found.insert(execution.id().to_owned(), epoch_seconds(start));
            }
        }
        if found.len() >= ids.len() || Instant::now() >= give_up {
            return Ok(found);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
