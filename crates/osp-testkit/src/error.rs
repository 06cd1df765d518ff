//! The harness's one error type: why a workflow test could not set up, run or check what it
//! asked for. Every variant says enough to act on without a debugger: the workflow, the
//! message, and where its history was written when that helps.

use std::path::PathBuf;
use std::time::Duration;

use crate::chain::ChainMismatch;
use crate::replay::ReplayMismatch;
use crate::workflow::WorkflowFailure;
use crate::{ProcessError, StackError};

/// What went wrong in a workflow test.
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    /// A throwaway server could not be found, started or reached.
    #[error(transparent)]
    Stack(#[from] StackError),
    /// The shared environment of this test binary failed to start (every test that asks
    /// gets this same message, instead of starting servers again).
    #[error("the shared test environment could not start: {0}")]
    Environment(String),
    /// A statement against a test database failed.
    #[error("database: {context}: {detail}")]
    Database {
        /// What the harness was doing.
        context: String,
        /// The server's message.
        detail: String,
    },
    /// Connecting to the Temporal dev server failed.
    #[error("temporal: {0}")]
    Temporal(String),
    /// A workflow or activity could not be registered, or the worker could not be built, or
    /// it stopped with an error.
    #[error("test worker: {0}")]
    Worker(String),
    /// A workflow could not be started.
    #[error("starting {workflow_type} as {workflow_id}: {message}")]
    Start {
        /// The registered workflow type.
        workflow_type: String,
        /// The id it was to run under.
        workflow_id: String,
        /// The server's or the converter's message.
        message: String,
    },
    /// A workflow task failed: a panic, a nondeterminism error, an input that does not
    /// decode. The server would retry it forever, so the test stops at the first one.
    #[error(
        "workflow {workflow_id} ({workflow_type}): a workflow task failed: {message}{}",
        written(.artifacts)
    )]
    WorkflowTaskFailed {
        /// The workflow's id.
        workflow_id: String,
        /// The registered workflow type.
        workflow_type: String,
        /// The failure's message and cause, as the worker reported it.
        message: String,
        /// Where its history and description were written.
        artifacts: Option<PathBuf>,
    },
    /// The workflow ended in failure (see [`TestError::workflow_failure`]).
    #[error("workflow {workflow_id} failed: {failure}")]
    WorkflowFailed {
        /// The workflow's id.
        workflow_id: String,
        /// The typed failure.
        failure: Box<WorkflowFailure>,
    },
    /// The workflow ended otherwise than expected: cancelled, terminated, timed out, or
    /// completed where a failure was expected.
    #[error("workflow {workflow_id}: {what}")]
    Unexpected {
        /// The workflow's id.
        workflow_id: String,
        /// What happened instead.
        what: String,
    },
    /// Nothing the test waited for happened before its deadline.
    #[error("{what}: not done after {waited:?}{detail}{}", written(.artifacts))]
    Deadline {
        /// What was awaited.
        what: String,
        /// How long.
        waited: Duration,
        /// What the workflow was doing meanwhile (pending activities and their last failures).
        detail: String,
        /// Where the history and description were written.
        artifacts: Option<PathBuf>,
    },
    /// A signal, query or update could not be delivered or failed.
    #[error("{what}: {message}")]
    Interaction {
        /// Which interaction with which workflow.
        what: String,
        /// The server's or the workflow's message.
        message: String,
    },
    /// The server refused to skip time for a workflow.
    #[error("time skipping for {workflow_id}: {message}")]
    TimeSkipping {
        /// The workflow's id.
        workflow_id: String,
        /// The server's message.
        message: String,
    },
    /// A history could not be fetched, read, decoded or written.
    #[error("history {origin}: {message}")]
    History {
        /// The file or workflow it came from.
        origin: String,
        /// What is wrong with it.
        message: String,
    },
    /// Replaying a recorded history against the current workflow code failed.
    #[error(transparent)]
    Replay(#[from] ReplayMismatch),
    /// A stream's domain events did not arrive as expected.
    #[error(transparent)]
    Chain(#[from] ChainMismatch),
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the harness was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// An OSP binary run as a process misbehaved.
    #[error(transparent)]
    Process(#[from] ProcessError),
}

impl TestError {
    /// The typed failure, when the workflow ended in failure.
    pub fn workflow_failure(&self) -> Option<&WorkflowFailure> {
        match self {
            TestError::WorkflowFailed { failure, .. } => Some(failure.as_ref()),
            _ => None,
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        TestError::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn database(context: impl Into<String>, error: &tokio_postgres::Error) -> Self {
        TestError::Database {
            context: context.into(),
            detail: osp_stack::postgres_detail(error),
        }
    }
}

fn written(artifacts: &Option<PathBuf>) -> String {
    match artifacts {
        Some(path) => format!("\n(history and description written to {})", path.display()),
        None => String::new(),
    }
}
