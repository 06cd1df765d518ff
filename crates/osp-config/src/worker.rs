//! Settings only the worker reads: concurrency, shutdown grace, worker versioning, the
//! registry heartbeat, the database pool, manifests and the deployer, and the DNS and email
//! providers of the bootstrap workflow.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::keys::Key;
use super::layers::{Context, Setting};
use super::sections::Fields;
use super::values::{
    InvalidValue, REDACTED, Secret, as_usize, parse_http_url, parse_non_empty, parse_port,
    redact_url, whole_number,
};

const fn secret(env: &'static str, file: &'static str) -> Key {
    Key {
        env,
        aliases: &[],
        file,
        secret: true,
        default: None,
    }
}

/// Workflow tasks run at once; default 10 (the seed's worker).
pub const OSP_MAX_CONCURRENT_WORKFLOW_TASKS: Key = Key::new(
    "OSP_MAX_CONCURRENT_WORKFLOW_TASKS",
    "worker.max_concurrent_workflow_tasks",
)
.or("10");
/// Activities run at once; default 10.
pub const OSP_MAX_CONCURRENT_ACTIVITIES: Key = Key::new(
    "OSP_MAX_CONCURRENT_ACTIVITIES",
    "worker.max_concurrent_activities",
)
.or("10");
/// Workflow-task polls in flight: a number (at most that many), `autoscaling` or
/// `autoscaling:MIN:INITIAL:MAX`; unset: the SDK's choice.
pub const OSP_WORKFLOW_TASK_POLLERS: Key =
    Key::new("OSP_WORKFLOW_TASK_POLLERS", "worker.workflow_task_pollers");
/// Activity-task polls in flight, as for workflow tasks.
pub const OSP_ACTIVITY_TASK_POLLERS: Key =
    Key::new("OSP_ACTIVITY_TASK_POLLERS", "worker.activity_task_pollers");
/// Workflows kept in the sticky cache; 0 turns sticky queues off. Default 1000 (the SDK's).
pub const OSP_MAX_CACHED_WORKFLOWS: Key =
    Key::new("OSP_MAX_CACHED_WORKFLOWS", "worker.max_cached_workflows").or("1000");
/// Threads of the worker's tokio runtime; default 1: everything on the main thread, which
/// costs less CPU per workflow than one thread per core (docs/performance.md).
pub const OSP_RUNTIME_THREADS: Key =
    Key::new("OSP_RUNTIME_THREADS", "worker.runtime_threads").or("1");
/// Seconds in-flight work may take to finish after SIGTERM; default 30.
pub const OSP_SHUTDOWN_GRACE_SECONDS: Key =
    Key::new("OSP_SHUTDOWN_GRACE_SECONDS", "shutdown.grace_seconds").or("30");
/// Connections in the activities' database pool; default 10.
pub const OSP_DATABASE_POOL_SIZE: Key = Key::new("OSP_DATABASE_POOL_SIZE", "database.pool_size");
/// Seconds between `last_health_check` updates in the worker registry; default 15.
pub const OSP_REGISTRY_HEARTBEAT_SECONDS: Key = Key::new(
    "OSP_REGISTRY_HEARTBEAT_SECONDS",
    "worker.registry_heartbeat_seconds",
)
.or("15");
/// Worker Controller's deployment name; with the build id, turns worker versioning on.
pub const TEMPORAL_DEPLOYMENT_NAME: Key =
    Key::new("TEMPORAL_DEPLOYMENT_NAME", "temporal.deployment_name");
/// Worker Controller's build id.
pub const TEMPORAL_WORKER_BUILD_ID: Key =
    Key::new("TEMPORAL_WORKER_BUILD_ID", "temporal.worker_build_id");
/// Where `deployWorkerWorkflow` writes manifests; default `manifests`.
pub const OSP_MANIFEST_DIR: Key =
    Key::new("OSP_MANIFEST_DIR", "worker.manifest_dir").or("manifests");
