//! DNS records for organizations: the provider trait, a Cloudflare-style HTTP API client,
//! and the log-only provider local runs use by default.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use osp_config::redact_url;
use osp_core::activities::DnsRecord;
use serde_json::{Value, json};

/// Why a DNS operation failed.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DnsError {
    /// Whether trying again later can succeed (network, rate limit, server error).
    pub retryable: bool,
    pub message: String,
}

impl DnsError {
    fn transient(message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            message: message.into(),
        }
    }

    fn permanent(message: impl Into<String>) -> Self {
        Self {
            retryable: false,
            message: message.into(),
        }
    }
}

/// Creates and removes an organization's record. Both operations are idempotent: creating a
/// record that exists returns it, removing one that is gone succeeds.
pub trait DnsProvider: Send + Sync + fmt::Debug {
    /// Ensures `{subdomain}.{zone}` exists and returns it.
    fn ensure_record<'a>(
        &'a self,
        subdomain: &'a str,
    ) -> BoxFuture<'a, Result<DnsRecord, DnsError>>;
    /// Removes a record this provider created.
    fn remove_record<'a>(&'a self, record: &'a DnsRecord) -> BoxFuture<'a, Result<(), DnsError>>;
}

/// Logs what it would do; the default for local runs.
#[derive(Debug, Clone)]
pub struct LogDns {
    zone: String,
}

impl LogDns {
    /// Names records `{subdomain}.{zone}`.
    pub fn new(zone: impl Into<String>) -> Self {
        Self { zone: zone.into() }
    }
}

impl DnsProvider for LogDns {
    fn ensure_record<'a>(
        &'a self,
        subdomain: &'a str,
    ) -> BoxFuture<'a, Result<DnsRecord, DnsError>> {
        Box::pin(async move {
            let fqdn = format!("{subdomain}.{}", self.zone);
            tracing::info!(%fqdn, "dns (log only): record ensured");
            Ok(DnsRecord {
                record_id: format!("log:{fqdn}"),
                fqdn,
                provider: "log".to_owned(),
            })
        })
    }

    fn remove_record<'a>(&'a self, record: &'a DnsRecord) -> BoxFuture<'a, Result<(), DnsError>> {
        Box::pin(async move {
            tracing::info!(fqdn = %record.fqdn, "dns (log only): record removed");
            Ok(())
        })
    }
}

/// Settings of [`CloudflareDns`].
#[derive(Clone)]
pub struct CloudflareSettings {
    /// API base, `https://api.cloudflare.com/client/v4` in production.
    pub api_base: String,
    pub zone_id: String,
    /// The zone's name: records are `{subdomain}.{zone_name}`.
    pub zone_name: String,
    /// What each organization's CNAME points at.
    pub target: String,
    /// An API token allowed to edit the zone's DNS.
    pub api_token: String,
}

impl fmt::Debug for CloudflareSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudflareSettings")
            .field("api_base", &self.api_base)
            .field("zone_id", &self.zone_id)
            .field("zone_name", &self.zone_name)
            .field("target", &self.target)
            .field("api_token", &"[redacted]")
            .finish()
    }
}

/// What one API call may cost: the activity calling it must not hang on a server that
/// never answers, nor hold an unbounded body in memory.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Until the TCP connection is up.
    pub connect_timeout: Duration,
    /// The whole call: connect, TLS, request, response head and body.
    pub request_timeout: Duration,
    /// Largest response body read; a larger one fails the call.
    pub max_body_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            connect_timeout: Duration::from_secs(10),
            // Cloudflare answers in well under a second; the activity retries after this.
            request_timeout: Duration::from_secs(30),
            // A DNS record listing for one name is a few hundred bytes.
            max_body_bytes: 1024 * 1024,
        }
    }
}

/// A CNAME per organization through Cloudflare's v4 API (or any server speaking it).
#[derive(Clone)]
pub struct CloudflareDns {
    settings: Arc<CloudflareSettings>,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
    limits: HttpLimits,
}

