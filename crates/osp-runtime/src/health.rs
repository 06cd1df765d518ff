//! Readiness: named checks that each report ready or a reason, plus draining. `/readyz` is
//! 200 only when every check passes and the process is not shutting down.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Shared, cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Health {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
struct State {
    /// `None` when the check passes, else why not.
    checks: BTreeMap<&'static str, Option<String>>,
    draining: bool,
}

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        // A panic while holding this lock cannot leave the map inconsistent.
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut state)
    }

    /// Adds a check that starts failing with `reason`.
    pub fn register(&self, check: &'static str, reason: impl Into<String>) {
        let reason = reason.into();
        self.with(|state| state.checks.insert(check, Some(reason)));
    }

    /// The check passes.
    pub fn pass(&self, check: &'static str) {
        self.with(|state| state.checks.insert(check, None));
    }

    /// The check fails with `reason`.
    pub fn fail(&self, check: &'static str, reason: impl Into<String>) {
        let reason = reason.into();
        self.with(|state| state.checks.insert(check, Some(reason)));
    }

    /// From now on the process is not ready: shutdown has started.
    pub fn drain(&self) {
        self.with(|state| state.draining = true);
    }

    /// Whether the process is shutting down.
    pub fn is_draining(&self) -> bool {
        self.with(|state| state.draining)
    }

    /// Ready, or every reason it is not, as `check: reason`.
    pub fn readiness(&self) -> Result<(), Vec<String>> {
        self.with(|state| {
            let mut reasons: Vec<String> = state
                .checks
                .iter()
                .filter_map(|(check, reason)| reason.as_ref().map(|r| format!("{check}: {r}")))
                .collect();
            if state.draining {
                reasons.push("shutting down".to_owned());
            }
            if reasons.is_empty() {
                Ok(())
            } else {
                Err(reasons)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_passes_and_not_draining() {
        let health = Health::new();
        assert_eq!(health.readiness(), Ok(()));
        health.register("temporal", "connecting");
        health.register("database", "connecting");
        assert_eq!(
            health.readiness(),
            Err(vec![
                "database: connecting".into(),
                "temporal: connecting".into()
            ])
        );
        health.pass("temporal");
        health.pass("database");
        assert_eq!(health.readiness(), Ok(()));
        health.fail("database", "connection refused");
        assert_eq!(
            health.readiness(),
            Err(vec!["database: connection refused".into()])
        );
        health.pass("database");
        health.drain();
        assert_eq!(health.readiness(), Err(vec!["shutting down".into()]));
    }
}
