//! Shared by the workflows' integration tests: both ways the activities reach the database
//! (directly and through PgBouncer), row counts, a DNS provider that remembers what it did,
//! an SMTP server that refuses every message, and history recording for the replay tests.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use osp_activities::dns::{DnsError, DnsProvider};
use osp_core::activities::DnsRecord;
use osp_testkit::{TestEnv, TestWorkflow};
use temporalio_common::HasWorkflowDefinition;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Where the activities connect: the two deployments OSP supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Database {
    /// Straight to PostgreSQL.
    Direct,
    /// Through a transaction-mode pooler (PgBouncer here, Supavisor on Supabase).
    PgBouncer,
}

impl Database {
    /// The real activities of `env`, over this kind of connection.
    pub fn platform(self, env: &TestEnv) -> osp_testkit::PlatformBuilder {
        match self {
            Database::Direct => env.platform(),
            Database::PgBouncer => env.platform().through_pgbouncer(),
        }
    }
}

/// `select count(*) ...` as a number.
pub async fn count(env: &TestEnv, sql: &str) -> i64 {
    let db = env.db().await.unwrap();
    db.query_one(sql, &[]).await.unwrap().get(0)
}

/// Writes the workflow's history to `$OSP_RECORD_HISTORIES/{name}.json` when that variable
/// is set (how the histories under tests/histories/ were made); does nothing otherwise.
pub async fn record<W: HasWorkflowDefinition>(workflow: &TestWorkflow<W>, name: &str) {
    if let Some(dir) = std::env::var_os("OSP_RECORD_HISTORIES") {
        let path = PathBuf::from(dir).join(format!("{name}.json"));
        workflow.record_history(&path).await.unwrap();
    }
}

/// The checked-in histories.
pub fn histories_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/histories")
}

/// A DNS provider that remembers the records it created and removed.
#[derive(Debug, Default, Clone)]
pub struct RecordingDns {
    pub created: Arc<Mutex<Vec<String>>>,
    pub removed: Arc<Mutex<Vec<String>>>,
}

impl DnsProvider for RecordingDns {
    fn ensure_record<'a>(
        &'a self,
        subdomain: &'a str,
    ) -> BoxFuture<'a, Result<DnsRecord, DnsError>> {
        Box::pin(async move {
            let fqdn = format!("{subdomain}.osp.test");
            self.created.lock().unwrap().push(fqdn.clone());
            Ok(DnsRecord {
                record_id: format!("rec-{subdomain}"),
                fqdn,
                provider: "recording".to_owned(),
            })
        })
    }

    fn remove_record<'a>(&'a self, record: &'a DnsRecord) -> BoxFuture<'a, Result<(), DnsError>> {
        Box::pin(async move {
            self.removed.lock().unwrap().push(record.fqdn.clone());
            Ok(())
        })
    }
}

/// An SMTP server on 127.0.0.1 that greets, accepts EHLO, then refuses the sender with a
/// permanent 554, as a mail server that will not relay for us does. Returns its port; it
/// serves until the test's runtime ends.
pub async fn refusing_smtp_server() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 refuse.test ESMTP\r\n").await.ok()?;
                while let Ok(Some(line)) = lines.next_line().await {
                    let command = line.to_ascii_uppercase();
                    let answer: &[u8] =
                        if command.starts_with("EHLO") || command.starts_with("HELO") {
                            b"250 refuse.test\r\n"
                        } else if command.starts_with("MAIL") || command.starts_with("RCPT") {
                            b"554 5.7.1 relaying denied: no mail accepted here\r\n"
                        } else if command.starts_with("QUIT") {
                            write.write_all(b"221 bye\r\n").await.ok()?;
                            break;
                        } else {
                            b"250 ok\r\n"
                        };
                    write.write_all(answer).await.ok()?;
                }
                Some(())
            });
        }
    });
    port
}
