//! What a claimed job must satisfy before its workflow is started: a route, a workflow id,
//! a payload within the size limit, and for `organizationBootstrapWorkflow` a valid
//! `OrganizationBootstrapInput` for the event's own stream. A job that fails a check can
//! never succeed, so it ends `failed` at once with a message naming what is wrong.

use osp_core::payloads::{MAX_ADMIN_USERS, OrganizationBootstrapInput};
use osp_core::validate::{FieldError, InvalidInput};
use osp_core::workflows::ORGANIZATION_BOOTSTRAP_WORKFLOW;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::queue::{ClaimedJob, RouteStatus};

/// A workflow start, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRequest {
    /// Registered workflow type name.
    pub workflow_type: String,
    pub task_queue: String,
    pub workflow_id: String,
    /// The routed event's data: the workflow's single argument.
    pub input: Value,
}

/// Why a job can never be started, as the `error_message` it ends with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejection(pub String);

/// Longest workflow id Temporal accepts by default.
const MAX_WORKFLOW_ID_CHARS: usize = 1000;

/// Checks `job` and builds its start, or says why it cannot be started.
pub fn check(job: &ClaimedJob, max_payload_bytes: usize) -> Result<StartRequest, Rejection> {
    match job.route {
        RouteStatus::Enabled => {}
        // The dispatch gives such a job back to wait for the route instead of failing it
        // (crate::dispatch); a start is refused here all the same.
        RouteStatus::Disabled => {
            return Err(Rejection(format!(
                "route disabled: the route for event type {} is disabled in osp_metadata.workflow_routes",
                job.event_type
            )));
        }
        RouteStatus::Missing => {
            return Err(Rejection(format!(
                "unknown route: event type {} has no route in osp_metadata.workflow_routes (it was removed after the job was enqueued)",
                job.event_type
            )));
        }
    }
    if job.workflow_type.trim().is_empty() || job.task_queue.trim().is_empty() {
        return Err(Rejection(format!(
            "unknown route: the job for event type {} names no workflow type or task queue",
            job.event_type
        )));
    }
    let workflow_id = match &job.workflow_id {
        Some(id) if !id.is_empty() => id.clone(),
        _ => {
            return Err(Rejection(match &job.enqueue_error {
                Some(error) => format!("no workflow id: {error}"),
                None => "no workflow id: the route's template produced none".to_owned(),
            }));
        }
    };
    let id_chars = workflow_id.chars().count();
    if id_chars > MAX_WORKFLOW_ID_CHARS {
        return Err(Rejection(format!(
            "workflow id too long: {id_chars} characters, Temporal accepts at most {MAX_WORKFLOW_ID_CHARS}"
        )));
    }
    let data = job
        .event_data
        .as_ref()
        .map_err(|error| Rejection(format!("bad payload: {error}")))?;
    // The size Temporal will carry: the JSON text of the argument.
    let size = serde_json::to_vec(data).map_or(usize::MAX, |bytes| bytes.len());
    if size > max_payload_bytes {
        return Err(Rejection(format!(
            "payload too large: event_data is {size} bytes, the limit is {max_payload_bytes} bytes"
        )));
    }
    if job.workflow_type == ORGANIZATION_BOOTSTRAP_WORKFLOW {
        bootstrap_input(data, job.stream_id).map_err(|error| Rejection(error.to_string()))?;
    } else if !data.is_object() {
        return Err(Rejection(format!(
            "bad payload: event_data must be a JSON object, not {}",
            kind(data)
        )));
    }
    Ok(StartRequest {
        workflow_type: job.workflow_type.clone(),
        task_queue: job.task_queue.clone(),
        workflow_id,
        input: data.clone(),
    })
}

/// The JSON type of a value, as a message says it.
fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A value quoted in a message, cut short: payloads are user input of any size.
fn quote(text: &str) -> String {
    const MAX: usize = 60;
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(MAX).collect();
    if chars.next().is_some() {
        format!("`{head}…`")
    } else {
        format!("`{head}`")
    }
}

/// Collects every field problem, so one failed job tells the whole story.
#[derive(Debug, Default)]
struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }

    fn unknown_fields(&mut self, object: &Map<String, Value>, prefix: &str, known: &[&str]) {
        for name in object.keys().filter(|name| !known.contains(&name.as_str())) {
            let shown = quote(name);
            let shown = shown.trim_matches('`');
            self.add(
                format!("{prefix}{shown}"),
                format!("is not a field (expected one of {})", known.join(", ")),
            );
        }
    }

    fn required_string<'v>(
        &mut self,
        object: &'v Map<String, Value>,
        field: &str,
        path: &str,
    ) -> Option<&'v str> {
        match object.get(field) {
            None | Some(Value::Null) => {
                self.add(path, "is required");
                None
            }
            Some(Value::String(text)) => Some(text),
            Some(other) => {
                self.add(path, format!("must be a string, not {}", kind(other)));
                None
            }
        }
    }

    fn optional_string(&mut self, object: &Map<String, Value>, field: &str, path: &str) {
        match object.get(field) {
            None | Some(Value::Null | Value::String(_)) => {}
            Some(other) => self.add(path, format!("must be a string, not {}", kind(other))),
        }
    }
}

