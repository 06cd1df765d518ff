-- OSP read models and tables: organizations and invitations (projections of the bootstrap
-- events), services (written by createEntity) and the worker registry (seed 002).

create table public.organizations_projection (
    -- The organization id, which is also its stream id.
    id uuid primary key,
    name text not null,
    subdomain text not null,
    plan text,
    status text not null default 'active',
    -- What the DNS step configured; null when there is no record (yet, or any more).
    subdomain_metadata jsonb,
    bootstrap_status text not null default 'in_progress',
    bootstrap_error text,
    created_at timestamptz not null,
    updated_at timestamptz not null,
    deactivated_at timestamptz,
    constraint organizations_projection_status_check check (status in ('active', 'deactivated')),
    constraint organizations_projection_bootstrap_status_check
        check (bootstrap_status in ('in_progress', 'completed', 'failed'))
);
create unique index organizations_projection_active_subdomain
    on public.organizations_projection (subdomain)
    where status = 'active';

create table public.invitations_projection (
    id uuid primary key,
    organization_id uuid not null references public.organizations_projection (id),
    email text not null,
    name text,
    role text not null default 'admin',
    status text not null default 'pending',
    invited_at timestamptz not null,
    email_sent_at timestamptz,
    revoked_at timestamptz,
    revoke_reason text,
    updated_at timestamptz not null,
    constraint invitations_projection_status_check
        check (status in ('pending', 'sent', 'revoked'))
);
create unique index invitations_projection_open_email
    on public.invitations_projection (organization_id, lower(email))
    where status <> 'revoked';

create trigger organizations_projection_guard
    before insert or update or delete on public.organizations_projection
    for each row execute function osp_metadata.refuse_direct_projection_write();
create trigger invitations_projection_guard
    before insert or update or delete on public.invitations_projection
    for each row execute function osp_metadata.refuse_direct_projection_write();

create function osp_metadata.apply_organization_event() returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
    v_previous text := coalesce(current_setting('osp.projection_writer', true), '');
    v_invitation uuid;
begin
    perform set_config('osp.projection_writer', 'on', true);
    case new.event_type
    when 'organization.created' then
        insert into public.organizations_projection
            (id, name, subdomain, plan, created_at, updated_at)
        values (
            new.stream_id,
            osp_metadata.event_field(new, 'name'),
            osp_metadata.event_field(new, 'subdomain'),
            new.event_data ->> 'plan',
            new.created_at, new.created_at);
    when 'organization.dns.configured' then
        update public.organizations_projection
        set subdomain_metadata = new.event_data, updated_at = new.created_at
        where id = new.stream_id;
    when 'organization.dns.removed' then
        update public.organizations_projection
        set subdomain_metadata = null, updated_at = new.created_at
        where id = new.stream_id;
    when 'organization.deactivated' then
        update public.organizations_projection
        set status = 'deactivated', deactivated_at = new.created_at, updated_at = new.created_at
        where id = new.stream_id;
    when 'organization.bootstrap.completed' then
        update public.organizations_projection
        set bootstrap_status = 'completed', bootstrap_error = null, updated_at = new.created_at
        where id = new.stream_id;
    when 'organization.bootstrap.failed' then
        -- The organization may never have been created; then there is no row to mark.
        update public.organizations_projection
        set bootstrap_status = 'failed',
            bootstrap_error = osp_metadata.event_field(new, 'reason'),
            updated_at = new.created_at
        where id = new.stream_id;
    when 'user.invited' then
        insert into public.invitations_projection
            (id, organization_id, email, name, role, invited_at, updated_at)
        values (
            osp_metadata.event_field(new, 'invitation_id')::uuid,
            new.stream_id,
            osp_metadata.event_field(new, 'email'),
            new.event_data ->> 'name',
            coalesce(new.event_data ->> 'role', 'admin'),
            new.created_at, new.created_at);
    when 'invitation.email.sent' then
        v_invitation := osp_metadata.event_field(new, 'invitation_id')::uuid;
        update public.invitations_projection
        set status = 'sent', email_sent_at = new.created_at, updated_at = new.created_at
        where id = v_invitation and organization_id = new.stream_id;
    when 'invitation.revoked' then
        v_invitation := osp_metadata.event_field(new, 'invitation_id')::uuid;
        update public.invitations_projection
        set status = 'revoked', revoked_at = new.created_at,
            revoke_reason = new.event_data ->> 'reason', updated_at = new.created_at
        where id = v_invitation and organization_id = new.stream_id;
    else
        null;
    end case;
    if new.event_type not in ('organization.created', 'user.invited',
                              'organization.bootstrap.failed') and not found then
        raise exception '% event %: no % for it on stream %', new.event_type, new.id,
            case when new.event_type like 'invitation.%' then 'invitation' else 'organization' end,
            new.stream_id
            using errcode = '23503';
    end if;
    perform set_config('osp.projection_writer', v_previous, true);
    return null;
