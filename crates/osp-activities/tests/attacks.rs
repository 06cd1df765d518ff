//! The schema under attack, in a database shaped like a Supabase project (its roles and
//! default privileges, applied before the migrations): as each of `anon`, `authenticated`
//! and `service_role` (through `set role`, as PostgREST and Supabase's pooler do), and as the
//! owner where a guard must hold even for it, every forgery and direct write we know of is
//! tried. Each attempt must be refused with a clear error (SQLSTATE and message) and must
//! change nothing. The tests named `point_N_...` are the hardening issue's points.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]
#![expect(
    clippy::print_stdout,
    reason = "each refusal is printed, so `--nocapture` shows the whole attack report"
)]

use std::time::Duration;

use osp_activities::migrate;
use osp_activities::queries::EVENT_WITH_IDEMPOTENCY_KEY;
use osp_core::events::{ORGANIZATION_BOOTSTRAP_INITIATED, ORGANIZATION_STREAM};
use osp_testkit::Postgres;
use serde_json::{Value, json};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

/// The three API roles a Supabase project has.
const API_ROLES: [&str; 3] = ["anon", "authenticated", "service_role"];

/// Every table of ours, for the truncate and fingerprint checks.
const TABLES: [&str; 8] = [
    "public.domain_events",
    "public.workflow_queue_projection",
    "public.organizations_projection",
    "public.invitations_projection",
    "public.services",
    "osp_metadata.streams",
    "osp_metadata.workflow_routes",
    "osp_metadata.worker_registry",
];

/// The tables only event-applying triggers write.
const PROJECTIONS: [&str; 3] = [
    "public.workflow_queue_projection",
    "public.organizations_projection",
    "public.invitations_projection",
];

