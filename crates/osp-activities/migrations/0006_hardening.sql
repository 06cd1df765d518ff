-- OSP hardening: the platform's event types can no longer be emitted by callers; the tables
-- carry exactly the privileges the API roles need (Supabase grants ALL by default); TRUNCATE,
-- direct inserts into the event store and direct projection writes are refused for every role;
-- the idempotency lookup uses its index; lock waits are bounded; a job has a cap on attempts
-- whatever brings it back to a claim; routes cannot loop; a disabled route holds its jobs.
-- Functions are restated with CREATE OR REPLACE and their 0001-0005 signatures, so their
-- owners and grants survive.

------------------------------------------------------------------------------------------
-- Reserved event types
------------------------------------------------------------------------------------------

-- The event types only the platform's own functions append. workflow.queue.* events move
-- jobs through the queue projection: a forged completed event ends a job without a workflow,
-- a forged claimed event with an infinite lease pins it, a forged pending event makes a job
-- that is claimed every lease period for ever.
create function osp_metadata.is_reserved_event_type(p_event_type text)
returns boolean
language sql
immutable
set search_path = ''
as $$
    select p_event_type operator(pg_catalog.~) '^workflow\.queue\.';
$$;

create function osp_metadata.refuse_reserved_event_type(p_event_type text)
returns void
language plpgsql
stable
set search_path = ''
as $$
begin
    if osp_metadata.is_reserved_event_type(p_event_type) then
        raise exception 'api.emit_domain_event: event type "%" is reserved for the platform: workflow.queue.* events are appended only by its queue functions',
            p_event_type
            using errcode = '42501',
                  hint = 'emit an event of your own; a route in osp_metadata.workflow_routes turns it into a job';
    end if;
end
$$;

-- Same signature, defaults and result as in 0001; now refuses reserved types, and waits for
-- the stream's row lock at most 25 s (longer than the bridge's longest workflow start, 20 s,
-- during which it holds the stream), failing with lock_not_available (55P03), which callers
-- retry, instead of waiting without limit.
create or replace function api.emit_domain_event(
    p_stream_id uuid,
    p_stream_type text,
    p_event_type text,
    p_event_data jsonb,
    p_event_metadata jsonb default '{}'::jsonb
) returns uuid
language plpgsql
security definer
set search_path = ''
set lock_timeout = '25s'
as $$
begin
    perform osp_metadata.refuse_reserved_event_type(p_event_type);
    return osp_metadata.append_domain_event(
        p_stream_id, p_stream_type, p_event_type, p_event_data, p_event_metadata,
        'p_stream_id', 'p_stream_type');
end
$$;

create or replace function api.emit_domain_event(
    p_event_type text,
    p_aggregate_type text,
    p_aggregate_id uuid,
    p_event_data jsonb,
    p_event_metadata jsonb default '{}'::jsonb
) returns uuid
language plpgsql
security definer
set search_path = ''
set lock_timeout = '25s'
as $$
begin
    perform osp_metadata.refuse_reserved_event_type(p_event_type);
    return osp_metadata.append_domain_event(
        p_aggregate_id, p_aggregate_type, p_event_type, p_event_data, p_event_metadata,
        'p_aggregate_id', 'p_aggregate_type');
end
$$;

------------------------------------------------------------------------------------------
-- The append: an index-backed idempotency lookup
------------------------------------------------------------------------------------------

-- As in 0001 but for the idempotency lookup, which now repeats the partial index's
-- predicate (event_metadata ? 'idempotency_key'): without it the planner cannot prove the
-- index applies, and every keyed emit read the whole table under the stream's row lock.
create or replace function osp_metadata.append_domain_event(
    p_stream_id uuid,
    p_stream_type text,
    p_event_type text,
    p_event_data jsonb,
    p_event_metadata jsonb,
    p_id_param text,
    p_type_param text
) returns uuid
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_metadata jsonb := coalesce(p_event_metadata, '{}'::jsonb);
    v_stream_type text;
    v_version integer;
    v_existing public.domain_events;
    v_id uuid;
