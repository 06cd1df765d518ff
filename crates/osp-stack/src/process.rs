//! What every throwaway server needs: its own temp dir, free ports, an unprivileged user when
//! the tests run as root, a log file, a readiness wait, and a shutdown that leaves no process,
//! zombie or file behind.

use std::fs::{DirBuilder, File, OpenOptions};
use std::future::Future;
use std::io::{ErrorKind, Read, Seek, SeekFrom};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustix::process::{Pid, Signal, kill_process};

use super::{ProbeError, StackError};

/// How many log lines a startup error carries.
const LOG_TAIL_LINES: usize = 20;

/// How long a server gets to exit after its graceful signal before it is killed.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

/// Pause between two checks of something we are waiting for.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The longest one readiness probe may take (a login or a gRPC call answers in
/// milliseconds once the server is up).
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// How often a server is restarted on fresh ports when another process took its port between
/// our probe and its bind.
pub(crate) const PORT_ATTEMPTS: usize = 5;

/// Distinguishes the temp dirs of one process (the uuid alone would do; this makes them
/// readable in `ls`).
static INSTANCE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// One server instance's private directory under the system temp dir; removed with
/// everything in it when dropped.
#[derive(Debug)]
pub(crate) struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// Creates `osp-testkit-{kind}-{pid}-{counter}-{uuid}`, mode 0700 (it holds passwords).
    pub(crate) fn create(kind: &str) -> Result<TempDir, StackError> {
        let mut last_error = None;
        // A collision needs the same pid, counter and a repeated uuid: only a leftover from a
        // previous run with a recycled pid could cause one, and a new uuid avoids it.
        for _ in 0..10 {
            let path = std::env::temp_dir().join(format!(
                "osp-testkit-{kind}-{}-{}-{}",
                std::process::id(),
                INSTANCE_COUNTER.fetch_add(1, Ordering::Relaxed),
                uuid::Uuid::new_v4().simple()
            ));
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(TempDir { path }),
                Err(error) if error.kind() == ErrorKind::AlreadyExists => last_error = Some(error),
                Err(error) => {
                    return Err(StackError::io(
                        format!("creating {}", path.display()),
                        error,
                    ));
                }
            }
        }
        Err(StackError::io(
            "creating a unique temp dir",
            last_error.unwrap_or_else(|| ErrorKind::AlreadyExists.into()),
        ))
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        match std::fs::remove_dir_all(&self.path) {
            Ok(()) => {}
            Err(error) if error.kind() == ErrorKind::NotFound => {}
            Err(error) => {
                tracing::warn!(dir = %self.path.display(), %error, "could not remove a testkit temp dir");
            }
        }
    }
}

/// The user a server that refuses root runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RunAs {
    uid: u32,
    gid: u32,
}

/// `Some(nobody)` when this process runs as root: Postgres and PgBouncer refuse to run as
/// root, so they run as `nobody`. `None` otherwise: they run as the current user.
pub(crate) fn unprivileged_user() -> Option<RunAs> {
    static USER: OnceLock<Option<RunAs>> = OnceLock::new();
    *USER.get_or_init(|| {
        // /proc/self is owned by the effective uid, which is what the servers check.
        let is_root = std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0);
        is_root.then(|| {
            std::fs::read_to_string("/etc/passwd")
                .ok()
                .and_then(|passwd| nobody_in(&passwd))
                .unwrap_or(RunAs {
                    uid: 65534,
                    gid: 65534,
                })
        })
    })
}

/// The uid and gid of `nobody` in an /etc/passwd text.
fn nobody_in(passwd: &str) -> Option<RunAs> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != "nobody" {
            return None;
        }
        let _password = fields.next()?;
        Some(RunAs {
            uid: fields.next()?.parse().ok()?,
            gid: fields.next()?.parse().ok()?,
        })
    })
}

