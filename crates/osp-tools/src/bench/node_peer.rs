//! The peer beside us (issue 16): the seed's own stack, `@temporalio/worker` with
//! node-postgres at the seed's concurrency of 10, running the same `createServiceWorkflow`
//! (`crates/osp-tools/bench/node-peer`) on its own task queue against the same server and
//! database, driven by the same client code and measured by the same [`measure`] as
//! `osp-worker`; and OSP's figures as ratios of the Node worker's.

use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};
use temporalio_client::Client;

use super::worker::{Subject, WorkerResults, measure};
use super::{BenchError, Options};
use osp_stack::Stack;

/// The Node worker's task queue: its own, so the two workers never share tasks.
pub const NODE_QUEUE: &str = "osp-bench-node";
/// Where the peer lives in the source tree (the default of `--node-peer`).
pub const DEFAULT_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/bench/node-peer");
/// What installs the peer's packages.
const SETUP_HINT: &str =
    "run `make bench` (its bench-setup step, scripts/bench-setup.sh, runs `npm ci` there)";
/// The issue's goal: at least this many times less CPU and peak memory per workflow.
pub const GOAL_FACTOR: f64 = 10.0;

/// The installed peer, checked before the stack starts.
#[derive(Debug, Clone)]
pub struct NodePeer {
    /// `worker.mjs`, run through its `#!/usr/bin/env node` line.
    pub script: PathBuf,
    /// `node --version`.
    pub node: String,
    /// Installed `@temporalio/worker` and `pg` versions.
    pub sdk: String,
    pub pg: String,
}

impl NodePeer {
    /// What the report calls it.
    pub fn description(&self) -> String {
        format!(
            "node {} with @temporalio/worker {} and pg {} ({})",
            self.node,
            self.sdk,
            self.pg,
            self.script.display()
        )
    }
}

/// `dependencies.<package>` of a `package.json`, or `version` when `package` is `None`.
fn package_field(text: &str, package: Option<&str>) -> Option<String> {
    let value: Value = serde_json::from_str(text).ok()?;
    let field = match package {
        Some(name) => value.get("dependencies")?.get(name)?,
        None => value.get("version")?,
    };
    field.as_str().map(str::to_owned)
}

/// Each pinned package whose installed version differs from its pin: `name pin (found x)`.
fn stale(pins: &str, installed: &[(&str, Option<String>)]) -> Vec<String> {
    installed
        .iter()
        .filter_map(|(name, found)| {
            let pin = package_field(pins, Some(name));
            (pin.is_none() || pin != *found).then(|| {
                format!(
                    "{name} {} (installed: {})",
                    pin.as_deref().unwrap_or("not pinned"),
                    found.as_deref().unwrap_or("none")
                )
            })
        })
        .collect()
}

/// `node` on `PATH`, as the script's `#!/usr/bin/env node` finds it.
fn node_on_path() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("node"))
        .find(|candidate| candidate.is_file())
}

/// Checks that node is there and the peer installed from its pins; the error says how to
/// install it.
pub async fn locate(dir: &Path) -> Result<NodePeer, BenchError> {
    let missing = |what: String| BenchError::Failed(format!("Node peer: {what}; {SETUP_HINT}"));
    let node = node_on_path().ok_or_else(|| missing("`node` is not on PATH".to_owned()))?;
    let script = dir.join("worker.mjs");
    if !script.is_file() {
        return Err(missing(format!("{} does not exist", script.display())));
    }
    let read = |path: PathBuf| std::fs::read_to_string(path).ok();
    let pins = read(dir.join("package.json"))
        .ok_or_else(|| missing(format!("no package.json in {}", dir.display())))?;
    let modules = dir.join("node_modules");
    let installed = |package: &'static str| {
        (
            package,
            read(modules.join(package).join("package.json"))
                .and_then(|text| package_field(&text, None)),
        )
    };
    let versions = [
        installed("@temporalio/worker"),
        installed("@temporalio/workflow"),
        installed("@temporalio/activity"),
        installed("pg"),
    ];
    let stale = stale(&pins, &versions);
    if !stale.is_empty() {
        return Err(missing(format!(
            "{} is not installed as pinned: {}",
            modules.display(),
            stale.join(", ")
        )));
    }
    let output = tokio::process::Command::new(&node)
        .arg("--version")
        .output()
        .await
        .map_err(|source| BenchError::Io {
            what: format!("running {} --version", node.display()),
            source,
        })?;
    let version = |i: usize| versions[i].1.clone().unwrap_or_default();
    Ok(NodePeer {
        script,
        node: String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        sdk: version(0),
        pg: version(3),
    })
}