begin
    if p_stream_id is null then
        raise exception 'api.emit_domain_event: % must not be null', p_id_param
            using errcode = '22004';
    end if;
    if p_stream_type is null or btrim(p_stream_type) = '' then
        raise exception 'api.emit_domain_event: % must not be empty', p_type_param
            using errcode = '22023';
    end if;
    if p_event_type is null or p_event_type = '' then
        raise exception 'api.emit_domain_event: p_event_type must not be empty'
            using errcode = '22023';
    end if;
    if p_event_type !~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$' or length(p_event_type) > 200 then
        raise exception 'api.emit_domain_event: p_event_type "%" is not an event type', p_event_type
            using errcode = '22023',
                  hint = 'use lowercase dot-separated words, e.g. organization.created';
    end if;
    if p_event_data is null or jsonb_typeof(p_event_data) <> 'object' then
        raise exception 'api.emit_domain_event: p_event_data must be a JSON object, not %',
            coalesce(jsonb_typeof(p_event_data), 'null')
            using errcode = '22023';
    end if;
    if jsonb_typeof(v_metadata) <> 'object' then
        raise exception 'api.emit_domain_event: p_event_metadata must be a JSON object, not %',
            jsonb_typeof(v_metadata)
            using errcode = '22023';
    end if;

    insert into osp_metadata.streams (stream_id, stream_type)
    values (p_stream_id, p_stream_type)
    on conflict (stream_id) do nothing;
    select stream_type into v_stream_type
    from osp_metadata.streams
    where stream_id = p_stream_id
    for update;
    if v_stream_type <> p_stream_type then
        raise exception 'api.emit_domain_event: stream % is of type "%", not "%"',
            p_stream_id, v_stream_type, p_stream_type
            using errcode = '22023';
    end if;

    -- Under the stream lock, so a concurrent duplicate on this stream has committed by now.
    -- Both conditions are needed: the first is the index's predicate, the second its key.
    if v_metadata ? 'idempotency_key' then
        select * into v_existing
        from public.domain_events
        where event_metadata ? 'idempotency_key'
          and event_metadata ->> 'idempotency_key' = v_metadata ->> 'idempotency_key';
        if found then
            if v_existing.stream_id <> p_stream_id or v_existing.event_type <> p_event_type then
                raise exception 'api.emit_domain_event: idempotency key "%" already belongs to event % (% on stream %)',
                    v_metadata ->> 'idempotency_key', v_existing.id, v_existing.event_type,
                    v_existing.stream_id
                    using errcode = '23505';
            end if;
            return v_existing.id;
        end if;
    end if;

    update osp_metadata.streams
    set version = version + 1, updated_at = now()
    where stream_id = p_stream_id
    returning version into v_version;

    insert into public.domain_events
        (stream_id, stream_type, stream_version, event_type, event_data, event_metadata)
    values
        (p_stream_id, p_stream_type, v_version, p_event_type, p_event_data, v_metadata)
    returning id into v_id;
    return v_id;
end
$$;

------------------------------------------------------------------------------------------
-- Guards no role can switch off from outside
------------------------------------------------------------------------------------------

-- Why these guards are sound. The tables' owner (the role that runs the migrations) is the
-- only role with write privileges on the event store and the projections (privileges below),
-- and every platform function that writes them is SECURITY DEFINER owned by that role, so
-- inside them current_user is the owner. A trigger function that is not SECURITY DEFINER
-- sees the current_user of the statement that fired it, so:
-- - a row appended by append_domain_event is inserted as the owner; any other role's INSERT
--   fails its privilege check before any trigger runs;
-- - a projection row written by an apply trigger is written as the owner from inside a
--   trigger on domain_events, so its guard runs at pg_trigger_depth() 2 or more; any other
--   role fails its privilege check, and the owner writing directly runs the guard at depth 1.
-- Neither condition can be set from outside the way a GUC (osp.projection_writer, which any
-- role may SET) could. What the owner can do through SQL of its own (drop or disable a
-- trigger, set session_replication_role as a superuser) is outside any guard's reach; the
-- owner is the administrator. The one obligation this leaves: no SECURITY DEFINER function
-- owned by the owner may write a projection except from an event-applying trigger.