async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A fresh Supabase-shaped server with the schema applied, a superuser client on it (the
/// role that ran the migrations, so the owner of everything), and seeded state: one pending
/// bootstrap job, one claimed job, one organization with an invitation.
struct Target {
    postgres: Postgres,
    owner: Client,
    /// A job claimed by worker `w1`, attempt 1.
    claimed_job: Uuid,
    claimed_stream: Uuid,
    /// A job still pending.
    pending_job: Uuid,
    pending_stream: Uuid,
    /// An organization with one invitation.
    organization: Uuid,
}

impl Target {
    async fn start() -> Target {
        let postgres = Postgres::start().await.unwrap();
        postgres.apply_supabase_roles("postgres").await.unwrap();
        let mut owner = connect(&postgres.url("postgres")).await;
        migrate(&mut owner).await.unwrap();

        let claimed_stream = Uuid::new_v4();
        emit(
            &owner,
            claimed_stream,
            ORGANIZATION_BOOTSTRAP_INITIATED,
            &bootstrap(claimed_stream),
        )
        .await;
        let claimed_job: Uuid = owner
            .query_one(
                "select job_id from api.claim_workflow_jobs('w1', 10, interval '1 hour')",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        let pending_stream = Uuid::new_v4();
        emit(
            &owner,
            pending_stream,
            ORGANIZATION_BOOTSTRAP_INITIATED,
            &bootstrap(pending_stream),
        )
        .await;
        let pending_job: Uuid = owner
            .query_one(
                "select id from workflow_queue_projection where stream_id = $1",
                &[&pending_stream],
            )
            .await
            .unwrap()
            .get(0);
        let organization = Uuid::new_v4();
        emit(
            &owner,
            organization,
            "organization.created",
            &json!({"name": "Acme", "subdomain": "acme"}),
        )
        .await;
        emit(
            &owner,
            organization,
            "user.invited",
            &json!({"invitation_id": Uuid::new_v4(), "email": "a@acme.io"}),
        )
        .await;
        Target {
            postgres,
            owner,
            claimed_job,
            claimed_stream,
            pending_job,
            pending_stream,
            organization,
        }
    }

    /// A second connection as the owner (for holding locks while another session waits).
    async fn another_owner(&self) -> Client {
        connect(&self.postgres.url("postgres")).await
    }

    /// Every row of every table of ours, as text: equal fingerprints mean nothing changed.
    async fn fingerprint(&self) -> Vec<(String, i64, String)> {
        let mut all = Vec::new();
        for table in TABLES {
            let row = self
                .owner
                .query_one(
                    &format!(
                        "select count(*), md5(coalesce(string_agg(t::text, '|' order by t::text), ''))
                         from {table} t"
                    ),
                    &[],
                )
                .await
                .unwrap();
            all.push((table.to_owned(), row.get(0), row.get(1)));
        }
        all
    }

    /// Runs `sql` as `role` (`None`: as the owner) and says how it went; the session is the
    /// owner's again afterwards.
    async fn run_as(&self, role: Option<&str>, sql: &str) -> Result<(), tokio_postgres::Error> {
        if let Some(role) = role {
            self.owner
                .batch_execute(&format!("set role {role}"))
                .await
                .unwrap();
        }
        let result = self.owner.batch_execute(sql).await;
        // A failed statement inside an explicit transaction leaves it aborted.
        self.owner
            .batch_execute("rollback; reset role; reset all")
            .await
            .unwrap();
        result
    }

    /// Asserts that `sql`, run as `role`, is refused with one of `codes` and a message
    /// containing one of `words`, and that no table changed. Returns what was refused, for
    /// the report.
    async fn refused(
        &self,
        role: Option<&str>,
        sql: &str,
        codes: &[SqlState],
        words: &[&str],
    ) -> String {
        let before = self.fingerprint().await;
        let result = self.run_as(role, sql).await;
        let after = self.fingerprint().await;
        let who = role.unwrap_or("owner");
        let error = match result {
            Ok(()) => panic!("{who}: `{sql}` was accepted; it must be refused"),
            Err(error) => error,
        };
        let db = error
            .as_db_error()
            .unwrap_or_else(|| panic!("{who}: `{sql}`: {error}"));
        assert!(
            codes.contains(db.code()),
            "{who}: `{sql}`: SQLSTATE {} ({}), expected one of {:?}",
            db.code().code(),
            db.message(),
            codes.iter().map(SqlState::code).collect::<Vec<_>>()
        );
        assert!(
            words.iter().any(|word| db.message().contains(word)),
            "{who}: `{sql}`: message {:?} says none of {words:?}",
            db.message()
        );
        assert_eq!(
            before, after,
            "{who}: `{sql}` was refused but changed a table"
        );
        let line = format!("{who}: {sql} -> {} {}", db.code().code(), db.message());
        println!("{line}");
        line
    }

    async fn job(&self, job: Uuid) -> (String, i32, Option<String>) {
        let row = self
            .owner
            .query_one(
                "select status, attempts, error_message from workflow_queue_projection where id = $1",
                &[&job],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1), row.get(2))
    }
}

fn bootstrap(organization: Uuid) -> Value {
    json!({
        "organization_id": organization,
        "name": "Acme",
        "subdomain": "acme",
        "admin_users": [{"email": "admin@acme.io"}]
    })
}

async fn emit(client: &Client, stream: Uuid, event_type: &str, data: &Value) -> Uuid {
    client
        .query_one(
            "select api.emit_domain_event($1::uuid, $2::text, $3::text, $4::jsonb)",
            &[&stream, &ORGANIZATION_STREAM, &event_type, data],
        )
        .await
        .unwrap()
        .get(0)
}

/// Denied by a privilege: on the table or function itself, or on its schema.
const DENIED: &[SqlState] = &[SqlState::INSUFFICIENT_PRIVILEGE];
const DENIED_WORDS: &[&str] = &["permission denied"];

#[tokio::test]
async fn point_1_queue_events_cannot_be_forged_through_emit() {
    let target = Target::start().await;
    let job = target.claimed_job;
    let stream = target.claimed_stream;
    let pending = target.pending_job;
    let pending_stream = target.pending_stream;
    let forgeries = [
        // Marks another job completed with no workflow started.
        (
            stream,
            "workflow.queue.completed",
            json!({"job_id": job, "workflow_id": "x", "workflow_run_id": "y"}),
        ),
        // Pins a job in processing for ever.
        (
            pending_stream,
            "workflow.queue.claimed",
            json!({"job_id": pending, "worker_id": "evil", "lease_expires_at": "infinity"}),
        ),
        // A job for an event that does not exist, claimed every lease period for ever.
        (
            stream,
            "workflow.queue.pending",
            json!({"event_id": Uuid::new_v4(), "event_type": "organization.bootstrap.initiated",
            "workflow_type": "organizationBootstrapWorkflow", "task_queue": "osp-queue"}),
        ),
        (
            stream,
            "workflow.queue.failed",
            json!({"job_id": job, "error_message": "forged"}),
        ),
        // A queue event type the platform does not even have.
        (stream, "workflow.queue.anything", json!({})),
    ];
    for (stream, event_type, data) in &forgeries {
        let data = data.to_string().replace('\'', "''");
        for sql in [
            format!(
                "select api.emit_domain_event('{stream}'::uuid, 'organization', '{event_type}', '{data}'::jsonb)"
            ),
            format!(
                "select api.emit_domain_event(p_event_type => '{event_type}', p_aggregate_type => 'organization',
                     p_aggregate_id => '{stream}'::uuid, p_event_data => '{data}'::jsonb)"
            ),
        ] {
            // The one API role allowed to emit, and the owner: the platform's types are
            // refused by the function itself.
            for role in [Some("service_role"), None] {
                target
                    .refused(role, &sql, DENIED, &["is reserved for the platform"])
                    .await;
            }
            // The others may not emit at all.
            for role in ["anon", "authenticated"] {
                target.refused(Some(role), &sql, DENIED, DENIED_WORDS).await;
            }
        }
    }
    assert_eq!(target.job(job).await.0, "processing");
    assert_eq!(target.job(pending).await.0, "pending");
    // The platform's own functions still append them.
    let completed: bool = target
        .owner
        .query_one(
            "select api.complete_workflow_job($1, 'w1', 1, 'wf', 'run')",
            &[&job],
        )
        .await
        .unwrap()
        .get(0);
    assert!(completed);
    assert_eq!(target.job(job).await.0, "completed");
}

