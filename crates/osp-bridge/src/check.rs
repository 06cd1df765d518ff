//! What a claimed job must satisfy before its workflow is started: an enabled route, a
//! workflow id, a payload within the size limit that is a JSON object, the stream id in the
//! route's stream-id field (filled in when the data leaves it out), and the route's JSON
//! Schema. Any workflow type is checked the same way, by what its route row says; a
//! workflow's own validation of its input runs in the workflow. A job that fails a check can
//! never succeed, so it ends `failed` at once with one message naming every problem.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use jsonschema::{PatternOptions, Validator};
use serde_json::{Map, Value};
use uuid::Uuid;

use osp_runtime::error_chain;

use crate::queue::{ClaimedJob, RouteStatus};

/// A workflow start, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct StartRequest {
    /// Registered workflow type name.
    pub workflow_type: String,
    pub task_queue: String,
    pub workflow_id: String,
    /// The routed event's data, with the stream id filled in: the workflow's single argument.
    pub input: Value,
}

/// Why a job can never be started, as the `error_message` it ends with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Rejection(pub String);

/// Longest workflow id Temporal accepts by default.
const MAX_WORKFLOW_ID_CHARS: usize = 1000;

/// Problems listed in one message; the rest are counted. A payload of thousands of bad
/// entries makes one bounded `error_message`, not a megabyte of them.
const MAX_LISTED: usize = 20;

/// Longest single problem, in characters: a message may quote a property name of any size.
const MAX_PROBLEM_CHARS: usize = 200;

/// Checks `job` and builds its start, or says why it cannot be started.
pub fn check(
    job: &ClaimedJob,
    max_payload_bytes: usize,
    schemas: &Schemas,
) -> Result<StartRequest, Rejection> {
    check_route(job)?;
    let workflow_id = workflow_id(job)?;
    let data = job
        .event_data
        .as_ref()
        .map_err(|error| Rejection(format!("bad payload: {}", error_chain(error))))?;
    // The size Temporal will carry: the JSON text of the argument.
    let size = serde_json::to_vec(data).map_or(usize::MAX, |bytes| bytes.len());
    if size > max_payload_bytes {
        return Err(Rejection(format!(
            "payload too large: event_data is {size} bytes, the limit is {max_payload_bytes} bytes"
        )));
    }
    let Value::Object(object) = data else {
        return Err(Rejection(format!(
            "bad payload: event_data must be a JSON object, not {}",
            kind(data)
        )));
    };
    let mut problems = Problems::default();
    let mut input = object.clone();
    if let Some(field) = &job.stream_id_field {
        fill_stream_id(&mut input, field, job.stream_id, &mut problems);
    }
    let input = Value::Object(input);
    if let Some(schema) = &job.input_schema {
        schemas.check(&job.event_type, schema, &input, &mut problems)?;
    }
    if !problems.is_empty() {
        return Err(Rejection(format!(
            "invalid event_data for {}: {problems}",
            job.workflow_type
        )));
    }
    Ok(StartRequest {
        workflow_type: job.workflow_type.clone(),
        task_queue: job.task_queue.clone(),
        workflow_id,
        input,
    })
}