/// Gives `dir` and everything in it to the user the servers run as (a no-op when not root).
pub(crate) fn hand_over(dir: &Path) -> Result<(), StackError> {
    let Some(user) = unprivileged_user() else {
        return Ok(());
    };
    chown_tree(dir, user)
}

fn chown_tree(path: &Path, user: RunAs) -> Result<(), StackError> {
    std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid))
        .map_err(|error| StackError::io(format!("chown {}", path.display()), error))?;
    let meta = std::fs::symlink_metadata(path)
        .map_err(|error| StackError::io(format!("stat {}", path.display()), error))?;
    if meta.is_dir() {
        let entries = std::fs::read_dir(path)
            .map_err(|error| StackError::io(format!("listing {}", path.display()), error))?;
        for entry in entries {
            let entry = entry
                .map_err(|error| StackError::io(format!("listing {}", path.display()), error))?;
            chown_tree(&entry.path(), user)?;
        }
    }
    Ok(())
}

/// A command for `program`, run in `cwd` with no stdin, as the unprivileged user when root if
/// `unprivileged` is set.
pub(crate) fn command(program: &Path, cwd: &Path, unprivileged: bool) -> Command {
    let mut command = Command::new(program);
    command.current_dir(cwd).stdin(Stdio::null());
    if unprivileged && let Some(user) = unprivileged_user() {
        command.uid(user.uid).gid(user.gid);
    }
    command
}

/// `N` distinct free ports on 127.0.0.1. The listeners are held together until all are bound
/// so the kernel cannot hand out one port twice; they are closed before returning, so a
/// server can bind them (another process may take one first: callers retry on that).
pub(crate) fn free_ports<const N: usize>() -> Result<[u16; N], StackError> {
    let mut listeners = Vec::with_capacity(N);
    let mut ports = [0; N];
    for port in &mut ports {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|error| StackError::io("binding 127.0.0.1:0 to find a free port", error))?;
        *port = listener
            .local_addr()
            .map_err(|error| StackError::io("reading a free port", error))?
            .port();
        listeners.push(listener);
    }
    Ok(ports)
}

/// One free port on 127.0.0.1 (for a process the caller starts itself; see [`free_ports`]).
pub fn free_port() -> Result<u16, StackError> {
    let [port] = free_ports()?;
    Ok(port)
}

/// Which port each start attempt of a server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PortPlan {
    /// A fresh free port on every attempt.
    Fresh,
    /// The current port on every attempt: a restarted server must keep its address.
    Keep,
    /// The given (occupied) port first, then fresh ones: lets tests exercise the retry.
    #[cfg(test)]
    FirstThenFresh(u16),
}

impl PortPlan {
    /// The port for attempt `attempt` (from 0), or `None` for "keep the current one".
    #[cfg_attr(
        not(test),
        expect(unused_variables, reason = "only tests pin a first port")
    )]
    pub(crate) fn port_for(self, attempt: usize) -> Result<Option<u16>, StackError> {
        match self {
            PortPlan::Keep => Ok(None),
            #[cfg(test)]
            PortPlan::FirstThenFresh(port) if attempt == 0 => Ok(Some(port)),
            _ => {
                let [port] = free_ports()?;
                Ok(Some(port))
            }
        }
    }
}

/// Opens `path` for appending (a restarted server adds to the same log).
pub(crate) fn open_log(path: &Path) -> Result<File, StackError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|error| StackError::io(format!("opening {}", path.display()), error))
}

/// The last lines of a log file, or a note saying why there are none.
pub(crate) fn log_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => tail_lines(&String::from_utf8_lossy(&bytes)),
        Err(error) => format!("(cannot read {}: {error})", path.display()),
    }
}

fn tail_lines(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    let tail = lines[start..].join("\n");
    if tail.is_empty() {
        "(empty log)".to_owned()
    } else {
        tail
    }
}

/// Whether a server's log says it could not bind a port. Postgres: `could not bind IPv4
/// address "127.0.0.1": Address already in use`; the Temporal CLI: `bind: address already in
/// use`; PgBouncer: `cannot listen on 127.0.0.1:P: bind(): Address already in use`.
fn says_address_in_use(log: &str) -> bool {
    log.to_ascii_lowercase().contains("address already in use")
}

