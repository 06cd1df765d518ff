//! An error and its causes as one line, for log lines, readiness reasons and exit messages:
//! the edge where a cause chain is printed, once (a refused connection says "connection
//! refused").

/// `error` and every cause beneath it, `outer: inner: root`; a cause whose text its parent
/// already quotes is not repeated.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("database")]
    struct Outer(#[source] std::io::Error);

    #[derive(Debug, thiserror::Error)]
    #[error("cannot connect: {0}")]
    struct Quoting(#[source] std::io::Error);

    fn refused() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused")
    }

    #[test]
    fn the_chain_names_every_cause_once() {
        assert_eq!(
            error_chain(&Outer(refused())),
            "database: connection refused"
        );
        assert_eq!(
            error_chain(&Quoting(refused())),
            "cannot connect: connection refused"
        );
    }
}
