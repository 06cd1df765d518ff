//! The history scenario: the same operations on an empty store and on one loaded with a
//! realistic history (by default 1,000,000 domain events and 100,000 finished jobs), in the
//! same run on the same server, so the ratio says what history alone costs. The history is
//! generated on the server set-based (`load`): the rows the schema's functions would have
//! written, in a few statements, checked against those functions by `load`'s test. Measured
//! operations, one at a time on one direct connection: a client's emit of a bootstrap
//! request (routed, so it enqueues a job), a claim of one job, its settlement
//! (`settle_workflow_jobs`, as the bridge settles: the started and completed events), and
//! the emits a bootstrap's activities make with their idempotency keys, as the activities
//! make them.

mod load;

use std::time::Instant;

use osp_activities::events::{NewEvent, Shape, append};
use osp_activities::queries::{EVENT_WITH_IDEMPOTENCY_KEY, STATEMENT_BOUNDS};
use osp_core::events::{
    INVITATION_EMAIL_SENT, ORGANIZATION_BOOTSTRAP_COMPLETED, ORGANIZATION_BOOTSTRAP_INITIATED,
    ORGANIZATION_CREATED, ORGANIZATION_DNS_CONFIGURED, ORGANIZATION_STREAM, USER_INVITED,
};
use serde::Serialize;
use serde_json::{Value, json};
use tokio_postgres::types::Type;
use uuid::Uuid;

use super::ceiling::bootstrap_input;
use super::stats::{Summary, summarize};
use super::{BenchError, Options, progress};
use load::{EVENTS_PER_EXTRA_STREAM, EVENTS_PER_JOB, WORKER_ID};
use osp_stack::{Postgres, Stack, error_chain};

/// Operations per store before switching to the other store: the stores alternate, so a
/// change in the machine's load hits both alike.
const BLOCK: usize = 250;
/// The two databases, on the one PostgreSQL of the stack.
const EMPTY_DB: &str = "osp_bench_empty";
const LOADED_DB: &str = "osp_bench_history";
/// The relations whose sizes the report gives.
const RELATIONS: [&str; 5] = [
    "public.domain_events",
    "public.workflow_queue_projection",
    "osp_metadata.streams",
    "public.organizations_projection",
    "public.invitations_projection",
];

/// How long loading the history took, phase by phase.
#[derive(Debug, Clone, Serialize)]
pub struct Load {
    /// Domain events in the loaded store after loading (counted).
    pub events: i64,
    /// Finished (completed) jobs after loading (counted).
    pub completed_jobs: i64,
    pub streams: i64,
    /// The job streams' events, set-based.
    pub events_seconds: f64,
    /// Plain events on streams of their own, when --history-events asks for more than the
    /// jobs' streams hold.
    pub extra_seconds: f64,
    /// The stream counters and the projections, set-based, and the commit.
    pub projections_seconds: f64,
    /// `VACUUM (ANALYZE)` of both stores afterwards, as autovacuum would have by then.
    pub vacuum_seconds: f64,
    /// All of it, vacuum included.
    pub seconds: f64,
    pub events_per_second: f64,
}

/// One relation's size after loading.
#[derive(Debug, Clone, Serialize)]
pub struct RelationSize {
    pub relation: String,
    pub rows: i64,
    pub table_bytes: i64,
    pub index_bytes: i64,
    pub total_bytes: i64,
}

/// One index's size after loading.
#[derive(Debug, Clone, Serialize)]
pub struct IndexSize {
    pub index: String,
    pub bytes: i64,
}

/// One operation on both stores.
#[derive(Debug, Clone, Serialize)]
pub struct Operation {
    pub name: &'static str,
    pub empty_ms: Option<Summary>,
    pub loaded_ms: Option<Summary>,
    pub empty_failed: usize,
    pub loaded_failed: usize,
}

