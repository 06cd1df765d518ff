//! Replay: every recorded history under tests/histories/ (recorded with the Rust client,
//! plus one exported with `temporal workflow show -o json`) replays against the current
//! workflows without a nondeterminism error; and the check does fail on a changed workflow,
//! naming the workflow and the mismatch.
//!
//! To record the histories again (after an intended, versioned change): run the workflows'
//! tests with `OSP_RECORD_HISTORIES=$PWD/crates/osp-workflows/tests/histories`.

use std::time::Duration;

use crate::common::histories_dir;
use osp_core::activities::OspActivities;
use osp_core::payloads::{Service, ServiceData};
use osp_testkit::{HistoryFormat, RecordedHistory, ReplayFailureKind, Replayer, TestError};
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{ActivityOptions, WorkflowContext, WorkflowResult};

#[tokio::test]
async fn every_recorded_history_replays_against_the_current_workflows() {
    let replayed = Replayer::new()
        .osp_workflows()
        .replay_dir(histories_dir())
        .await
        .unwrap();
    let names: Vec<String> = replayed
        .iter()
        .filter_map(|path| path.file_name())
        .map(|name| name.to_string_lossy().into_owned())
        .collect();
    for expected in [
        "bootstrap.json",
        "bootstrap_compensated.json",
        "create_service.cli.json",
        "create_service.json",
        "deploy_worker.json",
        "deploy_worker_failed.json",
    ] {
        assert!(names.iter().any(|name| name == expected), "{names:?}");
    }
}

#[tokio::test]
async fn both_history_formats_are_read() {
    let rust = RecordedHistory::from_file(histories_dir().join("create_service.json")).unwrap();
    let cli = RecordedHistory::from_file(histories_dir().join("create_service.cli.json")).unwrap();
    assert_eq!(rust.format(), Some(HistoryFormat::RustClient));
    assert_eq!(cli.format(), Some(HistoryFormat::ProtoJson));
    for history in [&rust, &cli] {
        assert_eq!(history.workflow_type(), Some("createServiceWorkflow"));
        assert_eq!(history.activities(), ["createEntity"]);
        assert_eq!(
            history.event_types().first().map(String::as_str),
            Some("WorkflowExecutionStarted")
        );
    }
}

/// `createServiceWorkflow` as someone might change it without a patch: an extra activity
/// before `createEntity`. Registered under the same name, it must not replay the old runs.
#[workflow]
#[derive(Debug, Default)]
struct ChangedCreateService;

#[workflow_methods]
impl ChangedCreateService {
    #[run(name = "createServiceWorkflow")]
    async fn run(ctx: &mut WorkflowContext<Self>, input: ServiceData) -> WorkflowResult<Service> {
        let options = || {
            ActivityOptions::with_start_to_close_timeout(Duration::from_secs(30))
                .retry_policy(RetryPolicy::builder().maximum_attempts(3).build())
                .build()
        };
        ctx.execute_activity(
            OspActivities::deactivate_organization,
            osp_core::activities::DeactivateOrganization {
                organization_id: uuid::Uuid::nil(),
                reason: "a step that was not there".to_owned(),
            },
            options(),
        )
        .await?;
        Ok(ctx
            .execute_activity(OspActivities::create_entity, input, options())
            .await?)
    }
}

#[tokio::test]
async fn a_changed_workflow_fails_its_replay_naming_the_workflow_and_the_mismatch() {
    let replayer = Replayer::new().workflow::<ChangedCreateService>();
    for file in ["create_service.json", "create_service.cli.json"] {
        let history = RecordedHistory::from_file(histories_dir().join(file)).unwrap();
        let workflow_id = history.workflow_id().unwrap().to_owned();
        let error = replayer.replay(history).await.unwrap_err();
        let TestError::Replay(mismatch) = &error else {
            panic!("{file}: not a replay mismatch: {error}");
        };
        assert_eq!(mismatch.kind, ReplayFailureKind::Nondeterminism, "{error}");
        assert_eq!(mismatch.workflow_type, "createServiceWorkflow");
        assert_eq!(mismatch.workflow_id, workflow_id);
        let text = error.to_string();
        assert!(text.contains("createServiceWorkflow"), "{text}");
        assert!(text.contains(&workflow_id), "{text}");
        assert!(text.contains(file), "{text}");
        // The SDK names the command the code produced against the event the history holds.
        assert!(
            text.contains("deactivateOrganization") || text.contains("createEntity"),
            "{text}"
        );
        eprintln!("{file}: {text}");
    }
}
