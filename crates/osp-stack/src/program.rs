//! Runs the OSP binaries (`osp-worker`, `osp-bridge`) as real processes for tests and the
//! demo: environment in, a free health port, a log file, waits on `/readyz`, SIGTERM with
//! its exit status, SIGKILL for crash tests.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use rustix::process::Signal;
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::StackError;
use crate::process::{free_port, send_signal};

/// Why an OSP process could not be run or did not behave.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    /// The binary is not built.
    #[error("{name} not found at {path}: build it first (cargo build -p {name})")]
    NotBuilt { name: String, path: PathBuf },
    /// Starting, signalling or reading failed.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// It did not become ready in time, or exited; carries the end of its log.
    #[error("{name} not ready after {waited:?} ({last}); its log ends:\n{log_tail}")]
    NotReady {
        name: String,
        waited: Duration,
        last: String,
        log_tail: String,
    },
    /// It did not exit after SIGTERM in time.
    #[error("{name} still running {waited:?} after SIGTERM")]
    DidNotStop { name: String, waited: Duration },
    /// No free port could be found for it.
    #[error(transparent)]
    Port(#[from] StackError),
}

/// Why a `GET` on a health port failed.
#[derive(Debug, thiserror::Error)]
pub enum GetError {
    /// Connecting, sending or reading failed.
    #[error("GET {path}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The server did not speak HTTP/1.1 as expected.
    #[error("GET {path}")]
    Http {
        path: String,
        #[source]
        source: hyper::Error,
    },
    /// No complete answer within the time limit.
    #[error("GET {path} timed out after {after:?}")]
    TimedOut { path: String, after: Duration },
}

/// Where the OSP binaries are: `OSP_BIN_DIR`, or beside the running executable (`target/debug`,
/// also when the caller is a test in `target/debug/deps`).
pub fn osp_binary(name: &str) -> Result<PathBuf, ProcessError> {
    let dir = match std::env::var_os("OSP_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().map_err(|source| ProcessError::Io {
                what: "locating the running executable".into(),
                source,
            })?;
            let mut dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
            if dir.ends_with("deps") {
                dir.pop();
            }
            dir
        }
    };
    let path = dir.join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ProcessError::NotBuilt {
            name: name.to_owned(),
            path,
        })
    }
}

/// One running OSP binary; killed and reaped when dropped.
#[derive(Debug)]
pub struct OspProcess {
    name: String,
    program: PathBuf,
    env: Vec<(String, String)>,
    health_port: u16,
    log: PathBuf,
    child: Option<Child>,
}

impl OspProcess {
    /// Starts `program` with exactly `env` (plus `PATH`) and `HEALTH_CHECK_PORT` set to a free
    /// port; its output goes to `log`.
    pub fn start(program: &Path, env: &[(&str, String)], log: &Path) -> Result<Self, ProcessError> {
        let mut process = Self {
            name: program
                .file_name()
                .map_or_else(|| "osp".to_owned(), |n| n.to_string_lossy().into_owned()),
            program: program.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            health_port: free_port()?,
            log: log.to_owned(),
            child: None,
        };
        process.spawn()?;
        Ok(process)
    }

