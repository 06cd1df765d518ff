//! A throwaway PgBouncer in transaction pool mode in front of a [`Postgres`], like Supabase's
//! pooler, so code under test meets the same restrictions (no session state between
//! transactions) as in production.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::postgres::probe;
use super::process::{self, Launch, PortPlan, ServerProcess, StopSignal, TempDir};
use super::{Postgres, StackError, binaries};

/// How long a started PgBouncer gets to pass a query through to Postgres.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// A running PgBouncer: pool mode `transaction`, every database of its Postgres (`*`), the
/// same superuser and password (SCRAM end to end), admin console on database `pgbouncer`.
pub struct PgBouncer {
    /// Declared before `dir` so it stops before the dir is removed.
    process: Option<ServerProcess>,
    host: String,
    port: u16,
    user: String,
    password: String,
    dir: TempDir,
}

impl fmt::Debug for PgBouncer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgBouncer")
            .field("port", &self.port)
            .field("pid", &self.pid())
            .field("root_dir", &self.dir.path())
            .finish_non_exhaustive()
    }
}

impl PgBouncer {
    /// Starts a PgBouncer on a free port in front of `postgres` (which must be running).
    pub async fn start(postgres: &Postgres) -> Result<PgBouncer, StackError> {
        Self::start_on(postgres, PortPlan::Fresh).await
    }

    async fn start_on(postgres: &Postgres, ports: PortPlan) -> Result<PgBouncer, StackError> {
        let binary = binaries::pgbouncer_binary()?;
        let dir = TempDir::create("pgbouncer")?;
        let auth_file = dir.path().join("userlist.txt");
        // PgBouncer needs the plain password (or a SCRAM secret) to log in to Postgres
        // with SCRAM on the client's behalf.
        write_file(
            &auth_file,
            &format!("\"{}\" \"{}\"\n", postgres.user(), postgres.password()),
        )?;
        let mut bouncer = PgBouncer {
            process: None,
            host: postgres.host().to_owned(),
            port: 0,
            user: postgres.user().to_owned(),
            password: postgres.password().to_owned(),
            dir,
        };
        let log = bouncer.log_path();
        let launch = Launch {
            what: "pgbouncer",
            log: &log,
            plan: ports,
            deadline: READY_DEADLINE,
            other_ports: false,
        };
        let server = process::launch(launch, |port| {
            if let Some(port) = port {
                bouncer.port = port;
            }
            let config = bouncer.dir.path().join("pgbouncer.ini");
            write_file(
                &config,
                &config_text(postgres, bouncer.port, bouncer.dir.path(), &auth_file),
            )?;
            process::hand_over(bouncer.dir.path())?;
            let mut command = process::command(&binary, bouncer.dir.path(), true);
            command.arg(&config);
            let server = ServerProcess::spawn("pgbouncer", command, &log, StopSignal::Terminate)?;
            let url = bouncer.url("postgres");
            Ok((server, bouncer.port, move || probe(url.clone())))
        })
        .await?;
        bouncer.process = Some(server);
        Ok(bouncer)
    }

    /// The TCP port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://postgres:PASSWORD@127.0.0.1:PORT/{database}` through the bouncer; any
    /// database of the Postgres behind it, and `pgbouncer` for the admin console.
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{database}",
            self.user, self.password, self.host, self.port
        )
    }

    /// The PgBouncer process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ServerProcess::pid)
    }

    /// The instance's temp dir: `pgbouncer.ini`, `userlist.txt`, `pgbouncer.log`.
    pub fn root_dir(&self) -> &Path {
        self.dir.path()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("pgbouncer.log")
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take()
            && let Err(error) = process.stop_blocking()
        {
            tracing::warn!(%error, "stopping the testkit pgbouncer on drop");
        }
    }
}

fn config_text(postgres: &Postgres, port: u16, dir: &Path, auth_file: &Path) -> String {
    format!(
        "\
[databases]
* = host={pg_host} port={pg_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir = {dir}
auth_type = scram-sha-256
auth_file = {auth_file}
admin_users = {user}
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
ignore_startup_parameters = extra_float_digits,options
server_tls_sslmode = disable
; retry a failed server login after 1 s, not 15 s, so a restarted Postgres is usable at once
server_login_retry = 1
",
        pg_host = postgres.host(),
        pg_port = postgres.port(),
        dir = dir.display(),
        auth_file = auth_file.display(),
        user = postgres.user(),
    )
}

fn write_file(path: &Path, text: &str) -> Result<(), StackError> {
    std::fs::write(path, text)
        .map_err(|error| StackError::io(format!("writing {}", path.display()), error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_port_is_detected_although_pgbouncer_keeps_running() {
        let postgres = Postgres::start().await.unwrap();
        let squatter = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).unwrap();
        let taken = squatter.local_addr().unwrap().port();
        let bouncer = PgBouncer::start_on(&postgres, PortPlan::FirstThenFresh(taken))
            .await
            .unwrap();
        assert_ne!(bouncer.port(), taken);
        let log = process::log_tail(&bouncer.log_path());
        assert!(log.contains("Address already in use"), "{log}");
    }
}
