-- The Telecom Billing service's own tables, in its own schema beside OSP's: accounts with a
-- balance, one invoice per account and period, one payment per payment reference. Written by
-- its activities directly (they are the service's own state); what happened is also told on
-- the account's stream through api.emit_domain_event.
create schema if not exists telecom_billing;

create table if not exists telecom_billing.accounts (
    account_id uuid primary key,
    balance_cents bigint not null default 0,
    updated_at timestamptz not null default now()
);

create table if not exists telecom_billing.invoices (
    invoice_id uuid primary key,
    account_id uuid not null references telecom_billing.accounts (account_id),
    period text not null,
    total_cents bigint not null check (total_cents >= 0),
    status text not null default 'calculated'
        check (status in ('calculated', 'sent', 'paid')),
    created_at timestamptz not null default now(),
    unique (account_id, period)
);

create table if not exists telecom_billing.payments (
    payment_ref text primary key,
    invoice_id uuid not null references telecom_billing.invoices (invoice_id),
    amount_cents bigint not null check (amount_cents > 0),
    -- Set once the payment is taken off the account's balance.
    applied boolean not null default false,
    created_at timestamptz not null default now()
);

-- `invoice.requested` on an account's stream starts processBilling on this service's queue:
-- one row in OSP's routes table is all a service adds to be routed.
insert into osp_metadata.workflow_routes (event_type, workflow_type, task_queue, workflow_id_template)
values ('invoice.requested', 'processBilling', 'telecom_billing_service_789-tasks',
        'billing-{stream_id}-{period}')
on conflict (event_type) do nothing;