/// The whole history scenario.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryResults {
    /// What was asked for.
    pub history_events: usize,
    pub history_jobs: usize,
    /// Bootstrap streams measured per store (each: one of every operation below, five
    /// activity emits).
    pub samples: usize,
    pub load: Load,
    pub operations: Vec<Operation>,
    /// The first failed operation's message, if any failed.
    pub first_error: Option<String>,
    pub sizes: Vec<RelationSize>,
    pub indexes: Vec<IndexSize>,
    /// The same sizes in the empty store after its measurements, for comparison.
    pub empty_sizes: Vec<RelationSize>,
}

impl HistoryResults {
    pub fn json_lines(&self) -> Vec<Value> {
        let mut lines = vec![json!({
            "scenario": "history.load",
            "history_events": self.history_events,
            "history_jobs": self.history_jobs,
            "figures": self.load,
        })];
        for operation in &self.operations {
            lines.push(json!({
                "scenario": format!("history.{}", operation.name),
                "samples": self.samples,
                "figures": operation,
            }));
        }
        lines.push(json!({
            "scenario": "history.sizes",
            "loaded": self.sizes,
            "indexes": self.indexes,
            "empty": self.empty_sizes,
        }));
        if let Some(error) = &self.first_error {
            lines.push(json!({"scenario": "history.first_error", "error": error}));
        }
        lines
    }
}

/// Loaded over empty, and whether that stays within 10 %. A faster loaded store is within.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ratio {
    pub ratio: f64,
    pub within: bool,
}

/// How much a figure may grow with history (the goal of issue 16).
pub const TOLERANCE: f64 = 0.10;

/// `loaded / empty`; `None` when either is missing or the empty figure is not positive.
pub fn ratio(empty: Option<f64>, loaded: Option<f64>) -> Option<Ratio> {
    let (empty, loaded) = (empty?, loaded?);
    (empty > 0.0 && empty.is_finite() && loaded.is_finite()).then(|| {
        let ratio = loaded / empty;
        Ratio {
            ratio,
            // A hair of float error must not turn exactly 1.10 into a miss.
            within: ratio <= 1.0 + TOLERANCE + 1e-9,
        }
    })
}

/// `1.04 ✓` within the tolerance, `1.23 ✗ (+23 %)` beyond it, `–` when not measured.
pub fn ratio_cell(ratio: Option<Ratio>) -> String {
    match ratio {
        None => "–".to_owned(),
        Some(Ratio {
            ratio,
            within: true,
        }) => format!("{ratio:.2} ✓"),
        Some(Ratio { ratio, .. }) => format!("{ratio:.2} ✗ (+{:.0} %)", (ratio - 1.0) * 100.0),
    }
}

/// Streams of finished jobs and of extra events for `events` and `jobs`, or why the two
/// do not fit together.
pub fn plan(events: usize, jobs: usize) -> Result<(usize, usize), String> {
    let job_events = jobs
        .checked_mul(EVENTS_PER_JOB)
        .ok_or_else(|| "--history-jobs is too large".to_owned())?;
    if events < job_events {
        return Err(format!(
            "--history-events {events} is fewer than the {job_events} events the streams of --history-jobs {jobs} hold ({EVENTS_PER_JOB} per finished job)"
        ));
    }
    let extra = events - job_events;
    Ok((jobs, extra.div_ceil(EVENTS_PER_EXTRA_STREAM)))
}

/// Loads the history into `db` and vacuums both stores.
async fn load_and_vacuum(
    db: &mut tokio_postgres::Client,
    empty: &tokio_postgres::Client,
    jobs: usize,
    extra_events: usize,
) -> Result<Load, BenchError> {
    let started = Instant::now();
    // Nothing to lose if the throwaway server crashes.
    db.batch_execute("set synchronous_commit = off").await?;
    let jobs = i64::try_from(jobs).unwrap_or(i64::MAX);
    let extra = i64::try_from(extra_events).unwrap_or(i64::MAX);
    let timings = load::fast(db, jobs, extra).await?;
    let clock = Instant::now();
    let vacuum = format!("vacuum (analyze) {}", RELATIONS.join(", "));
    db.batch_execute(&vacuum).await?;
    empty.batch_execute(&vacuum).await?;
    let vacuum_seconds = clock.elapsed().as_secs_f64();
    let row = db
        .query_typed(
            "select (select count(*) from public.domain_events),
                    (select count(*) from public.workflow_queue_projection where status = 'completed'),
                    (select count(*) from osp_metadata.streams)",
            &[],
        )
        .await?;
    let (events, completed_jobs, streams) = row
        .first()
        .map_or((0, 0, 0), |r| (r.get(0), r.get(1), r.get(2)));
    let seconds = started.elapsed().as_secs_f64();
    Ok(Load {
        events,
        completed_jobs,
        streams,
        events_seconds: timings.events_seconds,
        extra_seconds: timings.extra_seconds,
        projections_seconds: timings.projections_seconds,
        vacuum_seconds,
        seconds,
        events_per_second: events as f64 / (seconds - vacuum_seconds).max(1e-9),
    })
}

