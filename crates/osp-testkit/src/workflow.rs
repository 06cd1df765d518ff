//! A workflow under test: its typed result or typed failure, signals, queries and updates,
//! waiting for a query state, its history and description, and time control; every wait has
//! a deadline, and the result fails at the first workflow-task failure instead of hanging
//! while the server retries it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::{
    Client, WorkflowDescribeOptions, WorkflowExecuteUpdateOptions, WorkflowExecutionDescription,
    WorkflowFetchHistoryOptions, WorkflowGetResultOptions, WorkflowHandle, WorkflowQueryOptions,
    WorkflowSignalOptions,
};
use temporalio_client::{NamespacedClient as _, UntypedQuery};
use temporalio_common::data_converters::{
    GenericPayloadConverter as _, RawValue, SerializationContext, SerializationContextData,
};
use temporalio_common::protos::temporal::api::enums::v1::WorkflowTaskFailedCause;
use temporalio_common::protos::temporal::api::failure::v1::Failure;
use temporalio_common::protos::temporal::api::failure::v1::failure::FailureInfo;
use temporalio_common::protos::temporal::api::history::v1::HistoryEvent;
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_common::{
    HasWorkflowDefinition, QueryDefinition, SignalDefinition, UpdateDefinition,
};

use crate::history::RecordedHistory;
use crate::{TestEnv, TestError, artifacts, time};

/// How often [`TestWorkflow::wait_for_query`] asks again.
const QUERY_POLL: Duration = Duration::from_millis(20);

/// A workflow failure as a test sees it: the type and message the workflow failed with, its
/// retryability, and the chain of causes (an activity failure, then the activity's own).
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowFailure {
    /// The application failure type (`InvalidInput`, `BootstrapFailed`), if any.
    pub type_name: Option<String>,
    /// The failure's message.
    pub message: String,
    /// Whether it was marked non-retryable.
    pub non_retryable: bool,
    /// The messages of its causes, outermost first.
    pub causes: Vec<String>,
    /// The failure as the server recorded it.
    pub raw: Failure,
}

impl WorkflowFailure {
    /// Reads a failure proto.
    pub fn from_failure(failure: Failure) -> WorkflowFailure {
        let (type_name, non_retryable) = match &failure.failure_info {
            Some(FailureInfo::ApplicationFailureInfo(info)) => (
                (!info.r#type.is_empty()).then(|| info.r#type.clone()),
                info.non_retryable,
            ),
            _ => (None, false),
        };
        let mut causes = Vec::new();
        let mut cause = failure.cause.as_deref();
        while let Some(next) = cause {
            causes.push(next.message.clone());
            cause = next.cause.as_deref();
        }
        WorkflowFailure {
            type_name,
            message: failure.message.clone(),
            non_retryable,
            causes,
            raw: failure,
        }
    }

    /// The message and every cause's, joined: what to search for a word in.
    pub fn full_message(&self) -> String {
        std::iter::once(self.message.as_str())
            .chain(self.causes.iter().map(String::as_str))
            .collect::<Vec<_>>()
            .join(": ")
    }
}

impl fmt::Display for WorkflowFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(type_name) = &self.type_name {
            write!(f, "{type_name}: ")?;
        }
        f.write_str(&self.full_message())?;
        if self.non_retryable {
            f.write_str(" (non-retryable)")?;
        }
        Ok(())
    }
}

/// A started workflow of a test.
pub struct TestWorkflow<W> {
    handle: WorkflowHandle<Client, W>,
    client: Client,
    workflow_type: String,
    test: String,
    deadline: Duration,
}

impl<W: HasWorkflowDefinition> fmt::Debug for TestWorkflow<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestWorkflow")
            .field("workflow_id", &self.handle.info().workflow_id)
            .field("run_id", &self.handle.info().run_id)
            .field("workflow_type", &self.workflow_type)
            .finish_non_exhaustive()
    }
}

/// How waiting for a result ended.
enum Waited<T> {
    Done(Result<T, WorkflowGetResultError>),
    TaskFailed(String),
}

