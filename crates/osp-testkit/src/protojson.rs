//! Protobuf JSON (the canonical JSON mapping: camelCase names, enum names, 64-bit integers
//! as strings, base64 bytes, RFC 3339 timestamps), as `temporal workflow show -o json` and the
//! other SDKs export histories, read into the SDK's history type. The Rust protos only read
//! their own serde JSON; prost-reflect reads protobuf JSON through the descriptors
//! `temporalio-protos` publishes (copied in by build.rs) and transcodes it into the SDK's
//! `History`. Unknown fields are skipped, as a tolerant protobuf JSON parser does, so an
//! export from a newer CLI still reads.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DeserializeOptions, DynamicMessage, MessageDescriptor};
use serde_json::Value;
use temporalio_common::protos::temporal::api::history::v1::History;

/// The protobuf descriptors of the Temporal API, as compiled into the SDK.
static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/temporal_descriptors.bin"));

const HISTORY: &str = "temporal.api.history.v1.History";

/// Why protobuf JSON could not be read as a history.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProtoJsonError {
    /// The build found no descriptors to copy (see build.rs).
    #[error(
        "the Temporal protobuf descriptors were not available when osp-testkit was built, so \
         protobuf JSON cannot be read"
    )]
    NoDescriptors,
    /// The descriptors do not form a valid set, or lack the history message.
    #[error("reading the Temporal protobuf descriptors: {0}")]
    Descriptors(String),
    /// The JSON is not a history in protobuf JSON.
    #[error("not protobuf JSON of a history")]
    Json(#[source] serde_json::Error),
    /// The message does not convert into the SDK's type (a descriptor and SDK mismatch).
    #[error("converting into the SDK's history type")]
    Transcode(#[source] prost::DecodeError),
}

/// The history message's descriptor, decoded once.
fn history_descriptor() -> Result<&'static MessageDescriptor, ProtoJsonError> {
    static DESCRIPTOR: OnceLock<Result<MessageDescriptor, String>> = OnceLock::new();
    if DESCRIPTORS.is_empty() {
        return Err(ProtoJsonError::NoDescriptors);
    }
    DESCRIPTOR
        .get_or_init(|| {
            let pool = DescriptorPool::decode(DESCRIPTORS).map_err(|error| error.to_string())?;
            pool.get_message_by_name(HISTORY)
                .ok_or_else(|| format!("no message {HISTORY}"))
        })
        .as_ref()
        .map_err(|message| ProtoJsonError::Descriptors(message.clone()))
}

/// Reads protobuf JSON into the SDK's `History`.
pub(crate) fn decode_history(value: Value) -> Result<History, ProtoJsonError> {
    let descriptor = history_descriptor()?.clone();
    let options = DeserializeOptions::new().deny_unknown_fields(false);
    let message = DynamicMessage::deserialize_with_options(descriptor, value, &options)
        .map_err(ProtoJsonError::Json)?;
    message
        .transcode_to::<History>()
        .map_err(ProtoJsonError::Transcode)
}

#[cfg(test)]
mod tests {
    use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;

    use super::*;

    #[test]
    fn a_cli_history_decodes_into_the_sdk_types() {
        let json = serde_json::json!({"events": [{
            "eventId": "1",
            "eventTime": "2026-11-22T08:34:16.559154709Z",
            "eventType": "EVENT_TYPE_WORKFLOW_EXECUTION_STARTED",
            "taskId": "1048587",
            "someFieldFromTheFuture": {"x": 1},
            "workflowExecutionStartedEventAttributes": {
                "workflowType": {"name": "createServiceWorkflow"},
                "taskQueue": {"name": "tq", "kind": "TASK_QUEUE_KIND_NORMAL"},
                "input": {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="},
                                        "data": "eyJuYW1lIjoieCJ9"}]},
                "workflowTaskTimeout": "10s",
                "attempt": 1,
                "header": {},
                "workflowId": "w1"
            }
        }]});
        let history = decode_history(json).unwrap();
        let event = &history.events[0];
        assert_eq!(event.event_id, 1);
        assert_eq!(event.task_id, 1_048_587);
        assert_eq!(event.event_type, 1);
        let time = event.event_time.as_ref().unwrap();
        assert_eq!((time.seconds, time.nanos), (1_795_336_456, 559_154_709));
        let Some(Attributes::WorkflowExecutionStartedEventAttributes(started)) = &event.attributes
        else {
            panic!("{event:?}");
        };
        assert_eq!(
            started.workflow_type.as_ref().unwrap().name,
            "createServiceWorkflow"
        );
        assert_eq!(started.workflow_id, "w1");
        assert_eq!(started.task_queue.as_ref().unwrap().kind, 1);
        let payload = &started.input.as_ref().unwrap().payloads[0];
        assert_eq!(payload.metadata["encoding"], b"json/plain");
        assert_eq!(payload.data, br#"{"name":"x"}"#);
        let timeout = started.workflow_task_timeout.as_ref().unwrap();
        assert_eq!((timeout.seconds, timeout.nanos), (10, 0));
    }

    #[test]
    fn json_that_is_not_a_history_names_the_field() {
        let error = decode_history(serde_json::json!({"events": [{"eventId": "x"}]})).unwrap_err();
        let cause = std::error::Error::source(&error).unwrap().to_string();
        assert!(
            cause.contains("eventId") || cause.contains("invalid"),
            "{error}: {cause}"
        );
    }
}
