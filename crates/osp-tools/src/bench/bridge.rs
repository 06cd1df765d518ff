//! The bridge scenario: the real `osp-bridge` binary, four ways (LISTEN on a direct
//! connection; sweeps only, LISTEN pointed at the transaction-mode PgBouncer where
//! notifications never arrive; queries through PgBouncer with LISTEN direct, the Supabase
//! shape; two bridges on the same queue, LISTEN direct). Each run measures the raw start
//! rate on the server as it is then, drains a backlog queued before the bridge started (its
//! sustained throughput, against that raw rate), then sends the same start request straight
//! to Temporal at R, half that raw rate, for T seconds (the baseline) and takes bootstrap
//! events emitted at R for T seconds through the bridge (its latency, against the baseline's).
//! The dev server slows as executions accumulate over the run, so each run's yardsticks are
//! its own. Latencies come from the database's and Temporal's own timestamps.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use osp_activities::events::{NewEvent, append};
use osp_core::events::{
    ORGANIZATION_BOOTSTRAP_INITIATED, ORGANIZATION_BOOTSTRAP_WORKFLOW_STARTED, ORGANIZATION_STREAM,
    WORKFLOW_QUEUE_PENDING,
};
use serde::Serialize;
use serde_json::{Value, json};
use temporalio_client::Client;
use tokio::time::Instant;
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::ceiling::{LoopFigures, RAW_START_TYPE, bootstrap_input, raw_start_rate};
use super::drive::{RunOutcome, closed_loop, open_loop};
use super::machine::{ProcessTable, machine_cpu_seconds, run_queue_wait_seconds, usage};
use super::stats::{Summary, summarize};
use super::temporal::{epoch_seconds, raw_start, start_times};
use super::worker::start_measured;
use super::{BenchError, Options, SETTLE_DEADLINE, progress};
use osp_stack::{OspProcess, Stack, metric_total, metric_value};

/// Raw starts of the baseline go here; nobody polls it.
const BASELINE_QUEUE: &str = "osp-bench-raw-paced";
/// The workflow type the seeded route starts.
const BOOTSTRAP_TYPE: &str = osp_core::workflows::ORGANIZATION_BOOTSTRAP_WORKFLOW;
/// Connections the emitter uses: enough that a slow emit never delays the schedule.
const EMITTER_POOL: usize = 16;
/// Emits in flight while queueing the backlog.
const BACKLOG_CONCURRENCY: usize = 8;

/// One way of running the bridge.
#[derive(Debug, Clone, Copy)]
struct Variant {
    name: &'static str,
    /// Where `DATABASE_URL` points.
    pooled: bool,
    /// Where `LISTEN_DATABASE_URL` points: the pooler means no notification ever arrives.
    listen_through_pooler: bool,
    /// Bridge processes on the same queue.
    bridges: usize,
}

const VARIANTS: [Variant; 4] = [
    Variant {
        name: "listen",
        pooled: false,
        listen_through_pooler: false,
        bridges: 1,
    },
    Variant {
        name: "sweeps",
        pooled: false,
        listen_through_pooler: true,
        bridges: 1,
    },
    Variant {
        name: "pgbouncer",
        pooled: true,
        listen_through_pooler: false,
        bridges: 1,
    },
    // Whether a second bridge adds throughput while the database has room.
    Variant {
        name: "two-bridges",
        pooled: false,
        listen_through_pooler: false,
        bridges: 2,
    },
];

/// The same start request straight to Temporal at the bridge's rate.
#[derive(Debug, Clone, Serialize)]
pub struct Baseline {
    pub rate: f64,
    pub seconds: f64,
    pub sent: usize,
    pub ok: usize,
    pub failed: usize,
    /// Request sent to acknowledgement, client side.
    pub ack_ms: Option<Summary>,
    /// Request sent to the execution's start time as the server recorded it.
    pub to_server_start_ms: Option<Summary>,
}

/// A backlog drained by a freshly started bridge.
#[derive(Debug, Clone, Serialize)]
pub struct Drain {
    pub jobs: usize,
    pub started: usize,
    pub failed: usize,
    /// First to last `workflow_started` event.
    pub seconds: f64,
    /// Workflow starts per second over that window.
    pub throughput: f64,
}