impl fmt::Debug for CloudflareDns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CloudflareDns")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl CloudflareDns {
    pub fn new(settings: CloudflareSettings) -> Self {
        Self::with_limits(settings, HttpLimits::default())
    }

    /// Like [`CloudflareDns::new`], with explicit limits.
    pub fn with_limits(settings: CloudflareSettings, limits: HttpLimits) -> Self {
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(limits.connect_timeout));
        // The TLS layer decides the scheme; the TCP connector must accept `https` URIs.
        http.enforce_http(false);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let https = match hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
        {
            // Only a test or a local API speaks plain HTTP; the default base is https.
            Ok(builder) => builder.https_or_http().enable_http1().wrap_connector(http),
            Err(_) => hyper_rustls::HttpsConnectorBuilder::new()
                .with_webpki_roots()
                .https_or_http()
                .enable_http1()
                .wrap_connector(http),
        };
        Self {
            settings: Arc::new(settings),
            client: Client::builder(TokioExecutor::new()).build(https),
            limits,
        }
    }

    fn records_url(&self) -> String {
        format!(
            "{}/zones/{}/dns_records",
            self.settings.api_base.trim_end_matches('/'),
            self.settings.zone_id
        )
    }

    /// One API call within the request timeout; returns the `result` of a successful
    /// response.
    async fn call(
        &self,
        method: Method,
        url: String,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), DnsError> {
        let timeout = self.limits.request_timeout;
        let shown = redact_url(&url);
        tokio::time::timeout(timeout, self.call_unbounded(method.clone(), url, body))
            .await
            .unwrap_or_else(|_| {
                Err(DnsError::transient(format!(
                    "dns api: {method} {shown} timed out after {} ms",
                    timeout.as_millis()
                )))
            })
    }

    async fn call_unbounded(
        &self,
        method: Method,
        url: String,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), DnsError> {
        // The API base may carry credentials; what reaches a message is redacted.
        let shown = redact_url(&url);
        let body = body.map(|body| body.to_string()).unwrap_or_default();
        let request = Request::builder()
            .method(method.clone())
            .uri(&url)
            .header(
                "authorization",
                format!("Bearer {}", self.settings.api_token),
            )
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|error| {
                DnsError::permanent(format!("dns api: bad request to {shown}: {error}"))
            })?;
        let response =
            self.client.request(request).await.map_err(|error| {
                DnsError::transient(format!("dns api: {method} {shown}: {error}"))
            })?;
        let status = response.status();
        let limit = self.limits.max_body_bytes;
        let bytes = Limited::new(response.into_body(), limit)
            .collect()
            .await
            .map_err(|error| {
                if error.is::<LengthLimitError>() {
                    // Not retryable: the same call would get the same body.
                    DnsError::permanent(format!(
                        "dns api: {method} {shown}: response body larger than {limit} bytes"
                    ))
                } else {
                    DnsError::transient(format!("dns api: reading the response: {error}"))
                }
            })?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() && value["success"].as_bool() != Some(false) {
            return Ok((status, value["result"].clone()));
        }
        let reasons: Vec<String> = value["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|error| error["message"].as_str().map(str::to_owned))
            .collect();
        let message = format!(
            "dns api: {method} {shown} answered {status}{}",
            if reasons.is_empty() {
                String::new()
            } else {
                format!(": {}", reasons.join("; "))
            }
        );
        if status == StatusCode::NOT_FOUND && method == Method::DELETE {
            return Ok((status, Value::Null));
        }
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Err(DnsError::transient(message))
        } else {
            Err(DnsError::permanent(message))
        }
    }
}

