//! The Markdown report: the machine and the command, one table for the worker, the Node peer
//! and the ceilings, OSP's figures as ratios of the Node worker's, one table for the bridge,
//! one for the history scenario (with the store's sizes), and the goals with their measured
//! figures, met or not.

use std::fmt::Write as _;

use super::Options;
use super::Results;
use super::bridge::{BridgeSteps, CostPerStart};
use super::ceiling::LoopFigures;
use super::history::{HistoryResults, RelationSize, ratio, ratio_cell};
use super::machine::Machine;
use super::node_peer::{Comparison, GOAL_FACTOR, ratio_cell as times_cell, tenfold_less};
use super::stats::Summary;
use super::worker::WorkerResults;

/// Versions of the servers the figures were taken against.
#[derive(Debug, Clone, Default)]
pub struct Versions {
    pub postgres: String,
    pub temporal_cli: String,
}

impl Versions {
    /// Asks the database and the `temporal` CLI; unknown parts read `unknown`.
    pub async fn read(db: &tokio_postgres::Client) -> Versions {
        let postgres = match db.query_typed("show server_version", &[]).await {
            Ok(rows) => rows
                .first()
                .map(|row| row.get::<_, String>(0))
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        let temporal_cli = match osp_stack::temporal_cli() {
            Ok(path) => tokio::process::Command::new(path)
                .arg("--version")
                .output()
                .await
                .ok()
                .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
                .unwrap_or_default(),
            Err(_) => String::new(),
        };
        let known = |s: String| {
            if s.is_empty() {
                "unknown".to_owned()
            } else {
                s
            }
        };
        Versions {
            postgres: known(postgres),
            temporal_cli: known(temporal_cli),
        }
    }
}

/// What the report says about the run itself.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub machine: Machine,
    pub load_after: String,
    pub versions: Versions,
    pub seconds: f64,
    /// Wall time of each part of the run, in the order run.
    pub took: Vec<(&'static str, f64)>,
}

fn ms(value: f64) -> String {
    if !value.is_finite() {
        "–".to_owned()
    } else if value.abs() < 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.0}")
    }
}

/// A figure known only sometimes, to two places; `–` when unknown.
fn hundredths(value: Option<f64>) -> String {
    value.map_or_else(|| "–".to_owned(), |value| format!("{value:.2}"))
}

fn triple(summary: Option<&Summary>) -> String {
    summary.map_or_else(
        || "–".to_owned(),
        |s| format!("{} / {} / {}", ms(s.p50), ms(s.p99), ms(s.max)),
    )
}

fn loop_row(out: &mut String, name: &str, figures: &LoopFigures, notes: &str) {
    let (p50, p99, max) = figures
        .latency_ms
        .map_or((f64::NAN, f64::NAN, f64::NAN), |s| (s.p50, s.p99, s.max));
    let _ = writeln!(
        out,
        "| {name} | {:.1} | {} | {} | {} | {} | {notes} |",
        figures.throughput,
        ms(p50),
        ms(p99),
        ms(max),
        figures.failed
    );
}

/// A measured worker process's row: the loop's figures, then what its process cost.
fn worker_row(out: &mut String, name: &str, w: &WorkerResults) {
    loop_row(
        out,
        name,
        &w.run,
        &format!(
            "CPU {:.2} ms per workflow, peak RSS {:.1} MiB ({:.1} after the run), ready {:.0} ms after spawn (startup CPU {:.0} ms)",
            w.cpu_ms_per_workflow, w.peak_rss_mib, w.rss_after_mib, w.ready_ms, w.startup_cpu_ms
        ),
    );
}

