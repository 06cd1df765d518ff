//! The Supabase Realtime wake-up source: a Phoenix channel over a websocket, joined with a
//! `postgres_changes` subscription to pending rows of `workflow_queue_projection`. Realtime
//! is at-most-once, so it is only ever a hint: it counts as delivering only after the server's
//! system message "Subscribed to PostgreSQL", heartbeats every 25 s and treats a missing
//! reply as a dead socket, and on any trouble reconnects and rejoins with backoff. Every join
//! is followed by a sweep.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use osp_config::{SupabaseSettings, redact_url};
use osp_runtime::backoff::Backoff;
use osp_runtime::error_chain;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

use crate::wake::{Source, Wakeups};

/// The channel's topic; any name works, Realtime routes by the join's configuration.
const TOPIC: &str = "realtime:osp_workflow_queue";
/// Protocol version of the JSON (object) serializer.
const VSN: &str = "1.0.0";
/// What the server says once the replication subscription is in place.
const SUBSCRIBED: &str = "Subscribed to PostgreSQL";

/// Timing of the Realtime source.
#[derive(Debug, Clone, Copy)]
pub struct RealtimeTiming {
    /// Between heartbeats; a heartbeat still unanswered at the next one ends the socket.
    pub heartbeat_interval: Duration,
    /// How long the join reply and the "Subscribed" system message may take.
    pub join_timeout: Duration,
    /// Ceiling of the first reconnection delay; doubles up to `reconnect_max`, each delay drawn
    /// from the upper half of its ceiling (jitter).
    pub reconnect_initial: Duration,
    pub reconnect_max: Duration,
}

impl Default for RealtimeTiming {
    fn default() -> Self {
        RealtimeTiming {
            heartbeat_interval: Duration::from_secs(25),
            join_timeout: Duration::from_secs(10),
            reconnect_initial: Duration::from_secs(1),
            reconnect_max: Duration::from_secs(30),
        }
    }
}

/// Where to connect, derived from `SUPABASE_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
    /// Path and query of the websocket, without the key.
    path: String,
}

/// Why `SUPABASE_URL` gives no Realtime endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("SUPABASE_URL is not a URL")]
    Parse(#[from] url::ParseError),
    #[error("SUPABASE_URL must be an http:// or https:// URL, not {0}://")]
    Scheme(String),
    #[error("SUPABASE_URL has no host")]
    NoHost,
}

impl Endpoint {
    fn parse(text: &str) -> Result<Endpoint, EndpointError> {
        let url = url::Url::parse(text)?;
        let tls = match url.scheme() {
            "https" => true,
            "http" => false,
            other => return Err(EndpointError::Scheme(other.to_owned())),
        };
        // Credentials in the URL are not used for Realtime; the service-role key is.
        let host = match url.host() {
            Some(url::Host::Domain(domain)) if !domain.is_empty() => domain.to_owned(),
            Some(url::Host::Ipv4(address)) => address.to_string(),
            Some(url::Host::Ipv6(address)) => address.to_string(),
            _ => return Err(EndpointError::NoHost),
        };
        let port = url
            .port_or_known_default()
            .unwrap_or(if tls { 443 } else { 80 });
        Ok(Endpoint {
            tls,
            host,
            port,
            path: format!(
                "{}/realtime/v1/websocket?vsn={VSN}",
                url.path().trim_end_matches('/')
            ),
        })
    }

    /// The websocket URL with the key; never logged.
    fn url_with_key(&self, key: &str) -> String {
        let scheme = if self.tls { "wss" } else { "ws" };
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let key: String = url::form_urlencoded::byte_serialize(key.as_bytes()).collect();
        format!("{scheme}://{host}:{}{}&apikey={key}", self.port, self.path)
    }
}

/// The `phx_join` message: changes of pending jobs (new ones, and failed attempts put back).
fn join_message(key: &str, join_ref: &str) -> Value {
    json!({
        "topic": TOPIC,
        "event": "phx_join",
        "payload": {
            "config": {
                "broadcast": {"ack": false, "self": false},
                "presence": {"key": ""},
                "postgres_changes": [{
                    "event": "*",
                    "schema": "public",
                    "table": "workflow_queue_projection",
                    "filter": "status=eq.pending"
                }],
                "private": false
            },
            "access_token": key
        },
        "ref": join_ref,
        "join_ref": join_ref
    })
}

