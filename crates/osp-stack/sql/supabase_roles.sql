-- What a Supabase project's database looks like to the schemas migrated into it: its API
-- roles, their default privileges and schema grants, so tests run against the same grants
-- production has. Run in each database BEFORE the migrations, as the role that runs them
-- (default privileges apply to objects that role creates). Safe to run again.
--
-- Supabase: anon and authenticated are the PostgREST roles of visitors and signed-in users
-- (NOLOGIN, reached by SET ROLE from authenticator); service_role is the server key's role
-- (NOLOGIN, BYPASSRLS); authenticator is the only one that logs in (NOINHERIT: it holds no
-- privilege of its own until it switches role). Every new table, sequence and function in
-- schema public is granted ALL to the three API roles, which is what makes a migration that
-- only ever GRANTs (and never REVOKEs) leave its tables writable by anon.

-- Roles are per cluster, so two databases bootstrapping at once may race: the loser moves on.
do $$
declare
    v_role record;
begin
    for v_role in
        select * from (values
            ('anon', 'nologin noinherit'),
            ('authenticated', 'nologin noinherit'),
            ('service_role', 'nologin noinherit bypassrls'),
            ('authenticator', 'login noinherit')
        ) as r (name, options)
    loop
        if not exists (select 1 from pg_roles where rolname = v_role.name) then
            begin
                execute format('create role %I %s', v_role.name, v_role.options);
            exception when duplicate_object or unique_violation then
                null;
            end;
        end if;
    end loop;
    -- A service_role made earlier (by a migration's fallback) gets Supabase's attribute.
    if exists (select 1 from pg_roles where rolname = 'service_role' and not rolbypassrls) then
        alter role service_role bypassrls;
    end if;
    if not exists (
        select 1
        from pg_auth_members m
        join pg_roles r on r.oid = m.roleid
        join pg_roles a on a.oid = m.member
        where a.rolname = 'authenticator' and r.rolname = 'service_role'
    ) then
        begin
            grant anon, authenticated, service_role to authenticator;
        exception when duplicate_object or unique_violation then
            null;
        end;
    end if;
end
$$;

grant usage on schema public to anon, authenticated, service_role;

alter default privileges in schema public
    grant all on tables to anon, authenticated, service_role;
alter default privileges in schema public
    grant all on sequences to anon, authenticated, service_role;
alter default privileges in schema public
    grant all on functions to anon, authenticated, service_role;
