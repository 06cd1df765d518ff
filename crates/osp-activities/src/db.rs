//! Connections to PostgreSQL: a pool for the activities (safe behind a transaction-mode
//! pooler) and single connections, both with TLS as `sslmode` asks, with libpq's meanings
//! (`verify-ca`, `verify-full` and `sslrootcert` included).

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
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
    /// `sslrootcert` names no readable PEM file with at least one certificate.
    #[error("database sslrootcert {path}: {reason}")]
    RootCert { path: PathBuf, reason: String },
    /// The certificate verifier could not be built from the roots.
    #[error("database certificate verification")]
    Verifier(#[source] rustls::client::VerifierBuilderError),
}

/// How the server's certificate is checked: libpq's `sslmode` meanings. tokio-postgres knows
/// only `disable`, `prefer` and `require`, so `verify-ca`, `verify-full` and `sslrootcert`
/// are taken out of the URL here and enforced by the TLS connector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verification {
    /// `disable`, `prefer` or `require` without `sslrootcert`: no certificate check.
    None,
    /// `verify-ca` (or `require` with `sslrootcert`, as libpq does): the chain must lead to a
    /// trusted root; the host name is not checked.
    Chain { root_cert: Option<PathBuf> },
    /// `verify-full`: the chain and the host name.
    Full { root_cert: Option<PathBuf> },
}

/// A URL split into what tokio-postgres parses and how to verify the server.
#[derive(Debug)]
struct Target {
    config: tokio_postgres::Config,
    verification: Verification,
}

/// Parses a URL without echoing it in the error.
fn parse_target(url: &str) -> Result<Target, DbError> {
    let (url, verification) = take_verification(url);
    let config = tokio_postgres::Config::from_str(&url).map_err(DbError::Url)?;
    Ok(Target {
        config,
        verification,
    })
}

/// Takes `sslmode=verify-ca|verify-full` and `sslrootcert` out of a URL's query, leaving
/// `sslmode=require` in their place so that tokio-postgres negotiates TLS. Other parameters
/// stay as they were written (percent-encoding included).
fn take_verification(url: &str) -> (String, Verification) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), Verification::None);
    };
    let (mut mode, mut root_cert, mut kept) = (None, None, Vec::new());
    for segment in query.split('&') {
        let pair = url::form_urlencoded::parse(segment.as_bytes()).next();
        match pair
            .as_ref()
            .map(|(key, value)| (key.as_ref(), value.as_ref()))
        {
            Some(("sslmode", value @ ("verify-ca" | "verify-full"))) => {
                mode = Some(value.to_owned());
            }
            Some(("sslmode", value)) => {
                mode = Some(value.to_owned());
                kept.push(segment);
            }
            Some(("sslrootcert", path)) => root_cert = Some(PathBuf::from(path)),
            _ => kept.push(segment),
        }
    }
    let verification = match (mode.as_deref(), root_cert) {
        (Some("verify-full"), root_cert) => Verification::Full { root_cert },
        (Some("verify-ca"), root_cert) => Verification::Chain { root_cert },
        (Some("require"), Some(root_cert)) => Verification::Chain {
            root_cert: Some(root_cert),
        },
        _ => Verification::None,
    };
    if matches!(mode.as_deref(), Some("verify-ca" | "verify-full")) {
        kept.push("sslmode=require");
    }
    let url = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, verification)
}

/// The trusted roots: the PEM file `sslrootcert` names, else the web's roots.
fn roots(root_cert: Option<&PathBuf>) -> Result<rustls::RootCertStore, DbError> {
    let Some(path) = root_cert else {
        return Ok(rustls::RootCertStore::from_iter(
            webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
        ));
    };
    let failed = |reason: String| DbError::RootCert {
        path: path.clone(),
        reason,
    };
    let mut store = rustls::RootCertStore::empty();
    let certificates =
        CertificateDer::pem_file_iter(path).map_err(|error| failed(error.to_string()))?;
    for certificate in certificates {
        let certificate = certificate.map_err(|error| failed(error.to_string()))?;
        store
            .add(certificate)
            .map_err(|error| failed(error.to_string()))?;
    }
    if store.is_empty() {
        return Err(failed("no certificate in it".to_owned()));
    }
    Ok(store)
}