/// The signal that asks a server to shut down cleanly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopSignal {
    /// SIGINT: Postgres's "fast" shutdown (disconnect clients, checkpoint, exit).
    Interrupt,
    /// SIGTERM: PgBouncer's immediate shutdown; the Temporal CLI's graceful stop.
    Terminate,
}

impl StopSignal {
    fn name(self) -> &'static str {
        match self {
            StopSignal::Interrupt => "INT",
            StopSignal::Terminate => "TERM",
        }
    }

    fn signal(self) -> Signal {
        match self {
            StopSignal::Interrupt => Signal::INT,
            StopSignal::Terminate => Signal::TERM,
        }
    }
}

/// Sends `signal` to process `pid`. Only for children not yet reaped, so the pid cannot have
/// been reused by another process.
pub(crate) fn send_signal(pid: u32, signal: Signal) -> std::io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(Pid::from_raw)
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidInput, format!("not a pid: {pid}")))?;
    kill_process(pid, signal).map_err(std::io::Error::from)
}

/// A running server process, stopped (and reaped) when dropped.
#[derive(Debug)]
pub(crate) struct ServerProcess {
    what: &'static str,
    child: Child,
    stop_signal: StopSignal,
    log: PathBuf,
    /// Where this run's output starts in the log (a restart appends).
    log_offset: u64,
}

/// Why a server did not become ready.
#[derive(Debug)]
pub(crate) enum NotStarted {
    /// Another process holds the port; start again on other ports.
    PortInUse,
    /// Anything else.
    Failed(StackError),
}

impl From<StackError> for NotStarted {
    fn from(error: StackError) -> Self {
        NotStarted::Failed(error)
    }
}

/// What [`launch`] starts, and how.
#[derive(Debug)]
pub(crate) struct Launch<'a> {
    /// The server, for messages; the same name its [`ServerProcess`] has.
    pub(crate) what: &'static str,
    /// Its log, whose tail ends a failure.
    pub(crate) log: &'a Path,
    /// Which port each attempt uses.
    pub(crate) plan: PortPlan,
    /// How long one attempt may take to become ready.
    pub(crate) deadline: Duration,
    /// The server listens on ports besides the planned one, which every attempt chooses
    /// afresh: under [`PortPlan::Keep`] the taken port may be one of those, so retrying helps.
    pub(crate) other_ports: bool,
}

/// Starts a server, on another port while the port is taken by another process: `start`
/// spawns it on the port chosen for the attempt (`None`: keep the current one) and returns
/// the process, the port it must listen on and the probe that says it is ready.
pub(crate) async fn launch<P, Fut>(
    launch: Launch<'_>,
    mut start: impl FnMut(Option<u16>) -> Result<(ServerProcess, u16, P), StackError>,
) -> Result<ServerProcess, StackError>
where
    P: FnMut() -> Fut,
    Fut: Future<Output = Result<(), ProbeError>>,
{
    let failed = |reason: String| StackError::StartupFailed {
        what: launch.what.to_owned(),
        reason,
        log_tail: log_tail(launch.log),
    };
    let retry_kept = launch.other_ports;
    for attempt in 0..PORT_ATTEMPTS {
        let (mut server, port, probe) = start(launch.plan.port_for(attempt)?)?;
        match server.wait_until_ready(port, launch.deadline, probe).await {
            Ok(()) => return Ok(server),
            Err(NotStarted::PortInUse) if launch.plan != PortPlan::Keep || retry_kept => {}
            Err(NotStarted::PortInUse) => {
                return Err(failed(format!(
                    "its port {port} is used by another process"
                )));
            }
            Err(NotStarted::Failed(error)) => return Err(error),
        }
    }
    let ports = if launch.other_ports {
        "one of its ports"
    } else {
        "its port"
    };
    Err(failed(format!(
        "another process took {ports} on each of {PORT_ATTEMPTS} attempts"
    )))
}

