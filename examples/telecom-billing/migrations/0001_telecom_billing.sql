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
-- one row in OSP's routes table is all a service adds to be routed. The bridge checks the
-- event's data against the schema (BillingRequest) and fills `account_id` from the stream,
-- so a client does not repeat the account id; a different one fails the job.
insert into osp_metadata.workflow_routes
    (event_type, workflow_type, task_queue, workflow_id_template, input_schema, stream_id_field)
values ('invoice.requested', 'processBilling', 'telecom_billing_service_789-tasks',
        'billing-{stream_id}-{period}',
        '{"type": "object",
          "required": ["account_id", "period", "usage", "email"],
          "additionalProperties": false,
          "properties": {
            "account_id": {"type": "string", "format": "uuid"},
            "period": {"type": "string", "pattern": "^[0-9]{4}-(0[1-9]|1[0-2])$"},
            "usage": {"type": "array", "minItems": 1, "maxItems": 1000,
                      "items": {"type": "object",
                                "required": ["item", "quantity", "unit_price_cents"],
                                "additionalProperties": false,
                                "properties": {
                                  "item": {"type": "string", "minLength": 1, "maxLength": 100},
                                  "quantity": {"type": "integer", "minimum": 0, "maximum": 4294967295},
                                  "unit_price_cents": {"type": "integer", "minimum": 0, "maximum": 4294967295}}}},
            "email": {"type": "string", "format": "email", "maxLength": 254}}}',
        'account_id')
on conflict (event_type) do nothing;