fn check_route(job: &ClaimedJob) -> Result<(), Rejection> {
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
        RouteStatus::Paused => {
            return Err(Rejection(format!(
                "route paused: the route for event type {} is paused in osp_metadata.workflow_routes",
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
    Ok(())
}

fn workflow_id(job: &ClaimedJob) -> Result<String, Rejection> {
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
    Ok(workflow_id)
}

/// Puts the stream id into `field` when the data leaves it out (absent or null). A value of
/// its own must be that same id: an event on one stream cannot start a workflow for another.
/// A wrong value is reported and replaced, so that the schema does not report it again.
fn fill_stream_id(
    input: &mut Map<String, Value>,
    field: &str,
    stream_id: Uuid,
    problems: &mut Problems,
) {
    match input.get(field) {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) if Uuid::parse_str(text).is_ok_and(|id| id == stream_id) => {
            return;
        }
        Some(other) => {
            let got = match other {
                Value::String(text) => quote(text),
                other => kind(other).to_owned(),
            };
            problems.add(
                field,
                format!(
                    "must equal the id of the stream the event was emitted on ({stream_id}), got {got}"
                ),
            );
        }
    }
    input.insert(field.to_owned(), Value::String(stream_id.to_string()));
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

/// `text` cut to at most `max` characters, with an ellipsis when cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// A value quoted in a message, cut short: payloads are user input of any size.
fn quote(text: &str) -> String {
    format!("`{}`", cut(text, 60))
}

/// Every problem of one job's input, in the order found, each as `field: what is wrong`.
#[derive(Debug, Default)]
struct Problems {
    listed: Vec<String>,
    more: usize,
}

impl Problems {
    fn add(&mut self, field: &str, message: impl AsRef<str>) {
        if self.listed.len() < MAX_LISTED {
            self.listed.push(cut(
                &format!("{field}: {}", message.as_ref()),
                MAX_PROBLEM_CHARS,
            ));
        } else {
            self.more += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.listed.is_empty()
    }
}

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.listed.join("; "))?;
        if self.more > 0 {
            write!(f, "; and {} more", self.more)?;
        }
        Ok(())
    }
}

/// A JSON pointer into the event data as a field path: `/admin_users/0/email` is
/// `admin_users[0].email`, the root is `event_data`.
fn field_path(pointer: &jsonschema::paths::Location) -> String {
    let mut path = String::new();
    for segment in pointer.segments() {
        match segment {
            jsonschema::paths::LocationSegment::Index(index) => {
                path.push_str(&format!("[{index}]"));
            }
            jsonschema::paths::LocationSegment::Property(name) => {
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(&name);
            }
        }
    }
    if path.is_empty() {
        "event_data".to_owned()
    } else {
        path
    }
}

/// The routes' schemas, compiled once each and kept while the route's schema stays the
/// same. Shared by every dispatch.
#[derive(Debug, Default)]
pub struct Schemas {
    compiled: Mutex<HashMap<String, Compiled>>,
}

/// One route's schema as last seen, and what it compiled to.
#[derive(Debug)]
struct Compiled {
    source: Value,
    validator: Result<Arc<Validator>, Arc<jsonschema::ValidationError<'static>>>,
}

/// More distinct routes than this and the cache starts again: routes are few, and a bound
/// keeps a churn of route rows from growing it for ever.
const MAX_CACHED_SCHEMAS: usize = 256;

impl Schemas {
    /// Adds each violation of `schema` by `input` to `problems`; refuses the job when the
    /// route's schema itself does not compile.
    fn check(
        &self,
        event_type: &str,
        schema: &Value,
        input: &Value,
        problems: &mut Problems,
    ) -> Result<(), Rejection> {
        let validator = self.validator(event_type, schema).map_err(|error| {
            Rejection(format!(
                "bad route: the input_schema of the route for event type {event_type} is not a usable JSON Schema: {}",
                cut(&error.to_string(), MAX_PROBLEM_CHARS)
            ))
        })?;
        for error in validator.iter_errors(input) {
            // Masked: the message names the rule, not the value, which may be anything a
            // client sent (the path already says which value).
            problems.add(
                &field_path(error.instance_path()),
                error.masked().to_string(),
            );
        }
        Ok(())
    }

    fn validator(
        &self,
        event_type: &str,
        schema: &Value,
    ) -> Result<Arc<Validator>, Arc<jsonschema::ValidationError<'static>>> {
        let mut compiled = self.compiled.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = compiled.get(event_type)
            && entry.source == *schema
        {
            return entry.validator.clone();
        }
        if compiled.len() >= MAX_CACHED_SCHEMAS {
            compiled.clear();
        }
        let validator = compile(schema);
        compiled.insert(
            event_type.to_owned(),
            Compiled {
                source: schema.clone(),
                validator: validator.clone(),
            },
        );
        validator
    }
}

/// Compiles a route's schema: formats are checked (`uuid`, `email`, ...), patterns run on the
/// linear-time `regex` engine (a route's pattern cannot backtrack for ever on a payload), and
/// no reference is fetched: this build of the validator has no HTTP or file resolver.
fn compile(schema: &Value) -> Result<Arc<Validator>, Arc<jsonschema::ValidationError<'static>>> {
    jsonschema::options()
        .should_validate_formats(true)
        .with_pattern_options(PatternOptions::regex())
        .build(schema)
        .map(Arc::new)
        .map_err(Arc::new)
}