#[tokio::test]
async fn point_2_no_role_can_truncate_or_write_the_tables_directly() {
    let target = Target::start().await;
    for role in API_ROLES {
        for table in TABLES {
            target
                .refused(
                    Some(role),
                    &format!("truncate {table} cascade"),
                    DENIED,
                    DENIED_WORDS,
                )
                .await;
        }
        target
            .refused(
                Some(role),
                "insert into public.domain_events (stream_id, stream_type, stream_version, event_type, event_data)
                 values (gen_random_uuid(), 'organization', 1, 'organization.created', '{\"name\": \"x\", \"subdomain\": \"x\"}')",
                DENIED,
                DENIED_WORDS,
            )
            .await;
        target
            .refused(
                Some(role),
                "update public.domain_events set event_data = '{}'",
                DENIED,
                DENIED_WORDS,
            )
            .await;
        target
            .refused(
                Some(role),
                "delete from public.domain_events",
                DENIED,
                DENIED_WORDS,
            )
            .await;
        target
            .refused(
                Some(role),
                "update osp_metadata.streams set version = version + 10",
                DENIED,
                DENIED_WORDS,
            )
            .await;
        for projection in PROJECTIONS {
            target
                .refused(
                    Some(role),
                    &format!("delete from {projection}"),
                    DENIED,
                    DENIED_WORDS,
                )
                .await;
            target
                .refused(
                    Some(role),
                    &format!("update {projection} set updated_at = now()"),
                    DENIED,
                    DENIED_WORDS,
                )
                .await;
            target
                .refused(
                    Some(role),
                    &format!("insert into {projection} select * from {projection}"),
                    DENIED,
                    DENIED_WORDS,
                )
                .await;
        }
        if role != "service_role" {
            // service_role writes these by design (createEntity, the deployer, routes).
            for table in [
                "public.services",
                "osp_metadata.worker_registry",
                "osp_metadata.workflow_routes",
            ] {
                target
                    .refused(
                        Some(role),
                        &format!("delete from {table}"),
                        DENIED,
                        DENIED_WORDS,
                    )
                    .await;
            }
        }
    }
    // Even the owner, which holds every privilege, cannot empty the event store or a
    // projection: TRUNCATE skips the row triggers, so a statement trigger refuses it.
    for table in [
        "public.domain_events",
        "osp_metadata.streams",
        "public.workflow_queue_projection",
        "public.organizations_projection, public.invitations_projection",
    ] {
        target
            .refused(
                None,
                &format!("truncate {table}"),
                &[SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE],
                &["cannot be truncated"],
            )
            .await;
    }
}