impl DnsProvider for CloudflareDns {
    fn ensure_record<'a>(
        &'a self,
        subdomain: &'a str,
    ) -> BoxFuture<'a, Result<DnsRecord, DnsError>> {
        Box::pin(async move {
            let fqdn = format!("{subdomain}.{}", self.settings.zone_name);
            let (_, existing) = self
                .call(
                    Method::GET,
                    format!("{}?type=CNAME&name={fqdn}", self.records_url()),
                    None,
                )
                .await?;
            if let Some(record) = existing.as_array().and_then(|records| records.first()) {
                let content = record["content"].as_str().unwrap_or_default();
                if content != self.settings.target {
                    return Err(DnsError::permanent(format!(
                        "dns: {fqdn} already exists and points at {content}, not {}",
                        self.settings.target
                    )));
                }
                return Ok(DnsRecord {
                    record_id: record["id"].as_str().unwrap_or_default().to_owned(),
                    fqdn,
                    provider: "cloudflare".to_owned(),
                });
            }
            let (_, created) = self
                .call(
                    Method::POST,
                    self.records_url(),
                    Some(json!({
                        "type": "CNAME", "name": fqdn, "content": self.settings.target,
                        "ttl": 1, "proxied": false
                    })),
                )
                .await?;
            let record_id = created["id"]
                .as_str()
                .ok_or_else(|| DnsError::transient("dns api: created record has no id"))?;
            Ok(DnsRecord {
                record_id: record_id.to_owned(),
                fqdn,
                provider: "cloudflare".to_owned(),
            })
        })
    }

    fn remove_record<'a>(&'a self, record: &'a DnsRecord) -> BoxFuture<'a, Result<(), DnsError>> {
        Box::pin(async move {
            self.call(
                Method::DELETE,
                format!("{}/{}", self.records_url(), record.record_id),
                None,
            )
            .await
            .map(drop)
        })
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    fn client(port: u16, limits: HttpLimits) -> CloudflareDns {
        CloudflareDns::with_limits(
            CloudflareSettings {
                api_base: format!("http://127.0.0.1:{port}/client/v4"),
                zone_id: "zone".into(),
                zone_name: "example.com".into(),
                target: "lb.example.com".into(),
                api_token: "token".into(),
            },
            limits,
        )
    }

    /// The call must end on its own; this only keeps a broken build from hanging.
    const BACKSTOP: Duration = Duration::from_secs(20);

    #[tokio::test]
    async fn point_12_an_api_that_never_answers_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // Accepts, reads the request, never answers.
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                held.push(socket);
            }
        });
        let limits = HttpLimits {
            request_timeout: Duration::from_millis(300),
            ..HttpLimits::default()
        };
        let result = tokio::time::timeout(BACKSTOP, client(port, limits).ensure_record("acme"))
            .await
            .expect("the call hung past its request timeout");
        server.abort();
        let error = result.unwrap_err();
        assert!(error.retryable, "{error}");
        assert!(error.message.contains("timed out after 300 ms"), "{error}");
    }

    #[tokio::test]
    async fn point_12_an_oversized_response_body_is_refused_naming_the_limit() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        // A valid-looking 2 MiB JSON answer, streamed.
        let server = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let _ = socket.read(&mut buffer).await;
                    let padding = 2 * 1024 * 1024;
                    let body_len = padding + 40;
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {body_len}\r\n\r\n"
                    );
                    let _ = socket.write_all(head.as_bytes()).await;
                    let _ = socket
                        .write_all(br#"{"success":true,"result":[],"x":""#)
                        .await;
                    let chunk = vec![b'a'; 64 * 1024];
                    for _ in 0..padding / chunk.len() {
                        if socket.write_all(&chunk).await.is_err() {
                            return;
                        }
                    }
                    let _ = socket.write_all(br#""}     "#).await;
                });
            }
        });
        let result = tokio::time::timeout(
            BACKSTOP,
            client(port, HttpLimits::default()).ensure_record("acme"),
        )
        .await
        .expect("the call hung");
        server.abort();
        let error = result.unwrap_err();
        assert!(
            error.message.contains("larger than 1048576 bytes"),
            "{error}"
        );
    }
}