const BOOTSTRAP_FIELDS: &[&str] = &[
    "organization_id",
    "name",
    "subdomain",
    "admin_users",
    "plan",
];
const ADMIN_USER_FIELDS: &[&str] = &["email", "name"];
const BOOTSTRAP_INPUT: &str = "OrganizationBootstrapInput";

/// Reads `data` as the bootstrap's input for the organization whose stream it was emitted
/// on. Shapes are checked first, field by field, so that a wrong type is reported under its
/// field's name; then the contract's rules (`validate`).
pub fn bootstrap_input(
    data: &Value,
    stream_id: Uuid,
) -> Result<OrganizationBootstrapInput, InvalidInput> {
    let mut problems = Problems::default();
    let Some(object) = data.as_object() else {
        problems.add(
            "event_data",
            format!("must be a JSON object, not {}", kind(data)),
        );
        return Err(finish(problems));
    };
    problems.unknown_fields(object, "", BOOTSTRAP_FIELDS);
    match object.get("organization_id") {
        None | Some(Value::Null) => problems.add("organization_id", "is required"),
        Some(Value::String(text)) => match Uuid::parse_str(text) {
            Err(_) => problems.add(
                "organization_id",
                format!("must be a uuid (got {})", quote(text)),
            ),
            Ok(id) if id != stream_id && !id.is_nil() => problems.add(
                "organization_id",
                format!("must equal the id of the stream the event was emitted on ({stream_id}), got {id}"),
            ),
            Ok(_) => {}
        },
        Some(other) => problems.add(
            "organization_id",
            format!("must be a uuid string, not {}", kind(other)),
        ),
    }
    problems.required_string(object, "name", "name");
    problems.required_string(object, "subdomain", "subdomain");
    match object.get("admin_users") {
        None | Some(Value::Null) => problems.add("admin_users", "is required"),
        // Bounded before anything else looks at the entries (one message, not thousands).
        Some(Value::Array(users)) if users.len() > MAX_ADMIN_USERS => problems.add(
            "admin_users",
            format!(
                "must list at most {MAX_ADMIN_USERS} admin users, not {}",
                users.len()
            ),
        ),
        Some(Value::Array(users)) => {
            for (index, user) in users.iter().enumerate() {
                let path = format!("admin_users[{index}]");
                let Some(user) = user.as_object() else {
                    problems.add(
                        path,
                        format!("must be an object {{email, name?}}, not {}", kind(user)),
                    );
                    continue;
                };
                problems.unknown_fields(user, &format!("{path}."), ADMIN_USER_FIELDS);
                problems.required_string(user, "email", &format!("{path}.email"));
                problems.optional_string(user, "name", &format!("{path}.name"));
            }
        }
        Some(other) => problems.add(
            "admin_users",
            format!("must be an array of {{email, name?}}, not {}", kind(other)),
        ),
    }
    problems.optional_string(object, "plan", "plan");
    if !problems.0.is_empty() {
        return Err(finish(problems));
    }
    let input: OrganizationBootstrapInput = match serde_json::from_value(data.clone()) {
        Ok(input) => input,
        Err(error) => {
            // The shape checks above make this unreachable in practice; serde's own words
            // are the best left to say.
            problems.add("event_data", error.to_string());
            return Err(finish(problems));
        }
    };
    input.validate()?;
    Ok(input)
}

