//! `createServiceWorkflow` end to end on the dev server and Postgres: with the real
//! `createEntity` directly and through PgBouncer, started by the `temporal` CLI as a client
//! in another language would, and refusing bad input before writing anything.

use std::time::Duration;

use crate::common::{Database, count, record};
use osp_core::payloads::ServiceData;
use osp_testkit::{Calls, RecordedHistory, Replayer, TestEnv, TestError, temporal_cli, test_env};
use osp_workflows::{CreateServiceWorkflow, INVALID_INPUT};
use serde_json::{Value, json};

fn data(name: &str) -> ServiceData {
    ServiceData {
        name: name.to_owned(),
        description: Some("bills customers".to_owned()),
        service_schema: Some("billing".to_owned()),
        metadata: json!({"team": "payments"}).as_object().cloned(),
    }
}

async fn creates_one_row(database: Database) {
    let env = test_env().await.unwrap();
    let service = env
        .worker()
        .workflow::<CreateServiceWorkflow>()
        .activities(database.platform(&env).build().unwrap())
        .run_until(async {
            let workflow = env
                .start(CreateServiceWorkflow::run, data("billing"))
                .await?;
            let service = workflow.result().await?;
            record(&workflow, "create_service").await;
            Ok::<_, TestError>(service)
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(service.name, "billing");
    assert_eq!(service.service_schema.as_deref(), Some("billing"));
    assert_eq!(service.metadata["team"], "payments");
    assert!(!service.created_at.is_empty());
    let db = env.db().await.unwrap();
    let row = db
        .query_one(
            "select name, description, metadata from public.services where id = $1",
            &[&service.id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "billing");
    assert_eq!(
        row.get::<_, Option<String>>(1).as_deref(),
        Some("bills customers")
    );
    assert_eq!(row.get::<_, Value>(2), json!({"team": "payments"}));
    assert_eq!(count(&env, "select count(*) from public.services").await, 1);
}

#[tokio::test]
async fn creates_one_service_row_directly() {
    creates_one_row(Database::Direct).await;
}

#[tokio::test]
async fn creates_one_service_row_through_pgbouncer() {
    creates_one_row(Database::PgBouncer).await;
}

/// Runs the `temporal` CLI against the test's dev server.
async fn cli(env: &TestEnv, args: &[&str]) -> String {
    let output = tokio::process::Command::new(temporal_cli().unwrap())
        .args(args)
        .args([
            "--address",
            &env.temporal_address(),
            "--namespace",
            "default",
        ])
        // The developer's own CLI settings must not redirect the test.
        .env_remove("TEMPORAL_ADDRESS")
        .env_remove("TEMPORAL_NAMESPACE")
        .env_remove("TEMPORAL_API_KEY")
        .env_remove("TEMPORAL_PROFILE")
        .env_remove("TEMPORAL_CONFIG_FILE")
        .kill_on_drop(true)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "temporal {args:?}: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[tokio::test]
async fn the_temporal_cli_starts_it_with_json_input_and_reads_its_result() {
    let env = test_env().await.unwrap();
    let id = env.workflow_id("cli-create-service");
    let (result, exported) = env
        .worker()
        .workflow::<CreateServiceWorkflow>()
        .activities(env.platform().build().unwrap())
        .run_until(async {
            let input = r#"{"name": "from-the-cli", "service_schema": "cli_service", "metadata": {"via": "cli"}}"#;
            cli(
                &env,
                &[
                    "workflow", "start", "--type", "createServiceWorkflow", "--task-queue",
                    env.task_queue(), "--workflow-id", &id, "--input", input,
                ],
            )
            .await;
            let result = cli(&env, &["workflow", "result", "--workflow-id", &id, "-o", "json"]).await;
            let exported = cli(&env, &["workflow", "show", "--workflow-id", &id, "-o", "json"]).await;
            (result, exported)
        })
        .await
        .unwrap();

    let result: Value = serde_json::from_str(&result).unwrap();
    let service = result.get("result").unwrap_or(&result);
    assert_eq!(service["name"], "from-the-cli", "{result}");
    assert_eq!(service["service_schema"], "cli_service", "{result}");
    assert_eq!(service["metadata"], json!({"via": "cli"}), "{result}");
    assert!(
        service["id"].as_str().is_some_and(|id| id.len() == 36),
        "{result}"
    );
    assert_eq!(
        count(
            &env,
            "select count(*) from public.services where name = 'from-the-cli'"
        )
        .await,
        1
    );

    // The CLI's export (protobuf JSON) reads back and replays against the current code.
    let history = RecordedHistory::from_json(exported.as_bytes(), "the CLI's export").unwrap();
    assert_eq!(
        history.format(),
        Some(osp_testkit::HistoryFormat::ProtoJson)
    );
    assert_eq!(history.workflow_type(), Some("createServiceWorkflow"));
    assert_eq!(history.activities(), ["createEntity"]);
    Replayer::new()
        .workflow::<CreateServiceWorkflow>()
        .replay(history)
        .await
        .unwrap();
    if let Some(dir) = std::env::var_os("OSP_RECORD_HISTORIES") {
        std::fs::write(
            std::path::Path::new(&dir).join("create_service.cli.json"),
            exported,
        )
        .unwrap();
    }
}

/// Starts the workflow with `input` and expects it to fail at once naming `field`, having
/// scheduled no activity and written nothing.
async fn refused(input: ServiceData, field: &str) {
    let env = test_env().await.unwrap();
    let (failure, history) = env
        .worker()
        .workflow::<CreateServiceWorkflow>()
        .activities(env.platform().build().unwrap())
        .run_until(async {
            let workflow = env.start(CreateServiceWorkflow::run, input).await?;
            let failure = workflow.failure().await?;
            Ok::<_, TestError>((failure, workflow.history().await?))
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        failure.type_name.as_deref(),
        Some(INVALID_INPUT),
        "{failure}"
    );
    assert!(failure.non_retryable, "{failure}");
    assert!(failure.message.contains(&format!("{field}: ")), "{failure}");
    assert!(
        history.activities().is_empty(),
        "{:?}",
        history.activities()
    );
    assert_eq!(count(&env, "select count(*) from public.services").await, 0);
}

#[tokio::test]
async fn an_empty_name_is_refused_before_anything_is_written() {
    refused(data(""), "name").await;
}

#[tokio::test]
async fn a_201_character_name_is_refused_before_anything_is_written() {
    refused(data(&"x".repeat(201)), "name").await;
}

#[tokio::test]
async fn a_service_schema_with_shell_metacharacters_is_refused() {
    let mut input = data("billing");
    input.service_schema = Some("billing; rm -rf / $(id)".to_owned());
    refused(input, "service_schema").await;
}

#[tokio::test]
async fn a_deadline_error_says_which_activity_the_workflow_waits_for() {
    // A replacement that takes a while: the helper waits as long as its deadline allows and
    // no longer, and says what the workflow was waiting for.
    let env = test_env().await.unwrap();
    let started = Calls::new();
    let error = env
        .worker()
        .workflow::<CreateServiceWorkflow>()
        .replace(
            osp_core::activities::defs::CreateEntity,
            started.record(|_input: ServiceData| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                Err(osp_testkit::non_retryable("Slow", "never returns in time"))
            }),
        )
        .run_until(async {
            let workflow = env.start(CreateServiceWorkflow::run, data("slow")).await?;
            started.wait_for(1, env.deadline()).await?;
            workflow.result_within(Duration::from_millis(300)).await
        })
        .await
        .unwrap()
        .unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, TestError::Deadline { .. }), "{text}");
    assert!(text.contains("activity createEntity"), "{text}");
    assert!(text.contains("attempt 1"), "{text}");
}
