-- OSP routes for any workflow, and the queue operated without SQL.
--
-- A route can carry a JSON Schema for the routed event's data, which the bridge checks before
-- it starts the workflow, and can name the input field that the event's stream id fills when
-- the data leaves it out. The seeded bootstrap route gets both: OrganizationBootstrapInput's
-- schema and `organization_id`. The claim returns them with each job, read in the same
-- statement as the route's status.
--
-- An operator retries a failed job (`api.retry_workflow_job`, through a
-- `workflow.queue.retried` event, so the projection still changes only in its apply trigger)
-- and pauses or resumes a route (`api.set_workflow_route_paused`). A paused route still
-- enqueues its events but its jobs are not claimed: they wait, pending, and none fails. (A
-- disabled route, `enabled = false`, routes nothing at all: its events are stored as plain
-- events.)

alter table osp_metadata.workflow_routes
    -- A JSON Schema (draft 2020-12 unless it says otherwise with $schema) for event_data.
    -- Remote references are not resolved: a schema is one self-contained document.
    add column input_schema jsonb,
    -- A top-level field of the workflow's input that holds the stream id: filled in from
    -- the stream when event_data leaves it out; any other value fails the job.
    add column stream_id_field text,
    -- Paused: events are enqueued, jobs are not claimed until it is resumed.
    add column paused boolean not null default false,
    add constraint workflow_routes_input_schema_shape
        check (input_schema is null
               or (jsonb_typeof(input_schema) in ('object', 'boolean')
                   and octet_length(input_schema::text) <= 65536)),
    add constraint workflow_routes_stream_id_field_format
        check (stream_id_field is null or stream_id_field ~ '^[A-Za-z_][A-Za-z0-9_]{0,62}$');

comment on column osp_metadata.workflow_routes.input_schema is
    'JSON Schema of the routed event''s data, checked by the bridge before the start (at most 64 KiB, no remote $ref).';
comment on column osp_metadata.workflow_routes.stream_id_field is
    'Input field filled with the event''s stream id when event_data leaves it out; a different value fails the job.';

-- The bootstrap's schema mirrors OrganizationBootstrapInput (osp-core payloads.rs) as far as
-- JSON Schema can say it; the workflow's own validation still runs first thing in the
-- workflow (distinct emails, display-name characters). A route someone already gave a
-- schema keeps it.
update osp_metadata.workflow_routes
set stream_id_field = coalesce(stream_id_field, 'organization_id'),
    input_schema = coalesce(input_schema, $schema$
{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "OrganizationBootstrapInput",
  "type": "object",
  "additionalProperties": false,
  "required": ["organization_id", "name", "subdomain", "admin_users"],
  "properties": {
    "organization_id": {"type": "string", "format": "uuid",
                        "not": {"const": "00000000-0000-0000-0000-000000000000"}},
    "name": {"type": "string", "maxLength": 200, "pattern": "\\S"},
    "subdomain": {"type": "string", "minLength": 1, "maxLength": 63,
                  "pattern": "^[a-z0-9]([a-z0-9-]*[a-z0-9])?$"},
    "admin_users": {
      "type": "array", "minItems": 1, "maxItems": 100,
      "items": {
        "type": "object",
        "additionalProperties": false,
        "required": ["email"],
        "properties": {
          "email": {"type": "string", "format": "email", "maxLength": 254},
          "name": {"type": ["string", "null"], "maxLength": 200}
        }
      }
    },
    "plan": {"type": ["string", "null"], "maxLength": 100, "pattern": "\\S"}
  }
}
$schema$::jsonb),
    updated_at = now()
where event_type = 'organization.bootstrap.initiated'
  and workflow_type = 'organizationBootstrapWorkflow';

-- Claims made before the job's last retry by an operator: the route's attempt cap counts
-- the claims after it, while `attempts` keeps counting every claim (it fences settlements,
-- so it never goes back).
alter table public.workflow_queue_projection
    add column attempts_before_retry integer not null default 0;

-- The claim returns the route's schema and stream-id field beside its status. Its result
-- type changes, so the function is dropped and created again, with its grants and settings.
drop function api.claim_workflow_jobs(text, integer, interval);

