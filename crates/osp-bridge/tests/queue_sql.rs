//! The SQL of migration 0004 on its own, through the transaction-mode pooler: claims are
//! exclusive under concurrency (also with several jobs on one stream), an expired lease is
//! claimed again and fences its old holder out, a failed attempt comes back at its retry
//! time, and only `service_role` may call the functions.

#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Env, HEAVY, bootstrap_data, connect, emit, eventually};
use osp_core::events::ORGANIZATION_BOOTSTRAP_INITIATED;
use serde_json::json;
use tokio_postgres::Client;
use tokio_postgres::types::Type;
use uuid::Uuid;

async fn claim(client: &Client, worker: &str, batch: i32, lease_ms: i64) -> Vec<(Uuid, i32)> {
    client
        .query_typed(
            "select job_id, attempts from api.claim_workflow_jobs($1, $2, $3 * interval '1 millisecond')",
            &[(&worker, Type::TEXT), (&batch, Type::INT4), (&lease_ms, Type::INT8)],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

async fn call_bool(client: &Client, sql: &str, job: Uuid, worker: &str, attempt: i32) -> bool {
    client
        .query_typed(
            sql,
            &[
                (&job, Type::UUID),
                (&worker, Type::TEXT),
                (&attempt, Type::INT4),
            ],
        )
        .await
        .unwrap()[0]
        .get(0)
}

async fn count_events(client: &Client, event_type: &str) -> i64 {
    client
        .query_one(
            "select count(*) from domain_events where event_type = $1",
            &[&event_type],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_never_share_a_job_even_with_many_jobs_per_stream() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let client = env.client().await;
    client
        .batch_execute(
            "insert into osp_metadata.workflow_routes (event_type, workflow_type, workflow_id_template)
             values ('test.step.happened', 'stepWorkflow', 'step-{event_id}')",
        )
        .await
        .unwrap();
    // 100 streams with 8 jobs each: claims touching the same streams must not deadlock.
    let streams: Vec<Uuid> = (0..100).map(|_| Uuid::new_v4()).collect();
    for stream in &streams {
        for step in 0..8 {
            emit(
                &client,
                *stream,
                "test.step.happened",
                &json!({"step": step}),
            )
            .await;
        }
    }
    let mut claimers = Vec::new();
    for claimer in 0..8 {
        let url = env.pooled_url.clone();
        claimers.push(tokio::spawn(async move {
            let client = connect(&url).await;
            let worker = format!("claimer-{claimer}");
            let mut mine = Vec::new();
            loop {
                let jobs = claim(&client, &worker, 7, 60_000).await;
                if jobs.is_empty() {
                    return mine;
                }
                mine.extend(jobs.into_iter().map(|(job, _)| job));
            }
        }));
    }
    let mut all = Vec::new();
    for claimer in claimers {
        all.extend(claimer.await.unwrap());
    }
    let distinct: HashSet<Uuid> = all.iter().copied().collect();
    assert_eq!(all.len(), 800);
    assert_eq!(distinct.len(), 800, "a job was claimed twice");
    assert_eq!(count_events(&client, "workflow.queue.claimed").await, 800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_is_claimed_again_and_fences_its_old_holder_out() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let client = connect(&env.pooled_url).await;
    let organization = Uuid::new_v4();
    emit(
        &client,
        organization,
        ORGANIZATION_BOOTSTRAP_INITIATED,
        &bootstrap_data(organization),
    )
    .await;
    let [(job, attempt)] = claim(&client, "old", 10, 1_500).await[..] else {
        panic!("one job expected");
    };
    assert_eq!(attempt, 1);
    // Held under a live lease: nobody else gets it.
    assert!(claim(&client, "new", 10, 60_000).await.is_empty());
    let reclaimed = eventually(Duration::from_secs(5), "the lease to expire", || async {
        let jobs = claim(&client, "new", 10, 60_000).await;
        (!jobs.is_empty()).then_some(jobs)
    })
    .await;
    assert_eq!(reclaimed, [(job, 2)]);
    // The old holder can neither hold, complete, fail nor release the job any more.
    assert!(
        !call_bool(
            &client,
            "select api.hold_workflow_job($1, $2, $3)",
            job,
            "old",
            1
        )
        .await
    );
    let completed: bool = client
        .query_typed(
            "select api.complete_workflow_job($1, 'old', 1, 'wf', 'run')",
            &[(&job, Type::UUID)],
        )
        .await
        .unwrap()[0]
        .get(0);
    assert!(!completed);
    let failed: bool = client
        .query_typed(
            "select api.fail_workflow_job($1, 'old', 1, 'late')",
            &[(&job, Type::UUID)],
        )
        .await
        .unwrap()[0]
        .get(0);
    assert!(!failed);
    assert!(
        !call_bool(
            &client,
            "select api.release_workflow_job($1, $2, $3, 'late')",
            job,
            "old",
            1
        )
        .await
    );
    // The same worker with a stale attempt number is fenced out too.
    assert!(
        !call_bool(
            &client,
            "select api.hold_workflow_job($1, $2, $3)",
            job,
            "new",
            1
        )
        .await
    );
    assert_eq!(count_events(&client, "workflow.queue.completed").await, 0);
    assert_eq!(count_events(&client, "workflow.queue.failed").await, 0);
    // The new holder completes it.
    let completed: bool = client
        .query_typed(
            "select api.complete_workflow_job($1, 'new', 2, 'wf', 'run')",
            &[(&job, Type::UUID)],
        )
        .await
        .unwrap()[0]
        .get(0);
    assert!(completed);
    let status: String = client
        .query_typed(
            "select status from workflow_queue_projection where id = $1",
            &[(&job, Type::UUID)],
        )
        .await
        .unwrap()[0]
        .get(0);
    assert_eq!(status, "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_attempt_comes_back_at_its_retry_time_and_a_final_failure_stays() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let client = connect(&env.pooled_url).await;
    let organization = Uuid::new_v4();
    emit(
        &client,
        organization,
        ORGANIZATION_BOOTSTRAP_INITIATED,
        &bootstrap_data(organization),
    )
    .await;
    let [(job, 1)] = claim(&client, "w", 10, 60_000).await[..] else {
        panic!("one job expected");
    };
    let retried: bool = client
        .query_typed(
            "select api.fail_workflow_job($1, 'w', 1, 'temporal unavailable', interval '700 milliseconds')",
            &[(&job, Type::UUID)],
        )
        .await
        .unwrap()[0]
        .get(0);
    assert!(retried);
    // Pending, but not before its retry time.
    assert!(claim(&client, "w", 10, 60_000).await.is_empty());
    let again = eventually(Duration::from_secs(5), "the retry time", || async {
        let jobs = claim(&client, "w", 10, 60_000).await;
        (!jobs.is_empty()).then_some(jobs)
    })
    .await;
    assert_eq!(again, [(job, 2)]);
    let failed: bool = client
        .query_typed(
            "select api.fail_workflow_job($1, 'w', 2, 'bad payload')",
            &[(&job, Type::UUID)],
        )
        .await
        .unwrap()[0]
        .get(0);
    assert!(failed);
    let row = &client
        .query_typed(
            "select status, error_message, attempts from workflow_queue_projection where id = $1",
            &[(&job, Type::UUID)],
        )
        .await
        .unwrap()[0];
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(row.get::<_, String>(1), "bad payload");
    assert_eq!(row.get::<_, i32>(2), 2);
    assert!(claim(&client, "w", 10, 1).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_service_role_may_call_the_queue_functions() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let client = env.client().await;
    for role in ["anon", "authenticated"] {
        client
            .batch_execute(&format!("set role {role}"))
            .await
            .unwrap();
        let error = client
            .batch_execute("select * from api.claim_workflow_jobs('w', 1, interval '1 minute')")
            .await
            .unwrap_err();
        assert_eq!(
            error.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{role}: {error}"
        );
        client.batch_execute("reset role").await.unwrap();
    }
    client.batch_execute("set role service_role").await.unwrap();
    client
        .batch_execute(
            "select * from api.claim_workflow_jobs('w', 1, interval '1 minute');
             select * from api.workflow_queue_depth();",
        )
        .await
        .unwrap();
    // Bad arguments are refused with a clear error.
    let error = client
        .batch_execute("select * from api.claim_workflow_jobs('', 1, interval '1 minute')")
        .await
        .unwrap_err();
    let message = error.as_db_error().unwrap().message();
    assert!(
        message.contains("p_worker_id must not be empty"),
        "{message}"
    );
}