/// Events at a fixed rate through the bridge.
#[derive(Debug, Clone, Serialize)]
pub struct Paced {
    pub rate: f64,
    pub seconds: f64,
    pub emitted: usize,
    pub emit_failed: usize,
    pub started: usize,
    pub failed: usize,
    /// Workflow starts per second, first to last start.
    pub throughput: f64,
    /// Commit of the emitting transaction (its commit timestamp, `track_commit_timestamp`)
    /// to the execution's start time recorded by Temporal.
    pub commit_to_server_start_ms: Option<Summary>,
    /// Commit to the `organization.bootstrap.workflow_started` event, which the bridge
    /// writes right after Temporal acknowledged the start: an upper bound of commit to
    /// acknowledgement.
    pub commit_to_started_event_ms: Option<Summary>,
    /// `organization.bootstrap.initiated` to `workflow.queue.pending`: the triggers' time
    /// inside the emitting transaction, not counted above.
    pub initiated_to_pending_ms: Option<Summary>,
    /// `workflow.queue.pending` appended to its transaction's commit, not counted above.
    pub pending_to_commit_ms: Option<Summary>,
    /// Executions Temporal's visibility did not list in time.
    pub missing_in_temporal: usize,
    /// The raw starts sent beside the phase (`--probe-rate`), if any.
    pub probe: Option<Probe>,
}

/// Raw starts from the benchmark's own client during the paced phase: the same request as
/// the baseline's, to the same queue, at a low rate. Their acknowledgement beside the
/// bridge's own start time separates the server's slowdown under the phase's load from
/// anything particular to the bridge's requests or connection.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub rate: f64,
    pub sent: usize,
    pub failed: usize,
    /// Request sent to acknowledgement, client side.
    pub ack_ms: Option<Summary>,
}

/// What one start cost each process over a phase: its CPU time in the phase divided by the
/// starts, in ms; with how busy the machine was (all CPUs, in %).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CostPerStart {
    /// The Temporal dev server (the CLI and anything it started).
    pub temporal_ms: f64,
    /// How long the dev server's threads were ready to run but waited for a CPU, per start
    /// (`None` where the kernel keeps no scheduler statistics): the share of its slowness
    /// that the processes beside it cause.
    pub temporal_waiting_ms: Option<f64>,
    /// The PostgreSQL postmaster and every backend.
    pub postgres_ms: f64,
    pub pgbouncer_ms: f64,
    /// Every bridge process of the run.
    pub bridge_ms: f64,
    /// This benchmark process (the raw-start client, or the observer's polling).
    pub bench_ms: f64,
    pub machine_busy_percent: f64,
}

/// CPU seconds so far of the processes a bridge run involves, and of the machine.
#[derive(Debug, Clone, Copy)]
struct CpuSample {
    temporal: f64,
    temporal_waiting: Option<f64>,
    postgres: f64,
    pgbouncer: f64,
    bridges: f64,
    bench: f64,
    machine_busy: f64,
    machine_all: f64,
}

impl CpuSample {
    fn take(stack: &Stack, bridges: &[u32]) -> Result<Self, BenchError> {
        let table = ProcessTable::read()?;
        let tree = |pid: Option<u32>, what: &str| {
            pid.ok_or_else(|| BenchError::Failed(format!("the {what} has no pid")))
                .and_then(|pid| table.tree_cpu_seconds(pid))
        };
        let (machine_busy, machine_all) = machine_cpu_seconds()?;
        Ok(CpuSample {
            temporal: tree(stack.temporal.pid(), "Temporal dev server")?,
            temporal_waiting: stack.temporal.pid().and_then(run_queue_wait_seconds),
            postgres: tree(stack.postgres.pid(), "PostgreSQL server")?,
            pgbouncer: tree(stack.pgbouncer.pid(), "PgBouncer")?,
            bridges: bridges
                .iter()
                .map(|pid| usage(*pid).map(|u| u.cpu_seconds))
                .sum::<Result<f64, _>>()?,
            bench: usage(std::process::id())?.cpu_seconds,
            machine_busy,
            machine_all,
        })
    }

    /// What each of `starts` cost from `self` to `later`.
    fn per_start(&self, later: &CpuSample, starts: usize) -> CostPerStart {
        let per = |before: f64, after: f64| (after - before) * 1000.0 / starts.max(1) as f64;
        let all = later.machine_all - self.machine_all;
        CostPerStart {
            temporal_ms: per(self.temporal, later.temporal),
            temporal_waiting_ms: self
                .temporal_waiting
                .zip(later.temporal_waiting)
                .map(|(before, after)| per(before, after)),
            postgres_ms: per(self.postgres, later.postgres),
            pgbouncer_ms: per(self.pgbouncer, later.pgbouncer),
            bridge_ms: per(self.bridges, later.bridges),
            bench_ms: per(self.bench, later.bench),
            machine_busy_percent: if all > 0.0 {
                (later.machine_busy - self.machine_busy) / all * 100.0
            } else {
                0.0
            },
        }
    }
}

