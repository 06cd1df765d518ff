//! SQL text the activities send that the schema tests examine too (the idempotency lookup's
//! plan must use its index), kept in one place so the test checks what production runs.

/// Whether an event with idempotency key `$1` exists. The `?` test repeats the predicate of
/// the partial unique index `domain_events_idempotency_key`: without it the planner cannot
/// use that index and reads the whole table.
pub const EVENT_WITH_IDEMPOTENCY_KEY: &str = "select 1 from public.domain_events
     where event_metadata ? 'idempotency_key' and event_metadata ->> 'idempotency_key' = $1";