/// The TLS connector for a target: `prefer` and `require` encrypt without verifying the
/// server's certificate, as libpq does; `verify-ca` checks the chain, `verify-full` the chain
/// and the name, against `sslrootcert` or the web's roots.
fn tls_for(target: &Target) -> Result<MakeRustlsConnect, DbError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap_or_else(|_| {
            rustls::ClientConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap_or_else(|_| unreachable_config())
        });
    let tls = match &target.verification {
        Verification::Full { root_cert } => builder
            .with_root_certificates(roots(root_cert.as_ref())?)
            .with_no_client_auth(),
        Verification::Chain { root_cert } => {
            let webpki = WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(root_cert.as_ref())?),
                provider,
            )
            .build()
            .map_err(DbError::Verifier)?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(ChainOnly(webpki)))
                .with_no_client_auth()
        }
        Verification::None => match target.config.get_ssl_mode() {
            SslMode::Prefer | SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
                .with_no_client_auth(),
            _ => builder
                .with_root_certificates(roots(None)?)
                .with_no_client_auth(),
        },
    };
    Ok(MakeRustlsConnect::new(tls))
}

fn unreachable_config() -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier> {
    // ring supports TLS 1.3; this is never reached, but must not panic in a library.
    rustls::ClientConfig::builder_with_protocol_versions(&[&rustls::version::TLS13])
}

/// Parses a URL without echoing it in the error (libpq's `verify-ca`, `verify-full` and
/// `sslrootcert` included).
pub fn parse_url(url: &str) -> Result<tokio_postgres::Config, DbError> {
    parse_target(url).map(|target| target.config)
}

/// A pool of `max_size` connections. Statements go out unnamed (`query_typed`), so the pool
/// works through PgBouncer or Supavisor in transaction mode.
pub fn pool(url: &str, max_size: usize) -> Result<Pool, DbError> {
    let mut target = parse_target(url)?;
    if target.config.get_connect_timeout().is_none() {
        target.config.connect_timeout(Duration::from_secs(10));
    }
    let tls = tls_for(&target)?;
    let manager = Manager::from_config(
        target.config,
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
    let target = parse_target(url)?;
    let tls = tls_for(&target)?;
    let (client, connection) = target.config.connect(tls).await?;
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
    let mut target = parse_target(url)?;
    if target.config.get_connect_timeout().is_none() {
        target.config.connect_timeout(Duration::from_secs(10));
    }
    let tls = tls_for(&target)?;
    let (client, mut connection) = target.config.connect(tls).await?;
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

/// `verify-ca`: the chain must lead to a trusted root, whatever name the certificate carries.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str, expected_url: &str, expected: Verification) {
        assert_eq!(
            take_verification(url),
            (expected_url.to_owned(), expected),
            "{url}"
        );
    }

    #[test]
    fn libpq_verification_modes_are_taken_out_of_the_url() {
        let ca = || Some(PathBuf::from("/etc/osp/ca.pem"));
        check("postgres://h/db", "postgres://h/db", Verification::None);
        check(
            "postgres://h/db?sslmode=require&application_name=osp",
            "postgres://h/db?sslmode=require&application_name=osp",
            Verification::None,
        );
        check(
            "postgres://u:p@h/db?sslmode=verify-full&sslrootcert=%2Fetc%2Fosp%2Fca.pem",
            "postgres://u:p@h/db?sslmode=require",
            Verification::Full { root_cert: ca() },
        );
        check(
            "postgres://h/db?sslrootcert=/etc/osp/ca.pem&sslmode=verify-ca&connect_timeout=5",
            "postgres://h/db?connect_timeout=5&sslmode=require",
            Verification::Chain { root_cert: ca() },
        );
        // libpq: `require` with a root certificate file verifies like `verify-ca`.
        check(
            "postgres://h/db?sslmode=require&sslrootcert=/etc/osp/ca.pem",
            "postgres://h/db?sslmode=require",
            Verification::Chain { root_cert: ca() },
        );
        check(
            "postgres://h/db?sslmode=verify-full",
            "postgres://h/db?sslmode=require",
            Verification::Full { root_cert: None },
        );
    }

    #[test]
    fn a_missing_root_certificate_file_is_named() {
        let target =
            parse_target("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .unwrap();
        let Err(error) = tls_for(&target) else {
            panic!("a missing sslrootcert was accepted");
        };
        assert!(
            error
                .to_string()
                .contains("sslrootcert /nonexistent/ca.pem"),
            "{error}"
        );
    }
}