fn heartbeat_message(reference: &str) -> Value {
    json!({"topic": "phoenix", "event": "heartbeat", "payload": {}, "ref": reference})
}

/// Runs until the task is aborted.
pub async fn run(settings: SupabaseSettings, wakeups: Arc<Wakeups>, timing: RealtimeTiming) {
    let endpoint = match Endpoint::parse(&settings.url) {
        Ok(endpoint) => endpoint,
        Err(error) => {
            tracing::error!(error = %error_chain(&error), "Realtime disabled");
            return;
        }
    };
    let mut backoff = Backoff::new(timing.reconnect_initial, timing.reconnect_max);
    loop {
        let started = Instant::now();
        let error = session(
            &endpoint,
            settings.service_role_key.expose(),
            &wakeups,
            timing,
        )
        .await;
        wakeups.set_up(Source::Realtime, false);
        if started.elapsed() > timing.reconnect_max {
            backoff.reset();
        }
        let (delay, attempt) = backoff.next_delay();
        tracing::warn!(
            error = %error_chain(&error),
            url = %redact_url(&settings.url),
            retry_in_ms = delay.as_millis(),
            attempt,
            "Realtime channel down; rejoining"
        );
        tokio::time::sleep(delay).await;
    }
}

/// Why a Realtime session ended (or never began); the next one starts after a backoff.
#[derive(Debug, thiserror::Error)]
pub enum SessionEnd {
    #[error("connecting to {host}:{port}")]
    Connect {
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("TLS settings")]
    TlsConfig(#[source] rustls::Error),
    #[error("{0} is not a TLS server name")]
    ServerName(String, #[source] rustls::pki_types::InvalidDnsNameError),
    #[error("TLS with {host}")]
    Tls {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("websocket request")]
    Request(#[source] tokio_tungstenite::tungstenite::Error),
    /// The error names the status or the I/O problem, not the request (which has the key).
    #[error("websocket handshake")]
    Handshake(#[source] tokio_tungstenite::tungstenite::Error),
    #[error("websocket connection timed out")]
    ConnectTimeout,
    #[error("sending {what}")]
    Send {
        what: &'static str,
        #[source]
        source: tokio_tungstenite::tungstenite::Error,
    },
    #[error("heartbeat unanswered")]
    HeartbeatUnanswered,
    #[error("joined, but no \"{SUBSCRIBED}\" within {0} ms")]
    NotSubscribed(u128),
    #[error("no reply to phx_join within {0} ms")]
    NoJoinReply(u128),
    #[error("socket closed")]
    SocketClosed,
    #[error("socket error")]
    Socket(#[source] tokio_tungstenite::tungstenite::Error),
    /// The server's close frame, cut short.
    #[error("server closed the socket{0}")]
    ServerClosed(String),
    #[error("join refused: {0}")]
    JoinRefused(String),
    #[error("subscription failed: {0}")]
    SubscriptionFailed(String),
    #[error("channel error")]
    ChannelError,
    #[error("channel closed by the server")]
    ChannelClosed,
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

async fn open(endpoint: &Endpoint) -> Result<Box<dyn Stream>, SessionEnd> {
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|source| SessionEnd::Connect {
            host: endpoint.host.clone(),
            port: endpoint.port,
            source,
        })?;
    let _ = tcp.set_nodelay(true);
    if !endpoint.tls {
        return Ok(Box::new(tcp));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(SessionEnd::TlsConfig)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from(endpoint.host.clone())
        .map_err(|error| SessionEnd::ServerName(endpoint.host.clone(), error))?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|source| SessionEnd::Tls {
            host: endpoint.host.clone(),
            source,
        })?;
    Ok(Box::new(tls))
}

/// One socket, from connect to failure; returns why it ended.
async fn session(
    endpoint: &Endpoint,
    key: &str,
    wakeups: &Wakeups,
    timing: RealtimeTiming,
) -> SessionEnd {
    let connect = async {
        let stream = open(endpoint).await?;
        let mut request = endpoint
            .url_with_key(key)
            .into_client_request()
            .map_err(SessionEnd::Request)?;
        if let Ok(value) = HeaderValue::from_str(key) {
            request.headers_mut().insert("apikey", value);
        }
        tokio_tungstenite::client_async(request, stream)
            .await
            .map(|(socket, _)| socket)
            .map_err(SessionEnd::Handshake)
    };
    let mut socket = match tokio::time::timeout(timing.join_timeout, connect).await {
        Ok(Ok(socket)) => socket,
        Ok(Err(error)) => return error,
        Err(_) => return SessionEnd::ConnectTimeout,
    };

    let mut next_ref: u64 = 1;
    let join_ref = next_ref.to_string();
    next_ref += 1;
    if let Err(error) = socket
        .send(Message::text(join_message(key, &join_ref).to_string()))
        .await
    {
        return SessionEnd::Send {
            what: "phx_join",
            source: error,
        };
    }
    let join_deadline = Instant::now() + timing.join_timeout;
    let mut joined = false;
    let mut subscribed = false;
    let mut heartbeat = tokio::time::interval_at(
        Instant::now() + timing.heartbeat_interval,
        timing.heartbeat_interval,
    );
    let mut pending_heartbeat: Option<String> = None;

    loop {
        let message = tokio::select! {
            message = socket.next() => message,
            _ = heartbeat.tick() => {
                if pending_heartbeat.is_some() {
                    return SessionEnd::HeartbeatUnanswered;
                }
                let reference = next_ref.to_string();
                next_ref += 1;
                if let Err(error) = socket.send(Message::text(heartbeat_message(&reference).to_string())).await {
                    return SessionEnd::Send { what: "heartbeat", source: error };
                }
                pending_heartbeat = Some(reference);
                continue;
            }
            () = tokio::time::sleep_until(join_deadline), if !subscribed => {
                let waited = timing.join_timeout.as_millis();
                return if joined {
                    SessionEnd::NotSubscribed(waited)
                } else {
                    SessionEnd::NoJoinReply(waited)
                };
            }
        };
        let text = match message {
            None => return SessionEnd::SocketClosed,
            Some(Err(error)) => return SessionEnd::Socket(error),
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(frame))) => {
                return SessionEnd::ServerClosed(
                    frame
                        .map(|f| short(&format!(": {} {}", f.code, f.reason)))
                        .unwrap_or_default(),
                );
            }
            Some(Ok(_)) => continue,
        };
        let Ok(frame) = serde_json::from_str::<Value>(text.as_str()) else {
            tracing::debug!("Realtime sent a frame that is not JSON; ignored");
            continue;
        };
        let event = frame["event"].as_str().unwrap_or_default();
        let topic = frame["topic"].as_str().unwrap_or_default();
        let reference = frame["ref"].as_str();
        let status = frame["payload"]["status"].as_str();
        match (topic, event) {
            ("phoenix", "phx_reply")
                if reference.is_some() && reference == pending_heartbeat.as_deref() =>
            {
                pending_heartbeat = None;
            }
            (TOPIC, "phx_reply") if reference == Some(join_ref.as_str()) => {
                if status == Some("ok") {
                    joined = true;
                    tracing::debug!("Realtime channel joined; waiting for the subscription");
                } else {
                    return SessionEnd::JoinRefused(short(
                        &frame["payload"]["response"].to_string(),
                    ));
                }
            }
            (TOPIC, "system") => {
                let text = frame["payload"]["message"].as_str().unwrap_or_default();
                if status == Some("ok") && text.contains(SUBSCRIBED) {
                    subscribed = true;
                    // A change: set_up sweeps, which claims whatever came before the join.
                    wakeups.set_up(Source::Realtime, true);
                } else if status == Some("error") {
                    return SessionEnd::SubscriptionFailed(short(text));
                }
            }
            (TOPIC, "postgres_changes") => wakeups.wake(Source::Realtime),
            (TOPIC, "phx_error") => return SessionEnd::ChannelError,
            (TOPIC, "phx_close") => return SessionEnd::ChannelClosed,
            _ => {}
        }
    }
}

/// A server-provided text, cut short for a log line.
fn short(text: &str) -> String {
    text.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::Mutex;

    use osp_config::Secret;
    use tokio::net::TcpListener;
    use tokio::sync::Notify;
    use tracing::instrument::WithSubscriber;

    use super::*;
    use crate::metrics::BridgeMetrics;

    /// Everything the subscriber writes, with a wake-up per write.
    #[derive(Debug, Clone, Default)]
    struct Logs {
        text: Arc<Mutex<Vec<u8>>>,
        written: Arc<Notify>,
    }

    impl Logs {
        fn text(&self) -> String {
            String::from_utf8_lossy(&self.text.lock().unwrap()).into_owned()
        }

        /// Waits until `needle` was logged `count` times; false at the deadline.
        async fn wait_for(&self, needle: &str, count: usize, within: Duration) -> bool {
            let deadline = Instant::now() + within;
            loop {
                let written = self.written.notified();
                if self.text().matches(needle).count() >= count {
                    return true;
                }
                if tokio::time::timeout_at(deadline, written).await.is_err() {
                    return false;
                }
            }
        }
    }

    impl io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.text.lock().unwrap().extend_from_slice(buf);
            self.written.notify_waiters();
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn point_11_reconnect_logs_never_show_url_credentials() {
        const PASSWORD: &str = "hunter2-in-the-url";
        let logs = Logs::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();

        // One server accepts and closes at once; the other port refuses.
        let closing = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let closing_port = closing.local_addr().unwrap().port();
        let closer = tokio::spawn(async move {
            while let Ok((socket, _)) = closing.accept().await {
                drop(socket);
            }
        });
        let refusing_port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };

        let registry = prometheus::Registry::new();
        let wakeups = Arc::new(Wakeups::new(BridgeMetrics::register(&registry).unwrap()));
        let timing = RealtimeTiming {
            heartbeat_interval: Duration::from_secs(5),
            join_timeout: Duration::from_secs(5),
            reconnect_initial: Duration::from_millis(1),
            reconnect_max: Duration::from_millis(5),
        };
        let settings = |port: u16| SupabaseSettings {
            url: format!("http://osp:{PASSWORD}@127.0.0.1:{port}/"),
            service_role_key: Secret::new("service-role-key"),
        };
        let clients = async {
            tokio::join!(
                run(settings(closing_port), wakeups.clone(), timing),
                run(settings(refusing_port), wakeups.clone(), timing),
            )
        }
        .with_subscriber(subscriber);
        let enough = tokio::select! {
            _ = clients => false,
            enough = logs.wait_for("rejoining", 6, Duration::from_secs(20)) => enough,
        };
        closer.abort();
        let text = logs.text();
        assert!(enough, "fewer than 6 reconnects logged:\n{text}");
        assert!(text.contains("osp:[redacted]@127.0.0.1"), "{text}");
        assert!(!text.contains(PASSWORD), "the password was logged:\n{text}");
    }

    #[test]
    fn endpoints_from_supabase_urls() {
        let cloud = Endpoint::parse("https://abcdefgh.supabase.co").unwrap();
        assert_eq!(
            cloud,
            Endpoint {
                tls: true,
                host: "abcdefgh.supabase.co".into(),
                port: 443,
                path: "/realtime/v1/websocket?vsn=1.0.0".into(),
            }
        );
        assert_eq!(
            cloud.url_with_key("a.b+c"),
            "wss://abcdefgh.supabase.co:443/realtime/v1/websocket?vsn=1.0.0&apikey=a.b%2Bc"
        );
        let local = Endpoint::parse("http://127.0.0.1:54321/").unwrap();
        assert_eq!((local.tls, local.port), (false, 54321));
        assert_eq!(
            local.url_with_key("k"),
            "ws://127.0.0.1:54321/realtime/v1/websocket?vsn=1.0.0&apikey=k"
        );
        let v6 = Endpoint::parse("http://[::1]:8000/base?x=1").unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(
            v6.url_with_key("k"),
            "ws://[::1]:8000/base/realtime/v1/websocket?vsn=1.0.0&apikey=k"
        );
        assert!(Endpoint::parse("ftp://x").is_err());
    }

    #[test]
    fn the_join_subscribes_to_pending_jobs() {
        let join = join_message("KEY", "1");
        assert_eq!(join["event"], "phx_join");
        assert_eq!(join["topic"], TOPIC);
        assert_eq!(join["ref"], "1");
        assert_eq!(join["payload"]["access_token"], "KEY");
        let change = &join["payload"]["config"]["postgres_changes"][0];
        assert_eq!(change["table"], "workflow_queue_projection");
        assert_eq!(change["filter"], "status=eq.pending");
        assert_eq!(heartbeat_message("7")["topic"], "phoenix");
    }
}