/// The deployer's argv template as a JSON array of strings; none by default.
pub const OSP_DEPLOYER_COMMAND: Key = Key::new("OSP_DEPLOYER_COMMAND", "worker.deployer_command");
/// `log` (default) or `cloudflare`.
pub const DNS_PROVIDER: Key = Key::new("DNS_PROVIDER", "dns.provider").or("log");
/// The zone organizations get names in: `{subdomain}.{zone}`; default `localhost`.
pub const DNS_ZONE: Key = Key::new("DNS_ZONE", "dns.zone");
/// What each organization's CNAME points at (cloudflare).
pub const DNS_TARGET: Key = Key::new("DNS_TARGET", "dns.target");
/// API base; default `https://api.cloudflare.com/client/v4`.
pub const CLOUDFLARE_API_URL: Key = Key::new("CLOUDFLARE_API_URL", "dns.cloudflare_api_url")
    .or("https://api.cloudflare.com/client/v4");
/// The zone's id (cloudflare).
pub const CLOUDFLARE_ZONE_ID: Key = Key::new("CLOUDFLARE_ZONE_ID", "dns.cloudflare_zone_id");
/// An API token allowed to edit the zone's DNS (cloudflare).
pub const CLOUDFLARE_API_TOKEN: Key = secret("CLOUDFLARE_API_TOKEN", "dns.cloudflare_api_token");
/// `log` (default) or `smtp`.
pub const EMAIL_PROVIDER: Key = Key::new("EMAIL_PROVIDER", "email.provider").or("log");
/// SMTP server host (smtp).
pub const SMTP_HOST: Key = Key::new("SMTP_HOST", "email.smtp_host");
/// SMTP port; default 587.
pub const SMTP_PORT: Key = Key::new("SMTP_PORT", "email.smtp_port").or("587");
/// `starttls` (default), `tls` or `none`.
pub const SMTP_SECURITY: Key = Key::new("SMTP_SECURITY", "email.smtp_security").or("starttls");
/// SMTP user name.
pub const SMTP_USERNAME: Key = Key::new("SMTP_USERNAME", "email.smtp_username");
/// SMTP password.
pub const SMTP_PASSWORD: Key = secret("SMTP_PASSWORD", "email.smtp_password");
/// The sender of invitations, e.g. `OSP <no-reply@example.com>` (smtp).
pub const SMTP_FROM: Key = Key::new("SMTP_FROM", "email.smtp_from");

/// The worker-only keys, in documentation order.
pub const WORKER_KEYS: &[Key] = &[
    OSP_MAX_CONCURRENT_WORKFLOW_TASKS,
    OSP_MAX_CONCURRENT_ACTIVITIES,
    OSP_WORKFLOW_TASK_POLLERS,
    OSP_ACTIVITY_TASK_POLLERS,
    OSP_MAX_CACHED_WORKFLOWS,
    OSP_RUNTIME_THREADS,
    OSP_SHUTDOWN_GRACE_SECONDS,
    OSP_DATABASE_POOL_SIZE,
    OSP_REGISTRY_HEARTBEAT_SECONDS,
    TEMPORAL_DEPLOYMENT_NAME,
    TEMPORAL_WORKER_BUILD_ID,
    OSP_MANIFEST_DIR,
    OSP_DEPLOYER_COMMAND,
    DNS_PROVIDER,
    DNS_ZONE,
    DNS_TARGET,
    CLOUDFLARE_API_URL,
    CLOUDFLARE_ZONE_ID,
    CLOUDFLARE_API_TOKEN,
    EMAIL_PROVIDER,
    SMTP_HOST,
    SMTP_PORT,
    SMTP_SECURITY,
    SMTP_USERNAME,
    SMTP_PASSWORD,
    SMTP_FROM,
];

