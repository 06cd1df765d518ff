-- OSP bridge: a claim that costs the same however long the queue is. Migration 0004's claim
-- ordered every claimable job by one CASE expression, so each claim read, joined and sorted
-- the whole backlog (7 ms with 3,000 jobs pending, most of the bridge's time per start);
-- this one walks two indexes in their order and stops after the batch (0.2 ms).

-- Due pending jobs and expired leases, each in claim order (the id breaks ties).
drop index public.workflow_queue_projection_claimable_idx;
drop index public.workflow_queue_projection_leases_idx;
create index workflow_queue_projection_claimable_idx
    on public.workflow_queue_projection (available_at, id)
    where status = 'pending';
create index workflow_queue_projection_leases_idx
    on public.workflow_queue_projection (lease_expires_at, id)
    where status = 'processing';

-- Same signature, result and behaviour as in 0004 (so its grants stay); only the selection
-- of the jobs changed.
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
    v_job public.workflow_queue_projection;
    v_lease timestamptz;
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

    -- Each kind of claimable job is read in the order of its own index and stops after
    -- p_batch rows; the two are then merged. (One query ordered by a CASE over both kinds
    -- read, joined and sorted every pending job on each claim.) Up to p_batch rows of the
    -- kind that loses the merge stay locked until this statement's transaction ends.
    with due as (
        select q.id, q.available_at as claimable_at
        from public.workflow_queue_projection q
        join osp_metadata.streams s on s.stream_id = q.stream_id
        where q.status = 'pending' and q.available_at <= now()
        order by q.available_at, q.id
        limit p_batch
        for update of q, s skip locked
    ), expired as (
        select q.id, q.lease_expires_at as claimable_at
        from public.workflow_queue_projection q
        join osp_metadata.streams s on s.stream_id = q.stream_id
        where q.status = 'processing' and q.lease_expires_at <= now()
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
        where q.id = any(v_ids)
        order by q.created_at, q.id;
end
$$;