async fn sizes(db: &tokio_postgres::Client) -> Result<Vec<RelationSize>, BenchError> {
    let mut sizes = Vec::with_capacity(RELATIONS.len());
    for relation in RELATIONS {
        // The names are this file's constants, not input.
        let rows = db
            .query_typed(
                &format!(
                    "select (select count(*) from {relation}), pg_table_size($1::regclass),
                            pg_indexes_size($1::regclass), pg_total_relation_size($1::regclass)"
                ),
                &[(&relation, Type::TEXT)],
            )
            .await?;
        if let Some(row) = rows.first() {
            sizes.push(RelationSize {
                relation: relation.to_owned(),
                rows: row.get(0),
                table_bytes: row.get(1),
                index_bytes: row.get(2),
                total_bytes: row.get(3),
            });
        }
    }
    Ok(sizes)
}

async fn index_sizes(db: &tokio_postgres::Client) -> Result<Vec<IndexSize>, BenchError> {
    // The event store, the queue and the streams: the indexes every operation maintains.
    let names: Vec<&str> = RELATIONS[..3].to_vec();
    let rows = db
        .query_typed(
            "select i.indexrelid::regclass::text, pg_relation_size(i.indexrelid)
             from pg_index i
             where i.indrelid in (select unnest($1::text[])::regclass)
             order by pg_relation_size(i.indexrelid) desc, 1",
            &[(&names, Type::TEXT_ARRAY)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| IndexSize {
            index: row.get(0),
            bytes: row.get(1),
        })
        .collect())
}

/// The operations, in the order one bootstrap makes them.
const OPERATIONS: [&str; 9] = [
    "emit",
    "claim",
    "settle",
    "activity_emit.organization_created",
    "activity_emit.dns_configured",
    "activity_emit.user_invited",
    "activity_lookup.email_sent",
    "activity_emit.email_sent",
    "activity_emit.bootstrap_completed",
];
/// A retried activity emit: its key exists, so it returns the first event's id.
const RETRY: &str = "activity_emit.retry_existing_key";

/// Samples of one store, one vector per operation (`OPERATIONS`, then `RETRY`).
#[derive(Debug, Default)]
struct Samples {
    ms: Vec<Vec<f64>>,
    failed: Vec<usize>,
    error: Option<String>,
}

impl Samples {
    fn new() -> Self {
        Samples {
            ms: vec![Vec::new(); OPERATIONS.len() + 1],
            failed: vec![0; OPERATIONS.len() + 1],
            error: None,
        }
    }

    /// Times `operation` as operation number `index`; its value when it succeeded.
    async fn time<T, F>(&mut self, index: usize, operation: F) -> Option<T>
    where
        F: Future<Output = Result<T, String>>,
    {
        let clock = Instant::now();
        let result = operation.await;
        let took = clock.elapsed().as_secs_f64() * 1000.0;
        match result {
            Ok(value) => {
                self.ms[index].push(took);
                Some(value)
            }
            Err(error) => {
                self.failed[index] += 1;
                self.error.get_or_insert(error);
                None
            }
        }
    }
}

