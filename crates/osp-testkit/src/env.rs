//! The workflow-test environment. One per test binary: the first test that asks starts a
//! Temporal dev server (with per-workflow time skipping enabled), PostgreSQL with a template
//! database holding the OSP schema, and PgBouncer in front of it; a watchdog tears all of it
//! down when the process exits. Each test then gets a [`TestEnv`] of its own: a fresh
//! database copied from the template, a unique task queue, its own Temporal client, and a
//! scratch directory, so tests run in parallel without seeing each other.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use osp_activities::deployer::Deployer;
use osp_activities::dns::{DnsProvider, LogDns};
use osp_activities::email::{LogMailer, Mailer};
use osp_activities::{Migration, PlatformActivities};
use temporalio_client::{Client, WorkflowStartOptions};
use temporalio_common::HasWorkflowDefinition;
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;
use uuid::Uuid;

use crate::chain::{self, StoredEvent};
use crate::worker::TestWorkerBuilder;
use crate::workflow::TestWorkflow;
use crate::{PgBouncer, Postgres, TemporalDevServer, TemporalOptions, TestError, artifacts};
use osp_stack::Watchdog;

/// How long a helper waits for a workflow, a query state or an event chain unless told
/// otherwise ([`TestEnv::with_deadline`]).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(30);

/// The database every test database is copied from: the OSP schema, migrated once.
const TEMPLATE: &str = "osp_template";

/// The dynamic config that lets a workflow opt in to time skipping (Server 1.32+).
const TIME_SKIPPING: (&str, &str) = ("frontend.WorkflowTimeSkippingEnabled", "true");

/// The servers of this test binary; never dropped (it lives in a static), the watchdog
/// stops them at exit.
#[derive(Debug)]
struct Shared {
    postgres: Postgres,
    pgbouncer: PgBouncer,
    temporal: TemporalDevServer,
    /// Per-test scratch directories live under it.
    scratch: PathBuf,
    watchdog: Watchdog,
    /// How long the first test waited for all of it.
    started_in: Duration,
}

static SHARED: OnceCell<Result<Shared, String>> = OnceCell::const_new();

/// A service's own migrations, applied to the template after OSP's; fixed by the first test
/// of the binary that starts the environment.
static SERVICE_MIGRATIONS: std::sync::OnceLock<&'static [Migration]> = std::sync::OnceLock::new();

/// Distinguishes the databases and queues of the tests of one binary.
static TEST_COUNTER: AtomicU64 = AtomicU64::new(0);

async fn shared() -> Result<&'static Shared, TestError> {
    let shared = SHARED
        .get_or_init(|| async { start_shared().await.map_err(|error| error.to_string()) })
        .await;
    shared
        .as_ref()
        .map_err(|message| TestError::Environment(message.clone()))
}

async fn start_shared() -> Result<Shared, TestError> {
    let started = Instant::now();
    let watchdog = Watchdog::start()?;
    let options = TemporalOptions {
        dynamic_config: vec![(TIME_SKIPPING.0.to_owned(), TIME_SKIPPING.1.to_owned())],
        ..TemporalOptions::default()
    };
    let (postgres, temporal) =
        tokio::try_join!(Postgres::start(), TemporalDevServer::start_with(options))?;
    // Registered before anything else can fail, so that from here on nothing outlives us.
    for (signal, pid, dir) in [
        ("INT", postgres.pid(), postgres.root_dir()),
        ("TERM", temporal.pid(), temporal.root_dir()),
    ] {
        if let Some(pid) = pid {
            watchdog.stop_at_exit(signal, pid)?;
        }
        watchdog.remove_at_exit(dir)?;
    }
    let pgbouncer = PgBouncer::start(&postgres).await?;
    if let Some(pid) = pgbouncer.pid() {
        watchdog.stop_at_exit("TERM", pid)?;
    }
    watchdog.remove_at_exit(pgbouncer.root_dir())?;

    let scratch = std::env::temp_dir().join(format!(
        "osp-testkit-scratch-{}-{}",
        std::process::id(),
        Uuid::new_v4().simple()
    ));
    watchdog.remove_at_exit(&scratch)?;
    std::fs::create_dir_all(&scratch)
        .map_err(|error| TestError::io(format!("creating {}", scratch.display()), error))?;

    prepare_template(&postgres).await?;
    Ok(Shared {
        postgres,
        pgbouncer,
        temporal,
        scratch,
        watchdog,
        started_in: started.elapsed(),
    })
}

