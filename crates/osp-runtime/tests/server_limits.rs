//! The health server under a flood of slow clients: `/readyz` keeps answering, slow sockets
//! are closed by the server (header-read timeout, connection cap), so they cannot exhaust the
//! file descriptors the process shares with its database and Temporal connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, ensure};
use osp_runtime::server::{self, Limits};
use osp_runtime::{Health, Metrics};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;

/// A request cut off before the blank line that ends its head.
const PARTIAL: &[u8] = b"GET /readyz HTTP/1.1\r\nHost: osp\r\nX-Slow: ";

/// How many slow sockets the test can afford: each costs one descriptor on the client side
/// and, while the server holds it, one on the server side. Raises the soft limit towards the
/// hard one first, as a service manager would for a real server.
fn affordable_sockets(wanted: usize, server_side: usize) -> usize {
    use rustix::process::{Resource, getrlimit, setrlimit};
    // Room for the runtime, the listener, stdio and the test harness.
    const SPARE: u64 = 128;
    let need = (wanted + server_side) as u64 + SPARE;
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|current| current < need) {
        let raised = limit.maximum.map_or(need, |maximum| maximum.min(need));
        limit.current = Some(raised);
        // Failing to raise leaves the old limit, which the sizing below respects.
        let _ = setrlimit(Resource::Nofile, limit);
    }
    match getrlimit(Resource::Nofile).current {
        None => wanted,
        Some(current) => (current.saturating_sub(server_side as u64 + SPARE) as usize).min(wanted),
    }
}

async fn open_slow_sockets(address: SocketAddr, count: usize) -> anyhow::Result<Vec<TcpStream>> {
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let mut socket = TcpStream::connect(address).await?;
        socket.write_all(PARTIAL).await?;
        sockets.push(socket);
    }
    Ok(sockets)
}

/// One `GET` on a fresh connection; the status code.
async fn get_status(address: SocketAddr, path: &str) -> anyhow::Result<u16> {
    let mut socket = TcpStream::connect(address).await?;
    socket
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: osp\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
    let mut response = Vec::new();
    socket.read_to_end(&mut response).await?;
    let head = String::from_utf8_lossy(&response);
    head.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("not an HTTP response: {head:?}"))
}

/// How many sockets the server has closed so far, with a wake-up on each.
#[derive(Debug, Default)]
struct Closes {
    count: AtomicUsize,
    changed: Notify,
}

/// Reads each socket until the server closes it, counting the closed ones.
fn count_closes(sockets: Vec<TcpStream>) -> Arc<Closes> {
    let closed = Arc::new(Closes::default());
    for mut socket in sockets {
        let closed = closed.clone();
        tokio::spawn(async move {
            let mut buffer = [0u8; 1024];
            // End of stream or a reset: either way the server let go of the socket.
            while let Ok(read) = socket.read(&mut buffer).await {
                if read == 0 {
                    break;
                }
            }
            closed.count.fetch_add(1, Ordering::SeqCst);
            closed.changed.notify_waiters();
        });
    }
    closed
}

/// Waits until at least `at_least` sockets are closed or the deadline passes; the count.
async fn wait_for_closes(closed: &Closes, at_least: usize, within: Duration) -> usize {
    let deadline = Instant::now() + within;
    loop {
        // Registered before the check, so a close between the two is not missed.
        let changed = closed.changed.notified();
        let now = closed.count.load(Ordering::SeqCst);
        if now >= at_least || tokio::time::timeout_at(deadline, changed).await.is_err() {
            return closed.count.load(Ordering::SeqCst);
        }
    }
}

async fn readyz_within_a_second(address: SocketAddr) -> anyhow::Result<()> {
    let started = Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(1), get_status(address, "/readyz"))
        .await
        .context("/readyz did not answer within a second")??;
    ensure!(status == 200, "/readyz answered {status}");
    eprintln!("/readyz 200 after {:?}", started.elapsed());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_9_slow_sockets_are_closed_after_the_header_timeout_and_readyz_answers()
-> anyhow::Result<()> {
    // The cap is above the flood here, so only the header-read timeout can close them.
    let limits = Limits {
        header_read_timeout: Duration::from_millis(500),
        connection_timeout: Duration::from_secs(30),
        max_connections: 4096,
    };
    let count = affordable_sockets(2_000, 2_000);
    ensure!(count >= 500, "only {count} descriptors to spare");
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = server::spawn_with(listener, Health::new(), Metrics::new(), limits);

    let slow = open_slow_sockets(address, count).await?;
    readyz_within_a_second(address).await?;
    let closed = count_closes(slow);
    let seen = wait_for_closes(&closed, count, Duration::from_secs(10)).await;
    ensure!(
        seen == count,
        "the server closed {seen} of {count} slow sockets within 10 s"
    );
    server.abort();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn point_9_connections_beyond_the_cap_evict_the_oldest_and_readyz_answers()
-> anyhow::Result<()> {
    // A header timeout far beyond the test: only the cap can close sockets.
    let limits = Limits {
        header_read_timeout: Duration::from_secs(120),
        connection_timeout: Duration::from_secs(300),
        max_connections: 64,
    };
    let count = affordable_sockets(2_000, limits.max_connections);
    ensure!(count >= 500, "only {count} descriptors to spare");
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let server = server::spawn_with(listener, Health::new(), Metrics::new(), limits);

    let slow = open_slow_sockets(address, count).await?;
    let closed = count_closes(slow);
    let over = count - limits.max_connections;
    let seen = wait_for_closes(&closed, over, Duration::from_secs(10)).await;
    ensure!(
        seen >= over,
        "the server holds {} slow sockets, cap {}",
        count - seen,
        limits.max_connections
    );
    readyz_within_a_second(address).await?;
    server.abort();
    Ok(())
}