/// Runs the Node worker scenario.
pub async fn run(
    stack: &Stack,
    client: &Client,
    peer: &NodePeer,
    options: &Options,
) -> Result<WorkerResults, BenchError> {
    let env = [
        ("TEMPORAL_ADDRESS", stack.temporal.address()),
        ("TEMPORAL_TASK_QUEUE", NODE_QUEUE.to_owned()),
        ("DATABASE_URL", stack.postgres.url("postgres")),
    ];
    measure(
        client,
        &Subject {
            worker: "node",
            program: &peer.script,
            description: peer.description(),
            env: &env,
            task_queue: NODE_QUEUE,
            log: stack.postgres.root_dir().join("bench-node-peer.log"),
        },
        options,
    )
    .await
}

/// `osp / node`; `None` when either is missing or not finite, or `node` is not positive.
fn quotient(osp: f64, node: f64) -> Option<f64> {
    (node > 0.0 && node.is_finite() && osp.is_finite()).then(|| osp / node)
}

/// OSP's figures as ratios of the Node worker's in the same run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Comparison {
    /// Workflows per second (above 1: OSP does more).
    pub throughput: Option<f64>,
    /// CPU per workflow (below 1: OSP spends less; goal at most 1 / [`GOAL_FACTOR`]).
    pub cpu_per_workflow: Option<f64>,
    /// Peak RSS; both ran the same workflows, so this is also the ratio per workflow (goal
    /// at most 1 / [`GOAL_FACTOR`]).
    pub peak_rss: Option<f64>,
    /// Spawn to ready.
    pub ready: Option<f64>,
}

impl Comparison {
    pub fn of(osp: &WorkerResults, node: &WorkerResults) -> Self {
        Comparison {
            throughput: quotient(osp.run.throughput, node.run.throughput),
            cpu_per_workflow: quotient(osp.cpu_ms_per_workflow, node.cpu_ms_per_workflow),
            peak_rss: quotient(osp.peak_rss_mib, node.peak_rss_mib),
            ready: quotient(osp.ready_ms, node.ready_ms),
        }
    }

    pub fn json_line(&self) -> Value {
        json!({
            "scenario": "worker.osp_over_node",
            "workflow": "createServiceWorkflow",
            "goal_factor": GOAL_FACTOR,
            "ratios": self,
        })
    }
}

/// Whether `ratio` (OSP / Node) is at least [`GOAL_FACTOR`] times less.
pub fn tenfold_less(ratio: Option<f64>) -> Option<bool> {
    // A hair of float error must not turn exactly 0.1 into a miss.
    ratio.map(|r| r <= 1.0 / GOAL_FACTOR + 1e-9)
}

