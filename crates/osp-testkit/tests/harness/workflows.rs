//! The workflow-test harness against the real dev server and Postgres: replacement
//! activities and call recording, signals, queries and updates, time skipping beside other
//! tests, a panicking workflow failing its test within seconds, event-chain diffs, history
//! recording and the `temporal` CLI's export format.

use std::time::{Duration, Instant};

use osp_core::activities::defs;
use osp_core::payloads::{Service, ServiceData};
use osp_testkit::{Calls, TestError, test_env};
use osp_workflows::CreateServiceWorkflow;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{SyncWorkflowContext, WorkflowContext, WorkflowContextView, WorkflowResult};
use uuid::Uuid;

fn fake_service(data: &ServiceData) -> Service {
    Service {
        id: Uuid::nil(),
        name: data.name.clone(),
        description: data.description.clone(),
        service_schema: data.service_schema.clone(),
        metadata: Default::default(),
        created_at: "2024-01-01T00:00:00Z".to_owned(),
    }
}

fn service_data(name: &str) -> ServiceData {
    ServiceData {
        name: name.to_owned(),
        description: None,
        service_schema: None,
        metadata: None,
    }
}

#[tokio::test]
async fn a_replacement_activity_runs_under_the_real_name_and_records_its_calls() {
    let env = test_env().await.unwrap();
    let calls = Calls::new();
    let started = Instant::now();
    let service = env
        .worker()
        .workflow::<CreateServiceWorkflow>()
        .replace(
            defs::CreateEntity,
            calls.record(|data: ServiceData| async move { Ok(fake_service(&data)) }),
        )
        .execute(CreateServiceWorkflow::run, service_data("billing"))
        .await
        .unwrap();
    eprintln!("execute took {:?}", started.elapsed());
    assert_eq!(service.name, "billing");
    assert_eq!(calls.count(), 1);
    assert_eq!(calls.inputs()[0].name, "billing");
}

/// A test's own implementation of an OSP activity, written with the SDK's macros.
#[derive(Debug)]
struct FakeEntities;

#[activities]
impl FakeEntities {
    // The macro also makes a constant per activity, for calling it by name; unused here.
    #[allow(dead_code)]
    #[activity(definition = defs::CreateEntity)]
    async fn create_entity(
        _ctx: ActivityContext,
        input: ServiceData,
    ) -> Result<Service, ActivityError> {
        Ok(fake_service(&input))
    }
}

#[tokio::test]
async fn an_activities_struct_replaces_the_real_activity_too() {
    let env = test_env().await.unwrap();
    let service = env
        .worker()
        .workflow::<CreateServiceWorkflow>()
        .activities(env.platform().build().unwrap())
        .activities(FakeEntities)
        .execute(CreateServiceWorkflow::run, service_data("from-a-struct"))
        .await
        .unwrap();
    assert_eq!(service.id, Uuid::nil());
    assert_eq!(service.name, "from-a-struct");
}

/// A workflow that sleeps a day, then reports how much workflow time passed.
#[workflow]
#[derive(Debug, Default)]
struct SleepsADay;

#[workflow_methods]
impl SleepsADay {
    #[run(name = "sleepsADay")]
    async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<u64> {
        let before = ctx.workflow_time();
        ctx.timer(Duration::from_secs(24 * 3600)).await;
        let after = ctx.workflow_time();
        let slept = match (before, after) {
            (Some(before), Some(after)) => after.duration_since(before).unwrap_or_default(),
            _ => Duration::ZERO,
        };
        Ok(slept.as_secs())
    }
}

#[tokio::test]
async fn a_day_long_timer_completes_in_seconds_with_time_skipping() {
    let env = test_env().await.unwrap();
    let started = Instant::now();
    let slept = env
        .worker()
        .workflow::<SleepsADay>()
        .run_until(async {
            let workflow = env.start(SleepsADay::run, ()).await?;
            workflow.result_skipping_time().await
        })
        .await
        .unwrap()
        .unwrap();
    let wall = started.elapsed();
    eprintln!("24-hour timer: {slept} s of workflow time in {wall:?} of wall time");
    assert!(slept >= 24 * 3600, "{slept}");
    assert!(wall < Duration::from_secs(10), "{wall:?}");
}