#[tokio::test]
async fn point_2_no_role_can_hijack_a_stream_with_a_future_version() {
    let target = Target::start().await;
    let stream = target.organization;
    let insert = format!(
        "insert into public.domain_events (stream_id, stream_type, stream_version, event_type, event_data)
         values ('{stream}', 'organization', 1000, 'organization.deactivated', '{{}}')"
    );
    // service_role first: it bypasses RLS, so only a privilege (or the guard) stops it.
    for role in ["service_role", "anon", "authenticated"] {
        target
            .refused(Some(role), &insert, DENIED, DENIED_WORDS)
            .await;
    }
    // The owner passes the privilege check, so the guard trigger speaks.
    target
        .refused(
            None,
            &insert,
            DENIED,
            &["appended only through api.emit_domain_event"],
        )
        .await;
    // The stream still takes events.
    emit(
        &target.owner,
        stream,
        "organization.deactivated",
        &json!({}),
    )
    .await;
}

#[tokio::test]
async fn point_2_the_projection_writer_setting_switches_nothing_on() {
    let target = Target::start().await;
    for projection in PROJECTIONS {
        let sql =
            format!("set osp.projection_writer = 'on'; update {projection} set updated_at = now()");
        for role in API_ROLES {
            target.refused(Some(role), &sql, DENIED, DENIED_WORDS).await;
        }
        target
            .refused(None, &sql, DENIED, &["changes only through domain events"])
            .await;
        // In a transaction, with the setting local, after a trigger ran.
        let sql = format!(
            "begin;
             select set_config('osp.projection_writer', 'on', true);
             select api.emit_domain_event(gen_random_uuid(), 'note', 'note.added', '{{}}'::jsonb);
             delete from {projection};
             commit;"
        );
        target
            .refused(None, &sql, DENIED, &["changes only through domain events"])
            .await;
    }
    assert_eq!(target.job(target.claimed_job).await.0, "processing");
}

