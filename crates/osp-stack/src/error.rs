//! The testkit's one error type: why a throwaway server could not be found, started, reached
//! or stopped.

use std::time::Duration;

/// What went wrong with a throwaway server. Startup failures carry the tail of that server's
/// log, because the cause (a bad flag, a port taken, a crash) is almost always written there.
#[derive(Debug, thiserror::Error)]
pub enum StackError {
    /// A server binary was not found where the testkit looks for it.
    #[error("cannot find `{name}` (searched {searched}); {hint}")]
    MissingBinary {
        /// The program that is missing, such as `initdb` or `temporal`.
        name: String,
        /// Every place looked at, the variable that overrides the search first.
        searched: String,
        /// What to do about it.
        hint: &'static str,
    },
    /// A file system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What the testkit was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A server process (or `initdb`) exited, or could not bind its port, before it was ready.
    #[error("{what} failed to start: {reason}\n--- last lines of its log ---\n{log_tail}")]
    StartupFailed {
        /// Which server.
        what: String,
        /// Why, in a few words (exit status, port taken on every attempt).
        reason: String,
        /// The last lines of the server's log.
        log_tail: String,
    },
    /// A server process kept running but did not answer before the deadline.
    #[error(
        "{what} was not ready after {waited:?} (last probe: {last_error})\n--- last lines of its log ---\n{log_tail}"
    )]
    NotReady {
        /// Which server.
        what: String,
        /// How long the testkit waited.
        waited: Duration,
        /// The error of the last readiness probe.
        last_error: String,
        /// The last lines of the server's log.
        log_tail: String,
    },
    /// A statement against the throwaway Postgres (or through the PgBouncer) failed.
    #[error("postgres error: {}", postgres_detail(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// A call to the Temporal dev server failed.
    #[error("temporal dev server error: {0}")]
    Temporal(String),
    /// A database name the testkit will not put into SQL and URLs.
    #[error(
        "invalid database name {name:?}: use 1 to 63 ASCII letters, digits and underscores, not starting with a digit"
    )]
    InvalidDatabaseName {
        /// The rejected name.
        name: String,
    },
    /// Stopping a server did not finish cleanly (it had to be killed, or could not be reaped).
    #[error("{what} did not stop cleanly: {reason}")]
    StopFailed {
        /// Which server.
        what: String,
        /// What happened.
        reason: String,
    },
}

impl StackError {
    /// An [`StackError::Io`] with what the testkit was doing.
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StackError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Why one readiness probe of a starting server failed; probes are retried until the
/// server's deadline, and the last failure is reported with its causes.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Logging in to PostgreSQL or PgBouncer, or the trivial query, failed.
    #[error("postgres")]
    Postgres(#[source] tokio_postgres::Error),
    /// The dev server's address does not form a URL.
    #[error("temporal address {address} is not a URL")]
    Address {
        address: String,
        #[source]
        source: url::ParseError,
    },
    /// The gRPC connection to the dev server failed.
    #[error("connecting to temporal")]
    Connect(#[source] temporalio_client::errors::ClientConnectError),
    /// A namespace is not registered yet.
    #[error("describing namespace {namespace}")]
    Namespace {
        namespace: String,
        #[source]
        source: temporalio_client::tonic::Status,
    },
}

/// Why a client could not connect to a local dev server ([`crate::local_client`]).
#[derive(Debug, thiserror::Error)]
pub enum LocalClientError {
    /// The address does not form a URL.
    #[error("temporal address {address} is not a URL")]
    Address {
        address: String,
        #[source]
        source: url::ParseError,
    },
    /// The gRPC connection failed.
    #[error("connecting to temporal at {address}")]
    Connect {
        address: String,
        #[source]
        source: temporalio_client::errors::ClientConnectError,
    },
    /// No answer within the deadline.
    #[error("no answer from temporal at {address} within {after:?}")]
    TimedOut { address: String, after: Duration },
    /// The client could not be made from the connection.
    #[error("creating the temporal client")]
    Client(#[source] temporalio_client::errors::ClientNewError),
}

/// A tokio-postgres error with its causes: its own `Display` says only "db error", and the
/// server's message (which names the problem) is in the source chain.
pub fn postgres_detail(error: &tokio_postgres::Error) -> String {
    error_chain(error)
}

/// An error and its causes on one line, `outer: inner: innermost`: for messages that are
/// printed once, where the whole chain must be seen (a refused connection says so).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