/// How the worker runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSettings {
    pub max_concurrent_workflow_tasks: usize,
    pub max_concurrent_activities: usize,
    /// `None`: the SDK's choice (at most 5 polls, or autoscaling when the namespace enrols
    /// workers in it).
    pub workflow_task_pollers: Option<Pollers>,
    pub activity_task_pollers: Option<Pollers>,
    pub max_cached_workflows: usize,
    /// 1: tokio's current-thread runtime; more: that many worker threads.
    pub runtime_threads: usize,
    pub shutdown_grace: Duration,
    pub database_pool_size: usize,
    pub registry_heartbeat: Duration,
    /// `(deployment name, build id)` when Temporal's Worker Controller runs the worker.
    pub versioning: Option<(String, String)>,
    pub manifest_dir: PathBuf,
    pub deployer_command: Option<Vec<String>>,
}

/// How many polls for one kind of task the worker keeps in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pollers {
    /// At most this many.
    Maximum(usize),
    /// Adjusted from the server's feedback between `minimum` and `maximum`.
    Autoscaling {
        minimum: usize,
        initial: usize,
        maximum: usize,
    },
}

/// Most polls of one kind a worker may keep in flight.
const MAX_POLLERS: usize = 1_000;

impl Pollers {
    /// `autoscaling` alone: the SDK's own autoscaling bounds.
    const AUTOSCALING: Pollers = Pollers::Autoscaling {
        minimum: 1,
        initial: 5,
        maximum: 100,
    };

    fn parse(s: &str) -> Result<Self, InvalidValue> {
        const SHAPE: &str = "must be a number of polls from 1 to 1000, `autoscaling`, or \
             `autoscaling:MIN:INITIAL:MAX` with 1 <= MIN <= INITIAL <= MAX <= 1000";
        let bounded = |n: &str| {
            n.trim()
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_POLLERS).contains(n))
        };
        if s == "autoscaling" {
            return Ok(Self::AUTOSCALING);
        }
        if let Some(bounds) = s.strip_prefix("autoscaling:") {
            let bounds: Vec<Option<usize>> = bounds.split(':').map(bounded).collect();
            return match bounds[..] {
                [Some(minimum), Some(initial), Some(maximum)]
                    if minimum <= initial && initial <= maximum =>
                {
                    Ok(Pollers::Autoscaling {
                        minimum,
                        initial,
                        maximum,
                    })
                }
                _ => Err(InvalidValue::new(SHAPE)),
            };
        }
        bounded(s)
            .map(Pollers::Maximum)
            .ok_or_else(|| InvalidValue::new(SHAPE))
    }
}

impl fmt::Display for Pollers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pollers::Maximum(n) => write!(f, "{n}"),
            Pollers::Autoscaling {
                minimum,
                initial,
                maximum,
            } => write!(f, "autoscaling:{minimum}:{initial}:{maximum}"),
        }
    }
}

fn shown(value: Option<impl ToString>, unset: &str) -> String {
    value.map_or_else(|| unset.to_owned(), |value| value.to_string())
}

/// Where organizations' DNS records go.
#[derive(Debug, Clone)]
pub enum DnsSettings {
    /// Log only (local runs).
    Log { zone: String },
    /// Cloudflare's v4 API, or a server speaking it.
    Cloudflare {
        api_url: String,
        zone_id: String,
        zone: String,
        target: String,
        api_token: Secret,
    },
}

/// How an SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    StartTls,
    Tls,
    None,
}

/// How invitation emails go out.
#[derive(Debug, Clone)]
pub enum EmailSettings {
    /// Log only (local runs).
    Log,
    /// An SMTP server.
    Smtp {
        host: String,
        port: u16,
        security: SmtpSecurity,
        username: Option<String>,
        password: Option<Secret>,
        from: String,
    },
}