/// A workflow that panics in its first task.
#[workflow]
#[derive(Debug, Default)]
struct Panics;

#[workflow_methods]
impl Panics {
    #[run(name = "panics")]
    async fn run(_ctx: &mut WorkflowContext<Self>) -> WorkflowResult<()> {
        panic!("the workflow broke on purpose");
    }
}

#[tokio::test]
async fn a_panicking_workflow_fails_its_test_within_seconds_naming_the_panic() {
    let env = test_env().await.unwrap();
    let started = Instant::now();
    let error = env
        .worker()
        .workflow::<Panics>()
        .execute(Panics::run, ())
        .await
        .unwrap_err();
    let took = started.elapsed();
    eprintln!("panic detected in {took:?}: {error}");
    assert!(
        matches!(error, TestError::WorkflowTaskFailed { .. }),
        "{error}"
    );
    let text = error.to_string();
    assert!(text.contains("the workflow broke on purpose"), "{text}");
    assert!(text.contains("panics"), "{text}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}

/// Counts signals; answers queries; an update adds and returns the total.
#[workflow]
#[derive(Debug, Default)]
struct Counter {
    total: u32,
    done: bool,
}

#[workflow_methods]
impl Counter {
    #[run(name = "counter")]
    async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<u32> {
        ctx.wait_condition(|state| state.done).await?;
        Ok(ctx.state(|state| state.total))
    }

    #[signal(name = "add")]
    fn add(&mut self, _ctx: &mut SyncWorkflowContext<Self>, amount: u32) {
        self.total += amount;
    }

    #[signal(name = "finish")]
    fn finish(&mut self, _ctx: &mut SyncWorkflowContext<Self>) {
        self.done = true;
    }

    #[query(name = "total")]
    fn total(&self, _ctx: &WorkflowContextView) -> u32 {
        self.total
    }

    #[update(name = "addAndGet")]
    fn add_and_get(&mut self, _ctx: &mut SyncWorkflowContext<Self>, amount: u32) -> u32 {
        self.total += amount;
        self.total
    }
}

#[tokio::test]
async fn signals_queries_and_updates_reach_the_workflow() {
    let env = test_env().await.unwrap();
    let total = env
        .worker()
        .workflow::<Counter>()
        .run_until(async {
            let counter = env.start(Counter::run, ()).await?;
            counter.signal(Counter::add, 2).await?;
            counter.signal(Counter::add, 3).await?;
            let seen = counter
                .wait_for_query(Counter::total, (), |total| *total == 5)
                .await?;
            assert_eq!(seen, 5);
            assert_eq!(counter.update(Counter::add_and_get, 10).await?, 15);
            counter.signal(Counter::finish, ()).await?;
            counter.result().await
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(total, 15);
}

/// Appends `event_type` to a `test` stream through the event store's own function.
async fn emit(env: &osp_testkit::TestEnv, stream: Uuid, event_type: &str) {
    let db = env.db().await.unwrap();
    db.query_typed(
        "select api.emit_domain_event($1, 'test', $2, '{}'::jsonb)",
        &[
            (&stream, tokio_postgres::types::Type::UUID),
            (&event_type, tokio_postgres::types::Type::TEXT),
        ],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_wrong_event_fails_the_chain_at_once_with_a_readable_diff() {
    let env = test_env().await.unwrap();
    let stream = Uuid::new_v4();
    for event_type in ["test.created", "test.renamed", "test.archived"] {
        emit(&env, stream, event_type).await;
    }
    let started = Instant::now();
    let error = env
        .wait_for_chain(stream, &["test.created", "test.published", "test.archived"])
        .await
        .unwrap_err();
    // No waiting for the deadline: the stream is append-only, the wrong event stays.
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let TestError::Chain(mismatch) = &error else {
        panic!("{error}");
    };
    assert_eq!(mismatch.first_difference(), Some(1));
    assert_eq!(
        mismatch.actual,
        ["test.created", "test.renamed", "test.archived"]
    );
    let text = error.to_string();
    eprintln!("{text}");
    for expected in [
        "expected",
        "actual",
        "!    2  test.published",
        "test.renamed",
        "first difference at #2: expected `test.published`, got `test.renamed`",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
}

#[tokio::test]
async fn an_incomplete_chain_fails_after_the_deadline_showing_what_is_missing() {
    let env = test_env()
        .await
        .unwrap()
        .with_deadline(Duration::from_millis(300));
    let stream = Uuid::new_v4();
    emit(&env, stream, "test.created").await;
    let error = env
        .wait_for_chain(stream, &["test.created", "test.published"])
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("still incomplete after 300ms"), "{error}");
    assert!(
        error.contains("expected `test.published`, got nothing (yet)"),
        "{error}"
    );
    // And a complete chain returns its events.
    emit(&env, stream, "test.published").await;
    let events = env
        .wait_for_chain(stream, &["test.created", "test.published"])
        .await
        .unwrap();
    assert_eq!(events[1].stream_version, 2);
}

/// Sleeps an hour, then wakes.
#[workflow]
#[derive(Debug, Default)]
struct NapsAnHour {
    woke: bool,
}

#[workflow_methods]
impl NapsAnHour {
    #[run(name = "napsAnHour")]
    async fn run(ctx: &mut WorkflowContext<Self>) -> WorkflowResult<()> {
        ctx.timer(Duration::from_secs(3600)).await;
        ctx.state_mut(|state| state.woke = true);
        Ok(())
    }

    #[query(name = "woke")]
    fn woke(&self, _ctx: &WorkflowContextView) -> bool {
        self.woke
    }
}

#[tokio::test]
async fn fast_forward_moves_one_workflow_clock_by_exactly_the_given_time() {
    let env = test_env().await.unwrap();
    env.worker()
        .workflow::<NapsAnHour>()
        .run_until(async {
            let nap = env.start(NapsAnHour::run, ()).await?;
            nap.fast_forward(Duration::from_secs(30 * 60)).await?;
            assert!(!nap.query(NapsAnHour::woke, ()).await?);
            nap.fast_forward(Duration::from_secs(31 * 60)).await?;
            nap.wait_for_query(NapsAnHour::woke, (), |woke| *woke)
                .await?;
            nap.result().await
        })
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn a_recorded_history_reads_back_and_replays() {
    let env = test_env().await.unwrap();
    let path = env.scratch_dir().join("counter.json");
    env.worker()
        .workflow::<Counter>()
        .run_until(async {
            let counter = env.start(Counter::run, ()).await?;
            counter.signal(Counter::add, 7).await?;
            counter.signal(Counter::finish, ()).await?;
            assert_eq!(counter.result().await?, 7);
            counter.record_history(&path).await
        })
        .await
        .unwrap()
        .unwrap();
    let history = osp_testkit::RecordedHistory::from_file(&path).unwrap();
    assert_eq!(
        history.format(),
        Some(osp_testkit::HistoryFormat::RustClient)
    );
    assert_eq!(history.workflow_type(), Some("counter"));
    assert!(
        history
            .event_types()
            .iter()
            .any(|kind| kind == "WorkflowExecutionSignaled")
    );
    osp_testkit::Replayer::new()
        .workflow::<Counter>()
        .replay_file(&path)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_cli_export_decodes_to_the_same_events_the_client_fetches() {
    let env = test_env().await.unwrap();
    let workflow = env
        .worker()
        .workflow::<Counter>()
        .run_until(async {
            let counter = env.start(Counter::run, ()).await?;
            counter.signal(Counter::add, 1).await?;
            counter.signal(Counter::finish, ()).await?;
            counter.result().await?;
            Ok::<_, TestError>(counter)
        })
        .await
        .unwrap()
        .unwrap();
    let output = tokio::process::Command::new(osp_testkit::temporal_cli().unwrap())
        .args([
            "workflow",
            "show",
            "-o",
            "json",
            "--workflow-id",
            workflow.id(),
        ])
        .args(["--address", &env.temporal_address()])
        .env_remove("TEMPORAL_ADDRESS")
        .env_remove("TEMPORAL_PROFILE")
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let cli =
        osp_testkit::RecordedHistory::from_json(&output.stdout, "temporal workflow show").unwrap();
    let fetched = workflow.history().await.unwrap();
    assert_eq!(cli.events().len(), fetched.events().len());
    for (from_cli, from_client) in cli.events().iter().zip(fetched.events()) {
        assert_eq!(from_cli, from_client);
    }
}