-- Before each insert into domain_events: the row must come from append_domain_event, i.e. be
-- inserted as the owner, with the version the stream's counter (updated just before, under
-- its row lock) gives it. A row with a future version would make every later append on its
-- stream collide with it; even the owner cannot insert one by hand.
create function osp_metadata.refuse_direct_domain_event_insert() returns trigger
language plpgsql
set search_path = ''
as $$
declare
    v_version integer;
begin
    -- The table's owner, read from the catalog only: the guard may run as any role.
    if current_user <> (select pg_catalog.pg_get_userbyid(c.relowner)
                        from pg_catalog.pg_class c where c.oid = tg_relid) then
        raise exception 'public.domain_events is appended only through api.emit_domain_event, not by % directly',
            current_user
            using errcode = '42501',
                  hint = 'emit the event with api.emit_domain_event';
    end if;
    select s.version into v_version from osp_metadata.streams s where s.stream_id = new.stream_id;
    if v_version is distinct from new.stream_version then
        raise exception 'public.domain_events is appended only through api.emit_domain_event: stream % is at version %, an event with version % cannot be inserted',
            new.stream_id, coalesce(v_version::text, 'none (no such stream)'), new.stream_version
            using errcode = '42501',
                  hint = 'emit the event with api.emit_domain_event, which assigns the next version';
    end if;
    return new;
end
$$;

create trigger domain_events_appended_by_the_platform
    before insert on public.domain_events
    for each row execute function osp_metadata.refuse_direct_domain_event_insert();

-- Replaces 0002's guard, which trusted a setting any role can SET. Same name and signature,
-- so the guard triggers of every projection use it at once. The apply functions still set
-- osp.projection_writer; nothing reads it any more.
create or replace function osp_metadata.refuse_direct_projection_write() returns trigger
language plpgsql
set search_path = ''
as $$
begin
    if pg_catalog.pg_trigger_depth() < 2
       or current_user <> (select pg_catalog.pg_get_userbyid(c.relowner)
                           from pg_catalog.pg_class c where c.oid = tg_relid) then
        raise exception '%.% is a projection and changes only through domain events',
            tg_table_schema, tg_table_name
            using errcode = '42501',
                  hint = 'emit an event with api.emit_domain_event; its trigger updates the projection';
    end if;
    if tg_op = 'DELETE' then
        return old;
    end if;
    return new;
end
$$;

-- TRUNCATE fires no row trigger, so the append-only and projection guards never saw it.
create function osp_metadata.refuse_truncate() returns trigger
language plpgsql
set search_path = ''
as $$
begin
    raise exception '%.% cannot be truncated: events are append-only and projections change only through domain events',
        tg_table_schema, tg_table_name
        using errcode = '55000';
end
$$;

create trigger domain_events_no_truncate
    before truncate on public.domain_events
    for each statement execute function osp_metadata.refuse_truncate();
create trigger streams_no_truncate
    before truncate on osp_metadata.streams
    for each statement execute function osp_metadata.refuse_truncate();
create trigger workflow_queue_projection_no_truncate
    before truncate on public.workflow_queue_projection
    for each statement execute function osp_metadata.refuse_truncate();
create trigger organizations_projection_no_truncate
    before truncate on public.organizations_projection
    for each statement execute function osp_metadata.refuse_truncate();
create trigger invitations_projection_no_truncate
    before truncate on public.invitations_projection
    for each statement execute function osp_metadata.refuse_truncate();

------------------------------------------------------------------------------------------
-- Privileges: revoke everything, grant what each role needs
------------------------------------------------------------------------------------------

-- Supabase's default privileges give anon, authenticated and service_role ALL on every new
-- table, sequence and function in public, and 0001-0003 only ever granted. From here on
-- service_role reads everything, and writes only the tables it writes by design: routes
-- (any service may add its own), services (createEntity) and the worker registry (the
-- deployer). anon and authenticated get nothing: OSP has no client-facing tables.
revoke all on table
    public.domain_events,
    public.workflow_queue_projection,
    public.organizations_projection,
    public.invitations_projection,
    public.services,
    osp_metadata.streams,
    osp_metadata.workflow_routes,
    osp_metadata.worker_registry,
    osp_metadata.schema_migrations
