//! Replay tests: recorded histories run against the current workflow code, offline. A
//! change that would break running workflows (a step added, removed or reordered) fails with
//! the workflow's type and id, the file, and the SDK's description of the mismatch.

use std::fmt;
use std::path::{Path, PathBuf};

use temporalio_common::WorkflowDefinition;
use temporalio_sdk::workflow_replayer::{
    WorkflowReplayError, WorkflowReplayFailure, WorkflowReplayer, WorkflowReplayerOptions,
};
use temporalio_sdk::workflows::WorkflowImplementation;

use crate::TestError;
use crate::history::RecordedHistory;

/// Why a recorded history did not replay.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("replaying {origin}: workflow {workflow_type} ({workflow_id}) {kind}: {message}")]
pub struct ReplayMismatch {
    /// The file (or workflow) the history came from.
    pub origin: String,
    /// The workflow type recorded in the history.
    pub workflow_type: String,
    /// The workflow id recorded in the history.
    pub workflow_id: String,
    /// What kind of failure.
    pub kind: ReplayFailureKind,
    /// The SDK's message: which command the code produced against which event.
    pub message: String,
}

/// The kinds of replay failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFailureKind {
    /// The code produced different commands than the history recorded.
    Nondeterminism,
    /// A workflow task failed during replay (a panic, an input that no longer decodes).
    WorkflowTaskFailed,
    /// The history is malformed, or no workflow of its type is registered.
    InvalidHistory,
    /// The replayer itself failed.
    Internal,
}

impl fmt::Display for ReplayFailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ReplayFailureKind::Nondeterminism => "is nondeterministic",
            ReplayFailureKind::WorkflowTaskFailed => "failed a workflow task",
            ReplayFailureKind::InvalidHistory => "cannot be replayed from this history",
            ReplayFailureKind::Internal => "could not be replayed",
        })
    }
}

/// The SDK reports a replay failure as the `Debug` text of a completion with the failure's
/// message inside; that message (`[TMPRL1100] Nondeterminism error: Activity type of
/// scheduled event 'a' does not match activity type of activity command 'b'`) is what a
/// reader needs, so it is pulled out when present.
fn readable(message: &str) -> String {
    const START: &str = "message: \"";
    let Some(start) = message.find(START) else {
        return message.to_owned();
    };
    let mut text = String::new();
    let mut chars = message[start + START.len()..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => text.extend(chars.next()),
            '"' => return text,
            other => text.push(other),
        }
    }
    message.to_owned()
}

/// Replays histories against the workflows registered on it.
pub struct Replayer {
    options: WorkflowReplayerOptions,
    errors: Vec<String>,
}

impl fmt::Debug for Replayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Replayer")
            .field("errors", &self.errors)
            .finish_non_exhaustive()
    }
}

impl Default for Replayer {
    fn default() -> Self {
        Self::new()
    }
}

impl Replayer {
    /// A replayer with no workflows yet.
    pub fn new() -> Self {
        Replayer {
            options: WorkflowReplayerOptions::new().build(),
            errors: Vec::new(),
        }
    }

    /// Registers a workflow implementation (its type name comes from its `#[run]`).
    pub fn workflow<W>(mut self) -> Self
    where
        W: WorkflowImplementation,
        <W::Run as WorkflowDefinition>::Input: Send,
    {
        if let Err(error) = self.options.register_workflow::<W>() {
            self.errors.push(error.to_string());
        }
        self
    }

    /// Registers the three OSP workflows.
    pub fn osp_workflows(self) -> Self {
        self.workflow::<osp_workflows::CreateServiceWorkflow>()
            .workflow::<osp_workflows::OrganizationBootstrapWorkflow>()
            .workflow::<osp_workflows::DeployWorkerWorkflow>()
    }

    /// Replays one history.
    pub async fn replay(&self, history: RecordedHistory) -> Result<(), TestError> {
        if !self.errors.is_empty() {
            return Err(TestError::Worker(format!(
                "registering workflows for replay: {}",
                self.errors.join("; ")
            )));
        }
        let mismatch = |kind: ReplayFailureKind, message: String| ReplayMismatch {
            origin: history.origin().to_owned(),
            workflow_type: history.workflow_type().unwrap_or("?").to_owned(),
            workflow_id: history.workflow_id().unwrap_or("?").to_owned(),
            kind,
            message,
        };
        let replayer = WorkflowReplayer::new(self.options.clone())
            .map_err(|error| TestError::Worker(format!("building the replayer: {error}")))?;
        let outcome = replayer
            .replay_workflow(history.clone().into_workflow_history())
            .await;
        let failure = match outcome {
            Ok(()) => return Ok(()),
            Err(WorkflowReplayError::Replay(failure)) => failure,
            Err(other) => {
                return Err(mismatch(ReplayFailureKind::Internal, other.to_string()).into());
            }
        };
        let (kind, message) = match failure {
            WorkflowReplayFailure::Nondeterminism { message } => {
                (ReplayFailureKind::Nondeterminism, message)
            }
            WorkflowReplayFailure::WorkflowTaskFailure { message } => {
                (ReplayFailureKind::WorkflowTaskFailed, message)
            }
            WorkflowReplayFailure::InvalidHistory { message } => {
                (ReplayFailureKind::InvalidHistory, message)
            }
            other => (ReplayFailureKind::Internal, other.to_string()),
        };
        Err(mismatch(kind, readable(&message)).into())
    }

    /// Reads and replays one history file (either JSON format).
    pub async fn replay_file(&self, path: impl AsRef<Path>) -> Result<(), TestError> {
        self.replay(RecordedHistory::from_file(path)?).await
    }

    /// Replays every `*.json` file in `dir`, in name order, and returns the files; stops at
    /// the first failure.
    pub async fn replay_dir(&self, dir: impl AsRef<Path>) -> Result<Vec<PathBuf>, TestError> {
        let dir = dir.as_ref();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|error| TestError::io(format!("listing {}", dir.display()), error))?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| {
                path.extension()
                    .is_some_and(|extension| extension == "json")
            })
            .collect();
        files.sort();
        for file in &files {
            self.replay_file(file).await?;
        }
        Ok(files)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failure_message_is_pulled_out_of_the_sdk_report() {
        let report = r#"Workflow activation completion failed: Failure { failure: Some(Failure { message: "[TMPRL1100] Nondeterminism error: Activity type of scheduled event 'a' does not match activity type of activity command 'b \"quoted\"'", source: "" }) }"#;
        assert_eq!(
            readable(report),
            "[TMPRL1100] Nondeterminism error: Activity type of scheduled event 'a' does not match activity type of activity command 'b \"quoted\"'"
        );
        assert_eq!(readable("plain words"), "plain words");
    }
}
