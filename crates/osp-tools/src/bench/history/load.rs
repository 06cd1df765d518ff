//! Loading the history scenario's store: the rows the schema's own functions would write for
//! finished bootstrap jobs and plain keyed events, generated set-based in a few statements
//! with the row triggers switched off for the loading transaction only. A test loads a
//! small history both this way and through the functions (`slow`, test-only) and compares
//! every table, so a schema change the generator misses fails it.

use std::time::Instant;

use osp_core::events::{
    INVITATION_EMAIL_SENT, ORGANIZATION_BOOTSTRAP_COMPLETED, ORGANIZATION_BOOTSTRAP_INITIATED,
    ORGANIZATION_CREATED, ORGANIZATION_DNS_CONFIGURED, ORGANIZATION_STREAM, USER_INVITED,
};
use tokio_postgres::types::Type;

use super::super::{BenchError, progress};

/// Events on the stream of one finished bootstrap job: initiated, pending, claimed,
/// workflow_started, completed, and the five activity events.
pub const EVENTS_PER_JOB: usize = 10;
/// Events per stream of the history beyond the jobs' streams.
pub const EVENTS_PER_EXTRA_STREAM: usize = 10;
/// The worker id of every claim in this scenario, loaded or measured.
pub const WORKER_ID: &str = "osp-bench-history";

/// A generated stream's id: the same `n` always names the same stream.
const STREAM_ID: &str = "md5('osp-bench-history/' || n)::uuid";
/// The invitation of stream `n`.
const INVITATION: &str = "md5('osp-bench-history-invitation/' || n)::uuid";
/// The workflow run id the history's jobs were started with (`id`: the stream's id).
const RUN_ID: &str = "'history-' || id";

/// The data of stream `n`'s (`id`'s) routed bootstrap request.
fn initiated_data() -> String {
    "jsonb_build_object('organization_id', id, 'name', 'History Organization ' || n,
                        'subdomain', 'hist-' || n,
                        'admin_users', jsonb_build_array(jsonb_build_object(
                            'email', 'admin' || n || '@history.example',
                            'name', 'History Admin ' || n)),
                        'plan', 'pro')"
        .to_owned()
}

/// One activity event of a bootstrap, as `platform.rs` emits it: over columns `n`, `id`
/// (the stream) and `inv` (the invitation).
struct Step {
    event_type: &'static str,
    activity_type: &'static str,
    data: String,
    /// Appended to the idempotency key (the invitation, for the per-invitation steps).
    discriminator: &'static str,
}

impl Step {
    /// The activity metadata, keyed like `platform.rs` keys it.
    fn metadata(&self) -> String {
        let Step {
            event_type,
            activity_type,
            discriminator,
            ..
        } = self;
        format!(
            "jsonb_build_object(
                'idempotency_key', 'org-bootstrap-' || id || '/history-' || id || '/{event_type}'{discriminator},
                'workflow_id', 'org-bootstrap-' || id,
                'workflow_run_id', 'history-' || id,
                'activity_type', '{activity_type}',
                'correlation_id', 'org-bootstrap-' || id)"
        )
    }
}

/// The five activity events, in the order a bootstrap emits them (versions 6 to 10).
fn steps() -> [Step; 5] {
    [
        Step {
            event_type: ORGANIZATION_CREATED,
            activity_type: "createOrganization",
            data: "jsonb_build_object('organization_id', id, 'name', 'History Organization ' || n,
                                      'subdomain', 'hist-' || n, 'plan', 'pro')"
                .to_owned(),
            discriminator: "",
        },
        Step {
            event_type: ORGANIZATION_DNS_CONFIGURED,
            activity_type: "configureDns",
            data: "jsonb_build_object('dns_record', 'hist-' || n || '.osp.example',
                                      'record_id', 'rec-' || n, 'provider', 'mock')"
                .to_owned(),
            discriminator: "",
        },
        Step {
            event_type: USER_INVITED,
            activity_type: "inviteUser",
            data: "jsonb_build_object('invitation_id', inv, 'email', 'admin' || n || '@history.example',
                                      'name', 'History Admin ' || n, 'role', 'admin')"
                .to_owned(),
            discriminator: " || '/' || inv",
        },
        Step {
            event_type: INVITATION_EMAIL_SENT,
            activity_type: "sendInvitationEmail",
            data: "jsonb_build_object('invitation_id', inv, 'email', 'admin' || n || '@history.example')"
                .to_owned(),
            discriminator: " || '/' || inv",
        },
        Step {
            event_type: ORGANIZATION_BOOTSTRAP_COMPLETED,
            activity_type: "completeBootstrap",
            data: "jsonb_build_object('dns_record', 'hist-' || n || '.osp.example',
                                      'invitations', jsonb_build_array(inv))"
                .to_owned(),
            discriminator: "",
        },
    ]
}

