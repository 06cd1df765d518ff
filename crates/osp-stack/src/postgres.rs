//! A throwaway PostgreSQL server: `initdb` into a temp dir, started on a free port with a
//! random superuser password, tuned for speed over durability, removed when dropped.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio_postgres::NoTls;

use super::process::{self, Launch, PortPlan, ServerProcess, StopSignal, TempDir};
use super::{ProbeError, StackError, binaries};

/// The SQL of [`Postgres::apply_supabase_roles`], for callers that have a connection of
/// their own to the database (as the role that will run the migrations).
pub const SUPABASE_ROLES_SQL: &str = include_str!("../sql/supabase_roles.sql");

/// How long a started postmaster gets to accept a password login.
const READY_DEADLINE: Duration = Duration::from_secs(30);

const HOST: &str = "127.0.0.1";
const SUPERUSER: &str = "postgres";

/// A running (or stopped, see [`Postgres::stop`]) throwaway PostgreSQL server. Local socket
/// connections are trusted; TCP connections need the password (SCRAM-SHA-256).
pub struct Postgres {
    /// `None` while stopped. Declared before `dir` so it stops before the dir is removed.
    process: Option<ServerProcess>,
    port: u16,
    password: String,
    bin_dir: PathBuf,
    dir: TempDir,
}

impl fmt::Debug for Postgres {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The password stays out of logs and assertion messages.
        f.debug_struct("Postgres")
            .field("port", &self.port)
            .field("pid", &self.pid())
            .field("root_dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl Postgres {
    /// Creates a cluster in a new temp dir and starts it on a free port.
    pub async fn start() -> Result<Postgres, StackError> {
        Self::start_on(PortPlan::Fresh).await
    }

    async fn start_on(ports: PortPlan) -> Result<Postgres, StackError> {
        let bin_dir = binaries::postgres_bin_dir()?;
        let dir = TempDir::create("pg")?;
        let password = uuid::Uuid::new_v4().simple().to_string();
        init_cluster(&bin_dir, dir.path(), &password).await?;
        let mut postgres = Postgres {
            process: None,
            port: 0,
            password,
            bin_dir,
            dir,
        };
        postgres.launch(ports).await?;
        Ok(postgres)
    }

    /// Always `127.0.0.1`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The TCP port, fixed for the instance's life (a restart keeps it).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The superuser, `postgres`.
    pub fn user(&self) -> &str {
        SUPERUSER
    }

    /// The superuser's password, random per instance.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/{database}`.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{SUPERUSER}:{}@{HOST}:{}/{database}",
            self.password, self.port
        )
    }

    /// Creates an empty database (for one test's isolation) and returns its URL.
    pub async fn create_database(&self, name: &str) -> Result<String, StackError> {
        validate_database_name(name)?;
        let client = self.connect("postgres").await?;
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await?;
        Ok(self.url(name))
    }

    /// Makes `database` look like a Supabase project's (see `sql/supabase_roles.sql`): the
    /// roles `anon`, `authenticated`, `service_role` and `authenticator`, USAGE on schema
    /// public, and default privileges granting ALL on the superuser's new tables, sequences
    /// and functions in public to the three API roles. Run it before migrating `database` as
    /// the superuser, so the migrations meet the grants they meet in production.
    pub async fn apply_supabase_roles(&self, database: &str) -> Result<(), StackError> {
        let client = self.connect(database).await?;
        client.batch_execute(SUPABASE_ROLES_SQL).await?;
        Ok(())
    }

    /// Turns TLS on with `certificate_pem` and `key_pem` (a reload; plain connections still
    /// work, so `sslmode` decides). For tests of the clients' certificate checks.
    pub async fn enable_tls(&self, certificate_pem: &str, key_pem: &str) -> Result<(), StackError> {
        let data = self.dir.path().join("data");
        let (certificate, key) = (data.join("server.crt"), data.join("server.key"));
        for (path, text) in [(&certificate, certificate_pem), (&key, key_pem)] {
            std::fs::write(path, text)
                .map_err(|error| StackError::io(format!("writing {}", path.display()), error))?;
            // Postgres refuses a key others can read, and reads files as its own user.
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                .map_err(|error| StackError::io(format!("chmod {}", path.display()), error))?;
            process::hand_over(path)?;
        }
        let client = self.connect("postgres").await?;
        // One statement each: ALTER SYSTEM refuses to run inside a transaction block, which a
        // multi-statement batch is.
        for statement in [
            format!(
                "alter system set ssl_cert_file = '{}'",
                certificate.display()
            ),
            format!("alter system set ssl_key_file = '{}'", key.display()),
            "alter system set ssl = on".to_owned(),
            "select pg_reload_conf()".to_owned(),
        ] {
            client.batch_execute(&statement).await?;
        }
        Ok(())
    }

    /// The postmaster's pid while running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }

    /// The instance's temp dir: `data/`, the socket and `postgres.log`.
    pub fn root_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server (fast shutdown) and keeps its data, port and dir for
    /// [`Postgres::start_again`]. Does nothing when already stopped.
    pub async fn stop(&mut self) -> Result<(), StackError> {
        if let Some(mut process) = self.process.take() {
            process.stop().await?;
        }
        Ok(())
    }

    /// Starts the stopped server again on the same port with the same data. Does nothing when
    /// already running.
    pub async fn start_again(&mut self) -> Result<(), StackError> {
        if self.process.is_some() {
            return Ok(());
        }
        self.launch(PortPlan::Keep).await
    }

    /// Starts the postmaster, on another port while the port is taken (unless it must keep
    /// its port).
    async fn launch(&mut self, plan: PortPlan) -> Result<(), StackError> {
        let log = self.log_path();
        let launch = Launch {
            what: "postgres",
            log: &log,
            plan,
            deadline: READY_DEADLINE,
            other_ports: false,
        };
        let server = process::launch(launch, |port| {
            if let Some(port) = port {
                self.port = port;
            }
            let server = ServerProcess::spawn(
                "postgres",
                self.postmaster_command(),
                &log,
                StopSignal::Interrupt,
            )?;
            let url = self.url("postgres");
            Ok((server, self.port, move || probe(url.clone())))
        })
        .await?;
        self.process = Some(server);
        Ok(())
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    fn postmaster_command(&self) -> std::process::Command {
        let root = self.dir.path();
        let mut command = process::command(&self.bin_dir.join("postgres"), root, true);
        command
            .arg("-D")
            .arg(root.join("data"))
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(format!("listen_addresses={HOST}"))
            .arg("-c")
            .arg(format!("unix_socket_directories={}", root.display()));
        // Durability is worthless for throwaway data; speed and a small footprint are not.
        for setting in [
            "fsync=off",
            "synchronous_commit=off",
            "full_page_writes=off",
            "max_connections=200",
            "shared_buffers=16MB",
            "max_wal_size=256MB",
            "huge_pages=off",
            // Commit times of rows (`pg_xact_commit_timestamp(xmin)`), which the benchmark
            // measures the bridge from.
            "track_commit_timestamp=on",
        ] {
            command.arg("-c").arg(setting);
        }
        command
    }

    /// A superuser connection over TCP (password auth); its driver task runs on the runtime.
    async fn connect(&self, database: &str) -> Result<tokio_postgres::Client, StackError> {
        let (client, connection) = tokio_postgres::connect(&self.url(database), NoTls).await?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "testkit postgres connection ended");
            }
        });
        Ok(client)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // Stop the server before `dir` (dropped after this) is removed under it.
        if let Some(mut process) = self.process.take()
            && let Err(error) = process.stop_blocking()
        {
            tracing::warn!(%error, "stopping the testkit postgres on drop");
        }
    }
}