/// One step inside the bridge over a phase, from its own histograms.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct StepTime {
    /// Statements or requests in the phase.
    pub count: f64,
    /// Their mean duration, in ms (0 when there were none).
    pub mean_ms: f64,
}

/// What each step inside the bridge took over the paced phase, all its processes together:
/// the claim statements (`osp_bridge_claim_seconds`), the start requests
/// (`osp_bridge_temporal_start_seconds`) and the settlement statements
/// (`osp_bridge_settle_seconds`). Means, because a histogram's buckets only bound its
/// percentiles.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct BridgeSteps {
    pub claim: StepTime,
    pub start: StepTime,
    pub settle: StepTime,
}

/// The step histograms' names, in [`BridgeSteps`]' order.
const STEP_SERIES: [&str; 3] = [
    "osp_bridge_claim_seconds",
    "osp_bridge_temporal_start_seconds",
    "osp_bridge_settle_seconds",
];

/// Each step histogram's count and sum so far, summed over the bridge processes.
#[derive(Debug, Clone, Copy, Default)]
struct StepSample([(f64, f64); 3]);

impl StepSample {
    async fn take(bridges: &[(OspProcess, u32)]) -> Result<Self, BenchError> {
        let mut sample = StepSample::default();
        for (bridge, pid) in bridges {
            let text = scrape(bridge, *pid).await?;
            for (totals, series) in sample.0.iter_mut().zip(STEP_SERIES) {
                let value = |suffix: &str| {
                    let name = format!("{series}_{suffix}");
                    metric_value(&text, &name).ok_or_else(|| {
                        BenchError::Failed(format!("bridge {pid}: /metrics lists no {name}"))
                    })
                };
                totals.0 += value("count")?;
                totals.1 += value("sum")?;
            }
        }
        Ok(sample)
    }

    /// The steps from `earlier` to `self`.
    fn since(&self, earlier: &StepSample) -> BridgeSteps {
        let step = |i: usize| {
            let count = self.0[i].0 - earlier.0[i].0;
            let seconds = self.0[i].1 - earlier.0[i].1;
            StepTime {
                count,
                mean_ms: if count > 0.0 {
                    seconds / count * 1000.0
                } else {
                    0.0
                },
            }
        };
        BridgeSteps {
            claim: step(0),
            start: step(1),
            settle: step(2),
        }
    }
}

/// One bridge run.
#[derive(Debug, Clone, Serialize)]
pub struct VariantResults {
    pub variant: &'static str,
    /// Bridge processes sharing the queue.
    pub bridges: usize,
    pub database_url: &'static str,
    pub listen_database_url: &'static str,
    pub ready_ms: f64,
    /// Raw starts (closed loop, as many in flight as the bridge may have) measured right
    /// before the drain, on the server as it is then: the drain's own yardstick, since the
    /// dev server slows as executions accumulate over the run.
    pub raw_before_drain: LoopFigures,
    /// What each raw start of that run cost, for comparison with the drain's.
    pub raw_cost: CostPerStart,
    pub drain: Drain,
    /// What each start of the drain cost (bridges ready to the last job settled).
    pub drain_cost: CostPerStart,
    /// The bridge's own steps over the drain.
    pub drain_steps: BridgeSteps,
    /// Raw starts at the paced rate, right before the paced phase: its latency yardstick.
    pub baseline: Baseline,
    pub paced: Paced,
    /// The bridge's own steps over the paced phase.
    pub paced_steps: BridgeSteps,
    /// Bridge CPU (all its processes) from ready to the end of the paced phase, per
    /// workflow started, in ms.
    pub cpu_ms_per_start: f64,
    /// The largest peak RSS of its processes.
    pub peak_rss_mib: f64,
}

/// The whole bridge scenario.
#[derive(Debug, Clone, Serialize)]
pub struct BridgeResults {
    pub variants: Vec<VariantResults>,
    /// `OSP_BRIDGE_MAX_IN_FLIGHT` of every bridge run.
    pub bridge_in_flight: usize,
    pub sweep_ms: Option<u64>,
    /// Whether the dev server was restarted, empty, before each variant (the default;
    /// `--shared-server` runs them all on one).
    pub fresh_server: bool,
}