/// A plain event's stream: ten keyed events `k` to a stream, numbered from `offset` on.
fn ledger_stream(offset: &str) -> String {
    format!("md5('osp-bench-history/' || ({offset} + k / 10))::uuid")
}

/// A plain event `k`'s data and metadata (its idempotency key).
fn ledger_data(offset: &str) -> [String; 2] {
    [
        format!(
            "jsonb_build_object('entry', k, 'amount_cents', (k * 7919) % 100000, 'currency', 'EUR',
                                'memo', 'history entry ' || k || ' for account ' || ({offset} + k / 10))"
        ),
        "jsonb_build_object('idempotency_key', 'ledger-entry-' || k, 'source', 'osp-bench')"
            .to_owned(),
    ]
}

/// How long each part of the fast load took.
#[derive(Debug, Clone, Copy, Default)]
pub struct Timings {
    /// The job streams' events.
    pub events_seconds: f64,
    /// The plain events on streams of their own.
    pub extra_seconds: f64,
    /// Stream counters and projections, and the commit.
    pub projections_seconds: f64,
}

/// The generated rows' `created_at`: the history's events are one microsecond apart,
/// ordinal `ordinal` counted from `$1` (before the load started, so all of it is in the
/// past), version after version as the statements insert them.
fn at(ordinal: &str) -> String {
    format!("($1::text::timestamptz + interval '1 microsecond' * ({ordinal}))")
}

/// The `created_at` of job stream `n`'s event `version` (`$2`: the number of jobs).
fn job_event_at(version: usize) -> String {
    at(&format!("$2::int8 * {} + (n - 1)", version - 1))
}

/// The table the job statements read: one row per finished job, with the ids the schema's
/// functions would have drawn (`gen_random_uuid()` for events) and the route's fields.
fn jobs_table() -> [String; 2] {
    let initiated = initiated_data();
    let first = job_event_at(1);
    [
        "create temp table bench_history_jobs (
             n int8, id uuid, inv uuid, initiated_id uuid, job_id uuid, workflow_type text,
             task_queue text, started_event_type text, workflow_id text) on commit drop"
            .to_owned(),
        format!(
        "insert into bench_history_jobs
         select j.*, r.workflow_type, r.task_queue, r.started_event_type,
                osp_metadata.render_workflow_id(r.workflow_id_template,
                    row(j.initiated_id, j.id, '{ORGANIZATION_STREAM}', 1, '{ORGANIZATION_BOOTSTRAP_INITIATED}',
                        {initiated}, '{{}}'::jsonb, {first})::public.domain_events) as workflow_id
         from (select n, {STREAM_ID} as id, {INVITATION} as inv,
                      gen_random_uuid() as initiated_id, gen_random_uuid() as job_id
               from generate_series(1, $2::int8) n
               offset 0) j
         join osp_metadata.workflow_routes r
           on r.event_type = '{ORGANIZATION_BOOTSTRAP_INITIATED}' and r.enabled"
        ),
    ]
}

