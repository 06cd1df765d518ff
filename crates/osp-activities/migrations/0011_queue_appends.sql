-- OSP queue events appended many per statement: a claim's and a settlement's events are
-- inserted set-based instead of one osp_metadata.append_domain_event call each (issue 16).
--
-- A claim of N jobs appended N workflow.queue.claimed events, and a settlement of N started
-- jobs 2N events (the route's started event and workflow.queue.completed), each through its
-- own call of append_domain_event: about ten statements per event (argument checks, the
-- stream's upsert, lock and version bump, the idempotency and start checks, the insert with
-- its constraint and trigger set-up), three events per start. Profiled on their own
-- (pg_stat_statements with track = all, pgbench looping a claim of 16 and its settlement),
-- the inserts were half of the database's time per start and the statements around them
-- most of the rest; executor start-up and plan-cache checks, paid per statement, led the
-- profile. The events are the platform's own, built here from the job's row: none carries an
-- idempotency key or names a workflow in its metadata, so the lookups the append makes for
-- clients' events do not apply to them.
--
-- What stays the same: every event, its data, metadata, version and order on its stream; the
-- projections (the row triggers still apply each event); the fence of every settlement; the
-- functions' signatures, results and grants. api.complete_workflow_job and
-- api.fail_workflow_job stay as they were, for bridges of an earlier version.

------------------------------------------------------------------------------------------
-- Appending the platform's events, one statement per round
------------------------------------------------------------------------------------------

-- Appends the events given by the five arrays (element i of each is event i), in that order
-- on each stream. Every stream must exist; they are locked here in stream order (callers that
-- hold them already lose nothing). The insert guard of 0006 checks that an event carries its
-- stream's counter as it is at the insert, so a stream's k-th event of the call goes in the
-- k-th round: each round bumps the counter of the streams it appends to and inserts their
-- events in one statement. A settlement's rounds are usually two (started, completed), a
-- claim's one. One or two events go through append_domain_event instead (see below). Every table is reached by index look-ups of the given ids (the arrays are
-- joined with each other, not with a table), whatever the planner guesses of their length.
-- No argument check: the callers build the events, and the table's constraints still refuse a
-- malformed one.
create function osp_metadata.append_platform_events(
    p_stream_ids uuid[],
    p_stream_types text[],
    p_event_types text[],
    p_event_data jsonb[],
    p_event_metadata jsonb[]
) returns void
language plpgsql
set search_path = ''
as $$
declare
    v_round_of integer[];
    v_rounds integer;
    v_round_size integer;
    v_streams uuid[];
    v_versions integer[];
begin
    if coalesce(cardinality(p_stream_ids), 0) = 0 then
        return;
    end if;
    -- One or two events (a claim or a settlement of a single job, the bridge's usual case
    -- while it keeps up): one append each, as before this migration, is cheaper than the
    -- rounds' fixed cost (measured: a claim and settlement of one job took 12-29 % longer
    -- set-based, of four jobs 18 % less).
    if cardinality(p_stream_ids) <= 2 then
        for v_event in 1 .. cardinality(p_stream_ids) loop
            perform osp_metadata.append_domain_event(
                p_stream_ids[v_event], p_stream_types[v_event], p_event_types[v_event],
                p_event_data[v_event], p_event_metadata[v_event], 'p_stream_id',
                'p_stream_type');
        end loop;
        return;
    end if;
    -- Event i goes in round v_round_of[i]: how many events of its stream come up to it.
    select array_agg(r.round order by r.ord), max(r.round) into v_round_of, v_rounds
    from (select u.ord, row_number() over (partition by u.stream_id order by u.ord) as round
          from unnest(p_stream_ids) with ordinality as u(stream_id, ord)) r;
    perform 1
    from (select s.stream_id
          from osp_metadata.streams s
          where s.stream_id = any(p_stream_ids)
          order by s.stream_id
          for update) locked;

    for v_round in 1 .. v_rounds loop
        with bumped as (
            update osp_metadata.streams s
            set version = s.version + 1, updated_at = now()
            where s.stream_id = any(array(
                select u.stream_id
                from unnest(p_stream_ids, v_round_of) as u(stream_id, round)
                where u.round = v_round))
            returning s.stream_id, s.version
        )
        select array_agg(b.stream_id), array_agg(b.version) into v_streams, v_versions
        from bumped b;
        select count(*) into v_round_size from unnest(v_round_of) as u(round)
        where u.round = v_round;
        if coalesce(cardinality(v_streams), 0) <> v_round_size then
            raise exception 'osp_metadata.append_platform_events: % of the % streams of round % do not exist',
                v_round_size - coalesce(cardinality(v_streams), 0), v_round_size, v_round
                using errcode = '23503';
        end if;

        insert into public.domain_events
            (stream_id, stream_type, stream_version, event_type, event_data, event_metadata)
        select e.stream_id, e.stream_type, v.version, e.event_type, e.event_data,
               e.event_metadata
        from unnest(p_stream_ids, p_stream_types, p_event_types, p_event_data,
                    p_event_metadata, v_round_of)
             with ordinality as e(stream_id, stream_type, event_type, event_data,
                                  event_metadata, round, ord)
        join unnest(v_streams, v_versions) as v(stream_id, version)
            on v.stream_id = e.stream_id
        where e.round = v_round
        order by e.ord;
    end loop;
end
$$;

revoke all on function osp_metadata.append_platform_events(uuid[], text[], text[], jsonb[], jsonb[])
    from public, anon, authenticated, service_role;