from public, anon, authenticated, service_role;
revoke all on all sequences in schema api, osp_metadata from public, anon, authenticated, service_role;

grant select on
    public.domain_events,
    public.workflow_queue_projection,
    public.organizations_projection,
    public.invitations_projection,
    osp_metadata.streams
to service_role;
grant select, insert, update, delete on
    osp_metadata.workflow_routes,
    public.services,
    osp_metadata.worker_registry
to service_role;

------------------------------------------------------------------------------------------
-- Routes: no loops, an attempt cap, a wake-up on enabling
------------------------------------------------------------------------------------------

alter table osp_metadata.workflow_routes
    -- How many claims a job of this route gets before it fails for good, whatever brought
    -- it back (an expired lease, a retry, a release). The bridge's own max_attempts applies
    -- to Temporal outages; this one holds for every path. 10 is the bridge's default too.
    add column max_attempts integer not null default 10,
    add constraint workflow_routes_max_attempts_range check (max_attempts between 1 and 1000),
    -- The started event is appended by the platform's own complete function, so a reserved
    -- type there would forge the queue.
    add constraint workflow_routes_started_event_not_reserved
        check (started_event_type is null or started_event_type !~ '^workflow\.queue\.'),
    -- A route whose started event is its own event enqueues itself for ever.
    add constraint workflow_routes_started_event_not_routed
        check (started_event_type is distinct from event_type);

-- The same rule across routes: a route's started event may not be routed, so a started
-- event never enqueues a job (no loop, however long). Route writers are serialised by an
-- advisory lock, so two concurrent writers cannot each miss the other's row (each query of a
-- plpgsql function in READ COMMITTED sees what committed before it).
create function osp_metadata.refuse_looping_route() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_other osp_metadata.workflow_routes;
begin
    perform pg_catalog.pg_advisory_xact_lock(pg_catalog.hashtext('osp_metadata.workflow_routes'));
    if new.started_event_type is not null then
        select * into v_other
        from osp_metadata.workflow_routes r
        where r.event_type = new.started_event_type
          and (tg_op = 'INSERT' or r.event_type <> old.event_type);
        if found then
            raise exception 'route %: its started event type % is routed (to %), so each start would enqueue another job',
                new.event_type, new.started_event_type, v_other.workflow_type
                using errcode = '23514',
                      hint = 'name a started event type that no route routes, or none';
        end if;
    end if;
    select * into v_other
    from osp_metadata.workflow_routes r
    where r.started_event_type = new.event_type
      and (tg_op = 'INSERT' or r.event_type <> old.event_type);
    if found then
        raise exception 'route %: % is the started event of the route for %, so each of its starts would enqueue another job',
            new.event_type, new.event_type, v_other.event_type
            using errcode = '23514',
                  hint = 'route a different event type';
    end if;
    return new;
end
$$;

create trigger workflow_routes_no_loops
    before insert or update of event_type, started_event_type on osp_metadata.workflow_routes
    for each row execute function osp_metadata.refuse_looping_route();

do $$
declare
    v_looping text;
begin
    select string_agg(r.event_type, ', ' order by r.event_type) into v_looping
    from osp_metadata.workflow_routes r
    join osp_metadata.workflow_routes s on s.event_type = r.started_event_type;
    if v_looping is not null then
        raise exception 'routes % have a routed started event type and would enqueue jobs for ever; fix them before migrating',
            v_looping
            using errcode = '23514';
    end if;
end
$$;

-- A disabled route's jobs wait, pending; when it is enabled again they are due at once, so
-- the bridge is told (the notification is a hint like every other; the sweep finds them too).
create function osp_metadata.notify_route_enabled() returns trigger
language plpgsql
set search_path = ''
as $$
begin
    perform pg_catalog.pg_notify('osp_workflow_queue', 'route:' || new.event_type);
    return null;
end
$$;

create trigger workflow_routes_enabled
    after update of enabled on osp_metadata.workflow_routes
    for each row
    when (new.enabled and not old.enabled)
    execute function osp_metadata.notify_route_enabled();

