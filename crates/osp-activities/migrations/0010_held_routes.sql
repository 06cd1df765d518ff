-- OSP claims whose cost does not grow with a held route's backlog (issue 16).
--
-- A paused or disabled route's jobs stay pending, in the claimable index (available_at, id),
-- ahead of every job enqueued after them. 0009's claim checked each pending job against the
-- held routes, so with a held backlog every claim read all of it before reaching a claimable
-- job (by index or whole, as the planner chose): the cost of every claim grew with the
-- backlog, for as long as the route stayed paused, and events still arriving on the paused
-- route woke the bridges to pay it again. The queue_sql test "a claim reads none of a held
-- route's backlog" failed before this migration: a claim of the one job not held read 3,010
-- queue rows past 3,000 held jobs (13 with it).
--
-- When a route is held, the claim now walks a per-event-type index of pending jobs, once for
-- each event type that has pending jobs and is not held. When none is (the usual case), it
-- walks the claimable index as before. The jobs' states, the claim order among claimable jobs
-- and the function's signature, result and grants are unchanged.

-- Pending jobs by event type, in claim order within each: what the claim walks when a route is
-- held, and how it finds the event types that have pending jobs. Partial like the claimable
-- index, so a job is in it only while it is pending.
create index workflow_queue_projection_type_claimable_idx
    on public.workflow_queue_projection (event_type, available_at, id)
    where status = 'pending';

-- As in 0009, but for how the due jobs are found when a route is held.
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
    v_due uuid[];
    v_expired uuid[];
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

    -- The event types whose jobs wait (a disabled or paused route): a handful at most.
    v_held := array(select r.event_type from osp_metadata.workflow_routes r
                    where not r.enabled or r.paused);
    if cardinality(v_held) = 0 then
        -- Nothing held: the claimable index in claim order, stopping after the batch;
        -- jobs another claim holds are skipped, so concurrent claims take the next ones.
        select array_agg(d.id) into v_due
        from (
            select q.id
            from public.workflow_queue_projection q
            join osp_metadata.streams s on s.stream_id = q.stream_id
            where q.status = 'pending' and q.available_at <= now()
            order by q.available_at, q.id
            limit p_batch
            for update of q, s skip locked
        ) d;
    else
        -- Some routes held: their jobs are still in the claimable index, ahead of everything
        -- enqueued after them, and walking past them made every claim cost as much as the
        -- held backlog. Instead, one walk per event type that has pending jobs and is not
        -- held, each in claim order and stopping after the batch; the event types come
        -- from the per-type index by skipping from one to the next (a loose index scan),
        -- one look-up each, however many jobs each has. Each walk may lock up to a batch,
        -- of which only the first batch overall is claimed; the rest stay locked only until
        -- this claim commits, as the leases' walk below has always done.
        select array_agg(d.id) into v_due
        from (
            with recursive pending_type(event_type) as (
                (select q.event_type from public.workflow_queue_projection q
                 where q.status = 'pending'
                 order by q.event_type limit 1)
                union all
                select (select q.event_type from public.workflow_queue_projection q
                        where q.status = 'pending' and q.event_type > t.event_type
                        order by q.event_type limit 1)
                from pending_type t
                where t.event_type is not null
            )
            select w.id
            from pending_type t
            cross join lateral (
                select q.id
                from public.workflow_queue_projection q
                join osp_metadata.streams s on s.stream_id = q.stream_id
                where q.event_type = t.event_type
                  and q.status = 'pending' and q.available_at <= now()
                order by q.available_at, q.id
                limit p_batch
                for update of q, s skip locked
            ) w
            where t.event_type is not null and t.event_type <> all(v_held)
        ) d;
    end if;

    -- Expired leases in claim order. A held route's jobs in this state are at most what the
    -- bridges had in flight when it was held, so checking each against the list is bounded.
    select array_agg(e.id) into v_expired
    from (
        select q.id
        from public.workflow_queue_projection q
        join osp_metadata.streams s on s.stream_id = q.stream_id
        where q.status = 'processing' and q.lease_expires_at <= now()
          and q.event_type <> all(v_held)
        order by q.lease_expires_at, q.id
        limit p_batch
        for update of q, s skip locked
    ) e;

    -- The first batch of both, by when each became claimable (the id breaks ties).
    select array_agg(c.id) into v_ids
    from (
        select q.id
        from public.workflow_queue_projection q
        where q.id = any(coalesce(v_due, '{}') || coalesce(v_expired, '{}'))
        order by case when q.status = 'pending' then q.available_at else q.lease_expires_at end,
                 q.id
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
