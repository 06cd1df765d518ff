//! The worker's row in `osp_metadata.worker_registry` (seed 002): recorded at start,
//! refreshed on an interval, marked `stopped` at shutdown.

use std::time::Duration;

use deadpool_postgres::Pool;
use osp_runtime::Health;
use tokio_postgres::types::Type;

use crate::plan::Plan;

/// Records this worker as deployed and running; keyed by identity, so a restart under the
/// same identity updates its row.
pub async fn record(
    pool: &Pool,
    identity: &str,
    plan: &Plan,
    version: &str,
) -> Result<(), RegistryError> {
    let manifest = plan.manifest_path.as_ref().map_or_else(
        || "(built-in)".to_owned(),
        |path| path.display().to_string(),
    );
    let client = pool.get().await?;
    client
        .query_typed(
            "insert into osp_metadata.worker_registry
                 (service_schema, manifest_path, deployment_status, worker_identity, task_queue,
                  worker_version, last_health_check, logs)
             values ($1, $2, 'deployed', $3, $4, $5, now(), 'worker started')
             on conflict (worker_identity) where worker_identity is not null do update
             set deployment_status = 'deployed', task_queue = excluded.task_queue,
                 worker_version = excluded.worker_version, last_health_check = now(),
                 updated_at = now()",
            &[
                (&plan.service_schema, Type::TEXT),
                (&manifest, Type::TEXT),
                (&identity, Type::TEXT),
                (&plan.task_queue, Type::TEXT),
                (&version, Type::TEXT),
            ],
        )
        .await?;
    Ok(())
}

/// Refreshes `last_health_check`.
pub async fn heartbeat(pool: &Pool, identity: &str) -> Result<(), RegistryError> {
    let client = pool.get().await?;
    client
        .query_typed(
            "update osp_metadata.worker_registry
             set last_health_check = now(), updated_at = now()
             where worker_identity = $1",
            &[(&identity, Type::TEXT)],
        )
        .await?;
    Ok(())
}

/// Marks the worker `stopped`.
pub async fn stopped(pool: &Pool, identity: &str) -> Result<(), RegistryError> {
    let client = pool.get().await?;
    client
        .query_typed(
            "update osp_metadata.worker_registry
             set deployment_status = 'stopped', last_health_check = now(), updated_at = now(),
                 logs = right(coalesce(logs || E'\\n', '') || 'worker stopped', 65536)
             where worker_identity = $1",
            &[(&identity, Type::TEXT)],
        )
        .await?;
    Ok(())
}

/// Refreshes the row every `every`; a failure makes the worker not ready until it recovers.
pub(crate) async fn heartbeat_every(pool: Pool, identity: String, every: Duration, health: Health) {
    let mut ticker = tokio::time::interval(every);
    ticker.tick().await;
    loop {
        ticker.tick().await;
        match heartbeat(&pool, &identity).await {
            Ok(()) => health.pass("database"),
            Err(error) => {
                let reason = osp_runtime::error_chain(&error);
                tracing::warn!(error = %reason, "registry heartbeat failed");
                health.fail("database", reason);
            }
        }
    }
}

/// A registry write failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// No connection from the pool.
    #[error("worker registry: no connection from the pool")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The statement failed.
    #[error("worker registry: the statement failed")]
    Database(#[from] tokio_postgres::Error),
}
