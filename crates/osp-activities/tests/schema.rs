//! Integration tests of the SQL schema against a real PostgreSQL (and PgBouncer): the event
//! store, the enqueue and projection triggers, the NOTIFY, and the migrator.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use std::time::Duration;

use futures::{StreamExt, stream};
use osp_activities::{MIGRATIONS, migrate};
use osp_core::events::{
    ORGANIZATION_BOOTSTRAP_INITIATED, ORGANIZATION_BOOTSTRAP_WORKFLOW_STARTED, ORGANIZATION_STREAM,
    WORKFLOW_QUEUE_CHANNEL, WORKFLOW_QUEUE_PENDING,
};
use osp_core::workflows::{
    DEFAULT_TASK_QUEUE, ORGANIZATION_BOOTSTRAP_WORKFLOW, organization_bootstrap_workflow_id,
};
use osp_testkit::{PgBouncer, Postgres};
use serde_json::{Value, json};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{AsyncMessage, Client, NoTls};
use uuid::Uuid;

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A fresh server shaped like Supabase (its roles and default privileges) with the schema
/// applied, and a client on it.
async fn migrated() -> (Postgres, Client) {
    let postgres = Postgres::start().await.unwrap();
    postgres.apply_supabase_roles("postgres").await.unwrap();
    let mut client = connect(&postgres.url("postgres")).await;
    migrate(&mut client).await.unwrap();
    (postgres, client)
}

fn bootstrap_data(organization_id: Uuid) -> Value {
    json!({
        "organization_id": organization_id,
        "name": "Acme",
        "subdomain": "acme",
        "admin_users": [{"email": "admin@acme.io"}]
    })
}

async fn emit(
    client: &Client,
    stream: Uuid,
    stream_type: &str,
    event_type: &str,
    data: &Value,
) -> Uuid {
    client
        .query_one(
            "select api.emit_domain_event($1::uuid, $2::text, $3::text, $4::jsonb)",
            &[&stream, &stream_type, &event_type, data],
        )
        .await
        .unwrap()
        .get(0)
}

