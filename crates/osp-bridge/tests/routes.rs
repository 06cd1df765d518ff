//! Routes for any workflow, through the real bridge, Postgres and dev server: a route row's
//! JSON Schema refuses bad data with one message naming every violation, its stream-id field
//! is filled from the event's stream when the data leaves it out (the seeded bootstrap route
//! fills `organization_id`), a different id fails naming both, and bad route rows are refused
//! by the table.

#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::time::Duration;

use common::{Env, HEAVY, RunningBridge, bootstrap_data, emit, wait_settled};
use osp_core::events::ORGANIZATION_BOOTSTRAP_INITIATED;
use serde_json::{Value, json};
use temporalio_client::{UntypedWorkflow, WorkflowFetchHistoryOptions};
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
use uuid::Uuid;

/// A service's own route, added with one statement as a service's migration would.
const INVOICE_ROUTE: &str = r#"
insert into osp_metadata.workflow_routes
    (event_type, workflow_type, task_queue, workflow_id_template, input_schema, stream_id_field)
values
    ('invoice.requested', 'processBilling', 'telecom_billing_service_789-tasks',
     'billing-{stream_id}-{event_id}',
     '{"type": "object",
       "required": ["account_id", "period", "lines"],
       "additionalProperties": false,
       "properties": {
         "account_id": {"type": "string", "format": "uuid"},
         "period": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}$"},
         "lines": {"type": "array", "minItems": 1,
                   "items": {"type": "object", "required": ["sku", "cents"],
                             "properties": {"sku": {"type": "string"},
                                            "cents": {"type": "integer", "minimum": 0}}}}}}',
     'account_id')
"#;

/// The job's status and error message, by the routed event's stream.
async fn job(client: &tokio_postgres::Client, stream: Uuid) -> (String, Option<String>, String) {
    let row = client
        .query_one(
            "select status, error_message, workflow_id from workflow_queue_projection
             where stream_id = $1",
            &[&stream],
        )
        .await
        .unwrap();
    (
        row.get(0),
        row.get(1),
        row.get::<_, Option<String>>(2).unwrap_or_default(),
    )
}

/// The input the workflow was started with, from its first history event.
async fn started_input(temporal: &temporalio_client::Client, workflow_id: &str) -> Value {
    let events = temporal
        .get_workflow_handle::<UntypedWorkflow>(workflow_id)
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .into_events()
        .await
        .unwrap();
    let Some(Attributes::WorkflowExecutionStartedEventAttributes(started)) =
        &events.first().unwrap().attributes
    else {
        panic!("{workflow_id}: the first event is not the start");
    };
    let payload = &started.input.as_ref().unwrap().payloads[0];
    serde_json::from_slice(&payload.data).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_s_schema_and_stream_id_field_decide_what_starts() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let client = env.client().await;
    client.batch_execute(INVOICE_ROUTE).await.unwrap();
    let bridge = RunningBridge::spawn(env.config(&env.direct_url, &env.direct_url, &[]));
    let temporal = env.temporal().await;

    // A bootstrap written from CONTRACTS.md without repeating the organization id.
    let organization = Uuid::new_v4();
    let mut data = bootstrap_data(organization);
    data.as_object_mut().unwrap().remove("organization_id");
    emit(
        &client,
        organization,
        ORGANIZATION_BOOTSTRAP_INITIATED,
        &data,
    )
    .await;
    // One that names another organization than its stream's.
    let mismatched = Uuid::new_v4();
    let other = Uuid::new_v4();
    let mut data = bootstrap_data(mismatched);
    data["organization_id"] = json!(other);
    emit(&client, mismatched, ORGANIZATION_BOOTSTRAP_INITIATED, &data).await;
    // A service's event, good but for the account id it leaves to the stream.
    let account = Uuid::new_v4();
    let invoice = json!({"period": "2026-11", "lines": [{"sku": "voice-min", "cents": 1200}]});
    emit(&client, account, "invoice.requested", &invoice).await;
    // And one with every kind of mistake at once.
    let bad_account = Uuid::new_v4();
    let bad = json!({"period": "November", "lines": [{"sku": 1, "cents": -5}, {}], "note": "x"});
    emit(&client, bad_account, "invoice.requested", &bad).await;
    wait_settled(&client, 4, Duration::from_secs(60)).await;

    let (status, message, workflow_id) = job(&client, organization).await;
    assert_eq!(status, "completed", "{message:?}");
    let input = started_input(&temporal, &workflow_id).await;
    assert_eq!(input["organization_id"], json!(organization));
    assert_eq!(input["name"], bootstrap_data(organization)["name"]);

    let (status, message, _) = job(&client, mismatched).await;
    assert_eq!(status, "failed");
    assert_eq!(
        message.unwrap(),
        format!(
            "invalid event_data for organizationBootstrapWorkflow: organization_id: must equal \
             the id of the stream the event was emitted on ({mismatched}), got `{other}`"
        )
    );

    let (status, message, workflow_id) = job(&client, account).await;
    assert_eq!(status, "completed", "{message:?}");
    let mut expected = invoice.clone();
    expected["account_id"] = json!(account);
    assert_eq!(started_input(&temporal, &workflow_id).await, expected);

    let (status, message, _) = job(&client, bad_account).await;
    assert_eq!(status, "failed");
    let message = message.unwrap();
    let prefix = "invalid event_data for processBilling: ";
    assert!(message.starts_with(prefix), "{message}");
    let mut violations: Vec<&str> = message[prefix.len()..].split("; ").collect();
    violations.sort_unstable();
    assert_eq!(
        violations,
        [
            "event_data: Additional properties are not allowed ('note' was unexpected)",
            "lines[0].cents: value is less than the minimum of 0",
            "lines[0].sku: value is not of type \"string\"",
            "lines[1]: \"cents\" is a required property",
            "lines[1]: \"sku\" is a required property",
            "period: value does not match \"^[0-9]{4}-[0-9]{2}$\"",
        ]
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_route_rows_are_refused_by_the_table() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let client = env.client().await;
    let insert = |schema: &str, field: &str| {
        format!(
            "insert into osp_metadata.workflow_routes
                 (event_type, workflow_type, workflow_id_template, input_schema, stream_id_field)
             values ('thing.happened', 'thingWorkflow', 'thing-{{stream_id}}', {schema}, {field})"
        )
    };
    let huge = format!("'{{\"description\": \"{}\"}}'", "x".repeat(70_000));
    for (schema, field, constraint) in [
        (
            "'\"a string\"'",
            "null",
            "workflow_routes_input_schema_shape",
        ),
        (huge.as_str(), "null", "workflow_routes_input_schema_shape"),
        ("null", "'1st'", "workflow_routes_stream_id_field_format"),
        ("null", "'a.b'", "workflow_routes_stream_id_field_format"),
    ] {
        let error = client
            .batch_execute(&insert(schema, field))
            .await
            .unwrap_err();
        let error = error.as_db_error().unwrap();
        assert_eq!(error.constraint(), Some(constraint), "{}", error.message());
    }
    client
        .batch_execute(&insert("'{\"type\": \"object\"}'", "'thing_id'"))
        .await
        .unwrap();
    // The seeded route carries the bootstrap's schema and field.
    let row = client
        .query_one(
            "select input_schema ->> 'title', stream_id_field from osp_metadata.workflow_routes
             where event_type = $1",
            &[&ORGANIZATION_BOOTSTRAP_INITIATED],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, String>(1)),
        (
            "OrganizationBootstrapInput".to_owned(),
            "organization_id".to_owned()
        )
    );
}
