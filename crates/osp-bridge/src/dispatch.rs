//! One claimed job, from check to settlement. A job that can never start fails at once.
//! Otherwise, in one transaction: the job and its stream are locked (if this claim still
//! holds the job), the workflow is started, and the outcome is recorded: started + completed
//! when Temporal acknowledged the start (new or existing), a retry with backoff when Temporal
//! was unavailable (failed for good once the attempts run out). Holding the stream lock across
//! the start keeps the stream in contract order: nothing the workflow appends can come before
//! the bridge's events. If the outcome cannot be written in that transaction it is retried on
//! its own while the lease lasts; failing that, the lease expires, the job is claimed again and
//! its second start is a no-op.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use osp_config::BridgeSettings;
use osp_runtime::backoff::Backoff;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_postgres::GenericClient;

use crate::check::{Schemas, StartRequest, check};
use crate::metrics::BridgeMetrics;
use crate::queue::{ClaimedJob, Queue, QueueError, RouteStatus, Settled};
use crate::start::{StartError, Starter};
use crate::wake::Wakeups;

/// What a dispatch needs; shared by every dispatch task.
#[derive(Debug)]
pub struct Dispatcher {
    pub queue: Queue,
    pub starter: Starter,
    /// How long a start may take (the starter's own timeout).
    pub start_timeout: Duration,
    pub settings: BridgeSettings,
    pub metrics: BridgeMetrics,
    pub wakeups: Arc<Wakeups>,
    /// Set to false when a start finds Temporal unavailable; the claim loop then stops
    /// claiming until a probe succeeds, so an outage costs the jobs in flight one attempt
    /// each instead of every queued job all of its attempts.
    pub temporal_up: watch::Sender<bool>,
    /// The routes' JSON Schemas, compiled once each.
    pub schemas: Schemas,
}

/// The outcome to write for a job.
#[derive(Debug, Clone)]
enum Record {
    /// The workflow runs (or ran): started event and `workflow.queue.completed`.
    Complete {
        workflow_id: String,
        run_id: String,
        existing: bool,
    },
    /// Failed for good, counted under `reason`.
    Fail {
        message: String,
        reason: &'static str,
    },
    /// A failed attempt: pending again after `delay`.
    Retry { message: String, delay: Duration },
}

impl Dispatcher {
    /// Checks, starts and settles `job`; never panics, whatever the row holds.
    pub async fn dispatch(&self, job: ClaimedJob, lease_deadline: Instant) {
        let held = match job.route {
            RouteStatus::Disabled => Some("disabled"),
            RouteStatus::Paused => Some("paused"),
            RouteStatus::Enabled | RouteStatus::Missing => None,
        };
        if let Some(state) = held {
            // The route was disabled or paused between the claim's selection (which skips
            // such routes) and now: the job goes back to wait, pending, for the route to be
            // enabled or resumed again, rather than failing for good.
            let record = Record::Retry {
                message: format!(
                    "route {state}: the route for event type {} is {state} in osp_metadata.workflow_routes; the job waits until it is {}",
                    job.event_type,
                    if state == "paused" {
                        "resumed"
                    } else {
                        "enabled"
                    },
                ),
                delay: self.settings.retry_initial,
            };
            self.record_alone(&job, &record, lease_deadline).await;
            return;
        }
        match check(&job, self.settings.max_payload_bytes, &self.schemas) {
            Ok(request) => self.start_held(&job, &request, lease_deadline).await,
            Err(rejection) => {
                tracing::warn!(job_id = %job.job_id, event_type = %job.event_type, error = %rejection, "job cannot be started");
                let record = Record::Fail {
                    message: rejection.0,
                    reason: "invalid",
                };
                self.record_alone(&job, &record, lease_deadline).await;
            }
        }
    }

