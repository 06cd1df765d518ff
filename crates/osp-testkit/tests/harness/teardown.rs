//! The per-binary environment lives in a static and is never dropped; its watchdog must
//! still stop the servers and remove their directories when the test process ends, even by
//! SIGKILL. Each test here runs this same binary as a child that sets the environment up,
//! prints what it started and dies; then checks nothing is left.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use osp_testkit::test_env;

/// Set by the parent: how the child is to die (`kill` or `exit`).
const CHILD: &str = "OSP_TESTKIT_TEARDOWN_CHILD";

#[tokio::test]
async fn child_sets_up_the_environment_then_dies() {
    // As a test of its own (without the variable) there is nothing to do.
    let Some(how) = std::env::var_os(CHILD) else {
        return;
    };
    let env = test_env().await.unwrap();
    let (pids, dirs) = env.shared_processes();
    let mut out = std::io::stdout().lock();
    for pid in pids {
        writeln!(out, "pid {pid}").unwrap();
    }
    for dir in dirs {
        assert!(dir.exists(), "{}", dir.display());
        writeln!(out, "dir {}", dir.display()).unwrap();
    }
    out.flush().unwrap();
    drop(out);
    if how == "kill" {
        // No unwinding, no destructor, no exit handler: only the kernel closing our pipes.
        let _ = Command::new("kill")
            .args(["-9", &std::process::id().to_string()])
            .status();
        std::future::pending::<()>().await;
    }
    std::process::exit(0);
}

/// Whether `pid` is a live process (a zombie waiting for its reaper is not).
fn running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

fn nothing_left_after_the_child(how: &str) {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "teardown::child_sets_up_the_environment_then_dies",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD, how)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let pids: Vec<u32> = stdout
        .lines()
        // The harness may print the test's name on the same line first.
        .filter_map(|line| line.rsplit_once("pid ")?.1.parse().ok())
        .collect();
    let dirs: Vec<PathBuf> = stdout
        .lines()
        .filter_map(|line| {
            line.split_once("dir /")
                .map(|(_, path)| PathBuf::from(format!("/{path}")))
        })
        .collect();
    assert!(
        pids.len() >= 4 && dirs.len() == 4,
        "the child did not report its environment ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let started = Instant::now();
    loop {
        let alive: Vec<u32> = pids.iter().copied().filter(|pid| running(*pid)).collect();
        let present: Vec<&PathBuf> = dirs.iter().filter(|dir| dir.exists()).collect();
        if alive.is_empty() && present.is_empty() {
            eprintln!(
                "after the child's {how}: everything gone within {:?}",
                started.elapsed()
            );
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "still running: {alive:?}; still present: {present:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_environment_is_torn_down_when_the_test_process_is_killed() {
    nothing_left_after_the_child("kill");
}

#[test]
fn the_environment_is_torn_down_when_the_test_process_exits() {
    nothing_left_after_the_child("exit");
}