impl ServerProcess {
    /// Starts `command` with stdout and stderr appended to `log`.
    pub(crate) fn spawn(
        what: &'static str,
        mut command: Command,
        log: &Path,
        stop_signal: StopSignal,
    ) -> Result<ServerProcess, StackError> {
        let mut out = open_log(log)?;
        let log_offset = out
            .seek(SeekFrom::End(0))
            .map_err(|error| StackError::io(format!("seeking {}", log.display()), error))?;
        let err = out
            .try_clone()
            .map_err(|error| StackError::io(format!("duplicating {}", log.display()), error))?;
        let child = command.stdout(out).stderr(err).spawn().map_err(|error| {
            StackError::io(
                format!("starting {what} ({:?})", command.get_program()),
                error,
            )
        })?;
        tracing::debug!(what, pid = child.id(), "started");
        Ok(ServerProcess {
            what,
            child,
            stop_signal,
            log: log.to_path_buf(),
            log_offset,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What this run wrote to the log so far.
    fn this_run_log(&self) -> String {
        let mut text = Vec::new();
        let read = File::open(&self.log).and_then(|mut file| {
            file.seek(SeekFrom::Start(self.log_offset))?;
            file.read_to_end(&mut text)
        });
        match read {
            Ok(_) => String::from_utf8_lossy(&text).into_owned(),
            Err(error) => format!("(cannot read {}: {error})", self.log.display()),
        }
    }

    /// Polls `probe` until it succeeds, the process exits, or `deadline` passes. The process
    /// must hold the listening socket on `port` itself: a probe that reaches some other server
    /// which took the port first does not count.
    pub(crate) async fn wait_until_ready<F, Fut>(
        &mut self,
        port: u16,
        deadline: Duration,
        mut probe: F,
    ) -> Result<(), NotStarted>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<(), ProbeError>>,
    {
        let started = Instant::now();
        let mut last_error = "no probe yet".to_owned();
        loop {
            let exited = self.exit_status()?;
            let output = self.this_run_log();
            // PgBouncer does not exit when its TCP port is taken (it only warns and keeps
            // serving its unix socket), so the log is checked while the process runs too.
            if says_address_in_use(&output) {
                tracing::debug!(what = self.what, port, "port taken, starting on another");
                return Err(NotStarted::PortInUse);
            }
            if let Some(status) = exited {
                return Err(NotStarted::Failed(StackError::StartupFailed {
                    what: self.what.to_owned(),
                    reason: format!("it exited with {status}"),
                    log_tail: tail_lines(&output),
                }));
            }
            let remaining = deadline.saturating_sub(started.elapsed());
            if remaining.is_zero() {
                return Err(NotStarted::Failed(StackError::NotReady {
                    what: self.what.to_owned(),
                    waited: deadline,
                    last_error,
                    log_tail: log_tail(&self.log),
                }));
            }
            // Probe only once the process itself listens: before that, the port may belong to
            // a process that took it first, and its answer would prove nothing.
            if !listens_on(self.pid(), port) {
                last_error = format!("not listening on 127.0.0.1:{port} yet");
            } else {
                match tokio::time::timeout(remaining.min(PROBE_TIMEOUT), probe()).await {
                    Ok(Ok(())) => {
                        tracing::debug!(what = self.what, port, elapsed = ?started.elapsed(), "ready");
                        return Ok(());
                    }
                    Ok(Err(error)) => last_error = crate::error_chain(&error),
                    Err(_) => last_error = format!("probe timed out after {PROBE_TIMEOUT:?}"),
                }
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    fn exit_status(&mut self) -> Result<Option<ExitStatus>, StackError> {
        self.child
            .try_wait()
            .map_err(|error| StackError::io(format!("checking on {}", self.what), error))
    }

    /// Asks the process to stop with its own stop signal.
    fn send_stop_signal(&mut self) {
        if send_signal(self.pid(), self.stop_signal.signal()).is_err() {
            // Exited meanwhile: SIGKILL (through the child handle) is harmless then.
            let _ = self.child.kill();
        }
    }

    /// Kills the process that ignored its stop signal and reaps it.
    fn kill_and_reap(&mut self) -> Result<(), StackError> {
        tracing::warn!(
            what = self.what,
            pid = self.pid(),
            "did not stop in time, killing it"
        );
        let _ = self.child.kill();
        self.child
            .wait()
            .map_err(|error| StackError::io(format!("reaping {}", self.what), error))?;
        Err(StackError::StopFailed {
            what: self.what.to_owned(),
            reason: format!(
                "still running {STOP_DEADLINE:?} after SIG{}; killed",
                self.stop_signal.name()
            ),
        })
    }

    /// Stops the process and reaps it, blocking the thread (for `Drop`).
    pub(crate) fn stop_blocking(&mut self) -> Result<(), StackError> {
        if self.exit_status()?.is_some() {
            return Ok(());
        }
        self.send_stop_signal();
        let deadline = Instant::now() + STOP_DEADLINE;
        while Instant::now() < deadline {
            if self.exit_status()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(POLL_INTERVAL / 2);
        }
        self.kill_and_reap()
    }

    /// Stops the process and reaps it without blocking the runtime.
    pub(crate) async fn stop(&mut self) -> Result<(), StackError> {
        if self.exit_status()?.is_some() {
            return Ok(());
        }
        self.send_stop_signal();
        let deadline = Instant::now() + STOP_DEADLINE;
        while Instant::now() < deadline {
            if self.exit_status()?.is_some() {
                return Ok(());
            }
            tokio::time::sleep(POLL_INTERVAL / 2).await;
        }
        self.kill_and_reap()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Err(error) = self.stop_blocking() {
            tracing::warn!(what = self.what, %error, "stopping a testkit server on drop");
        }
    }
}

/// Whether process `pid` holds a listening TCP socket on 127.0.0.1:`port` (or 0.0.0.0).
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        // Without /proc we cannot tell; the probe's success has to do.
        return true;
    };
    let inodes = listening_inodes(&table, port);
    if inodes.is_empty() {
        return false;
    }
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            inodes
                .iter()
                .any(|inode| target == format!("socket:[{inode}]"))
        })
    })
}

