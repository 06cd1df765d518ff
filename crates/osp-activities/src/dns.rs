//! DNS records for organizations: the provider trait, a Cloudflare-style HTTP API client,
//! and the log-only provider local runs use by default.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
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

/// A CNAME per organization through Cloudflare's v4 API (or any server speaking it).
#[derive(Clone)]
pub struct CloudflareDns {
    settings: Arc<CloudflareSettings>,
    client: Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>,
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
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(provider)
            // Only a test or a local API speaks plain HTTP; the default base is https.
            .map(|builder| builder.https_or_http().enable_http1().build())
            .unwrap_or_else(|_| {
                hyper_rustls::HttpsConnectorBuilder::new()
                    .with_webpki_roots()
                    .https_or_http()
                    .enable_http1()
                    .build()
            });
        Self {
            settings: Arc::new(settings),
            client: Client::builder(TokioExecutor::new()).build(https),
        }
    }

    fn records_url(&self) -> String {
        format!(
            "{}/zones/{}/dns_records",
            self.settings.api_base.trim_end_matches('/'),
            self.settings.zone_id
        )
    }

    /// One API call; returns the `result` of a successful response.
    async fn call(
        &self,
        method: Method,
        url: String,
        body: Option<Value>,
    ) -> Result<(StatusCode, Value), DnsError> {
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
                DnsError::permanent(format!("dns api: bad request to {url}: {error}"))
            })?;
        let response =
            self.client.request(request).await.map_err(|error| {
                DnsError::transient(format!("dns api: {method} {url}: {error}"))
            })?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|error| {
                DnsError::transient(format!("dns api: reading the response: {error}"))
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
            "dns api: {method} {url} answered {status}{}",
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
