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

use temporalio_common::WorkflowDefinition;
use temporalio_sdk::workflows::WorkflowImplementation;
use temporalio_sdk::{WorkerOptions, WorkflowRegistrationError};

pub use bootstrap::OrganizationBootstrapWorkflow;
pub use create_service::CreateServiceWorkflow;
pub use deploy_worker::{DEPLOYER_ATTEMPTS, DeployWorkerWorkflow};
pub use failures::{BOOTSTRAP_FAILED, INVALID_INPUT};

/// Why workflows could not be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    /// A name this binary does not register.
    #[error("unknown workflow `{name}`; known workflows: {}", known.join(", "))]
    Unknown { name: String, known: Vec<String> },
    /// The SDK refused the registration.
    #[error(transparent)]
    Sdk(#[from] WorkflowRegistrationError),
}

type Registrar = fn(&mut WorkerOptions) -> Result<(), WorkflowRegistrationError>;

fn registrar<W>(options: &mut WorkerOptions) -> Result<(), WorkflowRegistrationError>
where
    W: WorkflowImplementation,
    <W::Run as WorkflowDefinition>::Input: Send,
{
    options.register_workflow::<W>().map(drop)
}

/// The workflow types a binary can serve, by registered name: OSP's, a service's own, or
/// both. A manifest chooses among them; a name not in the catalog is refused, listing the
/// ones that are.
#[derive(Debug, Clone, Default)]
pub struct WorkflowCatalog {
    entries: Vec<(&'static str, Registrar)>,
}

impl WorkflowCatalog {
    /// No workflows yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// OSP's own workflows, in the order of `osp_core::workflows::ALL_WORKFLOWS`.
    pub fn osp() -> Self {
        Self::new()
            .with::<CreateServiceWorkflow>()
            .with::<OrganizationBootstrapWorkflow>()
            .with::<DeployWorkerWorkflow>()
    }

    /// Adds the `#[workflow]` type `W` under its registered name; a later type with the same
    /// name replaces the earlier one.
    pub fn with<W>(mut self) -> Self
    where
        W: WorkflowImplementation,
        <W::Run as WorkflowDefinition>::Input: Send,
    {
        let name = W::name();
        self.entries.retain(|(known, _)| *known != name);
        self.entries.push((name, registrar::<W>));
        self
    }

    /// Every other catalog's workflows added to this one.
    pub fn merge(mut self, other: &WorkflowCatalog) -> Self {
        for (name, registrar) in &other.entries {
            self.entries.retain(|(known, _)| known != name);
            self.entries.push((name, *registrar));
        }
        self
    }

    /// The registered names, in the order they were added.
    pub fn names(&self) -> Vec<&'static str> {
        self.entries.iter().map(|(name, _)| *name).collect()
    }

    /// Whether `name` is in the catalog.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|(known, _)| *known == name)
    }

    /// Registers the named workflows on `options`.
    pub fn register<'a>(
        &self,
        options: &mut WorkerOptions,
        names: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), RegisterError> {
        for name in names {
            let Some((_, register)) = self.entries.iter().find(|(known, _)| *known == name) else {
                return Err(RegisterError::Unknown {
                    name: name.to_owned(),
                    known: self.names().into_iter().map(str::to_owned).collect(),
                });
            };
            register(options)?;
        }
        Ok(())
    }
}

/// Registers the named OSP workflows (names as in `osp_core::workflows::ALL_WORKFLOWS`).
pub fn register<'a>(
    options: &mut WorkerOptions,
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), RegisterError> {
    WorkflowCatalog::osp().register(options, names)
}

/// Registers every OSP workflow.
pub fn register_all(options: &mut WorkerOptions) -> Result<(), RegisterError> {
    let catalog = WorkflowCatalog::osp();
    catalog.register(options, catalog.names())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_osp_catalog_holds_the_contract_names_in_order() {
        assert_eq!(
            WorkflowCatalog::osp().names(),
            osp_core::workflows::ALL_WORKFLOWS
        );
    }

    #[test]
    fn an_unknown_name_is_refused_listing_the_known_ones() {
        let mut options = WorkerOptions::new("q").build();
        let error = WorkflowCatalog::osp()
            .register(&mut options, ["processBilling"])
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown workflow `processBilling`; known workflows: createServiceWorkflow, \
             organizationBootstrapWorkflow, deployWorkerWorkflow"
        );
    }
}
