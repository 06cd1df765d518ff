//! The OSP worker: assembles a Temporal worker from the configuration and an optional
//! manifest, serves health and metrics, records itself in the worker registry, survives
//! outages at start-up, and drains on shutdown. `main.rs` only parses and calls [`run`] or
//! [`migrate`].

mod metrics;
pub mod plan;
mod readiness;
pub mod registry;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deadpool_postgres::Pool;
use osp_activities::deployer::Deployer;
use osp_activities::dns::{CloudflareDns, CloudflareSettings, DnsProvider, LogDns};
use osp_activities::email::{LogMailer, Mailer, SmtpMailer, SmtpSettings, SmtpSettingsError};
use osp_activities::{MigrateError, MigrationReport, PlatformActivities, db};
use osp_config::{DnsSettings, EmailSettings, MigrateConfig, TemporalSettings, WorkerConfig};
use osp_runtime::backoff::Backoff;
use osp_runtime::metrics::MetricsError;
use osp_runtime::{Health, Metrics, server, temporal};
use temporalio_client::Client;
use temporalio_common::telemetry::TelemetryOptions;
use temporalio_common::worker::{WorkerDeploymentOptions, WorkerDeploymentVersion};
use temporalio_sdk::runtime::RuntimeOptions;
use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

pub use plan::{Plan, PlanError};

/// This build's version, recorded in the registry.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Why the worker stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The manifest is missing or unusable.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The workflows could not be registered.
    #[error(transparent)]
    Register(#[from] osp_workflows::RegisterError),
    /// The database URL is unusable.
    #[error(transparent)]
    Database(#[from] db::DbError),
    /// The SMTP settings are unusable.
    #[error(transparent)]
    Smtp(#[from] SmtpSettingsError),
    /// Metrics could not start.
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    /// A metric could not be registered.
    #[error("metrics: {0}")]
    Prometheus(#[from] prometheus::Error),
    /// The health server could not listen.
    #[error("health server: cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The Temporal runtime or worker could not be built or failed while running.
    #[error("temporal worker: {0}")]
    Temporal(String),
    /// The schema could not be migrated.
    #[error(transparent)]
    Migrate(#[from] MigrateError),
}

/// Applies the schema (`osp-worker migrate`).
pub async fn migrate(config: &MigrateConfig) -> Result<MigrationReport, WorkerError> {
    let mut client = db::connect(config.database.url.expose()).await?;
    Ok(osp_activities::migrate(&mut client).await?)
}

/// A name unique to this process, shown as the poller identity in Temporal and the key of
/// the registry row.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "unknown-host".to_owned());
    format!("osp-worker@{host}:{}", std::process::id())
}

fn dns_provider(settings: &DnsSettings) -> Arc<dyn DnsProvider> {
    match settings {
        DnsSettings::Log { zone } => Arc::new(LogDns::new(zone.clone())),
        DnsSettings::Cloudflare {
            api_url,
            zone_id,
            zone,
            target,
            api_token,
        } => Arc::new(CloudflareDns::new(CloudflareSettings {
            api_base: api_url.clone(),
            zone_id: zone_id.clone(),
            zone_name: zone.clone(),
            target: target.clone(),
            api_token: api_token.expose().to_owned(),
        })),
    }
}

fn mailer(settings: &EmailSettings) -> Result<Arc<dyn Mailer>, SmtpSettingsError> {
    Ok(match settings {
        EmailSettings::Log => Arc::new(LogMailer),
        EmailSettings::Smtp {
            host,
            port,
            security,
            username,
            password,
            from,
        } => Arc::new(SmtpMailer::new(&SmtpSettings {
            host: host.clone(),
            port: *port,
            security: *security,
            username: username.clone(),
            password: password.as_ref().map(|p| p.expose().to_owned()),
            from: from.clone(),
        })?),
    })
}

/// Runs the worker until `shutdown` resolves, then drains: polling stops, in-flight
/// activities get the configured grace period, the registry says `stopped`.
pub async fn run(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    let started = Instant::now();
    let plan = match &config.manifest_path {
        Some(path) => Plan::from_manifest(path)?,
        None => Plan::all(&config.temporal.task_queue),
    };
    let identity = identity();
    let dns = dns_provider(&config.dns);
    let mailer = mailer(&config.email)?;
    let pool = db::pool(
        config.database.url.expose(),
        config.worker.database_pool_size,
    )?;

    let health = Health::new();
    health.register("temporal", "connecting");
    health.register("database", "connecting");
    let (metrics, meter) = Metrics::new().with_sdk_exporter()?;
    let osp_metrics = metrics::WorkerMetrics::register(metrics.registry(), &plan, VERSION)?;
    let server = if config.health.enabled {
        let addr = SocketAddr::from(([0, 0, 0, 0], config.health.port));
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| WorkerError::Bind { addr, source })?;
        Some(server::spawn(listener, health.clone(), metrics.clone()))
    } else {
        None
    };
    tracing::info!(
        %identity,
        task_queue = %plan.task_queue,
        workflows = %plan.workflows.join(","),
        version = VERSION,
        "worker starting"
    );

    let telemetry = TelemetryOptions::builder().metrics(meter).build();
    let runtime_options = RuntimeOptions::builder()
        .telemetry_options(telemetry)
        .build()
        .map_err(WorkerError::Temporal)?;
    let runtime = Runtime::from_current_tokio(runtime_options)
        .map_err(|error| WorkerError::Temporal(error.to_string()))?;

    let mut shutdown = std::pin::pin!(shutdown);
    let connected = async {
        tokio::join!(
            connect_temporal(&config.temporal, &identity, &health, &osp_metrics),
            wait_for_database(&pool, &health, &osp_metrics),
        )
    };
    let connected = tracing::Instrument::instrument(
        connected,
        tracing::info_span!("worker.startup", %identity),
    );
    let client = tokio::select! {
        (client, ()) = connected => client,
        () = &mut shutdown => {
            tracing::info!("shutdown requested before start-up finished");
            stop_server(server);
            return Ok(());
        }
    };
    if let Err(error) = registry::record(&pool, &identity, &plan, VERSION).await {
        tracing::warn!(%error, "could not record the worker in the registry");
    }

    let activities = PlatformActivities::new(
        pool.clone(),
        dns,
        mailer,
        Deployer {
            manifest_dir: config.worker.manifest_dir.clone(),
            command: config.worker.deployer_command.clone(),
        },
    );
    let tuner = TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(
            config.worker.max_concurrent_workflow_tasks,
        ))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(
            config.worker.max_concurrent_activities,
        ))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(
            config.worker.max_concurrent_activities,
        ))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(10))
        .build();
    let deployment = match &config.worker.versioning {
        Some((name, build_id)) => WorkerDeploymentOptions::new(
            WorkerDeploymentVersion::builder()
                .deployment_name(name.clone())
                .build_id(build_id.clone())
                .build(),
        )
        .use_worker_versioning(true)
        .default_versioning_behavior(temporalio_common::worker::VersioningBehavior::AutoUpgrade)
        .build(),
        None => WorkerDeploymentOptions::from_build_id(format!("osp-worker-{VERSION}")),
    };
    let mut options = WorkerOptions::new(plan.task_queue.clone())
        .register_activities(activities)
        .tuner(tuner)
        .deployment_options(deployment)
        .graceful_shutdown_period(config.worker.shutdown_grace)
        .build();
    osp_workflows::register(&mut options, plan.workflows.iter().map(String::as_str))?;
    let mut worker = Worker::new(&runtime, client.clone(), options)
        .map_err(|error| WorkerError::Temporal(error.to_string()))?;

    let watcher = tokio::spawn(readiness::watch_pollers(
        client,
        plan.task_queue.clone(),
        identity.clone(),
        health.clone(),
        osp_metrics.clone(),
        started,
    ));
    let heartbeat = tokio::spawn(heartbeat(
        pool.clone(),
        identity.clone(),
        config.worker.registry_heartbeat,
        health.clone(),
    ));

    let stop_polling = worker.shutdown_handle();
    let mut running = std::pin::pin!(worker.run());
    let outcome = tokio::select! {
        result = &mut running => result,
        () = &mut shutdown => {
            health.drain();
            tracing::info!(grace_seconds = config.worker.shutdown_grace.as_secs(), "draining: polling stopped, in-flight work finishing");
            stop_polling();
            running.await
        }
    };
    watcher.abort();
    heartbeat.abort();
    if let Err(error) = registry::stopped(&pool, &identity).await {
        tracing::warn!(%error, "could not mark the worker stopped in the registry");
    }
    stop_server(server);
    outcome.map_err(|error| WorkerError::Temporal(error.to_string()))?;
    tracing::info!("worker stopped");
    Ok(())
}