async fn event_types(client: &Client, stream: Uuid) -> Vec<String> {
    client
        .query(
            "select event_type from domain_events where stream_id = $1 order by stream_version",
            &[&stream],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn count(client: &Client, table: &str) -> i64 {
    client
        .query_one(&format!("select count(*) from {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_bootstrap_request_becomes_a_pending_job_and_a_notification() {
    let (postgres, client) = migrated().await;
    let (listener, mut connection) = tokio_postgres::connect(&postgres.url("postgres"), NoTls)
        .await
        .unwrap();
    let mut messages = stream::poll_fn(move |cx| connection.poll_message(cx));
    let (notifications_tx, mut notifications) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(message)) = messages.next().await {
            if let AsyncMessage::Notification(notification) = message {
                let _ = notifications_tx.send(notification);
            }
        }
    });
    listener
        .batch_execute(&format!("listen {WORKFLOW_QUEUE_CHANNEL}"))
        .await
        .unwrap();

    let organization = Uuid::new_v4();
    let event_id = emit(
        &client,
        organization,
        ORGANIZATION_STREAM,
        ORGANIZATION_BOOTSTRAP_INITIATED,
        &bootstrap_data(organization),
    )
    .await;

    assert_eq!(
        event_types(&client, organization).await,
        [ORGANIZATION_BOOTSTRAP_INITIATED, WORKFLOW_QUEUE_PENDING]
    );
    let job = client
        .query_one(
            "select id, status, workflow_type, task_queue, workflow_id, event_id, event_type,
                    started_event_type, attempts, error_message
             from workflow_queue_projection where stream_id = $1",
            &[&organization],
        )
        .await
        .unwrap();
    let job_id: Uuid = job.get("id");
    assert_eq!(job.get::<_, &str>("status"), "pending");
    assert_eq!(
        job.get::<_, &str>("workflow_type"),
        ORGANIZATION_BOOTSTRAP_WORKFLOW
    );
    assert_eq!(job.get::<_, &str>("task_queue"), DEFAULT_TASK_QUEUE);
    assert_eq!(
        job.get::<_, String>("workflow_id"),
        organization_bootstrap_workflow_id(organization)
    );
    assert_eq!(job.get::<_, Uuid>("event_id"), event_id);
    assert_eq!(
        job.get::<_, &str>("event_type"),
        ORGANIZATION_BOOTSTRAP_INITIATED
    );
    assert_eq!(
        job.get::<_, &str>("started_event_type"),
        ORGANIZATION_BOOTSTRAP_WORKFLOW_STARTED
    );
    assert_eq!(job.get::<_, i32>("attempts"), 0);
    assert_eq!(job.get::<_, Option<String>>("error_message"), None);

    // The job id is the pending event's id, and the notification carries it.
    let pending: Uuid = client
        .query_one(
            "select id from domain_events where stream_id = $1 and event_type = $2",
            &[&organization, &WORKFLOW_QUEUE_PENDING],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(job_id, pending);
    let notification = tokio::time::timeout(Duration::from_secs(10), notifications.recv())
        .await
        .expect("a NOTIFY within 10 s")
        .unwrap();
    assert_eq!(notification.channel(), WORKFLOW_QUEUE_CHANNEL);
    assert_eq!(notification.payload(), job_id.to_string());
}

#[tokio::test]
async fn the_seeded_route_matches_the_contracts() {
    let (_postgres, client) = migrated().await;
    let route = client
        .query_one(
            "select workflow_type, task_queue, workflow_id_template, started_event_type, enabled
             from osp_metadata.workflow_routes where event_type = $1",
            &[&ORGANIZATION_BOOTSTRAP_INITIATED],
        )
        .await
        .unwrap();
    assert_eq!(route.get::<_, &str>(0), ORGANIZATION_BOOTSTRAP_WORKFLOW);
    assert_eq!(route.get::<_, &str>(1), DEFAULT_TASK_QUEUE);
    assert_eq!(route.get::<_, &str>(2), "org-bootstrap-{stream_id}");
    assert_eq!(
        route.get::<_, &str>(3),
        ORGANIZATION_BOOTSTRAP_WORKFLOW_STARTED
    );
    assert!(route.get::<_, bool>(4));
}

#[tokio::test]
async fn the_projection_is_never_written_except_by_the_triggers() {
    let (_postgres, client) = migrated().await;
    let organization = Uuid::new_v4();
    emit(
        &client,
        organization,
        ORGANIZATION_STREAM,
        ORGANIZATION_BOOTSTRAP_INITIATED,
        &bootstrap_data(organization),
    )
    .await;

    for statement in [
        "insert into workflow_queue_projection (id, stream_id, stream_type, event_id, event_type,
             workflow_type, task_queue, available_at, created_at, updated_at)
         values (gen_random_uuid(), gen_random_uuid(), 'x', gen_random_uuid(), 'a.b', 'w', 'q',
                 now(), now(), now())",
        "update workflow_queue_projection set status = 'completed'",
        "delete from workflow_queue_projection",
        "insert into organizations_projection (id, name, subdomain, created_at, updated_at)
         values (gen_random_uuid(), 'x', 'x', now(), now())",
        "update domain_events set event_data = '{}'",
        "delete from domain_events",
    ] {
        let error = client.batch_execute(statement).await.unwrap_err();
        let db = error.as_db_error().unwrap();
        assert!(
            [
                SqlState::INSUFFICIENT_PRIVILEGE,
                SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE
            ]
            .contains(db.code()),
            "{statement}: {db}"
        );
        assert!(
            db.message().contains("changes only through domain events")
                || db.message().contains("append-only"),
            "{}",
            db.message()
        );
    }
    let status: String = client
        .query_one("select status from workflow_queue_projection", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "pending");
    assert_eq!(count(&client, "domain_events").await, 2);

    // The same transaction may go on writing events after a trigger has applied one: the
    // trigger's permission does not outlive its own write.
    let error = client
        .batch_execute(&format!(
            "begin;
             select api.emit_domain_event('{organization}'::uuid, 'organization', 'note.added', '{{}}'::jsonb);
             update workflow_queue_projection set status = 'failed';
             commit;"
        ))
        .await
        .unwrap_err();
    assert_eq!(
        error.as_db_error().unwrap().code(),
        &SqlState::INSUFFICIENT_PRIVILEGE
    );
    client.batch_execute("rollback").await.unwrap();
}

#[tokio::test]
async fn an_event_type_with_no_route_is_stored_and_enqueues_nothing() {
    let (_postgres, client) = migrated().await;
    let stream = Uuid::new_v4();
    emit(
        &client,
        stream,
        "service",
        "service.note.added",
        &json!({"text": "hello"}),
    )
    .await;
    assert_eq!(event_types(&client, stream).await, ["service.note.added"]);
    assert_eq!(count(&client, "workflow_queue_projection").await, 0);
}

#[tokio::test]
async fn a_template_the_event_cannot_fill_enqueues_a_job_that_says_why() {
    let (_postgres, client) = migrated().await;
    client
        .batch_execute(
            "insert into osp_metadata.workflow_routes (event_type, workflow_type, workflow_id_template)
             values ('invoice.requested', 'invoiceWorkflow', 'invoice-{invoice_number}')",
        )
        .await
        .unwrap();
    let filled = Uuid::new_v4();
    emit(
        &client,
        filled,
        "invoice",
        "invoice.requested",
        &json!({"invoice_number": 42}),
    )
    .await;
    let missing = Uuid::new_v4();
    emit(
        &client,
        missing,
        "invoice",
        "invoice.requested",
        &json!({"amount": 1}),
    )
    .await;

    let rows = client
        .query(
            "select stream_id, workflow_id, error_message from workflow_queue_projection",
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        let stream: Uuid = row.get(0);
        let workflow_id: Option<String> = row.get(1);
        let error: Option<String> = row.get(2);
        if stream == filled {
            assert_eq!(workflow_id.as_deref(), Some("invoice-42"));
            assert_eq!(error, None);
        } else {
            assert_eq!(workflow_id, None);
            let error = error.unwrap();
            assert!(error.contains("needs {invoice_number}"), "{error}");
        }
    }
}

#[tokio::test]
async fn stream_versions_stay_gap_free_and_unique_with_eight_concurrent_writers() {
    let (postgres, _client) = migrated().await;
    let stream = Uuid::new_v4();
    const WRITERS: usize = 8;
    const EACH: usize = 40;
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let url = postgres.url("postgres");
        writers.push(tokio::spawn(async move {
            let client = connect(&url).await;
            for n in 0..EACH {
                emit(
                    &client,
                    stream,
                    "ledger",
                    "ledger.entry.added",
                    &json!({"writer": writer, "n": n}),
                )
                .await;
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let client = connect(&postgres.url("postgres")).await;
    let versions: Vec<i32> = client
        .query(
            "select stream_version from domain_events where stream_id = $1 order by stream_version",
            &[&stream],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    let expected: Vec<i32> = (1..=(WRITERS * EACH) as i32).collect();
    assert_eq!(versions, expected);
    let counter: i32 = client
        .query_one(
            "select version from osp_metadata.streams where stream_id = $1",
            &[&stream],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(counter, (WRITERS * EACH) as i32);
}

#[tokio::test]
async fn bad_calls_fail_with_a_clear_error_and_write_nothing() {
    let (_postgres, client) = migrated().await;
    let cases: &[(&str, SqlState, &str)] = &[
        (
            "select api.emit_domain_event(null::uuid, 'organization', 'organization.created', '{}'::jsonb)",
            SqlState::NULL_VALUE_NOT_ALLOWED,
            "api.emit_domain_event: p_stream_id must not be null",
        ),
        (
            "select api.emit_domain_event(p_event_type => 'organization.created', p_aggregate_type => 'organization',
                                          p_aggregate_id => null, p_event_data => '{}')",
            SqlState::NULL_VALUE_NOT_ALLOWED,
            "api.emit_domain_event: p_aggregate_id must not be null",
        ),
        (
            "select api.emit_domain_event(gen_random_uuid(), 'organization', '', '{}'::jsonb)",
            SqlState::INVALID_PARAMETER_VALUE,
            "api.emit_domain_event: p_event_type must not be empty",
        ),
        (
            "select api.emit_domain_event(gen_random_uuid(), 'organization', 'Organization Created', '{}'::jsonb)",
            SqlState::INVALID_PARAMETER_VALUE,
            "api.emit_domain_event: p_event_type \"Organization Created\" is not an event type",
        ),
        (
            "select api.emit_domain_event(gen_random_uuid(), '', 'organization.created', '{}'::jsonb)",
            SqlState::INVALID_PARAMETER_VALUE,
            "api.emit_domain_event: p_stream_type must not be empty",
        ),
        (
            "select api.emit_domain_event(gen_random_uuid(), 'organization', 'organization.created', '[1, 2]'::jsonb)",
            SqlState::INVALID_PARAMETER_VALUE,
            "api.emit_domain_event: p_event_data must be a JSON object, not array",
        ),
        (
            "select api.emit_domain_event(gen_random_uuid(), 'organization', 'organization.created', '\"text\"'::jsonb)",
            SqlState::INVALID_PARAMETER_VALUE,
            "api.emit_domain_event: p_event_data must be a JSON object, not string",
        ),
        (
            "select api.emit_domain_event(gen_random_uuid(), 'organization', 'organization.created', null::jsonb)",
            SqlState::INVALID_PARAMETER_VALUE,
            "api.emit_domain_event: p_event_data must be a JSON object, not null",
        ),
        (
            "select api.emit_domain_event(gen_random_uuid(), 'organization', 'organization.created', '{}'::jsonb, '[]'::jsonb)",
            SqlState::INVALID_PARAMETER_VALUE,
            "api.emit_domain_event: p_event_metadata must be a JSON object, not array",
        ),
        // A routed event is validated by its projection's trigger too, and rolls back whole.
        (
            "select api.emit_domain_event(gen_random_uuid(), 'organization', 'user.invited', '{\"email\": \"a@b.io\"}'::jsonb)",
            SqlState::INVALID_PARAMETER_VALUE,
            "event_data.invitation_id is required",
        ),
    ];
    for (statement, code, message) in cases {
        let error = client.batch_execute(statement).await.unwrap_err();
        let db = error
            .as_db_error()
            .unwrap_or_else(|| panic!("{statement}: {error}"));
        assert_eq!(db.code(), code, "{statement}: {}", db.message());
        assert!(
            db.message().contains(message),
            "{statement}: {}",
            db.message()
        );
    }
    assert_eq!(count(&client, "domain_events").await, 0);
    assert_eq!(count(&client, "osp_metadata.streams").await, 0);
    assert_eq!(count(&client, "workflow_queue_projection").await, 0);
}

#[tokio::test]
async fn an_idempotency_key_makes_a_repeated_emit_return_the_first_event() {
    let (_postgres, client) = migrated().await;
    let organization = Uuid::new_v4();
    let emit_with_key = |event_type: &'static str| {
        let client = &client;
        async move {
            client
                .query_one(
                    "select api.emit_domain_event($1::uuid, 'organization', $2::text, $3::jsonb, $4::jsonb)",
                    &[
                        &organization as &(dyn ToSql + Sync),
                        &event_type,
                        &json!({"name": "Acme", "subdomain": "acme"}),
                        &json!({"idempotency_key": "org-bootstrap-x/create"}),
                    ],
                )
                .await
        }
    };
    let first: Uuid = emit_with_key("organization.created").await.unwrap().get(0);
    let again: Uuid = emit_with_key("organization.created").await.unwrap().get(0);
    assert_eq!(first, again);
    assert_eq!(
        event_types(&client, organization).await,
        ["organization.created"]
    );
    // The same key on a different event is a caller's bug, said as such.
    let error = emit_with_key("organization.dns.configured")
        .await
        .unwrap_err();
    assert_eq!(
        error.as_db_error().unwrap().code(),
        &SqlState::UNIQUE_VIOLATION
    );
}

#[tokio::test]
async fn migrating_twice_and_from_two_processes_at_once_is_safe() {
    let postgres = Postgres::start().await.unwrap();
    let url = postgres.create_database("concurrent").await.unwrap();
    postgres.apply_supabase_roles("concurrent").await.unwrap();
    let (mut first, mut second) = (connect(&url).await, connect(&url).await);
    let (a, b) = tokio::join!(migrate(&mut first), migrate(&mut second));
    let (a, b) = (a.unwrap(), b.unwrap());
    let all: Vec<i32> = MIGRATIONS.iter().map(|m| m.version).collect();
    let mut applied = [a.applied.clone(), b.applied.clone()];
    applied.sort();
    assert_eq!(applied, [vec![], all.clone()], "{a:?} {b:?}");

    let again = migrate(&mut first).await.unwrap();
    assert_eq!(again.applied, Vec::<i32>::new());
    assert_eq!(again.already_applied, all);
    assert_eq!(count(&first, "osp_metadata.workflow_routes").await, 1);
}

#[tokio::test]
async fn the_schema_and_the_migrator_work_through_a_transaction_mode_pooler() {
    let postgres = Postgres::start().await.unwrap();
    let pgbouncer = PgBouncer::start(&postgres).await.unwrap();
    postgres.create_database("pooled").await.unwrap();
    postgres.apply_supabase_roles("pooled").await.unwrap();
    let mut client = connect(&pgbouncer.url("pooled")).await;
    migrate(&mut client).await.unwrap();
    let organization = Uuid::new_v4();
    // Unnamed statements only: what a pooler in transaction mode can carry.
    for _ in 0..3 {
        client
            .query_typed(
                "select api.emit_domain_event($1, $2, $3, $4)",
                &[
                    (&Uuid::new_v4(), Type::UUID),
                    (&"service", Type::TEXT),
                    (&"service.note.added", Type::TEXT),
                    (&json!({}), Type::JSONB),
                ],
            )
            .await
            .unwrap();
    }
    client
        .query_typed(
            "select api.emit_domain_event($1, $2, $3, $4)",
            &[
                (&organization, Type::UUID),
                (&ORGANIZATION_STREAM, Type::TEXT),
                (&ORGANIZATION_BOOTSTRAP_INITIATED, Type::TEXT),
                (&bootstrap_data(organization), Type::JSONB),
            ],
        )
        .await
        .unwrap();
    let rows = client
        .query_typed(
            "select status from workflow_queue_projection where stream_id = $1",
            &[(&organization, Type::UUID)],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, &str>(0), "pending");
}
