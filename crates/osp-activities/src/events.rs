//! Domain events from Rust: append one through `api.emit_domain_event` (either of its two
//! shapes, optionally with an idempotency key, in the caller's transaction or on its own
//! connection) and read a stream back. The database assigns the stream version and applies
//! the projections and routes; this module only calls the same functions a client in any
//! other language calls, with typed values (the two overloads have the same arity, so untyped
//! literals would be ambiguous) and unnamed statements (safe behind a transaction-mode
//! pooler).

use std::time::Duration;

use serde_json::{Map, Value, json};
use temporalio_sdk::activities::ActivityContext;
use tokio_postgres::GenericClient;
use tokio_postgres::types::Type;
use uuid::Uuid;

use crate::errors::{Failure, types};

/// The metadata key `api.emit_domain_event` deduplicates on.
pub const IDEMPOTENCY_KEY: &str = "idempotency_key";

/// Why an event could not be appended or a stream read. The database's own message (which
/// names the bad field or the refused event type) is in the source.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// `api.emit_domain_event` refused the event or could not run.
    #[error("appending {event_type} to stream {stream_id}")]
    Append {
        event_type: String,
        stream_id: Uuid,
        #[source]
        source: tokio_postgres::Error,
    },
    /// The append returned no event id (the function's contract says it always does).
    #[error("appending {event_type} to stream {stream_id} returned no event id")]
    NoId { event_type: String, stream_id: Uuid },
    /// Reading the stream failed.
    #[error("reading stream {stream_id}")]
    Read {
        stream_id: Uuid,
        #[source]
        source: tokio_postgres::Error,
    },
}

/// Which of `api.emit_domain_event`'s two shapes to call. Both append the same row; the
/// aggregate shape is the one the seed's activities used, the stream shape the one its Edge
/// Functions used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Shape {
    /// `(p_stream_id, p_stream_type, p_event_type, p_event_data, p_event_metadata)`.
    #[default]
    Stream,
    /// `(p_event_type, p_aggregate_type, p_aggregate_id, p_event_data, p_event_metadata)`.
    Aggregate,
}

/// A domain event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// The stream (aggregate) it belongs to.
    pub stream_id: Uuid,
    /// `organization`, `service`, ...
    pub stream_type: String,
    /// `organization.bootstrap.initiated`, ...
    pub event_type: String,
    /// Its data: a JSON object.
    pub data: Value,
    /// Its metadata: correlation ids, the idempotency key.
    pub metadata: Map<String, Value>,
    /// Which overload to call.
    pub shape: Shape,
}

impl NewEvent {
    /// An event with empty metadata, appended through the stream shape.
    pub fn new(
        stream_type: impl Into<String>,
        stream_id: Uuid,
        event_type: impl Into<String>,
        data: Value,
    ) -> Self {
        NewEvent {
            stream_id,
            stream_type: stream_type.into(),
            event_type: event_type.into(),
            data,
            metadata: Map::new(),
            shape: Shape::Stream,
        }
    }

    /// Appends at most once per `key`: a second append with the same key returns the first
    /// event's id and writes nothing.
    pub fn idempotency_key(self, key: impl Into<String>) -> Self {
        self.metadata_entry(IDEMPOTENCY_KEY, Value::String(key.into()))
    }

    /// Adds one metadata entry.
    pub fn metadata_entry(mut self, key: impl Into<String>, value: Value) -> Self {
        self.metadata.insert(key.into(), value);
        self
    }

    /// Calls the other overload.
    pub fn shape(mut self, shape: Shape) -> Self {
        self.shape = shape;
        self
    }

    /// Marks the event as appended by `ctx`'s activity (`workflow_id`, `workflow_run_id`,
    /// `activity_type` in its metadata). Such an event keeps the chain order: it cannot be
    /// appended to a stream on which its workflow's start is not recorded yet, and
    /// [`when_started`] tries it again until it is.
    pub fn from_activity(self, ctx: &ActivityContext) -> Self {
        let info = ctx.info();
        self.metadata_entry("workflow_id", json!(info.workflow_id))
            .metadata_entry("workflow_run_id", json!(info.workflow_run_id))
            .metadata_entry("activity_type", json!(info.activity_type))
    }
}

/// SQLSTATE of an append refused because the start of the workflow its metadata names is not
/// recorded on the stream yet (migration 0008): the bridge records it moments after Temporal
/// acknowledged the start, so the append is simply made again.
pub const START_NOT_RECORDED_SQLSTATE: &str = "OSP01";

/// How long [`when_started`] keeps trying before it gives the refusal back: far longer than
/// a bridge takes to record a start, short against an activity's timeout. Past it, the
/// failure is retryable and the activity's retry policy takes over.
pub const START_WAIT: Duration = Duration::from_secs(10);

