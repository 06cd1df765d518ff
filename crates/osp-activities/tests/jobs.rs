//! Operating the queue without SQL (`osp_activities::jobs`) against a real PostgreSQL shaped
//! like a Supabase project, as `service_role` (the bridge's role): a job that failed for good
//! is listed, shown with its chain, retried through a `workflow.queue.retried` event with its
//! route's whole attempt budget again; only a failed job can be retried; a paused route holds
//! its jobs pending and a resumed one releases them; the API roles cannot call either.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use osp_activities::events::{self, EventError, NewEvent};
use osp_activities::jobs::{self, JobFilter, JobStatus, JobsError};
use osp_activities::migrate;
use osp_testkit::Postgres;
use serde_json::json;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A Supabase-shaped server with the schema and a route allowing one attempt per job; the
/// owner's client and a client acting as `service_role`.
async fn start() -> (Postgres, Client, Client) {
    let postgres = Postgres::start().await.unwrap();
    postgres.apply_supabase_roles("postgres").await.unwrap();
    let mut owner = connect(&postgres.url("postgres")).await;
    migrate(&mut owner).await.unwrap();
    owner
        .batch_execute(
            "insert into osp_metadata.workflow_routes
                 (event_type, workflow_type, task_queue, workflow_id_template, max_attempts)
             values ('invoice.requested', 'processBilling', 'billing-tasks', 'bill-{stream_id}', 1)",
        )
        .await
        .unwrap();
    let service = connect(&postgres.url("postgres")).await;
    service
        .batch_execute("set role service_role")
        .await
        .unwrap();
    (postgres, owner, service)
}

async fn emit_invoice(client: &Client, stream: Uuid) -> Uuid {
    let event = NewEvent::new(
        "account",
        stream,
        "invoice.requested",
        json!({"period": "2026-11"}),
    );
    events::append(client, &event).await.unwrap()
}

/// Claims every due job as bridge `w` and returns (job, attempt) pairs.
async fn claim(client: &Client) -> Vec<(Uuid, i32)> {
    client
        .query(
            "select job_id, attempts from api.claim_workflow_jobs('w', 10, interval '1 minute')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect()
}

async fn fail_for_good(client: &Client, job: Uuid, attempt: i32) {
    client
        .query_typed(
            "select api.fail_workflow_job($1, 'w', $2, 'temporal said no', null)",
            &[(&job, Type::UUID), (&attempt, Type::INT4)],
        )
        .await
        .unwrap();
}

async fn status(client: &Client, job: Uuid) -> String {
    jobs::show(client, job).await.unwrap().summary.status
}

#[tokio::test]
async fn a_failed_job_is_listed_shown_and_retried_with_a_fresh_attempt_budget() {
    let (_postgres, _owner, service) = start().await;
    let stream = Uuid::new_v4();
    let event = emit_invoice(&service, stream).await;
    let [(job, attempt)] = claim(&service).await[..] else {
        panic!("one job claimed");
    };
    assert_eq!(job, {
        let listed = jobs::list(
            &service,
            &JobFilter {
                status: Some(JobStatus::Processing),
                event_type: None,
                limit: 10,
            },
        )
        .await
        .unwrap();
        listed[0].id
    });
    // Retrying a job on its way is refused and changes nothing.
    let error = jobs::retry(&service, job, None).await.unwrap_err();
    assert!(matches!(error, JobsError::Refused { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "api.retry_workflow_job: job {job} is processing; only a failed job can be retried"
        )
    );
    fail_for_good(&service, job, attempt).await;

    let failed = jobs::list(
        &service,
        &JobFilter {
            status: Some(JobStatus::Failed),
            event_type: Some("invoice.requested".into()),
            limit: 10,
        },
    )
    .await
    .unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].id, job);
    assert_eq!(failed[0].error_message.as_deref(), Some("temporal said no"));
    let other_route = JobFilter {
        status: Some(JobStatus::Failed),
        event_type: Some("organization.bootstrap.initiated".into()),
        limit: 10,
    };
    assert!(jobs::list(&service, &other_route).await.unwrap().is_empty());

    let detail = jobs::show(&service, job).await.unwrap();
    assert_eq!(detail.task_queue, "billing-tasks");
    assert_eq!(detail.summary.workflow_id, Some(format!("bill-{stream}")));
    let chain: Vec<&str> = detail.chain.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        chain,
        [
            "invoice.requested",
            "workflow.queue.pending",
            "workflow.queue.claimed",
            "workflow.queue.failed"
        ]
    );
    assert_eq!(detail.chain[0].id, event);

    // The route allows one attempt and the job has used it: the retry gives it one again.
    jobs::retry(&service, job, Some("Temporal is back"))
        .await
        .unwrap();
    assert_eq!(status(&service, job).await, "pending");
    let detail = jobs::show(&service, job).await.unwrap();
    let retried = detail.chain.last().unwrap();
    assert_eq!(retried.event_type, "workflow.queue.retried");
    assert_eq!(
        retried.event_data,
        json!({"job_id": job, "attempts": 1, "previous_error": "temporal said no", "reason": "Temporal is back"})
    );
    assert_eq!(detail.summary.error_message, None);
    let [(again, attempt)] = claim(&service).await[..] else {
        panic!("the retried job is claimed again, not failed as exhausted");
    };
    // The attempt number goes on (it fences settlements); the budget counts from the retry.
    assert_eq!((again, attempt), (job, 2));
    fail_for_good(&service, job, attempt).await;
    assert_eq!(status(&service, job).await, "failed");

    let missing = Uuid::new_v4();
    let error = jobs::retry(&service, missing, None).await.unwrap_err();
    assert_eq!(error.to_string(), format!("no workflow job {missing}"));
    let error = jobs::show(&service, missing).await.unwrap_err();
    assert!(matches!(error, JobsError::NoJob(id) if id == missing));
}