/// One insert per version of the job streams: `(id, event_type, data, metadata)` of each,
/// as the functions write them. Versions 2 to 5 are what the route's trigger
/// (`enqueue_routed_event`), `claim_workflow_jobs` and `complete_workflow_job` append.
fn job_event_statements() -> Vec<String> {
    let job_metadata =
        "jsonb_build_object('causation_id', job_id, 'correlation_id', initiated_id::text)";
    let claimed_at = job_event_at(3);
    let mut events = vec![
        (
            "initiated_id".to_owned(),
            format!("'{ORGANIZATION_BOOTSTRAP_INITIATED}'"),
            initiated_data(),
            "'{}'::jsonb".to_owned(),
        ),
        (
            "job_id".to_owned(),
            "'workflow.queue.pending'".to_owned(),
            format!(
                "jsonb_strip_nulls(jsonb_build_object(
                     'event_id', initiated_id, 'event_type', '{ORGANIZATION_BOOTSTRAP_INITIATED}',
                     'workflow_type', workflow_type, 'task_queue', task_queue,
                     'workflow_id', workflow_id, 'started_event_type', started_event_type))"
            ),
            "jsonb_build_object('causation_id', initiated_id, 'correlation_id', initiated_id::text)"
                .to_owned(),
        ),
        (
            "gen_random_uuid()".to_owned(),
            "'workflow.queue.claimed'".to_owned(),
            format!(
                "jsonb_build_object('job_id', job_id, 'worker_id', '{WORKER_ID}',
                                    'lease_expires_at', {claimed_at} + interval '1 hour', 'attempt', 1)"
            ),
            job_metadata.to_owned(),
        ),
        (
            "gen_random_uuid()".to_owned(),
            "started_event_type".to_owned(),
            format!(
                "jsonb_build_object('job_id', job_id, 'event_id', initiated_id,
                                    'workflow_type', workflow_type, 'task_queue', task_queue,
                                    'workflow_id', workflow_id, 'workflow_run_id', {RUN_ID},
                                    'existing_execution', false)"
            ),
            job_metadata.to_owned(),
        ),
        (
            "gen_random_uuid()".to_owned(),
            "'workflow.queue.completed'".to_owned(),
            format!(
                "jsonb_build_object('job_id', job_id, 'workflow_id', workflow_id,
                                    'workflow_run_id', {RUN_ID})"
            ),
            job_metadata.to_owned(),
        ),
    ];
    events.extend(steps().into_iter().map(|step| {
        let metadata = step.metadata();
        (
            "gen_random_uuid()".to_owned(),
            format!("'{}'", step.event_type),
            step.data,
            metadata,
        )
    }));
    events
        .into_iter()
        .enumerate()
        .map(|(index, (id, event_type, data, metadata))| {
            let version = index + 1;
            format!(
                "insert into public.domain_events
                     (id, stream_id, stream_type, stream_version, event_type, event_data, event_metadata, created_at)
                 select {id}, id, '{ORGANIZATION_STREAM}', {version}, {event_type}, {data}, {metadata}, {}
                 from bench_history_jobs",
                job_event_at(version)
            )
        })
        .collect()
}

/// The plain events `k` in `0..$3`, ten to a stream, on streams numbered after the jobs'.
fn extra_statement() -> String {
    let offset = "($2::int8 + 1)";
    let [data, metadata] = ledger_data(offset);
    format!(
        "insert into public.domain_events
             (id, stream_id, stream_type, stream_version, event_type, event_data, event_metadata, created_at)
         select gen_random_uuid(), {}, 'ledger', k % {EVENTS_PER_EXTRA_STREAM} + 1, 'ledger.entry.recorded',
                {data}, {metadata}, {}
         from generate_series(0, $3::int8 - 1) k",
        ledger_stream(offset),
        at(&format!("$2::int8 * {EVENTS_PER_JOB} + k"))
    )
}

