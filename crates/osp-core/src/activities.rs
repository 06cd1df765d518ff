//! Activity contracts: typed definitions that `osp-activities` implements and
//! `osp-workflows` calls, so workflows never link the database crates. The registered names
//! are fixed so workers in other languages can serve or call them.

use serde::{Deserialize, Serialize};
use temporalio_common::ActivityError;
use temporalio_macros::activity_definitions;
use uuid::Uuid;

use crate::payloads::{
    BootstrapStep, DeploymentStatus, InvitationSummary, Service, ServiceData,
    WorkerDeploymentRequest,
};

/// `createEntity`: start-to-close 30 s, at most 3 attempts (the seed's Node worker).
pub const CREATE_ENTITY: &str = "createEntity";
pub const CREATE_ORGANIZATION: &str = "createOrganization";
pub const CONFIGURE_DNS: &str = "configureDns";
pub const INVITE_USER: &str = "inviteUser";
pub const SEND_INVITATION_EMAIL: &str = "sendInvitationEmail";
pub const COMPLETE_BOOTSTRAP: &str = "completeBootstrap";
pub const REMOVE_DNS_RECORD: &str = "removeDnsRecord";
pub const REVOKE_INVITATION: &str = "revokeInvitation";
pub const DEACTIVATE_ORGANIZATION: &str = "deactivateOrganization";
pub const FAIL_BOOTSTRAP: &str = "failBootstrap";
pub const WRITE_WORKER_MANIFEST: &str = "writeWorkerManifest";
pub const RUN_DEPLOYER: &str = "runDeployer";
pub const FINISH_DEPLOYMENT: &str = "finishDeployment";

/// Input of `createOrganization`: emits `organization.created`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateOrganization {
    pub organization_id: Uuid,
    pub name: String,
    pub subdomain: String,
    pub plan: Option<String>,
}

/// Input of `configureDns`: creates the record, emits `organization.dns.configured`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigureDns {
    pub organization_id: Uuid,
    pub subdomain: String,
}

/// A DNS record the provider created; what `removeDnsRecord` needs to undo it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DnsRecord {
    /// The fully qualified name, e.g. `acme.example.com`.
    pub fqdn: String,
    /// The provider's id of the record.
    pub record_id: String,
    /// Which provider holds it (`log`, `cloudflare`).
    pub provider: String,
}

/// Input of `inviteUser`: emits `user.invited`. The workflow chooses the invitation id, so a
/// retry names the same invitation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteUser {
    pub organization_id: Uuid,
    pub invitation_id: Uuid,
    pub email: String,
    pub name: Option<String>,
}

/// Input of `sendInvitationEmail`: sends the email, emits `invitation.email.sent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendInvitationEmail {
    pub organization_id: Uuid,
    pub invitation_id: Uuid,
    pub email: String,
    pub name: Option<String>,
    pub organization_name: String,
    pub dns_record: String,
}

/// Input of `completeBootstrap`: emits `organization.bootstrap.completed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompleteBootstrap {
    pub organization_id: Uuid,
    pub dns_record: String,
    pub invitations: Vec<InvitationSummary>,
}

/// Input of `removeDnsRecord` (compensation): deletes the record, emits
/// `organization.dns.removed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveDnsRecord {
    pub organization_id: Uuid,
    pub record: DnsRecord,
}

/// Input of `revokeInvitation` (compensation): emits `invitation.revoked`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeInvitation {
    pub organization_id: Uuid,
    pub invitation_id: Uuid,
    pub reason: String,
}

/// Input of `deactivateOrganization` (compensation): emits `organization.deactivated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeactivateOrganization {
    pub organization_id: Uuid,
    pub reason: String,
}

/// Input of `failBootstrap`: emits `organization.bootstrap.failed` with the reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailBootstrap {
    pub organization_id: Uuid,
    pub reason: String,
    pub failed_step: BootstrapStep,
}

/// Output of `writeWorkerManifest`: where the manifest is and the registry row tracking the
/// deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestWritten {
    pub registry_id: Uuid,
    pub manifest_path: String,
    pub task_queue: String,
}

/// Input of `runDeployer`: one attempt of the configured deployer command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunDeployer {
    pub registry_id: Uuid,
    pub service_schema: String,
    pub manifest_path: String,
    pub task_queue: String,
}

/// Output of a successful `runDeployer` attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployerRun {
    /// The activity attempt that succeeded, from 1.
    pub attempt: u32,
    /// The command's output, bounded.
    pub output: String,
}

/// Input of `finishDeployment`: records the outcome in the registry; the output is the
/// number of deployer attempts the registry recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishDeployment {
    pub registry_id: Uuid,
    pub status: DeploymentStatus,
    pub error: Option<String>,
}

pub use definitions::{OspActivities, defs};

#[expect(
    missing_debug_implementations,
    reason = "the SDK's macro generates the marker structs without Debug"
)]
mod definitions {
    use super::{
        ActivityError, CompleteBootstrap, ConfigureDns, CreateOrganization, DeactivateOrganization,
        DeployerRun, DnsRecord, FailBootstrap, FinishDeployment, InviteUser, ManifestWritten,
        RemoveDnsRecord, RevokeInvitation, RunDeployer, SendInvitationEmail, Service, ServiceData,
        WorkerDeploymentRequest, activity_definitions,
    };

