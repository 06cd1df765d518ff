//! The bridge recovers by itself: killed with SIGKILL at random moments and restarted,
//! stopped with SIGTERM (exit 0, nothing left held), and with Postgres or the Temporal dev
//! server restarted under it. Also the binary's endpoints and its refusal of a bad
//! configuration.

#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{
    Env, HEAVY, RunningBridge, assert_one_execution_each, connect, emit_bootstrap, emit_bootstraps,
    eventually, job_events, job_statuses, metric_value, wait_settled,
};
use temporalio_client::UntypedWorkflow;
use temporalio_client::WorkflowDescribeOptions;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use uuid::Uuid;

/// The bridge binary with `env` (and nothing else from this process's environment), its
/// log appended to `log`.
fn spawn_binary(env: &HashMap<String, String>, log: &PathBuf) -> Child {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_osp-bridge"))
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(file.try_clone().unwrap())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

fn log_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("osp-bridge-{name}-{}.log", Uuid::new_v4().simple()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A bare HTTP/1.1 GET: status and body.
async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())?;
    Some((status, body))
}

/// A number in `0..bound` from the system's randomness.
fn random_below(bound: u64) -> u64 {
    u64::try_from(Uuid::new_v4().as_u128() % u128::from(bound)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_five_random_moments_the_bridge_loses_nothing_and_starts_nothing_twice() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let bridge_env = env.env(
        &env.pooled_url,
        &env.direct_url,
        &[("OSP_BRIDGE_LEASE_SECONDS", "5"), ("RUST_LOG", "warn")],
    );
    let log = log_path("sigkill");
    let mut child = spawn_binary(&bridge_env, &log);

    // 500 events over about eight seconds, from four writers.
    let url = env.direct_url.clone();
    let writers = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let client = connect(&url).await;
                let mut organizations = Vec::new();
                for _ in 0..125 {
                    let organization = emit_bootstrap(&client).await;
                    organizations.push(organization);
                    // Pacing, so that the kills land while work is flowing.
                    tokio::time::sleep(Duration::from_millis(60)).await;
                }
                organizations
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await.unwrap());
        }
        all
    });

    let started = Instant::now();
    let mut moments: Vec<u64> = (0..5).map(|_| 300 + random_below(8_000)).collect();
    moments.sort_unstable();
    eprintln!("killing at {moments:?} ms");
    for moment in moments {
        let at = started + Duration::from_millis(moment);
        tokio::time::sleep_until(at.into()).await;
        child.kill().await.unwrap();
        child = spawn_binary(&bridge_env, &log);
    }
    let organizations = writers.await.unwrap();
    assert_eq!(organizations.len(), 500);

    let client = env.client().await;
    // Jobs held by a killed bridge come back once their 5 s lease expires.
    let statuses = wait_settled(&client, 500, Duration::from_secs(90)).await;
    assert_eq!(
        statuses.get("completed"),
        Some(&500),
        "{statuses:?}; log {}",
        log.display()
    );
    let temporal = env.temporal().await;
    assert_one_execution_each(&temporal, &organizations, Duration::from_secs(30)).await;
    let jobs = job_events(&client).await;
    let mut reclaimed = 0;
    for (job, events) in &jobs {
        assert_eq!(
            (events.completed, events.failed),
            (1, 0),
            "job {job}: {events:?}"
        );
        assert_eq!(events.started, 1, "job {job}: {events:?}");
        if events.claimed > 1 {
            reclaimed += 1;
        }
    }
    eprintln!("{reclaimed} jobs were claimed again after a kill");
    child.kill().await.unwrap();
    let _ = std::fs::remove_file(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_exits_zero_and_the_endpoints_answer() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let port = free_port();
    let port_text = port.to_string();
    let bridge_env = env.env(
        &env.pooled_url,
        &env.direct_url,
        &[
            ("ENABLE_HEALTH_CHECK", "true"),
            ("HEALTH_CHECK_PORT", port_text.as_str()),
            ("RUST_LOG", "info"),
        ],
    );
    let log = log_path("sigterm");
    let mut child = spawn_binary(&bridge_env, &log);
    eventually(Duration::from_secs(30), "/readyz to answer 200", || async {
        http_get(port, "/readyz")
            .await
            .filter(|(status, _)| *status == 200)
    })
    .await;
    let (status, body) = http_get(port, "/healthz").await.unwrap();
    assert_eq!(status, 200, "{body}");

    let organizations = emit_bootstraps(&env.pooled_url, 200, 4).await;
    // Stop it while it works.
    eventually(Duration::from_secs(30), "the first starts", || async {
        let (_, metrics) = http_get(port, "/metrics").await?;
        (metric_value(&metrics, "osp_bridge_jobs_claimed_total") > 0.0).then_some(())
    })
    .await;
    let (_, metrics) = http_get(port, "/metrics").await.unwrap();
    for series in [
        "osp_bridge_jobs_claimed_total",
        "osp_bridge_workflows_started_total{outcome=\"started\"}",
        "osp_bridge_jobs_failed_total{reason=\"invalid\"}",
        "osp_bridge_event_to_start_seconds_count",
        "osp_bridge_queue_depth{state=\"ready\"}",
        "osp_bridge_wakeup_source_up{source=\"listen\"}",
    ] {
        assert!(
            metrics.contains(series),
            "/metrics lacks {series}:\n{metrics}"
        );
    }
    // The Temporal client's own series follow the bridge's.
    assert!(
        metrics.contains("temporal_request"),
        "no temporal_* series:\n{metrics}"
    );
    let pid = child.id().unwrap();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let exit = tokio::time::timeout(Duration::from_secs(40), child.wait())
        .await
        .expect("the bridge drains within its grace period")
        .unwrap();
    assert_eq!(exit.code(), Some(0), "log {}", log.display());
    let client = env.client().await;
    let statuses = job_statuses(&client).await;
    assert_eq!(
        statuses.get("processing"),
        None,
        "a job is still held: {statuses:?}"
    );

    // Another bridge finishes the rest.
    let mut child = spawn_binary(&bridge_env, &log);
    let statuses = wait_settled(&client, 200, Duration::from_secs(60)).await;
    assert_eq!(statuses.get("completed"), Some(&200), "{statuses:?}");
    assert_one_execution_each(
        &env.temporal().await,
        &organizations,
        Duration::from_secs(30),
    )
    .await;
    child.kill().await.unwrap();
    let _ = std::fs::remove_file(&log);
}

