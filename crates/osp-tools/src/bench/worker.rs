//! The worker scenario: the real `osp-worker` binary on its own task queue, N
//! `createServiceWorkflow` executions with C in flight. Its process is measured from outside:
//! spawn to `/readyz` 200, CPU seconds (`/proc/<pid>/stat`) spent on the workflows, peak RSS
//! (`VmHWM`). [`measure`] does the same for any worker process (the Node peer's too).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use osp_workflows::CreateServiceWorkflow;
use serde::Serialize;
use serde_json::{Value, json};
use temporalio_client::Client;

use super::ceiling::LoopFigures;
use super::drive::closed_loop;
use super::machine::{Usage, usage};
use super::temporal::{ACTIVITY_SLOTS, WORKFLOW_SLOTS, service_data, start_and_wait};
use super::{BenchError, Options, progress};
use osp_stack::Stack;
use osp_stack::{OspProcess, get};

/// The worker's task queue in the benchmark (not `osp-queue`, where the bridge scenario's
/// bootstrap workflows wait unpolled).
pub const WORKER_QUEUE: &str = "osp-bench-worker";
/// How often `/readyz` is asked while the process starts: the ready time is this precise.
const READY_POLL: Duration = Duration::from_millis(5);
const READY_DEADLINE: Duration = Duration::from_secs(60);

/// What the worker did and cost.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerResults {
    /// Which worker: `osp-worker` or `node`.
    pub worker: String,
    /// The program measured (and, for the Node peer, its versions).
    pub binary: String,
    pub run: LoopFigures,
    /// Spawn to the first `/readyz` 200, in ms.
    pub ready_ms: f64,
    /// CPU spent until ready, in ms.
    pub startup_cpu_ms: f64,
    /// CPU spent from ready to the last result, per workflow, in ms.
    pub cpu_ms_per_workflow: f64,
    /// Peak resident memory over the process's life, MiB.
    pub peak_rss_mib: f64,
    /// Resident memory after the run, MiB.
    pub rss_after_mib: f64,
}

impl WorkerResults {
    /// The result line of `scenario` (`worker.create_service`, `node.create_service`).
    pub fn json_line(&self, scenario: &str) -> Value {
        json!({
            "scenario": scenario,
            "workflow": "createServiceWorkflow",
            "worker": self.worker,
            "figures": self,
        })
    }
}

/// Spawns `binary` with `env` and polls `/readyz` every [`READY_POLL`]; returns the process
/// and the time from spawn to ready.
pub async fn start_measured(
    binary: &Path,
    env: &[(&str, String)],
    log: &Path,
) -> Result<(OspProcess, Duration), BenchError> {
    let clock = Instant::now();
    let mut process = OspProcess::start(binary, env, log)?;
    loop {
        if let Ok((200, _)) = get(process.health_port(), "/readyz").await {
            return Ok((process, clock.elapsed()));
        }
        if clock.elapsed() > READY_DEADLINE {
            // Let the process's own wait produce the error with the end of its log.
            process.wait_ready(Duration::from_millis(1)).await?;
            return Err(BenchError::Failed(format!(
                "{} not ready after {READY_DEADLINE:?}",
                binary.display()
            )));
        }
        tokio::time::sleep(READY_POLL).await;
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Runs the worker scenario.
pub async fn run(
    stack: &Stack,
    client: &Client,
    binary: &Path,
    options: &Options,
) -> Result<WorkerResults, BenchError> {
    let mut env = vec![
        ("TEMPORAL_ADDRESS", stack.temporal.address()),
        ("TEMPORAL_TASK_QUEUE", WORKER_QUEUE.to_owned()),
        ("DATABASE_URL", stack.postgres.url("postgres")),
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
        ("OSP_SHUTDOWN_GRACE_SECONDS", "5".to_owned()),
        // The ceiling worker's slots (`--worker-env` may still change them).
        (
            "OSP_MAX_CONCURRENT_WORKFLOW_TASKS",
            WORKFLOW_SLOTS.to_string(),
        ),
        ("OSP_MAX_CONCURRENT_ACTIVITIES", ACTIVITY_SLOTS.to_string()),
    ];
    env.extend(
        options
            .worker_env
            .iter()
            .map(|(key, value)| (key.as_str(), value.clone())),
    );
    measure(
        client,
        &Subject {
            worker: "osp-worker",
            program: binary,
            description: binary.display().to_string(),
            env: &env,
            task_queue: WORKER_QUEUE,
            log: stack.postgres.root_dir().join("bench-worker.log"),
        },
        options,
    )
    .await
}

/// A worker process to measure.
#[derive(Debug)]
pub struct Subject<'a> {
    /// Its name in progress lines, workflow ids and the results.
    pub worker: &'static str,
    /// What is spawned: a binary, or a script with a `#!` line.
    pub program: &'a Path,
    /// What the results call it.
    pub description: String,
    /// Its whole environment (besides `PATH` and `HEALTH_CHECK_PORT`).
    pub env: &'a [(&'a str, String)],
    /// The task queue it polls; nothing else does.
    pub task_queue: &'static str,
    pub log: PathBuf,
}

/// Spawns `subject`, waits for its `/readyz`, runs `options.workflows`
/// `createServiceWorkflow` on its task queue with `options.concurrency` in flight, and
/// measures its process: ready time, CPU from ready to the last result, peak RSS.
pub async fn measure(
    client: &Client,
    subject: &Subject<'_>,
    options: &Options,
) -> Result<WorkerResults, BenchError> {
    let (n, c) = (options.workflows, options.concurrency);
    let (name, queue, log) = (subject.worker, subject.task_queue, &subject.log);
    progress!("{name}: starting {} on {queue}", subject.program.display());
    let (mut worker, ready) = start_measured(subject.program, subject.env, log).await?;
    let pid = worker
        .pid()
        .ok_or_else(|| BenchError::Failed(format!("{name} has no pid")))?;
    let at_ready: Usage = usage(pid)?;
    progress!(
        "{name}: ready in {} ms (pid {pid}, log {}); {n} createServiceWorkflow, {c} in flight",
        ready.as_millis(),
        log.display()
    );
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let run_id = &run_id[..8];
    let outcome = closed_loop(n, c, |i| {
        start_and_wait(
            client,
            CreateServiceWorkflow::run,
            service_data(run_id, i),
            queue,
            format!("bench-{name}-{run_id}-{i}"),
        )
    })
    .await;
    let after: Usage = usage(pid)?;
    let figures = LoopFigures::from_outcome(&outcome, c);
    let cpu_ms_per_workflow =
        (after.cpu_seconds - at_ready.cpu_seconds) * 1000.0 / figures.ok.max(1) as f64;
    progress!(
        "{name}: {:.1} workflows/s, {cpu_ms_per_workflow:.2} ms CPU each ({} failed)",
        figures.throughput,
        figures.failed
    );
    if let Err(error) = worker.stop(Duration::from_secs(15)).await {
        progress!("{name}: did not stop cleanly: {error}");
    }
    Ok(WorkerResults {
        worker: name.to_owned(),
        binary: subject.description.clone(),
        cpu_ms_per_workflow,
        run: figures,
        ready_ms: ready.as_secs_f64() * 1000.0,
        startup_cpu_ms: at_ready.cpu_seconds * 1000.0,
        peak_rss_mib: mib(after.peak_rss_kib),
        rss_after_mib: mib(after.rss_kib),
    })
}
