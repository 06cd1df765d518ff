//! The error a bad configuration produces: every problem found, listed at once, so one
//! failed start is enough to fix them all.

use std::fmt;

/// One missing or invalid setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// The setting as the user wrote it: an environment variable name
    /// (`SUPABASE_DB_URL`), or a TOML key and its file (`database.url in /etc/osp.toml`).
    pub key: String,
    /// What is wrong. Quotes the value only when the key is not secret.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// A configuration that cannot be used, with every problem found in it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.problems))]
pub struct ConfigError {
    /// In a stable order: the configuration file first, then the settings in the order of
    /// [`KEYS`](super::KEYS), cross-setting problems beside the setting they name.
    pub problems: Vec<ConfigProblem>,
}

fn render(problems: &[ConfigProblem]) -> String {
    let count = problems.len();
    let noun = if count == 1 { "problem" } else { "problems" };
    let mut out = format!("invalid configuration ({count} {noun}):");
    for problem in problems {
        out.push_str("\n  - ");
        out.push_str(&problem.to_string());
    }
    out
}