#[cfg(test)]
mod tests {
    use osp_core::payloads::{MAX_ADMIN_USERS, OrganizationBootstrapInput};
    use osp_core::workflows::ORGANIZATION_BOOTSTRAP_WORKFLOW;
    use serde_json::json;

    use super::*;

    /// The bootstrap route's schema as the migration seeds it.
    fn bootstrap_schema() -> Value {
        let sql = include_str!("../../osp-activities/migrations/0007_routes_and_jobs.sql");
        let body = sql.split("$schema$").nth(1).unwrap();
        serde_json::from_str(body).unwrap()
    }

    fn stream() -> Uuid {
        Uuid::from_u128(7)
    }

    /// A claimed job on the seeded bootstrap route.
    fn job(data: Value) -> ClaimedJob {
        ClaimedJob {
            job_id: Uuid::from_u128(1),
            stream_id: stream(),
            stream_type: "organization".into(),
            event_id: Uuid::from_u128(2),
            event_type: "organization.bootstrap.initiated".into(),
            event_data: Ok(data),
            event_created_at: None,
            workflow_type: ORGANIZATION_BOOTSTRAP_WORKFLOW.into(),
            task_queue: "osp-queue".into(),
            workflow_id: Some(format!("org-bootstrap-{}", stream())),
            started_event_type: None,
            attempt: 1,
            enqueue_error: None,
            route: RouteStatus::Enabled,
            input_schema: Some(bootstrap_schema()),
            stream_id_field: Some("organization_id".into()),
        }
    }

    /// A job on a route of a service's own workflow, with no schema and no stream-id field.
    fn plain(data: Value) -> ClaimedJob {
        ClaimedJob {
            workflow_type: "otherWorkflow".into(),
            event_type: "invoice.requested".into(),
            input_schema: None,
            stream_id_field: None,
            ..job(data)
        }
    }

    fn good() -> Value {
        json!({
            "organization_id": stream(),
            "name": "Acme",
            "subdomain": "acme",
            "admin_users": [{"email": "a@acme.io", "name": "A"}],
            "plan": "pro"
        })
    }

    fn run(job: &ClaimedJob) -> Result<StartRequest, Rejection> {
        check(job, 64 * 1024, &Schemas::default())
    }

    fn rejected(data: Value) -> String {
        run(&job(data)).unwrap_err().0
    }

    fn with(field: &str, value: Value) -> Value {
        let mut data = good();
        data[field] = value;
        data
    }

    fn without(field: &str) -> Value {
        let mut data = good();
        data.as_object_mut().unwrap().remove(field);
        data
    }

    #[test]
    fn a_good_bootstrap_becomes_a_start() {
        let start = run(&job(good())).unwrap();
        assert_eq!(start.workflow_type, ORGANIZATION_BOOTSTRAP_WORKFLOW);
        assert_eq!(start.task_queue, "osp-queue");
        assert_eq!(start.workflow_id, format!("org-bootstrap-{}", stream()));
        assert_eq!(start.input, good());
    }

    #[test]
    fn the_stream_id_fills_the_field_the_data_leaves_out() {
        for data in [
            without("organization_id"),
            with("organization_id", Value::Null),
        ] {
            let start = run(&job(data)).unwrap();
            assert_eq!(start.input, good());
            let input: OrganizationBootstrapInput = serde_json::from_value(start.input).unwrap();
            assert_eq!(input.organization_id, stream());
        }
        // The same id in another spelling is the same id.
        let upper = stream().to_string().to_uppercase();
        assert!(run(&job(with("organization_id", json!(upper)))).is_ok());
    }