/// OSP's figures as ratios of the Node worker's, with the goals.
fn node_section(out: &mut String, osp: Option<&WorkerResults>, node: &WorkerResults) {
    let _ = writeln!(
        out,
        "### OSP / Node
"
    );
    let _ = writeln!(
        out,
        "The Node peer: {}, the seed's stack and concurrency (10 workflow tasks, 10 activities), running the same `createServiceWorkflow` with the same `createEntity` statements on its own task queue, right after `osp-worker`, driven by the same client. Its ready time includes bundling the workflows with the SDK's bundler at `Worker.create`, as the seed's worker did; both are ready under the same rule (database answered, the server lists the worker polling for workflow and activity tasks). Peak RSS is over the process's life; both ran the same workflows, so its ratio is also the ratio per workflow.\n",
        node.binary
    );
    let Some(osp) = osp else {
        let _ = writeln!(out, "No ratios: the worker scenario did not run.\n");
        return;
    };
    let c = Comparison::of(osp, node);
    table_head(
        out,
        &["figure", "`osp-worker`", "Node", "OSP / Node", "goal", ""],
    );
    let goal = format!("≤ {:.2} ({GOAL_FACTOR:.0}x less)", 1.0 / GOAL_FACTOR);
    let rows = [
        (
            "throughput, workflows/s",
            format!("{:.1}", osp.run.throughput),
            format!("{:.1}", node.run.throughput),
            c.throughput,
            None,
        ),
        (
            "CPU per workflow, ms",
            format!("{:.2}", osp.cpu_ms_per_workflow),
            format!("{:.2}", node.cpu_ms_per_workflow),
            c.cpu_per_workflow,
            Some(goal.as_str()),
        ),
        (
            "peak RSS, MiB",
            format!("{:.1}", osp.peak_rss_mib),
            format!("{:.1}", node.peak_rss_mib),
            c.peak_rss,
            Some(goal.as_str()),
        ),
        (
            "spawn → ready, ms",
            ms(osp.ready_ms),
            ms(node.ready_ms),
            c.ready,
            None,
        ),
    ];
    for (figure, ours, theirs, ratio, goal) in rows {
        let _ = writeln!(
            out,
            "| {figure} | {ours} | {theirs} | {} | {} | {} |",
            times_cell(ratio),
            goal.unwrap_or("–"),
            goal.map_or("", |_| verdict(tenfold_less(ratio))),
        );
    }
    let _ = writeln!(out);
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "**met**",
        Some(false) => "missed",
        None => "not measured",
    }
}

/// Where the processes ran, for the report's header and the progress lines.
pub fn cpu_placement(options: &Options) -> String {
    match &options.cpus {
        Some(split) => format!("{split} (`--split-cpus`)"),
        None if options.split_cpus => "every process on the one CPU (nothing to split)".to_owned(),
        None => "every process on every CPU".to_owned(),
    }
}

