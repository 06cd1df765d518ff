//! TLS and API keys to Temporal, for real: the dev server behind nginx terminating TLS with a
//! certificate from a test CA, demanding `authorization: Bearer <key>` (Temporal Cloud's API
//! keys) or a client certificate (mTLS). The real worker and bridge binaries connect through
//! it and work; a wrong key, a missing client certificate and an untrusted server
//! certificate each fail with a clear error that never shows the key.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use osp_activities::events::{NewEvent, append, read_stream};
use osp_core::events::{ORGANIZATION_BOOTSTRAP_COMPLETED, ORGANIZATION_BOOTSTRAP_INITIATED};
use osp_testkit::{
    OspProcess, Postgres, TemporalDevServer, TlsGrpcProxy, TlsProxyOptions, osp_binary,
};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use serde_json::json;
use uuid::Uuid;

const WORKER: &str = env!("CARGO_BIN_EXE_osp-worker");
const API_KEY: &str = "osp-test-key-5b1f0c9a";

/// A certificate authority of the test's own, and what it issued, as PEM files in `dir`.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// A CA named `name` with a server certificate for `server_names` and a client
    /// certificate, written as `{name}-ca.pem`, `{name}-server.pem`, `{name}-client.pem`
    /// (and their `-key.pem`s).
    fn issue(dir: &Path, name: &str, server_names: &[&str]) -> Pki {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, format!("OSP test CA {name}"));
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        std::fs::write(dir.join(format!("{name}-ca.pem")), ca.pem()).unwrap();
        for (role, names) in [
            (
                "server",
                server_names.iter().map(|name| (*name).to_owned()).collect(),
            ),
            ("client", vec!["osp-worker".to_owned()]),
        ] {
            let key = KeyPair::generate().unwrap();
            let cert = CertificateParams::new(names)
                .unwrap()
                .signed_by(&key, &ca)
                .unwrap();
            std::fs::write(dir.join(format!("{name}-{role}.pem")), cert.pem()).unwrap();
            std::fs::write(
                dir.join(format!("{name}-{role}-key.pem")),
                key.serialize_pem(),
            )
            .unwrap();
        }
        Pki {
            dir: dir.to_path_buf(),
        }
    }

    fn path(&self, name: &str, file: &str) -> PathBuf {
        self.dir.join(format!("{name}-{file}.pem"))
    }

    fn path_text(&self, name: &str, file: &str) -> String {
        self.path(name, file).display().to_string()
    }
}

/// A database with the schema, a dev server, nginx in front of it, and a test CA.
struct Env {
    postgres: Postgres,
    _temporal: TemporalDevServer,
    proxy: TlsGrpcProxy,
    pki: Pki,
    dir: PathBuf,
}

impl Env {
    /// `mtls`: the proxy demands a client certificate of the CA "good"; else an API key.
    async fn start(mtls: bool) -> Env {
        Env::start_with(mtls, &["localhost", "127.0.0.1"]).await
    }

    /// As `start`, with the proxy's certificate (from "good") for `server_names` only.
    async fn start_with(mtls: bool, server_names: &[&str]) -> Env {
        let (postgres, temporal) = tokio::join!(Postgres::start(), TemporalDevServer::start());
        let (postgres, temporal) = (postgres.unwrap(), temporal.unwrap());
        let mut client = osp_activities::db::connect(&postgres.url("postgres"))
            .await
            .unwrap();
        osp_activities::migrate(&mut client).await.unwrap();
        let dir = postgres.root_dir().join("tls-test");
        std::fs::create_dir_all(&dir).unwrap();
        let pki = Pki::issue(&dir, "good", server_names);
        Pki::issue(&dir, "other", &["localhost", "127.0.0.1"]);
        let options = TlsProxyOptions {
            certificate: pki.path("good", "server"),
            key: pki.path("good", "server-key"),
            client_ca: mtls.then(|| pki.path("good", "ca")),
            bearer_token: (!mtls).then(|| API_KEY.to_owned()),
        };
        let proxy = TlsGrpcProxy::start(&temporal.address(), &options)
            .await
            .unwrap();
        Env {
            postgres,
            _temporal: temporal,
            proxy,
            pki,
            dir,
        }
    }

