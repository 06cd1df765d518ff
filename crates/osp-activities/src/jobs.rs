//! Operating the workflow queue from Rust: list jobs by status and route, show one job with
//! its event chain, retry a failed job, pause and resume a route. Reads are plain selects of
//! the projection; writes go through `api.retry_workflow_job` and
//! `api.set_workflow_route_paused`, so the projection still changes only through its apply
//! trigger. Unnamed statements throughout: safe behind a transaction-mode pooler.

use std::fmt;
use std::str::FromStr;

use tokio_postgres::GenericClient;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::events::{STORED_EVENT_COLUMNS, StoredEvent};

/// Why a queue operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum JobsError {
    /// No job has this id.
    #[error("no workflow job {0}")]
    NoJob(Uuid),
    /// No route has this event type.
    #[error("no route for event type {0}")]
    NoRoute(String),
    /// The job is not in a state the operation applies to, or an argument is out of range:
    /// the database's message says which, and is the whole story (no cause to chain).
    #[error("{message}")]
    Refused { message: String, code: SqlState },
    /// The database could not run the operation.
    #[error("cannot {action}")]
    Database {
        action: &'static str,
        #[source]
        source: tokio_postgres::Error,
    },
}

/// A job's status in `workflow_queue_projection`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Pending,
    Processing,
    Completed,
    Failed,
}

impl JobStatus {
    /// Every status, in the order a job goes through them.
    pub const ALL: [JobStatus; 4] = [
        JobStatus::Pending,
        JobStatus::Processing,
        JobStatus::Completed,
        JobStatus::Failed,
    ];

    /// The status as the projection stores it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Processing => "processing",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not one of [`JobStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown job status {0:?} (expected pending, processing, completed or failed)")]
pub struct UnknownStatus(pub String);

impl FromStr for JobStatus {
    type Err = UnknownStatus;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == text)
            .ok_or_else(|| UnknownStatus(text.to_owned()))
    }
}

/// Which jobs to list: newest first, at most `limit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    /// The routed event type (the route's key).
    pub event_type: Option<String>,
    pub limit: u32,
}

/// One job as a list shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSummary {
    pub id: Uuid,
    pub stream_id: Uuid,
    pub event_type: String,
    pub workflow_type: String,
    pub workflow_id: Option<String>,
    /// As the projection stores it (see [`JobStatus`]).
    pub status: String,
    pub attempts: i32,
    /// When the job last changed, as PostgreSQL renders a `timestamptz`.
    pub updated_at: String,
    pub error_message: Option<String>,
}

/// One job in full, with the events of its chain.
#[derive(Debug, Clone, PartialEq)]
pub struct JobDetail {
    pub summary: JobSummary,
    pub task_queue: String,
    pub worker_id: Option<String>,
    pub workflow_run_id: Option<String>,
    pub created_at: String,
    pub available_at: String,
    /// The routed event, the job's queue events and the started event, in stream order.
    pub chain: Vec<StoredEvent>,
}

const SUMMARY_COLUMNS: &str = "q.id, q.stream_id, q.event_type, q.workflow_type, q.workflow_id,
     q.status, q.attempts, q.updated_at::text, q.error_message";

fn summary(row: &tokio_postgres::Row) -> JobSummary {
    JobSummary {
        id: row.get(0),
        stream_id: row.get(1),
        event_type: row.get(2),
        workflow_type: row.get(3),
        workflow_id: row.get(4),
        status: row.get(5),
        attempts: row.get(6),
        updated_at: row.get(7),
        error_message: row.get(8),
    }
}

fn database(action: &'static str) -> impl FnOnce(tokio_postgres::Error) -> JobsError {
    move |source| JobsError::Database { action, source }
}

/// Jobs matching `filter`, most recently changed first.
pub async fn list(
    client: &impl GenericClient,
    filter: &JobFilter,
) -> Result<Vec<JobSummary>, JobsError> {
    let status = filter.status.map(JobStatus::as_str);
    let limit = i64::from(filter.limit);
    let rows = client
        .query_typed(
            &format!(
                "select {SUMMARY_COLUMNS}
                 from public.workflow_queue_projection q
                 where ($1::text is null or q.status = $1)
                   and ($2::text is null or q.event_type = $2)
                 order by q.updated_at desc, q.id
                 limit $3"
            ),
            &[
                (&status, Type::TEXT),
                (&filter.event_type, Type::TEXT),
                (&limit, Type::INT8),
            ],
        )
        .await
        .map_err(database("list workflow jobs"))?;
    Ok(rows.iter().map(summary).collect())
}

