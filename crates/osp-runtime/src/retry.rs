//! The start-up loop every OSP process runs for each dependency: try, and on failure mark the
//! readiness check failed with the reason, count it, log it with its causes, back off with
//! jitter and try again, for as long as the process lives.

use std::future::Future;
use std::time::Duration;

use crate::Health;
use crate::backoff::Backoff;
use crate::chain::error_chain;

/// The first retry comes after about this long ...
const INITIAL: Duration = Duration::from_millis(250);
/// ... and no retry waits longer than this.
const MAX: Duration = Duration::from_secs(10);

/// Calls `attempt` until it succeeds. Each failure sets `check` failing on `health` with the
/// error and its causes, calls `on_failure` (a metric), and logs `{check} unavailable`. The
/// check is left as it is on success: what "passing" means is the caller's.
pub async fn until_ok<T, E, F, Fut>(
    health: &Health,
    check: &'static str,
    mut attempt: F,
    mut on_failure: impl FnMut(),
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::error::Error,
{
    let mut backoff = Backoff::new(INITIAL, MAX);
    loop {
        match attempt().await {
            Ok(value) => return value,
            Err(error) => {
                let (delay, attempt) = backoff.next_delay();
                let reason = error_chain(&error);
                health.fail(check, reason.clone());
                on_failure();
                tracing::warn!(
                    error = %reason,
                    attempt,
                    retry_in_ms = delay.as_millis() as u64,
                    "{check} unavailable"
                );
                tokio::time::sleep(delay).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("database")]
    struct Outer(#[source] std::io::Error);

    #[tokio::test]
    async fn failures_mark_the_check_until_an_attempt_succeeds() {
        let health = Health::new();
        let mut attempts = 0;
        let mut failures = 0;
        let value = until_ok(
            &health,
            "database",
            || {
                attempts += 1;
                let result = if attempts < 3 {
                    Err(Outer(std::io::Error::other("refused")))
                } else {
                    Ok(attempts)
                };
                async move { result }
            },
            || failures += 1,
        )
        .await;
        assert_eq!((value, failures), (3, 2));
        assert_eq!(
            health.readiness(),
            Err(vec!["database: database: refused".to_owned()])
        );
    }
}
