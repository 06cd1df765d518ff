//! The queue as the bridge sees it: the SQL functions of migrations 0004 and 0008 (claim,
//! settle many, release, depth), each called as one unnamed statement (`query_typed`), so
//! every call works through a transaction-mode pooler.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use deadpool_postgres::Pool;
use serde_json::Value;
use tokio_postgres::Row;
use tokio_postgres::types::Type;
use uuid::Uuid;

/// Why a queue call failed. Never carries the database URL.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// No connection could be had from the pool.
    #[error("database unavailable: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    /// The statement failed.
    #[error("database error: {0}")]
    Sql(#[from] tokio_postgres::Error),
}

/// A claimed row whose `event_data` does not read as JSON: the job fails saying so.
#[derive(Debug, Clone, thiserror::Error)]
#[error("event_data cannot be read")]
pub struct UnreadableData(#[source] pub Arc<tokio_postgres::Error>);

/// Whether the routed event's type still has a route when the job is claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteStatus {
    /// The route exists and is enabled.
    Enabled,
    /// The route exists but is disabled.
    Disabled,
    /// The route exists but is paused by an operator: its jobs wait.
    Paused,
    /// The route was removed after the job was enqueued.
    Missing,
}

/// One claimed job, with the routed event it starts a workflow for.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    /// The job id (the id of its `workflow.queue.pending` event).
    pub job_id: Uuid,
    /// The routed event's stream; the job's events go there too.
    pub stream_id: Uuid,
    pub stream_type: String,
    /// The routed event.
    pub event_id: Uuid,
    pub event_type: String,
    /// The routed event's data, or why it could not be read.
    pub event_data: Result<Value, UnreadableData>,
    /// When the routed event was appended (its transaction commits right after).
    pub event_created_at: Option<SystemTime>,
    pub workflow_type: String,
    pub task_queue: String,
    /// `None` when the route's template could not be rendered (`enqueue_error` says why).
    pub workflow_id: Option<String>,
    /// Event emitted on the stream after the start, if the route names one.
    pub started_event_type: Option<String>,
    /// This claim's attempt number (1 for the first claim); with the worker id, it fences
    /// every settlement of the job.
    pub attempt: i32,
    /// Why the job was enqueued without a workflow id.
    pub enqueue_error: Option<String>,
    pub route: RouteStatus,
    /// The route's JSON Schema for the event's data, if it has one.
    pub input_schema: Option<Value>,
    /// The input field the stream id fills, if the route names one.
    pub stream_id_field: Option<String>,
}

impl ClaimedJob {
    /// Reads one row of `api.claim_workflow_jobs`. A row whose columns do not read is still
    /// a job (it is locked and claimed), so only the id is required; other columns fall back
    /// to values that make the job fail with a message rather than crash the bridge.
    fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        let text = |name: &str| row.try_get::<_, String>(name).unwrap_or_default();
        let optional = |name: &str| row.try_get::<_, Option<String>>(name).ok().flatten();
        let route = match row.try_get::<_, String>("route_status").as_deref() {
            Ok("enabled") => RouteStatus::Enabled,
            Ok("disabled") => RouteStatus::Disabled,
            Ok("paused") => RouteStatus::Paused,
            _ => RouteStatus::Missing,
        };
        Ok(ClaimedJob {
            job_id: row.try_get("job_id")?,
            stream_id: row.try_get("stream_id")?,
            stream_type: text("stream_type"),
            event_id: row.try_get("event_id")?,
            event_type: text("event_type"),
            event_data: row
                .try_get::<_, Value>("event_data")
                .map_err(|error| UnreadableData(Arc::new(error))),
            event_created_at: row.try_get("event_created_at").ok(),
            workflow_type: text("workflow_type"),
            task_queue: text("task_queue"),
            workflow_id: optional("workflow_id"),
            started_event_type: optional("started_event_type"),
            attempt: row.try_get("attempts")?,
            enqueue_error: optional("enqueue_error"),
            route,
            input_schema: row
                .try_get::<_, Option<Value>>("route_input_schema")
                .ok()
                .flatten(),
            stream_id_field: optional("route_stream_id_field"),
        })
    }
}

/// Jobs by state, for the queue-depth gauge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Depth {
    /// Claimable now: pending and due, or processing with an expired lease.
    pub ready: i64,
    /// Pending, waiting for a retry time.
    pub scheduled: i64,
    /// Processing under a live lease.
    pub processing: i64,
}

/// How a fenced settlement went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// The events were emitted.
    Done,
    /// The claim no longer holds the job (its lease expired and another claim took it, or it
    /// was settled already); nothing was emitted.
    Fenced,
}

impl From<bool> for Settled {
    fn from(done: bool) -> Self {
        if done { Settled::Done } else { Settled::Fenced }
    }
}

/// What one job's settlement writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The workflow runs (or ran): its started event and `workflow.queue.completed`.
    Complete {
        workflow_id: String,
        run_id: String,
        existing: bool,
    },
    /// `workflow.queue.failed`: for good when `retry_after` is `None`, else the job is
    /// pending again after that delay.
    Fail {
        message: String,
        retry_after: Option<Duration>,
    },
}

