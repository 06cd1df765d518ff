//! What the benchmark reads from `/proc`: a process's CPU time and peak resident memory, a
//! process tree's CPU time, how long a process's threads waited for a CPU, the machine's busy
//! time, and the machine the figures were taken on (they mean little without it).

use std::collections::HashMap;

use serde::Serialize;

use super::BenchError;

/// Clock ticks per second of `utime`/`stime` in `/proc/<pid>/stat`. `sysconf(_SC_CLK_TCK)`
/// needs libc (and `unsafe`); it is 100 on every Linux this runs on.
const CLK_TCK: f64 = 100.0;

/// CPU and memory of one process at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Usage {
    /// User plus system CPU time since the process started, in seconds (10 ms resolution).
    pub cpu_seconds: f64,
    /// Peak resident set size so far (`VmHWM`), in KiB.
    pub peak_rss_kib: u64,
    /// Resident set size now (`VmRSS`), in KiB.
    pub rss_kib: u64,
}

/// Reads `pid`'s CPU time and memory.
pub fn usage(pid: u32) -> Result<Usage, BenchError> {
    let read = |file: &str| {
        let path = format!("/proc/{pid}/{file}");
        std::fs::read_to_string(&path).map_err(|source| BenchError::Io {
            what: format!("reading {path}"),
            source,
        })
    };
    let stat = read("stat")?;
    let cpu_seconds = parse_cpu_seconds(&stat)
        .ok_or_else(|| BenchError::Failed(format!("/proc/{pid}/stat has no CPU times")))?;
    let status = read("status")?;
    Ok(Usage {
        cpu_seconds,
        peak_rss_kib: status_kib(&status, "VmHWM:").unwrap_or_default(),
        rss_kib: status_kib(&status, "VmRSS:").unwrap_or_default(),
    })
}

/// `utime + stime` in seconds.
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    parse_tree_fields(stat).map(|(_, own, _)| own as f64 / CLK_TCK)
}

/// `(ppid, utime + stime, cutime + cstime)` in ticks: field 4, 14 + 15 and 16 + 17. The
/// command name (field 2) may hold spaces and parentheses, so fields are counted from the
/// last `)`.
fn parse_tree_fields(stat: &str) -> Option<(u32, u64, u64)> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let number = |i: usize| fields.get(i)?.parse::<u64>().ok();
    let ppid = u32::try_from(number(1)?).ok()?;
    Some((ppid, number(11)? + number(12)?, number(13)? + number(14)?))
}

/// Every process's parent and CPU ticks, read from `/proc` at one moment, so that several
/// process trees are summed from one scan.
pub struct ProcessTable {
    /// pid → (ppid, own ticks plus those of its children already reaped).
    processes: HashMap<u32, (u32, u64)>,
}

impl ProcessTable {
    pub fn read() -> Result<Self, BenchError> {
        let mut processes = HashMap::new();
        let entries = std::fs::read_dir("/proc").map_err(|source| BenchError::Io {
            what: "listing /proc".to_owned(),
            source,
        })?;
        for entry in entries.flatten() {
            let Some(id) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // A process may end between the listing and the read: it is then its parent's.
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            if let Some((ppid, own, reaped)) = parse_tree_fields(&stat) {
                processes.insert(id, (ppid, own + reaped));
            }
        }
        Ok(ProcessTable { processes })
    }

    /// CPU seconds of `pid` and of everything it started: each live process of the tree
    /// counts its own time plus that of its children already reaped (`cutime`, `cstime`).
    /// So a PostgreSQL postmaster's figure includes every backend, ended connections too.
    pub fn tree_cpu_seconds(&self, pid: u32) -> Result<f64, BenchError> {
        sum_tree(&self.processes, pid)
            .map(|ticks| ticks as f64 / CLK_TCK)
            .ok_or_else(|| BenchError::Failed(format!("process {pid} is not running")))
    }
}

/// The ticks of `root` and its descendants in `processes` (pid → (ppid, ticks)).
fn sum_tree(processes: &HashMap<u32, (u32, u64)>, root: u32) -> Option<u64> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (pid, (ppid, _)) in processes {
        children.entry(*ppid).or_default().push(*pid);
    }
    let mut total = processes.get(&root)?.1;
    let mut stack = children.get(&root).cloned().unwrap_or_default();
    while let Some(pid) = stack.pop() {
        total += processes.get(&pid).map_or(0, |(_, ticks)| *ticks);
        stack.extend(children.get(&pid).into_iter().flatten());
    }
    Some(total)
}

/// How long `pid`'s threads have been runnable but waiting for a CPU, in seconds: the second
/// field of each `/proc/<pid>/task/<tid>/schedstat` (nanoseconds), summed. It tells a server
/// slowed by the processes beside it from one slowed by its own work. A thread that ended
/// took its figure with it, so this counts for long-lived threads (the Go runtime's of the
/// Temporal dev server). `None` when the kernel keeps no such statistics.
pub fn run_queue_wait_seconds(pid: u32) -> Option<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut nanos = 0_u64;
    let mut threads = 0_usize;
    for task in tasks.flatten() {
        // A thread may end between the listing and the read.
        if let Some(waited) = std::fs::read_to_string(task.path().join("schedstat"))
            .ok()
            .as_deref()
            .and_then(parse_run_queue_wait)
        {
            nanos += waited;
            threads += 1;
        }
    }
    (threads > 0).then(|| nanos as f64 / 1e9)
}