/// `0.23 (4.3x less)`, `1.52 (1.5x more)`, `1.00 (same)`, `–` when not measured.
pub fn ratio_cell(ratio: Option<f64>) -> String {
    match ratio {
        None => "–".to_owned(),
        Some(r) if r <= 0.0 => format!("{r:.2}"),
        Some(r) if (r - 1.0).abs() < 0.005 => format!("{r:.2} (same)"),
        Some(r) if r < 1.0 => format!("{r:.2} ({:.1}x less)", 1.0 / r),
        Some(r) => format!("{r:.2} ({r:.1}x more)"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::ceiling::LoopFigures;
    use super::*;

    fn results(throughput: f64, cpu: f64, rss: f64, ready: f64) -> WorkerResults {
        WorkerResults {
            worker: "w".to_owned(),
            binary: "b".to_owned(),
            run: LoopFigures {
                operations: 10,
                concurrency: 2,
                ok: 10,
                failed: 0,
                seconds: 1.0,
                throughput,
                latency_ms: None,
                first_error: None,
            },
            ready_ms: ready,
            startup_cpu_ms: 0.0,
            cpu_ms_per_workflow: cpu,
            peak_rss_mib: rss,
            rss_after_mib: rss,
        }
    }

    #[test]
    fn ratios_are_osp_over_node() {
        let osp = results(45.0, 2.0, 24.0, 250.0);
        let node = results(30.0, 16.0, 320.0, 5000.0);
        let c = Comparison::of(&osp, &node);
        assert_eq!(c.throughput, Some(1.5));
        assert_eq!(c.cpu_per_workflow, Some(0.125));
        assert_eq!(c.peak_rss, Some(0.075));
        assert_eq!(c.ready, Some(0.05));
        assert_eq!(tenfold_less(c.cpu_per_workflow), Some(false));
        assert_eq!(tenfold_less(c.peak_rss), Some(true));
        let line = c.json_line();
        assert_eq!(line["ratios"]["peak_rss"], json!(0.075));
        assert_eq!(line["scenario"], "worker.osp_over_node");
    }

    #[test]
    fn a_node_figure_of_zero_gives_no_ratio() {
        let c = Comparison::of(
            &results(45.0, 2.0, 24.0, 250.0),
            &results(0.0, 0.0, 1.0, 1.0),
        );
        assert_eq!((c.throughput, c.cpu_per_workflow), (None, None));
        assert_eq!(c.peak_rss, Some(24.0));
        assert_eq!(tenfold_less(None), None);
        assert_eq!(quotient(f64::NAN, 1.0), None);
    }

    #[test]
    fn exactly_ten_times_less_meets_the_goal() {
        assert_eq!(tenfold_less(quotient(1.3, 13.0)), Some(true));
        assert_eq!(tenfold_less(Some(0.1001)), Some(false));
    }

    #[test]
    fn cells_say_how_many_times() {
        assert_eq!(ratio_cell(Some(0.25)), "0.25 (4.0x less)");
        assert_eq!(ratio_cell(Some(1.52)), "1.52 (1.5x more)");
        assert_eq!(ratio_cell(Some(1.001)), "1.00 (same)");
        assert_eq!(ratio_cell(Some(0.0)), "0.00");
        assert_eq!(ratio_cell(None), "–");
    }

    #[test]
    fn versions_from_package_files() {
        let pins = r#"{"dependencies": {"pg": "8.23.1", "@temporalio/worker": "1.24.0"}}"#;
        assert_eq!(package_field(pins, Some("pg")).as_deref(), Some("8.23.1"));
        assert_eq!(
            package_field(r#"{"version": "1.0.0"}"#, None).as_deref(),
            Some("1.0.0")
        );
        assert_eq!(package_field("not json", None), None);
        assert!(stale(pins, &[("pg", Some("8.23.1".to_owned()))]).is_empty());
        assert_eq!(
            stale(
                pins,
                &[
                    ("@temporalio/worker", Some("1.23.0".to_owned())),
                    ("pg", None),
                    ("left-pad", Some("1.0.0".to_owned())),
                ]
            ),
            [
                "@temporalio/worker 1.24.0 (installed: 1.23.0)",
                "pg 8.23.1 (installed: none)",
                "left-pad not pinned (installed: 1.0.0)",
            ]
        );
    }

    #[test]
    fn the_committed_peer_pins_what_it_is_checked_against() {
        let pins = std::fs::read_to_string(Path::new(DEFAULT_DIR).join("package.json")).unwrap();
        for package in [
            "@temporalio/worker",
            "@temporalio/workflow",
            "@temporalio/activity",
            "pg",
        ] {
            let pin = package_field(&pins, Some(package)).unwrap();
            // Exact pins: a range would let `npm ci`'s lock and the check drift apart.
            assert!(
                pin.chars().all(|c| c.is_ascii_digit() || c == '.'),
                "{package} {pin}"
            );
        }
    }
}
