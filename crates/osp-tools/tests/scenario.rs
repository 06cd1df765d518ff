//! `osp-tools scenario bootstrap --count N` against a running stack: the real
//! `osp-bridge` binary turns the requests into workflow starts, a test worker with the real
//! activities runs them, and the command reports every one completed, with timings.
//! (`make test` builds `osp-bridge` before running tests; alone, build it first.)

use std::time::Duration;

use osp_testkit::{OspProcess, osp_binary, test_env};
use osp_workflows::OrganizationBootstrapWorkflow;

const TOOLS: &str = env!("CARGO_BIN_EXE_osp-tools");

#[tokio::test]
async fn the_bootstrap_scenario_reports_every_request_completed() {
    let env = test_env().await.unwrap();
    // The seeded route sends bootstraps to `osp-queue`; this test's worker polls its own.
    env.db()
        .await
        .unwrap()
        .execute(
            "update osp_metadata.workflow_routes set task_queue = $1",
            &[&env.task_queue()],
        )
        .await
        .unwrap();
    let settings = [
        ("TEMPORAL_ADDRESS", env.temporal_address()),
        ("DATABASE_URL", env.pooled_database_url()),
        ("LISTEN_DATABASE_URL", env.database_url()),
        ("LOG_FORMAT", "json".to_owned()),
        ("OSP_SHUTDOWN_GRACE_SECONDS", "1".to_owned()),
    ];
    let mut bridge = OspProcess::start(
        &osp_binary("osp-bridge").unwrap(),
        &settings,
        &env.scratch_dir().join("bridge.log"),
    )
    .unwrap();
    bridge.wait_ready(Duration::from_secs(60)).await.unwrap();

    let output = env
        .worker()
        .workflow::<OrganizationBootstrapWorkflow>()
        .platform_activities()
        .run_until(
            tokio::process::Command::new(TOOLS)
                .args(["scenario", "bootstrap", "--count", "5", "--timeout", "60"])
                .env("DATABASE_URL", env.database_url())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    eprintln!("{stdout}");
    assert!(
        output.status.success(),
        "{}\n{stdout}\n{}\nbridge log:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        bridge.log()
    );
    assert!(
        stdout.contains("5 requested, 5 completed, 0 failed, 0 unfinished"),
        "{stdout}"
    );
    assert!(stdout.contains("p50 "), "{stdout}");
    bridge.stop(Duration::from_secs(15)).await.unwrap();
}

#[test]
fn the_command_line_is_checked_before_anything_runs() {
    for (args, expected) in [
        (
            &["scenario", "bootstrap"][..],
            "required arguments were not provided:\n  --count <N>",
        ),
        (
            &["scenario", "bootstrap", "--count", "0"][..],
            "invalid value '0' for '--count <N>'",
        ),
        (
            &["scenario", "bootstrap", "--count"][..],
            "a value is required for '--count <N>'",
        ),
        (
            &["scenario", "nothing"][..],
            "unrecognized subcommand 'nothing'",
        ),
        (
            &["bench", "--workflows", "0"][..],
            "invalid value '0' for '--workflows <N>'",
        ),
    ] {
        let output = std::process::Command::new(TOOLS)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(stderr.contains("--help"), "{stderr}");
    }
}
