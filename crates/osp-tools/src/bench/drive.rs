//! Load shapes: a closed loop (N operations, at most C in flight, the next starting when one
//! ends: measures the most a system does) and an open loop at a fixed rate (operations start
//! on schedule whether or not earlier ones have ended: measures latency at a given load,
//! without the coordinated omission a closed loop hides).

use std::future::Future;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;

/// One operation's outcome.
#[derive(Debug, Clone)]
pub struct Timed<T> {
    /// Its index, 0 to N - 1.
    pub index: usize,
    /// Wall clock when it was issued (comparable with the database's and Temporal's clocks,
    /// which are this machine's).
    pub sent: SystemTime,
    /// How long it took, whether it succeeded or not.
    pub took: Duration,
    pub result: Result<T, String>,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunOutcome<T> {
    pub ops: Vec<Timed<T>>,
    /// From the first operation issued to the last one ended.
    pub elapsed: Duration,
}

impl<T> RunOutcome<T> {
    pub fn ok(&self) -> usize {
        self.ops.iter().filter(|op| op.result.is_ok()).count()
    }

    pub fn failed(&self) -> usize {
        self.ops.len() - self.ok()
    }

    /// The first failure's message, for the report.
    pub fn first_error(&self) -> Option<String> {
        self.ops
            .iter()
            .find_map(|op| op.result.as_ref().err().cloned())
    }

    /// Latencies of the successful operations, in milliseconds.
    pub fn latencies_ms(&self) -> Vec<f64> {
        self.ops
            .iter()
            .filter(|op| op.result.is_ok())
            .map(|op| op.took.as_secs_f64() * 1000.0)
            .collect()
    }

    /// Successful operations per second over the whole run.
    pub fn throughput(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.ok() as f64 / seconds
        } else {
            0.0
        }
    }
}

async fn timed<T, Fut>(index: usize, operation: Fut) -> Timed<T>
where
    Fut: Future<Output = Result<T, String>>,
{
    let sent = SystemTime::now();
    let clock = Instant::now();
    let result = operation.await;
    Timed {
        index,
        sent,
        took: clock.elapsed(),
        result,
    }
}

/// Runs `operation(0..n)` with at most `concurrency` in flight.
pub async fn closed_loop<T, F, Fut>(n: usize, concurrency: usize, operation: F) -> RunOutcome<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let started = Instant::now();
    let ops: Vec<Timed<T>> = futures::stream::iter(0..n)
        .map(|index| timed(index, operation(index)))
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    RunOutcome {
        ops,
        elapsed: started.elapsed(),
    }
}

/// Issues `operation(i)` at `start + i / rate` for `seconds`, however many are still in
/// flight, and waits for all of them.
pub async fn open_loop<T, F, Fut>(rate: f64, seconds: f64, operation: F) -> RunOutcome<T>
where
    F: Fn(usize) -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    // Whole operations only; the float-to-int cast saturates.
    let total = (rate * seconds).floor().max(1.0) as usize;
    let interval = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let started = Instant::now();
    let begin = tokio::time::Instant::now();
    let mut in_flight = FuturesUnordered::new();
    let mut ops = Vec::with_capacity(total);
    let mut next = 0_usize;
    while next < total || !in_flight.is_empty() {
        let due = begin + interval.saturating_mul(u32::try_from(next).unwrap_or(u32::MAX));
        tokio::select! {
            biased;
            () = tokio::time::sleep_until(due), if next < total => {
                in_flight.push(timed(next, operation(next)));
                next += 1;
            }
            Some(done) = in_flight.next() => ops.push(done),
        }
    }
    RunOutcome {
        ops,
        elapsed: started.elapsed(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn closed_loop_runs_every_operation_once() {
        let outcome = closed_loop(10, 3, |i| async move {
            if i == 4 {
                Err("four".to_owned())
            } else {
                Ok(i)
            }
        })
        .await;
        let mut seen: Vec<usize> = outcome.ops.iter().map(|op| op.index).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!((outcome.ok(), outcome.failed()), (9, 1));
        assert_eq!(outcome.first_error().as_deref(), Some("four"));
    }

    #[tokio::test]
    async fn open_loop_issues_rate_times_seconds() {
        let outcome = open_loop(200.0, 0.1, |i| async move { Ok::<_, String>(i) }).await;
        assert_eq!(outcome.ops.len(), 20);
        assert_eq!(outcome.ok(), 20);
    }
}
