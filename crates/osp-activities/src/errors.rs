//! The one place that decides which failures an activity retries. Activities work in
//! `Result<_, Failure>` and convert once, through [`Failure::into_activity_error`].
//! `Failure` deliberately does not implement `std::error::Error`: the SDK turns any such
//! error into a *retryable* failure by a blanket `From`, which would skip the decision.

use osp_core::validate::InvalidInput;
use temporalio_sdk::ApplicationFailure;
use temporalio_sdk::activities::ActivityError;
use tokio_postgres::error::SqlState;

/// Application failure type names, for other SDKs and for alerting.
pub mod types {
    /// Input that breaks a contract rule.
    pub const INVALID_INPUT: &str = "InvalidInput";
    /// A constraint refused the write (unique, foreign key, check).
    pub const CONSTRAINT_VIOLATION: &str = "ConstraintViolation";
    /// The database refused the data or the statement.
    pub const DATA_REJECTED: &str = "DataRejected";
    /// The database could not be reached or dropped the connection.
    pub const DATABASE_UNAVAILABLE: &str = "DatabaseUnavailable";
    /// A serialization failure or deadlock; the transaction can simply run again.
    pub const TRANSACTION_CONFLICT: &str = "TransactionConflict";
    /// The database cancelled a statement (timeout, shutdown).
    pub const DATABASE_TIMEOUT: &str = "DatabaseTimeout";
    /// Any other database error.
    pub const DATABASE_ERROR: &str = "DatabaseError";
    /// The DNS provider failed.
    pub const DNS_FAILED: &str = "DnsFailed";
    /// The mail server failed or refused.
    pub const EMAIL_FAILED: &str = "EmailFailed";
    /// The deployer command failed.
    pub const DEPLOYER_FAILED: &str = "DeployerFailed";
    /// The deployer cannot run at all (not configured, not installed, bad template).
    pub const DEPLOYER_UNUSABLE: &str = "DeployerUnusable";
    /// The activity was called outside a workflow, or its input is inconsistent with state.
    pub const PRECONDITION_FAILED: &str = "PreconditionFailed";
    /// The workflow's start is not recorded on the stream yet (SQLSTATE OSP01): its events
    /// wait for it; retried.
    pub const START_NOT_RECORDED: &str = "StartNotRecorded";
}

/// Whether retrying can help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A transient condition: the activity's retry policy applies.
    Yes,
    /// Retrying gives the same answer: fail the activity for good.
    No,
}

/// A classified activity failure.
#[derive(Debug)]
pub struct Failure {
    /// The application failure type (see [`types`]).
    pub type_name: &'static str,
    pub retry: Retry,
    pub message: String,
}