/// One element of a settlement batch: a job, the claim that holds it, what to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    pub job_id: Uuid,
    pub attempt: i32,
    pub outcome: Outcome,
}

impl Settlement {
    /// The element as `api.settle_workflow_jobs` reads it.
    fn to_json(&self) -> Value {
        match &self.outcome {
            Outcome::Complete {
                workflow_id,
                run_id,
                existing,
            } => serde_json::json!({
                "job_id": self.job_id,
                "attempt": self.attempt,
                "outcome": "complete",
                "workflow_id": workflow_id,
                "workflow_run_id": run_id,
                "existing_execution": existing,
            }),
            Outcome::Fail {
                message,
                retry_after,
            } => serde_json::json!({
                "job_id": self.job_id,
                "attempt": self.attempt,
                "outcome": "fail",
                "error_message": message,
                "retry_after_ms": retry_after.map(millis),
            }),
        }
    }
}

/// How one settlement of a batch went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SettleOutcome {
    /// Written, or fenced out.
    Settled(Settled),
    /// The database refused this element (bad data); nothing was written for it.
    Refused(String),
}

/// The queue functions, called as `worker_id`.
#[derive(Debug, Clone)]
pub struct Queue {
    pool: Pool,
    worker_id: String,
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

impl Queue {
    pub fn new(pool: Pool, worker_id: impl Into<String>) -> Self {
        Queue {
            pool,
            worker_id: worker_id.into(),
        }
    }

    /// The worker id claims are made under.
    pub fn worker_id(&self) -> &str {
        &self.worker_id
    }

    /// Claims up to `batch` jobs for `lease`. Rows that cannot be read at all (no job id) are
    /// skipped with a log line; their lease expires and they are claimed again.
    pub async fn claim(&self, batch: u32, lease: Duration) -> Result<Vec<ClaimedJob>, QueueError> {
        let client = self.pool.get().await?;
        let batch = i32::try_from(batch).unwrap_or(i32::MAX);
        let lease = millis(lease);
        let rows = client
            .query_typed(
                "select job_id, stream_id, stream_type, event_id, event_type, event_data,
                        event_created_at, workflow_type, task_queue, workflow_id,
                        started_event_type, attempts, enqueue_error, route_status,
                        route_input_schema, route_stream_id_field
                 from api.claim_workflow_jobs($1, $2, $3 * interval '1 millisecond')",
                &[
                    (&self.worker_id, Type::TEXT),
                    (&batch, Type::INT4),
                    (&lease, Type::INT8),
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .filter_map(|row| match ClaimedJob::from_row(row) {
                Ok(job) => Some(job),
                Err(error) => {
                    tracing::error!(%error, "claimed row cannot be read; it will be claimed again");
                    None
                }
            })
            .collect())
    }

    /// Records many outcomes in one statement (`api.settle_workflow_jobs`), each fenced on
    /// its claim. One row per settlement, in the order the function settled them (by stream).
    pub async fn settle(
        &self,
        settlements: &[Settlement],
    ) -> Result<Vec<((Uuid, i32), SettleOutcome)>, QueueError> {
        let client = self.pool.get().await?;
        let items = Value::Array(settlements.iter().map(Settlement::to_json).collect());
        let rows = client
            .query_typed(
                "select job_id, attempt, settled, error from api.settle_workflow_jobs($1, $2)",
                &[(&self.worker_id, Type::TEXT), (&items, Type::JSONB)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                let job_id: Uuid = row.try_get(0)?;
                let attempt: i32 = row.try_get(1)?;
                let settled: String = row.try_get(2)?;
                let outcome = match settled.as_str() {
                    "done" => SettleOutcome::Settled(Settled::Done),
                    "fenced" => SettleOutcome::Settled(Settled::Fenced),
                    _ => SettleOutcome::Refused(
                        row.try_get::<_, Option<String>>(3)?
                            .unwrap_or_else(|| settled.clone()),
                    ),
                };
                Ok(((job_id, attempt), outcome))
            })
            .collect()
    }

    /// Gives the job back at once (shutdown before its start was confirmed).
    pub async fn release(
        &self,
        job_id: Uuid,
        attempt: i32,
        reason: &str,
    ) -> Result<Settled, QueueError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_typed(
                "select api.release_workflow_job($1, $2, $3, $4)",
                &[
                    (&job_id, Type::UUID),
                    (&self.worker_id, Type::TEXT),
                    (&attempt, Type::INT4),
                    (&reason, Type::TEXT),
                ],
            )
            .await?;
        Ok(settled(&rows))
    }

    /// How many jobs wait, by state.
    pub async fn depth(&self) -> Result<Depth, QueueError> {
        let client = self.pool.get().await?;
        let rows = client
            .query_typed(
                "select ready, scheduled, processing from api.workflow_queue_depth()",
                &[],
            )
            .await?;
        let Some(row) = rows.first() else {
            return Ok(Depth::default());
        };
        Ok(Depth {
            ready: row.try_get(0)?,
            scheduled: row.try_get(1)?,
            processing: row.try_get(2)?,
        })
    }
}

fn settled(rows: &[Row]) -> Settled {
    rows.first()
        .and_then(|row| row.try_get::<_, bool>(0).ok())
        .unwrap_or(false)
        .into()
}