impl<W> TestWorkflow<W>
where
    W: HasWorkflowDefinition,
{
    pub(crate) fn new(
        env: &TestEnv,
        handle: WorkflowHandle<Client, W>,
        workflow_type: String,
    ) -> Self {
        TestWorkflow {
            handle,
            client: env.client().clone(),
            workflow_type,
            test: env.test_name().to_owned(),
            deadline: env.deadline(),
        }
    }

    /// The workflow id.
    pub fn id(&self) -> &str {
        &self.handle.info().workflow_id
    }

    /// The run id, when this handle started the run.
    pub fn run_id(&self) -> Option<&str> {
        self.handle.run_id()
    }

    /// The SDK's handle, for what this wrapper does not offer.
    pub fn handle(&self) -> &WorkflowHandle<Client, W> {
        &self.handle
    }

    /// Waits for the typed result within the environment's deadline.
    pub async fn result(&self) -> Result<W::Output, TestError> {
        self.result_within(self.deadline).await
    }

    /// Waits for the typed result within `deadline`. Fails at once, with the failure's
    /// message, when a workflow task fails (a panic, a nondeterminism error). Whatever the
    /// failure, the history and description are written to the artifacts directory.
    pub async fn result_within(&self, deadline: Duration) -> Result<W::Output, TestError> {
        match self.outcome(deadline).await {
            Err(TestError::WorkflowFailed {
                workflow_id,
                failure,
            }) => {
                // The test expected a result: keep the evidence of why there is none.
                self.dump().await;
                Err(TestError::WorkflowFailed {
                    workflow_id,
                    failure,
                })
            }
            other => other,
        }
    }

    /// Waits for the workflow to fail and returns the failure; a success is an error.
    pub async fn failure(&self) -> Result<WorkflowFailure, TestError> {
        match self.outcome(self.deadline).await {
            Ok(_) => Err(TestError::Unexpected {
                workflow_id: self.id().to_owned(),
                what: format!(
                    "completed, but the test expected it to fail{}",
                    written_to(self.dump().await)
                ),
            }),
            Err(TestError::WorkflowFailed { failure, .. }) => Ok(*failure),
            Err(other) => Err(other),
        }
    }

    /// How the workflow ended, or why the wait did; writes the history when the wait failed.
    async fn outcome(&self, deadline: Duration) -> Result<W::Output, TestError> {
        let outcome = tokio::time::timeout(deadline, async {
            tokio::select! {
                result = self.handle.get_result(WorkflowGetResultOptions::default()) => Waited::Done(result),
                message = first_task_failure(&self.client, self.id(), self.run_id()) => Waited::TaskFailed(message),
            }
        })
        .await;
        match outcome {
            Ok(Waited::Done(Ok(output))) => Ok(output),
            Ok(Waited::Done(Err(error))) => Err(self.closed_with(error).await),
            Ok(Waited::TaskFailed(message)) => Err(TestError::WorkflowTaskFailed {
                workflow_id: self.id().to_owned(),
                workflow_type: self.workflow_type().await,
                message,
                artifacts: self.dump().await,
            }),
            Err(_) => Err(TestError::Deadline {
                what: format!("waiting for the result of workflow {}", self.id()),
                waited: deadline,
                detail: self.pending_work().await,
                artifacts: self.dump().await,
            }),
        }
    }

    async fn closed_with(&self, error: WorkflowGetResultError) -> TestError {
        let workflow_id = self.id().to_owned();
        match error {
            WorkflowGetResultError::Failed(failure) => TestError::WorkflowFailed {
                workflow_id,
                failure: Box::new(WorkflowFailure::from_failure(failure.failure().clone())),
            },
            other => TestError::Unexpected {
                workflow_id,
                what: format!("{other}{}", written_to(self.dump().await)),
            },
        }
    }

    /// Sends a signal.
    pub async fn signal<S>(&self, signal: S, input: S::Input) -> Result<(), TestError>
    where
        S: SignalDefinition<Workflow = W::Run>,
        S::Input: Send,
    {
        let name = signal.name().to_owned();
        let what = || format!("signal {name} to {}", self.id());
        tokio::time::timeout(
            self.deadline,
            self.handle
                .signal(signal, input, WorkflowSignalOptions::default()),
        )
        .await
        .map_err(|_| self.interaction_deadline(what()))?
        .map_err(|error| TestError::Interaction {
            what: what(),
            message: error.to_string(),
        })
    }

    /// Asks a query.
    pub async fn query<Q>(&self, query: Q, input: Q::Input) -> Result<Q::Output, TestError>
    where
        Q: QueryDefinition<Workflow = W::Run>,
        Q::Input: Send,
    {
        let name = query.name().to_owned();
        let what = || format!("query {name} of {}", self.id());
        tokio::time::timeout(
            self.deadline,
            self.handle
                .query(query, input, WorkflowQueryOptions::default()),
        )
        .await
        .map_err(|_| self.interaction_deadline(what()))?
        .map_err(|error| TestError::Interaction {
            what: what(),
            message: error.to_string(),
        })
    }

    /// Runs an update and returns its result.
    pub async fn update<U>(&self, update: U, input: U::Input) -> Result<U::Output, TestError>
    where
        U: UpdateDefinition<Workflow = W::Run>,
        U::Input: Send,
        U::Output: 'static,
    {
        let name = update.name().to_owned();
        let what = || format!("update {name} of {}", self.id());
        tokio::time::timeout(
            self.deadline,
            self.handle
                .execute_update(update, input, WorkflowExecuteUpdateOptions::default()),
        )
        .await
        .map_err(|_| self.interaction_deadline(what()))?
        .map_err(|error| TestError::Interaction {
            what: what(),
            message: error.to_string(),
        })
    }

    /// Asks `query` until its answer satisfies `ready`, and returns that answer; fails after
    /// the deadline with the last answer (or error) it got.
    pub async fn wait_for_query<Q, F>(
        &self,
        query: Q,
        input: Q::Input,
        mut ready: F,
    ) -> Result<Q::Output, TestError>
    where
        Q: QueryDefinition<Workflow = W::Run>,
        Q::Output: fmt::Debug,
        F: FnMut(&Q::Output) -> bool,
    {
        // The SDK's query markers cannot be cloned; asking by name with the input encoded
        // once asks the same query again and again.
        let name = query.name().to_owned();
        let converter = self.client.data_converter().payload_converter().clone();
        let context_data = SerializationContextData::None;
        let context = SerializationContext::new(&context_data, &converter);
        let payload =
            converter
                .to_payload(&context, &input)
                .map_err(|error| TestError::Interaction {
                    what: format!("query {name} of {}", self.id()),
                    message: format!("encoding its input: {error}"),
                })?;
        let started = Instant::now();
        let mut last = String::from("no answer yet");
        while started.elapsed() < self.deadline {
            let asked = self
                .handle
                .query(
                    UntypedQuery::<W::Run>::new(name.clone()),
                    RawValue::new(vec![payload.clone()]),
                    WorkflowQueryOptions::default(),
                )
                .await;
            match asked {
                Ok(raw) => {
                    let answer = raw
                        .payloads
                        .into_iter()
                        .next()
                        .ok_or_else(|| "an empty answer".to_owned())
                        .and_then(|payload| {
                            converter
                                .from_payload::<Q::Output>(&context, payload)
                                .map_err(|error| error.to_string())
                        });
                    match answer {
                        Ok(answer) if ready(&answer) => return Ok(answer),
                        Ok(answer) => last = format!("last answer: {answer:?}"),
                        Err(error) => last = format!("last answer did not decode: {error}"),
                    }
                }
                Err(error) => last = format!("last error: {error}"),
            }
            tokio::time::sleep(QUERY_POLL).await;
        }
        Err(TestError::Deadline {
            what: format!(
                "waiting until query {name} of {} reports the expected state",
                self.id()
            ),
            waited: self.deadline,
            detail: format!("; {last}"),
            artifacts: self.dump().await,
        })
    }

    /// Lets the server skip time for this workflow: whenever nothing is in flight (no
    /// activity running), virtual time jumps to the next timer. Activities still run on the
    /// real clock. Other workflows, on this server too, are not affected.
    pub async fn skip_time(&self) -> Result<(), TestError> {
        time::enable(&self.client, self.id(), true).await
    }

    /// Stops skipping time for this workflow.
    pub async fn stop_skipping_time(&self) -> Result<(), TestError> {
        time::enable(&self.client, self.id(), false).await
    }

    /// Moves this workflow's clock `by` ahead (timers due meanwhile fire), then stops
    /// skipping; returns once the server reports the fast-forward done.
    pub async fn fast_forward(&self, by: Duration) -> Result<(), TestError> {
        time::fast_forward(&self.client, self.id(), by, self.deadline).await
    }

    /// [`TestWorkflow::skip_time`], then [`TestWorkflow::result`]: a workflow with hour-long
    /// timers finishes in seconds.
    pub async fn result_skipping_time(&self) -> Result<W::Output, TestError> {
        self.skip_time().await?;
        self.result().await
    }

    /// Every event of the workflow's history so far.
    pub async fn history(&self) -> Result<RecordedHistory, TestError> {
        let fetch = self
            .handle
            .fetch_history(WorkflowFetchHistoryOptions::default())
            .collect::<Vec<_>>();
        let events: Vec<HistoryEvent> = tokio::time::timeout(self.deadline, fetch)
            .await
            .map_err(|_| {
                self.interaction_deadline(format!("fetching the history of {}", self.id()))
            })?
            .into_iter()
            .collect::<Result<_, _>>()
            .map_err(|error| TestError::History {
                origin: format!("of workflow {}", self.id()),
                message: error.to_string(),
            })?;
        Ok(RecordedHistory::from_events(
            events,
            format!("workflow {}", self.id()),
        ))
    }

    /// Writes the history to `path` in the Rust client's JSON, for replay tests.
    pub async fn record_history(&self, path: impl AsRef<Path>) -> Result<(), TestError> {
        self.history().await?.write(path)
    }

    /// The server's description (status, pending activities and workflow task).
    pub async fn describe(&self) -> Result<WorkflowExecutionDescription, TestError> {
        let describe = self.handle.describe(WorkflowDescribeOptions::default());
        tokio::time::timeout(self.deadline, describe)
            .await
            .map_err(|_| self.interaction_deadline(format!("describing {}", self.id())))?
            .map_err(|error| TestError::Interaction {
                what: format!("describing {}", self.id()),
                message: error.to_string(),
            })
    }

    /// Writes the history and description under the artifacts directory and returns where.
    pub async fn dump(&self) -> Option<PathBuf> {
        artifacts::dump(&self.client, &self.test, self.id(), self.run_id()).await
    }

    async fn workflow_type(&self) -> String {
        if !self.workflow_type.is_empty() {
            return self.workflow_type.clone();
        }
        self.describe()
            .await
            .map(|description| description.workflow_type().to_owned())
            .unwrap_or_default()
    }

    /// What the workflow waits on: its pending activities with attempt and last failure.
    async fn pending_work(&self) -> String {
        let Ok(description) = self.describe().await else {
            return String::new();
        };
        let raw = description.raw();
        let mut lines = Vec::new();
        for activity in &raw.pending_activities {
            let name = activity
                .activity_type
                .as_ref()
                .map(|kind| kind.name.as_str())
                .unwrap_or("?");
            let failure = activity
                .last_failure
                .as_ref()
                .map(|failure| format!(", last failure: {}", failure.message))
                .unwrap_or_default();
            lines.push(format!(
                "activity {name} (id {}) attempt {}{failure}",
                activity.activity_id, activity.attempt
            ));
        }
        if raw.pending_workflow_task.is_some() {
            lines.push(
                "a workflow task is pending (is a worker polling the task queue?)".to_owned(),
            );
        }
        if lines.is_empty() {
            format!("; status {:?}, nothing pending", description.status())
        } else {
            format!("; pending: {}", lines.join("; "))
        }
    }

    fn interaction_deadline(&self, what: String) -> TestError {
        TestError::Deadline {
            what,
            waited: self.deadline,
            detail: String::new(),
            artifacts: None,
        }
    }
}

