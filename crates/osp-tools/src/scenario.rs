//! `osp-tools scenario bootstrap --count N`: emits N bootstrap requests through
//! `api.emit_domain_event` against a running stack (its bridge and worker do the rest) and
//! reports how many completed, how many failed, and how fast, from the database's own
//! timestamps (request to `organization.bootstrap.completed` or `.failed`).

use std::fmt;
use std::time::{Duration, Instant};

use osp_activities::events::{NewEvent, append};
use osp_core::events::{
    ORGANIZATION_BOOTSTRAP_COMPLETED, ORGANIZATION_BOOTSTRAP_FAILED,
    ORGANIZATION_BOOTSTRAP_INITIATED, ORGANIZATION_STREAM,
};
use serde_json::json;
use tokio_postgres::types::Type;
use uuid::Uuid;

use anyhow::Context as _;

/// How often the scenario looks for finished requests.
const POLL: Duration = Duration::from_millis(50);

/// What to run.
#[derive(Debug, Clone)]
pub struct BootstrapScenario {
    /// How many requests.
    pub count: usize,
    /// How long to wait for all of them after the last was emitted.
    pub timeout: Duration,
    /// Where to emit: the stack's database (direct or through its pooler).
    pub database_url: String,
}

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub struct ScenarioReport {
    /// Requests emitted.
    pub requested: usize,
    /// Ended with `organization.bootstrap.completed`.
    pub completed: usize,
    /// Ended with `organization.bootstrap.failed`.
    pub failed: usize,
    /// Neither by the deadline.
    pub unfinished: usize,
    /// Request to end, per finished request, sorted.
    pub latencies: Vec<Duration>,
    /// Emitting the requests took this long.
    pub emit_time: Duration,
    /// From the first request until the last finished one (or the deadline).
    pub total_time: Duration,
}

impl ScenarioReport {
    /// The `p`-th percentile (0 to 100) of the finished requests' latencies.
    pub fn percentile(&self, p: u32) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        let rank = (self.latencies.len() * p.min(100) as usize).div_ceil(100);
        self.latencies.get(rank.saturating_sub(1)).copied()
    }

    /// Whether every request completed.
    pub fn all_completed(&self) -> bool {
        self.completed == self.requested
    }
}

impl fmt::Display for ScenarioReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |duration: Option<Duration>| {
            duration.map_or_else(|| "-".to_owned(), |d| format!("{} ms", d.as_millis()))
        };
        let seconds = self.total_time.as_secs_f64();
        let finished = self.completed + self.failed;
        let rate = if seconds > 0.0 {
            finished as f64 / seconds
        } else {
            0.0
        };
        writeln!(
            f,
            "bootstrap scenario: {} requested, {} completed, {} failed, {} unfinished",
            self.requested, self.completed, self.failed, self.unfinished
        )?;
        writeln!(
            f,
            "  emitted in {} ms; all finished within {:.2} s ({rate:.1} bootstraps/s)",
            self.emit_time.as_millis(),
            seconds
        )?;
        write!(
            f,
            "  request to end: p50 {}, p95 {}, max {}",
            ms(self.percentile(50)),
            ms(self.percentile(95)),
            ms(self.latencies.last().copied())
        )
    }
}

/// Runs the scenario.
pub async fn run_bootstrap(scenario: &BootstrapScenario) -> anyhow::Result<ScenarioReport> {
    let db = osp_activities::db::connect(&scenario.database_url)
        .await
        .context("connecting to the stack's database")?;
    let started = Instant::now();
    let run = &Uuid::new_v4().simple().to_string()[..8];
    let mut organizations = Vec::with_capacity(scenario.count);
    for index in 0..scenario.count {
        let organization = Uuid::new_v4();
        let data = json!({
            "organization_id": organization,
            "name": format!("Scenario {run} #{index}"),
            "subdomain": format!("scenario-{run}-{index}"),
            "admin_users": [{"email": format!("admin-{index}@scenario-{run}.example"), "name": "Admin"}],
            "plan": "scenario"
        });
        append(
            &db,
            &NewEvent::new(
                ORGANIZATION_STREAM,
                organization,
                ORGANIZATION_BOOTSTRAP_INITIATED,
                data,
            ),
        )
        .await
        .context("emitting a bootstrap request")?;
        organizations.push(organization);
    }
    let emit_time = started.elapsed();

    let deadline = Instant::now() + scenario.timeout;
    let (completed, failed, latencies) = loop {
        let rows = db
            .query_typed(
                "select e.event_type,
                        extract(epoch from e.created_at - i.created_at)::float8
                 from public.domain_events e
                 join public.domain_events i
                   on i.stream_id = e.stream_id and i.event_type = $2
                 where e.stream_id = any($1) and e.event_type in ($3, $4)",
                &[
                    (&organizations, Type::UUID_ARRAY),
                    (&ORGANIZATION_BOOTSTRAP_INITIATED, Type::TEXT),
                    (&ORGANIZATION_BOOTSTRAP_COMPLETED, Type::TEXT),
                    (&ORGANIZATION_BOOTSTRAP_FAILED, Type::TEXT),
                ],
            )
            .await
            .context("reading the scenario's outcomes")?;
        let completed = rows
            .iter()
            .filter(|row| row.get::<_, String>(0) == ORGANIZATION_BOOTSTRAP_COMPLETED)
            .count();
        let failed = rows.len() - completed;
        if rows.len() >= organizations.len() || Instant::now() >= deadline {
            let mut latencies: Vec<Duration> = rows
                .iter()
                .filter_map(|row| row.get::<_, Option<f64>>(1))
                .map(|seconds| Duration::from_secs_f64(seconds.max(0.0)))
                .collect();
            latencies.sort();
            break (completed, failed, latencies);
        }
        tokio::time::sleep(POLL).await;
    };
    Ok(ScenarioReport {
        requested: scenario.count,
        completed,
        failed,
        unfinished: scenario.count - completed - failed,
        latencies,
        emit_time,
        total_time: started.elapsed(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(latencies_ms: &[u64]) -> ScenarioReport {
        ScenarioReport {
            requested: latencies_ms.len(),
            completed: latencies_ms.len(),
            failed: 0,
            unfinished: 0,
            latencies: latencies_ms
                .iter()
                .copied()
                .map(Duration::from_millis)
                .collect(),
            emit_time: Duration::from_millis(5),
            total_time: Duration::from_secs(2),
        }
    }

    fn report_of_nothing() -> ScenarioReport {
        report(&[])
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let report = report(&(1..=20).map(|n| n * 10).collect::<Vec<_>>());
        assert_eq!(report.percentile(50), Some(Duration::from_millis(100)));
        assert_eq!(report.percentile(95), Some(Duration::from_millis(190)));
        assert_eq!(report.percentile(100), Some(Duration::from_millis(200)));
        assert_eq!(report_of_nothing().percentile(50), None);
    }

    #[test]
    fn the_report_reads_as_one_summary() {
        let text = report(&[100, 200, 300]).to_string();
        assert!(
            text.starts_with(
                "bootstrap scenario: 3 requested, 3 completed, 0 failed, 0 unfinished"
            ),
            "{text}"
        );
        assert!(
            text.contains("p50 200 ms, p95 300 ms, max 300 ms"),
            "{text}"
        );
        assert!(text.contains("1.5 bootstraps/s"), "{text}");
    }
}