/// Creates the template database, gives it Supabase's roles and default privileges, and
/// applies the OSP schema to it once; every test's database is a copy (a file copy inside
/// Postgres: milliseconds, not a migration).
async fn prepare_template(postgres: &Postgres) -> Result<(), TestError> {
    let admin = Admin::connect(&socket_url(postgres, "postgres")).await?;
    admin
        .execute(
            &format!("CREATE DATABASE {TEMPLATE}"),
            "creating the template",
        )
        .await?;
    {
        let (mut client, connection) =
            tokio_postgres::connect(&socket_url(postgres, TEMPLATE), NoTls)
                .await
                .map_err(|error| TestError::database("connecting to the template", &error))?;
        let driver = tokio::spawn(connection);
        // Supabase's roles and default privileges first, so every test database carries the
        // grants a Supabase project gives the migrations' tables.
        client
            .batch_execute(crate::SUPABASE_ROLES_SQL)
            .await
            .map_err(|error| TestError::database("creating the Supabase roles", &error))?;
        osp_activities::migrate(&mut client)
            .await
            .map_err(|error| TestError::Database {
                context: "migrating the template".to_owned(),
                detail: error.to_string(),
            })?;
        for migration in SERVICE_MIGRATIONS.get().copied().unwrap_or_default() {
            client.batch_execute(migration.sql).await.map_err(|error| {
                TestError::database(
                    format!(
                        "applying the service's migration {} ({})",
                        migration.version, migration.name
                    ),
                    &error,
                )
            })?;
        }
        drop(client);
        // A copy is refused while anyone is connected to the template: wait for the close.
        let _ = driver.await;
    }
    admin
        .execute(
            &format!("ALTER DATABASE {TEMPLATE} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false"),
            "closing the template",
        )
        .await?;
    admin.close().await;
    Ok(())
}

/// `database` over the server's local socket, where the superuser is trusted: no password
/// exchange (SCRAM costs a debug build some 100 ms per connection) and no TCP.
fn socket_url(postgres: &Postgres, database: &str) -> String {
    let dir: String = postgres
        .root_dir()
        .to_string_lossy()
        .bytes()
        .map(|byte| match byte {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(byte).to_string()
            }
            other => format!("%{other:02X}"),
        })
        .collect();
    format!(
        "postgres://{}@{dir}:{}/{database}",
        postgres.user(),
        postgres.port()
    )
}

/// A superuser connection for administrative statements, closed explicitly.
struct Admin {
    client: tokio_postgres::Client,
    driver: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
}

impl Admin {
    async fn connect(url: &str) -> Result<Admin, TestError> {
        let (client, connection) = tokio_postgres::connect(url, NoTls)
            .await
            .map_err(|error| TestError::database("connecting as the superuser", &error))?;
        Ok(Admin {
            client,
            driver: tokio::spawn(connection),
        })
    }

    async fn execute(&self, sql: &str, context: &str) -> Result<(), TestError> {
        self.client
            .batch_execute(sql)
            .await
            .map_err(|error| TestError::database(context, &error))
    }

    async fn close(self) {
        drop(self.client);
        let _ = self.driver.await;
    }
}

/// Copies the template into a new database. Concurrent copies of one template can collide
/// ("source database is being accessed by other users"); those are retried.
async fn create_test_database(shared: &Shared, name: &str) -> Result<(), TestError> {
    let admin = Admin::connect(&socket_url(&shared.postgres, "postgres")).await?;
    let deadline = Instant::now() + DEFAULT_DEADLINE;
    let sql = format!("CREATE DATABASE {name} TEMPLATE {TEMPLATE}");
    let result = loop {
        match admin.client.batch_execute(&sql).await {
            Ok(()) => break Ok(()),
            Err(error)
                if error.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE)
                    && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(error) => break Err(TestError::database("creating the test's database", &error)),
        }
    };
    admin.close().await;
    result
}

async fn connect_temporal(address: &str, identity: &str) -> Result<Client, TestError> {
    osp_stack::local_client(address, identity)
        .await
        .map_err(|error| TestError::Temporal(osp_stack::error_chain(&error)))
}

/// Starts (or joins) this binary's environment and gives the calling test its own part of
/// it. Equivalent to [`TestEnv::new`].
pub async fn test_env() -> Result<TestEnv, TestError> {
    TestEnv::new().await
}

