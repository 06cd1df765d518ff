//! The ceilings: what the same Temporal server allows, so the worker's and the bridge's
//! figures read as fractions of it. A workflow with no activity run by an in-process worker
//! (the cheapest workflow there is), `createServiceWorkflow` with its activity stubbed out
//! (the server's share of the worker's workflow), and raw workflow starts from one client
//! with nobody polling (the server's start rate, the bridge's ceiling).

use osp_workflows::CreateServiceWorkflow;
use serde::Serialize;
use serde_json::{Value, json};
use temporalio_client::Client;

use super::drive::{RunOutcome, closed_loop};
use super::stats::{Summary, summarize};
use super::temporal::{
    BenchNoActivityWorkflow, CeilingWorkload, raw_start, service_data, start_and_wait,
    with_ceiling_worker,
};
use super::{BenchError, Options, progress};

/// Task queues only the benchmark uses; nothing else polls them.
pub const NO_ACTIVITY_QUEUE: &str = "osp-bench-no-activity";
pub const STUB_ACTIVITY_QUEUE: &str = "osp-bench-stub-activity";
/// Nobody polls this one: raw starts stay open until the stack is removed.
pub const RAW_START_QUEUE: &str = "osp-bench-raw";
/// The workflow type raw starts name: the bridge's, so the requests are alike.
pub const RAW_START_TYPE: &str = osp_core::workflows::ORGANIZATION_BOOTSTRAP_WORKFLOW;

/// N operations with C in flight: counts, rate and latency.
#[derive(Debug, Clone, Serialize)]
pub struct LoopFigures {
    pub operations: usize,
    pub concurrency: usize,
    pub ok: usize,
    pub failed: usize,
    pub seconds: f64,
    /// Successful operations per second.
    pub throughput: f64,
    /// Per operation, in ms (client side: start sent to result or acknowledgement).
    pub latency_ms: Option<Summary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl LoopFigures {
    pub fn from_outcome<T>(outcome: &RunOutcome<T>, concurrency: usize) -> Self {
        LoopFigures {
            operations: outcome.ops.len(),
            concurrency,
            ok: outcome.ok(),
            failed: outcome.failed(),
            seconds: outcome.elapsed.as_secs_f64(),
            throughput: outcome.throughput(),
            latency_ms: summarize(&outcome.latencies_ms()),
            first_error: outcome.first_error(),
        }
    }
}

/// The three ceilings.
#[derive(Debug, Clone, Serialize)]
pub struct CeilingResults {
    pub no_activity: LoopFigures,
    pub stub_activity: LoopFigures,
    pub raw_starts: LoopFigures,
}

impl CeilingResults {
    pub fn json_lines(&self) -> Vec<Value> {
        vec![
            json!({"scenario": "ceiling.no_activity", "workflow": "ospBenchNoActivityWorkflow", "worker": "in-process", "figures": self.no_activity}),
            json!({"scenario": "ceiling.stub_activity", "workflow": "createServiceWorkflow", "activity": "createEntity stub", "worker": "in-process", "figures": self.stub_activity}),
            json!({"scenario": "ceiling.raw_starts", "workflow": RAW_START_TYPE, "worker": "none", "figures": self.raw_starts}),
        ]
    }
}

/// Measures the ceilings with `options.workflows` operations, `options.concurrency` in flight.
pub async fn run(client: &Client, options: &Options) -> Result<CeilingResults, BenchError> {
    let (n, c) = (options.workflows, options.concurrency);
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let run_id = &run_id[..8];

    progress!("ceiling: {n} no-activity workflows, {c} in flight, in-process worker");
    let no_activity = with_ceiling_worker(
        client,
        NO_ACTIVITY_QUEUE,
        CeilingWorkload::NoActivity,
        closed_loop(n, c, |i| {
            start_and_wait(
                client,
                BenchNoActivityWorkflow::run,
                service_data(run_id, i),
                NO_ACTIVITY_QUEUE,
                format!("bench-noact-{run_id}-{i}"),
            )
        }),
    )
    .await?;
    let no_activity = LoopFigures::from_outcome(&no_activity, c);
    progress!(
        "ceiling: no activity: {:.1} workflows/s ({} failed)",
        no_activity.throughput,
        no_activity.failed
    );

    progress!("ceiling: {n} createServiceWorkflow with a stub activity, {c} in flight");
    let stub_activity = with_ceiling_worker(
        client,
        STUB_ACTIVITY_QUEUE,
        CeilingWorkload::StubActivity,
        closed_loop(n, c, |i| {
            start_and_wait(
                client,
                CreateServiceWorkflow::run,
                service_data(run_id, i),
                STUB_ACTIVITY_QUEUE,
                format!("bench-stub-{run_id}-{i}"),
            )
        }),
    )
    .await?;
    let stub_activity = LoopFigures::from_outcome(&stub_activity, c);
    progress!(
        "ceiling: stub activity: {:.1} workflows/s ({} failed)",
        stub_activity.throughput,
        stub_activity.failed
    );

    let raw_starts = raw_start_rate(client, n, c, run_id).await;
    Ok(CeilingResults {
        no_activity,
        stub_activity,
        raw_starts,
    })
}

/// `n` raw starts with `c` in flight, on a queue nobody polls.
pub async fn raw_start_rate(client: &Client, n: usize, c: usize, run_id: &str) -> LoopFigures {
    progress!("ceiling: {n} raw workflow starts, {c} in flight, no worker");
    let outcome = closed_loop(n, c, |i| async move {
        let organization = uuid::Uuid::new_v4();
        raw_start(
            client,
            RAW_START_TYPE,
            RAW_START_QUEUE,
            format!("bench-raw-{run_id}-{i}"),
            &bootstrap_input(organization),
        )
        .await
    })
    .await;
    let figures = LoopFigures::from_outcome(&outcome, c);
    progress!(
        "ceiling: raw starts: {:.1} starts/s ({} failed)",
        figures.throughput,
        figures.failed
    );
    figures
}

/// A valid `OrganizationBootstrapInput`, as a client would emit it.
pub fn bootstrap_input(organization: uuid::Uuid) -> Value {
    let simple = organization.simple().to_string();
    json!({
        "organization_id": organization,
        "name": "Bench Organization",
        "subdomain": format!("bench-{}", &simple[..12]),
        "admin_users": [{"email": "admin@bench.example", "name": "Bench Admin"}],
        "plan": "pro"
    })
}
