//! Workflow inputs and outputs, as JSON any SDK can send (`json/plain`, snake_case fields),
//! with the validation rules of CONTRACTS.md.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::validate::{self, Checker, InvalidInput, ServiceSchema};

/// Input of `createServiceWorkflow` and the `createEntity` activity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceData {
    /// 1 to 200 characters.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// A lowercase SQL identifier when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_schema: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl ServiceData {
    /// Checks every rule; the error lists each broken one with its field.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        let mut checker = Checker::new("ServiceData");
        checker.check("name", validate::text(&self.name, 200));
        if let Some(description) = &self.description {
            checker.check(
                "description",
                validate::length_between(description, 0, 10_000),
            );
        }
        if let Some(schema) = &self.service_schema {
            checker.check("service_schema", ServiceSchema::parse(schema).map(drop));
        }
        checker.finish()
    }
}

/// Output of `createServiceWorkflow`: the stored `services` row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub service_schema: Option<String>,
    pub metadata: Map<String, Value>,
    /// RFC 3339 timestamp as PostgreSQL renders it in JSON.
    pub created_at: String,
}

/// One admin user of a new organization.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminUser {
    pub email: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The most admin users one bootstrap request may list (docs/contracts.md: 1 to 100).
pub const MAX_ADMIN_USERS: usize = 100;

/// Input of `organizationBootstrapWorkflow`, also the `event_data` of
/// `organization.bootstrap.initiated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationBootstrapInput {
    pub organization_id: Uuid,
    pub name: String,
    /// One DNS label.
    pub subdomain: String,
    /// 1 to [`MAX_ADMIN_USERS`], distinct emails.
    pub admin_users: Vec<AdminUser>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

impl OrganizationBootstrapInput {
    /// Checks every rule; the error lists each broken one with its field.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        let mut checker = Checker::new("OrganizationBootstrapInput");
        if self.organization_id.is_nil() {
            checker.fail("organization_id", "must not be the nil uuid");
        }
        checker.check("name", validate::text(&self.name, 200));
        checker.check("subdomain", validate::dns_label(&self.subdomain));
        if self.admin_users.is_empty() {
            checker.fail("admin_users", "must list at least one admin user");
        }
        if self.admin_users.len() > MAX_ADMIN_USERS {
            // Each admin is an invitation and an email: a bound, checked before any of them,
            // and the only message about the list (not one per entry of thousands).
            checker.fail(
                "admin_users",
                format!(
                    "must list at most {MAX_ADMIN_USERS} admin users, not {}",
                    self.admin_users.len()
                ),
            );
        } else {
            for (index, user) in self.admin_users.iter().enumerate() {
                checker.check(
                    format!("admin_users[{index}].email"),
                    validate::email(&user.email),
                );
                let earlier = self.admin_users[..index]
                    .iter()
                    .position(|other| other.email.eq_ignore_ascii_case(&user.email));
                if let Some(earlier) = earlier {
                    checker.fail(
                        format!("admin_users[{index}].email"),
                        format!("duplicates admin_users[{earlier}].email"),
                    );
                }
                if let Some(name) = &user.name {
                    checker.check(
                        format!("admin_users[{index}].name"),
                        validate::display_name(name, 200),
                    );
                }
            }
        }
        if let Some(plan) = &self.plan {
            checker.check("plan", validate::text(plan, 100));
        }
        checker.finish()
    }
}

/// One invitation the bootstrap created and emailed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvitationSummary {
    pub invitation_id: Uuid,
    pub email: String,
}

/// Output of `organizationBootstrapWorkflow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrganizationBootstrapResult {
    pub organization_id: Uuid,
    pub subdomain: String,
    /// The fully qualified DNS name that was configured.
    pub dns_record: String,
    pub invitations: Vec<InvitationSummary>,
}

/// The step a bootstrap is at, returned by its `status` query.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BootstrapStep {
    Started,
    CreatingOrganization,
    ConfiguringDns,
    InvitingUsers,
    SendingInvitations,
    Completed,
    Compensating,
    Failed,
}

impl BootstrapStep {
    /// The name clients see, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::CreatingOrganization => "creating_organization",
            Self::ConfiguringDns => "configuring_dns",
            Self::InvitingUsers => "inviting_users",
            Self::SendingInvitations => "sending_invitations",
            Self::Completed => "completed",
            Self::Compensating => "compensating",
            Self::Failed => "failed",
        }
    }
}

/// A workflow a service's worker serves, with the activities it calls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    pub name: String,
    #[serde(default)]
    pub activities: Vec<String>,
}