/// Like [`test_env`], with a service's own `migrations` applied after OSP's into the
/// template every test database is copied from. Every test of one binary must pass the same
/// migrations (the template is made once); a different list is refused.
pub async fn test_env_with(migrations: &'static [Migration]) -> Result<TestEnv, TestError> {
    let fixed = *SERVICE_MIGRATIONS.get_or_init(|| migrations);
    let same = fixed.len() == migrations.len()
        && fixed
            .iter()
            .zip(migrations)
            .all(|(a, b)| a.version == b.version && a.sql == b.sql);
    if !same {
        return Err(TestError::Environment(format!(
            "this test binary's environment was started with other service migrations ({}); \
             every test of one binary must pass the same ones",
            fixed.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
        )));
    }
    TestEnv::create().await
}

/// One test's isolated part of the shared environment. Dropping it prints how long the test
/// took after the environment was up, and, when the test is panicking, writes the history
/// and description of every workflow it started.
#[derive(Debug)]
pub struct TestEnv {
    shared: &'static Shared,
    test: String,
    database: String,
    task_queue: String,
    client: Client,
    scratch: PathBuf,
    deadline: Duration,
    began: Instant,
    started: Arc<Mutex<Vec<StartedWorkflow>>>,
}

/// A workflow this test started, for the history dump of a failing test.
#[derive(Debug, Clone)]
pub(crate) struct StartedWorkflow {
    pub(crate) workflow_id: String,
    pub(crate) run_id: Option<String>,
}

impl TestEnv {
    /// Starts (or joins) this binary's environment and creates this test's database (a copy
    /// of the migrated template), task queue, client and scratch directory.
    pub async fn new() -> Result<TestEnv, TestError> {
        test_env_with(&[]).await
    }

    async fn create() -> Result<TestEnv, TestError> {
        let shared = shared().await?;
        let began = Instant::now();
        let number = TEST_COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("t{number}_{}", &Uuid::new_v4().simple().to_string()[..8]);
        let test = std::thread::current()
            .name()
            .filter(|name| *name != "main")
            .unwrap_or("test")
            .to_owned();
        let address = shared.temporal.address();
        let identity = format!("osp-testkit:{test}:{name}");
        let (created, client) = tokio::join!(
            create_test_database(shared, &name),
            connect_temporal(&address, &identity)
        );
        created?;
        let client = client?;
        let scratch = shared.scratch.join(&name);
        std::fs::create_dir_all(&scratch)
            .map_err(|error| TestError::io(format!("creating {}", scratch.display()), error))?;
        Ok(TestEnv {
            shared,
            task_queue: format!("osp-test-{name}"),
            database: name,
            test,
            client,
            scratch,
            deadline: DEFAULT_DEADLINE,
            began,
            started: Arc::default(),
        })
    }

    /// The same environment with another default deadline for every wait.
    pub fn with_deadline(mut self, deadline: Duration) -> TestEnv {
        self.deadline = deadline;
        self
    }

    /// The default deadline of every wait.
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// This test's unique task queue; the test worker polls it.
    pub fn task_queue(&self) -> &str {
        &self.task_queue
    }

    /// A Temporal client (namespace `default`) bound to this test's runtime.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The dev server's frontend, `127.0.0.1:PORT` (for `TEMPORAL_ADDRESS` or the CLI).
    pub fn temporal_address(&self) -> String {
        self.shared.temporal.address()
    }

    /// This test's database name.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// This test's database, reached directly over the server's local socket (superuser,
    /// trusted there: no password). Any program on this machine can use it.
    pub fn database_url(&self) -> String {
        socket_url(&self.shared.postgres, &self.database)
    }

    /// This test's database, reached directly over TCP with the superuser's password (for a
    /// program that insists on TCP).
    pub fn tcp_database_url(&self) -> String {
        self.shared.postgres.url(&self.database)
    }

    /// This test's database through the transaction-mode PgBouncer, as on Supabase.
    pub fn pooled_database_url(&self) -> String {
        self.shared.pgbouncer.url(&self.database)
    }

    /// A small pool over this test's database (directly), as a worker hands its service's
    /// activities.
    pub fn pool(&self) -> Result<deadpool_postgres::Pool, TestError> {
        osp_activities::db::pool(&self.database_url(), 4).map_err(|error| TestError::Database {
            context: "building a pool over the test's database".to_owned(),
            detail: error.to_string(),
        })
    }