    #[test]
    fn an_id_that_is_not_the_stream_s_fails_naming_both() {
        let other = Uuid::from_u128(8);
        assert_eq!(
            rejected(with("organization_id", json!(other))),
            format!(
                "invalid event_data for organizationBootstrapWorkflow: organization_id: must equal \
                 the id of the stream the event was emitted on ({}), got `{other}`",
                stream()
            )
        );
        assert!(rejected(with("organization_id", json!(42))).ends_with("got a number"));
        assert!(rejected(with("organization_id", json!("x".repeat(500)))).contains("got `xxx"));
        // A route without the field leaves the data as it is.
        let start = run(&plain(json!({"organization_id": other}))).unwrap();
        assert_eq!(start.input, json!({"organization_id": other}));
    }

    #[test]
    fn each_schema_violation_is_named_in_one_message() {
        let message = rejected(json!({
            "name": 5,
            "subdomain": "Not A Label",
            "admin_users": [{"email": "not-an-email"}, {"email": 1, "role": "owner"}],
            "plan": true,
            "nickname": "x"
        }));
        let expected = [
            "name: value is not of type \"string\"",
            "subdomain: value does not match \"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$\"",
            "admin_users[0].email: value is not a \"email\"",
            "admin_users[1].email: value is not of type \"string\"",
            "admin_users[1]: Additional properties are not allowed ('role' was unexpected)",
            "plan: value is not of types \"null\", \"string\"",
            "event_data: Additional properties are not allowed ('nickname' was unexpected)",
        ];
        assert!(
            message.starts_with("invalid event_data for organizationBootstrapWorkflow: "),
            "{message}"
        );
        for part in expected {
            assert!(message.contains(part), "{part:?} missing from {message:?}");
        }
        // Values are not echoed: the path names the field.
        assert!(!message.contains("Not A Label\" does"), "{message}");
        assert!(rejected(without("name")).contains("event_data: \"name\" is a required property"));
        assert!(rejected(with("name", json!("   "))).contains("name: value does not match"));
        assert!(
            rejected(with("admin_users", json!([])))
                .contains("admin_users: value has less than 1 item")
        );
        assert!(rejected(with("organization_id", json!(Uuid::nil()))).contains("organization_id:"));
    }

    #[test]
    fn point_8_a_bootstrap_with_more_than_100_admin_users_never_starts() {
        let with_admins = |count: usize| {
            let users: Value = (0..count)
                .map(|n| json!({"email": format!("admin{n}@acme.io")}))
                .collect();
            check(
                &job(with("admin_users", users)),
                1024 * 1024,
                &Schemas::default(),
            )
        };
        assert!(with_admins(MAX_ADMIN_USERS).is_ok());
        assert_eq!(
            with_admins(MAX_ADMIN_USERS + 1).unwrap_err().0,
            "invalid event_data for organizationBootstrapWorkflow: admin_users: value has more than 100 items"
        );
        assert!(
            with_admins(5_000)
                .unwrap_err()
                .0
                .ends_with("value has more than 100 items")
        );
    }

    #[test]
    fn thousands_of_violations_make_one_bounded_message() {
        let users: Value = (0..100).map(|n| json!({"email": n})).collect();
        let message = rejected(with("admin_users", users));
        assert!(message.ends_with("; and 80 more"), "{message}");
        assert!(message.len() < MAX_LISTED * (MAX_PROBLEM_CHARS + 3) + 100);
        let long_key = format!("k{}", "x".repeat(10_000));
        let message = rejected(with(&long_key, json!(1)));
        assert!(message.chars().count() < 300, "{message}");
    }