/// Runs `initdb` as the unprivileged user: superuser `postgres` with `password`, trust on the
/// local socket, SCRAM on TCP.
async fn init_cluster(bin_dir: &Path, root: &Path, password: &str) -> Result<(), StackError> {
    let pwfile = root.join("pwfile");
    std::fs::write(&pwfile, password)
        .map_err(|error| StackError::io(format!("writing {}", pwfile.display()), error))?;
    let log = root.join("initdb.log");
    let out = process::open_log(&log)?;
    let err = out
        .try_clone()
        .map_err(|error| StackError::io(format!("duplicating {}", log.display()), error))?;
    process::hand_over(root)?;
    let mut command = process::command(&bin_dir.join("initdb"), root, true);
    command
        .arg("-D")
        .arg(root.join("data"))
        .arg("-U")
        .arg(SUPERUSER)
        .arg(format!("--pwfile={}", pwfile.display()))
        .args([
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            // Skipping the final fsync saves seconds; the cluster never outlives a crash.
            "--no-sync",
        ])
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    let status = tokio::process::Command::from(command)
        // If the caller gives up (a sibling server failed), initdb must not outlive it.
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|error| StackError::io(format!("running {}/initdb", bin_dir.display()), error))?;
    let _ = std::fs::remove_file(&pwfile);
    if status.success() {
        Ok(())
    } else {
        Err(StackError::StartupFailed {
            what: "initdb".to_owned(),
            reason: format!("it exited with {status}"),
            log_tail: process::log_tail(&log),
        })
    }
}

/// One readiness check: a password login over TCP and a trivial query. The simple protocol,
/// so it also works through PgBouncer's transaction pooling (no named prepared statements).
pub(super) async fn probe(url: String) -> Result<(), ProbeError> {
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .map_err(ProbeError::Postgres)?;
    let driver = tokio::spawn(connection);
    let result = client
        .simple_query("select 1")
        .await
        .map(drop)
        .map_err(ProbeError::Postgres);
    drop(client);
    let _ = driver.await;
    result
}

/// Database names go into SQL and URLs verbatim, so only plain identifiers are accepted.
fn validate_database_name(name: &str) -> Result<(), StackError> {
    let valid = (1..=63).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if valid {
        Ok(())
    } else {
        Err(StackError::InvalidDatabaseName {
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_is_detected_and_another_one_used() {
        let squatter = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).unwrap();
        let taken = squatter.local_addr().unwrap().port();
        let mut postgres = Postgres::start_on(PortPlan::FirstThenFresh(taken))
            .await
            .unwrap();
        assert_ne!(postgres.port(), taken);
        assert!(process::log_tail(&postgres.log_path()).contains("Address already in use"));

        // A restart must keep its port, so a taken one is an error naming the cause.
        postgres.stop().await.unwrap();
        let port = postgres.port();
        drop(squatter);
        let squatter = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port)).unwrap();
        let error = postgres.start_again().await.unwrap_err().to_string();
        assert!(error.contains("is used by another process"), "{error}");
        assert!(error.contains("Address already in use"), "{error}");
        assert_eq!(postgres.pid(), None);
        drop(squatter);
        postgres.start_again().await.unwrap();
        assert_eq!(postgres.port(), port);
    }

    #[test]
    fn database_names_are_plain_identifiers() {
        for good in ["t1", "osp_test_3", "_x", "A"] {
            assert!(validate_database_name(good).is_ok(), "{good}");
        }
        for bad in ["", "1t", "a-b", "a\"b", "a b", &"x".repeat(64)] {
            assert!(validate_database_name(bad).is_err(), "{bad}");
        }
    }
}