/// The whole report.
pub fn markdown(results: &Results, options: &Options, info: &RunInfo) -> String {
    let mut out = String::new();
    let m = &info.machine;
    let _ = writeln!(out, "## Latest run\n");
    let _ = writeln!(out, "- Command: `{}`", options.command);
    let _ = writeln!(
        out,
        "- Machine: {} CPUs ({}), {:.1} GiB memory, Linux {}",
        m.cpus, m.cpu_model, m.memory_gib, m.kernel
    );
    let _ = writeln!(out, "- CPUs: {}", cpu_placement(options));
    let _ = writeln!(
        out,
        "- Load average (1, 5, 15 min): {} before, {} after",
        m.load_average, info.load_after
    );
    let _ = writeln!(
        out,
        "- Servers: PostgreSQL {}, {} (`temporal server start-dev`, in-memory), PgBouncer in transaction mode; all on this machine",
        info.versions.postgres, info.versions.temporal_cli
    );
    let parts: Vec<String> = info
        .took
        .iter()
        .map(|(part, seconds)| format!("{part} {seconds:.0} s"))
        .collect();
    let _ = writeln!(out, "- Took {:.0} s ({})\n", info.seconds, parts.join(", "));

    if results.ceiling.is_some() || results.worker.is_some() || results.node.is_some() {
        let _ = writeln!(
            out,
            "### Worker and ceilings: {} workflows, {} in flight\n",
            options.workflows, options.concurrency
        );
        let _ = writeln!(
            out,
            "Latency is client side: start sent to result received (for raw starts: to the acknowledgement).\n"
        );
        table_head(
            &mut out,
            &[
                "run",
                "per second",
                "p50 ms",
                "p99 ms",
                "max ms",
                "failed",
                "notes",
            ],
        );
        if let Some(c) = &results.ceiling {
            loop_row(
                &mut out,
                "ceiling: workflow without activity, in-process worker",
                &c.no_activity,
                "one workflow task per workflow",
            );
            loop_row(
                &mut out,
                "ceiling: `createServiceWorkflow`, stub activity, in-process worker",
                &c.stub_activity,
                "the server's share of the worker's workflow",
            );
            loop_row(
                &mut out,
                "ceiling: raw workflow starts, no worker",
                &c.raw_starts,
                "the bridge's ceiling",
            );
        }
        if let Some(w) = &results.worker {
            worker_row(&mut out, "worker: `createServiceWorkflow`, `osp-worker`", w);
        }
        if let Some(w) = &results.node {
            worker_row(
                &mut out,
                "worker: `createServiceWorkflow`, Node peer (`@temporalio/worker`, `pg`)",
                w,
            );
        }
        let _ = writeln!(out);
        if let Some(node) = &results.node {
            node_section(&mut out, results.worker.as_ref(), node);
        }
    }

    if let Some(b) = &results.bridge {
        let _ = writeln!(
            out,
            "### Bridge: a backlog of {} queued before start, then bootstrap events at {} for {} s\n",
            b.variants.first().map_or(0, |v| v.drain.jobs),
            options.rate.map_or_else(
                || "half the raw start rate".to_owned(),
                |rate| format!("{rate:.1}/s")
            ),
            b.variants.first().map_or(0.0, |v| v.paced.seconds),
        );
        let _ = writeln!(
            out,
            "Each run, in order: \"raw\", the closed-loop raw start rate with as many in flight as the bridge (each run has its own, on the server as the run finds it); the drain, the backlog's starts per second; its baseline, the same start request sent straight to Temporal at the paced rate (send → server start time, send → acknowledgement); then the paced events through the bridge at that rate. Commit is the emitting transaction's commit time (`pg_xact_commit_timestamp`); \"start\" is the execution's start time in Temporal; `workflow_started` is the event the bridge writes once Temporal acknowledged the start. Bridge max in flight: {}; sweeps-only fallback interval: {}; {}.\n",
            b.bridge_in_flight,
            b.sweep_ms
                .map_or_else(|| "default (1000 ms)".to_owned(), |n| format!("{n} ms")),
            if b.fresh_server {
                "the dev server restarted, empty, before each run"
            } else {
                "one dev server for every run, holding the executions of the runs before (`--shared-server`)"
            },
        );
        table_head(
            &mut out,
            &[
                "run",
                "drain /s (raw /s)",
                "paced /s",
                "→ start p50 / p99 / max ms",
                "→ `workflow_started` (≈ ack) p50 / p99 / max ms",
                "ready ms",
                "CPU ms per start",
                "peak RSS MiB",
            ],
        );
        for v in &b.variants {
            let _ = writeln!(
                out,
                "| baseline of {}: raw starts at {:.1}/s | – | – | {} | {} | – | – | – |",
                v.variant,
                v.baseline.rate,
                triple(v.baseline.to_server_start_ms.as_ref()),
                triple(v.baseline.ack_ms.as_ref()),
            );
            let _ = writeln!(
                out,
                "| bridge: {} (DATABASE_URL {}, LISTEN {}{}) | {:.1} ({:.1}) | {:.1} at {:.1} | {} | {} | {:.0} | {:.2} | {:.1} |",
                v.variant,
                v.database_url,
                v.listen_database_url,
                if v.bridges > 1 {
                    format!(", {} processes", v.bridges)
                } else {
                    String::new()
                },
                v.drain.throughput,
                v.raw_before_drain.throughput,
                v.paced.throughput,
                v.paced.rate,
                triple(v.paced.commit_to_server_start_ms.as_ref()),
                triple(v.paced.commit_to_started_event_ms.as_ref()),
                v.ready_ms,
                v.cpu_ms_per_start,
                v.peak_rss_mib,
            );
        }
        cost_table(
            &mut out,
            b.variants
                .iter()
                .map(|v| (v.variant, &v.raw_cost, &v.drain_cost)),
        );
        steps_table(
            &mut out,
            b.variants.iter().flat_map(|v| {
                let drain = StepRow {
                    run: v.variant,
                    phase: "drain",
                    baseline_ack_ms: None,
                    probe_ack_ms: None,
                    steps: &v.drain_steps,
                };
                let paced = StepRow {
                    run: v.variant,
                    phase: "paced",
                    baseline_ack_ms: v.baseline.ack_ms.as_ref().map(|ack| ack.mean),
                    probe_ack_ms: v
                        .paced
                        .probe
                        .as_ref()
                        .and_then(|probe| probe.ack_ms.as_ref())
                        .map(|ack| ack.mean),
                    steps: &v.paced_steps,
                };
                [drain, paced]
            }),
        );
        let failures: Vec<String> = b
            .variants
            .iter()
            .filter(|v| {
                v.drain.failed + v.paced.failed + v.paced.emit_failed + v.paced.missing_in_temporal
                    > 0
                    || v.drain.started < v.drain.jobs
                    || v.paced.started < v.paced.emitted
            })
            .map(|v| {
                format!(
                    "{}: backlog {} of {} started ({} failed); paced {} of {} started ({} failed, {} emits failed, {} not listed by Temporal)",
                    v.variant,
                    v.drain.started,
                    v.drain.jobs,
                    v.drain.failed,
                    v.paced.started,
                    v.paced.emitted,
                    v.paced.failed,
                    v.paced.emit_failed,
                    v.paced.missing_in_temporal
                )
            })
            .collect();
        if !failures.is_empty() {
            let _ = writeln!(out, "\nIncomplete: {}.", failures.join("; "));
        }
        let drain_of = |name: &str| {
            b.variants
                .iter()
                .find(|v| v.variant == name)
                .map(|v| (v.drain.throughput, v.raw_before_drain.throughput))
        };
        if let (Some((one, one_raw)), Some((two, two_raw))) =
            (drain_of("listen"), drain_of("two-bridges"))
            && one > 0.0
        {
            let _ = writeln!(
                out,
                "\nTwo bridges on one queue drained {two:.1} starts/s against one bridge's {one:.1}/s (x{:.2}; raw start rate {two_raw:.1}/s and {one_raw:.1}/s just before each).",
                two / one
            );
        }
        if let Some(v) = b.variants.first()
            && let (Some(t), Some(c)) = (
                &v.paced.initiated_to_pending_ms,
                &v.paced.pending_to_commit_ms,
            )
        {
            let _ = writeln!(
                out,
                "\nInside the emitting transaction, `initiated` → `pending` (the routing triggers) took p50 {} ms, p99 {} ms, and `pending` → commit p50 {} ms, p99 {} ms ({} run); both come before the commit and are not counted above.",
                ms(t.p50),
                ms(t.p99),
                ms(c.p50),
                ms(c.p99),
                v.variant
            );
        }
        let _ = writeln!(out);
    }

    if let Some(h) = &results.history {
        history_section(&mut out, h);
    }

    goals(&mut out, results);
    out
}

