//! The SQL of migrations 0004 and 0008 on its own, through the transaction-mode pooler: claims are
//! exclusive under concurrency (also with several jobs on one stream), an expired lease is
//! claimed again and fences its old holder out, a failed attempt comes back at its retry
//! time, many jobs settle in one statement each fenced on its claim, a workflow's events wait
//! for its start to be recorded, only `service_role` may call the functions, none of the
//! statements reads a table whole, however many jobs the queue holds, a claim reads none
//! of a paused route's backlog, a claim's and a settlement's events are appended together,
//! in each stream's order, and a claim keeps its plans across calls.

#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{
    Env, HEAVY, bootstrap_data, connect, emit, emit_bootstrap, emit_bootstraps, eventually,
};
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
    emit_bootstrap(&client).await;
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
    emit_bootstrap(&client).await;
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
        for call in [
            "select * from api.claim_workflow_jobs('w', 1, interval '1 minute')",
            "select * from api.settle_workflow_jobs('w', '[]')",
        ] {
            let error = client.batch_execute(call).await.unwrap_err();
            assert_eq!(
                error.code(),
                Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
                "{role}: {call}: {error}"
            );
        }
        client.batch_execute("reset role").await.unwrap();
    }
    client.batch_execute("set role service_role").await.unwrap();
    client
        .batch_execute(
            "select * from api.claim_workflow_jobs('w', 1, interval '1 minute');
             select * from api.settle_workflow_jobs('w', '[]');
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

/// Settles through `api.settle_workflow_jobs` as worker `w`: (job, attempt, settled, error).
async fn settle(
    client: &Client,
    items: serde_json::Value,
) -> Vec<(Uuid, i32, String, Option<String>)> {
    client
        .query_typed(
            "select job_id, attempt, settled, error from api.settle_workflow_jobs('w', $1)",
            &[(&items, Type::JSONB)],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

async fn job_status(client: &Client, job: Uuid) -> String {
    client
        .query_typed(
            "select status from workflow_queue_projection where id = $1",
            &[(&job, Type::UUID)],
        )
        .await
        .unwrap()[0]
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_statement_settles_many_jobs_each_fenced_and_a_refused_one_writes_nothing() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let client = connect(&env.pooled_url).await;
    emit_bootstraps(&env.pooled_url, 4, 1).await;
    let jobs: Vec<Uuid> = claim(&client, "w", 10, 60_000)
        .await
        .into_iter()
        .map(|(job, attempt)| {
            assert_eq!(attempt, 1);
            job
        })
        .collect();
    let [started, retried, stale, refused] = jobs[..] else {
        panic!("four jobs expected, got {jobs:?}");
    };
    let rows = settle(
        &client,
        json!([
            {"job_id": started, "attempt": 1, "outcome": "complete",
             "workflow_id": "wf-1", "workflow_run_id": "run-1", "existing_execution": false},
            {"job_id": retried, "attempt": 1, "outcome": "fail",
             "error_message": "temporal unavailable", "retry_after_ms": 60000},
            // Another claim's attempt: fenced out.
            {"job_id": stale, "attempt": 2, "outcome": "fail", "error_message": "late"},
            // Refused by fail_workflow_job's own check.
            {"job_id": refused, "attempt": 1, "outcome": "fail", "error_message": " "},
        ]),
    )
    .await;
    assert_eq!(rows.len(), 4, "{rows:?}");
    let by_job = |job: Uuid| rows.iter().find(|row| row.0 == job).unwrap().clone();
    assert_eq!(by_job(started), (started, 1, "done".to_owned(), None));
    assert_eq!(by_job(retried), (retried, 1, "done".to_owned(), None));
    assert_eq!(by_job(stale), (stale, 2, "fenced".to_owned(), None));
    let (_, _, settled, error) = by_job(refused);
    assert_eq!(settled, "refused");
    assert!(
        error
            .as_deref()
            .unwrap()
            .contains("p_error_message must not be empty"),
        "{error:?}"
    );
    assert_eq!(job_status(&client, started).await, "completed");
    assert_eq!(job_status(&client, retried).await, "pending");
    assert_eq!(job_status(&client, stale).await, "processing");
    assert_eq!(job_status(&client, refused).await, "processing");
    assert_eq!(count_events(&client, "workflow.queue.completed").await, 1);
    assert_eq!(
        count_events(&client, "organization.bootstrap.workflow_started").await,
        1
    );
    assert_eq!(count_events(&client, "workflow.queue.failed").await, 1);

    // The whole call is refused for what no element can fix.
    for (items, named) in [
        (json!({"job_id": started}), "must be a JSON array"),
        (
            json!([{"job_id": stale, "attempt": 1, "outcome": "explode"}]),
            "",
        ),
    ] {
        let result = client
            .query_typed(
                "select * from api.settle_workflow_jobs('w', $1)",
                &[(&items, Type::JSONB)],
            )
            .await;
        match named {
            "" => {
                let rows = result.unwrap();
                assert_eq!(rows[0].get::<_, String>(2), "refused");
                assert!(rows[0].get::<_, String>(3).contains("\"explode\""));
            }
            named => {
                let error = result.unwrap_err();
                assert!(
                    error.as_db_error().unwrap().message().contains(named),
                    "{error}"
                );
            }
        }
    }
    let too_many: Vec<serde_json::Value> = (0..1001)
        .map(|_| json!({"job_id": Uuid::new_v4(), "attempt": 1, "outcome": "fail", "error_message": "x"}))
        .collect();
    let error = client
        .query_typed(
            "select * from api.settle_workflow_jobs('w', $1)",
            &[(&serde_json::Value::Array(too_many), Type::JSONB)],
        )
        .await
        .unwrap_err();
    let message = error.as_db_error().unwrap().message();
    assert!(message.contains("at most 1000"), "{message}");
}

/// Appends an event to `stream` with `workflow_id` in its metadata, as OSP's activities do.
async fn emit_as_workflow(
    client: &Client,
    stream: Uuid,
    workflow_id: &str,
) -> Result<Uuid, tokio_postgres::Error> {
    let rows = client
        .query_typed(
            "select api.emit_domain_event($1, 'organization', 'organization.step.recorded', '{}'::jsonb, $2)",
            &[
                (&stream, Type::UUID),
                (&json!({"workflow_id": workflow_id}), Type::JSONB),
            ],
        )
        .await?;
    Ok(rows[0].get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workflows_event_waits_until_the_bridge_has_recorded_its_start() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let client = connect(&env.pooled_url).await;
    let organization = emit_bootstrap(&client).await;
    let workflow_id: String = client
        .query_typed(
            "select workflow_id from workflow_queue_projection where stream_id = $1",
            &[(&organization, Type::UUID)],
        )
        .await
        .unwrap()[0]
        .get(0);
    let refused = |error: tokio_postgres::Error| {
        let db = error.as_db_error().unwrap().clone();
        assert_eq!(db.code().code(), "OSP01", "{db}");
        assert!(db.message().contains(&workflow_id), "{}", db.message());
    };
    // Pending, then claimed: the workflow's event is refused, and nothing is appended.
    refused(
        emit_as_workflow(&client, organization, &workflow_id)
            .await
            .unwrap_err(),
    );
    let [(job, 1)] = claim(&client, "w", 10, 60_000).await[..] else {
        panic!("one job expected");
    };
    refused(
        emit_as_workflow(&client, organization, &workflow_id)
            .await
            .unwrap_err(),
    );
    assert_eq!(count_events(&client, "organization.step.recorded").await, 0);
    // Another workflow's event, and one without a workflow, are not held back.
    emit_as_workflow(&client, organization, "someone-else")
        .await
        .unwrap();
    emit(&client, organization, "organization.note.added", &json!({})).await;

    let rows = settle(
        &client,
        json!([{"job_id": job, "attempt": 1, "outcome": "complete",
                "workflow_id": workflow_id, "workflow_run_id": "run-1"}]),
    )
    .await;
    assert_eq!(rows[0].2, "done");
    emit_as_workflow(&client, organization, &workflow_id)
        .await
        .unwrap();
    let order: Vec<String> = client
        .query_typed(
            "select event_type from domain_events where stream_id = $1 order by stream_version",
            &[(&organization, Type::UUID)],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        order,
        [
            "organization.bootstrap.initiated",
            "workflow.queue.pending",
            "workflow.queue.claimed",
            "organization.step.recorded",
            "organization.note.added",
            "organization.bootstrap.workflow_started",
            "workflow.queue.completed",
            "organization.step.recorded",
        ]
    );
}

/// Tables read whole (sequential scans), by table. The routes are left out: a handful of rows,
/// read whole by design.
const READ_WHOLE: &str = "select relname::text, seq_scan from pg_stat_xact_user_tables
                          where relid <> 'osp_metadata.workflow_routes'::regclass";

/// Rows read, whole or through an index, by table.
const ROWS_READ: &str = "select relname::text, seq_tup_read + coalesce(idx_tup_fetch, 0)
                         from pg_stat_xact_user_tables";

/// Runs `statement` in a transaction of its own, as the bridge and clients send them, and
/// returns its result with how much each of the `counters` (a query of name and count) grew,
/// where it did. The transaction is explicit, so that the pooler keeps it on one server
/// connection, whose counters (`pg_stat_xact_user_tables`) are read before and after the
/// statement: they also hold earlier transactions' counts until reported.
async fn counted<T>(
    client: &Client,
    counters: &str,
    statement: impl Future<Output = T>,
) -> (T, Vec<(String, i64)>) {
    let read = || async {
        client
            .query_typed(counters, &[])
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get::<_, String>(0), row.get::<_, i64>(1)))
            .collect::<HashMap<_, _>>()
    };
    client.batch_execute("begin").await.unwrap();
    let before = read().await;
    let result = statement.await;
    let mut grew: Vec<(String, i64)> = read()
        .await
        .into_iter()
        .map(|(name, count)| {
            let earlier = before.get(&name).copied().unwrap_or(0);
            (name, count - earlier)
        })
        .filter(|(_, count)| *count > 0)
        .collect();
    client.batch_execute("commit").await.unwrap();
    grew.sort();
    (result, grew)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emit_a_claim_and_a_settlement_read_no_table_whole_however_many_jobs_it_holds() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    // Enough jobs that reading the whole queue projection into a hash join looks cheaper to
    // the planner than one index look-up per element of a settlement (it cannot see how
    // many a JSON array holds and assumes 100), with fresh statistics, as autovacuum keeps
    // them. Before migration 0009 every claim read every pending job, and every settlement
    // statement the whole projection.
    emit_bootstraps(&env.pooled_url, 3000, 4).await;
    let client = connect(&env.pooled_url).await;
    client.batch_execute("analyze").await.unwrap();

    let ((), emit) = counted(&client, READ_WHOLE, async {
        emit_bootstrap(&client).await;
    })
    .await;
    let (claimed, claim_scans) = counted(&client, READ_WHOLE, claim(&client, "w", 1, 60_000)).await;
    let [(job, attempt)] = claimed[..] else {
        panic!("one job expected, got {claimed:?}");
    };
    let (rows, settle_scans) = counted(
        &client,
        READ_WHOLE,
        settle(
            &client,
            json!([{"job_id": job, "attempt": attempt, "outcome": "complete",
                    "workflow_id": "wf-1", "workflow_run_id": "run-1"}]),
        ),
    )
    .await;
    assert_eq!(rows, [(job, attempt, "done".to_owned(), None)]);

    let none: Vec<(String, i64)> = Vec::new();
    assert_eq!(
        [emit, claim_scans, settle_scans],
        [none.clone(), none.clone(), none],
        "tables read whole by an emit, a claim and a settlement, with 3000 jobs queued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_reads_none_of_a_held_routes_backlog() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    // 3000 bootstrap jobs, then their route paused: they wait, ahead in claim order of the one
    // job of another route enqueued after them. Before migration 0010 a claim read every
    // held job on its way to that one.
    emit_bootstraps(&env.pooled_url, 3000, 4).await;
    let client = connect(&env.pooled_url).await;
    client
        .batch_execute(
            "insert into osp_metadata.workflow_routes (event_type, workflow_type, workflow_id_template)
             values ('test.step.happened', 'stepWorkflow', 'step-{event_id}');
             select api.set_workflow_route_paused('organization.bootstrap.initiated', true);",
        )
        .await
        .unwrap();
    emit(
        &client,
        Uuid::new_v4(),
        "test.step.happened",
        &json!({"step": 1}),
    )
    .await;
    let step_job: Uuid = client
        .query_typed(
            "select id from workflow_queue_projection where event_type = 'test.step.happened'",
            &[],
        )
        .await
        .unwrap()[0]
        .get(0);
    client.batch_execute("analyze").await.unwrap();

    let (claimed, read) = counted(&client, ROWS_READ, claim(&client, "w", 10, 60_000)).await;
    assert_eq!(
        claimed,
        [(step_job, 1)],
        "only the job of the route not held"
    );
    let projection_rows = read
        .iter()
        .find(|(table, _)| table == "workflow_queue_projection")
        .map_or(0, |(_, rows)| *rows);
    // The claimed job is read a few times (selected, ordered, appended to, returned), and one
    // row per event type found; none of the 3000 held.
    assert!(
        projection_rows <= 20,
        "a claim past 3000 held jobs read {projection_rows} queue rows: {read:?}"
    );

    // Resumed, the backlog is claimable again, oldest first, through the claimable index.
    let oldest: HashSet<Uuid> = client
        .query_typed(
            "select id from workflow_queue_projection where status = 'pending'
             order by available_at, id limit 5",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    client
        .batch_execute(
            "select api.set_workflow_route_paused('organization.bootstrap.initiated', false)",
        )
        .await
        .unwrap();
    let resumed: HashSet<Uuid> = claim(&client, "w", 5, 60_000)
        .await
        .into_iter()
        .map(|(job, _)| job)
        .collect();
    assert_eq!(resumed, oldest, "the five oldest held jobs, once resumed");
}

/// Calls of each PL/pgSQL function, by name (`track_functions = 'pl'`, set by the test).
const FUNCTION_CALLS: &str = "select funcname::text, calls from pg_stat_xact_user_functions";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_and_a_settlement_append_their_events_set_based_in_each_streams_order() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    // Ten streams with two jobs each, all claimed in one call and settled in another.
    // Before migration 0011 each of their 60 events took a call of append_domain_event
    // (about ten statements each); now each call appends its events together (a call with
    // one or two events still appends them one by one: the other tests' single jobs).
    let client = connect(&env.direct_url).await;
    let mut organizations = Vec::new();
    for _ in 0..10 {
        let organization = Uuid::new_v4();
        for _ in 0..2 {
            emit(
                &client,
                organization,
                ORGANIZATION_BOOTSTRAP_INITIATED,
                &bootstrap_data(organization),
            )
            .await;
        }
        organizations.push(organization);
    }
    client
        .batch_execute("set track_functions = 'pl'")
        .await
        .unwrap();
    let calls = |grew: &[(String, i64)], function: &str| {
        grew.iter()
            .find(|(name, _)| name == function)
            .map_or(0, |(_, calls)| *calls)
    };

    let (jobs, grew) = counted(&client, FUNCTION_CALLS, claim(&client, "w", 100, 60_000)).await;
    assert_eq!(jobs.len(), 20, "{jobs:?}");
    assert_eq!(calls(&grew, "append_domain_event"), 0, "{grew:?}");
    assert_eq!(calls(&grew, "append_platform_events"), 1, "{grew:?}");

    // Every job completed, one of them twice in the call: the second reads as fenced, as it
    // did when the first one's events were written before it was looked at.
    let mut items: Vec<serde_json::Value> = jobs
        .iter()
        .map(|(job, attempt)| {
            json!({"job_id": job, "attempt": attempt, "outcome": "complete",
                   "workflow_id": format!("wf-{job}"), "workflow_run_id": "run-1"})
        })
        .collect();
    items.push(items[0].clone());
    let (rows, grew) = counted(&client, FUNCTION_CALLS, settle(&client, json!(items))).await;
    assert_eq!(calls(&grew, "append_domain_event"), 0, "{grew:?}");
    assert_eq!(calls(&grew, "append_platform_events"), 1, "{grew:?}");
    let twice: Vec<&str> = rows
        .iter()
        .filter(|row| row.0 == jobs[0].0)
        .map(|row| row.2.as_str())
        .collect();
    assert_eq!(twice, ["done", "fenced"], "{rows:?}");
    assert_eq!(rows.iter().filter(|row| row.2 == "done").count(), 20);

    // On each stream: its events in the order the functions appended them one by one, each
    // job's started and completed events together, in the order the jobs were created, the
    // versions gapless (the insert guard checks each against the stream's counter).
    for organization in organizations {
        let events: Vec<(i32, String, Option<String>)> = client
            .query_typed(
                "select e.stream_version, e.event_type, e.event_data ->> 'job_id'
                 from domain_events e where e.stream_id = $1 order by e.stream_version",
                &[(&organization, Type::UUID)],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect();
        let versions: Vec<i32> = events.iter().map(|event| event.0).collect();
        assert_eq!(versions, (1..=10).collect::<Vec<_>>(), "{events:?}");
        let types: Vec<&str> = events.iter().map(|event| event.1.as_str()).collect();
        assert_eq!(
            types,
            [
                "organization.bootstrap.initiated",
                "workflow.queue.pending",
                "organization.bootstrap.initiated",
                "workflow.queue.pending",
                "workflow.queue.claimed",
                "workflow.queue.claimed",
                "organization.bootstrap.workflow_started",
                "workflow.queue.completed",
                "organization.bootstrap.workflow_started",
                "workflow.queue.completed",
            ],
            "{organization}"
        );
        // The pending events' ids are the jobs' ids, first job first.
        let pending: Vec<Uuid> = client
            .query_typed(
                "select id from domain_events
                 where stream_id = $1 and event_type = 'workflow.queue.pending'
                 order by stream_version",
                &[(&organization, Type::UUID)],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| row.get(0))
            .collect();
        let job_of =
            |index: usize| -> Uuid { events[index].2.as_deref().unwrap().parse().unwrap() };
        assert_eq!(
            [job_of(4), job_of(5)],
            pending[..],
            "claimed in the order created"
        );
        // A settlement takes a stream's jobs by id, as before; each job's two events together.
        let mut by_id = pending.clone();
        by_id.sort();
        assert_eq!([job_of(6), job_of(7)], [by_id[0]; 2], "{events:?}");
        assert_eq!([job_of(8), job_of(9)], [by_id[1]; 2], "{events:?}");
        for job in pending {
            assert_eq!(job_status(&client, job).await, "completed");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_is_planned_once_per_connection_not_on_every_call() {
    let env = Env::start().await;
    // Migration 0012: the claim's `limit p_batch` made PostgreSQL plan its statements again
    // on every call. The setting lives in the function's SET clause, which CREATE OR REPLACE
    // drops: a migration restating the claim without it fails here. That its generic plans
    // read by index is what the tests above check, since every claim now runs on them.
    let client = connect(&env.direct_url).await;
    let config: Vec<String> = client
        .query_one(
            "select coalesce(proconfig, '{}') from pg_proc
             where oid = 'api.claim_workflow_jobs(text, integer, interval)'::regprocedure",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        config
            .iter()
            .any(|s| s == "plan_cache_mode=force_generic_plan"),
        "the claim's settings: {config:?}"
    );
}