impl BridgeResults {
    pub fn json_lines(&self) -> Vec<Value> {
        let mut lines = Vec::new();
        for variant in &self.variants {
            lines.push(json!({
                "scenario": format!("bridge.{}", variant.variant),
                "bridge_in_flight": self.bridge_in_flight,
                "fallback_sweep_ms": self.sweep_ms,
                "fresh_server": self.fresh_server,
                "figures": variant,
            }));
        }
        lines
    }
}

/// Emits bootstrap requests the way a client does: one `api.emit_domain_event` per request.
#[derive(Clone)]
struct Emitter {
    pool: deadpool_postgres::Pool,
}

impl Emitter {
    async fn emit(&self, organization: Uuid) -> Result<(), String> {
        let client = self.pool.get().await.map_err(|error| error.to_string())?;
        let event = NewEvent::new(
            ORGANIZATION_STREAM,
            organization,
            ORGANIZATION_BOOTSTRAP_INITIATED,
            bootstrap_input(organization),
        );
        append(&**client, &event)
            .await
            .map(drop)
            .map_err(|error| osp_stack::error_chain(&error))
    }
}

/// The bridge's `/metrics` body.
async fn scrape(bridge: &OspProcess, pid: u32) -> Result<String, BenchError> {
    let (status, text) = bridge
        .get("/metrics")
        .await
        .map_err(|error| BenchError::Failed(format!("bridge {pid}: /metrics: {error}")))?;
    if status != 200 {
        return Err(BenchError::Failed(format!(
            "bridge {pid}: /metrics answered {status}"
        )));
    }
    Ok(text)
}

/// The jobs `bridges` have seen to an end so far by their own counters: starts Temporal
/// acknowledged (started or already existing) and jobs failed, summed over the processes.
async fn bridge_outcomes(bridges: &[(OspProcess, u32)]) -> Result<usize, BenchError> {
    let mut outcomes = 0.0;
    for (bridge, pid) in bridges {
        let text = scrape(bridge, *pid).await?;
        outcomes += metric_total(&text, "osp_bridge_workflows_started_total")
            + metric_total(&text, "osp_bridge_jobs_failed_total");
    }
    // Counters of whole jobs, so the float holds an exact integer.
    Ok(outcomes as usize)
}

/// How often the settlement of a batch of jobs is checked.
const SETTLED_POLL: Duration = Duration::from_millis(100);

/// How often the projection is read while the bridges' counters say jobs are still open
/// (see [`Observer::wait_settled`]).
const COUNTED_PROJECTION_POLL: Duration = Duration::from_secs(1);

/// Reads the queue and the event store.
struct Observer {
    db: tokio_postgres::Client,
}

/// One stream's timestamps, seconds since the epoch.
#[derive(Debug, Default, Clone)]
struct StreamTimes {
    workflow_id: Option<String>,
    initiated: Option<f64>,
    pending: Option<f64>,
    /// When the emitting transaction committed (`track_commit_timestamp`).
    committed: Option<f64>,
    started: Option<f64>,
}

impl Observer {
    /// `(completed, failed)` jobs among `streams`.
    async fn settled(&self, streams: &[Uuid]) -> Result<(usize, usize), BenchError> {
        let row = self
            .db
            .query_typed(
                "select count(*) filter (where status = 'completed'),
                        count(*) filter (where status = 'failed')
                 from public.workflow_queue_projection where stream_id = any($1)",
                &[(&streams, Type::UUID_ARRAY)],
            )
            .await?;
        let count = |i: usize| {
            row.first()
                .map_or(0, |r| usize::try_from(r.get::<_, i64>(i)).unwrap_or(0))
        };
        Ok((count(0), count(1)))
    }

    /// Waits until every job of `streams` is completed or failed, or the deadline passes,
    /// reading the projection every 100 ms. With `bridges` (jobs queued before they
    /// started, so that their counters count these only) it reads the bridges' `/metrics`
    /// instead, and the projection once the counters account for every job, or once a
    /// second in case they miss one: reading the projection for a thousand streams every
    /// 100 ms cost PostgreSQL 2–4 ms a time, up to a third of its CPU in a drain, taken
    /// from the cores the server needs.
    async fn wait_settled(
        &self,
        streams: &[Uuid],
        bridges: &[(OspProcess, u32)],
    ) -> Result<(usize, usize), BenchError> {
        let give_up = Instant::now() + SETTLE_DEADLINE;
        let interval = if bridges.is_empty() {
            SETTLED_POLL
        } else {
            COUNTED_PROJECTION_POLL
        };
        let mut read_at = Instant::now();
        loop {
            let now = Instant::now();
            if now >= read_at || bridge_outcomes(bridges).await? >= streams.len() {
                let (completed, failed) = self.settled(streams).await?;
                if completed + failed >= streams.len() || now >= give_up {
                    return Ok((completed, failed));
                }
                read_at = now + interval;
            }
            tokio::time::sleep(SETTLED_POLL).await;
        }
    }

