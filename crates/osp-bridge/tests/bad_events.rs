//! Bad rows never crash the bridge: 24 kinds of bad event (against the seeded bootstrap
//! route's stream-id field and JSON Schema, sizes, templates, removed routes), interleaved
//! with good ones, each end `failed` with a message saying what is wrong while every good one
//! is delivered, and a job whose route was disabled waits, pending, until the route is enabled again. Also the
//! latency from an event's commit to its workflow's start, on an idle system.

#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Env, HEAVY, RunningBridge, bootstrap_data, emit, emit_bootstrap, wait_settled};
use osp_core::events::{ORGANIZATION_BOOTSTRAP_INITIATED, ORGANIZATION_BOOTSTRAP_WORKFLOW_STARTED};
use serde_json::{Value, json};
use uuid::Uuid;

/// A bootstrap request for `organization` with `change` applied to the good payload.
fn bootstrap_with(organization: Uuid, change: impl FnOnce(&mut Value)) -> Value {
    let mut data = bootstrap_data(organization);
    change(&mut data);
    data
}

fn remove(field: &'static str) -> impl FnOnce(&mut Value) {
    move |data| {
        data.as_object_mut().unwrap().remove(field);
    }
}

fn set(field: &'static str, value: Value) -> impl FnOnce(&mut Value) {
    move |data| data[field] = value
}

/// One bad bootstrap event: its stream, payload and the words its error must contain.
struct Bad {
    stream: Uuid,
    data: Value,
    expected: &'static str,
}

