//! The history scenario: the same operations on an empty store and on one loaded with a
//! realistic history (by default 1,000,000 domain events and 100,000 finished jobs), in the
//! same run on the same server, so the ratio says what history alone costs. The history is
//! generated on the server through the schema's own functions (`api.emit_domain_event`,
//! `api.claim_workflow_jobs`, `api.complete_workflow_job`), a few large statements per
//! chunk: the guards refuse direct inserts even for the owner, and no round trip is made per
//! event. Measured operations, one at a time on one direct connection: a client's emit of a
//! bootstrap request (routed, so it enqueues a job), a claim of one job, its settlement
//! (`complete_workflow_job`: the started and completed events), and the emits a bootstrap's
//! activities make with their idempotency keys, as the activities make them.

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
use osp_stack::{Stack, error_chain};

/// Events on the stream of one finished bootstrap job: initiated, pending, claimed,
/// workflow_started, completed, and the five activity events.
pub const EVENTS_PER_JOB: usize = 10;
/// Events per stream of the history beyond the jobs' streams.
const EVENTS_PER_EXTRA_STREAM: usize = 10;
/// Streams generated per statement while loading: large enough that the statements, not
/// the round trips, take the time; small enough to report progress.
const LOAD_CHUNK: usize = 5_000;
/// Operations per store before switching to the other store: the stores alternate, so a
/// change in the machine's load hits both alike.
const BLOCK: usize = 250;
/// The worker id of every claim in this scenario.
const WORKER_ID: &str = "osp-bench-history";
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
    /// Routed bootstrap requests (`organization.bootstrap.initiated`, which enqueue a job).
    pub initiated_seconds: f64,
    /// Claims and completions in batches of 1,000.
    pub settle_seconds: f64,
    /// The five activity events per job, with idempotency keys.
    pub activity_seconds: f64,
    /// Plain events on streams of their own, when --history-events asks for more than the
    /// jobs' streams hold.
    pub extra_seconds: f64,
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

/// A generated stream's id: the same `n` always names the same stream.
const STREAM_ID: &str = "md5('osp-bench-history/' || n)::uuid";

/// The activity metadata of a generated stream's event `$type`, as `platform.rs` writes it.
fn activity_metadata(event_type: &str, activity_type: &str, discriminator: &str) -> String {
    format!(
        "jsonb_build_object(
            'idempotency_key', 'org-bootstrap-' || id || '/history-' || id || '/{event_type}'{discriminator},
            'workflow_id', 'org-bootstrap-' || id,
            'workflow_run_id', 'history-' || id,
            'activity_type', '{activity_type}',
            'correlation_id', 'org-bootstrap-' || id)"
    )
}

/// One statement per activity event type over the streams `n` in `$1..=$2`, each through
/// `api.emit_domain_event`'s aggregate shape, as the activities call it.
fn activity_statements() -> Vec<String> {
    let invitation = "md5('osp-bench-history-invitation/' || n)::uuid";
    let steps = [
        (
            ORGANIZATION_CREATED,
            "createOrganization",
            "jsonb_build_object('organization_id', id, 'name', 'History Organization ' || n,
                                'subdomain', 'hist-' || n, 'plan', 'pro')"
                .to_owned(),
            "",
        ),
        (
            ORGANIZATION_DNS_CONFIGURED,
            "configureDns",
            "jsonb_build_object('dns_record', 'hist-' || n || '.osp.example',
                                'record_id', 'rec-' || n, 'provider', 'mock')"
                .to_owned(),
            "",
        ),
        (
            USER_INVITED,
            "inviteUser",
            format!(
                "jsonb_build_object('invitation_id', {invitation}, 'email', 'admin' || n || '@history.example',
                                    'name', 'History Admin ' || n, 'role', 'admin')"
            ),
            " || '/' || inv",
        ),
        (
            INVITATION_EMAIL_SENT,
            "sendInvitationEmail",
            "jsonb_build_object('invitation_id', inv, 'email', 'admin' || n || '@history.example')"
                .to_owned(),
            " || '/' || inv",
        ),
        (
            ORGANIZATION_BOOTSTRAP_COMPLETED,
            "completeBootstrap",
            "jsonb_build_object('dns_record', 'hist-' || n || '.osp.example',
                                'invitations', jsonb_build_array(inv))"
                .to_owned(),
            "",
        ),
    ];
    steps
        .iter()
        .map(|(event_type, activity, data, discriminator)| {
            format!(
                "select count(api.emit_domain_event('{event_type}'::text, '{ORGANIZATION_STREAM}'::text, id, {data}, {}))
                 from (select n, {STREAM_ID} as id, {invitation} as inv
                       from generate_series($1::int8, $2::int8) n) s",
                activity_metadata(event_type, activity, discriminator)
            )
        })
        .collect()
}

/// Routed bootstrap requests on streams `$1..=$2`: each enqueues a job.
fn initiated_statement() -> String {
    format!(
        "select count(api.emit_domain_event(id, '{ORGANIZATION_STREAM}'::text, '{ORGANIZATION_BOOTSTRAP_INITIATED}'::text,
                 jsonb_build_object('organization_id', id, 'name', 'History Organization ' || n,
                                    'subdomain', 'hist-' || n,
                                    'admin_users', jsonb_build_array(jsonb_build_object(
                                        'email', 'admin' || n || '@history.example',
                                        'name', 'History Admin ' || n)),
                                    'plan', 'pro'),
                 '{{}}'::jsonb))
         from (select n, {STREAM_ID} as id from generate_series($1::int8, $2::int8) n) s"
    )
}

