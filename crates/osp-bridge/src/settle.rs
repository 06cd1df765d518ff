//! Settlements, many per statement: each dispatch hands its job's outcome to one settler task
//! and waits for the answer; the settler writes everything that has arrived in one call of
//! `api.settle_workflow_jobs`. While one call runs the next batch gathers, so a quiet bridge
//! settles each job at once and a busy one settles many per statement. Under a backlog (the
//! claim loop says so) the settler also waits, a bounded moment, for a claim's worth of
//! outcomes: the claim loop waits for that many free slots anyway, so the slots it frees
//! together cost no start, and one statement settles what one settled per job before.

use std::collections::HashMap;
use std::time::Duration;

use osp_runtime::backoff::Backoff;
use prometheus::Histogram;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::queue::{Queue, SettleOutcome, Settlement};

/// Settlements per statement at most (the function takes up to 1000).
const MAX_BATCH: usize = 500;
/// How long one settlement statement may take; past it the batch is sent again (an element
/// that was written meanwhile then reads as fenced, and nothing is written twice).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);
/// Under a backlog, how long the first outcome of a batch waits for the rest of a claim's
/// worth. Between the claim loop's chunks the slots freed one by one stay idle until the chunk
/// is free, so waiting here costs the starts nothing as long as the chunk fills within this;
/// when starts answer too slowly to fill it, the batch goes smaller, no later than this.
const BACKLOG_GATHER: Duration = Duration::from_millis(50);

/// One job's settlement, waiting for the settler.
struct Pending {
    settlement: Settlement,
    /// The claim's lease ends then: a settlement still unwritten is given up, and the job is
    /// claimed again.
    deadline: Instant,
    reply: oneshot::Sender<Option<SettleOutcome>>,
}

/// The handle dispatches settle through.
#[derive(Debug, Clone)]
pub struct Settler {
    sender: mpsc::Sender<Pending>,
    /// Whether the claim loop knows of a backlog; see [`BACKLOG_GATHER`].
    backlog: watch::Sender<bool>,
}

impl Settler {
    /// Starts the settler task on `queue`; `capacity` is how many dispatches can be in flight,
    /// `chunk` how many slots the claim loop waits for under a backlog. Each statement that
    /// answers is timed into `took`.
    pub fn start(
        queue: Queue,
        capacity: usize,
        chunk: usize,
        took: Histogram,
    ) -> (Settler, JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let (backlog, backlog_seen) = watch::channel(false);
        let gather = Gather {
            chunk: chunk.clamp(1, MAX_BATCH),
            wait: BACKLOG_GATHER,
            backlog: backlog_seen,
        };
        let settler = Settler { sender, backlog };
        (settler, tokio::spawn(run(queue, receiver, gather, took)))
    }

    /// Tells the settler whether the claim loop knows of a backlog; when it ends, what the
    /// settler holds is written at once.
    pub fn under_backlog(&self, backlog: bool) {
        // Receivers wake only when the flag changes, not after every claim.
        self.backlog
            .send_if_modified(|known| std::mem::replace(known, backlog) != backlog);
    }

    /// Writes `settlement` with the others that arrive meanwhile; `None` when it could not be
    /// written before `deadline` (the job is claimed again when its lease expires).
    pub async fn settle(&self, settlement: Settlement, deadline: Instant) -> Option<SettleOutcome> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            settlement,
            deadline,
            reply,
        };
        self.sender.send(pending).await.ok()?;
        answer.await.ok().flatten()
    }
}

async fn run(
    queue: Queue,
    mut receiver: mpsc::Receiver<Pending>,
    mut gather: Gather,
    took: Histogram,
) {
    while let Some(first) = receiver.recv().await {
        let batch = gather.batch(first, &mut receiver).await;
        flush(&queue, batch, &took).await;
    }
}

/// How a batch gathers: everything already waiting, and under a backlog up to `chunk` of
/// what arrives within `wait` of the first.
struct Gather {
    chunk: usize,
    wait: Duration,
    backlog: watch::Receiver<bool>,
}

