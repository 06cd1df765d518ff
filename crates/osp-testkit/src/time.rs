//! Time control without a global clock. Temporal Server 1.32's dev server, started with
//! `frontend.WorkflowTimeSkippingEnabled=true`, skips time per workflow: a workflow opts in
//! through UpdateWorkflowExecutionOptions (`time_skipping_config`), which the Rust client
//! does not wrap yet, so these are the raw gRPC calls. Only that workflow's virtual clock
//! moves; activities, and every other workflow, keep the real clock.

use std::time::{Duration, Instant};

use temporalio_client::{
    Client, NamespacedClient as _, WorkflowDescribeOptions, WorkflowExecutionStatus, tonic,
};
use temporalio_common::protos::temporal::api::common::v1::{
    FastForwardConfig, TimeSkippingConfig, WorkflowExecution,
};
use temporalio_common::protos::temporal::api::enums::v1::FastForwardPollingResult;
use temporalio_common::protos::temporal::api::workflow::v1::WorkflowExecutionOptions;
use temporalio_common::protos::temporal::api::workflowservice::v1::{
    PollWorkflowExecutionTimeSkippingRequest, UpdateWorkflowExecutionOptionsRequest,
};
use uuid::Uuid;

use crate::TestError;

/// How long one time-skipping call to a local server may take.
const RPC_DEADLINE: Duration = Duration::from_secs(10);

/// Sets a workflow's whole time-skipping configuration (the field is updated as a whole).
async fn set(
    client: &Client,
    workflow_id: &str,
    config: TimeSkippingConfig,
) -> Result<(), TestError> {
    let mut request = UpdateWorkflowExecutionOptionsRequest {
        namespace: client.namespace(),
        workflow_execution: Some(WorkflowExecution {
            workflow_id: workflow_id.to_owned(),
            run_id: String::new(),
        }),
        workflow_execution_options: Some(WorkflowExecutionOptions {
            time_skipping_config: Some(config),
            ..Default::default()
        }),
        identity: "osp-testkit".to_owned(),
        ..Default::default()
    };
    request
        .update_mask
        .get_or_insert_with(Default::default)
        .paths
        .push("time_skipping_config".to_owned());
    let mut service = client.connection().workflow_service();
    let update = service.update_workflow_execution_options(tonic::Request::new(request));
    tokio::time::timeout(RPC_DEADLINE, update)
        .await
        .map_err(|_| TestError::TimeSkipping {
            workflow_id: workflow_id.to_owned(),
            message: format!("no answer within {RPC_DEADLINE:?}"),
        })?
        .map(drop)
        .map_err(|status| TestError::TimeSkipping {
            workflow_id: workflow_id.to_owned(),
            message: explain(&status),
        })
}

/// Whether the workflow's latest run is still running (an error counts as running, so the
/// caller reports the original problem).
async fn still_running(client: &Client, workflow_id: &str) -> bool {
    let handle = crate::artifacts::untyped_handle(client, workflow_id, None);
    let describe = handle.describe(WorkflowDescribeOptions::default());
    match tokio::time::timeout(RPC_DEADLINE, describe).await {
        Ok(Ok(description)) => description.status() == WorkflowExecutionStatus::Running,
        _ => true,
    }
}

/// A refusal with a hint when the server does not support time skipping at all.
fn explain(status: &tonic::Status) -> String {
    let message = status.message();
    if message.to_ascii_lowercase().contains("time skipping") && message.contains("disabled")
        || status.code() == tonic::Code::Unimplemented
    {
        format!(
            "{message} (time skipping needs Temporal Server 1.32+ started with \
             --dynamic-config-value frontend.WorkflowTimeSkippingEnabled=true)"
        )
    } else {
        format!("{}: {message}", status.code())
    }
}

/// Turns time skipping on or off for one workflow.
pub(crate) async fn enable(
    client: &Client,
    workflow_id: &str,
    enabled: bool,
) -> Result<(), TestError> {
    set(
        client,
        workflow_id,
        TimeSkippingConfig {
            enabled,
            ..Default::default()
        },
    )
    .await
}

/// Fast-forwards one workflow's clock by `by` and waits until the server says the target
/// time was reached.
pub(crate) async fn fast_forward(
    client: &Client,
    workflow_id: &str,
    by: Duration,
    deadline: Duration,
) -> Result<(), TestError> {
    let refused = |message: String| TestError::TimeSkipping {
        workflow_id: workflow_id.to_owned(),
        message,
    };
    let id = Uuid::new_v4().to_string();
    set(
        client,
        workflow_id,
        TimeSkippingConfig {
            enabled: true,
            fast_forward_config: Some(FastForwardConfig {
                id: id.clone(),
                duration: Some(
                    by.try_into()
                        .map_err(|error| refused(format!("duration {by:?}: {error}")))?,
                ),
            }),
            ..Default::default()
        },
    )
    .await?;
    let started = Instant::now();
    loop {
        let remaining = deadline.saturating_sub(started.elapsed());
        if remaining.is_zero() {
            return Err(TestError::Deadline {
                what: format!("fast-forwarding workflow {workflow_id} by {by:?}"),
                waited: deadline,
                detail: String::new(),
                artifacts: None,
            });
        }
        let request = PollWorkflowExecutionTimeSkippingRequest {
            namespace: client.namespace(),
            workflow_execution: Some(WorkflowExecution {
                workflow_id: workflow_id.to_owned(),
                run_id: String::new(),
            }),
            fast_forward_id: id.clone(),
        };
        let mut service = client.connection().workflow_service();
        let poll = service.poll_workflow_execution_time_skipping(tonic::Request::new(request));
        let Ok(response) = tokio::time::timeout(remaining, poll).await else {
            continue;
        };
        let response = response
            .map_err(|status| refused(explain(&status)))?
            .into_inner();
        match FastForwardPollingResult::try_from(response.fast_forward_polling_result) {
            Ok(FastForwardPollingResult::FastForwardCompleted) => return Ok(()),
            Ok(FastForwardPollingResult::FastForwardFailed) => {
                // A workflow that finished on the way (its last timer fired) has had all the
                // time it could use: that is what the caller wanted.
                if !still_running(client, workflow_id).await {
                    return Ok(());
                }
                return Err(refused(format!(
                    "the fast-forward cannot complete: {}",
                    response.failed_reason
                )));
            }
            _ => {}
        }
    }
}
