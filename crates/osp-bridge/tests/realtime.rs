//! Supabase Realtime as a wake-up source, against a Phoenix-channel server in this file that
//! speaks the frames Supabase documents (join reply, system message, postgres_changes,
//! heartbeat replies). LISTEN goes through the transaction-mode pooler in these tests, so
//! it never delivers and Realtime is the only hint. Whatever the channel does (delivers,
//! stays silent, drops the socket, ignores heartbeats, refuses the join), every event
//! arrives.

#![allow(clippy::unwrap_used, reason = "tests")]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{
    Env, HEAVY, RunningBridge, emit_bootstrap, emit_bootstraps, eventually, fast_listen,
    wait_settled,
};
use futures::{SinkExt, StreamExt};
use osp_bridge::{Bridge, RealtimeTiming};
use osp_core::events::{ORGANIZATION_BOOTSTRAP_INITIATED, ORGANIZATION_BOOTSTRAP_WORKFLOW_STARTED};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

const KEY: &str = "test-service-role-key";
const TOPIC: &str = "realtime:osp_workflow_queue";

/// What one connection of the fake server does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Joins, subscribes, and sends a change for every new pending job.
    Deliver,
    /// Joins and subscribes, then never sends a change.
    Silent,
    /// Like `Deliver`, but drops the socket (no close frame) this long after the join.
    DropAfter(Duration),
    /// Joins and subscribes but never answers a heartbeat.
    NoHeartbeatReply,
    /// Answers the join with an error.
    RefuseJoin,
}

/// What the fake server saw.
#[derive(Debug, Default)]
struct Seen {
    connections: AtomicUsize,
    joins: AtomicUsize,
    heartbeats: AtomicUsize,
    changes: AtomicUsize,
    last_join: Mutex<Option<Value>>,
    last_uri: Mutex<Option<String>>,
}

/// A Phoenix-channel server on a free port; connection `n` behaves as `behaviours[n]`
/// (the last one repeats).
struct FakeRealtime {
    port: u16,
    seen: Arc<Seen>,
    task: JoinHandle<()>,
    listener_task: JoinHandle<()>,
}

impl Drop for FakeRealtime {
    fn drop(&mut self) {
        self.task.abort();
        self.listener_task.abort();
    }
}

impl FakeRealtime {
    /// Changes come from LISTEN on the database, as Realtime's come from replication.
    async fn start(database_url: &str, behaviours: Vec<Behaviour>) -> FakeRealtime {
        let (changes, _) = broadcast::channel::<String>(4096);
        let (client, mut notifications) = osp_activities::db::connect_listening(database_url)
            .await
            .unwrap();
        client
            .batch_execute("listen osp_workflow_queue")
            .await
            .unwrap();
        let sender = changes.clone();
        let listener_task = tokio::spawn(async move {
            let _client = client;
            while let Some(notification) = notifications.recv().await {
                let _ = sender.send(notification.payload().to_owned());
            }
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let seen = Arc::new(Seen::default());
        let state = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let index = state.connections.fetch_add(1, Ordering::SeqCst);
                let behaviour = behaviours
                    .get(index)
                    .or(behaviours.last())
                    .copied()
                    .unwrap_or(Behaviour::Deliver);
                tokio::spawn(serve(stream, behaviour, state.clone(), changes.subscribe()));
            }
        });
        FakeRealtime {
            port,
            seen,
            task,
            listener_task,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn joins(&self) -> usize {
        self.seen.joins.load(Ordering::SeqCst)
    }
}

fn frame(value: &Value) -> Message {
    Message::text(value.to_string())
}

/// One websocket connection, speaking Phoenix's v1 JSON frames as Realtime does.
async fn serve(
    stream: tokio::net::TcpStream,
    behaviour: Behaviour,
    seen: Arc<Seen>,
    mut changes: broadcast::Receiver<String>,
) {
    let uri_seen = seen.clone();
    #[expect(
        clippy::result_large_err,
        reason = "the callback's error type is tungstenite's HTTP response"
    )]
    let callback = move |request: &Request, response: Response| {
        *uri_seen.last_uri.lock().unwrap() = Some(request.uri().to_string());
        Ok(response)
    };
    let Ok(mut socket) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let mut joined_at: Option<tokio::time::Instant> = None;
    loop {
        let drop_at = match (behaviour, joined_at) {
            (Behaviour::DropAfter(after), Some(at)) => Some(at + after),
            _ => None,
        };
        tokio::select! {
            message = socket.next() => {
                let Some(Ok(Message::Text(text))) = message else {
                    if matches!(message, Some(Ok(_))) {
                        continue;
                    }
                    return;
                };
                let request: Value = serde_json::from_str(text.as_str()).unwrap();
                let reference = request["ref"].clone();
                match (request["topic"].as_str(), request["event"].as_str()) {
                    (Some("phoenix"), Some("heartbeat")) => {
                        seen.heartbeats.fetch_add(1, Ordering::SeqCst);
                        if behaviour != Behaviour::NoHeartbeatReply {
                            let reply = json!({"topic": "phoenix", "event": "phx_reply",
                                "payload": {"status": "ok", "response": {}}, "ref": reference});
                            let _ = socket.send(frame(&reply)).await;
                        }
                    }
                    (Some(TOPIC), Some("phx_join")) => {
                        seen.joins.fetch_add(1, Ordering::SeqCst);
                        *seen.last_join.lock().unwrap() = Some(request.clone());
                        if behaviour == Behaviour::RefuseJoin {
                            let reply = json!({"topic": TOPIC, "event": "phx_reply", "ref": reference,
                                "payload": {"status": "error", "response": {"reason": "unmatched topic"}}});
                            let _ = socket.send(frame(&reply)).await;
                            continue;
                        }
                        let reply = json!({"topic": TOPIC, "event": "phx_reply", "ref": reference,
                            "payload": {"status": "ok", "response": {"postgres_changes": [{
                                "id": 31_415_926, "event": "*", "schema": "public",
                                "table": "workflow_queue_projection", "filter": "status=eq.pending"}]}}});
                        let _ = socket.send(frame(&reply)).await;
                        let system = json!({"topic": TOPIC, "event": "system", "ref": null,
                            "payload": {"channel": "osp_workflow_queue", "extension": "postgres_changes",
                                        "message": "Subscribed to PostgreSQL", "status": "ok"}});
                        let _ = socket.send(frame(&system)).await;
                        joined_at = Some(tokio::time::Instant::now());
                    }
                    _ => {}
                }
            }
            change = changes.recv() => {
                let Ok(job_id) = change else { continue };
                let delivers = matches!(behaviour, Behaviour::Deliver | Behaviour::DropAfter(_));
                if joined_at.is_some() && delivers {
                    seen.changes.fetch_add(1, Ordering::SeqCst);
                    let change = json!({"topic": TOPIC, "event": "postgres_changes", "ref": null,
                        "payload": {"ids": [31_415_926], "data": {
                            "schema": "public", "table": "workflow_queue_projection",
                            "commit_timestamp": "2025-11-28T10:00:00Z", "type": "INSERT",
                            "columns": [{"name": "id", "type": "uuid"}, {"name": "status", "type": "text"}],
                            "record": {"id": job_id, "status": "pending"}, "errors": null}}});
                    let _ = socket.send(frame(&change)).await;
                }
            }
            () = async {
                match drop_at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => {
                // Gone without a close frame, as a dropped connection is.
                return;
            }
        }
    }
}