impl Gather {
    async fn batch<T>(&mut self, first: T, receiver: &mut mpsc::Receiver<T>) -> Vec<T> {
        let mut batch = vec![first];
        take_waiting(&mut batch, receiver);
        let until = Instant::now() + self.wait;
        while batch.len() < self.chunk && *self.backlog.borrow_and_update() {
            tokio::select! {
                next = receiver.recv() => match next {
                    Some(pending) => {
                        batch.push(pending);
                        take_waiting(&mut batch, receiver);
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(until) => break,
                // The loop checks the flag again; a dropped sender means shutdown.
                changed = self.backlog.changed() => if changed.is_err() { break },
            }
        }
        batch
    }
}

/// Moves what is already in `receiver` into `batch`, up to [`MAX_BATCH`].
fn take_waiting<T>(batch: &mut Vec<T>, receiver: &mut mpsc::Receiver<T>) {
    while batch.len() < MAX_BATCH {
        match receiver.try_recv() {
            Ok(pending) => batch.push(pending),
            Err(_) => break,
        }
    }
}

/// Writes `batch`, retrying the whole statement with backoff while any of its leases last.
async fn flush(queue: &Queue, mut batch: Vec<Pending>, took: &Histogram) {
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        let now = Instant::now();
        let (live, expired): (Vec<Pending>, Vec<Pending>) = batch
            .into_iter()
            .partition(|pending| pending.deadline > now);
        if !expired.is_empty() {
            tracing::error!(
                jobs = expired.len(),
                "settlements not written before their leases expired; the jobs will be claimed again"
            );
        }
        for pending in expired {
            let _ = pending.reply.send(None);
        }
        batch = live;
        let Some(latest) = batch.iter().map(|pending| pending.deadline).max() else {
            return;
        };
        let settlements: Vec<Settlement> = batch
            .iter()
            .map(|pending| pending.settlement.clone())
            .collect();
        let limit = SETTLE_TIMEOUT.min(latest.saturating_duration_since(now));
        let sent = Instant::now();
        let answered = tokio::time::timeout(limit, queue.settle(&settlements)).await;
        if answered.is_ok() {
            took.observe(sent.elapsed().as_secs_f64());
        }
        let error = match answered {
            Ok(Ok(rows)) => {
                answer(batch, rows);
                return;
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => format!("no answer within {} ms", limit.as_millis()),
        };
        let (delay, attempt) = backoff.next_delay();
        tracing::warn!(%error, attempt, jobs = batch.len(), retry_in_ms = delay.as_millis(), "settling failed; retrying");
        tokio::time::sleep(delay).await;
    }
}

/// Hands each dispatch its row, by job and attempt (a job whose lease expired can be in one
/// batch twice, under two claims); one the function did not return gets `None`.
fn answer(batch: Vec<Pending>, rows: Vec<((Uuid, i32), SettleOutcome)>) {
    let mut rows: HashMap<(Uuid, i32), SettleOutcome> = rows.into_iter().collect();
    for pending in batch {
        let key = (pending.settlement.job_id, pending.settlement.attempt);
        let outcome = rows.remove(&key);
        let _ = pending.reply.send(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A gatherer of `chunk`, waiting `wait`, and the flag's sender.
    fn gather(chunk: usize, wait: Duration, backlog: bool) -> (Gather, watch::Sender<bool>) {
        let (flag, seen) = watch::channel(backlog);
        let gather = Gather {
            chunk,
            wait,
            backlog: seen,
        };
        (gather, flag)
    }

    /// Fails instead of hanging when a batch never completes.
    async fn batch(
        gather: &mut Gather,
        first: u32,
        receiver: &mut mpsc::Receiver<u32>,
    ) -> Vec<u32> {
        tokio::time::timeout(Duration::from_secs(30), gather.batch(first, receiver))
            .await
            .expect("the batch should be complete long before this")
    }

    #[tokio::test]
    async fn without_a_backlog_a_batch_is_what_has_arrived() {
        let (sender, mut receiver) = mpsc::channel(8);
        sender.send(2).await.unwrap();
        sender.send(3).await.unwrap();
        // An hour's wait is never taken: nothing is known to be coming.
        let (mut gather, _flag) = gather(4, Duration::from_secs(3600), false);
        assert_eq!(batch(&mut gather, 1, &mut receiver).await, [1, 2, 3]);
    }

    #[tokio::test]
    async fn under_a_backlog_a_batch_waits_for_a_claim_s_worth() {
        let (sender, mut receiver) = mpsc::channel(8);
        let (mut gather, _flag) = gather(4, Duration::from_secs(3600), true);
        let senders = tokio::spawn(async move {
            for n in 2..=6 {
                sender.send(n).await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let first = batch(&mut gather, 1, &mut receiver).await;
        assert!(first.len() >= 4, "{first:?}");
        assert_eq!(first[..4], [1, 2, 3, 4]);
        senders.await.unwrap();
    }

    #[tokio::test]
    async fn under_a_backlog_the_wait_is_bounded() {
        let (_sender, mut receiver) = mpsc::channel::<u32>(8);
        let (mut gather, _flag) = gather(4, Duration::from_millis(20), true);
        assert_eq!(batch(&mut gather, 1, &mut receiver).await, [1]);
    }

    #[tokio::test]
    async fn when_the_backlog_ends_what_is_held_goes_at_once() {
        let (sender, mut receiver) = mpsc::channel::<u32>(8);
        let (mut gather, flag) = gather(4, Duration::from_secs(3600), true);
        let ender = tokio::spawn(async move {
            sender.send(2).await.unwrap();
            tokio::task::yield_now().await;
            flag.send_replace(false);
            // Kept open: the batch must end for the flag, not for a closed channel.
            sender
        });
        assert_eq!(batch(&mut gather, 1, &mut receiver).await, [1, 2]);
        drop(ender.await.unwrap());
    }

    #[tokio::test]
    async fn a_batch_never_exceeds_the_statement_s_bound() {
        let (sender, mut receiver) = mpsc::channel(MAX_BATCH + 10);
        for n in 0..MAX_BATCH + 5 {
            sender.send(u32::try_from(n).unwrap()).await.unwrap();
        }
        let (mut gather, _flag) = gather(MAX_BATCH, Duration::from_secs(3600), true);
        let first = batch(&mut gather, u32::MAX, &mut receiver).await;
        assert_eq!(first.len(), MAX_BATCH);
    }
}