/// The job `id` with its chain, or `NoJob`.
pub async fn show(client: &impl GenericClient, id: Uuid) -> Result<JobDetail, JobsError> {
    let row = client
        .query_typed(
            &format!(
                "select {SUMMARY_COLUMNS}, q.task_queue, q.worker_id, q.workflow_run_id,
                        q.created_at::text, q.available_at::text, q.event_id
                 from public.workflow_queue_projection q where q.id = $1"
            ),
            &[(&id, Type::UUID)],
        )
        .await
        .map_err(database("read the workflow job"))?
        .into_iter()
        .next()
        .ok_or(JobsError::NoJob(id))?;
    let summary = summary(&row);
    let event_id: Uuid = row.get(14);
    // The job's own events carry its id as their causation (queue events and the started
    // event) or in their data; the pending event's id is the job's id.
    let chain = client
        .query_typed(
            &format!(
                "select {STORED_EVENT_COLUMNS}
                 from public.domain_events
                 where stream_id = $1
                   and (id = $2 or id = $3
                        or event_metadata ->> 'causation_id' = $2::text
                        or event_data ->> 'job_id' = $2::text)
                 order by stream_version"
            ),
            &[
                (&summary.stream_id, Type::UUID),
                (&id, Type::UUID),
                (&event_id, Type::UUID),
            ],
        )
        .await
        .map_err(database("read the job's events"))?
        .iter()
        .map(StoredEvent::from_row)
        .collect();
    Ok(JobDetail {
        task_queue: row.get(9),
        worker_id: row.get(10),
        workflow_run_id: row.get(11),
        created_at: row.get(12),
        available_at: row.get(13),
        summary,
        chain,
    })
}

/// Maps the database's refusals of a queue function to their variants.
fn refused(
    action: &'static str,
    missing: JobsError,
) -> impl FnOnce(tokio_postgres::Error) -> JobsError {
    move |source| match source.code() {
        Some(code) if *code == SqlState::NO_DATA_FOUND => missing,
        Some(code)
            if *code == SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE
                || *code == SqlState::INVALID_PARAMETER_VALUE =>
        {
            JobsError::Refused {
                message: source
                    .as_db_error()
                    .map_or_else(|| source.to_string(), |db| db.message().to_owned()),
                code: code.clone(),
            }
        }
        _ => JobsError::Database { action, source },
    }
}

/// Makes the failed job `id` pending again, due now, with its route's whole attempt budget.
pub async fn retry(
    client: &impl GenericClient,
    id: Uuid,
    reason: Option<&str>,
) -> Result<(), JobsError> {
    client
        .query_typed(
            "select api.retry_workflow_job($1, $2)",
            &[(&id, Type::UUID), (&reason, Type::TEXT)],
        )
        .await
        .map_err(refused("retry the workflow job", JobsError::NoJob(id)))?;
    Ok(())
}

/// Pauses (`paused = true`) or resumes a route; returns whether it was paused before. A
/// paused route's events are still enqueued; its jobs wait, pending, until it is resumed.
pub async fn set_route_paused(
    client: &impl GenericClient,
    event_type: &str,
    paused: bool,
) -> Result<bool, JobsError> {
    let row = client
        .query_typed(
            "select api.set_workflow_route_paused($1, $2)",
            &[(&event_type, Type::TEXT), (&paused, Type::BOOL)],
        )
        .await
        .map_err(refused(
            "change the route",
            JobsError::NoRoute(event_type.to_owned()),
        ))?;
    Ok(row.first().is_some_and(|row| row.get::<_, bool>(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_back_as_they_are_written() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(status));
        }
        assert_eq!(
            "done".parse::<JobStatus>().unwrap_err().to_string(),
            "unknown job status \"done\" (expected pending, processing, completed or failed)"
        );
    }
}
