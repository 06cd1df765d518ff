//! Tears down servers when the process that started them exits, however it exits (the
//! testkit's per-binary environment lives in a static, and statics are never dropped). A
//! small shell process holds the read end of a pipe whose write end only this process has. When this
//! process ends (normally, by panic, or by SIGKILL) the kernel closes the pipe, the shell's
//! `read` returns, and it stops the servers and removes their directories.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;

use crate::StackError;

/// The watchdog's program. It collects `kill SIGNAL PID` and `rm PATH` lines until end of
/// input, then signals each process, waits up to 10 s for them to go (a zombie counts as
/// gone: only its parent, which just died, or init can reap it), kills what is left and
/// removes the directories.
const SCRIPT: &str = r#"
procs=''
dirs=''
nl='
'
while IFS= read -r line; do
  case "$line" in
    "kill "*) procs="$procs${line#kill }$nl" ;;
    "rm "*) dirs="$dirs${line#rm }$nl" ;;
  esac
done
running() {
  state=$(sed -n 's/.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null)
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}
printf '%s' "$procs" | while read -r sig pid; do kill -s "$sig" "$pid" 2>/dev/null; done
i=0
while [ "$i" -lt 100 ]; do
  left=$(printf '%s' "$procs" | while read -r sig pid; do running "$pid" && echo "$pid"; done)
  [ -z "$left" ] && break
  sleep 0.1
  i=$((i + 1))
done
printf '%s' "$procs" | while read -r sig pid; do running "$pid" && kill -s KILL "$pid" 2>/dev/null; done
printf '%s' "$dirs" | while IFS= read -r dir; do [ -n "$dir" ] && rm -rf -- "$dir"; done
"#;

/// The watchdog process and the pipe that keeps it waiting.
#[derive(Debug)]
pub struct Watchdog {
    stdin: Mutex<ChildStdin>,
    child: Child,
}

impl Watchdog {
    /// Starts the watchdog in its own process group, so a Ctrl-C aimed at the tests does not
    /// kill it before it has cleaned up.
    pub fn start() -> Result<Watchdog, StackError> {
        let mut child = Command::new("/bin/sh")
            .args(["-c", SCRIPT])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .map_err(|error| StackError::io("starting the environment's watchdog", error))?;
        let stdin = child.stdin.take().ok_or_else(|| {
            StackError::io(
                "starting the environment's watchdog",
                std::io::Error::other("no pipe to its stdin"),
            )
        })?;
        Ok(Watchdog {
            stdin: Mutex::new(stdin),
            child,
        })
    }

    /// The watchdog's pid (for the test that proves it works).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops `pid` with `signal` (`INT`, `TERM`) when this process exits.
    pub fn stop_at_exit(&self, signal: &str, pid: u32) -> Result<(), StackError> {
        self.send(&format!("kill {signal} {pid}\n"))
    }

    /// Removes `dir` when this process exits, after the processes are gone.
    pub fn remove_at_exit(&self, dir: &Path) -> Result<(), StackError> {
        let text = dir.to_string_lossy();
        if text.contains('\n') {
            return Err(StackError::io(
                format!("registering {text:?} for removal"),
                std::io::Error::other("a path with a newline cannot be passed on"),
            ));
        }
        self.send(&format!("rm {text}\n"))
    }

    fn send(&self, line: &str) -> Result<(), StackError> {
        let mut stdin = self
            .stdin
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        stdin
            .write_all(line.as_bytes())
            .and_then(|()| stdin.flush())
            .map_err(|error| StackError::io("telling the watchdog what to clean up", error))
    }
}