impl Failure {
    pub fn new(type_name: &'static str, retry: Retry, message: impl Into<String>) -> Self {
        Self {
            type_name,
            retry,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<InvalidInput> for Failure {
    fn from(error: InvalidInput) -> Self {
        Self::new(types::INVALID_INPUT, Retry::No, error.to_string())
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(error: tokio_postgres::Error) -> Self {
        let (type_name, retry) = classify_database_error(&error);
        let message = match error.as_db_error() {
            Some(db) => match db.hint() {
                Some(hint) => format!("database: {} ({hint})", db.message()),
                None => format!("database: {}", db.message()),
            },
            None => format!("database: {error}"),
        };
        Self::new(type_name, retry, message)
    }
}

impl From<crate::events::EventError> for Failure {
    /// Classified by the database error underneath, like any other statement.
    fn from(error: crate::events::EventError) -> Self {
        use crate::events::EventError;
        match error {
            EventError::Append { source, .. } | EventError::Read { source, .. } => source.into(),
            EventError::NoId { .. } => {
                Self::new(types::DATA_REJECTED, Retry::No, error.to_string())
            }
        }
    }
}

impl From<deadpool_postgres::PoolError> for Failure {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        match error {
            deadpool_postgres::PoolError::Backend(error) => error.into(),
            // Timeouts and a closed pool: the database or the pool is busy or restarting.
            other => Self::new(
                types::DATABASE_UNAVAILABLE,
                Retry::Yes,
                format!("database pool: {other}"),
            ),
        }
    }
}

impl Failure {
    /// The application failure Temporal records: its type, message and retryability.
    pub fn into_activity_error(self) -> ActivityError {
        ActivityError::application(
            ApplicationFailure::builder(self.message)
                .type_name(self.type_name.to_owned())
                .non_retryable(self.retry == Retry::No)
                .build(),
        )
    }
}

/// Converts an activity's outcome; the one way a `Failure` leaves an activity.
pub fn into_activity<T>(result: Result<T, Failure>) -> Result<T, ActivityError> {
    result.map_err(Failure::into_activity_error)
}

/// Database errors by SQLSTATE class: bad data and broken constraints are the caller's and
/// never succeed on retry; lost connections, conflicts and cancelled statements are
/// transient. An error with no SQLSTATE is a connection-level failure.
pub fn classify_database_error(error: &tokio_postgres::Error) -> (&'static str, Retry) {
    let Some(code) = error.code() else {
        return (types::DATABASE_UNAVAILABLE, Retry::Yes);
    };
    classify_sqlstate(code)
}

/// The SQLSTATE part of [`classify_database_error`].
pub fn classify_sqlstate(code: &SqlState) -> (&'static str, Retry) {
    let code = code.code();
    match code {
        "40001" | "40P01" => (types::TRANSACTION_CONFLICT, Retry::Yes),
        "57014" | "55P03" => (types::DATABASE_TIMEOUT, Retry::Yes),
        crate::events::START_NOT_RECORDED_SQLSTATE => (types::START_NOT_RECORDED, Retry::Yes),
        _ => match &code[..2] {
            // connection exception; operator intervention (shutdown); insufficient
            // resources; system error
            "08" | "57" | "53" | "58" => (types::DATABASE_UNAVAILABLE, Retry::Yes),
            "23" => (types::CONSTRAINT_VIOLATION, Retry::No),
            // data exception; syntax or access rule; invalid parameter; not supported;
            // wrong object state (e.g. an append-only table)
            "22" | "42" | "2F" | "0A" | "55" | "P0" => (types::DATA_REJECTED, Retry::No),
            _ => (types::DATABASE_ERROR, Retry::Yes),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(code: &str, expected: (&str, Retry)) {
        assert_eq!(
            classify_sqlstate(&SqlState::from_code(code)),
            expected,
            "{code}"
        );
    }

    #[test]
    fn validation_and_constraints_are_not_retried() {
        check("23505", (types::CONSTRAINT_VIOLATION, Retry::No)); // unique
        check("23503", (types::CONSTRAINT_VIOLATION, Retry::No)); // foreign key
        check("23514", (types::CONSTRAINT_VIOLATION, Retry::No)); // check
        check("22023", (types::DATA_REJECTED, Retry::No)); // our emit validation
        check("22004", (types::DATA_REJECTED, Retry::No)); // null stream id
        check("42501", (types::DATA_REJECTED, Retry::No)); // projection guard
        check("55000", (types::DATA_REJECTED, Retry::No)); // append-only
        check("P0001", (types::DATA_REJECTED, Retry::No)); // raise exception
    }

    #[test]
    fn connection_loss_is_retried() {
        check("08006", (types::DATABASE_UNAVAILABLE, Retry::Yes));
        check("08001", (types::DATABASE_UNAVAILABLE, Retry::Yes));
        check("57P01", (types::DATABASE_UNAVAILABLE, Retry::Yes)); // admin shutdown
        check("57P03", (types::DATABASE_UNAVAILABLE, Retry::Yes)); // cannot connect now
        check("53300", (types::DATABASE_UNAVAILABLE, Retry::Yes)); // too many connections
    }

    #[test]
    fn an_event_waiting_for_its_workflows_start_is_retried() {
        check("OSP01", (types::START_NOT_RECORDED, Retry::Yes));
    }

    #[test]
    fn serialization_failures_and_deadlocks_are_retried() {
        check("40001", (types::TRANSACTION_CONFLICT, Retry::Yes));
        check("40P01", (types::TRANSACTION_CONFLICT, Retry::Yes));
    }

    #[test]
    fn timeouts_are_retried() {
        check("57014", (types::DATABASE_TIMEOUT, Retry::Yes)); // statement timeout
        check("55P03", (types::DATABASE_TIMEOUT, Retry::Yes)); // lock not available
    }

    #[test]
    fn unknown_errors_are_retried() {
        check("XX000", (types::DATABASE_ERROR, Retry::Yes));
    }

    #[test]
    fn a_failure_becomes_an_application_failure_with_its_type() {
        let error = Failure::new(types::EMAIL_FAILED, Retry::No, "refused").into_activity_error();
        let ActivityError::Application(failure) = error else {
            panic!("not an application failure");
        };
        assert_eq!(failure.type_name(), Some(types::EMAIL_FAILED));
        assert!(failure.is_non_retryable());
        assert_eq!(failure.to_string(), "refused");

        let error = Failure::from(InvalidInput {
            payload: "ServiceData",
            errors: vec![],
        })
        .into_activity_error();
        let ActivityError::Application(failure) = error else {
            panic!("not an application failure");
        };
        assert_eq!(failure.type_name(), Some(types::INVALID_INPUT));
        assert!(failure.is_non_retryable());
    }
}
