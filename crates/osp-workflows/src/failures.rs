//! How workflows fail: the application failure types other SDKs can match on, and readable
//! reasons drawn from activity failures.

use std::error::Error as _;

use osp_core::validate::InvalidInput;
use temporalio_sdk::{ActivityExecutionError, ApplicationFailure, WorkflowTermination};

/// The failure type of input that breaks a contract rule; never retried.
pub const INVALID_INPUT: &str = "InvalidInput";
/// The failure type of a bootstrap that failed for good after compensation.
pub const BOOTSTRAP_FAILED: &str = "BootstrapFailed";

/// Fails the workflow at once, naming every broken field; nothing has been written yet.
pub(crate) fn invalid_input(error: InvalidInput) -> WorkflowTermination {
    WorkflowTermination::failed_application(
        ApplicationFailure::builder(error)
            .type_name(INVALID_INPUT.to_owned())
            .non_retryable(true)
            .build(),
    )
}

/// A non-retryable failure of the given type with a message.
pub(crate) fn fail(type_name: &str, message: String) -> WorkflowTermination {
    WorkflowTermination::failed_application(
        ApplicationFailure::builder(message)
            .type_name(type_name.to_owned())
            .non_retryable(true)
            .build(),
    )
}

/// The innermost message of an activity failure: the activity's own words, not the SDK's
/// "Activity failed" wrapping.
pub(crate) fn reason(error: &ActivityExecutionError) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(next) = source {
        let text = next.to_string();
        if !text.is_empty() {
            message = text;
        }
        source = next.source();
    }
    message
}