impl WorkerSettings {
    pub(super) fn fields(&self) -> Fields {
        let mut fields: Fields = vec![
            (
                "max_concurrent_workflow_tasks".into(),
                self.max_concurrent_workflow_tasks.to_string(),
            ),
            (
                "max_concurrent_activities".into(),
                self.max_concurrent_activities.to_string(),
            ),
            (
                "workflow_task_pollers".into(),
                shown(self.workflow_task_pollers, "sdk"),
            ),
            (
                "activity_task_pollers".into(),
                shown(self.activity_task_pollers, "sdk"),
            ),
            (
                "max_cached_workflows".into(),
                self.max_cached_workflows.to_string(),
            ),
            ("runtime_threads".into(), self.runtime_threads.to_string()),
            (
                "shutdown_grace_seconds".into(),
                self.shutdown_grace.as_secs().to_string(),
            ),
            (
                "database_pool_size".into(),
                self.database_pool_size.to_string(),
            ),
            (
                "registry_heartbeat_seconds".into(),
                self.registry_heartbeat.as_secs().to_string(),
            ),
            (
                "manifest_dir".into(),
                self.manifest_dir.display().to_string(),
            ),
            (
                "deployer_command".into(),
                self.deployer_command
                    .as_ref()
                    .map_or_else(|| "none".to_owned(), |argv| argv.join(" ")),
            ),
        ];
        if let Some((name, build)) = &self.versioning {
            fields.push(("deployment_name".into(), name.clone()));
            fields.push(("worker_build_id".into(), build.clone()));
        }
        fields
    }

    pub(super) fn parse(cx: &mut Context<'_>) -> Option<Self> {
        let workflow_tasks = cx
            .get(&OSP_MAX_CONCURRENT_WORKFLOW_TASKS, whole_number(2, 10_000))
            .value();
        let activities = cx
            .get(&OSP_MAX_CONCURRENT_ACTIVITIES, whole_number(1, 10_000))
            .value();
        let workflow_pollers = cx
            .get(&OSP_WORKFLOW_TASK_POLLERS, Pollers::parse)
            .optional();
        let activity_pollers = cx
            .get(&OSP_ACTIVITY_TASK_POLLERS, Pollers::parse)
            .optional();
        let cached = cx
            .get(&OSP_MAX_CACHED_WORKFLOWS, whole_number(0, 1_000_000))
            .value();
        let threads = cx.get(&OSP_RUNTIME_THREADS, whole_number(1, 256)).value();
        // The SDK refuses one workflow poller with sticky queues on: one poll would have to
        // serve both the sticky and the normal queue.
        if let (Some(Some(Pollers::Maximum(1))), Some(cached @ 1..)) = (&workflow_pollers, cached) {
            cx.problem(
                OSP_WORKFLOW_TASK_POLLERS.env,
                format!(
                    "must be at least 2 while workflows are cached ({} is {cached}; 0 turns the cache and sticky queues off)",
                    OSP_MAX_CACHED_WORKFLOWS.env
                ),
            );
        }
        let grace = cx
            .get(&OSP_SHUTDOWN_GRACE_SECONDS, whole_number(0, 3_600))
            .value();
        let pool = cx
            .get(&OSP_DATABASE_POOL_SIZE, whole_number(1, 1_000))
            .or_default(|| 10);
        let heartbeat = cx
            .get(&OSP_REGISTRY_HEARTBEAT_SECONDS, whole_number(1, 3_600))
            .value();
        let name = cx.get(&TEMPORAL_DEPLOYMENT_NAME, parse_non_empty);
        let build = cx.get(&TEMPORAL_WORKER_BUILD_ID, parse_non_empty);
        let versioning = match (name, build) {
            (Setting::Unset, Setting::Unset) => Some(None),
            (Setting::Valid { value: name, .. }, Setting::Valid { value: build, .. }) => {
                Some(Some((name, build)))
            }
            (name, build) => {
                if name.is_set() && build.is_set() {
                    None
                } else {
                    let (set, missing) = if name.is_set() {
                        (&TEMPORAL_DEPLOYMENT_NAME, &TEMPORAL_WORKER_BUILD_ID)
                    } else {
                        (&TEMPORAL_WORKER_BUILD_ID, &TEMPORAL_DEPLOYMENT_NAME)
                    };
                    cx.problem(
                        set.env,
                        format!("worker versioning needs {} as well", missing.env),
                    );
                    None
                }
            }
        };
        let manifest_dir = cx
            .get(&OSP_MANIFEST_DIR, |s| parse_non_empty(s).map(PathBuf::from))
            .value();
        let deployer = cx.get(&OSP_DEPLOYER_COMMAND, parse_argv).optional();
        Some(WorkerSettings {
            max_concurrent_workflow_tasks: as_usize(workflow_tasks?),
            max_concurrent_activities: as_usize(activities?),
            workflow_task_pollers: workflow_pollers?,
            activity_task_pollers: activity_pollers?,
            max_cached_workflows: as_usize(cached?),
            runtime_threads: as_usize(threads?),
            shutdown_grace: Duration::from_secs(grace?),
            database_pool_size: as_usize(pool?),
            registry_heartbeat: Duration::from_secs(heartbeat?),
            versioning: versioning?,
            manifest_dir: manifest_dir?,
            deployer_command: deployer?,
        })
    }
}

