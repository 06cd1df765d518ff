//! Workflow types, task queues and workflow id schemes: the names other SDKs and the
//! `temporal` CLI use to start OSP workflows (CONTRACTS.md, "Temporal").

use uuid::Uuid;

use crate::validate::ServiceSchema;

/// The task queue every workflow runs on unless a manifest names another.
pub const DEFAULT_TASK_QUEUE: &str = "osp-queue";

/// `ServiceData` -> `Service`; the workflow id is the caller's choice.
pub const CREATE_SERVICE_WORKFLOW: &str = "createServiceWorkflow";
/// `OrganizationBootstrapInput` -> `OrganizationBootstrapResult`.
pub const ORGANIZATION_BOOTSTRAP_WORKFLOW: &str = "organizationBootstrapWorkflow";
/// `WorkerDeploymentRequest` -> `WorkerDeployment`.
pub const DEPLOY_WORKER_WORKFLOW: &str = "deployWorkerWorkflow";

/// Every workflow type OSP registers, in a stable order.
pub const ALL_WORKFLOWS: &[&str] = &[
    CREATE_SERVICE_WORKFLOW,
    ORGANIZATION_BOOTSTRAP_WORKFLOW,
    DEPLOY_WORKER_WORKFLOW,
];

/// `org-bootstrap-{organization_id}`: one bootstrap per organization, which is what makes a
/// second start of the same request a no-op.
pub fn organization_bootstrap_workflow_id(organization_id: Uuid) -> String {
    format!("org-bootstrap-{organization_id}")
}

/// `deploy-worker-{service_schema}`: at most one deployment of a service runs at a time.
pub fn deploy_worker_workflow_id(service_schema: &ServiceSchema) -> String {
    format!("deploy-worker-{service_schema}")
}

/// `{service_schema}-tasks`: the queue a manifest-driven worker polls by default.
pub fn service_task_queue(service_schema: &ServiceSchema) -> String {
    format!("{service_schema}-tasks")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_contract() {
        let org = Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        assert_eq!(
            organization_bootstrap_workflow_id(org),
            "org-bootstrap-01234567-89ab-cdef-0123-456789abcdef"
        );
        let schema = ServiceSchema::parse("healthcare_service_123").unwrap();
        assert_eq!(
            deploy_worker_workflow_id(&schema),
            "deploy-worker-healthcare_service_123"
        );
        assert_eq!(service_task_queue(&schema), "healthcare_service_123-tasks");
    }
}
