//! `createServiceWorkflow`: the seed's Node workflow, unchanged for its clients: validate,
//! then one `createEntity` activity (start-to-close 30 s, at most 3 attempts).

use std::time::Duration;

use osp_core::activities::OspActivities;
use osp_core::payloads::{Service, ServiceData};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowResult};

use crate::failures::invalid_input;

/// Creates one service row.
#[workflow]
#[derive(Debug, Default)]
pub struct CreateServiceWorkflow;

#[workflow_methods]
impl CreateServiceWorkflow {
    #[run(name = "createServiceWorkflow")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: ServiceData,
    ) -> WorkflowResult<Service> {
        input.validate().map_err(invalid_input)?;
        let options = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
            .retry_policy(RetryPolicy::builder().maximum_attempts(3).build())
            .build();
        let service = ctx
            .execute_activity(OspActivities::create_entity, input, options)
            .await?;
        Ok(service)
    }
}
