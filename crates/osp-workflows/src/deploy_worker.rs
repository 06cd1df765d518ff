//! `deployWorkerWorkflow` (seed 002): write the service's worker manifest, run the
//! configured deployer with the activity retry policy (3 retries from a 5 s backoff), and
//! record every attempt and the outcome in `osp_metadata.worker_registry`.

use std::time::Duration;

use osp_core::activities::{FinishDeployment, OspActivities, RunDeployer};
use osp_core::payloads::{DeploymentStatus, WorkerDeployment, WorkerDeploymentRequest};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowResult};

use crate::failures::{invalid_input, reason};

/// The first attempt and three retries, as the seed's `queueWorkerBuild` did.
pub const DEPLOYER_ATTEMPTS: u32 = 4;

/// Deploys one service's worker; its id is `deploy-worker-{service_schema}`.
#[workflow]
#[derive(Debug, Default)]
pub struct DeployWorkerWorkflow;

fn bookkeeping_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
        .retry_policy(
            RetryPolicy::builder()
                .initial_interval(Duration::from_secs(1))
                .maximum_attempts(5)
                .build(),
        )
        .build()
}

#[workflow_methods]
impl DeployWorkerWorkflow {
    #[run(name = "deployWorkerWorkflow")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        request: WorkerDeploymentRequest,
    ) -> WorkflowResult<WorkerDeployment> {
        request.validate().map_err(invalid_input)?;
        let written = ctx
            .execute_activity(
                OspActivities::write_worker_manifest,
                request.clone(),
                bookkeeping_options(),
            )
            .await?;

        // The deployer may run for minutes; it heartbeats every 5 s, so a worker that died
        // under it is noticed after the heartbeat timeout rather than the 15 minutes.
        let deployer = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(15 * 60))
            .heartbeat_timeout(Duration::from_secs(30))
            .retry_policy(
                RetryPolicy::builder()
                    .initial_interval(Duration::from_secs(5))
                    .backoff_coefficient(2.0)
                    .maximum_attempts(DEPLOYER_ATTEMPTS)
                    .build(),
            )
            .build();
        let run = ctx
            .execute_activity(
                OspActivities::run_deployer,
                RunDeployer {
                    registry_id: written.registry_id,
                    service_schema: request.service_schema.clone(),
                    manifest_path: written.manifest_path.clone(),
                    task_queue: written.task_queue.clone(),
                },
                deployer,
            )
            .await;
        let (status, error) = match run {
            Ok(_) => (DeploymentStatus::Deployed, None),
            Err(error) => (DeploymentStatus::Failed, Some(reason(&error))),
        };
        let attempts = ctx
            .execute_activity(
                OspActivities::finish_deployment,
                FinishDeployment {
                    registry_id: written.registry_id,
                    status,
                    error: error.clone(),
                },
                bookkeeping_options(),
            )
            .await?;
        Ok(WorkerDeployment {
            service_schema: request.service_schema,
            manifest_path: written.manifest_path,
            task_queue: written.task_queue,
            status,
            attempts,
            registry_id: written.registry_id,
            error,
        })
    }
}
