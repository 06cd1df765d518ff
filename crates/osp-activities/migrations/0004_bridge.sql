-- OSP bridge: claiming workflow jobs (FOR UPDATE SKIP LOCKED, claimed events emitted in the
-- same statement), holding one during its start, and settling it, fenced on the claim:
-- started + completed, failed (with or without a retry), released. Each is one statement or
-- one transaction, so all of it works through a transaction-mode pooler; the projection still
-- changes only through queue events.

-- The correlation id a job's queue events carry: the one its pending event carries.
create function osp_metadata.workflow_job_metadata(p_job public.workflow_queue_projection)
returns jsonb
language sql
stable
set search_path = ''
as $$
    select jsonb_build_object(
        'causation_id', p_job.id,
        'correlation_id', coalesce(
            (select e.event_metadata ->> 'correlation_id'
             from public.domain_events e
             where e.id = p_job.id),
            p_job.event_id::text));
$$;

-- Claims up to p_batch jobs for p_worker_id: pending jobs whose available_at has come, and
-- processing jobs whose lease has expired (their bridge died or lost its database). A job is
-- locked together with its stream, whose lock the claimed event needs; a job or stream that
-- another transaction holds (another claim, a dispatcher holding the stream for a start, a
-- writer appending to it) is skipped, never waited for. So concurrent claims never share a
-- job, never block and never deadlock; a skipped job is claimed by the next claim or sweep.
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

    select array_agg(c.id) into v_ids
    from (
        select q.id
        from public.workflow_queue_projection q
        join osp_metadata.streams s on s.stream_id = q.stream_id
        where (q.status = 'pending' and q.available_at <= now())
           or (q.status = 'processing' and q.lease_expires_at <= now())
        order by case when q.status = 'pending' then q.available_at else q.lease_expires_at end,
                 q.id
        limit p_batch
        for update of q, s skip locked
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

-- The job, locked, when the claim (p_worker_id, attempt p_attempt) still holds it; null when
-- another claim took it over or it was settled. This check is the fence: a bridge that lost
-- its lease can no longer change the job.
create function osp_metadata.lock_claimed_workflow_job(
    p_job_id uuid,
    p_worker_id text,
    p_attempt integer
) returns public.workflow_queue_projection
language plpgsql
set search_path = ''
as $$
declare
    v_job public.workflow_queue_projection;
begin
    select * into v_job
    from public.workflow_queue_projection q
    where q.id = p_job_id
    for update;
    if not found
       or v_job.status <> 'processing'
       or v_job.worker_id is distinct from p_worker_id
       or v_job.attempts <> p_attempt then
        return null;
    end if;
    return v_job;
end
$$;

-- Inside a transaction, before the workflow start: true when the claim (p_worker_id,
-- attempt p_attempt) still holds the job, which is then locked together with its stream
-- until the transaction ends. The bridge starts the workflow and records the start in that
-- transaction, so everything the workflow appends to the stream comes after the started and
-- completed events. False, and nothing locked, when the claim no longer holds the job.
create function api.hold_workflow_job(p_job_id uuid, p_worker_id text, p_attempt integer)
returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_job public.workflow_queue_projection;
begin
    v_job := osp_metadata.lock_claimed_workflow_job(p_job_id, p_worker_id, p_attempt);
    if v_job.id is null then
        return false;
    end if;
    perform 1 from osp_metadata.streams s where s.stream_id = v_job.stream_id for update;
    return true;
end
$$;

-- The job's workflow was started (or already existed): emits the route's started event, if
-- it has one, then workflow.queue.completed. False, and nothing emitted, when the claim no
-- longer holds the job.
create function api.complete_workflow_job(
    p_job_id uuid,
    p_worker_id text,
    p_attempt integer,
    p_workflow_id text,
    p_workflow_run_id text,
    p_existing_execution boolean default false
) returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_job public.workflow_queue_projection;
    v_metadata jsonb;
begin
    if p_workflow_id is null or p_workflow_id = '' or p_workflow_run_id is null
       or p_workflow_run_id = '' then
        raise exception 'api.complete_workflow_job: p_workflow_id and p_workflow_run_id are required'
            using errcode = '22023';
    end if;
    v_job := osp_metadata.lock_claimed_workflow_job(p_job_id, p_worker_id, p_attempt);
    if v_job.id is null then
        return false;
    end if;
    v_metadata := osp_metadata.workflow_job_metadata(v_job);
    if v_job.started_event_type is not null then
        perform osp_metadata.append_domain_event(
            v_job.stream_id,
            v_job.stream_type,
            v_job.started_event_type,
            jsonb_build_object(
                'job_id', v_job.id,
                'event_id', v_job.event_id,
                'workflow_type', v_job.workflow_type,
                'task_queue', v_job.task_queue,
                'workflow_id', p_workflow_id,
                'workflow_run_id', p_workflow_run_id,
                'existing_execution', coalesce(p_existing_execution, false)),
            v_metadata,
            'p_stream_id',
            'p_stream_type');
    end if;
    perform osp_metadata.append_domain_event(
        v_job.stream_id,
        v_job.stream_type,
        'workflow.queue.completed',
        jsonb_build_object(
            'job_id', v_job.id,
            'workflow_id', p_workflow_id,
            'workflow_run_id', p_workflow_run_id),
        v_metadata,
        'p_stream_id',
        'p_stream_type');
    return true;
end
$$;

-- The attempt failed. With p_retry_after the job is pending again from now() + p_retry_after
-- (a failed attempt); without it the job has failed for good. False, and nothing emitted,
-- when the claim no longer holds the job.
create function api.fail_workflow_job(
    p_job_id uuid,
    p_worker_id text,
    p_attempt integer,
    p_error_message text,
    p_retry_after interval default null
) returns boolean
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_job public.workflow_queue_projection;
    v_data jsonb;
begin
    if p_error_message is null or btrim(p_error_message) = '' then
        raise exception 'api.fail_workflow_job: p_error_message must not be empty'
            using errcode = '22023';
    end if;
    if p_retry_after < interval '0' then
        raise exception 'api.fail_workflow_job: p_retry_after must not be negative, not %',
            p_retry_after
            using errcode = '22023';
    end if;
    v_job := osp_metadata.lock_claimed_workflow_job(p_job_id, p_worker_id, p_attempt);
    if v_job.id is null then
        return false;
    end if;
    v_data := jsonb_build_object(
        'job_id', v_job.id,
        'worker_id', p_worker_id,
        'attempt', p_attempt,
        -- A message is for people; a runaway one is cut rather than stored whole.
        'error_message', left(p_error_message, 2000));
    if p_retry_after is not null then
        v_data := v_data || jsonb_build_object('retry_at', now() + p_retry_after);
    end if;
    perform osp_metadata.append_domain_event(
        v_job.stream_id,
        v_job.stream_type,
        'workflow.queue.failed',
        v_data,
        osp_metadata.workflow_job_metadata(v_job),
        'p_stream_id',
        'p_stream_type');
    return true;
end
$$;

-- Gives a claimed job back at once (a bridge shutting down before its start was confirmed):
-- a failed attempt that is available again immediately.
create function api.release_workflow_job(
    p_job_id uuid,
    p_worker_id text,
    p_attempt integer,
    p_reason text
) returns boolean
language sql
security definer
set search_path = ''
as $$
    select api.fail_workflow_job(
        p_job_id, p_worker_id, p_attempt,
        coalesce(nullif(btrim(p_reason), ''), 'released by ' || p_worker_id),
        interval '0');
$$;

-- How much work is waiting, for the bridge's queue-depth gauge: jobs that can be claimed now
-- (pending and due, or with an expired lease), pending jobs waiting for a retry, and jobs
-- being processed under a live lease.
create function api.workflow_queue_depth()
returns table (ready bigint, scheduled bigint, processing bigint)
language sql
stable
security definer
set search_path = ''
as $$
    select
        count(*) filter (where (q.status = 'pending' and q.available_at <= now())
                            or (q.status = 'processing' and q.lease_expires_at <= now())),
        count(*) filter (where q.status = 'pending' and q.available_at > now()),
        count(*) filter (where q.status = 'processing' and q.lease_expires_at > now())
    from public.workflow_queue_projection q
    where q.status in ('pending', 'processing');
$$;

revoke all on function osp_metadata.workflow_job_metadata(public.workflow_queue_projection) from public;
revoke all on function osp_metadata.lock_claimed_workflow_job(uuid, text, integer) from public;
revoke all on function api.claim_workflow_jobs(text, integer, interval) from public, anon, authenticated;
revoke all on function api.hold_workflow_job(uuid, text, integer) from public, anon, authenticated;
revoke all on function api.complete_workflow_job(uuid, text, integer, text, text, boolean) from public, anon, authenticated;
revoke all on function api.fail_workflow_job(uuid, text, integer, text, interval) from public, anon, authenticated;
revoke all on function api.release_workflow_job(uuid, text, integer, text) from public, anon, authenticated;
revoke all on function api.workflow_queue_depth() from public, anon, authenticated;
grant execute on function api.claim_workflow_jobs(text, integer, interval) to service_role;
grant execute on function api.hold_workflow_job(uuid, text, integer) to service_role;
grant execute on function api.complete_workflow_job(uuid, text, integer, text, text, boolean) to service_role;
grant execute on function api.fail_workflow_job(uuid, text, integer, text, interval) to service_role;
grant execute on function api.release_workflow_job(uuid, text, integer, text) to service_role;
grant execute on function api.workflow_queue_depth() to service_role;