fn timing() -> RealtimeTiming {
    RealtimeTiming {
        heartbeat_interval: Duration::from_millis(300),
        join_timeout: Duration::from_secs(2),
        reconnect_initial: Duration::from_millis(200),
        reconnect_max: Duration::from_secs(1),
    }
}

/// A bridge whose only hint is Realtime (LISTEN goes through the pooler); sweeps every 5 s
/// while Realtime counts as delivering, every 500 ms otherwise.
fn spawn_bridge(env: &Env, realtime: &FakeRealtime) -> RunningBridge {
    let url = realtime.url();
    let config = env.config(
        &env.pooled_url,
        &env.pooled_url,
        &[
            ("SUPABASE_URL", url.as_str()),
            ("SUPABASE_SERVICE_ROLE_KEY", KEY),
            ("OSP_BRIDGE_REALTIME", "true"),
        ],
    );
    RunningBridge::spawn_bridge(
        Bridge::new(config)
            .with_listen_timing(fast_listen())
            .with_realtime_timing(timing()),
    )
}

async fn realtime_up(bridge: &RunningBridge) -> bool {
    bridge
        .metric("osp_bridge_wakeup_source_up{source=\"realtime\"}")
        .await
        == 1.0
}

/// Emits one bootstrap request and returns how long its start took, by the database's clock.
async fn start_latency(client: &tokio_postgres::Client) -> f64 {
    let organization = emit_bootstrap(client).await;
    eventually(Duration::from_secs(20), "the start", || async {
        client
            .query_opt(
                "select extract(epoch from s.created_at - i.created_at)::float8
                 from domain_events i
                 join domain_events s on s.stream_id = i.stream_id and s.event_type = $2
                 where i.stream_id = $1 and i.event_type = $3",
                &[
                    &organization,
                    &ORGANIZATION_BOOTSTRAP_WORKFLOW_STARTED,
                    &ORGANIZATION_BOOTSTRAP_INITIATED,
                ],
            )
            .await
            .unwrap()
            .map(|row| row.get::<_, f64>(0))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn realtime_changes_wake_the_bridge_within_milliseconds() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let realtime = FakeRealtime::start(&env.direct_url, vec![Behaviour::Deliver]).await;
    let bridge = spawn_bridge(&env, &realtime);
    eventually(Duration::from_secs(20), "Realtime subscribed", || async {
        realtime_up(&bridge).await.then_some(())
    })
    .await;
    // The join as Supabase expects it: key in the URL and as the access token, a
    // postgres_changes subscription to pending jobs.
    let uri = realtime.seen.last_uri.lock().unwrap().clone().unwrap();
    assert!(uri.starts_with("/realtime/v1/websocket?vsn=1.0.0"), "{uri}");
    assert!(uri.contains(&format!("apikey={KEY}")), "{uri}");
    let join = realtime.seen.last_join.lock().unwrap().clone().unwrap();
    assert_eq!(join["payload"]["access_token"], KEY);
    assert_eq!(
        join["payload"]["config"]["postgres_changes"][0]["table"],
        "workflow_queue_projection"
    );

    let client = env.client().await;
    let mut latencies = Vec::new();
    for _ in 0..20 {
        latencies.push(start_latency(&client).await);
    }
    latencies.sort_by(f64::total_cmp);
    let median = latencies[latencies.len() / 2];
    eprintln!("Realtime hint to start: median {:.1} ms", median * 1000.0);
    // Well under the 5 s sweep: the hints did it.
    assert!(median < 1.0, "median {median} s");
    assert!(
        bridge
            .metric("osp_bridge_wakeups_total{source=\"realtime\"}")
            .await
            >= 20.0
    );
    assert_eq!(
        bridge
            .metric("osp_bridge_wakeup_source_up{source=\"listen\"}")
            .await,
        0.0
    );
    // Heartbeats go out and are answered: still one join.
    eventually(Duration::from_secs(10), "heartbeats", || async {
        (realtime.seen.heartbeats.load(Ordering::SeqCst) >= 3).then_some(())
    })
    .await;
    assert_eq!(realtime.joins(), 1);
    assert!(realtime_up(&bridge).await);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_joined_channel_that_never_delivers_loses_nothing() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let realtime = FakeRealtime::start(&env.direct_url, vec![Behaviour::Silent]).await;
    let bridge = spawn_bridge(&env, &realtime);
    eventually(Duration::from_secs(20), "Realtime subscribed", || async {
        realtime_up(&bridge).await.then_some(())
    })
    .await;
    emit_bootstraps(&env.direct_url, 200, 4).await;
    let client = env.client().await;
    let statuses = wait_settled(&client, 200, Duration::from_secs(60)).await;
    assert_eq!(statuses.get("completed"), Some(&200), "{statuses:?}");
    // No hint ever came: the bridge's own sweeps delivered everything.
    for hint in ["notify", "realtime"] {
        let series = format!("osp_bridge_wakeups_total{{source=\"{hint}\"}}");
        assert_eq!(bridge.metric(&series).await, 0.0, "{series}");
    }
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_socket_is_rejoined_and_swept() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let realtime = FakeRealtime::start(
        &env.direct_url,
        vec![
            Behaviour::DropAfter(Duration::from_secs(2)),
            Behaviour::Deliver,
        ],
    )
    .await;
    let bridge = spawn_bridge(&env, &realtime);
    eventually(Duration::from_secs(20), "Realtime subscribed", || async {
        realtime_up(&bridge).await.then_some(())
    })
    .await;
    let client = env.client().await;
    // Emitted while the first socket lives, then across the drop.
    let writers = emit_bootstraps(&env.direct_url, 200, 2);
    let (_organizations, ()) = tokio::join!(writers, async {
        eventually(Duration::from_secs(20), "the second join", || async {
            (realtime.joins() >= 2).then_some(())
        })
        .await;
    });
    eventually(Duration::from_secs(20), "Realtime back", || async {
        realtime_up(&bridge).await.then_some(())
    })
    .await;
    let statuses = wait_settled(&client, 200, Duration::from_secs(60)).await;
    assert_eq!(statuses.get("completed"), Some(&200), "{statuses:?}");
    // After the rejoin, hints flow again.
    let latency = start_latency(&client).await;
    assert!(latency < 1.0, "{latency} s after the rejoin");
    assert_eq!(realtime.seen.connections.load(Ordering::SeqCst), 2);
    bridge.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_join_and_unanswered_heartbeats_end_in_a_rejoin() {
    let _turn = HEAVY.lock().await;
    let env = Env::start().await;
    let realtime = FakeRealtime::start(
        &env.direct_url,
        vec![
            Behaviour::RefuseJoin,
            Behaviour::NoHeartbeatReply,
            Behaviour::Deliver,
        ],
    )
    .await;
    let bridge = spawn_bridge(&env, &realtime);
    eventually(Duration::from_secs(30), "the third connection", || async {
        (realtime.seen.connections.load(Ordering::SeqCst) >= 3 && realtime_up(&bridge).await)
            .then_some(())
    })
    .await;
    assert_eq!(realtime.joins(), 3);
    let client = env.client().await;
    let latency = start_latency(&client).await;
    assert!(latency < 1.0, "{latency} s");
    // It stays on the healthy connection.
    let connections = realtime.seen.connections.load(Ordering::SeqCst);
    eventually(Duration::from_secs(10), "heartbeats answered", || async {
        (realtime.seen.heartbeats.load(Ordering::SeqCst) >= 6).then_some(())
    })
    .await;
    assert_eq!(
        realtime.seen.connections.load(Ordering::SeqCst),
        connections
    );
    bridge.stop().await;
}
