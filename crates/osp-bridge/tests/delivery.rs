//! Delivery under load: every routed event becomes exactly one workflow start, directly,
//! through a transaction-mode PgBouncer, with LISTEN broken by that pooler (the sweep
//! delivers), and with two bridges competing for the same queue.

#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::time::{Duration, Instant};

use common::{
    Env, HEAVY, RunningBridge, assert_one_execution_each, emit_bootstraps, eventually, job_events,
    stream_events, wait_settled, with_worker,
};
use osp_core::events::{
    INVITATION_EMAIL_SENT, ORGANIZATION_BOOTSTRAP_COMPLETED, ORGANIZATION_BOOTSTRAP_INITIATED,
    ORGANIZATION_BOOTSTRAP_WORKFLOW_STARTED, ORGANIZATION_CREATED, ORGANIZATION_DNS_CONFIGURED,
    USER_INVITED, WORKFLOW_QUEUE_CLAIMED, WORKFLOW_QUEUE_COMPLETED, WORKFLOW_QUEUE_PENDING,
};
use osp_core::workflows::organization_bootstrap_workflow_id;

/// The chain CONTRACTS.md gives for one bootstrap request with one admin user.
const CHAIN: &[&str] = &[
    ORGANIZATION_BOOTSTRAP_INITIATED,
    WORKFLOW_QUEUE_PENDING,
    WORKFLOW_QUEUE_CLAIMED,
    ORGANIZATION_BOOTSTRAP_WORKFLOW_STARTED,
    WORKFLOW_QUEUE_COMPLETED,
    ORGANIZATION_CREATED,
    ORGANIZATION_DNS_CONFIGURED,
    USER_INVITED,
    INVITATION_EMAIL_SENT,
    ORGANIZATION_BOOTSTRAP_COMPLETED,
];

