//! `osp-bridge jobs ...`: the queue operated without SQL. Each command is one call of
//! `osp_activities::jobs` on the bridge's own database connection (its `DATABASE_URL`, so the
//! bridge's role and TLS settings), and its output is text for a terminal: a table for a
//! list, the job and its event chain for `show`, one line for a change.

use std::fmt::Write as _;

use osp_activities::db::DbError;
use osp_activities::jobs::{self, JobDetail, JobFilter, JobSummary, JobsError};
use osp_config::DatabaseSettings;
use uuid::Uuid;

use crate::check::cut;

/// One queue operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobsCommand {
    /// Jobs by status and route, most recently changed first.
    List(JobFilter),
    /// One job, its error and its event chain.
    Show(Uuid),
    /// A failed job made pending again.
    Retry {
        job_id: Uuid,
        reason: Option<String>,
    },
    /// A route paused or resumed.
    SetRoute { event_type: String, paused: bool },
}

/// Why a queue command did not run.
#[derive(Debug, thiserror::Error)]
pub enum JobsCommandError {
    #[error("cannot connect to the database")]
    Connect(#[source] DbError),
    #[error(transparent)]
    Jobs(#[from] JobsError),
}

/// Runs `command` against the database of `database` and returns what to print.
pub async fn run_jobs(
    database: &DatabaseSettings,
    command: &JobsCommand,
) -> Result<String, JobsCommandError> {
    let client = osp_activities::db::connect(database.url.expose())
        .await
        .map_err(JobsCommandError::Connect)?;
    Ok(match command {
        JobsCommand::List(filter) => list_table(&jobs::list(&client, filter).await?),
        JobsCommand::Show(id) => detail_text(&jobs::show(&client, *id).await?),
        JobsCommand::Retry { job_id, reason } => {
            jobs::retry(&client, *job_id, reason.as_deref()).await?;
            format!("job {job_id} is pending again\n")
        }
        JobsCommand::SetRoute { event_type, paused } => {
            let before = jobs::set_route_paused(&client, event_type, *paused).await?;
            route_line(event_type, before, *paused)
        }
    })
}

fn route_line(event_type: &str, before: bool, paused: bool) -> String {
    match (before, paused) {
        (true, true) => format!("route {event_type} was already paused\n"),
        (false, false) => format!("route {event_type} was not paused\n"),
        (false, true) => {
            format!("route {event_type} is paused: its jobs stay pending until it is resumed\n")
        }
        (true, false) => {
            format!("route {event_type} is resumed: its pending jobs are due again\n")
        }
    }
}

/// Longest error shown in a list row; `show` prints it whole.
const LIST_ERROR_CHARS: usize = 80;

/// A list as an aligned table, or a line saying there is nothing.
fn list_table(jobs: &[JobSummary]) -> String {
    if jobs.is_empty() {
        return "no jobs\n".to_owned();
    }
    let header = [
        "JOB",
        "STATUS",
        "ATTEMPTS",
        "EVENT TYPE",
        "WORKFLOW ID",
        "UPDATED",
        "ERROR",
    ];
    let rows: Vec<[String; 7]> = jobs
        .iter()
        .map(|job| {
            [
                job.id.to_string(),
                job.status.clone(),
                job.attempts.to_string(),
                job.event_type.clone(),
                job.workflow_id.clone().unwrap_or_else(|| "-".to_owned()),
                job.updated_at.clone(),
                job.error_message
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), |error| one_line(error, LIST_ERROR_CHARS)),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let last = cells.len() - 1;
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if index == last {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<width$}  ");
            }
        }
        out.push('\n');
    };
    line(&header);
    for row in &rows {
        line(&row.each_ref().map(String::as_str));
    }
    out
}

/// `text` on one line, cut to `max` characters.
fn one_line(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    cut(&flat, max)
}

fn detail_text(job: &JobDetail) -> String {
    let summary = &job.summary;
    let or_dash = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
    let mut out = String::new();
    let fields = [
        ("job", summary.id.to_string()),
        ("status", summary.status.clone()),
        ("attempts", summary.attempts.to_string()),
        ("stream", summary.stream_id.to_string()),
        ("event type", summary.event_type.clone()),
        (
            "workflow",
            format!("{} on {}", summary.workflow_type, job.task_queue),
        ),
        ("workflow id", or_dash(&summary.workflow_id)),
        ("run id", or_dash(&job.workflow_run_id)),
        ("worker", or_dash(&job.worker_id)),
        ("created", job.created_at.clone()),
        ("due", job.available_at.clone()),
        ("updated", summary.updated_at.clone()),
        ("error", or_dash(&summary.error_message)),
    ];
    for (name, value) in fields {
        let _ = writeln!(out, "{name:<12}{value}");
    }
    out.push_str("events\n");
    for event in &job.chain {
        let _ = writeln!(out, "  {event}");
    }
    out
}

#[cfg(test)]
mod tests {
    use osp_activities::events::StoredEvent;
    use serde_json::json;

    use super::*;

    fn summary(n: u128, error: Option<&str>) -> JobSummary {
        JobSummary {
            id: Uuid::from_u128(n),
            stream_id: Uuid::from_u128(100 + n),
            event_type: "invoice.requested".into(),
            workflow_type: "processBilling".into(),
            workflow_id: Some(format!("bill-{n}")),
            status: "failed".into(),
            attempts: 3,
            updated_at: "2026-12-01 10:00:00+00".into(),
            error_message: error.map(str::to_owned),
        }
    }

    #[test]
    fn a_list_is_an_aligned_table_with_errors_cut_to_one_line() {
        let long = format!(
            "temporal unavailable\nafter 3 attempts: {}",
            "x".repeat(200)
        );
        let table = list_table(&[summary(1, Some(&long)), summary(2, None)]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("JOB                                   STATUS  ATTEMPTS"));
        let error_column = lines[0].find("ERROR").unwrap();
        assert!(lines[1][error_column..].starts_with("temporal unavailable after 3 attempts: xx"));
        assert!(lines[1].ends_with('…'));
        assert!(lines[2].ends_with("  -"));
        assert_eq!(list_table(&[]), "no jobs\n");
    }

    #[test]
    fn show_prints_the_job_and_its_chain() {
        let job = JobDetail {
            summary: summary(1, Some("gave up")),
            task_queue: "billing-tasks".into(),
            worker_id: None,
            workflow_run_id: None,
            created_at: "c".into(),
            available_at: "a".into(),
            chain: vec![StoredEvent {
                id: Uuid::from_u128(9),
                stream_version: 1,
                event_type: "invoice.requested".into(),
                event_data: json!({"period": "2026-11"}),
                event_metadata: json!({}),
            }],
        };
        let text = detail_text(&job);
        assert!(
            text.contains("workflow    processBilling on billing-tasks\n"),
            "{text}"
        );
        assert!(text.contains("error       gave up\n"));
        assert!(
            text.ends_with("events\n  #1 invoice.requested {\"period\":\"2026-11\"}\n"),
            "{text}"
        );
    }

    #[test]
    fn a_route_change_says_what_it_did() {
        assert_eq!(
            route_line("a.b", false, true),
            "route a.b is paused: its jobs stay pending until it is resumed\n"
        );
        assert_eq!(
            route_line("a.b", true, true),
            "route a.b was already paused\n"
        );
        assert_eq!(
            route_line("a.b", true, false),
            "route a.b is resumed: its pending jobs are due again\n"
        );
        assert_eq!(
            route_line("a.b", false, false),
            "route a.b was not paused\n"
        );
    }
}
