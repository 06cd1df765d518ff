//! The worker manifest (seed 002's JSON shape): which workflows and activities a service's
//! worker serves and on which task queue. JavaScript-only fields load with a warning.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::payloads::task_queue;
use crate::validate::{self, Checker, InvalidInput, ServiceSchema};
use crate::workflows::service_task_queue;

/// Fields the Node worker needed to find its JavaScript bundles; meaningless to a Rust worker.
const JAVASCRIPT_ONLY_TOP: &[&str] = &["activities_path"];
const JAVASCRIPT_ONLY_WORKFLOW: &[&str] = &["workflows_path"];

/// A loaded manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerManifest {
    pub service_schema: ServiceSchema,
    /// The queue every listed workflow shares.
    pub task_queue: String,
    pub workflows: Vec<ManifestWorkflow>,
}

impl Serialize for ServiceSchema {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// One workflow of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ManifestWorkflow {
    pub name: String,
    pub task_queue: String,
    pub activities: Vec<String>,
}

/// A field that was ignored while loading.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestWarning {
    /// Path of the field, e.g. `workflows[0].workflows_path`.
    pub field: String,
    pub message: String,
}

/// Why a manifest cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// Not JSON, or not the manifest's shape.
    #[error("malformed manifest at line {line}, column {column}: {message}")]
    Malformed {
        line: usize,
        column: usize,
        message: String,
    },
    /// JSON of the right shape that breaks a rule.
    #[error(transparent)]
    Invalid(#[from] InvalidInput),
    /// Names this worker does not know.
    #[error(
        "the manifest names what this worker does not provide: {}; known workflows: {}; known activities: {}",
        .unknown.join(", "), .known_workflows.join(", "), .known_activities.join(", ")
    )]
    UnknownNames {
        /// `workflow `x`` / `activity `y`` entries, in manifest order.
        unknown: Vec<String>,
        known_workflows: Vec<String>,
        known_activities: Vec<String>,
    },
}

#[derive(Deserialize)]
struct RawManifest {
    service_schema: String,
    #[serde(default)]
    task_queue: Option<String>,
    workflows: Vec<RawWorkflow>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

#[derive(Deserialize)]
struct RawWorkflow {
    name: String,
    #[serde(default)]
    task_queue: Option<String>,
    #[serde(default)]
    activities: Vec<String>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

impl WorkerManifest {
    /// Parses and validates a manifest; returns it with the warnings for ignored fields.
    pub fn parse(json: &str) -> Result<(Self, Vec<ManifestWarning>), ManifestError> {
        let raw: RawManifest =
            serde_json::from_str(json).map_err(|error| ManifestError::Malformed {
                line: error.line(),
                column: error.column(),
                message: strip_position(&error.to_string()),
            })?;
        let mut warnings = Vec::new();
        let mut checker = Checker::new("manifest");
        extra_fields(
            &raw.rest,
            "",
            JAVASCRIPT_ONLY_TOP,
            &mut warnings,
            &mut checker,
        );

        let schema = ServiceSchema::parse(&raw.service_schema);
        if let Err(error) = &schema {
            checker.fail("service_schema", error.to_string());
        }
        if let Some(queue) = &raw.task_queue {
            checker.check("task_queue", task_queue(queue));
        }
        if raw.workflows.is_empty() {
            checker.fail("workflows", "must list at least one workflow");
        }
        for (index, workflow) in raw.workflows.iter().enumerate() {
            let prefix = format!("workflows[{index}].");
            extra_fields(
                &workflow.rest,
                &prefix,
                JAVASCRIPT_ONLY_WORKFLOW,
                &mut warnings,
                &mut checker,
            );
            checker.check(format!("{prefix}name"), validate::text(&workflow.name, 200));
            if let Some(queue) = &workflow.task_queue {
                checker.check(format!("{prefix}task_queue"), task_queue(queue));
            }
            for (position, activity) in workflow.activities.iter().enumerate() {
                checker.check(
                    format!("{prefix}activities[{position}]"),
                    validate::text(activity, 200),
                );
            }
        }

        // A worker polls one queue; the manifest may name it once at the top, or on every
        // workflow (the seed's shape), and it defaults to `{service_schema}-tasks`.
        let default_queue = match (&raw.task_queue, &schema) {
            (Some(queue), _) => Some(queue.clone()),
            (None, Ok(schema)) => Some(service_task_queue(schema)),
            (None, Err(_)) => None,
        };
        let mut queue: Option<(String, String)> = raw
            .task_queue
            .clone()
            .map(|queue| ("task_queue".to_owned(), queue));
        for (index, workflow) in raw.workflows.iter().enumerate() {
            let Some(this) = &workflow.task_queue else {
                continue;
            };
            match &queue {
                Some((field, first)) if first != this => checker.fail(
                    format!("workflows[{index}].task_queue"),
                    format!(
                        "`{this}` differs from {field} `{first}`: one worker polls one task queue"
                    ),
                ),
                Some(_) => {}
                None => queue = Some((format!("workflows[{index}].task_queue"), this.clone())),
            }
        }
        checker.finish()?;

        let task_queue = queue
            .map(|(_, queue)| queue)
            .or(default_queue)
            .unwrap_or_default();
        let service_schema = schema.map_err(|error| InvalidInput {
            payload: "manifest",
            errors: vec![validate::FieldError {
                field: "service_schema".into(),
                message: error.to_string(),
            }],
        })?;
        let workflows = raw
            .workflows
            .into_iter()
            .map(|workflow| ManifestWorkflow {
                name: workflow.name,
                task_queue: task_queue.clone(),
                activities: workflow.activities,
            })
            .collect();
        Ok((
            Self {
                service_schema,
                task_queue,
                workflows,
            },
            warnings,
        ))
    }

