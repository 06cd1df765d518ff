//! Where a failing workflow test leaves its evidence: the workflow's history (the Rust
//! client's JSON, which [`crate::RecordedHistory`] reads back and the replayer accepts) and its
//! description (pending activities, their attempts and last failures), one directory per
//! workflow under `OSP_TESTKIT_ARTIFACTS`, else `target/osp-testkit/`, else the temp dir.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt as _;
use temporalio_client::{
    Client, UntypedWorkflow, WorkflowDescribeOptions, WorkflowExecutionInfo,
    WorkflowFetchHistoryOptions, WorkflowHandle,
};
use temporalio_common::protos::temporal::api::history::v1::History;

use crate::env::StartedWorkflow;

/// How long writing the evidence of a panicking test may take.
const DUMP_DEADLINE: Duration = Duration::from_secs(15);

/// The root of all artifacts of this test binary.
pub fn artifacts_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("OSP_TESTKIT_ARTIFACTS") {
        return PathBuf::from(dir);
    }
    // A test runs as target/<profile>/deps/<name>-<hash>: three levels up is `target`.
    std::env::current_exe()
        .ok()
        .and_then(|exe| {
            let deps = exe.parent()?;
            let profile = if deps.ends_with("deps") {
                deps.parent()?
            } else {
                deps
            };
            Some(profile.parent()?.join("osp-testkit"))
        })
        .unwrap_or_else(|| std::env::temp_dir().join("osp-testkit"))
}

/// A file-name-safe version of an id or a test name.
pub(crate) fn file_name(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Writes the history and description of one workflow into `{artifacts}/{test}/{workflow}/`
/// and returns that directory. Best effort, within a deadline: what cannot be fetched is
/// written as the error.
pub(crate) async fn dump(
    client: &Client,
    test: &str,
    workflow_id: &str,
    run_id: Option<&str>,
) -> Option<PathBuf> {
    tokio::time::timeout(DUMP_DEADLINE, dump_now(client, test, workflow_id, run_id))
        .await
        .ok()
        .flatten()
}

async fn dump_now(
    client: &Client,
    test: &str,
    workflow_id: &str,
    run_id: Option<&str>,
) -> Option<PathBuf> {
    let dir = artifacts_dir()
        .join(file_name(test))
        .join(file_name(workflow_id));
    std::fs::create_dir_all(&dir).ok()?;
    let handle = untyped_handle(client, workflow_id, run_id);
    let history = match handle
        .fetch_history(WorkflowFetchHistoryOptions::default())
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(events) => serde_json::to_vec_pretty(&History { events })
            .unwrap_or_else(|error| format!("cannot encode the history: {error}").into_bytes()),
        Err(error) => format!("cannot fetch the history: {error}").into_bytes(),
    };
    let description = match handle.describe(WorkflowDescribeOptions::default()).await {
        Ok(description) => serde_json::to_vec_pretty(description.raw())
            .unwrap_or_else(|error| format!("cannot encode the description: {error}").into_bytes()),
        Err(error) => format!("cannot describe the workflow: {error}").into_bytes(),
    };
    write(&dir.join("history.json"), &history);
    write(&dir.join("description.json"), &description);
    Some(dir)
}

fn write(path: &Path, bytes: &[u8]) {
    if let Err(error) = std::fs::write(path, bytes) {
        tracing::warn!(path = %path.display(), %error, "cannot write a test artifact");
    }
}

pub(crate) fn untyped_handle(
    client: &Client,
    workflow_id: &str,
    run_id: Option<&str>,
) -> WorkflowHandle<Client, UntypedWorkflow> {
    WorkflowHandle::new(
        client.clone(),
        WorkflowExecutionInfo::builder()
            .namespace(client.options().namespace.clone())
            .workflow_id(workflow_id.to_owned())
            .maybe_run_id(run_id.map(str::to_owned))
            .build(),
    )
}

/// Called from the `Drop` of a panicking test's environment: the test's runtime is busy
/// unwinding, so a thread of its own with a runtime and a connection of its own fetches the
/// histories.
pub(crate) fn dump_on_panic(address: &str, test: &str, started: &[StartedWorkflow]) {
    let address = address.to_owned();
    let test = test.to_owned();
    let started = started.to_vec();
    let name = test.clone();
    let outcome = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        runtime.block_on(async {
            tokio::time::timeout(DUMP_DEADLINE, async {
                let client = osp_stack::local_client(&address, "osp-testkit-artifacts")
                    .await
                    .ok()?;
                let mut dirs = Vec::new();
                for workflow in &started {
                    if let Some(dir) = dump(
                        &client,
                        &test,
                        &workflow.workflow_id,
                        workflow.run_id.as_deref(),
                    )
                    .await
                    {
                        dirs.push(dir);
                    }
                }
                Some(dirs)
            })
            .await
            .ok()
            .flatten()
        })
    })
    .join();
    if let Ok(Some(dirs)) = outcome {
        let mut stderr = std::io::stderr();
        for dir in dirs {
            let _ = writeln!(
                stderr,
                "osp-testkit: {name} failed; history and description of its workflow in {}",
                dir.display()
            );
        }
    }
}