    /// The variables of a worker or bridge that reaches Temporal through the proxy.
    fn settings(&self, extra: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let mut env = vec![
            (
                "TEMPORAL_ADDRESS",
                format!("localhost:{}", self.proxy.port()),
            ),
            ("DATABASE_URL", self.postgres.url("postgres")),
            ("LOG_FORMAT", "json".to_owned()),
            ("OSP_SHUTDOWN_GRACE_SECONDS", "5".to_owned()),
        ];
        env.extend_from_slice(extra);
        env
    }

    fn run(&self, program: &Path, name: &str, env: &[(&'static str, String)]) -> OspProcess {
        OspProcess::start(program, env, &self.dir.join(format!("{name}.log"))).unwrap()
    }

    /// Waits until `process` has logged `text` (it retries its connection forever, so a
    /// refused connection shows in its log, not in its exit).
    async fn wait_for_log(&self, process: &OspProcess, text: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let log = process.log();
            if log.to_lowercase().contains(&text.to_lowercase()) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {text:?} in the log within 60 s:\n{log}\nnginx:\n{}",
                self.proxy.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test]
async fn the_worker_and_the_bridge_work_through_tls_with_an_api_key() {
    let env = Env::start(false).await;
    let tls = [
        ("TEMPORAL_API_KEY", API_KEY.to_owned()),
        (
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
            env.pki.path_text("good", "ca"),
        ),
    ];
    let mut worker = env.run(Path::new(WORKER), "worker", &env.settings(&tls));
    let bridge_bin = osp_binary("osp-bridge").unwrap();
    let mut bridge = env.run(&bridge_bin, "bridge", &env.settings(&tls));
    worker.wait_ready(Duration::from_secs(90)).await.unwrap();
    bridge.wait_ready(Duration::from_secs(90)).await.unwrap();

    // A bootstrap request goes event -> bridge -> Temporal -> worker, all through the proxy.
    let db = osp_activities::db::connect(&env.postgres.url("postgres"))
        .await
        .unwrap();
    let organization = Uuid::new_v4();
    let data = json!({
        "organization_id": organization,
        "name": "Tls Org",
        "subdomain": "tls-org",
        "admin_users": [{"email": "admin@tls.example", "name": "Admin"}]
    });
    append(
        &db,
        &NewEvent::new(
            "organization",
            organization,
            ORGANIZATION_BOOTSTRAP_INITIATED,
            data,
        ),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let events = read_stream(&db, organization).await.unwrap();
        if events
            .iter()
            .any(|event| event.event_type == ORGANIZATION_BOOTSTRAP_COMPLETED)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bootstrap did not complete through the proxy: {events:?}\nworker:\n{}\nbridge:\n{}",
            worker.log(),
            bridge.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for process in [&mut worker, &mut bridge] {
        assert!(!process.log().contains(API_KEY), "the API key was logged");
        let status = process.stop(Duration::from_secs(30)).await.unwrap();
        assert!(status.success(), "{status}");
    }
}

#[tokio::test]
async fn a_wrong_api_key_is_refused_and_never_shown() {
    let env = Env::start(false).await;
    let wrong_key = "osp-wrong-key-0d9e4f";
    let tls = [
        ("TEMPORAL_API_KEY", wrong_key.to_owned()),
        (
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
            env.pki.path_text("good", "ca"),
        ),
    ];
    let mut worker = env.run(Path::new(WORKER), "worker", &env.settings(&tls));
    let log = env.wait_for_log(&worker, "unauthenticated").await;
    assert!(!log.contains(wrong_key), "the API key was logged:\n{log}");
    assert_eq!(worker.get("/readyz").await.unwrap().0, 503);
    worker.stop(Duration::from_secs(30)).await.unwrap();
}

#[tokio::test]
async fn mtls_works_with_the_client_certificate_and_fails_without_it() {
    let env = Env::start(true).await;
    let ca = (
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
        env.pki.path_text("good", "ca"),
    );
    let mtls = [
        ca.clone(),
        (
            "TEMPORAL_TLS_CLIENT_CERT_PATH",
            env.pki.path_text("good", "client"),
        ),
        (
            "TEMPORAL_TLS_CLIENT_KEY_PATH",
            env.pki.path_text("good", "client-key"),
        ),
    ];
    let mut worker = env.run(Path::new(WORKER), "worker", &env.settings(&mtls));
    worker.wait_ready(Duration::from_secs(90)).await.unwrap();
    worker.stop(Duration::from_secs(30)).await.unwrap();

    // TLS to the right server, but no client certificate: nginx refuses every request.
    let mut without = env.run(
        Path::new(WORKER),
        "worker-without-cert",
        &env.settings(&[ca, ("TEMPORAL_TLS", "true".to_owned())]),
    );
    env.wait_for_log(&without, "certificate").await;
    assert_eq!(without.get("/readyz").await.unwrap().0, 503);
    without.stop(Duration::from_secs(30)).await.unwrap();
}

#[tokio::test]
async fn a_server_certificate_from_an_untrusted_ca_is_refused() {
    let env = Env::start(false).await;
    let tls = [
        ("TEMPORAL_API_KEY", API_KEY.to_owned()),
        // The proxy's certificate is from "good"; the worker trusts only "other".
        (
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
            env.pki.path_text("other", "ca"),
        ),
    ];
    let mut worker = env.run(Path::new(WORKER), "worker", &env.settings(&tls));
    let log = env.wait_for_log(&worker, "certificate").await;
    assert!(!log.contains(API_KEY), "the API key was logged:\n{log}");
    assert_eq!(worker.get("/readyz").await.unwrap().0, 503);
    worker.stop(Duration::from_secs(30)).await.unwrap();
}

#[tokio::test]
async fn a_temporal_toml_profile_gives_the_server_name_and_the_grpc_metadata() {
    // The proxy's certificate names neither localhost nor 127.0.0.1, only the name a
    // profile's `tls.server_name` gives; the API key travels as the profile's `grpc_meta`.
    let env = Env::start_with(false, &["temporal.osp.test"]).await;
    let profile = |server_name: &str| {
        format!(
            "[profile.default]\n\
             [profile.default.tls]\n\
             server_ca_cert_path = {ca:?}\n\
             {server_name}\n\
             [profile.default.grpc_meta]\n\
             authorization = \"Bearer {API_KEY}\"\n",
            ca = env.pki.path_text("good", "ca"),
        )
    };
    let with_name = env.dir.join("with-name.toml");
    std::fs::write(&with_name, profile("server_name = \"temporal.osp.test\"")).unwrap();
    let without_name = env.dir.join("without-name.toml");
    std::fs::write(&without_name, profile("")).unwrap();

    let settings =
        |file: &Path| env.settings(&[("TEMPORAL_CONFIG_FILE", file.display().to_string())]);
    let mut worker = env.run(Path::new(WORKER), "worker-profile", &settings(&with_name));
    worker.wait_ready(Duration::from_secs(90)).await.unwrap();
    assert!(
        !worker.log().contains(API_KEY),
        "the metadata value was logged"
    );
    worker.stop(Duration::from_secs(30)).await.unwrap();

    // Without the name, the certificate does not match the address's host.
    let mut mismatched = env.run(
        Path::new(WORKER),
        "worker-no-name",
        &settings(&without_name),
    );
    let log = env.wait_for_log(&mismatched, "certificate").await;
    assert!(
        !log.contains(API_KEY),
        "the metadata value was logged:\n{log}"
    );
    assert_eq!(mismatched.get("/readyz").await.unwrap().0, 503);
    mismatched.stop(Duration::from_secs(30)).await.unwrap();
}