fn bad_bootstraps() -> Vec<Bad> {
    let mut bad = Vec::new();
    let mut add = |expected: &'static str, change: Box<dyn FnOnce(&mut Value)>| {
        let stream = Uuid::new_v4();
        bad.push(Bad {
            stream,
            data: bootstrap_with(stream, change),
            expected,
        });
    };
    // The route's stream-id field: any value but the stream's own id fails, naming both.
    add(
        "organization_id: must equal the id of the stream the event was emitted on",
        Box::new(set("organization_id", json!("not-a-uuid"))),
    );
    add(
        "organization_id: must equal the id of the stream the event was emitted on",
        Box::new(set("organization_id", json!(12345))),
    );
    add(
        "organization_id: must equal the id of the stream the event was emitted on",
        Box::new(set("organization_id", json!(Uuid::new_v4()))),
    );
    add(
        "organization_id: must equal the id of the stream the event was emitted on",
        Box::new(set("organization_id", json!(Uuid::nil()))),
    );
    // The route's JSON Schema, each violation under its field.
    add(
        "event_data: \"name\" is a required property",
        Box::new(remove("name")),
    );
    add(
        "name: value is not of type \"string\"",
        Box::new(set("name", json!(7))),
    );
    add(
        "name: value does not match \"\\S\"",
        Box::new(set("name", json!("   "))),
    );
    add(
        "name: value is longer than 200 characters",
        Box::new(set("name", json!("n".repeat(201)))),
    );
    add(
        "event_data: \"subdomain\" is a required property",
        Box::new(remove("subdomain")),
    );
    add(
        "subdomain: value does not match",
        Box::new(set("subdomain", json!("Not_A_Label"))),
    );
    add(
        "subdomain: value is longer than 63 characters",
        Box::new(set("subdomain", json!("s".repeat(64)))),
    );
    add(
        "event_data: \"admin_users\" is a required property",
        Box::new(remove("admin_users")),
    );
    add(
        "admin_users: value has less than 1 item",
        Box::new(set("admin_users", json!([]))),
    );
    add(
        "admin_users: value is not of type \"array\"",
        Box::new(set("admin_users", json!("admin@example.test"))),
    );
    add(
        "admin_users[0]: value is not of type \"object\"",
        Box::new(set("admin_users", json!(["admin@example.test"]))),
    );
    add(
        "admin_users[0]: \"email\" is a required property",
        Box::new(set("admin_users", json!([{"name": "No Mail"}]))),
    );
    add(
        "admin_users[0].email: value is not a \"email\"",
        Box::new(set("admin_users", json!([{"email": "not-an-email"}]))),
    );
    add(
        "admin_users[0].name: value is not of types",
        Box::new(set(
            "admin_users",
            json!([{"email": "a@example.test", "name": 3}]),
        )),
    );
    add(
        "admin_users[0]: Additional properties are not allowed ('role' was unexpected)",
        Box::new(set(
            "admin_users",
            json!([{"email": "a@example.test", "role": "owner"}]),
        )),
    );
    add(
        "event_data: Additional properties are not allowed ('nickname' was unexpected)",
        Box::new(set("nickname", json!("acme"))),
    );
    add(
        "plan: value is not of types",
        Box::new(set("plan", json!(3))),
    );
    add(
        "payload too large: event_data is",
        Box::new(set("name", json!("x".repeat(300 * 1024)))),
    );
    bad
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_event_fails_with_a_reason_and_every_good_one_is_delivered() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let bridge = RunningBridge::spawn(env.config(&env.pooled_url, &env.direct_url, &[]));
    let mut client = env.client().await;
    client
        .batch_execute(
            "insert into osp_metadata.workflow_routes
                 (event_type, workflow_type, task_queue, workflow_id_template)
             values
                 ('test.thing.happened', 'thingWorkflow', 'osp-queue', 'thing-{thing_id}'),
                 ('test.paused.happened', 'thingWorkflow', 'osp-queue', 'paused-{stream_id}');",
        )
        .await
        .unwrap();

    let bad = bad_bootstraps();
    let mut expected: HashMap<Uuid, &'static str> = HashMap::new();
    let mut good = Vec::new();
    let mut paused = None;
    for (index, case) in bad.iter().enumerate() {
        emit(
            &client,
            case.stream,
            ORGANIZATION_BOOTSTRAP_INITIATED,
            &case.data,
        )
        .await;
        expected.insert(case.stream, case.expected);
        // A good one after every bad one: the bridge goes on delivering.
        let organization = emit_bootstrap(&client).await;
        good.push(organization);
        if index == bad.len() / 2 {
            // Kinds that need a route of their own.
            let stream = Uuid::new_v4();
            emit(&client, stream, "test.thing.happened", &json!({"other": 1})).await;
            expected.insert(
                stream,
                "no workflow id: workflow id template \"thing-{thing_id}\" needs {thing_id}",
            );

            let stream = Uuid::new_v4();
            let transaction = client.transaction().await.unwrap();
            transaction
                .batch_execute(
                    "insert into osp_metadata.workflow_routes
                         (event_type, workflow_type, task_queue, workflow_id_template)
                     values ('test.unrouted.happened', 'thingWorkflow', 'osp-queue', 'x-{stream_id}')",
                )
                .await
                .unwrap();
            transaction
                .query(
                    "select api.emit_domain_event($1::uuid, 'thing', 'test.unrouted.happened', '{}'::jsonb)",
                    &[&stream],
                )
                .await
                .unwrap();
            // The route is gone by the time the job is seen.
            transaction
                .batch_execute(
                    "delete from osp_metadata.workflow_routes where event_type = 'test.unrouted.happened';
                     update osp_metadata.workflow_routes set enabled = false
                     where event_type = 'test.paused.happened'",
                )
                .await
                .unwrap();
            transaction.commit().await.unwrap();
            expected.insert(
                stream,
                "unknown route: event type test.unrouted.happened has no route in osp_metadata.workflow_routes",
            );
            // Enqueued while enabled, disabled before the bridge saw it: the enqueue
            // trigger only routes enabled routes, so enable, emit and disable in one go.
            let stream = Uuid::new_v4();
            let transaction = client.transaction().await.unwrap();
            transaction
                .batch_execute(
                    "update osp_metadata.workflow_routes set enabled = true
                     where event_type = 'test.paused.happened'",
                )
                .await
                .unwrap();
            transaction
                .query(
                    "select api.emit_domain_event($1::uuid, 'thing', 'test.paused.happened', '{}'::jsonb)",
                    &[&stream],
                )
                .await
                .unwrap();
            transaction
                .batch_execute(
                    "update osp_metadata.workflow_routes set enabled = false
                     where event_type = 'test.paused.happened'",
                )
                .await
                .unwrap();
            transaction.commit().await.unwrap();
            // A disabled route holds its jobs rather than failing them.
            paused = Some(stream);
        }
    }
    assert!(expected.len() >= 24, "only {} kinds", expected.len());

    // Everything settles but the paused job, which stays pending, unclaimed, while its route
    // is disabled; enabled again, it runs like any good one.
    let paused = paused.unwrap();
    let total = i64::try_from(expected.len() + good.len() + 1).unwrap();
    common::eventually(
        Duration::from_secs(60),
        "all but the paused job settled",
        || async {
            let statuses = common::job_statuses(&client).await;
            let settled = statuses.get("completed").copied().unwrap_or(0)
                + statuses.get("failed").copied().unwrap_or(0);
            (settled == total - 1 && statuses.get("pending") == Some(&1)).then_some(())
        },
    )
    .await;
    let row = client
        .query_one(
            "select status, attempts from workflow_queue_projection where stream_id = $1",
            &[&paused],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, i32>(1)),
        ("pending".to_owned(), 0)
    );
    client
        .batch_execute(
            "update osp_metadata.workflow_routes set enabled = true
             where event_type = 'test.paused.happened'",
        )
        .await
        .unwrap();
    good.push(paused);
    wait_settled(&client, total, Duration::from_secs(60)).await;
    let rows = client
        .query(
            "select stream_id, status, error_message, workflow_run_id from workflow_queue_projection",
            &[],
        )
        .await
        .unwrap();
    let mut failed = 0;
    for row in rows {
        let stream: Uuid = row.get(0);
        let status: String = row.get(1);
        let message: Option<String> = row.get(2);
        if let Some(words) = expected.get(&stream) {
            assert_eq!(
                status, "failed",
                "bad event on {stream} ({words}) was {status}"
            );
            let message = message.unwrap();
            assert!(message.contains(words), "expected {words:?} in {message:?}");
            failed += 1;
        } else {
            assert!(good.contains(&stream), "unexpected job on {stream}");
            assert_eq!(status, "completed", "good event on {stream}: {message:?}");
            assert!(row.get::<_, Option<String>>(3).is_some());
        }
    }
    assert_eq!(failed, expected.len());
    // Failures for good are counted as such and never retried.
    assert_eq!(
        bridge
            .metric("osp_bridge_jobs_failed_total{reason=\"invalid\"}")
            .await,
        expected.len() as f64
    );
    assert_eq!(bridge.metric("osp_bridge_jobs_retried_total").await, 0.0);
    // No started event for a bad job.
    let started: i64 = client
        .query_one(
            "select count(*) from domain_events where event_type = $1",
            &[&ORGANIZATION_BOOTSTRAP_WORKFLOW_STARTED],
        )
        .await
        .unwrap()
        .get(0);
    // The paused job's route names no started event.
    assert_eq!(started, i64::try_from(good.len() - 1).unwrap());
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_starts_its_workflow_within_milliseconds_of_its_commit() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let bridge = RunningBridge::spawn(env.config(&env.pooled_url, &env.direct_url, &[]));
    let client = env.client().await;
    common::eventually(Duration::from_secs(30), "LISTEN to deliver", || async {
        (bridge
            .metric("osp_bridge_wakeup_source_up{source=\"listen\"}")
            .await
            == 1.0)
            .then_some(())
    })
    .await;
    let mut latencies = Vec::new();
    for _ in 0..30 {
        let organization = emit_bootstrap(&client).await;
        // The database's own clocks: the routed event's append and the started event's.
        let latency = common::eventually(Duration::from_secs(10), "the start", || async {
            client
                .query_opt(
                    "select extract(epoch from s.created_at - i.created_at)::float8
                     from domain_events i
                     join domain_events s on s.stream_id = i.stream_id and s.event_type = $2
                     where i.stream_id = $1 and i.event_type = $3",
                    &[
                        &organization,
                        &ORGANIZATION_BOOTSTRAP_WORKFLOW_STARTED,
                        &ORGANIZATION_BOOTSTRAP_INITIATED,
                    ],
                )
                .await
                .unwrap()
                .map(|row| row.get::<_, f64>(0))
        })
        .await;
        latencies.push(latency);
    }
    latencies.sort_by(f64::total_cmp);
    let median = latencies[latencies.len() / 2];
    let worst = latencies[latencies.len() - 1];
    eprintln!(
        "event commit to workflow started: median {:.1} ms, worst {:.1} ms (seed 003: 359 ms)",
        median * 1000.0,
        worst * 1000.0
    );
    // Seed 003 measured 359 ms; ours is a NOTIFY, one claim and one start away.
    assert!(median < 0.15, "median {median} s");
    bridge.stop().await;
}