/// A JSON array of non-empty strings: an argv, never a shell line.
fn parse_argv(s: &str) -> Result<Vec<String>, InvalidValue> {
    const SHAPE: &str = "must be a JSON array of strings, e.g. [\"helm\", \"upgrade\", \"--install\", \"osp-{service_schema}\"]";
    let argv: Vec<String> = serde_json::from_str(s).map_err(|_| InvalidValue::new(SHAPE))?;
    if argv.is_empty() || argv[0].trim().is_empty() {
        return Err(InvalidValue::new(SHAPE));
    }
    Ok(argv)
}

impl DnsSettings {
    pub(super) fn fields(&self) -> Fields {
        match self {
            DnsSettings::Log { zone } => vec![
                ("provider".into(), "log".into()),
                ("zone".into(), zone.clone()),
            ],
            DnsSettings::Cloudflare {
                api_url,
                zone_id,
                zone,
                target,
                ..
            } => vec![
                ("provider".into(), "cloudflare".into()),
                ("zone".into(), zone.clone()),
                ("target".into(), target.clone()),
                ("cloudflare_api_url".into(), redact_url(api_url)),
                ("cloudflare_zone_id".into(), zone_id.clone()),
                ("cloudflare_api_token".into(), REDACTED.into()),
            ],
        }
    }

    pub(super) fn parse(cx: &mut Context<'_>) -> Option<Self> {
        let provider = cx
            .get(&DNS_PROVIDER, |s| match s {
                "log" | "cloudflare" => Ok(s.to_owned()),
                _ => Err(InvalidValue::new("must be `log` or `cloudflare`")),
            })
            .value();
        let zone = cx.get(&DNS_ZONE, parse_non_empty);
        let target = cx.get(&DNS_TARGET, parse_non_empty);
        let api_url = cx.get(&CLOUDFLARE_API_URL, parse_http_url);
        let zone_id = cx.get(&CLOUDFLARE_ZONE_ID, parse_non_empty);
        let token = cx.get(&CLOUDFLARE_API_TOKEN, |s| {
            parse_non_empty(s).map(Secret::new)
        });
        if provider.as_deref() == Some("cloudflare") {
            let zone = cx.required(&DNS_ZONE, zone);
            let target = cx.required(&DNS_TARGET, target);
            let zone_id = cx.required(&CLOUDFLARE_ZONE_ID, zone_id);
            let api_token = cx.required(&CLOUDFLARE_API_TOKEN, token);
            let api_url = api_url.value();
            Some(DnsSettings::Cloudflare {
                api_url: api_url?,
                zone_id: zone_id?,
                zone: zone?,
                target: target?,
                api_token: api_token?,
            })
        } else {
            let zone = zone.or_default(|| "localhost".to_owned());
            provider?;
            Some(DnsSettings::Log { zone: zone? })
        }
    }
}