    async fn times(&self, streams: &[Uuid]) -> Result<HashMap<Uuid, StreamTimes>, BenchError> {
        let mut times: HashMap<Uuid, StreamTimes> = HashMap::with_capacity(streams.len());
        let rows = self
            .db
            .query_typed(
                "select stream_id,
                        extract(epoch from min(created_at) filter (where event_type = $2))::float8,
                        extract(epoch from min(created_at) filter (where event_type = $3))::float8,
                        extract(epoch from min(created_at) filter (where event_type = $4))::float8,
                        extract(epoch from min(pg_xact_commit_timestamp(xmin))
                                filter (where event_type = $3))::float8
                 from public.domain_events where stream_id = any($1) group by stream_id",
                &[
                    (&streams, Type::UUID_ARRAY),
                    (&ORGANIZATION_BOOTSTRAP_INITIATED, Type::TEXT),
                    (&WORKFLOW_QUEUE_PENDING, Type::TEXT),
                    (&ORGANIZATION_BOOTSTRAP_WORKFLOW_STARTED, Type::TEXT),
                ],
            )
            .await?;
        for row in rows {
            let entry = times.entry(row.get(0)).or_default();
            entry.initiated = row.get(1);
            entry.pending = row.get(2);
            entry.started = row.get(3);
            entry.committed = row.get(4);
        }
        let rows = self
            .db
            .query_typed(
                "select stream_id, workflow_id from public.workflow_queue_projection
                 where stream_id = any($1)",
                &[(&streams, Type::UUID_ARRAY)],
            )
            .await?;
        for row in rows {
            times.entry(row.get(0)).or_default().workflow_id = row.get(1);
        }
        Ok(times)
    }

    /// An RFC 3339 instant a little before now, for Temporal's `StartTime >=` (the database
    /// formats it; this machine's clock is the only clock).
    async fn since(&self) -> Result<String, BenchError> {
        let row = self
            .db
            .query_typed(
                "select to_char((clock_timestamp() - interval '5 seconds') at time zone 'utc',
                                'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
                &[],
            )
            .await?;
        row.first()
            .map(|row| row.get(0))
            .ok_or_else(|| BenchError::Database("no time from the database".to_owned()))
    }
}

fn ms_between(from: Option<f64>, to: Option<f64>) -> Option<f64> {
    Some((to? - from?) * 1000.0)
}

/// Runs the bridge scenario.
pub async fn run(
    stack: &mut Stack,
    client: &Client,
    binary: &Path,
    options: &Options,
) -> Result<BridgeResults, BenchError> {
    let run_id = Uuid::new_v4().simple().to_string();
    let run_id = run_id[..8].to_owned();
    let db = osp_activities::db::connect(&stack.postgres.url("postgres")).await?;
    let observer = Observer { db };
    let emitter = Emitter {
        pool: osp_activities::db::pool(&stack.postgres.url("postgres"), EMITTER_POOL)?,
    };

    let mut variants = Vec::new();
    for variant in VARIANTS {
        // Every execution the bench starts stays open (nobody polls its queues), and a dev
        // server holding thousands spends more per start in each later variant, the drain
        // most (docs/performance.md): an empty server per variant measures each alike.
        if !options.shared_server {
            progress!(
                "bridge {}: restarting the Temporal dev server",
                variant.name
            );
            stack.temporal.stop().await?;
            stack.temporal.start_again().await?;
        }
        variants.push(
            run_variant(
                stack, binary, options, &observer, &emitter, client, variant, &run_id,
            )
            .await?,
        );
    }
    Ok(BridgeResults {
        variants,
        bridge_in_flight: options.bridge_in_flight(),
        sweep_ms: options.sweep_ms,
        fresh_server: !options.shared_server,
    })
}

/// The paced rate of a run whose raw start rate, measured just before it, is `raw`:
/// `--rate` when given, else half of `raw`.
fn paced_rate(options: &Options, raw: f64) -> f64 {
    options.rate.unwrap_or((raw / 2.0).max(1.0)).max(0.1)
}

