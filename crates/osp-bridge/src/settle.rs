//! Settlements, many per statement: each dispatch hands its job's outcome to one settler task
//! and waits for the answer; the settler writes everything that has arrived in one call of
//! `api.settle_workflow_jobs`. While one call runs the next batch gathers, so a quiet bridge
//! settles each job at once and a busy one settles hundreds per statement, with no timer in
//! between.

use std::collections::HashMap;
use std::time::Duration;

use osp_runtime::backoff::Backoff;
use prometheus::Histogram;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use crate::queue::{Queue, SettleOutcome, Settlement};

/// Settlements per statement at most (the function takes up to 1000).
const MAX_BATCH: usize = 500;
/// How long one settlement statement may take; past it the batch is sent again (an element
/// that was written meanwhile then reads as fenced, and nothing is written twice).
const SETTLE_TIMEOUT: Duration = Duration::from_secs(15);

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
}

impl Settler {
    /// Starts the settler task on `queue`; `capacity` is how many dispatches can be in flight.
    /// Each statement that answers is timed into `took`.
    pub fn start(queue: Queue, capacity: usize, took: Histogram) -> (Settler, JoinHandle<()>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (Settler { sender }, tokio::spawn(run(queue, receiver, took)))
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

async fn run(queue: Queue, mut receiver: mpsc::Receiver<Pending>, took: Histogram) {
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(pending) => batch.push(pending),
                Err(_) => break,
            }
        }
        flush(&queue, batch, &took).await;
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
