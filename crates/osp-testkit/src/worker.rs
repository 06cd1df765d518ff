//! A Temporal worker inside a test: the workflows under test, the real activities or
//! replacements registered under the same names, run on the test's own task (the SDK's
//! worker is not `Send`) around the test's body, then shut down.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use temporalio_common::worker::WorkerDeploymentOptions;
use temporalio_common::{ActivityDefinition, HasWorkflowDefinition, WorkflowDefinition};
use temporalio_sdk::activities::{ActivityContext, ActivityError, ActivityImplementer};
use temporalio_sdk::runtime::{PollerBehavior, RuntimeOptions};
use temporalio_sdk::workflows::WorkflowImplementation;
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

use crate::activities::{Calls, Replacement, Spy};
use crate::{TestEnv, TestError};

/// How long a test worker gets to stop after the test's body is done.
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(15);

/// Why a workflow or activity could not be registered: the SDK's or OSP's own error.
type RegistrationError = Box<dyn std::error::Error + Send + Sync>;
type Registration = Box<dyn FnOnce(&mut WorkerOptions) -> Result<(), RegistrationError>>;
type Change = Box<dyn FnOnce(&mut WorkerOptions)>;

/// Chooses what a test worker runs: [`TestEnv::worker`], then [`Self::workflow`],
/// [`Self::activities`], [`Self::replace`], then [`Self::execute`], [`Self::run_until`] or
/// [`Self::build`].
pub struct TestWorkerBuilder<'env> {
    env: &'env TestEnv,
    workflows: Vec<Registration>,
    activities: Vec<Registration>,
    replacements: Vec<Registration>,
    spies: Vec<Registration>,
    detect_nondeterminism: bool,
    configure: Vec<Change>,
}

impl fmt::Debug for TestWorkerBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestWorkerBuilder")
            .field("task_queue", &self.env.task_queue())
            .field("workflows", &self.workflows.len())
            .field("activities", &self.activities.len())
            .field("replacements", &self.replacements.len())
            .finish_non_exhaustive()
    }
}

impl<'env> TestWorkerBuilder<'env> {
    pub(crate) fn new(env: &'env TestEnv) -> Self {
        TestWorkerBuilder {
            env,
            workflows: Vec::new(),
            activities: Vec::new(),
            replacements: Vec::new(),
            spies: Vec::new(),
            detect_nondeterminism: true,
            configure: Vec::new(),
        }
    }

    /// Registers a workflow (its `#[workflow]` struct).
    pub fn workflow<W>(mut self) -> Self
    where
        W: WorkflowImplementation,
        <W::Run as WorkflowDefinition>::Input: Send,
    {
        self.workflows.push(Box::new(|options| {
            options
                .register_workflow::<W>()
                .map(drop)
                .map_err(RegistrationError::from)
        }));
        self
    }