fn written_to(dir: Option<PathBuf>) -> String {
    dir.map(|dir| format!(" (history and description in {})", dir.display()))
        .unwrap_or_default()
}

/// Failures the server and the SDK produce in normal operation (a signal arriving during a
/// task, a worker restart, a reset); any other failed workflow task would be retried
/// forever without a change of code.
fn is_benign(cause: i32) -> bool {
    matches!(
        WorkflowTaskFailedCause::try_from(cause),
        Ok(WorkflowTaskFailedCause::UnhandledCommand
            | WorkflowTaskFailedCause::ResetStickyTaskQueue
            | WorkflowTaskFailedCause::ForceCloseCommand
            | WorkflowTaskFailedCause::FailoverCloseCommand
            | WorkflowTaskFailedCause::ResetWorkflow
            | WorkflowTaskFailedCause::UnhandledUpdate
            | WorkflowTaskFailedCause::WorkflowPauseRequestedBeforeTaskStarted)
    )
}

/// Follows the history as it grows (long polls) and resolves with the message of the first
/// failed workflow task; never resolves when the workflow closes without one.
pub(crate) async fn first_task_failure(
    client: &Client,
    workflow_id: &str,
    run_id: Option<&str>,
) -> String {
    let handle = artifacts::untyped_handle(client, workflow_id, run_id);
    let mut events = handle.fetch_history(
        WorkflowFetchHistoryOptions::builder()
            .wait_new_event(true)
            .build(),
    );
    while let Some(event) = events.next().await {
        let Ok(event) = event else {
            // Losing the watch must not fail the test; the result and the deadline remain.
            break;
        };
        if let Some(Attributes::WorkflowTaskFailedEventAttributes(attributes)) = event.attributes
            && !is_benign(attributes.cause)
        {
            let cause = WorkflowTaskFailedCause::try_from(attributes.cause)
                .map(|cause| cause.as_str_name().to_owned())
                .unwrap_or_else(|_| attributes.cause.to_string());
            let message = attributes
                .failure
                .map(|failure| WorkflowFailure::from_failure(failure).full_message())
                .unwrap_or_default();
            return format!("{message} ({cause})");
        }
    }
    std::future::pending().await
}
