//! OSP's deterministic Temporal workflows. They call the activity definitions of
//! `osp-core`, never the database code, and are registered under the names of
//! `osp_core::workflows` so other SDKs can start them.

// The SDK's macros generate marker structs for `#[run]` and `#[query]` without Debug.
#[expect(
    missing_debug_implementations,
    reason = "macro-generated marker structs"
)]
mod bootstrap;
#[expect(
    missing_debug_implementations,
    reason = "macro-generated marker structs"
)]
mod create_service;
#[expect(
    missing_debug_implementations,
    reason = "macro-generated marker structs"
)]
mod deploy_worker;
mod failures;

use temporalio_sdk::{WorkerOptions, WorkflowRegistrationError};

pub use bootstrap::OrganizationBootstrapWorkflow;
pub use create_service::CreateServiceWorkflow;
pub use deploy_worker::{DEPLOYER_ATTEMPTS, DeployWorkerWorkflow};
pub use failures::{BOOTSTRAP_FAILED, INVALID_INPUT};

use osp_core::workflows::{
    ALL_WORKFLOWS, CREATE_SERVICE_WORKFLOW, DEPLOY_WORKER_WORKFLOW, ORGANIZATION_BOOTSTRAP_WORKFLOW,
};

/// Why workflows could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// A name OSP does not define.
    #[error("unknown workflow `{name}`; known workflows: {}", ALL_WORKFLOWS.join(", "))]
    Unknown { name: String },
    /// The SDK refused the registration.
    #[error(transparent)]
    Sdk(#[from] WorkflowRegistrationError),
}

/// Registers the named workflows (names as in `osp_core::workflows::ALL_WORKFLOWS`).
pub fn register<'a>(
    options: &mut WorkerOptions,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), RegisterError> {
    for name in names {
        match name {
            CREATE_SERVICE_WORKFLOW => options.register_workflow::<CreateServiceWorkflow>()?,
            ORGANIZATION_BOOTSTRAP_WORKFLOW => {
                options.register_workflow::<OrganizationBootstrapWorkflow>()?
            }
            DEPLOY_WORKER_WORKFLOW => options.register_workflow::<DeployWorkerWorkflow>()?,
            other => {
                return Err(RegisterError::Unknown {
                    name: other.to_owned(),
                });
            }
        };
    }
    Ok(())
}

/// Registers every OSP workflow.
pub fn register_all(options: &mut WorkerOptions) -> Result<(), RegisterError> {
    register(options, ALL_WORKFLOWS.iter().copied())
}
