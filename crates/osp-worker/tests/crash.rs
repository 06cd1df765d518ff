//! Crash recovery of the real `osp-worker` binary: killed with SIGKILL while its activities
//! wait inside Postgres, then started again. `createServiceWorkflow` still completes with
//! exactly one `services` row and the bootstrap with exactly one domain event per step: the
//! retried activities find what the first attempt wrote instead of writing it twice.
//!
//! Each activity is held inside its INSERT by a table lock the test takes in its own
//! transaction; the retry can only start once the first attempt's start-to-close timeout
//! (30 s) has run out, so this test takes about 40 s.

#![allow(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use std::path::Path;
use std::time::{Duration, Instant};

use osp_core::events;
use osp_core::payloads::{AdminUser, OrganizationBootstrapInput, ServiceData};
use osp_core::workflows::organization_bootstrap_workflow_id;
use osp_testkit::{OspProcess, TestEnv, test_env};
use osp_workflows::{CreateServiceWorkflow, OrganizationBootstrapWorkflow};
use uuid::Uuid;

const WORKER: &str = env!("CARGO_BIN_EXE_osp-worker");

fn worker(env: &TestEnv) -> OspProcess {
    let settings = [
        ("TEMPORAL_ADDRESS", env.temporal_address()),
        ("TEMPORAL_TASK_QUEUE", env.task_queue().to_owned()),
        ("DATABASE_URL", env.database_url()),
        ("LOG_FORMAT", "json".to_owned()),
        ("OSP_SHUTDOWN_GRACE_SECONDS", "1".to_owned()),
    ];
    OspProcess::start(
        Path::new(WORKER),
        &settings,
        &env.scratch_dir().join("worker.log"),
    )
    .unwrap()
}

/// Waits until `count` statements of this database wait for a lock.
async fn wait_for_blocked_inserts(env: &TestEnv, count: i64) {
    let db = env.db().await.unwrap();
    let started = Instant::now();
    loop {
        let blocked: i64 = db
            .query_one(
                "select count(*) from pg_stat_activity
                 where datname = current_database() and wait_event_type = 'Lock'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if blocked >= count {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the activities never reached their INSERT ({blocked} of {count} waiting)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_worker_killed_during_activities_finishes_them_exactly_once_after_a_restart() {
    let env = test_env()
        .await
        .unwrap()
        .with_deadline(Duration::from_secs(120));
    let mut process = worker(&env);
    process.wait_ready(Duration::from_secs(60)).await.unwrap();

    // The test's transaction holds both tables: every insert into them waits.
    let mut locker = env.db().await.unwrap();
    let lock = locker.transaction().await.unwrap();
    lock.batch_execute("LOCK TABLE public.services, public.domain_events IN EXCLUSIVE MODE")
        .await
        .unwrap();

    let service = env
        .start(
            CreateServiceWorkflow::run,
            ServiceData {
                name: "survivor".to_owned(),
                description: None,
                service_schema: None,
                metadata: None,
            },
        )
        .await
        .unwrap();
    let organization = Uuid::new_v4();
    let bootstrap = env
        .start_with_id(
            OrganizationBootstrapWorkflow::run,
            OrganizationBootstrapInput {
                organization_id: organization,
                name: "Crashproof".to_owned(),
                subdomain: format!("crash-{}", &organization.simple().to_string()[..8]),
                admin_users: vec![AdminUser {
                    email: "ops@crash.test".to_owned(),
                    name: None,
                }],
                plan: None,
            },
            &organization_bootstrap_workflow_id(organization),
        )
        .await
        .unwrap();

    // createEntity waits on the services insert, createOrganization on its event's insert.
    wait_for_blocked_inserts(&env, 2).await;
    let killed_at = Instant::now();
    process.kill().await.unwrap();
    lock.rollback().await.unwrap();
    process.restart().unwrap();
    process.wait_ready(Duration::from_secs(60)).await.unwrap();

    let created = service.result().await.unwrap();
    bootstrap.result().await.unwrap();
    eprintln!(
        "both workflows completed {:?} after the worker was killed",
        killed_at.elapsed()
    );

    let db = env.db().await.unwrap();
    let services: i64 = db
        .query_one("select count(*) from public.services", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(services, 1);
    assert_eq!(created.name, "survivor");
    env.wait_for_chain(
        organization,
        &[
            events::ORGANIZATION_CREATED,
            events::ORGANIZATION_DNS_CONFIGURED,
            events::USER_INVITED,
            events::INVITATION_EMAIL_SENT,
            events::ORGANIZATION_BOOTSTRAP_COMPLETED,
        ],
    )
    .await
    .unwrap();
    // The first attempts really were cut off: each step ran a second time.
    for workflow in [
        service.history().await.unwrap(),
        bootstrap.history().await.unwrap(),
    ] {
        let text = String::from_utf8(workflow.to_json().unwrap()).unwrap();
        assert!(
            text.contains("\"attempt\": 2"),
            "no retried activity in {}",
            workflow.origin()
        );
    }
    process.stop(Duration::from_secs(15)).await.unwrap();
}
