//! `osp-bridge jobs ...` as an operator runs it, the real binary against a running bridge,
//! Postgres and dev server: a job that failed on its route's schema is found with `list`,
//! read with `show`, and after the route is fixed `retry` makes the running bridge start it; a
//! paused route holds a new job pending until `resume`; mistakes exit non-zero saying why.

#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::process::Output;
use std::time::Duration;

use common::{Env, HEAVY, RunningBridge, emit, eventually};
use serde_json::json;
use tokio::process::Command;
use uuid::Uuid;

/// `osp-bridge jobs <args>` with the environment a bridge of `env` gets.
async fn jobs(env: &Env, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_osp-bridge"))
        .arg("jobs")
        .args(args)
        .env_clear()
        .envs(env.env(&env.direct_url, &env.direct_url, &[]))
        .output()
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "{:?}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

async fn status_of(client: &tokio_postgres::Client, stream: Uuid) -> String {
    client
        .query_one(
            "select status from workflow_queue_projection where stream_id = $1",
            &[&stream],
        )
        .await
        .unwrap()
        .get(0)
}

async fn settles_as(client: &tokio_postgres::Client, stream: Uuid, status: &str) {
    eventually(Duration::from_secs(30), status, || async {
        (status_of(client, stream).await == status).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_finds_retries_pauses_and_resumes_without_sql() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let client = env.client().await;
    client
        .batch_execute(
            r#"insert into osp_metadata.workflow_routes
                   (event_type, workflow_type, task_queue, workflow_id_template, input_schema)
               values ('invoice.requested', 'processBilling', 'billing-tasks',
                       'bill-{stream_id}-{event_id}',
                       '{"type": "object", "required": ["period", "currency"]}')"#,
        )
        .await
        .unwrap();
    let bridge = RunningBridge::spawn(env.config(&env.direct_url, &env.direct_url, &[]));

    // The route's schema wants a currency the service's clients do not send yet.
    let account = Uuid::new_v4();
    emit(
        &client,
        account,
        "invoice.requested",
        &json!({"period": "2026-11"}),
    )
    .await;
    settles_as(&client, account, "failed").await;
    let list = stdout(
        &jobs(
            &env,
            &["list", "--status", "failed", "--route", "invoice.requested"],
        )
        .await,
    );
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(lines.len(), 2, "{list}");
    assert!(lines[0].starts_with("JOB "), "{list}");
    assert!(
        lines[1].contains("invalid event_data for processBilling: event_data: \"currency\""),
        "{list}"
    );
    let job = lines[1].split_whitespace().next().unwrap().to_owned();

    let show = stdout(&jobs(&env, &["show", &job]).await);
    assert!(show.contains("status      failed\n"), "{show}");
    // `show` prints the error whole.
    assert!(
        show.contains(
            "error       invalid event_data for processBilling: event_data: \"currency\" is a required property\n"
        ),
        "{show}"
    );
    assert!(
        show.contains("workflow    processBilling on billing-tasks\n"),
        "{show}"
    );
    let chain: Vec<&str> = show
        .lines()
        .skip_while(|line| *line != "events")
        .skip(1)
        .map(|line| line.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(
        chain,
        [
            "invoice.requested",
            "workflow.queue.pending",
            "workflow.queue.claimed",
            "workflow.queue.failed"
        ],
        "{show}"
    );

    // The route is fixed; the retry wakes the running bridge, which starts the job.
    client
        .batch_execute(
            r#"update osp_metadata.workflow_routes set input_schema = '{"type": "object", "required": ["period"]}'
               where event_type = 'invoice.requested'"#,
        )
        .await
        .unwrap();
    let retried = stdout(&jobs(&env, &["retry", &job, "--reason", "currency made optional"]).await);
    assert_eq!(retried, format!("job {job} is pending again\n"));
    settles_as(&client, account, "completed").await;
    // Only a failed job can be retried.
    let again = jobs(&env, &["retry", &job]).await;
    assert_eq!(again.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&again.stderr),
        format!(
            "osp-bridge: api.retry_workflow_job: job {job} is completed; only a failed job can be retried\n"
        )
    );

    // Paused, the route's new job waits, pending; resumed, it starts.
    let paused = stdout(&jobs(&env, &["pause", "invoice.requested"]).await);
    assert_eq!(
        paused,
        "route invoice.requested is paused: its jobs stay pending until it is resumed\n"
    );
    let later = Uuid::new_v4();
    emit(
        &client,
        later,
        "invoice.requested",
        &json!({"period": "2026-12"}),
    )
    .await;
    let pending = stdout(&jobs(&env, &["list", "--status", "pending"]).await);
    assert!(
        pending
            .lines()
            .nth(1)
            .is_some_and(|line| line.contains("invoice.requested")),
        "{pending}"
    );
    assert_eq!(status_of(&client, later).await, "pending");
    let resumed = stdout(&jobs(&env, &["resume", "invoice.requested"]).await);
    assert_eq!(
        resumed,
        "route invoice.requested is resumed: its pending jobs are due again\n"
    );
    settles_as(&client, later, "completed").await;

    // Mistakes: exit codes and messages name what is wrong.
    let missing = Uuid::new_v4();
    let output = jobs(&env, &["retry", &missing.to_string()]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!("osp-bridge: no workflow job {missing}\n")
    );
    let output = jobs(&env, &["list", "--status", "done"]).await;
    assert_eq!(output.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("unknown job status \"done\""),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = jobs(&env, &["pause", "no.such.route"]).await;
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "osp-bridge: no route for event type no.such.route\n"
    );
    bridge.stop().await;
}