fn finish(problems: Problems) -> InvalidInput {
    InvalidInput {
        payload: BOOTSTRAP_INPUT,
        errors: problems.0,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn job(workflow_type: &str, data: Value) -> ClaimedJob {
        let stream_id = Uuid::from_u128(7);
        ClaimedJob {
            job_id: Uuid::from_u128(1),
            stream_id,
            stream_type: "organization".into(),
            event_id: Uuid::from_u128(2),
            event_type: "organization.bootstrap.initiated".into(),
            event_data: Ok(data),
            event_created_at: None,
            workflow_type: workflow_type.into(),
            task_queue: "osp-queue".into(),
            workflow_id: Some(format!("org-bootstrap-{stream_id}")),
            started_event_type: None,
            attempt: 1,
            enqueue_error: None,
            route: RouteStatus::Enabled,
        }
    }

    fn good() -> Value {
        json!({
            "organization_id": Uuid::from_u128(7),
            "name": "Acme",
            "subdomain": "acme",
            "admin_users": [{"email": "a@acme.io", "name": "A"}],
            "plan": "pro"
        })
    }

    fn rejected(workflow_type: &str, data: Value) -> String {
        check(&job(workflow_type, data), 1024).unwrap_err().0
    }

    #[test]
    fn a_good_bootstrap_becomes_a_start() {
        let start = check(&job(ORGANIZATION_BOOTSTRAP_WORKFLOW, good()), 1024).unwrap();
        assert_eq!(start.workflow_type, ORGANIZATION_BOOTSTRAP_WORKFLOW);
        assert_eq!(start.task_queue, "osp-queue");
        assert_eq!(
            start.workflow_id,
            format!("org-bootstrap-{}", Uuid::from_u128(7))
        );
        assert_eq!(start.input, good());
    }

    #[test]
    fn each_bad_bootstrap_field_is_named() {
        let with = |field: &str, value: Value| {
            let mut data = good();
            data[field] = value;
            rejected(ORGANIZATION_BOOTSTRAP_WORKFLOW, data)
        };
        let without = |field: &str| {
            let mut data = good();
            data.as_object_mut().unwrap().remove(field);
            rejected(ORGANIZATION_BOOTSTRAP_WORKFLOW, data)
        };
        assert_eq!(
            without("organization_id"),
            "invalid OrganizationBootstrapInput: organization_id: is required"
        );
        assert_eq!(
            with("organization_id", json!("not-a-uuid")),
            "invalid OrganizationBootstrapInput: organization_id: must be a uuid (got `not-a-uuid`)"
        );
        assert_eq!(
            with("organization_id", json!(42)),
            "invalid OrganizationBootstrapInput: organization_id: must be a uuid string, not a number"
        );
        assert!(
            with("organization_id", json!(Uuid::from_u128(8)))
                .contains("organization_id: must equal the id of the stream")
        );
        assert_eq!(
            with("name", json!(5)),
            "invalid OrganizationBootstrapInput: name: must be a string, not a number"
        );
        assert!(with("name", json!("")).contains("name: must not be empty"));
        assert!(with("subdomain", json!("Not A Label")).contains("subdomain: must contain only"));
        assert_eq!(
            with("admin_users", json!("a@b.c")),
            "invalid OrganizationBootstrapInput: admin_users: must be an array of {email, name?}, not a string"
        );
        assert!(with("admin_users", json!([])).contains("admin_users: must list at least one"));
        assert!(
            with("admin_users", json!([{"email": 1}]))
                .contains("admin_users[0].email: must be a string, not a number")
        );
        assert!(
            with("admin_users", json!([{"email": "a@b.c", "role": "x"}]))
                .contains("admin_users[0].role: is not a field")
        );
        assert!(with("admin_users", json!([{"email": "nope"}])).contains("admin_users[0].email"));
        assert!(with("plan", json!(true)).contains("plan: must be a string, not a boolean"));
        assert!(with("extra", json!(1)).contains("extra: is not a field"));
        // Several problems at once, in field order.
        let many = rejected(
            ORGANIZATION_BOOTSTRAP_WORKFLOW,
            json!({"organization_id": 1, "name": 2, "admin_users": null}),
        );
        assert_eq!(
            many,
            "invalid OrganizationBootstrapInput: organization_id: must be a uuid string, not a number; \
             name: must be a string, not a number; subdomain: is required; admin_users: is required"
        );
    }

    #[test]
    fn point_8_a_bootstrap_with_more_than_100_admin_users_never_starts() {
        let with_admins = |count: usize| {
            let mut data = good();
            data["admin_users"] = (0..count)
                .map(|n| json!({"email": format!("admin{n}@acme.io")}))
                .collect();
            check(&job(ORGANIZATION_BOOTSTRAP_WORKFLOW, data), 1024 * 1024)
        };
        assert!(with_admins(100).is_ok());
        assert_eq!(
            with_admins(101).unwrap_err().0,
            "invalid OrganizationBootstrapInput: admin_users: must list at most 100 admin users, not 101"
        );
        assert_eq!(
            with_admins(5_000).unwrap_err().0,
            "invalid OrganizationBootstrapInput: admin_users: must list at most 100 admin users, not 5000"
        );
    }

    #[test]
    fn routes_ids_and_sizes_are_checked_before_the_payload() {
        let mut missing = job(ORGANIZATION_BOOTSTRAP_WORKFLOW, good());
        missing.route = RouteStatus::Missing;
        assert!(
            check(&missing, 1024)
                .unwrap_err()
                .0
                .starts_with("unknown route:")
        );
        let mut disabled = job(ORGANIZATION_BOOTSTRAP_WORKFLOW, good());
        disabled.route = RouteStatus::Disabled;
        assert!(
            check(&disabled, 1024)
                .unwrap_err()
                .0
                .starts_with("route disabled:")
        );
        let mut no_id = job("otherWorkflow", json!({}));
        no_id.workflow_id = None;
        no_id.enqueue_error = Some("workflow id template \"x-{a}\" needs {a}".into());
        assert_eq!(
            check(&no_id, 1024).unwrap_err().0,
            "no workflow id: workflow id template \"x-{a}\" needs {a}"
        );
        let big = json!({"blob": "x".repeat(2000)});
        assert_eq!(
            check(&job("otherWorkflow", big), 1024).unwrap_err().0,
            "payload too large: event_data is 2011 bytes, the limit is 1024 bytes"
        );
        assert!(check(&job("otherWorkflow", json!({"any": [1, 2]})), 1024).is_ok());
        assert_eq!(
            rejected("otherWorkflow", json!([1])),
            "bad payload: event_data must be a JSON object, not an array"
        );
    }
}