------------------------------------------------------------------------------------------
-- The claim: disabled routes wait, exhausted jobs fail
------------------------------------------------------------------------------------------

-- A job that has used up its route's attempts: fails for good through a workflow.queue.failed
-- event, whose error_message tells each attempt's story from the job's own queue events.
create function osp_metadata.fail_exhausted_workflow_job(
    p_job public.workflow_queue_projection,
    p_worker_id text,
    p_max_attempts integer
) returns void
language plpgsql
set search_path = ''
as $$
declare
    v_history text;
begin
    select string_agg(
               format('attempt %s by %s: %s',
                      c.event_data ->> 'attempt', c.event_data ->> 'worker_id',
                      coalesce(f.event_data ->> 'error_message',
                               'lease expired at ' || (c.event_data ->> 'lease_expires_at')
                               || ' with no outcome recorded')),
               '; ' order by c.stream_version)
    into v_history
    from public.domain_events c
    left join lateral (
        select f.event_data
        from public.domain_events f
        where f.stream_id = c.stream_id
          and f.stream_version > c.stream_version
          and f.event_type = 'workflow.queue.failed'
          and f.event_data ->> 'job_id' = c.event_data ->> 'job_id'
          and f.event_data ->> 'attempt' = c.event_data ->> 'attempt'
        order by f.stream_version
        limit 1
    ) f on true
    where c.stream_id = p_job.stream_id
      and c.event_type = 'workflow.queue.claimed'
      and c.event_data ->> 'job_id' = p_job.id::text;
    perform osp_metadata.append_domain_event(
        p_job.stream_id,
        p_job.stream_type,
        'workflow.queue.failed',
        jsonb_build_object(
            'job_id', p_job.id,
            'worker_id', p_worker_id,
            'attempt', p_job.attempts,
            'max_attempts', p_max_attempts,
            -- A message is for people; a runaway one is cut rather than stored whole.
            'error_message', left(format('gave up after %s attempts (the limit is %s): %s',
                                         p_job.attempts, p_max_attempts,
                                         coalesce(v_history, 'no attempt recorded')), 2000)),
        osp_metadata.workflow_job_metadata(p_job),
        'p_stream_id',
        'p_stream_type');
end
$$;

-- Same signature, result and selection order as in 0005 (so its grants stay). Two changes:
-- jobs of a disabled route are not selected (they stay as they are until it is enabled,
-- rather than being claimed and failed for good), and a selected job that has used up its
-- route's max_attempts is failed instead of claimed, whatever brought it back (an expired
-- lease, a retry, a release), so no job is claimed without bound.
create or replace function api.claim_workflow_jobs(p_worker_id text, p_batch integer, p_lease interval)
returns table (
    job_id uuid,
    stream_id uuid,
    stream_type text,
    event_id uuid,
    event_type text,
    event_data jsonb,
    event_created_at timestamptz,
    workflow_type text,
    task_queue text,
    workflow_id text,
    started_event_type text,
    attempts integer,
    lease_expires_at timestamptz,
    enqueue_error text,
    -- 'enabled', 'disabled', or 'missing' when the event type has no route any more.
    route_status text
)
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
    v_ids uuid[];
    v_claimed uuid[] := '{}';
    v_job public.workflow_queue_projection;
    v_lease timestamptz;
    v_max_attempts integer;