/// Checks the queue after a run: every job completed exactly once, by one claim, with a
/// fresh start (no execution found existing), and every stream holding the bridge's part of
/// the chain in order.
async fn assert_delivered_once(env: &Env, organizations: &[uuid::Uuid]) {
    let client = env.client().await;
    let jobs = job_events(&client).await;
    assert_eq!(jobs.len(), organizations.len());
    for (job, events) in &jobs {
        assert_eq!(
            (
                events.claimed,
                events.started,
                events.completed,
                events.failed,
                events.existing
            ),
            (1, 1, 1, 0, 0),
            "job {job}: {events:?}"
        );
    }
    let rows = client
        .query(
            "select stream_id, workflow_id, workflow_run_id from workflow_queue_projection
             where status = 'completed'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), organizations.len());
    for row in &rows {
        let stream: uuid::Uuid = row.get(0);
        let workflow_id: String = row.get(1);
        let run_id: Option<String> = row.get(2);
        assert_eq!(workflow_id, organization_bootstrap_workflow_id(stream));
        assert!(run_id.is_some_and(|run| !run.is_empty()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_events_from_four_writers_become_a_thousand_executions_and_full_chains() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let bridge = RunningBridge::spawn(env.config(&env.direct_url, &env.direct_url, &[]));
    let temporal = env.temporal().await;
    let client = env.client().await;
    let (organizations, elapsed) = with_worker(&env, async {
        let started = Instant::now();
        let organizations = emit_bootstraps(&env.direct_url, 1000, 4).await;
        let statuses = wait_settled(&client, 1000, Duration::from_secs(60)).await;
        let elapsed = started.elapsed();
        assert_eq!(statuses.get("completed"), Some(&1000), "{statuses:?}");
        // The workflows run on: wait for every chain to finish.
        eventually(
            Duration::from_secs(240),
            "every bootstrap to complete",
            || async {
                let done: i64 = client
                    .query_one(
                        "select count(*) from domain_events where event_type = $1",
                        &[&ORGANIZATION_BOOTSTRAP_COMPLETED],
                    )
                    .await
                    .unwrap()
                    .get(0);
                (done == 1000).then_some(())
            },
        )
        .await;
        (organizations, elapsed)
    })
    .await;
    eprintln!("1000 events dispatched in {elapsed:?}");
    assert_one_execution_each(&temporal, &organizations, Duration::from_secs(30)).await;
    assert_delivered_once(&env, &organizations).await;
    for organization in &organizations {
        assert_eq!(
            stream_events(&client, *organization).await,
            CHAIN,
            "stream {organization}"
        );
    }
    assert_eq!(
        bridge
            .metric("osp_bridge_event_to_start_seconds_count")
            .await,
        1000.0
    );
    // Each step on the way is timed too: every start request, and each claim and settlement
    // statement (one or more jobs each, so no more settlements than jobs here, where none
    // fails and none is retried).
    assert_eq!(
        bridge
            .metric("osp_bridge_temporal_start_seconds_count")
            .await,
        1000.0
    );
    let settlements = bridge.metric("osp_bridge_settle_seconds_count").await;
    assert!(
        (1.0..=1000.0).contains(&settlements),
        "{settlements} settlement statements"
    );
    assert!(bridge.metric("osp_bridge_settle_seconds_sum").await > 0.0);
    let claims = bridge.metric("osp_bridge_claim_seconds_count").await;
    assert!(claims >= 1.0, "{claims} claim statements");
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_transaction_mode_pgbouncer_every_event_starts_once() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let bridge = RunningBridge::spawn(env.config(&env.pooled_url, &env.direct_url, &[]));
    let temporal = env.temporal().await;
    let client = env.client().await;
    let started = Instant::now();
    let organizations = emit_bootstraps(&env.pooled_url, 1000, 4).await;
    let emitted = started.elapsed();
    let statuses = wait_settled(&client, 1000, Duration::from_secs(60)).await;
    eprintln!(
        "1000 events through PgBouncer emitted in {emitted:?}, all dispatched after {:?}",
        started.elapsed()
    );
    assert_eq!(statuses.get("completed"), Some(&1000), "{statuses:?}");
    assert_one_execution_each(&temporal, &organizations, Duration::from_secs(30)).await;
    assert_delivered_once(&env, &organizations).await;
    // LISTEN went to the database directly and delivered the hints.
    assert_eq!(
        bridge
            .metric("osp_bridge_wakeup_source_up{source=\"listen\"}")
            .await,
        1.0
    );
    assert!(
        bridge
            .metric("osp_bridge_wakeups_total{source=\"notify\"}")
            .await
            > 0.0
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_listen_behind_the_pooler_no_hint_arrives_and_the_sweep_delivers_everything() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let bridge = RunningBridge::spawn(env.config(&env.pooled_url, &env.pooled_url, &[]));
    let temporal = env.temporal().await;
    let client = env.client().await;
    let organizations = emit_bootstraps(&env.pooled_url, 1000, 4).await;
    let statuses = wait_settled(&client, 1000, Duration::from_secs(90)).await;
    assert_eq!(statuses.get("completed"), Some(&1000), "{statuses:?}");
    assert_one_execution_each(&temporal, &organizations, Duration::from_secs(30)).await;
    assert_delivered_once(&env, &organizations).await;
    // The probe never came back through the pooler: LISTEN never counted as delivering.
    assert_eq!(
        bridge
            .metric("osp_bridge_wakeup_source_up{source=\"listen\"}")
            .await,
        0.0
    );
    assert!(
        bridge
            .metric("osp_bridge_wakeups_total{source=\"sweep\"}")
            .await
            > 0.0
    );
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_bridges_never_dispatch_the_same_job() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let config = env.config(
        &env.pooled_url,
        &env.direct_url,
        &[("OSP_BRIDGE_BATCH_SIZE", "10")],
    );
    let first = RunningBridge::spawn(config.clone());
    let second = RunningBridge::spawn(config);
    let temporal = env.temporal().await;
    let client = env.client().await;
    let organizations = emit_bootstraps(&env.pooled_url, 1000, 4).await;
    let statuses = wait_settled(&client, 1000, Duration::from_secs(60)).await;
    assert_eq!(statuses.get("completed"), Some(&1000), "{statuses:?}");
    assert_one_execution_each(&temporal, &organizations, Duration::from_secs(30)).await;
    assert_delivered_once(&env, &organizations).await;
    let jobs = job_events(&client).await;
    let by_first = jobs
        .values()
        .filter(|events| events.claimers == [first.worker_id.clone()])
        .count();
    let by_second = jobs
        .values()
        .filter(|events| events.claimers == [second.worker_id.clone()])
        .count();
    eprintln!("first bridge dispatched {by_first}, second {by_second}");
    assert_eq!(by_first + by_second, 1000);
    assert!(by_first > 0 && by_second > 0, "one bridge did all the work");
    first.stop().await;
    second.stop().await;
}