    /// Registers the OSP workflows named (as in `osp_core::workflows::ALL_WORKFLOWS`).
    pub fn osp_workflows(mut self, names: &[&'static str]) -> Self {
        let names = names.to_vec();
        self.workflows.push(Box::new(move |options| {
            osp_workflows::register(options, names).map_err(RegistrationError::from)
        }));
        self
    }

    /// Registers every activity of an `#[activities]` type: the real
    /// `PlatformActivities` (see [`TestEnv::platform`]) or a test's own.
    pub fn activities<A>(mut self, activities: A) -> Self
    where
        A: ActivityImplementer + 'static,
    {
        self.activities.push(Box::new(|options| {
            options.register_activities(activities);
            Ok(())
        }));
        self
    }

    /// The real OSP activities over this test's database with log-only providers.
    pub fn platform_activities(self) -> Self {
        match self.env.platform().build() {
            Ok(platform) => self.activities(platform),
            Err(error) => {
                let error = RegistrationError::from(error);
                let mut builder = self;
                builder.activities.push(Box::new(move |_| Err(error)));
                builder
            }
        }
    }

    /// Runs `run` instead of the activity `definition` (registered after, so in place of,
    /// any real one). `run` gets the input and returns the output or an
    /// [`ActivityError`] ([`crate::non_retryable`], [`crate::retryable`]).
    pub fn replace<D, F, Fut>(self, definition: D, run: F) -> Self
    where
        D: ActivityDefinition + 'static,
        D::Input: Send + Sync,
        D::Output: Send + Sync,
        F: Fn(D::Input) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<D::Output, ActivityError>> + Send + 'static,
    {
        self.replacement(Replacement::new(definition, run))
    }

    /// Like [`Self::replace`], with the activity's context (its attempt number, its
    /// workflow's id).
    pub fn replace_with_context<D, F, Fut>(self, definition: D, run: F) -> Self
    where
        D: ActivityDefinition + 'static,
        D::Input: Send + Sync,
        D::Output: Send + Sync,
        F: Fn(ActivityContext, D::Input) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<D::Output, ActivityError>> + Send + 'static,
    {
        self.replacement(Replacement::with_context(definition, run))
    }

    /// Registers a prepared [`Replacement`].
    pub fn replacement<D>(mut self, replacement: Replacement<D>) -> Self
    where
        D: ActivityDefinition + 'static,
        D::Input: Send + Sync,
        D::Output: Send + Sync,
    {
        self.replacements.push(Box::new(|options| {
            options.register_activities(replacement);
            Ok(())
        }));
        self
    }

    /// Records the input of every call of `definition` into `calls`, whichever
    /// implementation runs it (real or replaced).
    pub fn spy<D>(mut self, definition: D, calls: &Calls<D::Input>) -> Self
    where
        D: ActivityDefinition,
        D::Input: Clone + Send + Sync + 'static,
    {
        let spy = Spy {
            name: definition.name().to_owned(),
            calls: calls.clone(),
        };
        self.spies.push(Box::new(|options| {
            options.activity_inbound_interceptor(spy);
            Ok(())
        }));
        self
    }

    /// Turns the SDK's runtime detection of nondeterministic futures off (it is on).
    pub fn detect_nondeterminism(mut self, on: bool) -> Self {
        self.detect_nondeterminism = on;
        self
    }

    /// Changes any other worker option (cache size, tuner, interceptors).
    pub fn configure(mut self, change: impl FnOnce(&mut WorkerOptions) + 'static) -> Self {
        self.configure.push(Box::new(change));
        self
    }

    /// Builds the worker (it polls only once run).
    pub fn build(self) -> Result<TestWorker, TestError> {
        let mut options = WorkerOptions::new(self.env.task_queue())
            // A fixed build id: the default hashes the (large) test executable.
            .deployment_options(WorkerDeploymentOptions::from_build_id(
                "osp-testkit".to_owned(),
            ))
            .workflow_task_poller_behavior(PollerBehavior::SimpleMaximum(2))
            .activity_task_poller_behavior(PollerBehavior::SimpleMaximum(2))
            // Cancel what is still running at shutdown at once: the test is over.
            .graceful_shutdown_period(Duration::ZERO)
            .detect_nondeterministic_futures(self.detect_nondeterminism)
            .build();
        let mut errors = Vec::new();
        // Replacements after the real activities: the last registration of a name wins.
        for registration in self
            .workflows
            .into_iter()
            .chain(self.activities)
            .chain(self.replacements)
            .chain(self.spies)
        {
            if let Err(error) = registration(&mut options) {
                errors.push(error.to_string());
            }
        }
        for change in self.configure {
            change(&mut options);
        }
        if !errors.is_empty() {
            return Err(TestError::Worker(errors.join("; ")));
        }
        let runtime_options = RuntimeOptions::builder()
            .heartbeat_interval(None)
            .build()
            .map_err(TestError::Worker)?;
        let runtime = Runtime::from_current_tokio(runtime_options)
            .map_err(|error| TestError::Worker(error.to_string()))?;
        let worker = Worker::new(&runtime, self.env.client().clone(), options)
            .map_err(|error| TestError::Worker(error.to_string()))?;
        Ok(TestWorker {
            worker,
            _runtime: Arc::new(runtime),
            task_queue: self.env.task_queue().to_owned(),
        })
    }

    /// Builds the worker and runs it while `body` runs; see [`TestWorker::run_until`].
    pub async fn run_until<F: Future>(self, body: F) -> Result<F::Output, TestError> {
        self.build()?.run_until(body).await
    }

    /// Builds the worker, starts `workflow` and returns its typed result (or the workflow's
    /// typed failure as [`TestError::WorkflowFailed`]), then stops the worker.
    pub async fn execute<W>(self, workflow: W, input: W::Input) -> Result<W::Output, TestError>
    where
        W: HasWorkflowDefinition,
        W::Input: Send,
    {
        let env = self.env;
        self.build()?
            .run_until(env.execute(workflow, input))
            .await?
    }
}

/// A built test worker; [`TestWorker::run_until`] runs it.
pub struct TestWorker {
    worker: Worker,
    // Kept for the worker's lifetime; the core worker was made from it.
    _runtime: Arc<Runtime>,
    task_queue: String,
}

impl fmt::Debug for TestWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestWorker")
            .field("task_queue", &self.task_queue)
            .finish_non_exhaustive()
    }
}

impl TestWorker {
    /// Polls the test's task queue while `body` runs, on this task; when `body` is done,
    /// shuts the worker down (cancelling activities still running) and returns `body`'s
    /// output. A worker that stops on its own first is an error.
    pub async fn run_until<F: Future>(mut self, body: F) -> Result<F::Output, TestError> {
        let stop = self.worker.shutdown_handle();
        let running = self.worker.run();
        tokio::pin!(running);
        tokio::pin!(body);
        let output = tokio::select! {
            output = &mut body => output,
            result = &mut running => {
                return Err(TestError::Worker(match result {
                    Ok(()) => "the worker stopped before the test's body was done".to_owned(),
                    Err(error) => format!("the worker failed: {error}"),
                }));
            }
        };
        stop();
        match tokio::time::timeout(SHUTDOWN_DEADLINE, running).await {
            Ok(Ok(())) => Ok(output),
            Ok(Err(error)) => Err(TestError::Worker(format!(
                "the worker failed while shutting down: {error}"
            ))),
            Err(_) => Err(TestError::Deadline {
                what: format!("shutting down the worker of {}", self.task_queue),
                waited: SHUTDOWN_DEADLINE,
                detail: String::new(),
                artifacts: None,
            }),
        }
    }
}
