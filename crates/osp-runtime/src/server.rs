//! The HTTP endpoints of every OSP process: `GET /healthz` (alive), `GET /readyz` (200 when
//! ready, else 503 with a JSON list of reasons), `GET /metrics` (Prometheus text).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::{Health, Metrics};

/// What clients may cost the server. Its sockets come out of the same descriptor limit as the
/// database pool and the Temporal connection, so a slow or malicious client must not be able
/// to hold them for long or in numbers.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A request head not complete within this is dropped with its connection. hyper's own
    /// timeout is off unless a timer is given, so without this a client sending a partial
    /// request held its socket forever.
    pub header_read_timeout: Duration,
    /// The longest any connection lives, keep-alive included.
    pub connection_timeout: Duration,
    /// Connections held at once. Beyond it, each new connection evicts the oldest.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // A probe sends its whole request in one segment; 5 s is generous for that.
            header_read_timeout: Duration::from_secs(5),
            // `/metrics` scrapes the SDK's exporter on loopback; a minute covers any scrape.
            connection_timeout: Duration::from_secs(60),
            // Far above what probes and a scraper use, far below the descriptor limit.
            max_connections: 256,
        }
    }
}

/// Serves the endpoints on `listener` until the task is aborted.
pub fn spawn(listener: TcpListener, health: Health, metrics: Metrics) -> JoinHandle<()> {
    spawn_with(listener, health, metrics, Limits::default())
}

/// The open connections, oldest first; dropping a sender tells its connection to close.
///
/// At the cap the server keeps accepting and evicts the oldest connection rather than
/// refusing the newest: a probe sends its request as soon as it connects and is answered
/// within a millisecond, so it is always among the newest; slow clients are the old ones.
/// Refusing (closing new connections, or leaving them in the backlog behind a semaphore)
/// would let whoever filled the slots first fail every probe until their timeout, so the
/// kubelet would restart a healthy process. Eviction keeps `/readyz` answering while the
/// number of descriptors stays at the cap.
#[derive(Debug, Default)]
struct Connections {
    next_id: u64,
    open: BTreeMap<u64, oneshot::Sender<()>>,
}

/// Removes its connection from [`Connections`] when the connection's task ends.
struct Registration {
    id: u64,
    connections: Arc<Mutex<Connections>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.connections).open.remove(&self.id);
    }
}

fn lock(connections: &Mutex<Connections>) -> MutexGuard<'_, Connections> {
    // The map stays consistent whatever panicked while holding the lock.
    connections.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Registers a new connection, evicting the oldest ones beyond `max`.
fn register(
    connections: &Arc<Mutex<Connections>>,
    max: usize,
) -> (Registration, oneshot::Receiver<()>) {
    let (evict, evicted) = oneshot::channel();
    let mut guard = lock(connections);
    while guard.open.len() >= max.max(1) {
        // Dropping the sender wakes the connection's task, which closes the socket.
        if guard.open.pop_first().is_none() {
            break;
        }
    }
    let id = guard.next_id;
    guard.next_id += 1;
    guard.open.insert(id, evict);
    drop(guard);
    let registration = Registration {
        id,
        connections: connections.clone(),
    };
    (registration, evicted)
}

/// Like [`spawn`], with explicit limits.
pub fn spawn_with(
    listener: TcpListener,
    health: Health,
    metrics: Metrics,
    limits: Limits,
) -> JoinHandle<()> {
    let connections = Arc::new(Mutex::new(Connections::default()));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "health server: accept failed");
                    // Out of descriptors, most likely: give the others a moment to close
                    // instead of spinning on the same error.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (registration, evicted) = register(&connections, limits.max_connections);
            let (health, metrics) = (health.clone(), metrics.clone());
            let builder = builder.clone();
            tokio::spawn(async move {
                let _registration = registration;
                let service = service_fn(move |request| {
                    let (health, metrics) = (health.clone(), metrics.clone());
                    async move { Ok::<_, Infallible>(respond(request, &health, &metrics).await) }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service);
                // Dropping the connection closes its socket, whichever limit ends it.
                tokio::select! {
                    result = tokio::time::timeout(limits.connection_timeout, connection) => match result {
                        Ok(Ok(())) => {}
                        Ok(Err(error)) => tracing::debug!(%error, "health server: connection ended"),
                        Err(_) => tracing::debug!("health server: connection reached its time limit"),
                    },
                    _ = evicted => tracing::debug!("health server: connection evicted at the cap"),
                }
            });
        }
    })
}

fn reply(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

async fn respond(
    request: Request<Incoming>,
    health: &Health,
    metrics: &Metrics,
) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            "GET only\n".into(),
        );
    }
    match request.uri().path() {
        "/healthz" => reply(
            StatusCode::OK,
            "application/json",
            json!({"status": "alive"}).to_string(),
        ),
        "/readyz" => match health.readiness() {
            Ok(()) => reply(
                StatusCode::OK,
                "application/json",
                json!({"status": "ready"}).to_string(),
            ),
            Err(reasons) => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "application/json",
                json!({"status": "not_ready", "reasons": reasons}).to_string(),
            ),
        },
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics.render().await,
        ),
        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// The health server could not listen.
#[derive(Debug, thiserror::Error)]
#[error("health server: cannot listen on {addr}")]
pub struct BindError {
    pub addr: SocketAddr,
    #[source]
    pub source: std::io::Error,
}

/// A running health server: bound by [`HealthServer::start`], stopped (its port closed) when
/// dropped, so no return path of its owner leaves it behind.
#[derive(Debug)]
pub struct HealthServer {
    task: JoinHandle<()>,
    addr: SocketAddr,
}

impl HealthServer {
    /// Binds `addr` and serves [`spawn`]'s endpoints on it.
    pub async fn start(
        addr: SocketAddr,
        health: Health,
        metrics: Metrics,
    ) -> Result<HealthServer, BindError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| BindError { addr, source })?;
        let addr = listener.local_addr().unwrap_or(addr);
        tracing::info!(%addr, "serving /healthz, /readyz and /metrics");
        Ok(HealthServer {
            task: spawn(listener, health, metrics),
            addr,
        })
    }

    /// Where it listens (the bound port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for HealthServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}