fn mib(bytes: i64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// The history scenario: the load, each operation on both stores, the sizes.
fn history_section(out: &mut String, h: &HistoryResults) {
    let l = &h.load;
    let _ = writeln!(
        out,
        "### History: {} events and {} finished jobs loaded, against an empty store\n",
        l.events, l.completed_jobs
    );
    let _ = writeln!(
        out,
        "Generated on the server set-based, the rows `api.emit_domain_event`, `api.claim_workflow_jobs`, `api.complete_workflow_job` and their triggers would have written, in {:.1} s ({:.0} events/s): the job streams' events {:.1} s, further events {:.1} s, stream counters and projections {:.1} s, then `VACUUM (ANALYZE)` of both stores {:.1} s. {} streams. Then {} bootstraps on each store, in blocks of the same size alternating between the stores, one operation at a time on one direct connection: a client's emit of `organization.bootstrap.initiated` (routed: it enqueues a job), a claim of one job, its settlement as the bridge makes it (`api.settle_workflow_jobs` with one element: the started and completed events), and each activity's emit as the activities make it (own transaction, statement bounds, idempotency key), with the email step's idempotency lookup and a retried emit whose key exists. The empty store holds only what the measurements write. Ratio: loaded / empty; ✓ within 10 %.\n",
        l.seconds,
        l.events_per_second,
        l.events_seconds,
        l.extra_seconds,
        l.projections_seconds,
        l.vacuum_seconds,
        l.streams,
        h.samples,
    );
    table_head(
        out,
        &[
            "operation",
            "empty p50 / p99 ms",
            "loaded p50 / p99 ms",
            "p50 ratio",
            "p99 ratio",
            "failed (empty, loaded)",
        ],
    );
    for o in &h.operations {
        let pair = |s: Option<&Summary>| {
            s.map_or_else(
                || "–".to_owned(),
                |s| format!("{} / {}", ms(s.p50), ms(s.p99)),
            )
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {}, {} |",
            o.name,
            pair(o.empty_ms.as_ref()),
            pair(o.loaded_ms.as_ref()),
            ratio_cell(ratio(o.empty_ms.map(|s| s.p50), o.loaded_ms.map(|s| s.p50))),
            ratio_cell(ratio(o.empty_ms.map(|s| s.p99), o.loaded_ms.map(|s| s.p99))),
            o.empty_failed,
            o.loaded_failed,
        );
    }
    if let Some(error) = &h.first_error {
        let _ = writeln!(out, "\nFirst failure: {error}");
    }
    let _ = writeln!(
        out,
        "\nSizes after the load (MiB; the empty store's after its measurements in brackets):\n"
    );
    table_head(out, &["relation", "rows", "table", "indexes", "total"]);
    for s in &h.sizes {
        let empty = h.empty_sizes.iter().find(|e| e.relation == s.relation);
        let bracket = |f: fn(&RelationSize) -> String| {
            empty.map_or_else(String::new, |e| format!(" ({})", f(e)))
        };
        let _ = writeln!(
            out,
            "| `{}` | {}{} | {}{} | {}{} | {}{} |",
            s.relation,
            s.rows,
            bracket(|e| e.rows.to_string()),
            mib(s.table_bytes),
            bracket(|e| mib(e.table_bytes)),
            mib(s.index_bytes),
            bracket(|e| mib(e.index_bytes)),
            mib(s.total_bytes),
            bracket(|e| mib(e.total_bytes)),
        );
    }
    let indexes: Vec<String> = h
        .indexes
        .iter()
        .map(|i| format!("`{}` {} MiB", i.index, mib(i.bytes)))
        .collect();
    let _ = writeln!(out, "\nIndexes after the load: {}.\n", indexes.join(", "));
}

/// The goals of issue 8, each with its figure.
fn goals(out: &mut String, results: &Results) {
    let _ = writeln!(out, "### Goals\n");
    table_head(out, &["goal", "target", "measured", ""]);
    let mut row = |goal: &str, target: &str, measured: String, met: Option<bool>| {
        let _ = writeln!(out, "| {goal} | {target} | {measured} | {} |", verdict(met));
    };
    if let Some(b) = &results.bridge {
        for v in b.variants.iter().filter(|v| v.variant != "sweeps") {
            let (paced, raw) = (v.paced.commit_to_started_event_ms, v.baseline.ack_ms);
            let over = |f: fn(&Summary) -> f64| match (paced, raw) {
                (Some(p), Some(r)) => Some(f(&p) - f(&r)),
                _ => None,
            };
            let p50 = over(|s| s.p50);
            let p99 = over(|s| s.p99);
            row(
                &format!(
                    "bridge ({}): commit → ack, p50 over the raw start's",
                    v.variant
                ),
                "≤ 3 ms",
                p50.map_or_else(|| "–".to_owned(), |d| format!("{} ms", ms(d))),
                p50.map(|d| d <= 3.0),
            );
            row(
                &format!(
                    "bridge ({}): commit → ack, p99 over the raw start's",
                    v.variant
                ),
                "≤ 10 ms",
                p99.map_or_else(|| "–".to_owned(), |d| format!("{} ms", ms(d))),
                p99.map(|d| d <= 10.0),
            );
        }
        for v in &b.variants {
            let raw = v.raw_before_drain.throughput;
            let share = (raw > 0.0).then(|| v.drain.throughput / raw);
            row(
                &format!("bridge ({}): sustained throughput", v.variant),
                "≥ 90 % of the raw start rate (measured just before)",
                share.map_or_else(
                    || format!("{:.1}/s", v.drain.throughput),
                    |s| {
                        format!(
                            "{:.1}/s = {:.1} % of {raw:.1}/s",
                            v.drain.throughput,
                            s * 100.0,
                        )
                    },
                ),
                share.map(|s| s >= 0.9),
            );
        }
    }
    if let Some(h) = &results.history {
        let figures: Vec<Option<bool>> = h
            .operations
            .iter()
            .flat_map(|o| {
                let get = |f: fn(&Summary) -> f64| {
                    ratio(o.empty_ms.map(|s| f(&s)), o.loaded_ms.map(|s| f(&s)))
                };
                [get(|s| s.p50), get(|s| s.p99)]
            })
            .map(|r| r.map(|r| r.within))
            .collect();
        let within = figures.iter().filter(|f| **f == Some(true)).count();
        let measured = figures.iter().filter(|f| f.is_some()).count();
        row(
            &format!(
                "history ({} events): every operation's p50 and p99",
                h.load.events
            ),
            "within 10 % of the empty store",
            format!("{within} of {} figures within", figures.len()),
            (measured > 0).then_some(within == figures.len()),
        );
    }
    if let (Some(osp), Some(node)) = (&results.worker, &results.node) {
        let c = Comparison::of(osp, node);
        for (figure, ratio) in [
            ("CPU per workflow", c.cpu_per_workflow),
            ("peak memory per workflow", c.peak_rss),
        ] {
            row(
                &format!("worker: {figure} against the Node worker"),
                &format!(
                    "≥ {GOAL_FACTOR:.0}x less (OSP / Node ≤ {:.2})",
                    1.0 / GOAL_FACTOR
                ),
                times_cell(ratio),
                tenfold_less(ratio),
            );
        }
    }
    if let Some(w) = &results.worker {
        row(
            "worker: CPU per `createServiceWorkflow`",
            "≤ 1.3 ms (Node seed: 12.9 ms)",
            format!("{:.2} ms", w.cpu_ms_per_workflow),
            Some(w.cpu_ms_per_workflow <= 1.3),
        );
        row(
            "worker: peak RSS",
            "≤ 40 MiB (Node seed: 329 MB)",
            format!("{:.1} MiB", w.peak_rss_mib),
            Some(w.peak_rss_mib <= 40.0),
        );
        row(
            "worker: spawn → ready",
            "≤ 300 ms",
            format!("{:.0} ms", w.ready_ms),
            Some(w.ready_ms <= 300.0),
        );
        let ceiling = results.ceiling.as_ref().map(|c| c.no_activity.throughput);
        let share = ceiling.filter(|c| *c > 0.0).map(|c| w.run.throughput / c);
        // The same workflow with its activity stubbed in-process: what the server allows for
        // this workflow's three tasks, as opposed to the no-activity workflow's one.
        let stub = results
            .ceiling
            .as_ref()
            .map(|c| c.stub_activity.throughput)
            .filter(|c| *c > 0.0);
        row(
            "worker: throughput",
            "≥ 90 % of the no-activity ceiling",
            match (share, ceiling) {
                (Some(s), Some(c)) => format!(
                    "{:.1}/s = {:.1} % of {:.1}/s{}",
                    w.run.throughput,
                    s * 100.0,
                    c,
                    stub.map_or_else(String::new, |stub| format!(
                        " ({:.0} % of the stub-activity ceiling, {stub:.1}/s)",
                        w.run.throughput / stub * 100.0
                    ))
                ),
                _ => format!("{:.1}/s", w.run.throughput),
            },
            share.map(|s| s >= 0.9),
        );
    }
}

/// A Markdown table's header row and its separator; an empty name leaves its column's header
/// blank.
fn table_head(out: &mut String, columns: &[&str]) {
    let mut head = String::from("|");
    for column in columns {
        if column.is_empty() {
            head.push_str(" |");
        } else {
            let _ = write!(head, " {column} |");
        }
    }
    let _ = writeln!(out, "{head}\n|{}", "---|".repeat(columns.len()));
}

/// Each bridge run's CPU per start by process, beside the raw starts' just before it: what
/// the bridge's figures cost, and how much of it is the server's.
fn cost_table<'a>(
    out: &mut String,
    runs: impl IntoIterator<Item = (&'a str, &'a CostPerStart, &'a CostPerStart)>,
) {
    let mut runs = runs.into_iter().peekable();
    if runs.peek().is_none() {
        return;
    }
    let _ = writeln!(
        out,
        "\nCPU per start by process, in ms: each process's CPU time over the drain (bridges ready → the last backlog job settled; PostgreSQL with every backend) divided by the starts, and the same over the raw-start run just before it (\"raw\"). Waiting for a CPU: how long the server's threads were ready to run but had none (the second field of `/proc/<pid>/task/*/schedstat`), per start. Machine busy: all CPUs, raw run → drain.\n"
    );
    table_head(
        out,
        &[
            "run",
            "Temporal, raw",
            "Temporal, drain",
            "Temporal waiting for a CPU, raw → drain",
            "PostgreSQL",
            "PgBouncer",
            "bridge",
            "bench client, raw → drain",
            "machine busy %",
        ],
    );
    for (name, raw, drain) in runs {
        let _ = writeln!(
            out,
            "| {name} | {:.2} | {:.2} | {} → {} | {:.2} | {:.2} | {:.2} | {:.2} → {:.2} | {:.0} → {:.0} |",
            raw.temporal_ms,
            drain.temporal_ms,
            hundredths(raw.temporal_waiting_ms),
            hundredths(drain.temporal_waiting_ms),
            drain.postgres_ms,
            drain.pgbouncer_ms,
            drain.bridge_ms,
            raw.bench_ms,
            drain.bench_ms,
            raw.machine_busy_percent,
            drain.machine_busy_percent,
        );
    }
}

/// One row of [`steps_table`]: a bridge run's steps over one of its phases.
struct StepRow<'a> {
    run: &'a str,
    phase: &'static str,
    /// The baseline's mean acknowledgement at the paced rate (paced phase only).
    baseline_ack_ms: Option<f64>,
    /// The probe's during the phase (`--probe-rate`).
    probe_ack_ms: Option<f64>,
    steps: &'a BridgeSteps,
}