impl EmailSettings {
    pub(super) fn fields(&self) -> Fields {
        match self {
            EmailSettings::Log => vec![("provider".into(), "log".into())],
            EmailSettings::Smtp {
                host,
                port,
                security,
                username,
                password,
                from,
            } => vec![
                ("provider".into(), "smtp".into()),
                ("smtp_host".into(), host.clone()),
                ("smtp_port".into(), port.to_string()),
                (
                    "smtp_security".into(),
                    format!("{security:?}").to_lowercase(),
                ),
                (
                    "smtp_username".into(),
                    username.clone().unwrap_or_else(|| "none".into()),
                ),
                (
                    "smtp_password".into(),
                    password
                        .as_ref()
                        .map_or_else(|| "none".into(), |_| REDACTED.into()),
                ),
                ("smtp_from".into(), from.clone()),
            ],
        }
    }

    pub(super) fn parse(cx: &mut Context<'_>) -> Option<Self> {
        let provider = cx
            .get(&EMAIL_PROVIDER, |s| match s {
                "log" | "smtp" => Ok(s.to_owned()),
                _ => Err(InvalidValue::new("must be `log` or `smtp`")),
            })
            .value();
        let host = cx.get(&SMTP_HOST, parse_non_empty);
        let port = cx
            .get(&SMTP_PORT, |s| parse_port(s).map_err(InvalidValue::from))
            .value();
        let security = cx
            .get(&SMTP_SECURITY, |s| match s {
                "starttls" => Ok(SmtpSecurity::StartTls),
                "tls" => Ok(SmtpSecurity::Tls),
                "none" => Ok(SmtpSecurity::None),
                _ => Err(InvalidValue::new("must be `starttls`, `tls` or `none`")),
            })
            .value();
        let username = cx.get(&SMTP_USERNAME, parse_non_empty).optional();
        let password = cx
            .get(&SMTP_PASSWORD, |s| parse_non_empty(s).map(Secret::new))
            .optional();
        let from = cx.get(&SMTP_FROM, parse_non_empty);
        if provider.as_deref() == Some("smtp") {
            let host = cx.required(&SMTP_HOST, host);
            let from = cx.required(&SMTP_FROM, from);
            Some(EmailSettings::Smtp {
                host: host?,
                port: port?,
                security: security?,
                username: username?,
                password: password?,
                from: from?,
            })
        } else {
            provider?;
            Some(EmailSettings::Log)
        }
    }
}