/// The stream counters and the projections the triggers keep, in the state the last event
/// of each stream left them. A stream's counter was created before its first event and last
/// touched after its last one.
fn projection_statements() -> Vec<String> {
    let offset = "($2::int8 + 1)";
    let created = "($1::text::timestamptz - interval '1 microsecond')";
    let touched = at(&format!("$2::int8 * {EVENTS_PER_JOB} + $3::int8"));
    let [organization, dns, invitation, ..] = steps().map(|step| step.data);
    vec![
        format!(
            "insert into osp_metadata.streams (stream_id, stream_type, version, created_at, updated_at)
             select id, '{ORGANIZATION_STREAM}', {EVENTS_PER_JOB}, {created}, {touched} from bench_history_jobs
             union all
             select {}, 'ledger', count(*), {created}, {touched}
             from generate_series(0, $3::int8 - 1) k
             group by k / 10",
            ledger_stream(offset)
        ),
        format!(
            "insert into public.workflow_queue_projection
                 (id, stream_id, stream_type, event_id, event_type, workflow_type, task_queue,
                  workflow_id, started_event_type, status, worker_id, workflow_run_id, attempts,
                  lease_expires_at, available_at, error_message, created_at, updated_at,
                  claimed_at, completed_at, failed_at, attempts_before_retry)
             select job_id, id, '{ORGANIZATION_STREAM}', initiated_id, '{ORGANIZATION_BOOTSTRAP_INITIATED}',
                    workflow_type, task_queue, workflow_id, started_event_type, 'completed',
                    '{WORKER_ID}', {RUN_ID}, 1, null, {pending}, null, {pending}, {completed},
                    {claimed}, {completed}, null, 0
             from bench_history_jobs",
            pending = job_event_at(2),
            claimed = job_event_at(3),
            completed = job_event_at(5),
        ),
        format!(
            "insert into public.organizations_projection
                 (id, name, subdomain, plan, status, subdomain_metadata, bootstrap_status,
                  bootstrap_error, created_at, updated_at, deactivated_at)
             select id, o ->> 'name', o ->> 'subdomain', o ->> 'plan', 'active', {dns}, 'completed',
                    null, {}, {}, null
             from (select *, {organization} as o from bench_history_jobs) j",
            job_event_at(6),
            job_event_at(10),
        ),
        format!(
            "insert into public.invitations_projection
                 (id, organization_id, email, name, role, status, invited_at, email_sent_at,
                  revoked_at, revoke_reason, updated_at)
             select inv, id, i ->> 'email', i ->> 'name', coalesce(i ->> 'role', 'admin'), 'sent',
                    {}, {sent}, null, null, {sent}
             from (select *, {invitation} as i from bench_history_jobs) j",
            job_event_at(8),
            sent = job_event_at(9),
        ),
    ]
}

/// Refuses a route the generated rows would not match: the slow path's claim would find no
/// job of a paused route, and a route without a started event appends no version 4.
async fn check_route(db: &tokio_postgres::Client) -> Result<(), BenchError> {
    let rows = db
        .query_typed(
            "select started_event_type is not null and not paused
             from osp_metadata.workflow_routes where event_type = $1 and enabled",
            &[(&ORGANIZATION_BOOTSTRAP_INITIATED, Type::TEXT)],
        )
        .await?;
    match rows.first().map(|row| row.get::<_, bool>(0)) {
        Some(true) => Ok(()),
        _ => Err(BenchError::Failed(format!(
            "history: the route of {ORGANIZATION_BOOTSTRAP_INITIATED} must be enabled, not paused, with a started event type"
        ))),
    }
}