/// Input of `deployWorkerWorkflow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerDeploymentRequest {
    /// A lowercase SQL identifier; it reaches file names and deployer arguments.
    pub service_schema: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// At least one.
    pub workflows: Vec<WorkflowSpec>,
    /// Defaults to `{service_schema}-tasks`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_queue: Option<String>,
}

impl WorkerDeploymentRequest {
    /// Checks every rule; the error lists each broken one with its field.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        let mut checker = Checker::new("WorkerDeploymentRequest");
        checker.check(
            "service_schema",
            ServiceSchema::parse(&self.service_schema).map(drop),
        );
        if let Some(name) = &self.service_name {
            checker.check("service_name", validate::text(name, 200));
        }
        if self.workflows.is_empty() {
            checker.fail("workflows", "must list at least one workflow");
        }
        for (index, workflow) in self.workflows.iter().enumerate() {
            checker.check(
                format!("workflows[{index}].name"),
                validate::text(&workflow.name, 200),
            );
        }
        if let Some(queue) = &self.task_queue {
            checker.check("task_queue", task_queue(queue));
        }
        checker.finish()
    }
}

/// A task queue name: not empty, no white space, at most 1000 characters.
pub(crate) fn task_queue(value: &str) -> Result<(), validate::RuleError> {
    validate::text(value, 1000)?;
    if value.chars().any(char::is_whitespace) {
        return Err(validate::RuleError::WhiteSpace);
    }
    Ok(())
}

/// Where a worker deployment stands; the values of `worker_registry.deployment_status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentStatus {
    Pending,
    Deploying,
    Deployed,
    Failed,
    Stopped,
}

impl DeploymentStatus {
    /// The value stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Deploying => "deploying",
            Self::Deployed => "deployed",
            Self::Failed => "failed",
            Self::Stopped => "stopped",
        }
    }
}

