//! Integration tests of the typed event API (`osp_activities::events`) against a real
//! PostgreSQL with the OSP schema: both shapes, idempotency keys, appends inside a caller's
//! transaction, refused events, and reading a stream back.

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
