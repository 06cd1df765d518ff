//! Connections to PostgreSQL: a pool for the activities (safe behind a transaction-mode
//! pooler) and single connections, both with TLS as `sslmode` asks, like libpq.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Why a database URL cannot be used. Never contains the URL (it may hold a password).
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL does not parse.
    #[error("invalid database url: {0}")]
    Url(tokio_postgres::Error),
    /// The pool could not be built.
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::BuildError),
    /// Connecting failed.
    #[error("database connection: {0}")]
    Connect(#[from] tokio_postgres::Error),
}

/// The TLS connector for a URL's `sslmode`. `prefer` and `require` encrypt without
/// verifying the server's certificate, as libpq does; verification against the web's roots
/// applies to every other mode that uses TLS.
fn tls_for(config: &tokio_postgres::Config) -> MakeRustlsConnect {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| {
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap_or_else(|_| unreachable_config())
        });
    let tls = match config.get_ssl_mode() {
        SslMode::Prefer | SslMode::Require => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
            .with_no_client_auth(),
        _ => {
            let roots =
                rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            builder.with_root_certificates(roots).with_no_client_auth()
        }
    };
    MakeRustlsConnect::new(tls)
}

fn unreachable_config() -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier> {
    // ring supports TLS 1.3; this is never reached, but must not panic in a library.
    rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
}

/// Parses a URL without echoing it in the error.
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, DbError> {
    tokio_postgres::Config::from_str(url).map_err(DbError::Url)
}

/// A pool of `max_size` connections. Statements go out unnamed (`query_typed`), so the pool
/// works through PgBouncer or Supavisor in transaction mode.
pub fn pool(url: &str, max_size: usize) -> Result<Pool, DbError> {
    let mut config = parse_url(url)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    let tls = tls_for(&config);
    let manager = Manager::from_config(
        config,
        tls,
        ManagerConfig {
            // A cheap check on checkout: a pooler may have dropped an idle connection.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Ok(Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(10)))
        .build()?)
}

/// One connection, its driver task spawned; for migrations and LISTEN.
pub async fn connect(url: &str) -> Result<tokio_postgres::Client, DbError> {
    let config = parse_url(url)?;
    let tls = tls_for(&config);
    let (client, connection) = config.connect(tls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "database connection closed");
        }
    });
    Ok(client)
}

/// One connection whose notifications (from `LISTEN`) arrive on the returned channel, which
/// closes when the connection ends. Needs a direct or session-mode URL: behind a
/// transaction-mode pooler the `LISTEN` session does not last.
pub async fn connect_listening(
    url: &str,
) -> Result<
    (
        tokio_postgres::Client,
        tokio::sync::mpsc::UnboundedReceiver<tokio_postgres::Notification>,
    ),
    DbError,
> {
    let mut config = parse_url(url)?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    let tls = tls_for(&config);
    let (client, mut connection) = config.connect(tls).await?;
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        // Polling messages (rather than awaiting the connection) is what surfaces
        // notifications; it drives the connection all the same.
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = futures::StreamExt::next(&mut messages).await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(notification)) => {
                    if sender.send(notification).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "listening connection closed");
                    break;
                }
            }
        }
    });
    Ok((client, receiver))
}

/// Accepts any certificate: libpq's `sslmode=require` (encryption against passive
/// eavesdropping, no authentication of the server). Signatures are still checked.
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