/// Output of `deployWorkerWorkflow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerDeployment {
    pub service_schema: String,
    pub manifest_path: String,
    pub task_queue: String,
    pub status: DeploymentStatus,
    /// How many times the deployer ran.
    pub attempts: u32,
    /// The `worker_registry` row that records this deployment.
    pub registry_id: Uuid,
    /// Why the last attempt failed, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn errors_of(result: Result<(), InvalidInput>) -> Vec<String> {
        match result {
            Ok(()) => Vec::new(),
            Err(error) => error.errors.iter().map(ToString::to_string).collect(),
        }
    }

    fn service(value: Value) -> ServiceData {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn service_data_rules() {
        let check = |value: Value, expected: &[&str]| {
            assert_eq!(
                errors_of(service(value.clone()).validate()),
                expected,
                "{value}"
            );
        };
        check(json!({"name": "billing"}), &[]);
        check(json!({"name": "x".repeat(200)}), &[]);
        check(json!({"name": ""}), &["name: must not be empty"]);
        check(json!({"name": "   "}), &["name: must not be empty"]);
        check(
            json!({"name": "x".repeat(201)}),
            &["name: must be 1 to 200 characters (got 201)"],
        );
        check(
            json!({"name": "ok", "service_schema": "a;rm -rf /"}),
            &["service_schema: must contain only lowercase letters, digits and '_' (found ';')"],
        );
    }

    #[test]
    fn service_data_refuses_unknown_fields_and_non_object_metadata() {
        let unknown = serde_json::from_value::<ServiceData>(json!({"name": "a", "nmae": "b"}));
        assert!(
            unknown
                .unwrap_err()
                .to_string()
                .contains("unknown field `nmae`")
        );
        let metadata = serde_json::from_value::<ServiceData>(json!({"name": "a", "metadata": [1]}));
        assert!(metadata.is_err());
    }

    fn bootstrap(value: Value) -> OrganizationBootstrapInput {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn bootstrap_rules() {
        let id = "6f1c2b3a-0000-4000-8000-000000000001";
        let check = |value: Value, expected: &[&str]| {
            assert_eq!(
                errors_of(bootstrap(value.clone()).validate()),
                expected,
                "{value}"
            );
        };
        check(
            json!({"organization_id": id, "name": "Acme", "subdomain": "acme",
                   "admin_users": [{"email": "a@acme.io", "name": "A"}], "plan": "pro"}),
            &[],
        );
        check(
            json!({"organization_id": id, "name": "Acme", "subdomain": "Acme_1", "admin_users": []}),
            &[
                "subdomain: must contain only lowercase letters, digits and '-' (found 'A')",
                "admin_users: must list at least one admin user",
            ],
        );
        check(
            json!({"organization_id": id, "name": "", "subdomain": "acme",
                   "admin_users": [{"email": "a@acme.io"}, {"email": "not-an-email"}, {"email": "A@acme.io"}]}),
            &[
                "name: must not be empty",
                "admin_users[1].email: must be an email address like name@example.com",
                "admin_users[2].email: duplicates admin_users[0].email",
            ],
        );
        check(
            json!({"organization_id": "00000000-0000-0000-0000-000000000000", "name": "A",
                   "subdomain": "a", "admin_users": [{"email": "a@b.io"}]}),
            &["organization_id: must not be the nil uuid"],
        );
    }

    #[test]
    fn point_8_a_bootstrap_lists_at_most_100_admin_users() {
        let with_admins = |count: usize| {
            let users: Vec<Value> = (0..count)
                .map(|n| json!({"email": format!("admin{n}@acme.io")}))
                .collect();
            bootstrap(
                json!({"organization_id": "6f1c2b3a-0000-4000-8000-000000000001",
                             "name": "Acme", "subdomain": "acme", "admin_users": users}),
            )
        };
        assert_eq!(
            errors_of(with_admins(MAX_ADMIN_USERS).validate()),
            [] as [&str; 0]
        );
        assert_eq!(
            errors_of(with_admins(MAX_ADMIN_USERS + 1).validate()),
            ["admin_users: must list at most 100 admin users, not 101"]
        );
        // One message for the list, however long, and the other fields still checked.
        let mut many = with_admins(5_000);
        many.plan = Some(String::new());
        assert_eq!(
            errors_of(many.validate()),
            [
                "admin_users: must list at most 100 admin users, not 5000",
                "plan: must not be empty"
            ]
        );
    }

    #[test]
    fn point_12_admin_names_that_break_a_mail_header_are_refused_up_front() {
        let with_name = |name: &str| {
            bootstrap(json!({
                "organization_id": Uuid::new_v4(), "name": "Acme", "subdomain": "acme",
                "admin_users": [{"email": "a@acme.io", "name": name}]
            }))
            .validate()
        };
        for good in [
            "Ada Lovelace",
            "O'Brien",
            "José Ñúñez",
            "Dr. Who",
            "Lovelace, Ada",
            "",
        ] {
            assert_eq!(errors_of(with_name(good)), Vec::<String>::new(), "{good:?}");
        }
        for bad in [
            "Ada <ada@evil.io>",
            "Ada \"The Count\"",
            "a>b",
            "back\\slash",
            "two\nlines",
        ] {
            let errors = errors_of(with_name(bad));
            assert_eq!(errors.len(), 1, "{bad:?}: {errors:?}");
            assert!(
                errors[0].starts_with("admin_users[0].name: must not contain"),
                "{bad:?}: {errors:?}"
            );
        }
    }

    #[test]
    fn bootstrap_input_names_a_non_uuid_organization_id() {
        let error = serde_json::from_value::<OrganizationBootstrapInput>(json!({
            "organization_id": "not-a-uuid", "name": "A", "subdomain": "a",
            "admin_users": [{"email": "a@b.io"}]
        }))
        .unwrap_err();
        assert!(error.to_string().contains("UUID"), "{error}");
    }

    #[test]
    fn deployment_request_rules() {
        let request: WorkerDeploymentRequest = serde_json::from_value(json!({
            "service_schema": "billing; curl evil", "workflows": [],
            "task_queue": "has space"
        }))
        .unwrap();
        assert_eq!(
            errors_of(request.validate()),
            [
                "service_schema: must contain only lowercase letters, digits and '_' (found ';')",
                "workflows: must list at least one workflow",
                "task_queue: must not contain white space",
            ]
        );
    }

    #[test]
    fn payloads_use_snake_case_json() {
        let result = OrganizationBootstrapResult {
            organization_id: Uuid::nil(),
            subdomain: "acme".into(),
            dns_record: "acme.example.com".into(),
            invitations: vec![],
        };
        let value = serde_json::to_value(&result).unwrap();
        assert!(value.get("dns_record").is_some());
        assert_eq!(
            serde_json::to_value(BootstrapStep::ConfiguringDns).unwrap(),
            json!("configuring_dns")
        );
        for step in [
            BootstrapStep::Started,
            BootstrapStep::SendingInvitations,
            BootstrapStep::Failed,
        ] {
            assert_eq!(serde_json::to_value(step).unwrap(), json!(step.as_str()));
        }
        assert_eq!(
            serde_json::to_value(DeploymentStatus::Deployed).unwrap(),
            json!(DeploymentStatus::Deployed.as_str())
        );
    }
}
