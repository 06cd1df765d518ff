//! Start-up: Temporal and the database, each retried with backoff while `/readyz` says why
//! not, and given up only when shutdown is asked for first.

use std::future::Future;
use std::pin::Pin;

use deadpool_postgres::Pool;
use osp_config::TemporalSettings;
use osp_runtime::retry::until_ok;
use osp_runtime::temporal;
use temporalio_client::Client;

use crate::builder::Resources;

/// Why the database did not answer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PingError {
    #[error("no connection from the pool")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("select 1 failed")]
    Query(#[from] tokio_postgres::Error),
}

/// The Temporal client (the caller's, or one connected from `settings`) once the database
/// answers too; `None` when `shutdown` came first.
pub(crate) async fn connect(
    given: Option<Client>,
    settings: &TemporalSettings,
    resources: &Resources,
    shutdown: &mut Pin<&mut impl Future<Output = ()>>,
) -> Option<Client> {
    let temporal = async {
        let client = match given {
            Some(client) => client,
            None => {
                until_ok(
                    &resources.health,
                    "temporal",
                    || temporal::connect(settings, &resources.identity, None),
                    || count_failure(resources, "temporal"),
                )
                .await
            }
        };
        resources
            .health
            .fail("temporal", "connected, waiting for pollers");
        client
    };
    let database = async {
        until_ok(
            &resources.health,
            "database",
            || ping(&resources.pool),
            || count_failure(resources, "database"),
        )
        .await;
        resources.health.pass("database");
    };
    let connected = async { tokio::join!(temporal, database).0 };
    let connected = tracing::Instrument::instrument(
        connected,
        tracing::info_span!("worker.startup", identity = %resources.identity),
    );
    tokio::select! {
        client = connected => Some(client),
        () = shutdown => None,
    }
}

fn count_failure(resources: &Resources, target: &str) {
    resources
        .metrics
        .connect_failures
        .with_label_values(&[target])
        .inc();
}

async fn ping(pool: &Pool) -> Result<(), PingError> {
    let client = pool.get().await?;
    client.simple_query("select 1").await?;
    Ok(())
}