/// Raw starts at `rate` for `seconds`, straight to Temporal.
async fn baseline(
    client: &Client,
    observer: &Observer,
    variant: Variant,
    rate: f64,
    seconds: f64,
    run_id: &str,
) -> Result<Baseline, BenchError> {
    progress!(
        "bridge {}: baseline: raw starts at {rate:.1}/s for {seconds} s",
        variant.name
    );
    let since = observer.since().await?;
    let id = |i: usize| format!("bench-paced-{run_id}-{}-{i}", variant.name);
    let outcome = raw_starts(client, rate, seconds, id).await;
    let ids: HashSet<String> = outcome
        .ops
        .iter()
        .filter(|op| op.result.is_ok())
        .map(|op| id(op.index))
        .collect();
    let started = start_times(
        client,
        RAW_START_TYPE,
        &since,
        &ids,
        Duration::from_secs(30),
    )
    .await?;
    let to_server: Vec<f64> = outcome
        .ops
        .iter()
        .filter_map(|op| {
            let start = started.get(&id(op.index))?;
            Some((start - epoch_seconds(op.sent)) * 1000.0)
        })
        .collect();
    let figures = Baseline {
        rate,
        seconds,
        sent: outcome.ops.len(),
        ok: outcome.ok(),
        failed: outcome.failed(),
        ack_ms: summarize(&outcome.latencies_ms()),
        to_server_start_ms: summarize(&to_server),
    };
    if let Some(ack) = &figures.ack_ms {
        progress!(
            "bridge {}: baseline: ack p50 {:.1} ms, p99 {:.1} ms ({} failed)",
            variant.name,
            ack.p50,
            ack.p99,
            figures.failed
        );
    }
    Ok(figures)
}

