//! The HTTP endpoints of every OSP process: `GET /healthz` (alive), `GET /readyz` (200 when
//! ready, else 503 with a JSON list of reasons), `GET /metrics` (Prometheus text).

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::{Health, Metrics};

/// Serves the endpoints on `listener` until the task is aborted.
pub fn spawn(listener: TcpListener, health: Health, metrics: Metrics) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "health server: accept failed");
                    continue;
                }
            };
            let (health, metrics) = (health.clone(), metrics.clone());
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let (health, metrics) = (health.clone(), metrics.clone());
                    async move { Ok::<_, Infallible>(respond(request, &health, &metrics).await) }
                });
                if let Err(error) = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%error, "health server: connection ended");
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
