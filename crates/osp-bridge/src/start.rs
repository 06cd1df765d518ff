//! Starting a workflow in Temporal, untyped: the route's workflow type, its task queue, the
//! job's workflow id and the routed event's data as the single `json/plain` argument. A start
//! whose workflow id already exists, running or closed, is a success: the execution it names
//! is the one this job asked for.

use std::time::Duration;

use temporalio_client::grpc::WorkflowService;
use temporalio_client::tonic::{self, Code};
use temporalio_client::{Client, NamespacedClient};
use temporalio_common::protos::temporal::api::common::v1::{
    Payload, Payloads, WorkflowExecution, WorkflowType,
};
use temporalio_common::protos::temporal::api::enums::v1::{
    TaskQueueKind, WorkflowIdConflictPolicy, WorkflowIdReusePolicy,
};
use temporalio_common::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_common::protos::temporal::api::workflowservice::v1::{
    DescribeNamespaceRequest, DescribeWorkflowExecutionRequest, StartWorkflowExecutionRequest,
};

use crate::check::StartRequest;

/// How a start went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    /// The run the workflow id names now.
    pub run_id: String,
    /// True when this request did not start it: it was running or had closed already.
    pub existing: bool,
}

/// Why a start failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StartError {
    /// Temporal could not be reached or did not answer in time; the job is retried later.
    #[error("temporal unavailable: {0}")]
    Unavailable(String),
    /// Temporal refused the request as malformed; retrying cannot help.
    #[error("temporal rejected the start: {0}")]
    Rejected(String),
}

/// Starts workflows on one Temporal client.
#[derive(Clone)]
pub struct Starter {
    client: Client,
    timeout: Duration,
}

impl std::fmt::Debug for Starter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Starter")
            .field("namespace", &self.client.namespace())
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// A JSON value as the default payload converter writes it, so that any SDK reads it.
fn json_payload(value: &serde_json::Value) -> Payload {
    Payload {
        metadata: [("encoding".to_owned(), b"json/plain".to_vec())].into(),
        // Serialising a `Value` cannot fail.
        data: serde_json::to_vec(value).unwrap_or_default(),
        ..Default::default()
    }
}

fn classify(status: &tonic::Status) -> StartError {
    let message = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        Code::InvalidArgument => StartError::Rejected(message),
        _ => StartError::Unavailable(message),
    }
}

impl Starter {
    /// Every call gives up after `timeout` (the client's own retries included), so a dead
    /// server costs a dispatch at most that long.
    pub fn new(client: Client, timeout: Duration) -> Self {
        Starter { client, timeout }
    }

    /// Starts the workflow unless its id exists; either way, returns the run the id names.
    pub async fn start(&self, request: &StartRequest) -> Result<Started, StartError> {
        let proto = StartWorkflowExecutionRequest {
            namespace: self.client.namespace(),
            workflow_id: request.workflow_id.clone(),
            workflow_type: Some(WorkflowType {
                name: request.workflow_type.clone(),
            }),
            task_queue: Some(TaskQueue {
                name: request.task_queue.clone(),
                kind: TaskQueueKind::Normal as i32,
                normal_name: String::new(),
            }),
            input: Some(Payloads {
                payloads: vec![json_payload(&request.input)],
            }),
            identity: self.client.identity(),
            request_id: uuid::Uuid::new_v4().to_string(),
            // A running execution with this id is the one we want; a closed one too: the
            // workflow id is the job's identity, so it must never run twice.
            workflow_id_reuse_policy: WorkflowIdReusePolicy::RejectDuplicate as i32,
            workflow_id_conflict_policy: WorkflowIdConflictPolicy::UseExisting as i32,
            ..Default::default()
        };
        let mut service = self.client.clone();
        let call = service.start_workflow_execution(tonic::Request::new(proto));
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(StartError::Unavailable(format!(
                "no answer within {} ms",
                self.timeout.as_millis()
            ))),
            Ok(Ok(response)) => {
                let response = response.into_inner();
                Ok(Started {
                    run_id: response.run_id,
                    existing: !response.started,
                })
            }
            Ok(Err(status)) if status.code() == Code::AlreadyExists => {
                // Closed, and the reuse policy refuses a second run: already started.
                let run_id = self.latest_run(&request.workflow_id).await?;
                Ok(Started {
                    run_id,
                    existing: true,
                })
            }
            Ok(Err(status)) => Err(classify(&status)),
        }
    }

    /// The run id of the latest execution with `workflow_id`.
    async fn latest_run(&self, workflow_id: &str) -> Result<String, StartError> {
        let request = DescribeWorkflowExecutionRequest {
            namespace: self.client.namespace(),
            execution: Some(WorkflowExecution {
                workflow_id: workflow_id.to_owned(),
                run_id: String::new(),
            }),
        };
        let mut service = self.client.clone();
        let call = service.describe_workflow_execution(tonic::Request::new(request));
        let response = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => {
                return Err(StartError::Unavailable(format!(
                    "describing {workflow_id}: no answer within {} ms",
                    self.timeout.as_millis()
                )));
            }
            Ok(result) => result.map_err(|status| classify(&status))?,
        };
        response
            .into_inner()
            .workflow_execution_info
            .and_then(|info| info.execution)
            .map(|execution| execution.run_id)
            .filter(|run_id| !run_id.is_empty())
            .ok_or_else(|| {
                StartError::Unavailable(format!(
                    "describing {workflow_id}: no run id in the answer"
                ))
            })
    }

    /// Whether Temporal answers for the namespace, within `timeout`.
    pub async fn probe(&self, timeout: Duration) -> Result<(), StartError> {
        let request = DescribeNamespaceRequest {
            namespace: self.client.namespace(),
            ..Default::default()
        };
        let mut service = self.client.clone();
        let call = service.describe_namespace(tonic::Request::new(request));
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(StartError::Unavailable(format!(
                "no answer within {} ms",
                timeout.as_millis()
            ))),
            Ok(Ok(_)) => Ok(()),
            Ok(Err(status)) => Err(StartError::Unavailable(format!(
                "{:?}: {}",
                status.code(),
                status.message()
            ))),
        }
    }
}