#[tokio::test]
async fn a_bad_configuration_stops_the_binary_before_it_binds_or_connects() {
    let port = free_port();
    let output = Command::new(env!("CARGO_BIN_EXE_osp-bridge"))
        .env_clear()
        .env("HEALTH_CHECK_PORT", port.to_string())
        .env("DATABASE_URL", "postgres://osp:SENTINEL-PW@localhost/osp")
        .env("OSP_BRIDGE_BATCH_SIZE", "0")
        .output()
        .await
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TEMPORAL_ADDRESS: is required"), "{stderr}");
    assert!(
        stderr.contains("OSP_BRIDGE_BATCH_SIZE: must be a whole number from 1 to 1000"),
        "{stderr}"
    );
    assert!(!stderr.contains("SENTINEL"), "{stderr}");
    // Nothing was bound.
    std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_mid_run_the_bridge_recovers_and_delivers_everything() {
    let _turn = HEAVY.lock().await;
    let mut env = Env::start().await;
    let bridge = RunningBridge::spawn(env.config(
        &env.pooled_url,
        &env.direct_url,
        &[("OSP_BRIDGE_LEASE_SECONDS", "5")],
    ));
    let mut organizations = emit_bootstraps(&env.direct_url, 300, 4).await;
    {
        let client = env.client().await;
        eventually(Duration::from_secs(30), "some jobs done", || async {
            let statuses = job_statuses(&client).await;
            (statuses.get("completed").copied().unwrap_or(0) >= 50).then_some(())
        })
        .await;
    }
    env.stack.postgres.stop().await.unwrap();
    eventually(Duration::from_secs(30), "the bridge to notice", || async {
        bridge.health.readiness().is_err().then_some(())
    })
    .await;
    env.stack.postgres.start_again().await.unwrap();
    let client = env.client().await;
    organizations.extend(emit_bootstraps(&env.direct_url, 100, 2).await);
    let statuses = wait_settled(&client, 400, Duration::from_secs(90)).await;
    assert_eq!(statuses.get("completed"), Some(&400), "{statuses:?}");
    assert_one_execution_each(
        &env.temporal().await,
        &organizations,
        Duration::from_secs(30),
    )
    .await;
    for (job, events) in job_events(&client).await {
        assert_eq!(
            (events.started, events.completed),
            (1, 1),
            "job {job}: {events:?}"
        );
    }
    eventually(Duration::from_secs(30), "ready again", || async {
        bridge.health.readiness().is_ok().then_some(())
    })
    .await;
    // LISTEN reconnected by itself.
    eventually(Duration::from_secs(30), "LISTEN back", || async {
        (bridge
            .metric("osp_bridge_wakeup_source_up{source=\"listen\"}")
            .await
            == 1.0)
            .then_some(())
    })
    .await;
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn temporal_restarted_mid_run_the_bridge_recovers_and_delivers_everything() {
    let _turn = HEAVY.lock().await;
    let mut env = Env::start().await;
    let bridge = RunningBridge::spawn(env.config(
        &env.pooled_url,
        &env.direct_url,
        &[
            ("OSP_BRIDGE_LEASE_SECONDS", "5"),
            ("OSP_BRIDGE_RETRY_INITIAL_MS", "200"),
            ("OSP_BRIDGE_RETRY_MAX_MS", "1000"),
            ("OSP_BRIDGE_MAX_ATTEMPTS", "100"),
        ],
    ));
    let client = env.client().await;
    emit_bootstraps(&env.direct_url, 300, 4).await;
    eventually(Duration::from_secs(30), "some jobs done", || async {
        let statuses = job_statuses(&client).await;
        (statuses.get("completed").copied().unwrap_or(0) >= 50).then_some(())
    })
    .await;
    env.stack.temporal.stop().await.unwrap();
    eventually(Duration::from_secs(30), "the bridge to notice", || async {
        bridge.health.readiness().is_err().then_some(())
    })
    .await;
    // Events keep coming while Temporal is away.
    emit_bootstraps(&env.direct_url, 100, 2).await;
    env.stack.temporal.start_again().await.unwrap();
    let restarted: std::time::SystemTime =
        client.query_one("select now()", &[]).await.unwrap().get(0);
    let statuses = wait_settled(&client, 400, Duration::from_secs(120)).await;
    assert_eq!(statuses.get("completed"), Some(&400), "{statuses:?}");
    // The dev server keeps its state in memory: what was started before the restart is
    // gone, what was started after is there, with the run id the queue recorded.
    let temporal = env.temporal().await;
    let rows = client
        .query(
            "select workflow_id, workflow_run_id from workflow_queue_projection
             where completed_at > $1",
            &[&restarted],
        )
        .await
        .unwrap();
    assert!(!rows.is_empty());
    for row in rows {
        let workflow_id: String = row.get(0);
        let run_id: String = row.get(1);
        let description = temporal
            .get_workflow_handle::<UntypedWorkflow>(workflow_id.clone())
            .describe(WorkflowDescribeOptions::default())
            .await
            .unwrap();
        assert_eq!(description.run_id(), run_id, "{workflow_id}");
    }
    for (job, events) in job_events(&client).await {
        assert_eq!(events.completed, 1, "job {job}: {events:?}");
    }
    assert!(bridge.metric("osp_bridge_jobs_retried_total").await >= 0.0);
    eventually(Duration::from_secs(30), "ready again", || async {
        bridge.health.readiness().is_ok().then_some(())
    })
    .await;
    bridge.stop().await;
}

/// A TCP proxy that can be frozen: bytes stop flowing both ways (connections stay open), as
/// with a server that hangs.
struct FreezableProxy {
    port: u16,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FreezableProxy {
    async fn start(upstream: String) -> FreezableProxy {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};

        async fn pump(
            mut from: tokio::net::tcp::OwnedReadHalf,
            mut to: tokio::net::tcp::OwnedWriteHalf,
            frozen: Arc<AtomicBool>,
        ) {
            let mut buffer = vec![0_u8; 16 * 1024];
            loop {
                let Ok(read) = from.read(&mut buffer).await else {
                    return;
                };
                if read == 0 {
                    return;
                }
                while frozen.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                if to.write_all(&buffer[..read]).await.is_err() {
                    return;
                }
            }
        }

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let flag = frozen.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let (in_read, in_write) = inbound.into_split();
                let (out_read, out_write) = outbound.into_split();
                tokio::spawn(pump(in_read, out_write, flag.clone()));
                tokio::spawn(pump(out_read, in_write, flag.clone()));
            }
        });
        FreezableProxy { port, frozen, task }
    }

    fn set_frozen(&self, frozen: bool) {
        self.frozen
            .store(frozen, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_still_hanging_when_the_grace_period_ends_are_released() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let proxy = FreezableProxy::start(env.stack.temporal.address()).await;
    let address = format!("127.0.0.1:{}", proxy.port);
    let config = env.config(
        &env.pooled_url,
        &env.direct_url,
        &[
            ("TEMPORAL_ADDRESS", address.as_str()),
            ("OSP_SHUTDOWN_GRACE_SECONDS", "1"),
        ],
    );
    let bridge = RunningBridge::spawn(config.clone());
    eventually(Duration::from_secs(30), "ready", || async {
        bridge.health.readiness().is_ok().then_some(())
    })
    .await;
    // Temporal hangs: five starts stay in flight.
    proxy.set_frozen(true);
    let organizations = emit_bootstraps(&env.direct_url, 5, 1).await;
    eventually(Duration::from_secs(20), "five starts in flight", || async {
        (bridge.metric("osp_bridge_dispatches_in_flight").await == 5.0).then_some(())
    })
    .await;
    let metrics = bridge.metrics.clone();
    let stopping = Instant::now();
    bridge.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "{:?}",
        stopping.elapsed()
    );
    assert_eq!(
        metric_value(&metrics.render().await, "osp_bridge_jobs_released_total"),
        5.0
    );
    let client = env.client().await;
    let rows = client
        .query(
            "select status, error_message, attempts from workflow_queue_projection",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 5);
    for row in &rows {
        assert_eq!(row.get::<_, &str>(0), "pending");
        let message: String = row.get(1);
        assert!(
            message.contains("at shutdown before its start was confirmed"),
            "{message}"
        );
        assert_eq!(row.get::<_, i32>(2), 1);
    }

    // Temporal answers again; the next bridge delivers them, each started once.
    proxy.set_frozen(false);
    let bridge = RunningBridge::spawn(config);
    let statuses = wait_settled(&client, 5, Duration::from_secs(60)).await;
    assert_eq!(statuses.get("completed"), Some(&5), "{statuses:?}");
    assert_one_execution_each(
        &env.temporal().await,
        &organizations,
        Duration::from_secs(30),
    )
    .await;
    bridge.stop().await;
}
