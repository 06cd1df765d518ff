//! The worker builder: what a service embeds to run its own workflows and activities beside
//! OSP's (or instead of them) with OSP's start-up, health, registry and drain. The
//! `osp-worker` binary is its thinnest user ([`crate::run`]).

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use deadpool_postgres::Pool;
use osp_activities::deployer::Deployer;
use osp_activities::email::Mailer;
use osp_activities::{PlatformActivities, db};
use osp_config::WorkerConfig;
use osp_core::activities::ALL_ACTIVITIES;
use osp_runtime::metrics::SdkExporter;
use osp_runtime::server::HealthServer;
use osp_runtime::{Health, Metrics};
use osp_workflows::WorkflowCatalog;
use temporalio_client::Client;
use temporalio_common::telemetry::TelemetryOptions;
use temporalio_sdk::activities::ActivityImplementer;
use temporalio_sdk::runtime::RuntimeOptions;
use temporalio_sdk::workflows::WorkflowImplementation;
use temporalio_sdk::{Runtime, Worker, WorkerOptions};
use tokio::task::JoinHandle;

use crate::metrics::WorkerMetrics;
use crate::plan::Plan;
use crate::{VERSION, WorkerError, readiness, registry, startup};

type ActivityRegistration = Box<dyn FnOnce(&Pool, &mut WorkerOptions)>;
type OptionsHook = Box<dyn FnOnce(&mut WorkerOptions)>;

/// Assembles a worker: [`WorkerBuilder::new`] (OSP's workflows and activities) or
/// [`WorkerBuilder::service`] (none of OSP's), then the service's own
/// [`workflow`](Self::workflow)s and [`activities`](Self::activities), optional resources of
/// the caller's, then [`run`](Self::run).
pub struct WorkerBuilder {
    config: WorkerConfig,
    catalog: WorkflowCatalog,
    osp_activities: bool,
    activity_names: Vec<&'static str>,
    activities: Vec<ActivityRegistration>,
    client: Option<Client>,
    pool: Option<Pool>,
    runtime: Option<Arc<Runtime>>,
    hooks: Vec<OptionsHook>,
    health_addr: Option<SocketAddr>,
    registry: bool,
}