/// Claims up to 1,000 pending jobs and completes each, as the bridge does once Temporal
/// acknowledged the start: `(claimed, completed)`.
const SETTLE_BATCH: &str = "select count(*), count(*) filter (where ok)
     from (select api.complete_workflow_job(c.job_id, 'osp-bench-history', c.attempts, c.workflow_id,
                                            'history-' || c.stream_id::text) as ok
           from api.claim_workflow_jobs('osp-bench-history', 1000, interval '1 hour') c) x";

/// Plain keyed events `k` in `$1..$2` (exclusive), ten to a stream, on streams numbered
/// after the jobs' (offset `$3`).
const EXTRA_STATEMENT: &str = "select count(api.emit_domain_event(
         md5('osp-bench-history/' || ($3::int8 + k / 10))::uuid, 'ledger'::text, 'ledger.entry.recorded'::text,
         jsonb_build_object('entry', k, 'amount_cents', (k * 7919) % 100000, 'currency', 'EUR',
                            'memo', 'history entry ' || k || ' for account ' || ($3::int8 + k / 10)),
         jsonb_build_object('idempotency_key', 'ledger-entry-' || k, 'source', 'osp-bench')))
     from generate_series($1::int8, $2::int8 - 1) k";

/// The first two `bigint` columns of `sql`'s one row (the first twice when there is one).
async fn count_pair(
    db: &tokio_postgres::Client,
    sql: &str,
    params: &[(&(dyn tokio_postgres::types::ToSql + Sync), Type)],
) -> Result<(i64, i64), BenchError> {
    let rows = db.query_typed(sql, params).await?;
    Ok(rows.first().map_or((0, 0), |row| {
        let first: i64 = row.get(0);
        let second = if row.len() > 1 { row.get(1) } else { first };
        (first, second)
    }))
}

/// Loads the history into `db` and vacuums both stores.
async fn load(
    db: &tokio_postgres::Client,
    empty: &tokio_postgres::Client,
    jobs: usize,
    extra_events: usize,
) -> Result<Load, BenchError> {
    let started = Instant::now();
    // One session, large statements: nothing to lose if the throwaway server crashes.
    db.batch_execute("set synchronous_commit = off").await?;
    let initiated_sql = initiated_statement();
    let activity_sql = activity_statements();
    let (mut initiated_seconds, mut settle_seconds, mut activity_seconds) = (0.0, 0.0, 0.0);
    let jobs = i64::try_from(jobs).unwrap_or(i64::MAX);
    let chunk = LOAD_CHUNK as i64;
    let mut from = 1_i64;
    while from <= jobs {
        let to = (from + chunk - 1).min(jobs);
        let clock = Instant::now();
        count_pair(
            db,
            &initiated_sql,
            &[(&from, Type::INT8), (&to, Type::INT8)],
        )
        .await?;
        initiated_seconds += clock.elapsed().as_secs_f64();
        let clock = Instant::now();
        loop {
            let (claimed, completed) = count_pair(db, SETTLE_BATCH, &[]).await?;
            if claimed != completed {
                return Err(BenchError::Failed(format!(
                    "history: {completed} of {claimed} claimed jobs completed"
                )));
            }
            if claimed == 0 {
                break;
            }
        }
        settle_seconds += clock.elapsed().as_secs_f64();
        let clock = Instant::now();
        for sql in &activity_sql {
            count_pair(db, sql, &[(&from, Type::INT8), (&to, Type::INT8)]).await?;
        }
        activity_seconds += clock.elapsed().as_secs_f64();
        progress!(
            "history: {to} of {jobs} finished jobs loaded ({:.0} s)",
            started.elapsed().as_secs_f64()
        );
        from = to + 1;
    }
    let clock = Instant::now();
    let extra = i64::try_from(extra_events).unwrap_or(i64::MAX);
    let step = chunk * EVENTS_PER_EXTRA_STREAM as i64;
    let mut k = 0_i64;
    while k < extra {
        let end = (k + step).min(extra);
        // Streams after the jobs' own, so no number names two streams.
        let offset = jobs + 1;
        count_pair(
            db,
            EXTRA_STATEMENT,
            &[(&k, Type::INT8), (&end, Type::INT8), (&offset, Type::INT8)],
        )
        .await?;
        progress!("history: {end} of {extra} further events loaded");
        k = end;
    }
    let extra_seconds = clock.elapsed().as_secs_f64();
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
        initiated_seconds,
        settle_seconds,
        activity_seconds,
        extra_seconds,
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
        let run_id = Uuid::new_v4().to_string();
        samples
            .time(2, async {
                let rows = db
                    .query_typed(
                        "select api.complete_workflow_job($1, $2, $3, $4, $5, false)",
                        &[
                            (&job.job_id, Type::UUID),
                            (&WORKER_ID, Type::TEXT),
                            (&job.attempt, Type::INT4),
                            (&job.workflow_id, Type::TEXT),
                            (&run_id, Type::TEXT),
                        ],
                    )
                    .await
                    .map_err(|e| error_chain(&e))?;
                match rows.first().and_then(|row| row.get::<_, Option<bool>>(0)) {
                    Some(true) => Ok(()),
                    _ => Err("complete_workflow_job did not settle the job".to_owned()),
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
    let mut empty = prepare(stack, EMPTY_DB).await?;
    let mut loaded = prepare(stack, LOADED_DB).await?;
    progress!(
        "history: loading {} events ({jobs} finished bootstrap jobs, {extra_events} further events on {extra_streams} streams)",
        options.history_events
    );
    let load = load(&loaded, &empty, jobs, extra_events).await?;
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

/// A fresh, migrated database named `name`, connected directly (no pooler in between).
async fn prepare(stack: &Stack, name: &str) -> Result<tokio_postgres::Client, BenchError> {
    let url = stack.postgres.create_database(name).await?;
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
