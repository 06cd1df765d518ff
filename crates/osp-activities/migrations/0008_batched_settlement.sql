-- OSP bridge without a connection held across a start: settlements written many per
-- statement, and the chain order kept by the append instead of by a lock.
--
-- Until now the bridge held each job and its stream locked (api.hold_workflow_job) in an open
-- transaction while it called Temporal, so that nothing the workflow appends could come
-- before the bridge's started and completed events. That cost one pooled connection per start
-- in flight and two transactions per start. Now the bridge claims many jobs, starts them
-- concurrently with no transaction open, and records the outcomes of many jobs in one call of
-- api.settle_workflow_jobs. The order is kept where the workflow's events arrive: an event
-- whose metadata names a workflow (`workflow_id`, as OSP's activities write it) cannot be
-- appended to a stream on which that workflow's start is still unrecorded (a job naming the
-- workflow is pending or processing, and none naming it has completed). The append refuses it
-- with SQLSTATE OSP01 under the stream's lock, the same lock the bridge's settlement appends
-- under, so the check and the append see the same state; the activity tries again a few
-- milliseconds later (osp_activities::events::append_when_started).
--
-- api.hold_workflow_job stays for bridges of an earlier version during a rolling upgrade.

------------------------------------------------------------------------------------------
-- The append, restated: the workflow's events wait for its start to be recorded
------------------------------------------------------------------------------------------

-- As in 0006, with the start check between the idempotency lookup and the version bump.
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

    -- Also under the stream lock: the bridge's settlement appends the started and completed
    -- events under it, so once it committed this statement sees the job completed. The
    -- queue's own events carry no workflow_id in their metadata and are never held back.
    if v_metadata ? 'workflow_id'
       and exists (select 1 from public.workflow_queue_projection q
                   where q.stream_id = p_stream_id
                     and q.workflow_id = v_metadata ->> 'workflow_id'
                     and q.status in ('pending', 'processing'))
       and not exists (select 1 from public.workflow_queue_projection q
                       where q.stream_id = p_stream_id
                         and q.workflow_id = v_metadata ->> 'workflow_id'
                         and q.status = 'completed') then
        raise exception 'api.emit_domain_event: the start of workflow % is not recorded on stream % yet',
            v_metadata ->> 'workflow_id', p_stream_id
            using errcode = 'OSP01',
                  hint = 'the bridge records it right after Temporal acknowledges the start; append again in a moment';
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
-- Many settlements per statement
------------------------------------------------------------------------------------------

-- Records the outcomes of many claimed jobs in one statement. p_settlements is a JSON array
-- of objects, one per job:
--   {"job_id": uuid, "attempt": int, "outcome": "complete", "workflow_id": text,
--    "workflow_run_id": text, "existing_execution": bool}
--   {"job_id": uuid, "attempt": int, "outcome": "fail", "error_message": text,
--    "retry_after_ms": int or null (null: failed for good)}
-- Each is fenced on the claim exactly as api.complete_workflow_job and api.fail_workflow_job
-- are (they do the work). An element those functions would refuse (no ids, an empty
-- message, an unknown outcome) is refused on its own, before anything is written for it, and
-- undoes nothing of the others. The jobs are settled in the order of their streams, so two
-- bridges settling jobs on the same streams lock them in the same order and never deadlock
-- each other. One row per element (its job_id and attempt), in that order: settled is
-- 'done', 'fenced' (this claim no longer holds the job; nothing was written) or 'refused'
-- (error says why; nothing was written for it). Anything else (a lock timeout, a lost
-- connection) fails the whole call, and the bridge sends it again.
create function api.settle_workflow_jobs(p_worker_id text, p_settlements jsonb)
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
        select s.*, q.stream_id as job_stream_id
        from jsonb_to_recordset(p_settlements) as s(
            job_id uuid, attempt integer, outcome text, workflow_id text,
            workflow_run_id text, existing_execution boolean, error_message text,
            retry_after_ms bigint)
        left join public.workflow_queue_projection q on q.id = s.job_id
        order by q.stream_id, s.job_id
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

-- The settlement's statements are appends and fenced updates: anything slower than this is
-- stuck behind a lock and should give way to the bridge's retry.
alter function api.settle_workflow_jobs(text, jsonb) set lock_timeout = '5s';
revoke all on function api.settle_workflow_jobs(text, jsonb) from public, anon, authenticated;
grant execute on function api.settle_workflow_jobs(text, jsonb) to service_role;