impl fmt::Debug for WorkerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerBuilder")
            .field("workflows", &self.catalog.names())
            .field("osp_activities", &self.osp_activities)
            .field("activities", &self.activity_names)
            .field("health_addr", &self.health_addr)
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl WorkerBuilder {
    /// OSP's workflows and activities, the health server as configured, the registry row on:
    /// what `osp-worker` runs.
    pub fn new(config: WorkerConfig) -> Self {
        let health_addr = config
            .health
            .enabled
            .then(|| SocketAddr::from(([0, 0, 0, 0], config.health.port)));
        WorkerBuilder {
            config,
            catalog: WorkflowCatalog::osp(),
            osp_activities: true,
            activity_names: ALL_ACTIVITIES.to_vec(),
            activities: Vec::new(),
            client: None,
            pool: None,
            runtime: None,
            hooks: Vec::new(),
            health_addr,
            registry: true,
        }
    }

    /// A service's worker: none of OSP's workflows or activities until added.
    pub fn service(config: WorkerConfig) -> Self {
        let mut builder = Self::new(config);
        builder.catalog = WorkflowCatalog::new();
        builder.osp_activities = false;
        builder.activity_names.clear();
        builder
    }

    /// Registers the `#[workflow]` type `W`; a manifest may then name it.
    pub fn workflow<W>(mut self) -> Self
    where
        W: WorkflowImplementation,
        <W::Run as temporalio_common::WorkflowDefinition>::Input: Send,
    {
        self.catalog = self.catalog.with::<W>();
        self
    }

    /// Registers every workflow of `catalog`.
    pub fn workflows(mut self, catalog: &WorkflowCatalog) -> Self {
        self.catalog = self.catalog.merge(catalog);
        self
    }

    /// Registers the `#[activities]` type that `make` builds from the worker's database pool;
    /// `names` are the activity names it registers (a manifest may name only those).
    pub fn activities<A, F>(mut self, names: &[&'static str], make: F) -> Self
    where
        A: ActivityImplementer + 'static,
        F: FnOnce(Pool) -> A + 'static,
    {
        for name in names {
            if !self.activity_names.contains(name) {
                self.activity_names.push(name);
            }
        }
        self.activities.push(Box::new(move |pool, options| {
            options.register_activities(make(pool.clone()));
        }));
        self
    }

    /// Uses the caller's Temporal client instead of connecting from the configuration; the
    /// poller identity is then the client's.
    pub fn client(mut self, client: Client) -> Self {
        self.client = Some(client);
        self
    }

    /// Uses the caller's database pool instead of one built from the configuration.
    pub fn pool(mut self, pool: Pool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Uses the caller's SDK runtime (the Temporal core on a tokio runtime of the caller's
    /// choosing) instead of one on the current tokio runtime; its telemetry is then the
    /// caller's, and `/metrics` carries only the `osp_*` series.
    pub fn runtime(mut self, runtime: Arc<Runtime>) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Changes any worker option the builder does not cover (cache size, pollers,
    /// interceptors); applied last, after everything is registered.
    pub fn options(mut self, hook: impl FnOnce(&mut WorkerOptions) + 'static) -> Self {
        self.hooks.push(Box::new(hook));
        self
    }

    /// Serves `/healthz`, `/readyz` and `/metrics` on `addr` (port 0: any free port).
    pub fn health_server(mut self, addr: SocketAddr) -> Self {
        self.health_addr = Some(addr);
        self
    }

    /// No health server.
    pub fn without_health_server(mut self) -> Self {
        self.health_addr = None;
        self
    }

    /// Whether to record the worker in `osp_metadata.worker_registry` (on by default).
    pub fn registry(mut self, on: bool) -> Self {
        self.registry = on;
        self
    }

    /// The workflow names this builder registers.
    pub fn workflow_names(&self) -> Vec<&'static str> {
        self.catalog.names()
    }

    /// What the worker will serve: the manifest's workflows (checked against what is
    /// registered here), or every registered workflow on the configured queue.
    pub fn plan(&self) -> Result<Plan, WorkerError> {
        Ok(match &self.config.manifest_path {
            Some(path) => {
                Plan::from_manifest_among(path, &self.catalog.names(), &self.activity_names)?
            }
            None => Plan::serving(&self.config.temporal.task_queue, &self.catalog.names()),
        })
    }

    /// Runs the worker until `shutdown` resolves, then drains: polling stops, in-flight
    /// activities get the configured grace period, the registry says `stopped`. Everything it
    /// started (health server, SDK exporter, background tasks, connections it opened) is
    /// stopped when it returns, whatever the outcome.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), WorkerError> {
        let started = Instant::now();
        let activities = std::mem::take(&mut self.activities);
        let hooks = std::mem::take(&mut self.hooks);
        let plan = self.plan()?;
        // Checked before anything connects: a bad SMTP setting must not wait for Temporal.
        let mailer = if self.osp_activities {
            Some(crate::mailer(&self.config.email)?)
        } else {
            None
        };
        let resources = Resources::start(&self, &plan).await?;
        tracing::info!(
            identity = %resources.identity,
            task_queue = %plan.task_queue,
            workflows = %plan.workflows.join(","),
            version = VERSION,
            "worker starting"
        );
        let mut shutdown = std::pin::pin!(shutdown);
        let Some(client) = startup::connect(
            self.client.clone(),
            &self.config.temporal,
            &resources,
            &mut shutdown,
        )
        .await
        else {
            tracing::info!("shutdown requested before start-up finished");
            return Ok(());
        };
        if self.registry
            && let Err(error) =
                registry::record(&resources.pool, &resources.identity, &plan, VERSION).await
        {
            tracing::warn!(error = %osp_runtime::error_chain(&error), "could not record the worker in the registry");
        }
        let options = self.worker_options(&plan, &resources, mailer, activities, hooks)?;
        let mut worker = Worker::new(&resources.runtime, client.clone(), options)?;
        let _tasks = self.background(&plan, &resources, client, started);
        let outcome = drain_on(&mut worker, &resources.health, &self.config, shutdown).await;
        if self.registry
            && let Err(error) = registry::stopped(&resources.pool, &resources.identity).await
        {
            tracing::warn!(error = %osp_runtime::error_chain(&error), "could not mark the worker stopped in the registry");
        }
        outcome?;
        tracing::info!("worker stopped");
        Ok(())
    }

    /// The SDK's options: queue, activities, tuner, pollers and cache, versioning, grace, workflows, then hooks.
    fn worker_options(
        &self,
        plan: &Plan,
        resources: &Resources,
        mailer: Option<Arc<dyn Mailer>>,
        activities: Vec<ActivityRegistration>,
        hooks: Vec<OptionsHook>,
    ) -> Result<WorkerOptions, WorkerError> {
        let settings = &self.config.worker;
        let mut options = WorkerOptions::new(plan.task_queue.clone())
            .tuner(crate::tuner(
                settings.max_concurrent_workflow_tasks,
                settings.max_concurrent_activities,
            ))
            .max_cached_workflows(settings.max_cached_workflows)
            .maybe_workflow_task_poller_behavior(
                settings.workflow_task_pollers.map(crate::poller_behavior),
            )
            .maybe_activity_task_poller_behavior(
                settings.activity_task_pollers.map(crate::poller_behavior),
            )
            .deployment_options(crate::deployment_options(settings))
            .graceful_shutdown_period(settings.shutdown_grace)
            .build();
        if let Some(mailer) = mailer {
            options.register_activities(PlatformActivities::new(
                resources.pool.clone(),
                crate::dns_provider(&self.config.dns),
                mailer,
                Deployer {
                    manifest_dir: settings.manifest_dir.clone(),
                    command: settings.deployer_command.clone(),
                },
            ));
        }
        for register in activities {
            register(&resources.pool, &mut options);
        }
        self.catalog
            .register(&mut options, plan.workflows.iter().map(String::as_str))?;
        for hook in hooks {
            hook(&mut options);
        }
        Ok(options)
    }

    /// Readiness watcher and registry heartbeat, stopped when the returned guard drops.
    fn background(
        &self,
        plan: &Plan,
        resources: &Resources,
        client: Client,
        started: Instant,
    ) -> Tasks {
        let mut tasks = Tasks(vec![tokio::spawn(readiness::watch_pollers(
            client,
            plan.task_queue.clone(),
            resources.identity.clone(),
            resources.health.clone(),
            resources.metrics.clone(),
            started,
        ))]);
        if self.registry {
            tasks.0.push(tokio::spawn(registry::heartbeat_every(
                resources.pool.clone(),
                resources.identity.clone(),
                self.config.worker.registry_heartbeat,
                resources.health.clone(),
            )));
        }
        tasks
    }
}

/// Polls until `shutdown`, then stops polling and waits for in-flight work (the SDK's grace
/// period).
async fn drain_on(
    worker: &mut Worker,
    health: &Health,
    config: &WorkerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let stop_polling = worker.shutdown_handle();
    let mut running = std::pin::pin!(worker.run());
    let outcome = tokio::select! {
        result = &mut running => result,
        () = shutdown => {
            health.drain();
            tracing::info!(grace_seconds = config.worker.shutdown_grace.as_secs(), "draining: polling stopped, in-flight work finishing");
            stop_polling();
            running.await
        }
    };
    Ok(outcome?)
}

/// Tasks aborted when dropped.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// What `run` starts before connecting; dropped (so stopped) on every return path.
pub(crate) struct Resources {
    pub(crate) identity: String,
    pub(crate) pool: Pool,
    pub(crate) health: Health,
    pub(crate) metrics: WorkerMetrics,
    pub(crate) runtime: Arc<Runtime>,
    // Held for their Drop: the server's port and the exporter's close with them.
    _server: Option<HealthServer>,
    _exporter: Option<SdkExporter>,
}

impl Resources {
    async fn start(builder: &WorkerBuilder, plan: &Plan) -> Result<Resources, WorkerError> {
        let identity = builder
            .client
            .as_ref()
            .map_or_else(crate::identity, |client| {
                client.connection().identity().to_owned()
            });
        let pool = match &builder.pool {
            Some(pool) => pool.clone(),
            None => db::pool(
                builder.config.database.url.expose(),
                builder.config.worker.database_pool_size,
            )?,
        };
        let health = Health::new();
        health.register("temporal", "connecting");
        health.register("database", "connecting");
        let (metrics, runtime, exporter) = match &builder.runtime {
            Some(runtime) => (Metrics::new(), runtime.clone(), None),
            None => {
                let (metrics, meter, exporter) = Metrics::new().start_sdk_exporter()?;
                let telemetry = TelemetryOptions::builder().metrics(meter).build();
                let options = RuntimeOptions::builder()
                    .telemetry_options(telemetry)
                    .build()
                    .map_err(|reason| WorkerError::RuntimeOptions { reason })?;
                let runtime = Arc::new(Runtime::from_current_tokio(options)?);
                (metrics, runtime, Some(exporter))
            }
        };
        let worker_metrics = WorkerMetrics::register(metrics.registry(), plan, VERSION)?;
        let server = match builder.health_addr {
            Some(addr) => Some(HealthServer::start(addr, health.clone(), metrics).await?),
            None => None,
        };
        Ok(Resources {
            identity,
            pool,
            health,
            metrics: worker_metrics,
            runtime,
            _server: server,
            _exporter: exporter,
        })
    }
}
