-- OSP queue statements whose cost no longer grows with the queue, and two helpers PostgreSQL no
-- longer parses and plans in every transaction. Found by profiling the bridge's statements
-- (issue 16); the queue_sql test "an emit, a claim and a settlement read no table whole"
-- failed before this migration.
--
-- api.claim_workflow_jobs (0007) kept the jobs of a disabled or paused route waiting with a
-- NOT EXISTS on the routes. Every pending job's event type has a route, so the planner
-- estimated that the anti-join leaves one job, and chose to read every pending job, look up
-- its stream, sort them all and take the first: a claim cost grew with the backlog (6 ms with
-- 3,000 jobs waiting), just when a bridge claims most often. The held event types are now
-- read into a list first and each candidate is checked against it, so the claim walks the
-- claimable index in order and stops after the batch again, as 0005 made it.
--
-- api.settle_workflow_jobs (0008) ordered its elements by joining them to the queue
-- projection. The planner cannot see how many elements a JSON array holds and assumes 100;
-- against a projection of up to some tens of thousands of rows it then read the whole
-- projection into a hash on every settlement statement. The order now comes from one index
-- look-up per element.
--
-- osp_metadata.workflow_job_metadata (0004) and osp_metadata.is_reserved_event_type (0006)
-- were SQL functions with a search_path setting, which PostgreSQL does not inline: it parsed
-- and planned their bodies again in every transaction that called them (every claim,
-- settlement and emit). As PL/pgSQL functions their plans are kept per connection.
--
-- All four are restated with CREATE OR REPLACE and their signatures, so their owners, grants
-- and settings (lock_timeout) stay; their results are unchanged.

------------------------------------------------------------------------------------------
-- Claims: the held routes as a list, the claimable index walked in order
------------------------------------------------------------------------------------------

-- As in 0007, but for how the held routes are checked.
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
    v_held text[];
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

    -- The event types whose jobs wait (a disabled or paused route): a handful at most, read
    -- once, so that each candidate is checked against a list instead of joined to the routes.
    v_held := array(select r.event_type from osp_metadata.workflow_routes r
                    where not r.enabled or r.paused);
    with due as (
        select q.id, q.available_at as claimable_at
        from public.workflow_queue_projection q
        join osp_metadata.streams s on s.stream_id = q.stream_id
        where q.status = 'pending' and q.available_at <= now()
          and q.event_type <> all(v_held)
        order by q.available_at, q.id
        limit p_batch
        for update of q, s skip locked
    ), expired as (
        select q.id, q.lease_expires_at as claimable_at
        from public.workflow_queue_projection q
        join osp_metadata.streams s on s.stream_id = q.stream_id
        where q.status = 'processing' and q.lease_expires_at <= now()
          and q.event_type <> all(v_held)
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

------------------------------------------------------------------------------------------
-- Settlements: the elements' order from index look-ups
------------------------------------------------------------------------------------------

-- As in 0008, but for how the elements are ordered.
create or replace function api.settle_workflow_jobs(p_worker_id text, p_settlements jsonb)
returns table (job_id uuid, attempt integer, settled text, error text)
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
    v_item record;
    v_done boolean;
begin
    if p_worker_id is null or btrim(p_worker_id) = '' then
        raise exception 'api.settle_workflow_jobs: p_worker_id must not be empty'
            using errcode = '22023';
    end if;
    if p_settlements is null or jsonb_typeof(p_settlements) <> 'array' then
        raise exception 'api.settle_workflow_jobs: p_settlements must be a JSON array, not %',
            coalesce(jsonb_typeof(p_settlements), 'null')
            using errcode = '22023';
    end if;
    if jsonb_array_length(p_settlements) > 1000 then
        raise exception 'api.settle_workflow_jobs: at most 1000 settlements per call, not %',
            jsonb_array_length(p_settlements)
            using errcode = '22023';
    end if;

    for v_item in
        select s.*
        from jsonb_to_recordset(p_settlements) as s(
            job_id uuid, attempt integer, outcome text, workflow_id text,
            workflow_run_id text, existing_execution boolean, error_message text,
            retry_after_ms bigint)
        -- One index look-up per element (an unknown job sorts last, as before).
        order by (select q.stream_id from public.workflow_queue_projection q
                  where q.id = s.job_id),
                 s.job_id
    loop
        job_id := v_item.job_id;
        attempt := v_item.attempt;
        -- The arguments the two functions would refuse, checked here: a refusal inside the
        -- loop would otherwise need a subtransaction per element, and more than 64 of them
        -- in one transaction overflow every backend's snapshot cache (pg_subtrans lookups
        -- for all concurrent queries) just when the bridge is busiest.
        error := case
            when v_item.job_id is null or v_item.attempt is null then
                'job_id and attempt are required'
            when v_item.outcome is null or v_item.outcome not in ('complete', 'fail') then
                format('outcome must be "complete" or "fail", not %s',
                       coalesce('"' || v_item.outcome || '"', 'null'))
            when v_item.outcome = 'complete'
                 and (coalesce(v_item.workflow_id, '') = ''
                      or coalesce(v_item.workflow_run_id, '') = '') then
                'api.complete_workflow_job: p_workflow_id and p_workflow_run_id are required'
            when v_item.outcome = 'fail' and coalesce(btrim(v_item.error_message), '') = '' then
                'api.fail_workflow_job: p_error_message must not be empty'
            when v_item.outcome = 'fail' and v_item.retry_after_ms < 0 then
                'api.fail_workflow_job: p_retry_after must not be negative'
        end;
        if error is not null then
            settled := 'refused';
        else
            if v_item.outcome = 'complete' then
                v_done := api.complete_workflow_job(
                    v_item.job_id, p_worker_id, v_item.attempt, v_item.workflow_id,
                    v_item.workflow_run_id, coalesce(v_item.existing_execution, false));
            else
                v_done := api.fail_workflow_job(
                    v_item.job_id, p_worker_id, v_item.attempt, v_item.error_message,
                    v_item.retry_after_ms * interval '1 millisecond');
            end if;
            settled := case when v_done then 'done' else 'fenced' end;
        end if;
        return next;
    end loop;
end
$$;

------------------------------------------------------------------------------------------
-- Helpers as PL/pgSQL
------------------------------------------------------------------------------------------

-- The correlation id a job's queue events carry: the one its pending event carries (0004).
create or replace function osp_metadata.workflow_job_metadata(p_job public.workflow_queue_projection)
returns jsonb
language plpgsql
stable
set search_path = ''
as $$
begin
    return jsonb_build_object(
        'causation_id', p_job.id,
        'correlation_id', coalesce(
            (select e.event_metadata ->> 'correlation_id'
             from public.domain_events e
             where e.id = p_job.id),
            p_job.event_id::text));
end
$$;

-- The event types only the platform's own functions append (0006).
create or replace function osp_metadata.is_reserved_event_type(p_event_type text)
returns boolean
language plpgsql
immutable
set search_path = ''
as $$
begin
    return p_event_type operator(pg_catalog.~) '^workflow\.queue\.';
end
$$;