    /// A new direct connection to this test's database, its driver running on the test's
    /// runtime.
    pub async fn db(&self) -> Result<tokio_postgres::Client, TestError> {
        let (client, connection) = tokio_postgres::connect(&self.database_url(), NoTls)
            .await
            .map_err(|error| TestError::database("connecting to the test's database", &error))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "test database connection ended");
            }
        });
        Ok(client)
    }

    /// This test's own directory (manifests, logs of processes it starts); removed at exit.
    pub fn scratch_dir(&self) -> &Path {
        &self.scratch
    }

    /// The real OSP activities over this test's database, with log-only DNS and email and
    /// no deployer: change what the test needs, then [`PlatformBuilder::build`].
    pub fn platform(&self) -> PlatformBuilder {
        PlatformBuilder {
            url: self.database_url(),
            pooled_url: self.pooled_database_url(),
            pooled: false,
            dns: Arc::new(LogDns::new("osp.test")),
            mailer: Arc::new(LogMailer),
            deployer: Deployer {
                manifest_dir: self.scratch.join("manifests"),
                command: None,
            },
        }
    }

    /// A test worker on this test's task queue: choose workflows and activities, then run it
    /// around the test's body.
    pub fn worker(&self) -> TestWorkerBuilder<'_> {
        TestWorkerBuilder::new(self)
    }

    /// A fresh workflow id: `{prefix}-{uuid}`.
    pub fn workflow_id(&self, prefix: &str) -> String {
        format!("{prefix}-{}", Uuid::new_v4().simple())
    }

    /// Starts `workflow` on this test's task queue under a fresh id.
    pub async fn start<W>(&self, workflow: W, input: W::Input) -> Result<TestWorkflow<W>, TestError>
    where
        W: HasWorkflowDefinition,
        W::Input: Send,
    {
        let id = self.workflow_id(workflow.name());
        self.start_with_id(workflow, input, &id).await
    }

    /// Starts `workflow` on this test's task queue under `workflow_id`.
    pub async fn start_with_id<W>(
        &self,
        workflow: W,
        input: W::Input,
        workflow_id: &str,
    ) -> Result<TestWorkflow<W>, TestError>
    where
        W: HasWorkflowDefinition,
        W::Input: Send,
    {
        let options = WorkflowStartOptions::new(self.task_queue.clone(), workflow_id).build();
        self.start_with_options(workflow, input, options).await
    }

    /// Starts `workflow` with options of the test's choosing (mind the task queue).
    pub async fn start_with_options<W>(
        &self,
        workflow: W,
        input: W::Input,
        options: WorkflowStartOptions,
    ) -> Result<TestWorkflow<W>, TestError>
    where
        W: HasWorkflowDefinition,
        W::Input: Send,
    {
        let workflow_type = workflow.name().to_owned();
        let workflow_id = options.workflow_id.clone();
        let failed = |message: String| TestError::Start {
            workflow_type: workflow_type.clone(),
            workflow_id: workflow_id.clone(),
            message,
        };
        let start = self.client.start_workflow(workflow, input, options);
        let handle = tokio::time::timeout(self.deadline, start)
            .await
            .map_err(|_| failed(format!("no answer within {:?}", self.deadline)))?
            .map_err(|error| failed(error.to_string()))?;
        self.remember(&workflow_id, handle.run_id());
        Ok(TestWorkflow::new(self, handle, workflow_type))
    }

    /// A handle to a workflow started elsewhere (by a bridge, the CLI, another worker).
    pub fn workflow<W>(&self, workflow_id: &str) -> TestWorkflow<W>
    where
        W: HasWorkflowDefinition,
    {
        self.remember(workflow_id, None);
        let handle = self.client.get_workflow_handle::<W>(workflow_id);
        TestWorkflow::new(self, handle, String::new())
    }

    /// Starts `workflow` and waits for its result, failing at the first workflow-task
    /// failure; a test worker must be running ([`TestWorkerBuilder::execute`] does both).
    pub async fn execute<W>(&self, workflow: W, input: W::Input) -> Result<W::Output, TestError>
    where
        W: HasWorkflowDefinition,
        W::Input: Send,
    {
        self.start(workflow, input).await?.result().await
    }

    /// Waits until the domain events of `stream_id` are exactly `expected` (event types in
    /// order) and returns them; fails early, with a diff, as soon as they cannot become so.
    pub async fn wait_for_chain(
        &self,
        stream_id: Uuid,
        expected: &[&str],
    ) -> Result<Vec<StoredEvent>, TestError> {
        let db = self.db().await?;
        chain::wait_for_chain(&db, stream_id, expected, self.deadline).await
    }

    /// The domain events of `stream_id` so far, in order.
    pub async fn stream_events(&self, stream_id: Uuid) -> Result<Vec<StoredEvent>, TestError> {
        let db = self.db().await?;
        chain::stream_events(&db, stream_id).await
    }

    /// The pids of the shared servers and of the watchdog, and the directories the watchdog
    /// removes at exit: what must be gone after the test process ends.
    pub fn shared_processes(&self) -> (Vec<u32>, Vec<PathBuf>) {
        let shared = self.shared;
        let pids = [
            shared.postgres.pid(),
            shared.pgbouncer.pid(),
            shared.temporal.pid(),
            Some(shared.watchdog.pid()),
        ]
        .into_iter()
        .flatten()
        .collect();
        let dirs = vec![
            shared.postgres.root_dir().to_path_buf(),
            shared.pgbouncer.root_dir().to_path_buf(),
            shared.temporal.root_dir().to_path_buf(),
            shared.scratch.clone(),
        ];
        (pids, dirs)
    }

    /// How long the first test of this binary waited for the shared environment.
    pub fn environment_start_time(&self) -> Duration {
        self.shared.started_in
    }

    /// How long this test has run since its environment was ready to be set up.
    pub fn elapsed(&self) -> Duration {
        self.began.elapsed()
    }

    pub(crate) fn remember(&self, workflow_id: &str, run_id: Option<&str>) {
        let mut started = self
            .started
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !started.iter().any(|known| known.workflow_id == workflow_id) {
            started.push(StartedWorkflow {
                workflow_id: workflow_id.to_owned(),
                run_id: run_id.map(str::to_owned),
            });
        }
    }

    pub(crate) fn test_name(&self) -> &str {
        &self.test
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let started = self
                .started
                .lock()
                .map(|started| started.clone())
                .unwrap_or_default();
            if !started.is_empty() {
                artifacts::dump_on_panic(&self.temporal_address(), &self.test, &started);
            }
        }
        // Straight to stderr, past the test harness's capture: the suite prints the time of
        // every test after the environment is up.
        let _ = writeln!(
            std::io::stderr(),
            "osp-testkit: {} took {} ms after the environment was up (started once in {} ms)",
            self.test,
            self.began.elapsed().as_millis(),
            self.shared.started_in.as_millis()
        );
    }
}