/// Loads `jobs` finished bootstrap jobs and `extra` plain events into `db`, in one
/// transaction. `db` must be a superuser's session: `session_replication_role = replica`
/// switches the row triggers off (the guards of migration 0006 and the apply triggers,
/// whose work the statements do set-based); `SET LOCAL` ends with the transaction, so the
/// session measures with every trigger on.
pub async fn fast(
    db: &mut tokio_postgres::Client,
    jobs: i64,
    extra: i64,
) -> Result<Timings, BenchError> {
    check_route(db).await?;
    let ordinals = jobs * EVENTS_PER_JOB as i64 + extra + 1;
    let transaction = db.transaction().await?;
    transaction
        .batch_execute("set local session_replication_role = replica")
        .await?;
    let start: String = transaction
        .query_typed(
            "select (clock_timestamp() - interval '1 microsecond' * $1::int8)::text",
            &[(&ordinals, Type::INT8)],
        )
        .await?
        .first()
        .map(|row| row.get(0))
        .unwrap_or_default();
    let params: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 3] = [
        (&start, Type::TEXT),
        (&jobs, Type::INT8),
        (&extra, Type::INT8),
    ];
    let mut timings = Timings::default();
    let clock = Instant::now();
    let [create, fill] = jobs_table();
    transaction.batch_execute(&create).await?;
    transaction.execute_typed(&fill, &params[..2]).await?;
    transaction
        .batch_execute("analyze bench_history_jobs")
        .await?;
    for (version, sql) in job_event_statements().iter().enumerate() {
        transaction.execute_typed(sql, &params[..2]).await?;
        progress!(
            "history: version {} of {jobs} job streams loaded ({:.0} s)",
            version + 1,
            clock.elapsed().as_secs_f64()
        );
    }
    timings.events_seconds = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    if extra > 0 {
        transaction
            .execute_typed(&extra_statement(), &params)
            .await?;
    }
    timings.extra_seconds = clock.elapsed().as_secs_f64();
    let clock = Instant::now();
    for sql in projection_statements() {
        transaction.execute_typed(&sql, &params).await?;
    }
    transaction.commit().await?;
    timings.projections_seconds = clock.elapsed().as_secs_f64();
    Ok(timings)
}

/// The history loaded through the schema's functions, as the scenario loaded it before the
/// fast path: the reference the fast path is compared with.
#[cfg(test)]
pub mod slow {
    use super::*;

    /// One statement per activity event type over the streams `n` in `$1..=$2`, each
    /// through `api.emit_domain_event`'s aggregate shape, as the activities call it.
    pub(super) fn activity_statements() -> Vec<String> {
        steps()
            .iter()
            .map(|step| {
                format!(
                    "select count(api.emit_domain_event('{}'::text, '{ORGANIZATION_STREAM}'::text, id, {}, {}))
                     from (select n, {STREAM_ID} as id, {INVITATION} as inv
                           from generate_series($1::int8, $2::int8) n) s",
                    step.event_type,
                    step.data,
                    step.metadata()
                )
            })
            .collect()
    }