begin
    if p_worker_id is null or btrim(p_worker_id) = '' then
        raise exception 'api.claim_workflow_jobs: p_worker_id must not be empty'
            using errcode = '22023';
    end if;
    if p_batch is null or p_batch < 1 or p_batch > 1000 then
        raise exception 'api.claim_workflow_jobs: p_batch must be 1 to 1000, not %', p_batch
            using errcode = '22023';
    end if;
    if p_lease is null or p_lease <= interval '0' then
        raise exception 'api.claim_workflow_jobs: p_lease must be positive, not %', p_lease
            using errcode = '22023';
    end if;

    with due as (
        select q.id, q.available_at as claimable_at
        from public.workflow_queue_projection q
        join osp_metadata.streams s on s.stream_id = q.stream_id
        where q.status = 'pending' and q.available_at <= now()
          and not exists (select 1 from osp_metadata.workflow_routes r
                          where r.event_type = q.event_type and not r.enabled)
        order by q.available_at, q.id
        limit p_batch
        for update of q, s skip locked
    ), expired as (
        select q.id, q.lease_expires_at as claimable_at
        from public.workflow_queue_projection q
        join osp_metadata.streams s on s.stream_id = q.stream_id
        where q.status = 'processing' and q.lease_expires_at <= now()
          and not exists (select 1 from osp_metadata.workflow_routes r
                          where r.event_type = q.event_type and not r.enabled)
        order by q.lease_expires_at, q.id
        limit p_batch
        for update of q, s skip locked
    )
    select array_agg(c.id) into v_ids
    from (
        select d.id, d.claimable_at from due d
        union all
        select e.id, e.claimable_at from expired e
        order by 2, 1
        limit p_batch
    ) c;
    if v_ids is null then
        return;
    end if;

    v_lease := now() + p_lease;
    for v_job in
        select *
        from public.workflow_queue_projection q
        where q.id = any(v_ids)
        order by q.stream_id, q.created_at, q.id
    loop
        -- A job whose route was removed keeps the default cap; the bridge fails it anyway.
        v_max_attempts := coalesce(
            (select r.max_attempts from osp_metadata.workflow_routes r
             where r.event_type = v_job.event_type),
            10);
        if v_job.attempts >= v_max_attempts then
            perform osp_metadata.fail_exhausted_workflow_job(v_job, p_worker_id, v_max_attempts);
            continue;
        end if;
        perform osp_metadata.append_domain_event(
            v_job.stream_id,
            v_job.stream_type,
            'workflow.queue.claimed',
            jsonb_build_object(
                'job_id', v_job.id,
                'worker_id', p_worker_id,
                'lease_expires_at', v_lease,
                'attempt', v_job.attempts + 1),
            osp_metadata.workflow_job_metadata(v_job),
            'p_stream_id',
            'p_stream_type');
        v_claimed := v_claimed || v_job.id;
    end loop;

    return query
        select q.id, q.stream_id, q.stream_type, q.event_id, q.event_type, e.event_data,
               e.created_at, q.workflow_type, q.task_queue, q.workflow_id,
               q.started_event_type, q.attempts, q.lease_expires_at, q.error_message,
               case
                   when r.event_type is null then 'missing'
                   when r.enabled then 'enabled'
                   else 'disabled'
               end
        from public.workflow_queue_projection q
        join public.domain_events e on e.id = q.event_id
        left join osp_metadata.workflow_routes r on r.event_type = q.event_type
        where q.id = any(v_claimed)
        order by q.created_at, q.id;
end
$$;

------------------------------------------------------------------------------------------
-- Bounded lock waits
------------------------------------------------------------------------------------------

-- The bridge's functions wait for a job's and a stream's row locks (a writer of the stream,
-- another bridge's start) at most 5 s, then fail with lock_not_available (55P03), which the
-- bridge retries while its lease lasts. A function's SET clause holds for its own run, so it
-- works through a transaction-mode pooler (no session state). statement_timeout cannot be
-- set this way (it is armed when the statement starts); the bridge sets it for its hold
-- transaction itself.
alter function api.claim_workflow_jobs(text, integer, interval) set lock_timeout = '5s';
alter function api.hold_workflow_job(uuid, text, integer) set lock_timeout = '5s';
alter function api.complete_workflow_job(uuid, text, integer, text, text, boolean) set lock_timeout = '5s';
alter function api.fail_workflow_job(uuid, text, integer, text, interval) set lock_timeout = '5s';
alter function api.release_workflow_job(uuid, text, integer, text) set lock_timeout = '5s';

-- Internal functions: callable only by the owner (and so by the SECURITY DEFINER functions).
revoke all on function osp_metadata.is_reserved_event_type(text) from public;
revoke all on function osp_metadata.refuse_reserved_event_type(text) from public;
revoke all on function osp_metadata.fail_exhausted_workflow_job(public.workflow_queue_projection, text, integer) from public;