/// An activity's emit as `PlatformActivities::emit` makes it: its own transaction under the
/// activities' statement bounds, the aggregate shape, the step's idempotency key.
async fn activity_emit(db: &mut tokio_postgres::Client, event: &NewEvent) -> Result<Uuid, String> {
    let transaction = db.transaction().await.map_err(|e| error_chain(&e))?;
    transaction
        .batch_execute(STATEMENT_BOUNDS)
        .await
        .map_err(|e| error_chain(&e))?;
    let id = append(&transaction, event)
        .await
        .map_err(|e| error_chain(&e))?;
    transaction.commit().await.map_err(|e| error_chain(&e))?;
    Ok(id)
}

/// `PlatformActivities::already_emitted`: the idempotency lookup before the email.
async fn activity_lookup(db: &mut tokio_postgres::Client, key: &str) -> Result<bool, String> {
    let transaction = db.transaction().await.map_err(|e| error_chain(&e))?;
    transaction
        .batch_execute(STATEMENT_BOUNDS)
        .await
        .map_err(|e| error_chain(&e))?;
    let rows = transaction
        .query_typed(EVENT_WITH_IDEMPOTENCY_KEY, &[(&key, Type::TEXT)])
        .await
        .map_err(|e| error_chain(&e))?;
    transaction.commit().await.map_err(|e| error_chain(&e))?;
    Ok(!rows.is_empty())
}

/// A bootstrap activity's event on `organization`'s stream, keyed like `platform.rs` keys it.
fn bootstrap_event(
    organization: Uuid,
    run: &str,
    event_type: &str,
    activity_type: &str,
    data: Value,
    discriminator: Option<Uuid>,
) -> NewEvent {
    let workflow_id = format!("org-bootstrap-{organization}");
    let execution = format!("{workflow_id}/{run}");
    let key = match discriminator {
        Some(id) => format!("{execution}/{event_type}/{id}"),
        None => format!("{execution}/{event_type}"),
    };
    NewEvent::new(ORGANIZATION_STREAM, organization, event_type, data)
        .idempotency_key(key)
        .metadata_entry("workflow_id", json!(workflow_id))
        .metadata_entry("workflow_run_id", json!(run))
        .metadata_entry("activity_type", json!(activity_type))
        .metadata_entry("correlation_id", json!(workflow_id))
        .shape(Shape::Aggregate)
}

/// One claimed job: what its settlement needs.
struct Claimed {
    job_id: Uuid,
    attempt: i32,
    workflow_id: String,
}