------------------------------------------------------------------------------------------
-- The claim: the claimed events in one round
------------------------------------------------------------------------------------------

-- As in 0010, but for the claimed events, which are gathered and appended together.
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
    v_streams uuid[] := '{}';
    v_stream_types text[] := '{}';
    v_types text[] := '{}';
    v_data jsonb[] := '{}';
    v_metadata jsonb[] := '{}';
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
        -- Some routes held: one walk per event type that has pending jobs and is not held,
        -- the types found by a loose index scan of the per-type index (see 0010).
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

    -- Expired leases in claim order (see 0010).
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
        v_streams := v_streams || v_job.stream_id;
        v_stream_types := v_stream_types || v_job.stream_type;
        v_types := v_types || 'workflow.queue.claimed'::text;
        v_data := v_data || jsonb_build_object(
            'job_id', v_job.id,
            'worker_id', p_worker_id,
            'lease_expires_at', v_lease,
            'attempt', v_job.attempts + 1);
        v_metadata := v_metadata || osp_metadata.workflow_job_metadata(v_job);
        v_claimed := v_claimed || v_job.id;
    end loop;
    perform osp_metadata.append_platform_events(v_streams, v_stream_types, v_types, v_data,
                                                v_metadata);

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
-- The settlement: fenced job by job, its events appended together
------------------------------------------------------------------------------------------

-- As in 0009: the same elements, refusals, fences and result rows. Each element is checked
-- and its job locked and fenced in turn, in the order of the streams, as
-- api.complete_workflow_job and api.fail_workflow_job do it; the events of every element that
-- holds its claim are gathered (the started event, if the route has one, then
-- workflow.queue.completed; or workflow.queue.failed) and appended together at the end. An
-- element naming a job that an earlier element of the same call settled reads as fenced, as
-- it did when that earlier element's events were already written.
create or replace function api.settle_workflow_jobs(p_worker_id text, p_settlements jsonb)
returns table (job_id uuid, attempt integer, settled text, error text)
language plpgsql
security definer
set search_path = ''
as $$
#variable_conflict use_column
declare
    v_item record;
    v_job public.workflow_queue_projection;
    v_meta jsonb;
    v_fail jsonb;
    v_settled uuid[] := '{}';
    v_streams uuid[] := '{}';
    v_stream_types text[] := '{}';
    v_types text[] := '{}';
    v_data jsonb[] := '{}';
    v_metadata jsonb[] := '{}';
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
        -- The arguments the two functions would refuse, checked here without a
        -- subtransaction (see 0008).
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
            return next;
            continue;
        end if;

        -- The fence, as osp_metadata.lock_claimed_workflow_job: the job locked, and held by
        -- this claim; a job settled by an earlier element of this call no longer is.
        select * into v_job
        from public.workflow_queue_projection q
        where q.id = v_item.job_id
        for update;
        if not found
           or v_job.status <> 'processing'
           or v_job.worker_id is distinct from p_worker_id
           or v_job.attempts <> v_item.attempt
           or v_job.id = any(v_settled) then
            settled := 'fenced';
            return next;
            continue;
        end if;
        v_settled := v_settled || v_job.id;
        v_meta := osp_metadata.workflow_job_metadata(v_job);

        if v_item.outcome = 'complete' then
            if v_job.started_event_type is not null then
                v_streams := v_streams || v_job.stream_id;
                v_stream_types := v_stream_types || v_job.stream_type;
                v_types := v_types || v_job.started_event_type;
                v_data := v_data || jsonb_build_object(
                    'job_id', v_job.id,
                    'event_id', v_job.event_id,
                    'workflow_type', v_job.workflow_type,
                    'task_queue', v_job.task_queue,
                    'workflow_id', v_item.workflow_id,
                    'workflow_run_id', v_item.workflow_run_id,
                    'existing_execution', coalesce(v_item.existing_execution, false));
                v_metadata := v_metadata || v_meta;
            end if;
            v_streams := v_streams || v_job.stream_id;
            v_stream_types := v_stream_types || v_job.stream_type;
            v_types := v_types || 'workflow.queue.completed'::text;
            v_data := v_data || jsonb_build_object(
                'job_id', v_job.id,
                'workflow_id', v_item.workflow_id,
                'workflow_run_id', v_item.workflow_run_id);
            v_metadata := v_metadata || v_meta;
        else
            v_fail := jsonb_build_object(
                'job_id', v_job.id,
                'worker_id', p_worker_id,
                'attempt', v_item.attempt,
                -- A message is for people; a runaway one is cut rather than stored whole.
                'error_message', left(v_item.error_message, 2000));
            if v_item.retry_after_ms is not null then
                v_fail := v_fail || jsonb_build_object(
                    'retry_at', now() + v_item.retry_after_ms * interval '1 millisecond');
            end if;
            v_streams := v_streams || v_job.stream_id;
            v_stream_types := v_stream_types || v_job.stream_type;
            v_types := v_types || 'workflow.queue.failed'::text;
            v_data := v_data || v_fail;
            v_metadata := v_metadata || v_meta;
        end if;
        settled := 'done';
        return next;
    end loop;

    -- The rows above reach the caller only when the function returns, after this: a failure
    -- here fails the whole call, and nothing of it is written.
    perform osp_metadata.append_platform_events(v_streams, v_stream_types, v_types, v_data,
                                                v_metadata);
end
$$;