end
$$;

create trigger domain_events_apply_organization
    after insert on public.domain_events
    for each row
    when (new.event_type in (
        'organization.created', 'organization.dns.configured', 'organization.dns.removed',
        'organization.deactivated', 'organization.bootstrap.completed',
        'organization.bootstrap.failed', 'user.invited', 'invitation.email.sent',
        'invitation.revoked'))
    execute function osp_metadata.apply_organization_event();

-- Written by the createEntity activity (seed 000). The workflow execution that wrote a row
-- is recorded so that a retried activity finds its row instead of writing a second one.
create table public.services (
    id uuid primary key default gen_random_uuid(),
    name text not null,
    description text,
    service_schema text,
    metadata jsonb not null default '{}'::jsonb,
    workflow_id text,
    workflow_run_id text,
    created_at timestamptz not null default now(),
    constraint services_name_length check (char_length(name) between 1 and 200),
    constraint services_service_schema_format
        check (service_schema is null or service_schema ~ '^[a-z_][a-z0-9_]{0,62}$'),
    constraint services_metadata_object check (jsonb_typeof(metadata) = 'object'),
    constraint services_workflow_execution_key unique (workflow_id, workflow_run_id)
);

-- Seed 002's registry, plus the identity, task queue and updated_at of running workers.
create table osp_metadata.worker_registry (
    id uuid primary key default gen_random_uuid(),
    service_schema text not null,
    manifest_path text not null,
    deployment_status text not null default 'pending',
    deployed_at timestamptz default now(),
    logs text,
    retry_count integer not null default 0,
    last_health_check timestamptz,
    worker_version text,
    worker_identity text,
    task_queue text,
    -- The workflow execution that recorded a deployment, so a retried step finds its row.
    deployment_key text,
    updated_at timestamptz not null default now(),
    constraint worker_registry_status_check
        check (deployment_status in ('pending', 'deploying', 'deployed', 'failed', 'stopped'))
);
create index idx_worker_registry_service_schema on osp_metadata.worker_registry (service_schema);
create index idx_worker_registry_status on osp_metadata.worker_registry (deployment_status);
create unique index worker_registry_deployment_key
    on osp_metadata.worker_registry (deployment_key)
    where deployment_key is not null;
create unique index worker_registry_identity
    on osp_metadata.worker_registry (worker_identity)
    where worker_identity is not null;

alter table public.organizations_projection enable row level security;
alter table public.invitations_projection enable row level security;
alter table public.services enable row level security;
alter table osp_metadata.worker_registry enable row level security;
create policy service_role_read on public.organizations_projection for select to service_role
    using (true);
create policy service_role_read on public.invitations_projection for select to service_role
    using (true);
create policy service_role_all on public.services for all to service_role
    using (true) with check (true);
create policy service_role_all on osp_metadata.worker_registry for all to service_role
    using (true) with check (true);
grant select on public.organizations_projection, public.invitations_projection to service_role;
grant select, insert, update, delete on public.services, osp_metadata.worker_registry to service_role;