#[tokio::test]
async fn a_paused_route_holds_its_jobs_and_a_resumed_one_releases_them() {
    let (_postgres, _owner, service) = start().await;
    assert!(
        !jobs::set_route_paused(&service, "invoice.requested", true)
            .await
            .unwrap()
    );
    // Pausing twice is no error: it says the route was already paused.
    assert!(
        jobs::set_route_paused(&service, "invoice.requested", true)
            .await
            .unwrap()
    );
    // A paused route still enqueues its events (unlike a disabled one); the jobs wait.
    let stream = Uuid::new_v4();
    emit_invoice(&service, stream).await;
    assert!(claim(&service).await.is_empty());
    let pending = JobFilter {
        status: Some(JobStatus::Pending),
        event_type: Some("invoice.requested".into()),
        limit: 10,
    };
    let held = jobs::list(&service, &pending).await.unwrap();
    assert_eq!(held.len(), 1);
    assert_eq!(held[0].attempts, 0);
    assert!(
        jobs::set_route_paused(&service, "invoice.requested", false)
            .await
            .unwrap()
    );
    assert_eq!(claim(&service).await.len(), 1);

    let error = jobs::set_route_paused(&service, "no.such.route", true)
        .await
        .unwrap_err();
    assert_eq!(error.to_string(), "no route for event type no.such.route");
}

#[tokio::test]
async fn the_api_roles_cannot_operate_the_queue() {
    let (postgres, _owner, service) = start().await;
    let stream = Uuid::new_v4();
    emit_invoice(&service, stream).await;
    let [(job, attempt)] = claim(&service).await[..] else {
        panic!("one job claimed");
    };
    fail_for_good(&service, job, attempt).await;
    for role in ["anon", "authenticated"] {
        let client = connect(&postgres.url("postgres")).await;
        client
            .batch_execute(&format!("set role {role}"))
            .await
            .unwrap();
        for error in [
            jobs::retry(&client, job, None).await.unwrap_err(),
            jobs::set_route_paused(&client, "invoice.requested", true)
                .await
                .unwrap_err(),
        ] {
            let JobsError::Database { source, .. } = &error else {
                panic!("{role}: {error:?}");
            };
            assert_eq!(
                source.code(),
                Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
                "{role}: {source}"
            );
        }
        // A forged retry event is refused as every workflow.queue.* event is.
        let forged = NewEvent::new(
            "account",
            stream,
            "workflow.queue.retried",
            json!({"job_id": job}),
        );
        let EventError::Append { source, .. } = events::append(&client, &forged).await.unwrap_err()
        else {
            panic!("{role}: the forged event is refused by the append");
        };
        assert_eq!(
            source.code(),
            Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE),
            "{role}: {source}"
        );
    }
    assert_eq!(status(&service, job).await, "failed");
}
