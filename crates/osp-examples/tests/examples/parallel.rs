//! Twenty workflow tests in one binary, side by side on one dev server and one Postgres:
//! each has its own database and task queue, so none sees another's rows or workflows. The
//! harness prints each test's time after the shared environment is up (`osp-testkit: ...
//! took N ms`). libtest runs as many at once as there are cores (`--test-threads` raises
//! it); the last test runs twenty at once in one test regardless.

use std::time::Instant;

use osp_core::payloads::ServiceData;
use osp_testkit::{TestEnv, test_env};
use osp_workflows::CreateServiceWorkflow;

fn input(name: &str) -> ServiceData {
    ServiceData {
        name: name.to_owned(),
        description: None,
        service_schema: None,
        metadata: None,
    }
}

/// Creates a service with the real `createEntity` and checks the test's database holds
/// exactly that one row, and the server knows exactly one workflow on the test's queue.
async fn isolated(env: &TestEnv, name: &str) -> anyhow::Result<()> {
    let service = env
        .worker()
        .workflow::<CreateServiceWorkflow>()
        .activities(env.platform().build()?)
        .execute(CreateServiceWorkflow::run, input(name))
        .await?;
    anyhow::ensure!(service.name == name, "got {}", service.name);
    let rows = env
        .db()
        .await?
        .query("select name from public.services", &[])
        .await?;
    let names: Vec<String> = rows.iter().map(|row| row.get(0)).collect();
    anyhow::ensure!(names == [name], "the test's database holds {names:?}");
    Ok(())
}

macro_rules! twenty {
    ($($test:ident),* $(,)?) => {$(
        #[tokio::test]
        async fn $test() -> anyhow::Result<()> {
            let env = test_env().await?;
            isolated(&env, stringify!($test)).await
        }
    )*};
}

twenty!(
    parallel_01,
    parallel_02,
    parallel_03,
    parallel_04,
    parallel_05,
    parallel_06,
    parallel_07,
    parallel_08,
    parallel_09,
    parallel_10,
    parallel_11,
    parallel_12,
    parallel_13,
    parallel_14,
    parallel_15,
    parallel_16,
    parallel_17,
    parallel_18,
    parallel_19,
    parallel_20,
);

#[tokio::test]
async fn twenty_environments_at_once_in_one_test() -> anyhow::Result<()> {
    let started = Instant::now();
    let runs = (1..=20).map(|index| async move {
        let env = test_env().await?;
        isolated(&env, &format!("at-once-{index}")).await
    });
    // Polled together on this task: the SDK's worker is not `Send`, so no spawning.
    for outcome in futures::future::join_all(runs).await {
        outcome?;
    }
    eprintln!(
        "twenty isolated workflow tests at once: {:?}",
        started.elapsed()
    );
    Ok(())
}