    /// Starts the workflow with the job held, retrying what fails before the start was sent.
    async fn start_held(&self, job: &ClaimedJob, request: &StartRequest, deadline: Instant) {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        loop {
            match self.attempt(job, request, deadline).await {
                Ok(()) => return,
                Err(error) => {
                    let (delay, attempt) = backoff.next_delay();
                    if Instant::now() + delay + self.start_timeout >= deadline {
                        tracing::error!(job_id = %job.job_id, %error, "cannot hold the job before its lease expires; it will be claimed again");
                        return;
                    }
                    tracing::warn!(job_id = %job.job_id, %error, attempt, "cannot hold the job yet; retrying");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// One try: hold, start, record. An error means the start was not sent.
    async fn attempt(
        &self,
        job: &ClaimedJob,
        request: &StartRequest,
        deadline: Instant,
    ) -> Result<(), QueueError> {
        let unrecorded = {
            let mut client = self.queue.pool().get().await?;
            let transaction = client.transaction().await?;
            if self.queue.hold(&*transaction, job).await? == Settled::Fenced {
                self.fenced(job);
                return Ok(());
            }
            let record = self.outcome(job, request).await;
            let written = match self.write(&*transaction, job, &record).await {
                Ok(settled) => transaction
                    .commit()
                    .await
                    .map(|()| settled)
                    .map_err(QueueError::from),
                Err(error) => Err(error),
            };
            match written {
                Ok(settled) => {
                    self.note(job, &record, Some(settled));
                    None
                }
                Err(error) => {
                    tracing::warn!(job_id = %job.job_id, %error, "recording the start failed; retrying on its own");
                    Some(record)
                }
            }
        };
        // The held connection is back in the pool (its transaction rolled back).
        if let Some(record) = unrecorded {
            self.record_alone(job, &record, deadline).await;
        }
        Ok(())
    }

    /// Starts the workflow and says what to record.
    async fn outcome(&self, job: &ClaimedJob, request: &StartRequest) -> Record {
        match self.starter.start(request).await {
            Ok(started) => {
                if let Some(created) = job.event_created_at
                    && let Ok(elapsed) = SystemTime::now().duration_since(created)
                {
                    self.metrics.event_to_start.observe(elapsed.as_secs_f64());
                }
                let outcome = if started.existing {
                    "existing"
                } else {
                    "started"
                };
                self.metrics.started.with_label_values(&[outcome]).inc();
                tracing::debug!(
                    job_id = %job.job_id,
                    workflow_id = %request.workflow_id,
                    run_id = %started.run_id,
                    existing = started.existing,
                    "workflow started"
                );
                Record::Complete {
                    workflow_id: request.workflow_id.clone(),
                    run_id: started.run_id,
                    existing: started.existing,
                }
            }
            Err(StartError::Rejected(message)) => {
                tracing::warn!(job_id = %job.job_id, workflow_id = %request.workflow_id, %message, "temporal rejected the start");
                Record::Fail {
                    message: format!("temporal rejected the start: {message}"),
                    reason: "rejected",
                }
            }
            Err(StartError::Unavailable(message)) => {
                self.temporal_up.send_replace(false);
                let record = after_unavailable(&self.settings, job.attempt, &message);
                match &record {
                    Record::Retry { delay, .. } => {
                        tracing::warn!(job_id = %job.job_id, attempt = job.attempt, retry_in_ms = delay.as_millis(), %message, "temporal unavailable; job retried later");
                    }
                    _ => {
                        tracing::error!(job_id = %job.job_id, attempt = job.attempt, %message, "temporal unavailable; out of attempts");
                    }
                }
                record
            }
        }
    }

    async fn write<C: GenericClient + Sync>(
        &self,
        client: &C,
        job: &ClaimedJob,
        record: &Record,
    ) -> Result<Settled, QueueError> {
        match record {
            Record::Complete {
                workflow_id,
                run_id,
                existing,
            } => {
                self.queue
                    .complete(client, job, workflow_id, run_id, *existing)
                    .await
            }
            Record::Fail { message, .. } => self.queue.fail(client, job, message, None).await,
            Record::Retry { message, delay } => {
                self.queue.fail(client, job, message, Some(*delay)).await
            }
        }
    }

    /// Writes `record` in a statement of its own, retried while the lease lasts.
    async fn record_alone(&self, job: &ClaimedJob, record: &Record, deadline: Instant) {
        let settled = settle(deadline, || async {
            let client = self.queue.pool().get().await?;
            self.write(&**client, job, record).await
        })
        .await;
        self.note(job, record, settled);
    }

    /// Counts what was written and schedules the wake-up of a retry.
    fn note(&self, job: &ClaimedJob, record: &Record, settled: Option<Settled>) {
        match settled {
            Some(Settled::Done) => match record {
                Record::Complete { .. } => {}
                Record::Fail { reason, .. } => {
                    self.metrics.failed.with_label_values(&[reason]).inc();
                }
                Record::Retry { delay, .. } => {
                    self.metrics.retried.inc();
                    // Nobody notifies when a retry falls due; wake the loop then rather than
                    // leave the job to the next sweep.
                    let wakeups = self.wakeups.clone();
                    let delay = *delay;
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        wakeups.wake_for_retry();
                    });
                }
            },
            Some(Settled::Fenced) => self.fenced(job),
            None => {}
        }
    }

    fn fenced(&self, job: &ClaimedJob) {
        self.metrics.fenced.inc();
        tracing::warn!(job_id = %job.job_id, attempt = job.attempt, "lease lost: another claim holds the job; not settling it");
    }
}

/// Runs a settlement until it is written or the lease runs out; `None` when it never was.
async fn settle<F, Fut>(deadline: Instant, mut call: F) -> Option<Settled>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Settled, QueueError>>,
{
    let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining.max(Duration::from_millis(1)), call()).await {
            Ok(Ok(settled)) => return Some(settled),
            Ok(Err(error)) => {
                let (delay, attempt) = backoff.next_delay();
                if Instant::now() + delay >= deadline {
                    tracing::error!(%error, attempt, "cannot settle the job before its lease expires; it will be claimed again");
                    return None;
                }
                tracing::warn!(%error, attempt, "settling the job failed; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(_) => {
                tracing::error!(
                    "settling the job did not finish before its lease expired; it will be claimed again"
                );
                return None;
            }
        }
    }
}

/// What a start that found Temporal unavailable leaves: a retry after
/// `retry_initial * 2^(attempt - 1)` (at most `retry_max`, less up to a fifth at random so
/// that jobs failed together do not all come back together), or, on the last attempt, a
/// failure for good.
fn after_unavailable(settings: &BridgeSettings, attempt: i32, message: &str) -> Record {
    let max = settings.max_attempts;
    let attempt = u32::try_from(attempt).unwrap_or(u32::MAX);
    if attempt >= max {
        return Record::Fail {
            message: format!("temporal unavailable after {attempt} attempts: {message}"),
            reason: "attempts",
        };
    }
    let doubling = settings
        .retry_initial
        .saturating_mul(1_u32 << attempt.saturating_sub(1).min(20));
    let delay = doubling.min(settings.retry_max);
    let jitter = u32::try_from(uuid::Uuid::new_v4().as_u128() % 200).unwrap_or(0);
    Record::Retry {
        message: format!("temporal unavailable (attempt {attempt} of {max}, retried): {message}"),
        delay: delay.mul_f64(1.0 - f64::from(jitter) / 1000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> BridgeSettings {
        BridgeSettings {
            id: "b".into(),
            batch_size: 10,
            max_in_flight: 8,
            lease: Duration::from_secs(60),
            max_attempts: 4,
            retry_initial: Duration::from_millis(100),
            retry_max: Duration::from_millis(300),
            sweep_interval: Duration::from_secs(15),
            fallback_sweep_interval: Duration::from_secs(1),
            max_payload_bytes: 1024,
            realtime: false,
            shutdown_grace: Duration::from_secs(30),
            database_pool_size: 12,
        }
    }

    #[test]
    fn retries_back_off_up_to_the_cap_then_the_job_fails_for_good() {
        for (attempt, expected_ms) in [(1, 100), (2, 200), (3, 300)] {
            let Record::Retry { message, delay } =
                after_unavailable(&settings(), attempt, "refused")
            else {
                panic!("attempt {attempt} should be retried");
            };
            let expected = Duration::from_millis(expected_ms);
            assert!(
                delay <= expected && delay >= expected.mul_f64(0.8),
                "{delay:?}"
            );
            assert_eq!(
                message,
                format!("temporal unavailable (attempt {attempt} of 4, retried): refused")
            );
        }
        let Record::Fail { message, reason } = after_unavailable(&settings(), 4, "refused") else {
            panic!("the last attempt fails for good");
        };
        assert_eq!(message, "temporal unavailable after 4 attempts: refused");
        assert_eq!(reason, "attempts");
    }
}