#[expect(
    clippy::too_many_arguments,
    reason = "one call site; a struct would only rename them"
)]
async fn run_variant(
    stack: &Stack,
    binary: &Path,
    options: &Options,
    observer: &Observer,
    emitter: &Emitter,
    client: &Client,
    variant: Variant,
    run_id: &str,
) -> Result<VariantResults, BenchError> {
    let direct = stack.postgres.url("postgres");
    let pooled = stack.pgbouncer.url("postgres");
    let mut env = vec![
        ("TEMPORAL_ADDRESS", stack.temporal.address()),
        (
            "DATABASE_URL",
            if variant.pooled {
                pooled.clone()
            } else {
                direct.clone()
            },
        ),
        (
            "LISTEN_DATABASE_URL",
            if variant.listen_through_pooler {
                pooled.clone()
            } else {
                direct.clone()
            },
        ),
        ("LOG_FORMAT", "json".to_owned()),
        ("RUST_LOG", "warn".to_owned()),
        ("OSP_SHUTDOWN_GRACE_SECONDS", "5".to_owned()),
    ];
    env.push((
        "OSP_BRIDGE_MAX_IN_FLIGHT",
        options.bridge_in_flight().to_string(),
    ));
    if let (Some(sweep), true) = (options.sweep_ms, variant.listen_through_pooler) {
        env.push(("OSP_BRIDGE_FALLBACK_SWEEP_INTERVAL_MS", sweep.to_string()));
    }
    env.extend(
        options
            .bridge_env
            .iter()
            .map(|(key, value)| (key.as_str(), value.clone())),
    );

    // The backlog is queued before the bridge exists, so the drain measures the bridge alone.
    let backlog_size = options.backlog;
    progress!(
        "bridge {}: queueing a backlog of {backlog_size} bootstrap events",
        variant.name
    );
    let backlog: Vec<Uuid> = (0..backlog_size).map(|_| Uuid::new_v4()).collect();
    let queued = closed_loop(backlog_size, BACKLOG_CONCURRENCY, |i| {
        let organization = backlog.get(i).copied().unwrap_or_else(Uuid::new_v4);
        async move { emitter.emit(organization).await }
    })
    .await;
    if let Some(error) = queued.first_error() {
        return Err(BenchError::Failed(format!("queueing the backlog: {error}")));
    }

    let before_raw = CpuSample::take(stack, &[])?;
    let raw_before_drain = raw_start_rate(
        client,
        backlog_size,
        options.bridge_in_flight(),
        &format!("{}-{}", variant.name, Uuid::new_v4().simple()),
    )
    .await;
    let raw_cost = before_raw.per_start(&CpuSample::take(stack, &[])?, raw_before_drain.ok);

    let mut bridges = Vec::new();
    let mut ready = Duration::ZERO;
    let mut at_ready = 0.0;
    for index in 0..variant.bridges {
        let log = stack
            .postgres
            .root_dir()
            .join(format!("bench-bridge-{}-{index}.log", variant.name));
        let (bridge, ready_after) = start_measured(binary, &env, &log).await?;
        let pid = bridge
            .pid()
            .ok_or_else(|| BenchError::Failed("the bridge has no pid".to_owned()))?;
        at_ready += usage(pid)?.cpu_seconds;
        ready = ready.max(ready_after);
        progress!(
            "bridge {}: process {index} ready in {} ms (pid {pid}, log {})",
            variant.name,
            ready_after.as_millis(),
            log.display()
        );
        bridges.push((bridge, pid));
    }
    progress!("bridge {}: draining the backlog", variant.name);
    let pids: Vec<u32> = bridges.iter().map(|(_, pid)| *pid).collect();
    let before_drain = CpuSample::take(stack, &pids)?;
    let steps_at_ready = StepSample::take(&bridges).await?;
    let (drained, drain_failed) = observer.wait_settled(&backlog, &bridges).await?;
    let drain_cost = before_drain.per_start(&CpuSample::take(stack, &pids)?, drained);
    let drain_steps = StepSample::take(&bridges).await?.since(&steps_at_ready);
    let backlog_times = observer.times(&backlog).await?;
    let starts: Vec<f64> = backlog_times.values().filter_map(|t| t.started).collect();
    let first = starts.iter().copied().fold(f64::INFINITY, f64::min);
    let last = starts.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let window = (last - first).max(0.0);
    let drain = Drain {
        jobs: backlog_size,
        started: drained,
        failed: drain_failed,
        seconds: window,
        throughput: if window > 0.0 {
            (starts.len().saturating_sub(1)) as f64 / window
        } else {
            0.0
        },
    };
    progress!(
        "bridge {}: drained {} of {backlog_size} at {:.1} starts/s",
        variant.name,
        drain.started,
        drain.throughput
    );

    // The paced phase's rate and its yardstick, on the server as the drain left it: the
    // raw starts at the same rate run right before it, with the bridge idle.
    let rate = paced_rate(options, raw_before_drain.throughput);
    let baseline = baseline(client, observer, variant, rate, options.seconds, run_id).await?;
    let steps_before = StepSample::take(&bridges).await?;
    let paced = paced(
        observer,
        emitter,
        client,
        variant,
        rate,
        options.seconds,
        options.probe_rate,
        run_id,
    )
    .await;
    // Stopped whatever the samples say: a bridge left running would skew the next run.
    let steps_after = StepSample::take(&bridges).await;
    let mut cpu_after = 0.0;
    let mut peak_rss_kib = 0;
    for (_, pid) in &bridges {
        let after = usage(*pid)?;
        cpu_after += after.cpu_seconds;
        peak_rss_kib = peak_rss_kib.max(after.peak_rss_kib);
    }
    for (bridge, _) in &mut bridges {
        stop(bridge, variant.name).await;
    }
    let paced = paced?;
    let paced_steps = steps_after?.since(&steps_before);
    let starts_total = (drain.started + paced.started).max(1);
    Ok(VariantResults {
        variant: variant.name,
        bridges: variant.bridges,
        database_url: if variant.pooled {
            "pgbouncer"
        } else {
            "direct"
        },
        listen_database_url: if variant.listen_through_pooler {
            "pgbouncer"
        } else {
            "direct"
        },
        ready_ms: ready.as_secs_f64() * 1000.0,
        raw_before_drain,
        raw_cost,
        drain,
        drain_cost,
        drain_steps,
        baseline,
        paced,
        paced_steps,
        cpu_ms_per_start: (cpu_after - at_ready) * 1000.0 / starts_total as f64,
        peak_rss_mib: peak_rss_kib as f64 / 1024.0,
    })
}

async fn stop(bridge: &mut OspProcess, name: &str) {
    if let Err(error) = bridge.stop(Duration::from_secs(15)).await {
        progress!("bridge {name}: did not stop cleanly: {error}");
    }
}

