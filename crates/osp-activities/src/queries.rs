//! SQL text the activities send that the schema tests examine too (the idempotency lookup's
//! plan must use its index), kept in one place so the test checks what production runs.

/// Whether an event with idempotency key `$1` exists. The `?` test repeats the predicate of
/// the partial unique index `domain_events_idempotency_key`: without it the planner cannot
/// use that index and reads the whole table.
pub const EVENT_WITH_IDEMPOTENCY_KEY: &str = "select 1 from public.domain_events
     where event_metadata ? 'idempotency_key' and event_metadata ->> 'idempotency_key' = $1";

/// What bounds each statement an activity sends, set for its own transaction only: a lock
/// wait (a stream or row another session holds) fails with 55P03 after `lock_timeout`, a
/// stuck statement with 57014 after `statement_timeout`; both are classified retryable
/// (`errors.rs`), so the activity's retry policy runs it again. `SET LOCAL` ends with the
/// transaction, so nothing outlives it behind a transaction-mode pooler.
pub const STATEMENT_BOUNDS: &str =
    "set local lock_timeout = '5s'; set local statement_timeout = '30s'";