/// Runs `attempt` (one whole transaction, made from scratch each time) again while it fails
/// because its workflow's start is not recorded yet, waiting 2 ms, then twice as long each
/// time, at most 100 ms, for at most [`START_WAIT`]. Nothing is held while it waits: the
/// refused transaction has rolled back. Any other outcome is returned as it is.
pub async fn when_started<T, F, Fut>(mut attempt: F) -> Result<T, Failure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let deadline = tokio::time::Instant::now() + START_WAIT;
    let mut delay = Duration::from_millis(2);
    loop {
        match attempt().await {
            Err(failure)
                if failure.type_name == types::START_NOT_RECORDED
                    && tokio::time::Instant::now() + delay < deadline =>
            {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Appends `event` and returns its id. `client` may be a connection (the append is then its
/// own transaction) or a transaction of the caller's, so that the event commits together
/// with the caller's own writes.
pub async fn append(client: &impl GenericClient, event: &NewEvent) -> Result<Uuid, EventError> {
    let metadata = Value::Object(event.metadata.clone());
    let rows = match event.shape {
        Shape::Stream => {
            client
                .query_typed(
                    "select api.emit_domain_event($1, $2, $3, $4, $5)",
                    &[
                        (&event.stream_id, Type::UUID),
                        (&event.stream_type, Type::TEXT),
                        (&event.event_type, Type::TEXT),
                        (&event.data, Type::JSONB),
                        (&metadata, Type::JSONB),
                    ],
                )
                .await
        }
        Shape::Aggregate => {
            client
                .query_typed(
                    "select api.emit_domain_event($1, $2, $3, $4, $5)",
                    &[
                        (&event.event_type, Type::TEXT),
                        (&event.stream_type, Type::TEXT),
                        (&event.stream_id, Type::UUID),
                        (&event.data, Type::JSONB),
                        (&metadata, Type::JSONB),
                    ],
                )
                .await
        }
    }
    .map_err(|source| EventError::Append {
        event_type: event.event_type.clone(),
        stream_id: event.stream_id,
        source,
    })?;
    rows.first()
        .and_then(|row| row.get::<_, Option<Uuid>>(0))
        .ok_or_else(|| EventError::NoId {
            event_type: event.event_type.clone(),
            stream_id: event.stream_id,
        })
}

/// One stored domain event.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    /// Its id.
    pub id: Uuid,
    /// Its position in the stream, from 1.
    pub stream_version: i32,
    /// `organization.created`, ...
    pub event_type: String,
    /// Its data.
    pub event_data: Value,
    /// Its metadata (idempotency key, workflow id, ...).
    pub event_metadata: Value,
}

/// The columns [`StoredEvent::from_row`] reads, in its order.
pub(crate) const STORED_EVENT_COLUMNS: &str =
    "id, stream_version, event_type, event_data, event_metadata";

impl StoredEvent {
    /// A row of [`STORED_EVENT_COLUMNS`].
    pub(crate) fn from_row(row: &tokio_postgres::Row) -> StoredEvent {
        StoredEvent {
            id: row.get(0),
            stream_version: row.get(1),
            event_type: row.get(2),
            event_data: row.get(3),
            event_metadata: row.get(4),
        }
    }
}

impl std::fmt::Display for StoredEvent {
    /// `#3 organization.created {"name": ...}`: one line of a chain diff.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "#{} {} {}",
            self.stream_version, self.event_type, self.event_data
        )
    }
}

/// The events of `stream_id`, in stream order.
pub async fn read_stream(
    client: &impl GenericClient,
    stream_id: Uuid,
) -> Result<Vec<StoredEvent>, EventError> {
    let rows = client
        .query_typed(
            &format!(
                "select {STORED_EVENT_COLUMNS}
                 from public.domain_events where stream_id = $1 order by stream_version"
            ),
            &[(&stream_id, Type::UUID)],
        )
        .await
        .map_err(|source| EventError::Read { stream_id, source })?;
    Ok(rows.iter().map(StoredEvent::from_row).collect())
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;
    use crate::errors::Retry;

    #[tokio::test]
    async fn when_started_tries_again_while_the_start_is_unrecorded_and_returns_anything_else() {
        let calls = Cell::new(0);
        let result = when_started(|| {
            calls.set(calls.get() + 1);
            let call = calls.get();
            async move {
                if call < 3 {
                    Err(Failure::new(
                        types::START_NOT_RECORDED,
                        Retry::Yes,
                        "not yet",
                    ))
                } else {
                    Ok(call)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 3);

        let calls = Cell::new(0);
        let result: Result<(), Failure> = when_started(|| {
            calls.set(calls.get() + 1);
            async {
                Err(Failure::new(
                    types::DATABASE_UNAVAILABLE,
                    Retry::Yes,
                    "down",
                ))
            }
        })
        .await;
        assert_eq!(calls.get(), 1);
        assert_eq!(result.unwrap_err().type_name, types::DATABASE_UNAVAILABLE);
    }

    #[test]
    fn the_builder_fills_the_metadata_and_the_shape() {
        let stream = Uuid::nil();
        let event = NewEvent::new("organization", stream, "organization.created", Value::Null)
            .idempotency_key("w/r/organization.created")
            .metadata_entry("workflow_id", Value::from("w"))
            .shape(Shape::Aggregate);
        assert_eq!(event.metadata[IDEMPOTENCY_KEY], "w/r/organization.created");
        assert_eq!(event.metadata["workflow_id"], "w");
        assert_eq!(event.shape, Shape::Aggregate);
        assert_eq!(
            NewEvent::new("s", stream, "e", Value::Null).shape,
            Shape::Stream
        );
    }
}