#[tokio::test]
async fn the_api_roles_get_exactly_the_privileges_they_need() {
    let target = Target::start().await;
    // Every table, view and sequence in our schemas (and every one in public, which holds
    // only ours here), with what each API role may do to it.
    let rows = target
        .owner
        .query(
            "select n.nspname || '.' || c.relname, r.rolname,
                    array_to_string(array(
                        select p from unnest(array['SELECT', 'INSERT', 'UPDATE', 'DELETE',
                                                   'TRUNCATE', 'REFERENCES', 'TRIGGER']) p
                        where case when c.relkind = 'S'
                                   then p = 'SELECT' and has_sequence_privilege(r.rolname, c.oid, 'SELECT')
                                   else has_table_privilege(r.rolname, c.oid, p) end), ',')
             from pg_class c
             join pg_namespace n on n.oid = c.relnamespace
             cross join (select rolname from pg_roles
                         where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')) r
             where n.nspname in ('public', 'api', 'osp_metadata') and c.relkind in ('r', 'p', 'v', 'm', 'S')
             order by 1, 2",
            &[],
        )
        .await
        .unwrap();
    let mut unexpected = Vec::new();
    for row in rows {
        let (table, role, privileges): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        let expected = match (role.as_str(), table.as_str()) {
            (
                "service_role",
                "public.services" | "osp_metadata.worker_registry" | "osp_metadata.workflow_routes",
            ) => "SELECT,INSERT,UPDATE,DELETE",
            ("service_role", "osp_metadata.schema_migrations") => "",
            ("service_role", _) => "SELECT",
            _ => "",
        };
        if privileges != expected {
            unexpected.push(format!(
                "{role} on {table}: {privileges:?}, expected {expected:?}"
            ));
        }
    }
    assert!(unexpected.is_empty(), "{unexpected:#?}");
}

#[tokio::test]
async fn the_bridge_functions_and_the_platform_internals_are_refused_to_the_api_roles() {
    let target = Target::start().await;
    let job = target.claimed_job;
    let bridge_calls = [
        "select * from api.claim_workflow_jobs('evil', 10, interval '100 years')".to_owned(),
        format!("select api.hold_workflow_job('{job}', 'w1', 1)"),
        format!("select api.complete_workflow_job('{job}', 'w1', 1, 'wf', 'run')"),
        format!("select api.fail_workflow_job('{job}', 'w1', 1, 'forged')"),
        format!("select api.release_workflow_job('{job}', 'w1', 1, 'forged')"),
        "select * from api.workflow_queue_depth()".to_owned(),
    ];
    for role in ["anon", "authenticated"] {
        for sql in &bridge_calls {
            target.refused(Some(role), sql, DENIED, DENIED_WORDS).await;
        }
    }
    let internals = [
        format!(
            "select osp_metadata.append_domain_event('{job}', 'organization', 'workflow.queue.completed',
                 '{{\"job_id\": \"{job}\"}}', '{{}}', 'a', 'b')"
        ),
        format!("select osp_metadata.lock_claimed_workflow_job('{job}', 'w1', 1)"),
        // Holding a stream's row lock would block every writer of the stream.
        "select * from osp_metadata.streams for update".to_owned(),
        "begin; lock table public.domain_events in exclusive mode; commit".to_owned(),
        "begin; lock table osp_metadata.streams in share mode; commit".to_owned(),
        // Switching triggers off would switch every guard off.
        "set session_replication_role = replica".to_owned(),
        "alter table public.domain_events disable trigger domain_events_append_only".to_owned(),
        "drop trigger workflow_queue_projection_guard on public.workflow_queue_projection".to_owned(),
        "create table public.evil (id int)".to_owned(),
        "create function api.evil() returns int language sql as 'select 1'".to_owned(),
        "alter function api.emit_domain_event(uuid, text, text, jsonb, jsonb) security invoker".to_owned(),
    ];
    for role in API_ROLES {
        for sql in &internals {
            target
                .refused(
                    Some(role),
                    sql,
                    DENIED,
                    &["permission denied", "must be owner"],
                )
                .await;
        }
    }
    assert_eq!(target.job(job).await, ("processing".to_owned(), 1, None));
}

#[tokio::test]
async fn point_3_the_idempotency_lookups_use_the_index() {
    let target = Target::start().await;
    let client = &target.owner;
    // Enough keyed events that reading the table costs far more than a probe of the index.
    client
        .batch_execute(
            "select api.emit_domain_event(gen_random_uuid(), 'ledger', 'ledger.entry.added', '{}'::jsonb,
                                          jsonb_build_object('idempotency_key', 'key-' || n))
             from generate_series(1, 3000) n;
             analyze public.domain_events;",
        )
        .await
        .unwrap();

    // The activities' own lookup (`already_emitted`), as they send it.
    let plan = explain(client, EVENT_WITH_IDEMPOTENCY_KEY, "key-17").await;
    assert!(plan.contains("domain_events_idempotency_key"), "{plan}");
    assert!(!plan.contains("Seq Scan"), "{plan}");

    // The emit's lookup, inside api.emit_domain_event: a repeated emit with a known key must
    // probe the index and never read the table. Counted by the statistics system, which
    // publishes this session's counters when told to.
    let stream: Uuid = client
        .query_one(
            "select stream_id from domain_events where event_metadata ->> 'idempotency_key' = 'key-17'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let before = table_scans(client).await;
    client
        .query_one(
            "select api.emit_domain_event('ledger.entry.added'::text, 'ledger'::text, $1::uuid, '{}'::jsonb,
                                          '{\"idempotency_key\": \"key-17\"}'::jsonb)",
            &[&stream],
        )
        .await
        .unwrap();
    let after = table_scans(client).await;
    assert_eq!(
        after.0, before.0,
        "sequential scans of domain_events: {before:?} -> {after:?}"
    );
    assert!(
        after.1 > before.1,
        "no index scan of domain_events: {before:?} -> {after:?}"
    );
}

