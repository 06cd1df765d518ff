//! One claimed job, from check to settlement, with no database connection held: a job that
//! can never start fails at once; otherwise the workflow is started and the outcome handed to
//! the settler, which writes it with the other jobs' outcomes in one statement: started +
//! completed when Temporal acknowledged the start (new or existing), a retry with backoff when
//! Temporal was unavailable (failed for good once the attempts run out). The chain order
//! (nothing the workflow appends before the bridge's events) is kept by the append itself
//! (migration 0008), not by a lock held across the start. If the outcome cannot be written
//! before the lease expires, the job is claimed again and its second start is a no-op.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use osp_config::BridgeSettings;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::check::{Schemas, StartRequest, check};
use crate::metrics::BridgeMetrics;
use crate::queue::{ClaimedJob, Outcome, RouteStatus, SettleOutcome, Settled, Settlement};
use crate::settle::Settler;
use crate::start::{StartError, Starter};
use crate::wake::Wakeups;

/// What a dispatch needs; shared by every dispatch task.
#[derive(Debug)]
pub struct Dispatcher {
    pub starter: Starter,
    pub settler: Settler,
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

impl Record {
    fn settlement(&self, job: &ClaimedJob) -> Settlement {
        let outcome = match self {
            Record::Complete {
                workflow_id,
                run_id,
                existing,
            } => Outcome::Complete {
                workflow_id: workflow_id.clone(),
                run_id: run_id.clone(),
                existing: *existing,
            },
            Record::Fail { message, .. } => Outcome::Fail {
                message: message.clone(),
                retry_after: None,
            },
            Record::Retry { message, delay } => Outcome::Fail {
                message: message.clone(),
                retry_after: Some(*delay),
            },
        };
        Settlement {
            job_id: job.job_id,
            attempt: job.attempt,
            outcome,
        }
    }
}

impl Dispatcher {
    /// Checks, starts and settles `job`; never panics, whatever the row holds.
    pub async fn dispatch(&self, job: ClaimedJob, lease_deadline: Instant) {
        let record = self.decide(&job).await;
        let settled = self
            .settler
            .settle(record.settlement(&job), lease_deadline)
            .await;
        self.note(&job, &record, settled);
    }

    /// What to record for `job`: the start's outcome, or why it was not started.
    async fn decide(&self, job: &ClaimedJob) -> Record {
        let held = match job.route {
            RouteStatus::Disabled => Some("disabled"),
            RouteStatus::Paused => Some("paused"),
            RouteStatus::Enabled | RouteStatus::Missing => None,
        };
        if let Some(state) = held {
            // The route was disabled or paused between the claim's selection (which skips
            // such routes) and now: the job goes back to wait, pending, for the route to be
            // enabled or resumed again, rather than failing for good.
            return Record::Retry {
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
        }
        match check(job, self.settings.max_payload_bytes, &self.schemas) {
            Ok(request) => self.outcome(job, &request).await,
            Err(rejection) => {
                tracing::warn!(job_id = %job.job_id, event_type = %job.event_type, error = %rejection, "job cannot be started");
                Record::Fail {
                    message: rejection.0,
                    reason: "invalid",
                }
            }
        }
    }

    /// Starts the workflow and says what to record.
    async fn outcome(&self, job: &ClaimedJob, request: &StartRequest) -> Record {
        let sent = Instant::now();
        let answer = self.starter.start(request).await;
        self.metrics.start.observe(sent.elapsed().as_secs_f64());
        match answer {
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

    /// Counts what was written and schedules the wake-up of a retry.
    fn note(&self, job: &ClaimedJob, record: &Record, settled: Option<SettleOutcome>) {
        match settled {
            Some(SettleOutcome::Settled(Settled::Done)) => match record {
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
            Some(SettleOutcome::Settled(Settled::Fenced)) => self.fenced(job),
            Some(SettleOutcome::Refused(error)) => {
                tracing::error!(job_id = %job.job_id, %error, "the database refused the settlement; the job will be claimed again");
            }
            // The settler said why.
            None => {}
        }
    }

    fn fenced(&self, job: &ClaimedJob) {
        self.metrics.fenced.inc();
        tracing::warn!(job_id = %job.job_id, attempt = job.attempt, "lease lost: another claim holds the job; not settling it");
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
            runtime_threads: 1,
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
