//! Recorded workflow histories: fetched from the server, written as the Rust client's JSON,
//! and read back from either that format or the protobuf JSON that
//! `temporal workflow show -o json` (and the Go, TypeScript and Python SDKs) export.

use std::path::Path;

use temporalio_client::WorkflowHistory;
use temporalio_common::protos::temporal::api::enums::v1::EventType;
use temporalio_common::protos::temporal::api::history::v1::history_event::Attributes;
use temporalio_common::protos::temporal::api::history::v1::{History, HistoryEvent};

use crate::{TestError, protojson};

/// Which JSON a history file was written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryFormat {
    /// The Rust client's (`WorkflowHistory::to_json`: snake_case fields, numeric enums).
    RustClient,
    /// Protobuf JSON (camelCase fields, enum names, int64 as strings), as the `temporal` CLI
    /// exports it.
    ProtoJson,
}

/// A workflow history held in memory.
#[derive(Debug, Clone)]
pub struct RecordedHistory {
    events: Vec<HistoryEvent>,
    origin: String,
    format: Option<HistoryFormat>,
}

impl RecordedHistory {
    pub(crate) fn from_events(events: Vec<HistoryEvent>, origin: String) -> Self {
        RecordedHistory {
            events,
            origin,
            format: None,
        }
    }

    /// Reads a history file in either format.
    pub fn from_file(path: impl AsRef<Path>) -> Result<RecordedHistory, TestError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path)
            .map_err(|error| TestError::io(format!("reading {}", path.display()), error))?;
        Self::from_json(&bytes, &path.display().to_string())
    }

    /// Decodes a history in either format; `origin` names it in errors.
    pub fn from_json(bytes: &[u8], origin: &str) -> Result<RecordedHistory, TestError> {
        let fail = |message: String| TestError::History {
            origin: origin.to_owned(),
            message,
        };
        let value: serde_json::Value =
            serde_json::from_slice(bytes).map_err(|error| fail(format!("not JSON: {error}")))?;
        let first = value
            .get("events")
            .and_then(|events| events.get(0))
            .ok_or_else(|| fail("no `events` list, or it is empty".to_owned()))?;
        let (events, format) = if first.get("eventId").is_some() || first.get("eventType").is_some()
        {
            let history = protojson::decode_history(value)
                .map_err(|error| fail(osp_stack::error_chain(&error)))?;
            (history.events, HistoryFormat::ProtoJson)
        } else {
            let history: History = serde_json::from_value(value)
                .map_err(|error| fail(format!("not a Rust client history: {error}")))?;
            (history.events, HistoryFormat::RustClient)
        };
        Ok(RecordedHistory {
            events,
            origin: origin.to_owned(),
            format: Some(format),
        })
    }

    /// The events, in order.
    pub fn events(&self) -> &[HistoryEvent] {
        &self.events
    }

    /// Where it came from (a file, a workflow).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The format it was read from, when read from JSON.
    pub fn format(&self) -> Option<HistoryFormat> {
        self.format
    }

    /// The event types, in order, as the short names of the history view
    /// (`WorkflowExecutionStarted`, `ActivityTaskScheduled`, ...).
    pub fn event_types(&self) -> Vec<String> {
        self.events
            .iter()
            .map(|event| {
                EventType::try_from(event.event_type)
                    .map(|kind| format!("{kind:?}"))
                    .unwrap_or_else(|_| format!("EventType({})", event.event_type))
            })
            .collect()
    }

    /// The activity types scheduled, in order.
    pub fn activities(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|event| match &event.attributes {
                Some(Attributes::ActivityTaskScheduledEventAttributes(attributes)) => attributes
                    .activity_type
                    .as_ref()
                    .map(|kind| kind.name.clone()),
                _ => None,
            })
            .collect()
    }

    /// The workflow type, from the first event.
    pub fn workflow_type(&self) -> Option<&str> {
        match self.events.first()?.attributes.as_ref()? {
            Attributes::WorkflowExecutionStartedEventAttributes(attributes) => attributes
                .workflow_type
                .as_ref()
                .map(|kind| kind.name.as_str()),
            _ => None,
        }
    }

    /// The workflow id, from the first event (the CLI's export does not always carry it).
    pub fn workflow_id(&self) -> Option<&str> {
        match self.events.first()?.attributes.as_ref()? {
            Attributes::WorkflowExecutionStartedEventAttributes(attributes)
                if !attributes.workflow_id.is_empty() =>
            {
                Some(attributes.workflow_id.as_str())
            }
            _ => None,
        }
    }

    /// The Rust client's JSON.
    pub fn to_json(&self) -> Result<Vec<u8>, TestError> {
        serde_json::to_vec_pretty(&History {
            events: self.events.clone(),
        })
        .map_err(|error| TestError::History {
            origin: self.origin.clone(),
            message: format!("encoding: {error}"),
        })
    }

    /// Writes the Rust client's JSON to `path` (creating its directory).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), TestError> {
        let path = path.as_ref();
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .map_err(|error| TestError::io(format!("creating {}", dir.display()), error))?;
        }
        std::fs::write(path, self.to_json()?)
            .map_err(|error| TestError::io(format!("writing {}", path.display()), error))
    }

    /// The SDK's history type, for the replayer.
    pub fn into_workflow_history(self) -> WorkflowHistory {
        WorkflowHistory::from(History {
            events: self.events,
        })
    }
}
