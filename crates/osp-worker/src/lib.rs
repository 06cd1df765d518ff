//! The OSP worker: assembles a Temporal worker from the configuration and an optional
//! manifest, serves health and metrics, records itself in the worker registry, survives
//! outages at start-up, and drains on shutdown. [`WorkerBuilder`] is what a service embeds
//! to run its own workflows and activities; [`run`] is OSP's own worker on it, and
//! `main.rs` only parses and calls [`run`] or [`migrate`].

mod builder;
mod metrics;
pub mod plan;
mod readiness;
pub mod registry;
mod startup;

use std::future::Future;
use std::sync::Arc;

use osp_activities::dns::{CloudflareDns, CloudflareSettings, DnsProvider, LogDns};
use osp_activities::email::{LogMailer, Mailer, SmtpMailer, SmtpSettings, SmtpSettingsError};
use osp_activities::{MigrateError, MigrationReport, db};
use osp_config::{
    DnsSettings, EmailSettings, MigrateConfig, Pollers, WorkerConfig, WorkerSettings,
};
use osp_runtime::metrics::MetricsError;
use osp_runtime::server::BindError;
use temporalio_common::worker::{WorkerDeploymentOptions, WorkerDeploymentVersion};
use temporalio_sdk::runtime::worker_tuner::{FixedSizeSlotSupplier, TunerHolder};
use temporalio_sdk::runtime::{AutoscalingOptions, PollerBehavior};
use temporalio_sdk::{RuntimeError, WorkerCreateError, WorkerRunError};

pub use builder::WorkerBuilder;
pub use osp_workflows::WorkflowCatalog;
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
    #[error(transparent)]
    Bind(#[from] BindError),
    /// The SDK refused the runtime options (its reason is only a message).
    #[error("temporal runtime options: {reason}")]
    RuntimeOptions { reason: String },
    /// The Temporal runtime could not start.
    #[error("temporal runtime")]
    Runtime(#[from] RuntimeError),
    /// The SDK refused to build the worker.
    #[error("temporal worker")]
    Create(#[from] WorkerCreateError),
    /// The worker failed while running.
    #[error("temporal worker failed")]
    Run(#[from] WorkerRunError),
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

/// One slot supplier per kind of task, sized from the configuration; nexus tasks (unused by
/// OSP) get the SDK's own default.
pub fn tuner(workflow_tasks: usize, activities: usize) -> TunerHolder {
    TunerHolder::builder()
        .workflow_task_slot_supplier(FixedSizeSlotSupplier::new(workflow_tasks))
        .activity_task_slot_supplier(FixedSizeSlotSupplier::new(activities))
        .local_activity_task_slot_supplier(FixedSizeSlotSupplier::new(activities))
        .nexus_task_slot_supplier(FixedSizeSlotSupplier::new(10))
        .build()
}

/// The SDK's poller behaviour for the configured one.
fn poller_behavior(pollers: Pollers) -> PollerBehavior {
    match pollers {
        Pollers::Maximum(n) => PollerBehavior::SimpleMaximum(n),
        Pollers::Autoscaling {
            minimum,
            initial,
            maximum,
        } => PollerBehavior::Autoscaling(
            AutoscalingOptions::builder()
                .minimum(minimum)
                .initial(initial)
                .maximum(maximum)
                .build(),
        ),
    }
}

/// Worker versioning from the worker controller's variables, else a build id of this
/// version.
fn deployment_options(settings: &WorkerSettings) -> WorkerDeploymentOptions {
    match &settings.versioning {
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
    }
}

/// Runs OSP's own worker (every OSP workflow, or what the manifest lists) until `shutdown`
/// resolves, then drains; see [`WorkerBuilder::run`].
pub async fn run(
    config: WorkerConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), WorkerError> {
    WorkerBuilder::new(config).run(shutdown).await
}