    fn spawn(&mut self) -> Result<(), ProcessError> {
        let io = |what: &str, source| ProcessError::Io {
            what: format!("{what} for {}", self.name),
            source,
        };
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| io("opening the log", e))?;
        let err = out.try_clone().map_err(|e| io("opening the log", e))?;
        let mut command = Command::new(&self.program);
        command
            .env_clear()
            .envs(
                std::env::var_os("PATH")
                    .map(|path| ("PATH".to_owned(), path.to_string_lossy().into_owned())),
            )
            .envs(self.env.iter().cloned())
            .env("HEALTH_CHECK_PORT", self.health_port.to_string())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .kill_on_drop(true);
        self.child = Some(command.spawn().map_err(|e| io("starting", e))?);
        Ok(())
    }

    /// Starts it again with the same environment and port (after [`Self::kill`] or
    /// [`Self::stop`]).
    pub fn restart(&mut self) -> Result<(), ProcessError> {
        self.spawn()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The port of `/healthz`, `/readyz` and `/metrics`.
    pub fn health_port(&self) -> u16 {
        self.health_port
    }

    /// Everything it has written so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `GET path` on the health port: status and body.
    pub async fn get(&self, path: &str) -> Result<(u16, String), GetError> {
        get(self.health_port, path).await
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&mut self, deadline: Duration) -> Result<(), ProcessError> {
        self.wait_for(deadline, |status| status == 200).await
    }

    /// Waits until the process answers on `/healthz` (alive, ready or not).
    pub async fn wait_alive(&mut self, deadline: Duration) -> Result<(), ProcessError> {
        let started = Instant::now();
        let mut last = String::from("no answer yet");
        while started.elapsed() < deadline {
            self.check_running()?;
            match get(self.health_port, "/healthz").await {
                Ok((200, _)) => return Ok(()),
                Ok((status, body)) => last = format!("/healthz {status}: {body}"),
                Err(error) => last = crate::error_chain(&error),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(self.not_ready(deadline, last))
    }

    async fn wait_for(
        &mut self,
        deadline: Duration,
        ok: impl Fn(u16) -> bool,
    ) -> Result<(), ProcessError> {
        let started = Instant::now();
        let mut last = String::from("no answer yet");
        while started.elapsed() < deadline {
            self.check_running()?;
            match get(self.health_port, "/readyz").await {
                Ok((status, _)) if ok(status) => return Ok(()),
                Ok((status, body)) => last = format!("/readyz {status}: {body}"),
                Err(error) => last = crate::error_chain(&error),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(self.not_ready(deadline, last))
    }

    fn check_running(&mut self) -> Result<(), ProcessError> {
        let exited = match self.child.as_mut() {
            Some(child) => child.try_wait().ok().flatten(),
            None => None,
        };
        match exited {
            Some(status) => Err(self.not_ready(Duration::ZERO, format!("it exited with {status}"))),
            None => Ok(()),
        }
    }

    fn not_ready(&self, waited: Duration, last: String) -> ProcessError {
        let log = self.log();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        ProcessError::NotReady {
            name: self.name.clone(),
            waited,
            last,
            log_tail: tail.into_iter().rev().collect::<Vec<_>>().join("\n"),
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub async fn stop(&mut self, deadline: Duration) -> Result<ExitStatus, ProcessError> {
        self.signal(Signal::TERM)?;
        let name = self.name.clone();
        let Some(child) = self.child.as_mut() else {
            return Err(ProcessError::DidNotStop {
                name,
                waited: Duration::ZERO,
            });
        };
        match tokio::time::timeout(deadline, child.wait()).await {
            Ok(Ok(status)) => {
                self.child = None;
                Ok(status)
            }
            Ok(Err(source)) => Err(ProcessError::Io {
                what: format!("waiting for {name}"),
                source,
            }),
            Err(_) => Err(ProcessError::DidNotStop {
                name,
                waited: deadline,
            }),
        }
    }

    /// SIGKILL: a crash, with no chance to clean up.
    pub async fn kill(&mut self) -> Result<(), ProcessError> {
        if let Some(mut child) = self.child.take() {
            child.kill().await.map_err(|source| ProcessError::Io {
                what: format!("killing {}", self.name),
                source,
            })?;
        }
        Ok(())
    }

    fn signal(&self, signal: Signal) -> Result<(), ProcessError> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        send_signal(pid, signal).map_err(|source| ProcessError::Io {
            what: format!("signalling {}", self.name),
            source,
        })
    }
}

/// The value of one series in Prometheus' text format (a `/metrics` body): `series` is its
/// name with labels as printed (`osp_bridge_claim_seconds_count`,
/// `osp_bridge_wakeups_total{source="notify"}`); `None` when it is not listed.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let (name, value) = line.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok()).flatten()
    })
}

/// The sum of every series of the metric `name` in Prometheus' text format, whatever their
/// labels (`osp_bridge_jobs_failed_total` adds up each `reason`); 0 when none is listed, as a
/// counter vector lists no series before its first increment.
pub fn metric_total(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let labels = series.strip_prefix(name)?;
            (labels.is_empty() || labels.starts_with('{'))
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// How long a `GET` on a health port may take.
const GET_TIMEOUT: Duration = Duration::from_secs(5);

/// `GET path` on 127.0.0.1:`port` over HTTP/1.1: status and body.
pub async fn get(port: u16, path: &str) -> Result<(u16, String), GetError> {
    let io = |source| GetError::Io {
        path: path.to_owned(),
        source,
    };
    let http = |source| GetError::Http {
        path: path.to_owned(),
        source,
    };
    let exchange = async {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.map_err(io)?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        // The connection task ends when the response is read and the sender dropped.
        tokio::spawn(connection);
        let request = hyper::Request::get(path)
            .header(hyper::header::HOST, "127.0.0.1")
            .body(Empty::<Bytes>::new())
            .map_err(|error| io(std::io::Error::new(std::io::ErrorKind::InvalidInput, error)))?;
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status().as_u16();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(http)?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(GET_TIMEOUT, exchange)
        .await
        .map_err(|_| GetError::TimedOut {
            path: path.to_owned(),
            after: GET_TIMEOUT,
        })?
}

#[cfg(test)]
mod tests {
    use super::{metric_total, metric_value};

    #[test]
    fn a_series_is_read_by_its_whole_name_with_labels() {
        let text = "# HELP osp_bridge_claim_seconds Seconds a claim statement took.\n\
                    # TYPE osp_bridge_claim_seconds histogram\n\
                    osp_bridge_claim_seconds_bucket{le=\"0.001\"} 3\n\
                    osp_bridge_claim_seconds_sum 0.0042\n\
                    osp_bridge_claim_seconds_count 5\n\
                    osp_bridge_wakeups_total{source=\"notify\"} 7\n";
        assert_eq!(
            metric_value(text, "osp_bridge_claim_seconds_count"),
            Some(5.0)
        );
        assert_eq!(
            metric_value(text, "osp_bridge_claim_seconds_sum"),
            Some(0.0042)
        );
        assert_eq!(
            metric_value(text, "osp_bridge_wakeups_total{source=\"notify\"}"),
            Some(7.0)
        );
        // A prefix of a listed name, or the name without its labels, is another series.
        assert_eq!(metric_value(text, "osp_bridge_claim_seconds"), None);
        assert_eq!(metric_value(text, "osp_bridge_wakeups_total"), None);
    }

    #[test]
    fn a_metric_total_adds_up_its_labelled_series_and_nothing_else() {
        let text = "# TYPE osp_bridge_jobs_failed_total counter\n\
                    osp_bridge_jobs_failed_total{reason=\"invalid\"} 2\n\
                    osp_bridge_jobs_failed_total{reason=\"attempts\"} 3\n\
                    osp_bridge_jobs_failed_total_other 100\n\
                    osp_bridge_jobs_claimed_total 7\n";
        assert_eq!(metric_total(text, "osp_bridge_jobs_failed_total"), 5.0);
        assert_eq!(metric_total(text, "osp_bridge_jobs_claimed_total"), 7.0);
        // A counter vector before its first increment lists no series.
        assert_eq!(
            metric_total(text, "osp_bridge_workflows_started_total"),
            0.0
        );
    }
}
