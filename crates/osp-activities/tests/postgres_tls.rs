//! Point 10 of the hardening: PostgreSQL TLS that verifies the server, with libpq's meanings.
//! A real server with a certificate from a test CA: `verify-full` accepts it for the name it
//! was issued to and refuses another CA's or another name; `verify-ca` checks the chain only.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use std::path::Path;
use std::time::{Duration, Instant};

use osp_activities::db;
use osp_testkit::Postgres;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};

/// A CA named `ca_name`'s PEM, and a server certificate and key it issued for `names`.
fn issue(ca_name: &str, names: &[&str]) -> (String, String, String) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    // Distinct names: two CAs with one name would look like one CA with another key.
    ca.distinguished_name.push(DnType::CommonName, ca_name);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let server = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.pem(), server.pem(), key.serialize_pem())
}

/// A server presenting a certificate for `localhost` only; the trusted and an untrusted CA
/// written beside it.
struct TlsServer {
    postgres: Postgres,
    trusted: String,
    untrusted: String,
}

impl TlsServer {
    async fn start() -> TlsServer {
        let postgres = Postgres::start().await.unwrap();
        let (ca, certificate, key) = issue("OSP test CA", &["localhost"]);
        let (other_ca, _, _) = issue("Some other CA", &["localhost"]);
        postgres.enable_tls(&certificate, &key).await.unwrap();
        let dir = postgres.root_dir();
        let write = |name: &str, text: &str| {
            let path = dir.join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let server = TlsServer {
            trusted: write("trusted-ca.pem", &ca),
            untrusted: write("untrusted-ca.pem", &other_ca),
            postgres,
        };
        // The reload that turns TLS on is asynchronous: wait until it took effect.
        let deadline = Instant::now() + Duration::from_secs(20);
        while db::connect(&server.url("127.0.0.1", "sslmode=require"))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "TLS never came on");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        server
    }

    fn url(&self, host: &str, query: &str) -> String {
        self.postgres
            .url("postgres")
            .replace("@127.0.0.1:", &format!("@{host}:"))
            + "?"
            + query
    }

    async fn select_one(&self, host: &str, query: &str) -> Result<(), String> {
        let client = db::connect(&self.url(host, query))
            .await
            .map_err(|error| osp_testkit::error_chain(&error))?;
        client
            .simple_query("select 1")
            .await
            .map(drop)
            .map_err(|error| osp_testkit::error_chain(&error))
    }
}

fn root(path: &str) -> String {
    assert!(Path::new(path).is_file());
    format!("sslrootcert={path}")
}

#[tokio::test]
async fn point_10_verify_full_accepts_the_trusted_server_and_refuses_another_ca_or_name() {
    let server = TlsServer::start().await;
    let trusted = root(&server.trusted);
    server
        .select_one("localhost", &format!("sslmode=verify-full&{trusted}"))
        .await
        .unwrap();

    let error = server
        .select_one(
            "localhost",
            &format!("sslmode=verify-full&{}", root(&server.untrusted)),
        )
        .await
        .unwrap_err();
    assert!(error.contains("UnknownIssuer"), "{error}");

    // The certificate names localhost, not 127.0.0.1.
    let error = server
        .select_one("127.0.0.1", &format!("sslmode=verify-full&{trusted}"))
        .await
        .unwrap_err();
    assert!(error.contains("certificate not valid for name"), "{error}");
    assert!(!error.contains(server.postgres.password()), "{error}");
}

#[tokio::test]
async fn point_10_verify_ca_checks_the_chain_but_not_the_name() {
    let server = TlsServer::start().await;
    server
        .select_one(
            "127.0.0.1",
            &format!("sslmode=verify-ca&{}", root(&server.trusted)),
        )
        .await
        .unwrap();
    let error = server
        .select_one(
            "127.0.0.1",
            &format!("sslmode=verify-ca&{}", root(&server.untrusted)),
        )
        .await
        .unwrap_err();
    assert!(error.contains("UnknownIssuer"), "{error}");
}