    /// Routed bootstrap requests on streams `$1..=$2`: each enqueues a job.
    fn initiated_statement() -> String {
        format!(
            "select count(api.emit_domain_event(id, '{ORGANIZATION_STREAM}'::text, '{ORGANIZATION_BOOTSTRAP_INITIATED}'::text,
                     {}, '{{}}'::jsonb))
             from (select n, {STREAM_ID} as id from generate_series($1::int8, $2::int8) n) s",
            initiated_data()
        )
    }

    /// Claims up to 1,000 pending jobs and completes each, as the bridge does once Temporal
    /// acknowledged the start: `(claimed, completed)`.
    fn settle_batch() -> String {
        format!(
            "select count(*), count(*) filter (where ok)
             from (select api.complete_workflow_job(c.job_id, '{WORKER_ID}', c.attempts, c.workflow_id,
                                                    'history-' || c.stream_id::text) as ok
                   from api.claim_workflow_jobs('{WORKER_ID}', 1000, interval '1 hour') c) x"
        )
    }

    /// Plain keyed events `k` in `$1..$2` (exclusive) on streams numbered after the jobs'
    /// (offset `$3`).
    fn extra_statement() -> String {
        let offset = "$3::int8";
        let [data, metadata] = ledger_data(offset);
        format!(
            "select count(api.emit_domain_event({}, 'ledger'::text, 'ledger.entry.recorded'::text,
                                                {data}, {metadata}))
             from generate_series($1::int8, $2::int8 - 1) k",
            ledger_stream(offset)
        )
    }

    /// Loads like [`fast`], through the functions, `chunk` streams per statement.
    pub async fn load(
        db: &tokio_postgres::Client,
        jobs: i64,
        extra: i64,
        chunk: i64,
    ) -> Result<(), BenchError> {
        let (initiated, settle, activities) =
            (initiated_statement(), settle_batch(), activity_statements());
        let mut from = 1_i64;
        while from <= jobs {
            let to = (from + chunk - 1).min(jobs);
            let range: [(&(dyn tokio_postgres::types::ToSql + Sync), Type); 2] =
                [(&from, Type::INT8), (&to, Type::INT8)];
            db.query_typed(&initiated, &range).await?;
            loop {
                let row = db.query_typed(&settle, &[]).await?;
                let (claimed, completed): (i64, i64) =
                    row.first().map_or((0, 0), |r| (r.get(0), r.get(1)));
                if claimed != completed {
                    return Err(BenchError::Failed(format!(
                        "history: {completed} of {claimed} claimed jobs completed"
                    )));
                }
                if claimed == 0 {
                    break;
                }
            }
            for sql in &activities {
                db.query_typed(sql, &range).await?;
            }
            from = to + 1;
        }
        let step = chunk * EVENTS_PER_EXTRA_STREAM as i64;
        let mut k = 0_i64;
        while k < extra {
            let end = (k + step).min(extra);
            // Streams after the jobs' own, so no number names two streams.
            let offset = jobs + 1;
            db.query_typed(
                &extra_statement(),
                &[(&k, Type::INT8), (&end, Type::INT8), (&offset, Type::INT8)],
            )
            .await?;
            k = end;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashMap};

    use serde_json::Value;
    use tokio_postgres::Client;

    use super::super::prepare;
    use super::*;

    /// Small enough to load through the functions in a second; 23 plain events leave the last
    /// plain stream short. The slow path's chunks of 20 take three rounds of claims.
    const JOBS: i64 = 50;
    const EXTRA: i64 = 23;
    const CHUNK: i64 = 20;

    #[tokio::test]
    async fn the_fast_load_writes_what_the_schemas_functions_write() {
        let postgres = osp_stack::Postgres::start().await.unwrap();
        let reference = prepare(&postgres, "history_slow").await.unwrap();
        let mut generated = prepare(&postgres, "history_fast").await.unwrap();
        slow::load(&reference, JOBS, EXTRA, CHUNK).await.unwrap();
        fast(&mut generated, JOBS, EXTRA).await.unwrap();
        let role: String = generated
            .query_one("show session_replication_role", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(
            role, "origin",
            "the loader's session must measure with its triggers on"
        );
        // What the measurements do next, through the functions and their triggers, on both.
        for db in [&reference, &generated] {
            follow_up(db).await;
        }

        let (expected, actual) = (snapshot(&reference).await, snapshot(&generated).await);
        let follow_up_events = 5;
        assert_eq!(
            expected["public.domain_events"].len() as i64,
            JOBS * EVENTS_PER_JOB as i64 + EXTRA + follow_up_events,
            "the reference holds the planned history"
        );
        assert_eq!(
            expected.keys().collect::<Vec<_>>(),
            actual.keys().collect::<Vec<_>>()
        );
        for (table, rows) in &expected {
            let generated_rows = &actual[table];
            let missing: Vec<_> = rows
                .iter()
                .filter(|r| !generated_rows.contains(*r))
                .take(3)
                .collect();
            let extra: Vec<_> = generated_rows
                .iter()
                .filter(|r| !rows.contains(*r))
                .take(3)
                .collect();
            assert!(
                rows == generated_rows,
                "{table}: {} rows through the functions, {} generated\nonly through the functions: {missing:#?}\nonly generated: {extra:#?}",
                rows.len(),
                generated_rows.len()
            );
        }
    }

    /// A new bootstrap request, its claim and settlement, and a retried activity emit of a
    /// loaded stream (its key exists: nothing is appended).
    async fn follow_up(db: &Client) {
        let stream = "md5('osp-bench-history-follow-up')::uuid";
        db.batch_execute(&format!(
            "select api.emit_domain_event(id, '{ORGANIZATION_STREAM}', '{ORGANIZATION_BOOTSTRAP_INITIATED}',
                                          {}, '{{}}'::jsonb)
             from (select 0 as n, {stream} as id) s",
            initiated_data()
        ))
        .await
        .unwrap();
        let settled: bool = db
            .query_one(
                &format!(
                    "select api.complete_workflow_job(job_id, '{WORKER_ID}', attempts, workflow_id, 'follow-up')
                     from api.claim_workflow_jobs('{WORKER_ID}', 10, interval '1 hour')"
                ),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        assert!(settled);
        let retry = &slow::activity_statements()[0];
        let one = 1_i64;
        db.query_typed(retry, &[(&one, Type::INT8), (&one, Type::INT8)])
            .await
            .unwrap();
    }

    /// Every table's rows as JSON, sorted, with what differs between two loads by design
    /// replaced: an event id (random) by the event's stream and version, wherever it
    /// appears; an event's `created_at` by the same; any other timestamp (a `now()`) by a
    /// placeholder.
    async fn snapshot(db: &Client) -> BTreeMap<String, Vec<String>> {
        let mut labels = HashMap::new();
        let events = db
            .query(
                "select id::text, stream_id::text, stream_version, to_jsonb(created_at) #>> '{}'
                 from public.domain_events",
                &[],
            )
            .await
            .unwrap();
        for row in events {
            let (id, stream, version, at): (String, String, i32, String) =
                (row.get(0), row.get(1), row.get(2), row.get(3));
            labels.insert(id, format!("event {stream} v{version}"));
            let earlier = labels.insert(
                at.clone(),
                format!("created_at of event {stream} v{version}"),
            );
            assert!(earlier.is_none(), "two events created at {at}");
        }
        let tables = db
            .query(
                "select format('%I.%I', n.nspname, c.relname)
                 from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
                 where c.relkind in ('r', 'p')
                   and n.nspname not in ('pg_catalog', 'information_schema')
                   and n.nspname !~ '^pg_(toast|temp)'",
                &[],
            )
            .await
            .unwrap();
        let mut snapshot = BTreeMap::new();
        for table in tables {
            let table: String = table.get(0);
            let mut rows: Vec<String> = db
                .query(&format!("select to_jsonb(t) from {table} t"), &[])
                .await
                .unwrap()
                .iter()
                .map(|row| {
                    let mut value: Value = row.get(0);
                    relabel(&mut value, &labels);
                    value.to_string()
                })
                .collect();
            rows.sort();
            snapshot.insert(table, rows);
        }
        snapshot
    }

    fn relabel(value: &mut Value, labels: &HashMap<String, String>) {
        match value {
            Value::String(text) => {
                if let Some(label) = labels.get(text.as_str()) {
                    label.clone_into(text);
                } else if looks_like_timestamp(text) {
                    "<timestamp>".clone_into(text);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|item| relabel(item, labels)),
            Value::Object(map) => map.values_mut().for_each(|item| relabel(item, labels)),
            _ => {}
        }
    }

    /// `2026-12-01T13:45:00.123456+00:00`, as `to_jsonb` writes a `timestamptz`.
    fn looks_like_timestamp(text: &str) -> bool {
        let bytes = text.as_bytes();
        bytes.len() >= 25
            && bytes.iter().take(19).enumerate().all(|(i, b)| match i {
                4 | 7 => *b == b'-',
                10 => *b == b'T',
                13 | 16 => *b == b':',
                _ => b.is_ascii_digit(),
            })
    }

    #[test]
    fn timestamps_are_recognised() {
        assert!(looks_like_timestamp("2026-12-01T13:45:00.123456+00:00"));
        assert!(looks_like_timestamp("2026-12-01T13:45:00+00:00"));
        assert!(!looks_like_timestamp("history-2026-12-01T13:45:00"));
        assert!(!looks_like_timestamp("org-bootstrap-5f0c"));
    }
}