/// The run-queue wait of one `schedstat` line: `on-CPU-ns waiting-ns timeslices`.
fn parse_run_queue_wait(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().nth(1)?.parse().ok()
}

/// The machine's CPU time so far, in seconds summed over CPUs: `(busy, all)`, where idle and
/// I/O wait are the difference (the first line of `/proc/stat`).
pub fn machine_cpu_seconds() -> Result<(f64, f64), BenchError> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(|source| BenchError::Io {
        what: "reading /proc/stat".to_owned(),
        source,
    })?;
    parse_machine_cpu(&stat).ok_or_else(|| BenchError::Failed("/proc/stat has no cpu line".into()))
}

fn parse_machine_cpu(stat: &str) -> Option<(f64, f64)> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    // user nice system idle iowait irq softirq steal (guest time is inside user already).
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    let all: u64 = ticks.iter().sum();
    let idle = ticks.get(3)? + ticks.get(4)?;
    Some(((all - idle) as f64 / CLK_TCK, all as f64 / CLK_TCK))
}

/// The machine's online CPUs: one `cpuN` line each in `/proc/stat`, whatever this process's
/// affinity (`available_parallelism` counts only the CPUs this process may use, one under
/// `--split-cpus`).
fn parse_cpu_count(stat: &str) -> Option<usize> {
    let count = stat
        .lines()
        .filter(|line| {
            line.strip_prefix("cpu")
                .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    (count > 0).then_some(count)
}

fn status_kib(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|value| value.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// The machine and the load on it.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gib: f64,
    pub kernel: String,
    /// `/proc/loadavg`'s 1, 5 and 15 minute averages.
    pub load_average: String,
}

/// Describes this machine; unknown parts read `unknown`.
pub fn machine() -> Machine {
    let read = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == "model name").then(|| value.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let memory_gib = status_kib(&read("/proc/meminfo"), "MemTotal:")
        .map_or(0.0, |kib| kib as f64 / (1024.0 * 1024.0));
    let kernel = read("/proc/sys/kernel/osrelease").trim().to_owned();
    Machine {
        cpus: parse_cpu_count(&read("/proc/stat")).unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(0, std::num::NonZero::get)
        }),
        cpu_model,
        memory_gib,
        kernel: if kernel.is_empty() {
            "unknown".to_owned()
        } else {
            kernel
        },
        load_average: load_average(),
    }
}

/// The 1, 5 and 15 minute load averages, e.g. `0.52 0.61 0.70`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|line| {
            line.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_after_a_command_name_with_spaces() {
        let stat =
            "4242 (osp worker) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 25 0 0 20 0 9 0 100 0 0";
        assert_eq!(parse_cpu_seconds(stat), Some(1.75));
    }

    #[test]
    fn a_tree_counts_live_descendants_and_reaped_children_once() {
        let stat = "7 (postgres: bench [local] idle) S 3 7 7 0 -1 0 0 0 0 0 150 25 40 5 20 0";
        assert_eq!(parse_tree_fields(stat), Some((3, 175, 45)));
        // 1 ─ 2 ─ 4, and 3 beside it; 2's ticks hold its reaped children already.
        let processes: HashMap<u32, (u32, u64)> =
            [(1, (0, 10)), (2, (1, 20)), (3, (9, 40)), (4, (2, 5))].into();
        assert_eq!(sum_tree(&processes, 1), Some(35));
        assert_eq!(sum_tree(&processes, 3), Some(40));
        assert_eq!(sum_tree(&processes, 8), None);
        // Read in this order: the tree's figure is taken later, so it cannot be less.
        let alone = usage(std::process::id()).unwrap().cpu_seconds;
        let table = ProcessTable::read().unwrap();
        assert!(table.tree_cpu_seconds(std::process::id()).unwrap() >= alone);
    }

    #[test]
    fn machine_time_leaves_out_idle_and_io_wait() {
        let stat = "cpu  100 20 30 400 50 1 2 3 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(parse_machine_cpu(stat), Some((1.56, 6.06)));
        let (busy, all) = machine_cpu_seconds().unwrap();
        assert!(busy <= all && all > 0.0);
    }

    #[test]
    fn the_machine_counts_every_online_cpu_not_only_this_process_s() {
        let stat =
            "cpu  100 20 30 400 50 1 2 3 0 0\ncpu0 1 2\ncpu1 3 4\ncpu3 5 6\nintr 9\nctxt 1\n";
        assert_eq!(parse_cpu_count(stat), Some(3));
        assert_eq!(parse_cpu_count("intr 9\n"), None);
    }

    #[test]
    fn run_queue_wait_is_the_second_schedstat_field() {
        assert_eq!(
            parse_run_queue_wait("132103657 129569909 374\n"),
            Some(129_569_909)
        );
        assert_eq!(parse_run_queue_wait("132103657"), None);
        assert_eq!(run_queue_wait_seconds(u32::MAX), None);
    }

    #[test]
    fn status_values() {
        let status = "Name:\tosp-worker\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(status_kib(status, "VmHWM:"), Some(20480));
        assert_eq!(status_kib(status, "VmRSS:"), Some(10240));
        assert_eq!(status_kib(status, "VmSwap:"), None);
    }

    #[test]
    fn this_process() {
        let usage = usage(std::process::id()).unwrap();
        assert!(usage.peak_rss_kib >= usage.rss_kib);
        assert!(machine().cpus > 0);
    }
}
