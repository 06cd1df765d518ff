//! Connects to Temporal from typed settings: plain, TLS, Temporal Cloud API key, or mTLS.

use std::time::Duration;

use osp_config::TemporalSettings;
use temporalio_client::errors::{ClientConnectError, ClientNewError};
use temporalio_client::{
    Client, ClientOptions, ClientTlsOptions, Connection, ConnectionOptions, GrpcCompression,
    TlsOptions, Url,
};
use temporalio_common::telemetry::metrics::TemporalMeter;

/// Why the connection failed. Never contains the API key or key material.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The address does not form a URL.
    #[error("temporal address {address}: {source}")]
    Address {
        address: String,
        #[source]
        source: url::ParseError,
    },
    /// The server could not be reached or refused the connection.
    #[error("cannot connect to temporal at {address}: {source}")]
    Connect {
        address: String,
        #[source]
        source: ClientConnectError,
    },
    /// The client could not be built.
    #[error("temporal client: {0}")]
    Client(#[from] ClientNewError),
}

/// Connects and binds a client to the configured namespace.
pub async fn connect(
    settings: &TemporalSettings,
    identity: &str,
    meter: Option<TemporalMeter>,
) -> Result<Client, ConnectError> {
    let address = settings.address.to_string();
    let tls = settings.tls.is_some() || settings.api_key.is_some();
    let scheme = if tls { "https" } else { "http" };
    let url =
        Url::parse(&format!("{scheme}://{address}")).map_err(|source| ConnectError::Address {
            address: address.clone(),
            source,
        })?;
    let tls_options = settings.tls.as_ref().map(|tls| {
        TlsOptions::builder()
            .maybe_server_root_ca_cert(
                tls.server_ca_cert_pem
                    .as_ref()
                    .map(|pem| pem.clone().into_bytes()),
            )
            .maybe_client_tls_options(match (&tls.client_cert_pem, &tls.client_key_pem) {
                (Some(cert), Some(key)) => Some(
                    ClientTlsOptions::builder()
                        .client_cert(cert.clone().into_bytes())
                        .client_private_key(key.expose().as_bytes().to_vec())
                        .build(),
                ),
                _ => None,
            })
            // `tls.server_name` of a temporal.toml profile: the certificate's name when it
            // is not the address's host (a proxy, an IP address).
            .maybe_domain(tls.server_name.clone())
            .build()
    });
    // `grpc_meta` of a temporal.toml profile: headers on every call.
    let headers = (!settings.grpc_meta.is_empty()).then(|| {
        settings
            .grpc_meta
            .iter()
            .map(|(name, value)| (name.clone(), value.expose().to_owned()))
            .collect()
    });
    let options = ConnectionOptions::new(url)
        .identity(identity.to_owned())
        .maybe_api_key(settings.api_key.as_ref().map(|key| key.expose().to_owned()))
        .maybe_tls_options(tls_options)
        .maybe_headers(headers)
        .maybe_metrics_meter(meter)
        .connect_timeout(Duration::from_secs(10))
        .grpc_compression(match settings.compression {
            osp_config::GrpcCompression::None => GrpcCompression::None,
            osp_config::GrpcCompression::Gzip => GrpcCompression::Gzip,
        })
        .build();
    let connection =
        Connection::connect(options)
            .await
            .map_err(|source| ConnectError::Connect {
                address: address.clone(),
                source,
            })?;
    Ok(Client::new(
        connection,
        ClientOptions::new(settings.namespace.clone()).build(),
    )?)
}