    /// The seeded schema never refuses what the workflow's own validation accepts: a
    /// bootstrap the bridge refuses could not have succeeded.
    #[test]
    fn the_bootstrap_schema_accepts_every_input_the_workflow_accepts() {
        let names = ["A", "Acme Corp", &"n".repeat(200), "Ünïcode 名前"];
        let subdomains = ["a", "acme", "a-b-c", "0x1", &"s".repeat(63)];
        let emails = [
            "a@acme.io",
            "first.last+tag@mail.example.co.uk",
            "x_y@sub.example.org",
        ];
        let plans = [None, Some("pro"), Some("enterprise 2")];
        let mut tried = 0;
        for name in names {
            for subdomain in subdomains {
                for email in emails {
                    for plan in plans {
                        let mut data = json!({
                            "organization_id": stream(),
                            "name": name,
                            "subdomain": subdomain,
                            "admin_users": [{"email": email, "name": "Ada Lovelace"}],
                        });
                        if let Some(plan) = plan {
                            data["plan"] = json!(plan);
                        }
                        let input: OrganizationBootstrapInput =
                            serde_json::from_value(data.clone()).unwrap();
                        input.validate().unwrap();
                        run(&job(data.clone())).unwrap_or_else(|error| panic!("{data}: {error}"));
                        tried += 1;
                    }
                }
            }
        }
        assert_eq!(tried, 4 * 5 * 3 * 3);
    }

    #[test]
    fn a_hostile_pattern_cannot_backtrack_and_a_remote_reference_is_not_fetched() {
        let mut evil = plain(json!({"s": format!("{}!", "a".repeat(5_000))}));
        evil.input_schema = Some(json!({"properties": {"s": {"pattern": "^(a+)+$"}}}));
        assert!(rejected_job(&evil).contains("s: value does not match"));
        let mut remote = plain(json!({}));
        remote.input_schema = Some(json!({"$ref": "https://schemas.example.com/input.json"}));
        let message = rejected_job(&remote);
        assert!(
            message.starts_with("bad route: the input_schema of the route for event type invoice.requested is not a usable JSON Schema"),
            "{message}"
        );
        let mut broken = plain(json!({}));
        broken.input_schema = Some(json!({"type": 12}));
        assert!(rejected_job(&broken).starts_with("bad route:"));
    }

    fn rejected_job(job: &ClaimedJob) -> String {
        run(job).unwrap_err().0
    }

    #[test]
    fn a_changed_schema_is_compiled_again() {
        let schemas = Schemas::default();
        let mut job = plain(json!({"n": 1}));
        job.input_schema = Some(json!({"properties": {"n": {"type": "integer"}}}));
        assert!(check(&job, 1024, &schemas).is_ok());
        job.input_schema = Some(json!({"properties": {"n": {"type": "string"}}}));
        assert!(check(&job, 1024, &schemas).is_err());
    }

    #[test]
    fn routes_ids_and_sizes_are_checked_before_the_payload() {
        let mut missing = job(good());
        missing.route = RouteStatus::Missing;
        assert!(rejected_job(&missing).starts_with("unknown route:"));
        let mut disabled = job(good());
        disabled.route = RouteStatus::Disabled;
        assert!(rejected_job(&disabled).starts_with("route disabled:"));
        let mut no_id = plain(json!({}));
        no_id.workflow_id = None;
        no_id.enqueue_error = Some("workflow id template \"x-{a}\" needs {a}".into());
        assert_eq!(
            rejected_job(&no_id),
            "no workflow id: workflow id template \"x-{a}\" needs {a}"
        );
        let big = json!({"blob": "x".repeat(2000)});
        assert_eq!(
            check(&plain(big), 1024, &Schemas::default()).unwrap_err().0,
            "payload too large: event_data is 2011 bytes, the limit is 1024 bytes"
        );
        assert!(run(&plain(json!({"any": [1, 2]}))).is_ok());
        assert_eq!(
            rejected_job(&plain(json!([1]))),
            "bad payload: event_data must be a JSON object, not an array"
        );
    }
}
