//! Which CPUs a process may run on (`sched_getaffinity` / `sched_setaffinity`), so that a
//! benchmark can give the Temporal dev server CPUs of its own, as a remote server (Temporal
//! Cloud) has in production, instead of sharing them with the database and the OSP processes.

use rustix::thread::{CpuSet, sched_getaffinity, sched_setaffinity};

use super::StackError;

/// The CPUs the calling thread may run on, in ascending order.
pub fn allowed_cpus() -> Result<Vec<usize>, StackError> {
    let set = sched_getaffinity(None).map_err(|error| {
        StackError::io("reading the CPUs this process may run on", error.into())
    })?;
    Ok((0..CpuSet::MAX_CPU)
        .filter(|&cpu| set.is_set(cpu))
        .collect())
}

/// Restricts the calling thread to `cpus`; the threads and processes it starts afterwards
/// inherit that. A binary calls it before it builds its async runtime, so that every worker
/// thread and child process follows.
pub fn pin_this_thread(cpus: &[usize]) -> Result<(), StackError> {
    cpu_set(cpus)
        .and_then(|set| sched_setaffinity(None, &set).map_err(std::io::Error::from))
        .map_err(|error| StackError::io(format!("pinning to CPUs {}", list(cpus)), error))
}

/// Runs `spawn` on a thread of its own restricted to `cpus` (on the calling thread when
/// `cpus` is empty), so that the process it starts is born with that affinity, and so is
/// every thread that process makes. Pinning a process after it started would race with the
/// threads it starts meanwhile (the Go runtime of the dev server makes several at once).
pub(crate) fn spawn_on<T, F>(cpus: &[usize], spawn: F) -> Result<T, StackError>
where
    T: Send,
    F: FnOnce() -> Result<T, StackError> + Send,
{
    if cpus.is_empty() {
        return spawn();
    }
    std::thread::scope(|scope| {
        let thread = scope.spawn(|| {
            pin_this_thread(cpus)?;
            spawn()
        });
        thread
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// `0, 2-3` style, for messages and reports.
pub fn list(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut index = 0;
    while index < cpus.len() {
        let start = cpus[index];
        let mut end = start;
        while index + 1 < cpus.len() && cpus[index + 1] == end + 1 {
            index += 1;
            end = cpus[index];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        index += 1;
    }
    parts.join(", ")
}

fn cpu_set(cpus: &[usize]) -> Result<CpuSet, std::io::Error> {
    let mut set = CpuSet::new();
    for &cpu in cpus {
        if cpu >= CpuSet::MAX_CPU {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "CPU {cpu} is beyond the {} a CPU set holds",
                    CpuSet::MAX_CPU
                ),
            ));
        }
        set.set(cpu);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cpu_list_reads_as_ranges() {
        assert_eq!(list(&[]), "");
        assert_eq!(list(&[0]), "0");
        assert_eq!(list(&[0, 1, 2, 5, 7, 8]), "0-2, 5, 7-8");
    }

    #[test]
    fn a_process_spawned_on_cpus_is_born_with_them_and_the_caller_keeps_its_own() {
        let before = allowed_cpus().unwrap();
        let first = before[0];
        let child = spawn_on(&[first], || {
            std::process::Command::new("grep")
                .args(["Cpus_allowed_list", "/proc/self/status"])
                .output()
                .map_err(|error| StackError::io("running grep", error))
        })
        .unwrap();
        let status = String::from_utf8(child.stdout).unwrap();
        assert_eq!(
            status.split_whitespace().nth(1),
            Some(first.to_string().as_str()),
            "{status}"
        );
        assert_eq!(allowed_cpus().unwrap(), before);
    }

    #[test]
    fn a_cpu_beyond_the_set_is_refused_by_number() {
        let error = pin_this_thread(&[CpuSet::MAX_CPU]).unwrap_err();
        assert!(
            error.to_string().contains(&CpuSet::MAX_CPU.to_string()),
            "{error}"
        );
    }
}
