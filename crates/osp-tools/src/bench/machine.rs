//! What the benchmark reads from `/proc`: a process's CPU time and peak resident memory, and
//! the machine the figures were taken on (they mean little without it).

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

/// `utime + stime` in seconds. The command name (field 2) may hold spaces and parentheses,
/// so fields are counted from the last `)`: state is field 3, utime 14 and stime 15.
fn parse_cpu_seconds(stat: &str) -> Option<f64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / CLK_TCK)
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
        cpus: std::thread::available_parallelism().map_or(0, std::num::NonZero::get),
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
