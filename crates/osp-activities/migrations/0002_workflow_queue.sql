-- OSP workflow queue: routes from event types to workflows, the trigger that enqueues every
-- routed event as a workflow.queue.pending event, and the projection those queue events keep,
-- with a NOTIFY per new job. The projection row is the queue; the NOTIFY is only a hint.

create table osp_metadata.workflow_routes (
    event_type text primary key,
    workflow_type text not null,
    task_queue text not null default 'osp-queue',
    -- Placeholders: {stream_id}, {stream_type}, {event_id}, {event_type}, or a top-level field
    -- of the event's data, e.g. {organization_id}.
    workflow_id_template text not null,
    -- Emitted on the stream by whoever starts the workflow, after the start.
    started_event_type text,
    enabled boolean not null default true,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint workflow_routes_event_type_format
        check (event_type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$'),
    -- Routing a queue event would enqueue forever.
    constraint workflow_routes_not_queue_events check (event_type !~ '^workflow\.queue\.'),
    constraint workflow_routes_workflow_type_present check (btrim(workflow_type) <> ''),
    constraint workflow_routes_task_queue_format check (task_queue <> '' and task_queue !~ '\s'),
    constraint workflow_routes_template_present check (btrim(workflow_id_template) <> ''),
    constraint workflow_routes_started_event_type_format
        check (started_event_type is null
               or started_event_type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$')
);

insert into osp_metadata.workflow_routes
    (event_type, workflow_type, task_queue, workflow_id_template, started_event_type)
values
    ('organization.bootstrap.initiated', 'organizationBootstrapWorkflow', 'osp-queue',
     'org-bootstrap-{stream_id}', 'organization.bootstrap.workflow_started')
on conflict (event_type) do nothing;

-- Renders a route's workflow id template for one event; raises invalid_parameter_value
-- naming the placeholder the event cannot fill.
create function osp_metadata.render_workflow_id(p_template text, p_event public.domain_events)
returns text
language plpgsql
immutable
set search_path = ''
as $$
declare
    v_result text := p_template;
    v_name text;
    v_value text;
begin
    for v_name in select m[1] from regexp_matches(p_template, '\{([^{}]*)\}', 'g') as m loop
        v_value := case v_name
            when 'stream_id' then p_event.stream_id::text
            when 'stream_type' then p_event.stream_type
            when 'event_id' then p_event.id::text
            when 'event_type' then p_event.event_type
            else case
                when jsonb_typeof(p_event.event_data -> v_name) in ('string', 'number')
                then p_event.event_data ->> v_name
            end
        end;
        if v_value is null or v_value = '' then
            raise exception 'workflow id template "%" needs {%}, which event % (%) does not have as a string or number',
                p_template, v_name, p_event.id, p_event.event_type
                using errcode = '22023';
        end if;
        v_result := replace(v_result, '{' || v_name || '}', v_value);
    end loop;
    return v_result;
end
$$;

create table public.workflow_queue_projection (
    -- The job id: the id of its workflow.queue.pending event.
    id uuid primary key,
    stream_id uuid not null,
    stream_type text not null,
    -- The routed event and its type.
    event_id uuid not null unique,
    event_type text not null,
    workflow_type text not null,
    task_queue text not null,
    -- Null when the route's template could not be rendered; error_message says why.
    workflow_id text,
    started_event_type text,
    status text not null default 'pending',
    worker_id text,
    workflow_run_id text,
    attempts integer not null default 0,
    lease_expires_at timestamptz,
    -- A job retried after a transient failure is not claimed before this time.
    available_at timestamptz not null,
    error_message text,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    claimed_at timestamptz,
    completed_at timestamptz,
    failed_at timestamptz,
    constraint workflow_queue_projection_status_check
        check (status in ('pending', 'processing', 'completed', 'failed'))
);
create index workflow_queue_projection_claimable_idx
    on public.workflow_queue_projection (available_at)
    where status = 'pending';
create index workflow_queue_projection_leases_idx
    on public.workflow_queue_projection (lease_expires_at)
    where status = 'processing';
create index workflow_queue_projection_stream_idx on public.workflow_queue_projection (stream_id);
create index workflow_queue_projection_event_type_idx on public.workflow_queue_projection (event_type);

-- Projections change only through events: the apply functions raise this flag for the
-- duration of their own writes, and a guard on each projection refuses every other write.
create function osp_metadata.refuse_direct_projection_write() returns trigger
language plpgsql as $$
begin
    if coalesce(current_setting('osp.projection_writer', true), '') <> 'on' then
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

create trigger workflow_queue_projection_guard
    before insert or update or delete on public.workflow_queue_projection
    for each row execute function osp_metadata.refuse_direct_projection_write();

-- Reads a required field of an event's data, naming it when it is missing.
create function osp_metadata.event_field(p_event public.domain_events, p_field text)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
    if jsonb_typeof(p_event.event_data -> p_field) is null
       or jsonb_typeof(p_event.event_data -> p_field) = 'null' then
        raise exception '% event %: event_data.% is required', p_event.event_type, p_event.id, p_field
            using errcode = '22023';
    end if;
    return p_event.event_data ->> p_field;
end
$$;

create function osp_metadata.enqueue_routed_event() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_route osp_metadata.workflow_routes;
    v_workflow_id text;
    v_error text;
begin
    select * into v_route
    from osp_metadata.workflow_routes
    where event_type = new.event_type and enabled;
    if not found then
        return null;
    end if;
    begin
        v_workflow_id := osp_metadata.render_workflow_id(v_route.workflow_id_template, new);
    exception when invalid_parameter_value then
        -- The event is stored and its job enqueued; the dispatcher fails the job with this
        -- message rather than the client's emit failing.
        v_error := sqlerrm;
    end;
    perform osp_metadata.append_domain_event(
        new.stream_id,
        new.stream_type,
        'workflow.queue.pending',
        jsonb_strip_nulls(jsonb_build_object(
            'event_id', new.id,
            'event_type', new.event_type,
            'workflow_type', v_route.workflow_type,
            'task_queue', v_route.task_queue,
            'workflow_id', v_workflow_id,
            'started_event_type', v_route.started_event_type,
            'enqueue_error', v_error)),
        jsonb_build_object(
            'causation_id', new.id,
            'correlation_id', coalesce(new.event_metadata ->> 'correlation_id', new.id::text)),
        'p_stream_id',
        'p_stream_type');
    return null;
end
$$;

create trigger domain_events_enqueue
    after insert on public.domain_events
    for each row
    when (new.event_type !~ '^workflow\.queue\.')
    execute function osp_metadata.enqueue_routed_event();

create function osp_metadata.apply_workflow_queue_event() returns trigger
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

create trigger domain_events_apply_workflow_queue
    after insert on public.domain_events
    for each row
    when (new.event_type ~ '^workflow\.queue\.')
    execute function osp_metadata.apply_workflow_queue_event();

alter table osp_metadata.workflow_routes enable row level security;
alter table public.workflow_queue_projection enable row level security;
create policy service_role_all on osp_metadata.workflow_routes for all to service_role
    using (true) with check (true);
create policy service_role_read on public.workflow_queue_projection for select to service_role
    using (true);
grant select, insert, update, delete on osp_metadata.workflow_routes to service_role;
grant select on public.workflow_queue_projection to service_role;

-- Supabase Realtime streams changes of tables in this publication; elsewhere it is absent.
do $$
begin
    if exists (select 1 from pg_publication where pubname = 'supabase_realtime') then
        alter publication supabase_realtime add table public.workflow_queue_projection;
    end if;
end
$$;
