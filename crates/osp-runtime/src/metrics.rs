//! `/metrics`: the project's `osp_*` series from a Prometheus registry, followed by the
//! Temporal SDK's `temporal_*` series. The SDK keeps its registry private and serves it
//! itself, so its exporter listens on a loopback port and is scraped on each request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prometheus::{Encoder, Registry, TextEncoder};
use temporalio_common::telemetry::metrics::CoreMeter;
use temporalio_common::telemetry::{PrometheusExporterOptions, start_prometheus_metric_exporter};
use tokio::task::AbortHandle;

/// How long the SDK's exporter may take; a Prometheus scrape usually times out at 10 s.
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest SDK exposition read; a few hundred KiB is typical.
const SCRAPE_LIMIT: usize = 16 * 1024 * 1024;

/// Why metrics could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The SDK's exporter could not start.
    #[error("temporal metrics exporter: {0}")]
    Exporter(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

/// Why the SDK's series could not be scraped for one `/metrics` answer.
#[derive(Debug, thiserror::Error)]
enum ScrapeError {
    #[error("exporter address: {0}")]
    Uri(#[from] hyper::http::uri::InvalidUri),
    #[error("request: {0}")]
    Request(#[from] hyper_util::client::legacy::Error),
    #[error("reading at most {SCRAPE_LIMIT} bytes: {0}")]
    Body(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
    #[error("no answer within {} ms", .0.as_millis())]
    Timeout(Duration),
}

/// The SDK's loopback exporter; dropping it stops the exporter's task and closes its port.
#[derive(Debug)]
pub struct SdkExporter {
    abort: AbortHandle,
    addr: SocketAddr,
}

impl SdkExporter {
    /// Where the exporter listens (loopback).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for SdkExporter {
    fn drop(&mut self) {
        self.abort.abort();
    }
}

/// The metrics a process exposes.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    sdk: Option<SocketAddr>,
    /// The scrape of the SDK's exporter; `/metrics` answers without its series after this.
    scrape_timeout: Duration,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("sdk", &self.sdk)
            .finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Only the project's own series.
    pub fn new() -> Self {
        Self {
            registry: Registry::new(),
            sdk: None,
            scrape_timeout: SCRAPE_TIMEOUT,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Where to register `osp_*` metrics.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Starts the SDK's Prometheus exporter on a loopback port and returns the meter to give
    /// the Temporal runtime; its series are appended to [`Metrics::render`]. The exporter runs
    /// until the returned guard is dropped.
    pub fn start_sdk_exporter(
        mut self,
    ) -> Result<(Self, Arc<dyn CoreMeter>, SdkExporter), MetricsError> {
        let options = PrometheusExporterOptions::builder()
            .socket_addr(SocketAddr::from(([127, 0, 0, 1], 0)))
            .counters_total_suffix(true)
            .unit_suffix(true)
            .use_seconds_for_durations(true)
            .build();
        let started = start_prometheus_metric_exporter(options)
            .map_err(|error| MetricsError::Exporter(error.into_boxed_dyn_error()))?;
        self.sdk = Some(started.bound_addr);
        let exporter = SdkExporter {
            abort: started.abort_handle,
            addr: started.bound_addr,
        };
        Ok((self, started.meter, exporter))
    }

    /// The Prometheus text of every series.
    pub async fn render(&self) -> String {
        let mut buffer = Vec::new();
        // Encoding gathered families into a Vec cannot fail.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buffer);
        let mut text = String::from_utf8_lossy(&buffer).into_owned();
        if let Some(addr) = self.sdk {
            match self.scrape_sdk(addr).await {
                Ok(sdk) => text.push_str(&sdk),
                Err(error) => tracing::debug!(%error, "temporal metrics unavailable"),
            }
        }
        text
    }

    /// The SDK's exposition, within [`Metrics::scrape_timeout`] and [`SCRAPE_LIMIT`] bytes.
    async fn scrape_sdk(&self, addr: SocketAddr) -> Result<String, ScrapeError> {
        let uri = format!("http://{addr}/metrics").parse()?;
        let scrape = async {
            let response = self.client.get(uri).await?;
            let body = Limited::new(response.into_body(), SCRAPE_LIMIT)
                .collect()
                .await
                .map_err(ScrapeError::Body)?;
            Ok(String::from_utf8_lossy(&body.to_bytes()).into_owned())
        };
        tokio::time::timeout(self.scrape_timeout, scrape)
            .await
            .unwrap_or(Err(ScrapeError::Timeout(self.scrape_timeout)))
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    #[tokio::test]
    async fn point_12_a_hanging_sdk_exporter_does_not_hang_metrics() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Reads the request and never answers.
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = [0u8; 1024];
                let _ = socket.read(&mut buffer).await;
                held.push(socket);
            }
        });
        let metrics = Metrics {
            sdk: Some(addr),
            scrape_timeout: Duration::from_millis(200),
            ..Metrics::new()
        };
        let rendered = tokio::time::timeout(Duration::from_secs(10), metrics.render()).await;
        server.abort();
        assert!(rendered.is_ok(), "/metrics hung on the SDK exporter");
    }
}