    /// Refuses names this worker does not provide, listing the ones it does.
    pub fn check_names(
        &self,
        known_workflows: &[&str],
        known_activities: &[&str],
    ) -> Result<(), ManifestError> {
        let mut unknown = Vec::new();
        for workflow in &self.workflows {
            if !known_workflows.contains(&workflow.name.as_str()) {
                unknown.push(format!("workflow `{}`", workflow.name));
            }
            for activity in &workflow.activities {
                if !known_activities.contains(&activity.as_str()) {
                    unknown.push(format!("activity `{activity}`"));
                }
            }
        }
        if unknown.is_empty() {
            return Ok(());
        }
        Err(ManifestError::UnknownNames {
            unknown,
            known_workflows: known_workflows.iter().map(|n| (*n).to_owned()).collect(),
            known_activities: known_activities.iter().map(|n| (*n).to_owned()).collect(),
        })
    }

    /// The manifest as pretty JSON, in the seed's shape (what `deployWorkerWorkflow` writes).
    pub fn to_json_pretty(&self) -> String {
        // Serializing plain strings and vectors cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

fn extra_fields(
    rest: &Map<String, Value>,
    prefix: &str,
    javascript_only: &[&str],
    warnings: &mut Vec<ManifestWarning>,
    checker: &mut Checker,
) {
    for key in rest.keys() {
        if javascript_only.contains(&key.as_str()) {
            warnings.push(ManifestWarning {
                field: format!("{prefix}{key}"),
                message: "JavaScript-only field, ignored by the Rust worker".to_owned(),
            });
        } else {
            checker.fail(format!("{prefix}{key}"), "unknown field");
        }
    }
}

/// serde_json appends " at line L column C"; the error carries those separately.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(index) => message[..index].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The manifest seed 002's `generateServiceManifest` wrote, unchanged.
    const SEED: &str = r#"{
      "service_schema": "telecom_billing_service_789",
      "activities_path": "./workers/generated/service/activities.js",
      "workflows": [
        {
          "name": "processBilling",
          "task_queue": "telecom_billing_service_789-tasks",
          "workflows_path": "./workflows/service/processBilling.js",
          "activities": ["calculateCharges", "sendInvoice"]
        },
        {
          "name": "handlePayment",
          "task_queue": "telecom_billing_service_789-tasks",
          "workflows_path": "./workflows/service/handlePayment.js",
          "activities": ["processPayment", "updateAccount"]
        }
      ]
    }"#;

    #[test]
    fn the_seed_shape_loads_with_warnings_for_javascript_fields() {
        let (manifest, warnings) = WorkerManifest::parse(SEED).unwrap();
        assert_eq!(
            manifest.service_schema.as_str(),
            "telecom_billing_service_789"
        );
        assert_eq!(manifest.task_queue, "telecom_billing_service_789-tasks");
        assert_eq!(manifest.workflows.len(), 2);
        assert_eq!(
            manifest.workflows[1].activities,
            ["processPayment", "updateAccount"]
        );
        let fields: Vec<_> = warnings.iter().map(|w| w.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "activities_path",
                "workflows[0].workflows_path",
                "workflows[1].workflows_path"
            ]
        );
    }

    #[test]
    fn the_queue_defaults_to_the_service_queue() {
        let (manifest, warnings) = WorkerManifest::parse(
            r#"{"service_schema": "billing", "workflows": [{"name": "createServiceWorkflow"}]}"#,
        )
        .unwrap();
        assert_eq!(manifest.task_queue, "billing-tasks");
        assert!(warnings.is_empty());
    }

    fn error_of(json: &str) -> String {
        WorkerManifest::parse(json).unwrap_err().to_string()
    }

    #[test]
    fn bad_manifests_name_the_problem() {
        assert_eq!(
            error_of(r#"{"service_schema": "billing", "workflows": [}"#),
            "malformed manifest at line 1, column 45: expected value"
        );
        assert_eq!(
            error_of(r#"{"workflows": []}"#),
            "malformed manifest at line 1, column 17: missing field `service_schema`"
        );
        assert_eq!(
            error_of(
                r#"{"service_schema": "Bad-Name", "workflows": [], "workflow": [], "task_queue": ""}"#
            ),
            "invalid manifest: workflow: unknown field; service_schema: must be a lowercase \
             identifier: a letter or '_' first, then letters, digits or '_', at most 63 \
             characters; task_queue: must not be empty; workflows: must list at least one workflow"
        );
        assert_eq!(
            error_of(
                r#"{"service_schema": "s", "workflows": [
                    {"name": "a", "task_queue": "q1"}, {"name": "b", "task_queue": "q2"}]}"#
            ),
            "invalid manifest: workflows[1].task_queue: `q2` differs from \
             workflows[0].task_queue `q1`: one worker polls one task queue"
        );
    }

    #[test]
    fn unknown_names_are_listed_with_the_known_ones() {
        let (manifest, _) = WorkerManifest::parse(SEED).unwrap();
        let error = manifest
            .check_names(&["processBilling"], &["calculateCharges", "sendInvoice"])
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "the manifest names what this worker does not provide: workflow `handlePayment`, \
             activity `processPayment`, activity `updateAccount`; known workflows: \
             processBilling; known activities: calculateCharges, sendInvoice"
        );
    }

    #[test]
    fn a_written_manifest_loads_back() {
        let (manifest, _) = WorkerManifest::parse(SEED).unwrap();
        let (again, warnings) = WorkerManifest::parse(&manifest.to_json_pretty()).unwrap();
        assert_eq!(again, manifest);
        assert!(warnings.is_empty());
    }
}
