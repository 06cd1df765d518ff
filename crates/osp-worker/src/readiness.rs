//! Readiness means polling: the worker is ready once the server lists this worker's
//! identity among the pollers of its task queue, for workflow and activity tasks.

use std::time::{Duration, Instant};

use osp_runtime::Health;
use temporalio_client::{Client, NamespacedClient};
use temporalio_common::protos::temporal::api::enums::v1::{TaskQueueKind, TaskQueueType};
use temporalio_common::protos::temporal::api::taskqueue::v1::TaskQueue;
use temporalio_common::protos::temporal::api::workflowservice::v1::DescribeTaskQueueRequest;

use crate::metrics::WorkerMetrics;

/// How often the server is asked while waiting; polls start within moments of `run`.
const INTERVAL: Duration = Duration::from_millis(100);

/// Marks `temporal` ready when the server sees this worker polling, and not ready again if
/// it stops seeing it (a lost connection).
pub(crate) async fn watch_pollers(
    client: Client,
    task_queue: String,
    identity: String,
    health: Health,
    metrics: WorkerMetrics,
    started: Instant,
) {
    let mut polling_since: Option<Instant> = None;
    loop {
        let seen = async {
            let mut all = true;
            for kind in [TaskQueueType::Workflow, TaskQueueType::Activity] {
                all &= is_polling(&client, &task_queue, &identity, kind).await?;
            }
            Ok::<bool, tonic_status::DescribeError>(all)
        }
        .await;
        match seen {
            Ok(true) => {
                if polling_since.is_none() {
                    polling_since = Some(Instant::now());
                    metrics.startup_seconds.set(started.elapsed().as_secs_f64());
                    tracing::info!(
                        startup_ms = started.elapsed().as_millis() as u64,
                        "worker ready: polling"
                    );
                }
                metrics.ready.set(1);
                health.pass("temporal");
            }
            Ok(false) => {
                metrics.ready.set(0);
                health.fail("temporal", "connected, not polling yet");
            }
            Err(error) => {
                metrics.ready.set(0);
                health.fail("temporal", error.to_string());
            }
        }
        // Fast until ready, then a slow check that notices a lost connection.
        let wait = if polling_since.is_some() {
            Duration::from_secs(5)
        } else {
            INTERVAL
        };
        tokio::time::sleep(wait).await;
    }
}

async fn is_polling(
    client: &Client,
    task_queue: &str,
    identity: &str,
    kind: TaskQueueType,
) -> Result<bool, tonic_status::DescribeError> {
    let request = DescribeTaskQueueRequest {
        namespace: client.namespace(),
        task_queue: Some(TaskQueue {
            name: task_queue.to_owned(),
            kind: TaskQueueKind::Normal as i32,
            ..Default::default()
        }),
        task_queue_type: kind as i32,
        ..Default::default()
    };
    let response = client
        .connection()
        .workflow_service()
        .describe_task_queue(temporalio_client::tonic::Request::new(request))
        .await
        .map_err(tonic_status::DescribeError)?;
    Ok(response
        .into_inner()
        .pollers
        .iter()
        .any(|poller| poller.identity == identity))
}

mod tonic_status {
    /// The server did not describe the task queue.
    #[derive(Debug, thiserror::Error)]
    #[error("describe task queue: {}", .0.message())]
    pub(crate) struct DescribeError(#[source] pub(crate) temporalio_client::tonic::Status);
}