/// The real activities with providers of the test's choosing.
#[derive(Debug)]
pub struct PlatformBuilder {
    url: String,
    pooled_url: String,
    pooled: bool,
    dns: Arc<dyn DnsProvider>,
    mailer: Arc<dyn Mailer>,
    deployer: Deployer,
}

impl PlatformBuilder {
    /// Reach the database through the transaction-mode PgBouncer instead of directly.
    pub fn through_pgbouncer(mut self) -> Self {
        self.pooled = true;
        self
    }

    /// Another DNS provider (the default logs only).
    pub fn dns(mut self, dns: Arc<dyn DnsProvider>) -> Self {
        self.dns = dns;
        self
    }

    /// Another mailer (the default logs only).
    pub fn mailer(mut self, mailer: Arc<dyn Mailer>) -> Self {
        self.mailer = mailer;
        self
    }

    /// The deployer command template `deployWorkerWorkflow` runs (argv, placeholders as in
    /// `osp_activities::deployer`).
    pub fn deployer_command(mut self, command: Vec<String>) -> Self {
        self.deployer.command = Some(command);
        self
    }

    /// The database URL the activities will use.
    pub fn database_url(&self) -> &str {
        if self.pooled {
            &self.pooled_url
        } else {
            &self.url
        }
    }

    /// Builds the activities over a small pool.
    pub fn build(self) -> Result<PlatformActivities, TestError> {
        let url = if self.pooled {
            self.pooled_url
        } else {
            self.url
        };
        let pool = osp_activities::db::pool(&url, 4).map_err(|error| TestError::Database {
            context: "building the activities' pool".to_owned(),
            detail: error.to_string(),
        })?;
        Ok(PlatformActivities::new(
            pool,
            self.dns,
            self.mailer,
            self.deployer,
        ))
    }
}