/// (sequential scans, index scans) of public.domain_events so far, this session's included.
async fn table_scans(client: &Client) -> (i64, i64) {
    client
        .batch_execute("select pg_stat_force_next_flush()")
        .await
        .unwrap();
    // The flush happens when the session goes idle after the statement above.
    client
        .batch_execute("select pg_stat_clear_snapshot()")
        .await
        .unwrap();
    let row = client
        .query_one(
            "select seq_scan, coalesce(idx_scan, 0) from pg_stat_user_tables
             where relid = 'public.domain_events'::regclass",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

async fn explain(client: &Client, sql: &str, key: &str) -> String {
    client
        .query_typed(&format!("explain {sql}"), &[(&key, Type::TEXT)])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn point_4_lock_waits_end_in_a_retryable_lock_timeout() {
    let target = Target::start().await;
    let job = target.claimed_job;
    let stream = target.claimed_stream;
    // Another session holds the job's stream, as a writer that never commits would.
    let holder = target.another_owner().await;
    holder
        .batch_execute(&format!(
            "begin; select 1 from osp_metadata.streams where stream_id = '{stream}' for update"
        ))
        .await
        .unwrap();
    for (role, sql) in [
        (
            "service_role",
            format!("select api.hold_workflow_job('{job}', 'w1', 1)"),
        ),
        (
            "service_role",
            format!(
                "select api.emit_domain_event('{stream}'::uuid, 'organization', 'note.added', '{{}}'::jsonb)"
            ),
        ),
    ] {
        let started = std::time::Instant::now();
        let outcome = tokio::time::timeout(
            Duration::from_secs(60),
            target.refused(
                Some(role),
                &sql,
                &[SqlState::LOCK_NOT_AVAILABLE],
                &["lock timeout"],
            ),
        )
        .await;
        assert!(
            outcome.is_ok(),
            "`{sql}` still waiting after 60 s: no lock timeout"
        );
        println!("{sql}: refused after {:?}", started.elapsed());
        let (_, retry) = osp_activities::errors::classify_sqlstate(&SqlState::LOCK_NOT_AVAILABLE);
        assert_eq!(retry, osp_activities::errors::Retry::Yes);
    }
    holder.batch_execute("rollback").await.unwrap();
}

#[tokio::test]
async fn point_5_every_way_back_to_a_claim_counts_against_the_attempt_cap() {
    let target = Target::start().await;
    let client = &target.owner;
    // Lease expiry: a bridge that claims and dies, again and again.
    let job = target.pending_job;
    let mut claims = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (status, _, _) = target.job(job).await;
        if status == "failed" || claims > 40 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "job {job} still {status} after {claims} claims"
        );
        let rows = client
            .query(
                "select job_id from api.claim_workflow_jobs('dies', 10, interval '1 millisecond')
                 where job_id = $1",
                &[&job],
            )
            .await
            .unwrap();
        claims += rows.len();
    }
    let (status, attempts, message) = target.job(job).await;
    assert_eq!(
        (status.as_str(), attempts, claims),
        ("failed", 10, 10),
        "{message:?}"
    );
    let message = message.unwrap();
    assert!(
        message.starts_with("gave up after 10 attempts"),
        "{message}"
    );
    assert!(
        message.contains("attempt 1 by dies: lease expired"),
        "{message}"
    );
    assert!(
        message.contains("attempt 10 by dies: lease expired"),
        "{message}"
    );
    // Failed through an event, like every projection change.
    let failed: i64 = client
        .query_one(
            "select count(*) from domain_events where event_type = 'workflow.queue.failed'
             and event_data ->> 'job_id' = $1",
            &[&job.to_string()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(failed, 1);

    // Releases and retries: a bridge that gives the job back every time.
    let job = target.claimed_job;
    let mut attempt = 1;
    loop {
        let released: bool = client
            .query_one(
                "select api.release_workflow_job($1, 'w1', $2, 'shutting down')",
                &[&job, &attempt],
            )
            .await
            .unwrap()
            .get(0);
        assert!(released);
        let rows = client
            .query(
                "select attempts from api.claim_workflow_jobs('w1', 10, interval '1 hour') where job_id = $1",
                &[&job],
            )
            .await
            .unwrap();
        match rows.first() {
            Some(row) => attempt = row.get(0),
            None => break,
        }
        assert!(attempt <= 10, "claimed a {attempt}th time");
    }
    let (status, attempts, message) = target.job(job).await;
    assert_eq!((status.as_str(), attempts), ("failed", 10), "{message:?}");
    assert!(message.unwrap().contains("attempt 10 by w1: shutting down"));
}

#[tokio::test]
async fn point_6_routes_that_would_enqueue_forever_are_refused() {
    let target = Target::start().await;
    let check = &[SqlState::CHECK_VIOLATION, SqlState::INVALID_PARAMETER_VALUE];
    for role in [Some("service_role"), None] {
        // Its started event is itself.
        target
            .refused(
                role,
                "insert into osp_metadata.workflow_routes (event_type, workflow_type, workflow_id_template, started_event_type)
                 values ('loop.thing.happened', 'w', 'loop-{event_id}', 'loop.thing.happened')",
                check,
                &["workflow_routes_started_event_not_routed", "enqueue"],
            )
            .await;
        // Its started event is another route's event.
        target
            .refused(
                role,
                "insert into osp_metadata.workflow_routes (event_type, workflow_type, workflow_id_template, started_event_type)
                 values ('chain.thing.happened', 'w', 'chain-{event_id}', 'organization.bootstrap.initiated')",
                check,
                &["is routed", "workflow_routes_started_event_not_routed"],
            )
            .await;
        // Its event is another route's started event.
        target
            .refused(
                role,
                "insert into osp_metadata.workflow_routes (event_type, workflow_type, workflow_id_template)
                 values ('organization.bootstrap.workflow_started', 'w', 'again-{event_id}')",
                check,
                &["is the started event"],
            )
            .await;
        // A started event of the platform's own (it would forge the queue).
        target
            .refused(
                role,
                "insert into osp_metadata.workflow_routes (event_type, workflow_type, workflow_id_template, started_event_type)
                 values ('forge.thing.happened', 'w', 'forge-{event_id}', 'workflow.queue.completed')",
                check,
                &["workflow_routes_started_event_not_reserved", "reserved"],
            )
            .await;
        // Routing the platform's own events.
        target
            .refused(
                role,
                "insert into osp_metadata.workflow_routes (event_type, workflow_type, workflow_id_template)
                 values ('workflow.queue.pending', 'w', 'x-{event_id}')",
                check,
                &["workflow_routes_not_queue_events"],
            )
            .await;
        // Turning an existing route into a loop.
        target
            .refused(
                role,
                "update osp_metadata.workflow_routes set started_event_type = event_type",
                check,
                &["workflow_routes_started_event_not_routed", "enqueue"],
            )
            .await;
    }
}

#[tokio::test]
async fn point_7_a_disabled_routes_jobs_stay_pending_and_run_when_it_is_enabled() {
    let target = Target::start().await;
    let client = &target.owner;
    client
        .batch_execute(
            "insert into osp_metadata.workflow_routes (event_type, workflow_type, workflow_id_template)
             values ('test.paused.happened', 'thingWorkflow', 'paused-{stream_id}')",
        )
        .await
        .unwrap();
    let stream = Uuid::new_v4();
    emit(client, stream, "test.paused.happened", &json!({})).await;
    let job: Uuid = client
        .query_one(
            "select id from workflow_queue_projection where stream_id = $1",
            &[&stream],
        )
        .await
        .unwrap()
        .get(0);
    client
        .batch_execute("update osp_metadata.workflow_routes set enabled = false where event_type = 'test.paused.happened'")
        .await
        .unwrap();
    let claimed = |lease: &'static str| async move {
        client
            .query(
                &format!("select job_id, route_status from api.claim_workflow_jobs('w', 1000, interval '{lease}')"),
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| (row.get::<_, Uuid>(0), row.get::<_, String>(1)))
            .filter(|(id, _)| *id == job)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        claimed("1 hour").await,
        [],
        "a disabled route's job was claimed"
    );
    assert_eq!(target.job(job).await, ("pending".to_owned(), 0, None));
    client
        .batch_execute("update osp_metadata.workflow_routes set enabled = true where event_type = 'test.paused.happened'")
        .await
        .unwrap();
    assert_eq!(claimed("1 hour").await, [(job, "enabled".to_owned())]);
    assert_eq!(target.job(job).await.0, "processing");
}