/// The inodes of the sockets listening on `port` in a /proc/net/tcp table.
fn listening_inodes(table: &str, port: u16) -> Vec<String> {
    const LISTEN: &str = "0A";
    let wanted = [
        format!("0100007F:{port:04X}"),
        format!("00000000:{port:04X}"),
    ];
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (fields.get(1)?, fields.get(3)?, fields.get(9)?);
            (wanted.iter().any(|w| w == local) && *state == LISTEN).then(|| (*inode).to_owned())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nobody_is_read_from_passwd() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65533:nobody:/nonexistent:/usr/sbin/nologin\n";
        assert_eq!(
            nobody_in(passwd),
            Some(RunAs {
                uid: 65534,
                gid: 65533
            })
        );
        assert_eq!(nobody_in("root:x:0:0::/:/bin/sh"), None);
    }

    #[test]
    fn a_log_tail_keeps_the_last_lines() {
        let text: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        let tail = tail_lines(&text);
        assert!(tail.starts_with("line 11\n"), "{tail}");
        assert!(tail.ends_with("line 30"), "{tail}");
        assert_eq!(tail_lines(""), "(empty log)");
    }

    #[test]
    fn a_listening_socket_is_found_in_proc_net_tcp() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 67890 1 0000000000000000 100 0 0 10 0\n";
        assert_eq!(listening_inodes(table, 8080), ["12345"]);
        assert!(listening_inodes(table, 8081).is_empty());
    }

    #[test]
    fn this_process_is_seen_listening_on_its_own_port() {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(listens_on(std::process::id(), port));
        drop(listener);
        assert!(!listens_on(std::process::id(), port));
    }
}