/// Each bridge run's own steps over the drain and over the paced phase, the latter beside the
/// baseline's acknowledgement and the probe's (`--probe-rate`, during the phase): how many
/// jobs each statement carries, how much of the latency is the database's, how much the
/// server's answer to the start, and whether the server answers everyone that slowly or only
/// the bridge.
fn steps_table<'a>(out: &mut String, rows: impl IntoIterator<Item = StepRow<'a>>) {
    let mut rows = rows.into_iter().peekable();
    if rows.peek().is_none() {
        return;
    }
    let _ = writeln!(
        out,
        "\nInside the bridge over the drain and over the paced phase, from its own histograms (`osp_bridge_claim_seconds`, `osp_bridge_temporal_start_seconds`, `osp_bridge_settle_seconds`; every process of the run), means in ms: each claim statement, each start request until Temporal answered (in the paced phase beside the baseline's send → acknowledgement at the same rate, and the probe's during the phase when `--probe-rate` sends one) and each settlement statement.\n"
    );
    table_head(
        out,
        &[
            "run",
            "phase",
            "claims",
            "claim ms",
            "starts",
            "start ms",
            "baseline ack ms",
            "probe ack ms",
            "settlements",
            "starts per settlement",
            "settlement ms",
        ],
    );
    for row in rows {
        let steps = row.steps;
        let per_settlement = if steps.settle.count > 0.0 {
            format!("{:.1}", steps.start.count / steps.settle.count)
        } else {
            "–".to_owned()
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.0} | {:.2} | {:.0} | {:.2} | {} | {} | {:.0} | {per_settlement} | {:.2} |",
            row.run,
            row.phase,
            steps.claim.count,
            steps.claim.mean_ms,
            steps.start.count,
            steps.start.mean_ms,
            hundredths(row.baseline_ack_ms),
            hundredths(row.probe_ack_ms),
            steps.settle.count,
            steps.settle.mean_ms,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::bridge::StepTime;
    use super::super::ceiling::LoopFigures;
    use super::*;

    fn worker(name: &str, throughput: f64, cpu: f64, rss: f64, ready: f64) -> WorkerResults {
        WorkerResults {
            worker: name.to_owned(),
            binary: format!("{name} binary"),
            run: LoopFigures {
                operations: 100,
                concurrency: 10,
                ok: 100,
                failed: 0,
                seconds: 2.0,
                throughput,
                latency_ms: None,
                first_error: None,
            },
            ready_ms: ready,
            startup_cpu_ms: 10.0,
            cpu_ms_per_workflow: cpu,
            peak_rss_mib: rss,
            rss_after_mib: rss / 2.0,
        }
    }

    #[test]
    fn the_node_section_gives_each_ratio_with_its_goal() {
        let mut out = String::new();
        let osp = worker("osp-worker", 45.0, 2.5, 24.0, 280.0);
        let node = worker("node", 30.0, 12.5, 320.0, 5600.0);
        node_section(&mut out, Some(&osp), &node);
        assert!(out.contains("node binary"), "{out}");
        for line in [
            "| throughput, workflows/s | 45.0 | 30.0 | 1.50 (1.5x more) | – |  |",
            "| CPU per workflow, ms | 2.50 | 12.50 | 0.20 (5.0x less) | ≤ 0.10 (10x less) | missed |",
            "| peak RSS, MiB | 24.0 | 320.0 | 0.07 (13.3x less) | ≤ 0.10 (10x less) | **met** |",
            "| spawn → ready, ms | 280 | 5600 | 0.05 (20.0x less) | – |  |",
        ] {
            assert!(out.lines().any(|l| l == line), "{line} not in\n{out}");
        }
    }

    #[test]
    fn the_cost_table_puts_each_process_beside_the_raw_run() {
        let raw = CostPerStart {
            temporal_ms: 6.7,
            temporal_waiting_ms: Some(2.06),
            bench_ms: 0.35,
            machine_busy_percent: 70.4,
            ..CostPerStart::default()
        };
        let drain = CostPerStart {
            temporal_ms: 10.1,
            temporal_waiting_ms: None,
            postgres_ms: 3.36,
            pgbouncer_ms: 0.02,
            bridge_ms: 0.83,
            bench_ms: 0.05,
            machine_busy_percent: 79.0,
        };
        let mut out = String::new();
        cost_table(&mut out, [("listen", &raw, &drain)]);
        assert!(
            out.lines()
                .any(|l| l
                    == "| listen | 6.70 | 10.10 | 2.06 → – | 3.36 | 0.02 | 0.83 | 0.35 → 0.05 | 70 → 79 |"),
            "{out}"
        );
        let mut none = String::new();
        cost_table(&mut none, []);
        assert!(none.is_empty());
    }

    #[test]
    fn a_table_head_has_one_separator_per_column_and_may_leave_one_blank() {
        let mut out = String::new();
        table_head(&mut out, &["goal", "target", "measured", ""]);
        assert_eq!(out, "| goal | target | measured | |\n|---|---|---|---|\n");
    }

    #[test]
    fn the_steps_table_puts_each_run_s_start_beside_its_baseline() {
        let steps = BridgeSteps {
            claim: StepTime {
                count: 2000.0,
                mean_ms: 1.31,
            },
            start: StepTime {
                count: 2400.0,
                mean_ms: 18.84,
            },
            settle: StepTime {
                count: 1600.0,
                mean_ms: 1.52,
            },
        };
        let mut out = String::new();
        let idle = BridgeSteps::default();
        steps_table(
            &mut out,
            [
                StepRow {
                    run: "listen",
                    phase: "paced",
                    baseline_ack_ms: Some(3.5),
                    probe_ack_ms: Some(12.25),
                    steps: &steps,
                },
                StepRow {
                    run: "sweeps",
                    phase: "drain",
                    baseline_ack_ms: None,
                    probe_ack_ms: None,
                    steps: &idle,
                },
            ],
        );
        assert!(
            out.lines().any(|l| l
                == "| listen | paced | 2000 | 1.31 | 2400 | 18.84 | 3.50 | 12.25 | 1600 | 1.5 | 1.52 |"),
            "{out}"
        );
        assert!(
            out.lines()
                .any(|l| l == "| sweeps | drain | 0 | 0.00 | 0 | 0.00 | – | – | 0 | – | 0.00 |"),
            "{out}"
        );
        let mut none = String::new();
        steps_table(&mut none, []);
        assert!(none.is_empty());
    }

    #[test]
    fn without_the_worker_there_are_no_ratios() {
        let mut out = String::new();
        node_section(&mut out, None, &worker("node", 30.0, 12.5, 320.0, 5600.0));
        assert!(out.contains("No ratios"), "{out}");
        assert!(!out.contains("| figure |"), "{out}");
    }

    #[test]
    fn worker_rows_name_the_process_costs() {
        let mut out = String::new();
        worker_row(
            &mut out,
            "worker: x",
            &worker("node", 30.0, 12.5, 320.0, 5600.0),
        );
        assert_eq!(
            out.trim_end(),
            "| worker: x | 30.0 | – | – | – | 0 | CPU 12.50 ms per workflow, peak RSS 320.0 MiB (160.0 after the run), ready 5600 ms after spawn (startup CPU 10 ms) |"
        );
    }
}
