-- OSP event store: public.domain_events, the per-stream version counter and both
-- api.emit_domain_event overloads. Supabase-compatible: schemas api and osp_metadata, RLS on,
-- the service_role allowed.

-- Supabase has these roles; plain PostgreSQL gets them so the same grants and policies apply.
-- Roles are per cluster, so two databases migrating at once may race: the loser moves on.
do $$
declare
    v_role text;
begin
    foreach v_role in array array['anon', 'authenticated', 'service_role'] loop
        if not exists (select 1 from pg_roles where rolname = v_role) then
            begin
                execute format('create role %I nologin', v_role);
            exception when duplicate_object or unique_violation then
                null;
            end;
        end if;
    end loop;
end
$$;

create schema if not exists api;
create schema if not exists osp_metadata;
grant usage on schema api, osp_metadata to service_role;

-- The version counter of each stream. Its row lock serialises writers of one stream, which is
-- what keeps stream_version gap-free: a rolled-back append rolls its increment back too.
create table osp_metadata.streams (
    stream_id uuid primary key,
    stream_type text not null,
    version integer not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table public.domain_events (
    id uuid primary key default gen_random_uuid(),
    stream_id uuid not null,
    stream_type text not null,
    stream_version integer not null,
    event_type text not null,
    event_data jsonb not null,
    event_metadata jsonb not null default '{}'::jsonb,
    created_at timestamptz not null default clock_timestamp(),
    constraint domain_events_stream_version_key unique (stream_id, stream_version),
    constraint domain_events_stream_version_positive check (stream_version > 0),
    constraint domain_events_event_type_format
        check (event_type ~ '^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$' and length(event_type) <= 200),
    constraint domain_events_event_data_object check (jsonb_typeof(event_data) = 'object'),
    constraint domain_events_event_metadata_object check (jsonb_typeof(event_metadata) = 'object')
);
create index domain_events_event_type_idx on public.domain_events (event_type, created_at);
-- A step re-run after a crash carries the same idempotency key and so cannot emit twice.
create unique index domain_events_idempotency_key
    on public.domain_events ((event_metadata ->> 'idempotency_key'))
    where event_metadata ? 'idempotency_key';

create function osp_metadata.refuse_domain_event_change() returns trigger
language plpgsql as $$
begin
    raise exception 'public.domain_events is append-only: % is not allowed', tg_op
        using errcode = '55000', hint = 'emit a new event with api.emit_domain_event instead';
end
$$;

create trigger domain_events_append_only
    before update or delete on public.domain_events
    for each row execute function osp_metadata.refuse_domain_event_change();

-- The one place events are appended. p_id_param and p_type_param name the caller's own
-- parameters so each overload's errors speak its language.
create function osp_metadata.append_domain_event(
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
    if v_metadata ? 'idempotency_key' then
        select * into v_existing
        from public.domain_events
        where event_metadata ->> 'idempotency_key' = v_metadata ->> 'idempotency_key';
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

-- Stream-based: how Edge Functions and SQL clients emit.
create function api.emit_domain_event(
    p_stream_id uuid,
    p_stream_type text,
    p_event_type text,
    p_event_data jsonb,
    p_event_metadata jsonb default '{}'::jsonb
) returns uuid
language sql
security definer
set search_path = ''
as $$
    select osp_metadata.append_domain_event(
        p_stream_id, p_stream_type, p_event_type, p_event_data, p_event_metadata,
        'p_stream_id', 'p_stream_type');
$$;

-- Aggregate-based: how activities emit.
create function api.emit_domain_event(
    p_event_type text,
    p_aggregate_type text,
    p_aggregate_id uuid,
    p_event_data jsonb,
    p_event_metadata jsonb default '{}'::jsonb
) returns uuid
language sql
security definer
set search_path = ''
as $$
    select osp_metadata.append_domain_event(
        p_aggregate_id, p_aggregate_type, p_event_type, p_event_data, p_event_metadata,
        'p_aggregate_id', 'p_aggregate_type');
$$;

revoke all on function osp_metadata.append_domain_event(uuid, text, text, jsonb, jsonb, text, text) from public;
revoke all on function api.emit_domain_event(uuid, text, text, jsonb, jsonb) from public, anon, authenticated;
revoke all on function api.emit_domain_event(text, text, uuid, jsonb, jsonb) from public, anon, authenticated;
grant execute on function api.emit_domain_event(uuid, text, text, jsonb, jsonb) to service_role;
grant execute on function api.emit_domain_event(text, text, uuid, jsonb, jsonb) to service_role;

alter table public.domain_events enable row level security;
alter table osp_metadata.streams enable row level security;
create policy service_role_read on public.domain_events for select to service_role using (true);
create policy service_role_read on osp_metadata.streams for select to service_role using (true);
grant select on public.domain_events, osp_metadata.streams to service_role;