/// Raw starts of the baseline's request at `rate` for `seconds`, the i-th with workflow id
/// `id(i)`, to a queue nobody polls.
async fn raw_starts(
    client: &Client,
    rate: f64,
    seconds: f64,
    id: impl Fn(usize) -> String,
) -> RunOutcome<()> {
    open_loop(rate, seconds, |i| {
        let workflow_id = id(i);
        async move {
            raw_start(
                client,
                RAW_START_TYPE,
                BASELINE_QUEUE,
                workflow_id,
                &bootstrap_input(Uuid::new_v4()),
            )
            .await
        }
    })
    .await
}

/// Events at `rate` for `seconds` through the running bridge; with `probe_rate`, raw starts
/// from this client beside them, whose acknowledgement tells how fast the server answers
/// anyone while the bridge's load shares the machine with it.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site; a struct would only rename them"
)]
async fn paced(
    observer: &Observer,
    emitter: &Emitter,
    client: &Client,
    variant: Variant,
    rate: f64,
    seconds: f64,
    probe_rate: Option<f64>,
    run_id: &str,
) -> Result<Paced, BenchError> {
    progress!(
        "bridge {}: emitting at {rate:.1}/s for {seconds} s",
        variant.name
    );
    let since = observer.since().await?;
    let total = (rate * seconds).floor().max(1.0) as usize;
    let streams: Vec<Uuid> = (0..total).map(|_| Uuid::new_v4()).collect();
    let emits = open_loop(rate, seconds, |i| {
        let organization = streams.get(i).copied().unwrap_or_else(Uuid::new_v4);
        async move { emitter.emit(organization).await }
    });
    let probes = async {
        let probe_rate = probe_rate?;
        let id = |i: usize| format!("bench-probe-{run_id}-{}-{i}", variant.name);
        let outcome = raw_starts(client, probe_rate, seconds, id).await;
        Some(Probe {
            rate: probe_rate,
            sent: outcome.ops.len(),
            failed: outcome.failed(),
            ack_ms: summarize(&outcome.latencies_ms()),
        })
    };
    let (outcome, probe) = tokio::join!(emits, probes);
    let emitted: Vec<Uuid> = outcome
        .ops
        .iter()
        .filter(|op| op.result.is_ok())
        .filter_map(|op| streams.get(op.index).copied())
        .collect();
    let (started, failed) = observer.wait_settled(&emitted, &[]).await?;
    let times = observer.times(&emitted).await?;
    let ids: HashSet<String> = times
        .values()
        .filter_map(|t| t.workflow_id.clone())
        .collect();
    let server_starts = start_times(
        client,
        BOOTSTRAP_TYPE,
        &since,
        &ids,
        Duration::from_secs(30),
    )
    .await?;
    let mut to_server = Vec::new();
    let mut to_event = Vec::new();
    let mut triggers = Vec::new();
    let mut commits = Vec::new();
    let mut start_events = Vec::new();
    for t in times.values() {
        let server = t
            .workflow_id
            .as_ref()
            .and_then(|id| server_starts.get(id))
            .copied();
        to_server.extend(ms_between(t.committed, server));
        to_event.extend(ms_between(t.committed, t.started));
        triggers.extend(ms_between(t.initiated, t.pending));
        commits.extend(ms_between(t.pending, t.committed));
        start_events.extend(t.started);
    }
    let first = start_events.iter().copied().fold(f64::INFINITY, f64::min);
    let last = start_events
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    let window = last - first;
    let figures = Paced {
        rate,
        seconds,
        emitted: emitted.len(),
        emit_failed: outcome.failed(),
        started,
        failed,
        throughput: if window > 0.0 {
            start_events.len().saturating_sub(1) as f64 / window
        } else {
            0.0
        },
        commit_to_server_start_ms: summarize(&to_server),
        commit_to_started_event_ms: summarize(&to_event),
        initiated_to_pending_ms: summarize(&triggers),
        pending_to_commit_ms: summarize(&commits),
        missing_in_temporal: ids.len().saturating_sub(server_starts.len()),
        probe,
    };
    if let Some(ack) = figures.probe.as_ref().and_then(|p| p.ack_ms.as_ref()) {
        progress!(
            "bridge {}: probe beside it: ack p50 {:.1} ms, p99 {:.1} ms",
            variant.name,
            ack.p50,
            ack.p99
        );
    }
    if let Some(latency) = &figures.commit_to_started_event_ms {
        progress!(
            "bridge {}: commit to workflow_started p50 {:.1} ms, p99 {:.1} ms; {} started, {} failed",
            variant.name,
            latency.p50,
            latency.p99,
            figures.started,
            figures.failed
        );
    }
    Ok(figures)
}