fn stop_server(server: Option<tokio::task::JoinHandle<()>>) {
    if let Some(server) = server {
        server.abort();
    }
}

/// Connects to Temporal, retrying with backoff; never gives up while the process lives.
async fn connect_temporal(
    settings: &TemporalSettings,
    identity: &str,
    health: &Health,
    metrics: &metrics::WorkerMetrics,
) -> Client {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
    loop {
        match temporal::connect(settings, identity, None).await {
            Ok(client) => {
                health.fail("temporal", "connected, waiting for pollers");
                return client;
            }
            Err(error) => {
                let (delay, attempt) = backoff.next_delay();
                health.fail("temporal", error.to_string());
                metrics
                    .connect_failures
                    .with_label_values(&["temporal"])
                    .inc();
                tracing::warn!(%error, attempt, retry_in_ms = delay.as_millis() as u64, "temporal unavailable");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Waits until the database answers, retrying with backoff.
async fn wait_for_database(pool: &Pool, health: &Health, metrics: &metrics::WorkerMetrics) {
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(10));
    loop {
        match ping(pool).await {
            Ok(()) => {
                health.pass("database");
                return;
            }
            Err(error) => {
                let (delay, attempt) = backoff.next_delay();
                health.fail("database", error.clone());
                metrics
                    .connect_failures
                    .with_label_values(&["database"])
                    .inc();
                tracing::warn!(%error, attempt, retry_in_ms = delay.as_millis() as u64, "database unavailable");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

async fn ping(pool: &Pool) -> Result<(), String> {
    let client = pool.get().await.map_err(|error| error.to_string())?;
    client
        .simple_query("select 1")
        .await
        .map(drop)
        .map_err(|error| error.to_string())
}

/// Refreshes the registry row; a failure makes the worker not ready until it recovers.
async fn heartbeat(pool: Pool, identity: String, every: Duration, health: Health) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match registry::heartbeat(&pool, &identity).await {
            Ok(()) => health.pass("database"),
            Err(error) => {
                tracing::warn!(%error, "registry heartbeat failed");
                health.fail("database", error.to_string());
            }
        }
    }
}
