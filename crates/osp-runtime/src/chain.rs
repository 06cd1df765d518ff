//! An error and its causes as one line, for log lines and exit messages: the edge where a
//! cause chain is printed, once (a refused connection says "connection refused").

use std::error::Error;
use std::fmt;

/// Displays `outer: inner: innermost`.
#[derive(Debug, Clone, Copy)]
pub struct Chain<'e>(pub &'e dyn Error);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect to the database")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn every_cause_is_printed_once_in_order() {
        let error = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "connection refused",
        ));
        assert_eq!(
            Chain(&error).to_string(),
            "cannot connect to the database: connection refused"
        );
    }
}
