//! Integration tests of the typed event API (`osp_activities::events`) against a real
//! PostgreSQL with the OSP schema: both shapes, idempotency keys, appends inside a caller's
//! transaction, refused events, reading a stream back, and a workflow's event that waits for
//! the bridge to record its start.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use osp_activities::events::{EventError, NewEvent, Shape, append, read_stream};
use osp_activities::migrate;
use osp_testkit::Postgres;
use serde_json::json;
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

/// A fresh server with the schema applied, and a client on it.
async fn migrated() -> (Postgres, Client) {
    let postgres = Postgres::start().await.unwrap();
    let (mut client, connection) = tokio_postgres::connect(&postgres.url("postgres"), NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    migrate(&mut client).await.unwrap();
    (postgres, client)
}

#[tokio::test]
async fn both_shapes_append_to_the_same_stream_in_order() {
    let (_postgres, client) = migrated().await;
    let stream = Uuid::new_v4();
    let first = append(
        &client,
        &NewEvent::new("service", stream, "service.noted", json!({"n": 1})),
    )
    .await
    .unwrap();
    let second = append(
        &client,
        &NewEvent::new("service", stream, "service.noted", json!({"n": 2}))
            .metadata_entry("correlation_id", json!("c-1"))
            .shape(Shape::Aggregate),
    )
    .await
    .unwrap();
    let events = read_stream(&client, stream).await.unwrap();
    assert_eq!(
        events
            .iter()
            .map(|e| (e.id, e.stream_version))
            .collect::<Vec<_>>(),
        [(first, 1), (second, 2)]
    );
    assert_eq!(events[1].event_data, json!({"n": 2}));
    assert_eq!(events[1].event_metadata["correlation_id"], "c-1");
}

#[tokio::test]
async fn an_idempotency_key_appends_once() {
    let (_postgres, client) = migrated().await;
    let stream = Uuid::new_v4();
    let event =
        NewEvent::new("service", stream, "service.noted", json!({})).idempotency_key("step-1");
    let first = append(&client, &event).await.unwrap();
    let again = append(&client, &event).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(read_stream(&client, stream).await.unwrap().len(), 1);
}

#[tokio::test]
async fn an_append_in_a_rolled_back_transaction_leaves_nothing() {
    let (_postgres, mut client) = migrated().await;
    let stream = Uuid::new_v4();
    let transaction = client.transaction().await.unwrap();
    append(
        &transaction,
        &NewEvent::new("service", stream, "service.noted", json!({})),
    )
    .await
    .unwrap();
    // Seen inside the transaction, gone after the rollback.
    assert_eq!(read_stream(&transaction, stream).await.unwrap().len(), 1);
    transaction.rollback().await.unwrap();
    assert!(read_stream(&client, stream).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_refused_event_names_the_event_and_the_database_reason() {
    let (_postgres, client) = migrated().await;
    let stream = Uuid::new_v4();
    let error = append(
        &client,
        &NewEvent::new(
            "service",
            stream,
            "service.noted",
            json!(["not", "an", "object"]),
        ),
    )
    .await
    .unwrap_err();
    assert!(matches!(error, EventError::Append { .. }), "{error:?}");
    let text = osp_testkit::error_chain(&error);
    assert!(text.contains("appending service.noted to stream"), "{text}");
    assert!(text.contains("object"), "{text}");
    assert!(read_stream(&client, stream).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_activity_event_waits_for_its_workflows_start_then_follows_it() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use osp_activities::errors::Failure;
    use osp_activities::events::when_started;

    let (postgres, client) = migrated().await;
    let organization = Uuid::new_v4();
    // A bootstrap request: the seeded route enqueues a job for it.
    append(
        &client,
        &NewEvent::new(
            "organization",
            organization,
            "organization.bootstrap.initiated",
            json!({"organization_id": organization, "name": "Acme", "subdomain": "acme",
                   "admin_users": [{"email": "a@acme.test", "name": "A"}]}),
        ),
    )
    .await
    .unwrap();
    let claimed = client
        .query_one(
            "select job_id, workflow_id from api.claim_workflow_jobs('w', 10, interval '1 minute')",
            &[],
        )
        .await
        .unwrap();
    let (job, workflow_id): (Uuid, String) = (claimed.get(0), claimed.get(1));

    // The workflow's first step, as the activities append it, while the start is unrecorded.
    let pool = osp_activities::db::pool(&postgres.url("postgres"), 2).unwrap();
    let attempts = std::sync::Arc::new(AtomicUsize::new(0));
    let step = NewEvent::new(
        "organization",
        organization,
        "organization.created",
        json!({"name": "Acme", "subdomain": "acme"}),
    )
    .metadata_entry("workflow_id", json!(workflow_id));
    let appending = tokio::spawn({
        let attempts = attempts.clone();
        async move {
            when_started(|| async {
                attempts.fetch_add(1, Ordering::SeqCst);
                let client = pool.get().await?;
                append(&**client, &step).await.map_err(Failure::from)
            })
            .await
        }
    });
    // Refused at least once (a second attempt follows only a refusal), and nothing appended.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while attempts.load(Ordering::SeqCst) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the step was never retried"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(!appending.is_finished());

    // The bridge records the start; the step then goes in after it.
    let settled: String = client
        .query_one(
            "select settled from api.settle_workflow_jobs('w', $1)",
            &[&json!([{"job_id": job, "attempt": 1, "outcome": "complete",
                        "workflow_id": workflow_id, "workflow_run_id": "run-1"}])],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(settled, "done");
    appending.await.unwrap().unwrap();
    let order: Vec<String> = read_stream(&client, organization)
        .await
        .unwrap()
        .into_iter()
        .map(|event| event.event_type)
        .collect();
    assert_eq!(
        order,
        [
            "organization.bootstrap.initiated",
            "workflow.queue.pending",
            "workflow.queue.claimed",
            "organization.bootstrap.workflow_started",
            "workflow.queue.completed",
            "organization.created",
        ]
    );
}