    /// The activity definitions; call them from workflows as `OspActivities::create_entity`.
    #[derive(Debug)]
    pub struct OspActivities;

    #[activity_definitions]
    impl OspActivities {
        /// Inserts one `services` row for the calling workflow execution and returns it; a
        /// retry returns the row the first attempt wrote.
        #[activity(name = "createEntity")]
        pub fn create_entity(input: ServiceData) -> Result<Service, ActivityError> {
            unimplemented!()
        }

        #[activity(name = "createOrganization")]
        pub fn create_organization(input: CreateOrganization) -> Result<(), ActivityError> {
            unimplemented!()
        }

        #[activity(name = "configureDns")]
        pub fn configure_dns(input: ConfigureDns) -> Result<DnsRecord, ActivityError> {
            unimplemented!()
        }

        #[activity(name = "inviteUser")]
        pub fn invite_user(input: InviteUser) -> Result<(), ActivityError> {
            unimplemented!()
        }

        #[activity(name = "sendInvitationEmail")]
        pub fn send_invitation_email(input: SendInvitationEmail) -> Result<(), ActivityError> {
            unimplemented!()
        }

        #[activity(name = "completeBootstrap")]
        pub fn complete_bootstrap(input: CompleteBootstrap) -> Result<(), ActivityError> {
            unimplemented!()
        }

        #[activity(name = "removeDnsRecord")]
        pub fn remove_dns_record(input: RemoveDnsRecord) -> Result<(), ActivityError> {
            unimplemented!()
        }

        #[activity(name = "revokeInvitation")]
        pub fn revoke_invitation(input: RevokeInvitation) -> Result<(), ActivityError> {
            unimplemented!()
        }

        #[activity(name = "deactivateOrganization")]
        pub fn deactivate_organization(input: DeactivateOrganization) -> Result<(), ActivityError> {
            unimplemented!()
        }

        #[activity(name = "failBootstrap")]
        pub fn fail_bootstrap(input: FailBootstrap) -> Result<(), ActivityError> {
            unimplemented!()
        }

        #[activity(name = "writeWorkerManifest")]
        pub fn write_worker_manifest(
            input: WorkerDeploymentRequest,
        ) -> Result<ManifestWritten, ActivityError> {
            unimplemented!()
        }

        #[activity(name = "runDeployer")]
        pub fn run_deployer(input: RunDeployer) -> Result<DeployerRun, ActivityError> {
            unimplemented!()
        }

        #[activity(name = "finishDeployment")]
        pub fn finish_deployment(input: FinishDeployment) -> Result<u32, ActivityError> {
            unimplemented!()
        }
    }

    /// The marker types, for implementations: `#[activity(definition = defs::CreateEntity)]`.
    pub mod defs {
        pub use super::osp_activities::{
            CompleteBootstrap, ConfigureDns, CreateEntity, CreateOrganization,
            DeactivateOrganization, FailBootstrap, FinishDeployment, InviteUser, RemoveDnsRecord,
            RevokeInvitation, RunDeployer, SendInvitationEmail, WriteWorkerManifest,
        };
    }
}

/// Every activity name OSP registers, in a stable order.
pub const ALL_ACTIVITIES: &[&str] = &[
    CREATE_ENTITY,
    CREATE_ORGANIZATION,
    CONFIGURE_DNS,
    INVITE_USER,
    SEND_INVITATION_EMAIL,
    COMPLETE_BOOTSTRAP,
    REMOVE_DNS_RECORD,
    REVOKE_INVITATION,
    DEACTIVATE_ORGANIZATION,
    FAIL_BOOTSTRAP,
    WRITE_WORKER_MANIFEST,
    RUN_DEPLOYER,
    FINISH_DEPLOYMENT,
];

#[cfg(test)]
mod tests {
    use temporalio_common::ActivityDefinition;

    use super::*;

    #[test]
    fn registered_names_match_the_contract() {
        assert_eq!(OspActivities::create_entity.name(), CREATE_ENTITY);
        assert_eq!(defs::CreateEntity.name(), CREATE_ENTITY);
        let names = [
            OspActivities::create_entity.name().to_owned(),
            OspActivities::create_organization.name().to_owned(),
            OspActivities::configure_dns.name().to_owned(),
            OspActivities::invite_user.name().to_owned(),
            OspActivities::send_invitation_email.name().to_owned(),
            OspActivities::complete_bootstrap.name().to_owned(),
            OspActivities::remove_dns_record.name().to_owned(),
            OspActivities::revoke_invitation.name().to_owned(),
            OspActivities::deactivate_organization.name().to_owned(),
            OspActivities::fail_bootstrap.name().to_owned(),
            OspActivities::write_worker_manifest.name().to_owned(),
            OspActivities::run_deployer.name().to_owned(),
            OspActivities::finish_deployment.name().to_owned(),
        ];
        assert_eq!(names, ALL_ACTIVITIES);
    }
}
