//! The bench's split of the machine's CPUs: the Temporal dev server on CPUs of its own, and
//! everything else (PostgreSQL, PgBouncer, the OSP and Node processes, the bench's client) on
//! the rest.
//!
//! In production the server is remote (Temporal Cloud) and the database has its own cores
//! (Supabase), so a bridge's or a worker's CPU never comes out of the server's. On one small
//! machine they all compete for the same cores, and a figure such as the drain's share of the
//! raw start rate then measures how the scheduler shares them more than the bridge: the raw
//! run has only the bench's client beside the server, the drain the database and the bridge
//! too (docs/performance.md). With the split, the server has the same CPUs in every run.
//! It is `--split-cpus`, not the default: on two cores it leaves the server one, which halves
//! the worker scenarios' throughput, and it did not raise the bridge's drain.

use std::fmt;

/// Which CPUs the server gets and which the rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuSplit {
    pub server: Vec<usize>,
    pub rest: Vec<usize>,
}

impl CpuSplit {
    /// The first half of `allowed` (rounded down) for the server, the rest for everything
    /// else; `None` with fewer than two CPUs, which cannot be split.
    pub fn of(allowed: &[usize]) -> Option<CpuSplit> {
        if allowed.len() < 2 {
            return None;
        }
        let (server, rest) = allowed.split_at(allowed.len() / 2);
        Some(CpuSplit {
            server: server.to_vec(),
            rest: rest.to_vec(),
        })
    }
}

impl fmt::Display for CpuSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cpus = |list: &[usize]| {
            let word = if list.len() == 1 { "CPU" } else { "CPUs" };
            format!("{word} {}", osp_stack::cpu_list(list))
        };
        write!(
            f,
            "the Temporal dev server on {}; PostgreSQL, PgBouncer, the OSP and Node processes and the bench's client on {}",
            cpus(&self.server),
            cpus(&self.rest)
        )
    }
}

/// Splits the CPUs this process may use and restricts the calling thread to the rest, so that
/// the runtime's threads and every process the bench starts follow; `None` (nothing pinned)
/// when there is only one. Called by `main` before it builds the async runtime.
pub fn pin_bench() -> Result<Option<CpuSplit>, osp_stack::StackError> {
    let Some(split) = CpuSplit::of(&osp_stack::allowed_cpus()?) else {
        return Ok(None);
    };
    osp_stack::pin_this_thread(&split.rest)?;
    Ok(Some(split))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_gets_the_first_half_rounded_down_and_one_cpu_is_not_split() {
        assert_eq!(CpuSplit::of(&[]), None);
        assert_eq!(CpuSplit::of(&[3]), None);
        let two = CpuSplit::of(&[0, 1]).unwrap();
        assert_eq!((two.server, two.rest), (vec![0], vec![1]));
        let odd = CpuSplit::of(&[2, 4, 5, 6, 9]).unwrap();
        assert_eq!((odd.server, odd.rest), (vec![2, 4], vec![5, 6, 9]));
    }

    #[test]
    fn a_split_names_both_parts() {
        let split = CpuSplit::of(&[0, 1, 2, 3]).unwrap();
        assert_eq!(
            split.to_string(),
            "the Temporal dev server on CPUs 0-1; PostgreSQL, PgBouncer, the OSP and Node processes and the bench's client on CPUs 2-3"
        );
        assert!(
            CpuSplit::of(&[0, 1])
                .unwrap()
                .to_string()
                .contains("server on CPU 0;")
        );
    }
}