/// A block of `n` bootstraps on `db`, every operation timed into `samples`.
async fn measure_block(
    db: &mut tokio_postgres::Client,
    n: usize,
    samples: &mut Samples,
) -> Result<(), BenchError> {
    let organizations: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    for &organization in &organizations {
        let event = NewEvent::new(
            ORGANIZATION_STREAM,
            organization,
            ORGANIZATION_BOOTSTRAP_INITIATED,
            bootstrap_input(organization),
        );
        samples
            .time(0, async {
                append(&*db, &event).await.map_err(|e| error_chain(&e))
            })
            .await;
    }
    let mut claimed = Vec::with_capacity(n);
    for _ in 0..n {
        let job = samples
            .time(1, async {
                let rows = db
                    .query_typed(
                        "select job_id, attempts, workflow_id
                         from api.claim_workflow_jobs($1, 1, interval '5 minutes')",
                        &[(&WORKER_ID, Type::TEXT)],
                    )
                    .await
                    .map_err(|e| error_chain(&e))?;
                let row = rows.first().ok_or("the claim found no pending job")?;
                Ok(Claimed {
                    job_id: row.get(0),
                    attempt: row.get(1),
                    workflow_id: row
                        .get::<_, Option<String>>(2)
                        .ok_or("the claimed job has no workflow id")?,
                })
            })
            .await;
        claimed.extend(job);
    }
    for job in &claimed {
        // As the bridge settles: one element of `api.settle_workflow_jobs`.
        let settlement = json!([{
            "job_id": job.job_id,
            "attempt": job.attempt,
            "outcome": "complete",
            "workflow_id": job.workflow_id,
            "workflow_run_id": Uuid::new_v4().to_string(),
        }]);
        samples
            .time(2, async {
                let rows = db
                    .query_typed(
                        "select settled from api.settle_workflow_jobs($1, $2)",
                        &[(&WORKER_ID, Type::TEXT), (&settlement, Type::JSONB)],
                    )
                    .await
                    .map_err(|e| error_chain(&e))?;
                match rows.first().map(|row| row.get::<_, String>(0)).as_deref() {
                    Some("done") => Ok(()),
                    _ => Err("settle_workflow_jobs did not settle the job".to_owned()),
                }
            })
            .await;
    }
    for &organization in &organizations {
        let run = Uuid::new_v4().to_string();
        let invitation = Uuid::new_v4();
        let simple = organization.simple().to_string();
        let dns_record = format!("bench-{}.osp.example", &simple[..12]);
        let email = "admin@bench.example";
        let steps = [
            (
                3,
                bootstrap_event(
                    organization,
                    &run,
                    ORGANIZATION_CREATED,
                    "createOrganization",
                    json!({"organization_id": organization, "name": "Bench Organization",
                           "subdomain": format!("bench-{}", &simple[..12]), "plan": "pro"}),
                    None,
                ),
            ),
            (
                4,
                bootstrap_event(
                    organization,
                    &run,
                    ORGANIZATION_DNS_CONFIGURED,
                    "configureDns",
                    json!({"dns_record": dns_record, "record_id": format!("rec-{simple}"), "provider": "mock"}),
                    None,
                ),
            ),
            (
                5,
                bootstrap_event(
                    organization,
                    &run,
                    USER_INVITED,
                    "inviteUser",
                    json!({"invitation_id": invitation, "email": email, "name": "Bench Admin", "role": "admin"}),
                    Some(invitation),
                ),
            ),
            (
                7,
                bootstrap_event(
                    organization,
                    &run,
                    INVITATION_EMAIL_SENT,
                    "sendInvitationEmail",
                    json!({"invitation_id": invitation, "email": email}),
                    Some(invitation),
                ),
            ),
            (
                8,
                bootstrap_event(
                    organization,
                    &run,
                    ORGANIZATION_BOOTSTRAP_COMPLETED,
                    "completeBootstrap",
                    json!({"dns_record": dns_record, "invitations": [invitation]}),
                    None,
                ),
            ),
        ];
        for (index, event) in &steps {
            if *index == 7 {
                let key = event
                    .metadata
                    .get(osp_activities::events::IDEMPOTENCY_KEY)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                samples
                    .time(6, async {
                        match activity_lookup(db, &key).await? {
                            false => Ok(()),
                            true => Err(format!("idempotency key {key} already used")),
                        }
                    })
                    .await;
            }
            samples.time(*index, activity_emit(db, event)).await;
        }
        // A retry of the first step after its event was written.
        samples
            .time(OPERATIONS.len(), activity_emit(db, &steps[0].1))
            .await;
    }
    Ok(())
}