create function api.claim_workflow_jobs(p_worker_id text, p_batch integer, p_lease interval)
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
    -- 'enabled', 'disabled', 'paused', or 'missing' when the event type has no route any more.
    route_status text,
    route_input_schema jsonb,
    route_stream_id_field text
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
                          where r.event_type = q.event_type and (not r.enabled or r.paused))
        order by q.available_at, q.id
        limit p_batch
        for update of q, s skip locked
    ), expired as (
        select q.id, q.lease_expires_at as claimable_at
        from public.workflow_queue_projection q
        join osp_metadata.streams s on s.stream_id = q.stream_id
        where q.status = 'processing' and q.lease_expires_at <= now()
          and not exists (select 1 from osp_metadata.workflow_routes r
                          where r.event_type = q.event_type and (not r.enabled or r.paused))
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
        if v_job.attempts - v_job.attempts_before_retry >= v_max_attempts then
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
                   when not r.enabled then 'disabled'
                   when r.paused then 'paused'
                   else 'enabled'
               end,
               r.input_schema, r.stream_id_field
        from public.workflow_queue_projection q
        join public.domain_events e on e.id = q.event_id
        left join osp_metadata.workflow_routes r on r.event_type = q.event_type
        where q.id = any(v_claimed)
        order by q.created_at, q.id;
end
$$;

alter function api.claim_workflow_jobs(text, integer, interval) set lock_timeout = '5s';
revoke all on function api.claim_workflow_jobs(text, integer, interval) from public, anon, authenticated;
grant execute on function api.claim_workflow_jobs(text, integer, interval) to service_role;

------------------------------------------------------------------------------------------
-- Operating the queue
------------------------------------------------------------------------------------------

-- The queue's apply trigger, restated with one more event: workflow.queue.retried.
create or replace function osp_metadata.apply_workflow_queue_event() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_previous text := coalesce(current_setting('osp.projection_writer', true), '');
    v_job uuid;
begin
    perform set_config('osp.projection_writer', 'on', true);
    if new.event_type = 'workflow.queue.pending' then
        insert into public.workflow_queue_projection (
            id, stream_id, stream_type, event_id, event_type, workflow_type, task_queue,
            workflow_id, started_event_type, status, available_at, error_message,
            created_at, updated_at)
        values (
            new.id, new.stream_id, new.stream_type,
            osp_metadata.event_field(new, 'event_id')::uuid,
            osp_metadata.event_field(new, 'event_type'),
            osp_metadata.event_field(new, 'workflow_type'),
            osp_metadata.event_field(new, 'task_queue'),
            new.event_data ->> 'workflow_id',
            new.event_data ->> 'started_event_type',
            'pending', new.created_at, new.event_data ->> 'enqueue_error',
            new.created_at, new.created_at);
        perform pg_notify('osp_workflow_queue', new.id::text);
    else
        v_job := osp_metadata.event_field(new, 'job_id')::uuid;
        if new.event_type = 'workflow.queue.claimed' then
            update public.workflow_queue_projection
            set status = 'processing',
                worker_id = osp_metadata.event_field(new, 'worker_id'),
                attempts = attempts + 1,
                lease_expires_at = osp_metadata.event_field(new, 'lease_expires_at')::timestamptz,
                claimed_at = new.created_at,
                updated_at = new.created_at
            where id = v_job;
        elsif new.event_type = 'workflow.queue.completed' then
            update public.workflow_queue_projection
            set status = 'completed',
                workflow_id = coalesce(new.event_data ->> 'workflow_id', workflow_id),
                workflow_run_id = new.event_data ->> 'workflow_run_id',
                lease_expires_at = null,
                error_message = null,
                completed_at = new.created_at,
                updated_at = new.created_at
            where id = v_job;
        elsif new.event_type = 'workflow.queue.failed' then
            -- A failed attempt that may be retried carries retry_at: the job is pending
            -- again from then on. Without it the job has failed for good.
            update public.workflow_queue_projection
            set status = case when new.event_data ? 'retry_at' then 'pending' else 'failed' end,
                available_at = coalesce((new.event_data ->> 'retry_at')::timestamptz, available_at),
                worker_id = case when new.event_data ? 'retry_at' then null else worker_id end,
                lease_expires_at = null,
                error_message = osp_metadata.event_field(new, 'error_message'),
                failed_at = case when new.event_data ? 'retry_at' then failed_at else new.created_at end,
                updated_at = new.created_at
            where id = v_job;
        elsif new.event_type = 'workflow.queue.retried' then
            -- An operator's retry of a failed job: due now, with a fresh attempt budget.
            update public.workflow_queue_projection
            set status = 'pending',
                available_at = new.created_at,
                worker_id = null,
                lease_expires_at = null,
                attempts_before_retry = attempts,
                error_message = null,
                failed_at = null,
                updated_at = new.created_at
            where id = v_job;
            perform pg_notify('osp_workflow_queue', v_job::text);
        else
            raise exception 'unknown workflow queue event type %', new.event_type
                using errcode = '22023';
        end if;
        if not found then
            raise exception '% event %: no workflow job %', new.event_type, new.id, v_job
                using errcode = '23503';
        end if;
    end if;
    perform set_config('osp.projection_writer', v_previous, true);
    return null;
end
$$;

-- Retries a job that failed for good: appends workflow.queue.retried on its stream (the
-- apply trigger makes it pending and due now, with the route's whole attempt budget again)
-- and returns the job's id. Only a failed job can be retried: a pending or processing job is
-- still on its way and a completed one has started its workflow.
create function api.retry_workflow_job(p_job_id uuid, p_reason text default null)
returns uuid
language plpgsql
security definer
set search_path = ''
set lock_timeout = '5s'
as $$
declare
    v_job public.workflow_queue_projection;
begin
    select * into v_job
    from public.workflow_queue_projection q
    where q.id = p_job_id
    for update;
    if not found then
        raise exception 'api.retry_workflow_job: no workflow job %', p_job_id
            using errcode = 'P0002';
    end if;
    if v_job.status <> 'failed' then
        raise exception 'api.retry_workflow_job: job % is %; only a failed job can be retried',
                        p_job_id, v_job.status
            using errcode = '55000';
    end if;
    if p_reason is not null and length(p_reason) > 1000 then
        raise exception 'api.retry_workflow_job: p_reason must be at most 1000 characters, not %',
                        length(p_reason)
            using errcode = '22023';
    end if;
    perform osp_metadata.append_domain_event(
        v_job.stream_id,
        v_job.stream_type,
        'workflow.queue.retried',
        jsonb_strip_nulls(jsonb_build_object(
            'job_id', v_job.id,
            'previous_error', v_job.error_message,
            'attempts', v_job.attempts,
            'reason', p_reason)),
        osp_metadata.workflow_job_metadata(v_job),
        'p_job_id',
        'p_job_id');
    return v_job.id;
end
$$;

-- Pauses (true) or resumes (false) a route; returns whether it was paused before. A paused
-- route's events are still enqueued; its jobs are not claimed and stay pending. Resuming
-- makes them due again and wakes the bridges (workflow_routes_resumed).
create function api.set_workflow_route_paused(p_event_type text, p_paused boolean)
returns boolean
language plpgsql
security definer
set search_path = ''
set lock_timeout = '5s'
as $$
declare
    v_before boolean;
begin
    if p_paused is null then
        raise exception 'api.set_workflow_route_paused: p_paused must be true or false'
            using errcode = '22023';
    end if;
    select r.paused into v_before
    from osp_metadata.workflow_routes r
    where r.event_type = p_event_type
    for update;
    if not found then
        raise exception 'api.set_workflow_route_paused: no route for event type %', p_event_type
            using errcode = 'P0002';
    end if;
    if v_before is distinct from p_paused then
        update osp_metadata.workflow_routes
        set paused = p_paused, updated_at = now()
        where event_type = p_event_type;
    end if;
    return v_before;
end
$$;

create trigger workflow_routes_resumed
    after update of paused on osp_metadata.workflow_routes
    for each row
    when (old.paused and not new.paused)
    execute function osp_metadata.notify_route_enabled();

revoke all on function api.retry_workflow_job(uuid, text) from public, anon, authenticated;
revoke all on function api.set_workflow_route_paused(text, boolean) from public, anon, authenticated;
grant execute on function api.retry_workflow_job(uuid, text) to service_role;
grant execute on function api.set_workflow_route_paused(text, boolean) to service_role;