impl fmt::Display for WorkerSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        super::sections::write_fields(f, "", &self.fields())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::WorkerConfig;

    fn load(pairs: &[(&str, &str)]) -> Result<WorkerConfig, String> {
        crate::tests::load_over_base(pairs, WorkerConfig::load)
    }

    #[test]
    fn defaults() {
        let config = load(&[]).unwrap();
        assert_eq!(config.worker.max_concurrent_workflow_tasks, 10);
        assert_eq!(config.worker.max_concurrent_activities, 10);
        assert_eq!(config.worker.workflow_task_pollers, None);
        assert_eq!(config.worker.activity_task_pollers, None);
        assert_eq!(config.worker.max_cached_workflows, 1000);
        assert_eq!(config.worker.runtime_threads, 1);
        assert_eq!(config.worker.shutdown_grace, Duration::from_secs(30));
        assert_eq!(config.worker.versioning, None);
        assert_eq!(config.worker.deployer_command, None);
        assert!(matches!(&config.dns, DnsSettings::Log { zone } if zone == "localhost"));
        assert!(matches!(config.email, EmailSettings::Log));
    }

    #[test]
    fn every_worker_setting_parses() {
        let config = load(&[
            ("OSP_MAX_CONCURRENT_WORKFLOW_TASKS", "20"),
            ("OSP_MAX_CONCURRENT_ACTIVITIES", "5"),
            ("OSP_WORKFLOW_TASK_POLLERS", "autoscaling:2:4:20"),
            ("OSP_ACTIVITY_TASK_POLLERS", "3"),
            ("OSP_MAX_CACHED_WORKFLOWS", "0"),
            ("OSP_RUNTIME_THREADS", "4"),
            ("OSP_SHUTDOWN_GRACE_SECONDS", "0"),
            ("OSP_DATABASE_POOL_SIZE", "3"),
            ("OSP_REGISTRY_HEARTBEAT_SECONDS", "2"),
            ("TEMPORAL_DEPLOYMENT_NAME", "osp"),
            ("TEMPORAL_WORKER_BUILD_ID", "abc123"),
            ("OSP_MANIFEST_DIR", "/var/osp/manifests"),
            (
                "OSP_DEPLOYER_COMMAND",
                r#"["helm", "upgrade", "osp-{service_schema}"]"#,
            ),
            ("DNS_PROVIDER", "cloudflare"),
            ("DNS_ZONE", "example.com"),
            ("DNS_TARGET", "app.example.com"),
            ("CLOUDFLARE_ZONE_ID", "z1"),
            ("CLOUDFLARE_API_TOKEN", "cf-SENTINEL"),
            ("EMAIL_PROVIDER", "smtp"),
            ("SMTP_HOST", "smtp.example.com"),
            ("SMTP_PORT", "465"),
            ("SMTP_SECURITY", "tls"),
            ("SMTP_USERNAME", "mailer"),
            ("SMTP_PASSWORD", "smtp-SENTINEL"),
            ("SMTP_FROM", "OSP <no-reply@example.com>"),
        ])
        .unwrap();
        assert_eq!(config.worker.max_concurrent_workflow_tasks, 20);
        assert_eq!(config.worker.max_concurrent_activities, 5);
        assert_eq!(
            config.worker.workflow_task_pollers,
            Some(Pollers::Autoscaling {
                minimum: 2,
                initial: 4,
                maximum: 20
            })
        );
        assert_eq!(
            config.worker.activity_task_pollers,
            Some(Pollers::Maximum(3))
        );
        assert_eq!(config.worker.max_cached_workflows, 0);
        assert_eq!(config.worker.runtime_threads, 4);
        let shown = config.worker.to_string();
        for field in [
            "workflow_task_pollers=autoscaling:2:4:20",
            "activity_task_pollers=3",
            "max_cached_workflows=0",
            "runtime_threads=4",
        ] {
            assert!(shown.contains(field), "{field} not in {shown}");
        }
        assert_eq!(config.worker.shutdown_grace, Duration::ZERO);
        assert_eq!(config.worker.database_pool_size, 3);
        assert_eq!(config.worker.registry_heartbeat, Duration::from_secs(2));
        assert_eq!(
            config.worker.versioning,
            Some(("osp".into(), "abc123".into()))
        );
        assert_eq!(
            config.worker.manifest_dir,
            PathBuf::from("/var/osp/manifests")
        );
        assert_eq!(
            config.worker.deployer_command.as_deref(),
            Some(
                &[
                    "helm".to_owned(),
                    "upgrade".into(),
                    "osp-{service_schema}".into()
                ][..]
            )
        );
        let DnsSettings::Cloudflare {
            api_url, api_token, ..
        } = &config.dns
        else {
            panic!("{:?}", config.dns)
        };
        assert_eq!(api_url, "https://api.cloudflare.com/client/v4");
        assert_eq!(api_token.expose(), "cf-SENTINEL");
        let EmailSettings::Smtp { port, security, .. } = &config.email else {
            panic!("{:?}", config.email)
        };
        assert_eq!((*port, *security), (465, SmtpSecurity::Tls));
        for shown in [format!("{config}"), format!("{config:?}")] {
            assert!(!shown.contains("SENTINEL"), "{shown}");
        }
    }

    #[test]
    fn bad_worker_settings_are_all_listed() {
        let error = load(&[
            ("OSP_MAX_CONCURRENT_ACTIVITIES", "0"),
            ("OSP_ACTIVITY_TASK_POLLERS", "autoscaling:5:2:10"),
            ("OSP_RUNTIME_THREADS", "0"),
            ("OSP_SHUTDOWN_GRACE_SECONDS", "soon"),
            ("TEMPORAL_WORKER_BUILD_ID", "abc"),
            ("OSP_DEPLOYER_COMMAND", "helm upgrade"),
            ("DNS_PROVIDER", "cloudflare"),
            ("EMAIL_PROVIDER", "smtp"),
            ("SMTP_PASSWORD", "smtp-SENTINEL"),
            ("SMTP_SECURITY", "ssl"),
        ])
        .unwrap_err();
        for expected in [
            "OSP_MAX_CONCURRENT_ACTIVITIES: must be a whole number from 1 to 10000 (got `0`)",
            "OSP_ACTIVITY_TASK_POLLERS: must be a number of polls from 1 to 1000, `autoscaling`, or `autoscaling:MIN:INITIAL:MAX` with 1 <= MIN <= INITIAL <= MAX <= 1000 (got `autoscaling:5:2:10`)",
            "OSP_RUNTIME_THREADS: must be a whole number from 1 to 256 (got `0`)",
            "OSP_SHUTDOWN_GRACE_SECONDS: must be a whole number from 0 to 3600 (got `soon`)",
            "TEMPORAL_WORKER_BUILD_ID: worker versioning needs TEMPORAL_DEPLOYMENT_NAME as well",
            "OSP_DEPLOYER_COMMAND: must be a JSON array of strings",
            "DNS_TARGET: is required",
            "CLOUDFLARE_ZONE_ID: is required",
            "CLOUDFLARE_API_TOKEN: is required",
            "SMTP_HOST: is required",
            "SMTP_FROM: is required",
            "SMTP_SECURITY: must be `starttls`, `tls` or `none`",
        ] {
            assert!(error.contains(expected), "missing {expected:?} in\n{error}");
        }
        assert!(!error.contains("SENTINEL"));
    }

    #[test]
    fn pollers_take_a_count_or_autoscaling_bounds() {
        for (text, pollers) in [
            ("1", Pollers::Maximum(1)),
            ("1000", Pollers::Maximum(1000)),
            ("autoscaling", Pollers::AUTOSCALING),
            (
                "autoscaling:3:3:3",
                Pollers::Autoscaling {
                    minimum: 3,
                    initial: 3,
                    maximum: 3,
                },
            ),
        ] {
            assert_eq!(Pollers::parse(text).ok(), Some(pollers), "{text}");
            assert_eq!(Pollers::parse(&pollers.to_string()).ok(), Some(pollers));
        }
        for text in [
            "0",
            "1001",
            "-1",
            "many",
            "autoscaling:",
            "autoscaling:1:5",
            "autoscaling:0:1:2",
            "autoscaling:1:5:4",
            "autoscaling:1:2:3:4",
            "autoscaling:1:2:1001",
            "Autoscaling",
        ] {
            assert!(Pollers::parse(text).is_err(), "{text} accepted");
        }
    }

    #[test]
    fn one_workflow_poller_needs_the_cache_off() {
        let error = load(&[("OSP_WORKFLOW_TASK_POLLERS", "1")]).unwrap_err();
        assert!(
            error.contains("OSP_WORKFLOW_TASK_POLLERS: must be at least 2 while workflows are cached (OSP_MAX_CACHED_WORKFLOWS is 1000"),
            "{error}"
        );
        let config = load(&[
            ("OSP_WORKFLOW_TASK_POLLERS", "1"),
            ("OSP_MAX_CACHED_WORKFLOWS", "0"),
        ])
        .unwrap();
        assert_eq!(
            config.worker.workflow_task_pollers,
            Some(Pollers::Maximum(1))
        );
    }
}