/// Runs the history scenario on two fresh databases of `stack`'s PostgreSQL.
pub async fn run(stack: &Stack, options: &Options) -> Result<HistoryResults, BenchError> {
    let (jobs, extra_streams) =
        plan(options.history_events, options.history_jobs).map_err(BenchError::Failed)?;
    let extra_events = options.history_events - jobs * EVENTS_PER_JOB;
    let mut empty = prepare(&stack.postgres, EMPTY_DB).await?;
    let mut loaded = prepare(&stack.postgres, LOADED_DB).await?;
    progress!(
        "history: loading {} events ({jobs} finished bootstrap jobs, {extra_events} further events on {extra_streams} streams)",
        options.history_events
    );
    let load = load_and_vacuum(&mut loaded, &empty, jobs, extra_events).await?;
    progress!(
        "history: loaded {} events, {} finished jobs in {:.0} s ({:.0} events/s, vacuum {:.0} s)",
        load.events,
        load.completed_jobs,
        load.seconds,
        load.events_per_second,
        load.vacuum_seconds
    );
    let loaded_sizes = sizes(&loaded).await?;
    let indexes = index_sizes(&loaded).await?;

    let samples = options.history_samples;
    let (mut on_empty, mut on_loaded) = (Samples::new(), Samples::new());
    let clock = Instant::now();
    let mut done = 0;
    let mut round = 0;
    while done < samples {
        let n = BLOCK.min(samples - done);
        // Alternate which store goes first, so neither always follows the other's writes.
        if round % 2 == 0 {
            measure_block(&mut empty, n, &mut on_empty).await?;
            measure_block(&mut loaded, n, &mut on_loaded).await?;
        } else {
            measure_block(&mut loaded, n, &mut on_loaded).await?;
            measure_block(&mut empty, n, &mut on_empty).await?;
        }
        // Untimed, on both stores: fresh statistics, as autovacuum keeps them. Without it
        // the empty store plans on statistics taken when it held nothing.
        let analyze = format!("analyze {}", RELATIONS.join(", "));
        empty.batch_execute(&analyze).await?;
        loaded.batch_execute(&analyze).await?;
        done += n;
        round += 1;
        progress!(
            "history: {done} of {samples} bootstraps measured on each store ({:.0} s)",
            clock.elapsed().as_secs_f64()
        );
    }
    let operations = OPERATIONS
        .iter()
        .chain(std::iter::once(&RETRY))
        .enumerate()
        .map(|(i, name)| Operation {
            name,
            empty_ms: summarize(&on_empty.ms[i]),
            loaded_ms: summarize(&on_loaded.ms[i]),
            empty_failed: on_empty.failed[i],
            loaded_failed: on_loaded.failed[i],
        })
        .collect::<Vec<_>>();
    let empty_sizes = sizes(&empty).await?;
    Ok(HistoryResults {
        history_events: options.history_events,
        history_jobs: options.history_jobs,
        samples,
        load,
        operations,
        first_error: on_empty.error.or(on_loaded.error),
        sizes: loaded_sizes,
        indexes,
        empty_sizes,
    })
}

/// A fresh, migrated database named `name`, connected directly (no pooler in between) as
/// the superuser, whom the loader needs.
async fn prepare(postgres: &Postgres, name: &str) -> Result<tokio_postgres::Client, BenchError> {
    let url = postgres.create_database(name).await?;
    let mut db = osp_activities::db::connect(&url).await?;
    osp_activities::migrate(&mut db)
        .await
        .map_err(|error| BenchError::Database(error.to_string()))?;
    // Long loading statements must not meet a default statement timeout.
    db.batch_execute("set statement_timeout = 0").await?;
    Ok(db)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_within_ten_percent() {
        let within = ratio(Some(2.0), Some(2.2)).unwrap();
        assert!(within.within);
        assert!((within.ratio - 1.1).abs() < 1e-12);
        assert!(
            ratio(Some(2.0), Some(1.0)).unwrap().within,
            "faster is within"
        );
        assert!(!ratio(Some(2.0), Some(2.3)).unwrap().within);
        assert_eq!(ratio(None, Some(1.0)), None);
        assert_eq!(ratio(Some(0.0), Some(1.0)), None);
        assert_eq!(ratio(Some(1.0), Some(f64::NAN)), None);
    }

    #[test]
    fn ratio_cells() {
        assert_eq!(ratio_cell(ratio(Some(1.0), Some(1.04))), "1.04 ✓");
        assert_eq!(ratio_cell(ratio(Some(1.0), Some(1.234))), "1.23 ✗ (+23 %)");
        assert_eq!(ratio_cell(None), "–");
    }

    #[test]
    fn plan_splits_events_into_job_streams_and_extra_streams() {
        assert_eq!(plan(1_000_000, 100_000), Ok((100_000, 0)));
        assert_eq!(plan(1_000_005, 100_000), Ok((100_000, 1)));
        assert_eq!(plan(50_000, 1_000), Ok((1_000, 4_000)));
        let error = plan(999, 100).unwrap_err();
        assert!(error.contains("--history-events 999"), "{error}");
        assert!(error.contains("--history-jobs 100"), "{error}");
    }
}
