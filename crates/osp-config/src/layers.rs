//! The layered lookup (defaults < `OSP_CONFIG` file < environment) and the accumulator
//! that collects every problem instead of stopping at the first.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::error::{ConfigError, ConfigProblem};
use super::keys::{KEYS, Key, OSP_CONFIG};
use super::values::{InvalidValue, redact_url};
use super::{Sources, Strings};

/// The outcome of looking up and parsing one setting.
pub(super) enum Setting<T> {
    /// Set in no layer.
    Unset,
    /// Set and valid; `origin` names where it came from, for cross-setting problems.
    Valid { value: T, origin: String },
    /// Set but invalid; the problem is already recorded.
    Invalid { origin: String },
}

impl<T> Setting<T> {
    /// The value, or `default` when unset; `None` when invalid (problem recorded).
    pub(super) fn or_default(self, default: impl FnOnce() -> T) -> Option<T> {
        match self {
            Setting::Unset => Some(default()),
            Setting::Valid { value, .. } => Some(value),
            Setting::Invalid { .. } => None,
        }
    }

    /// `Some(None)` when unset, `Some(Some(value))` when valid, `None` when invalid
    /// (problem recorded).
    pub(super) fn optional(self) -> Option<Option<T>> {
        match self {
            Setting::Unset => Some(None),
            Setting::Valid { value, .. } => Some(Some(value)),
            Setting::Invalid { .. } => None,
        }
    }

    /// Where the value came from, whether valid or not; `None` when unset.
    pub(super) fn origin(&self) -> Option<&str> {
        match self {
            Setting::Unset => None,
            Setting::Valid { origin, .. } | Setting::Invalid { origin } => Some(origin),
        }
    }

    pub(super) fn is_set(&self) -> bool {
        !matches!(self, Setting::Unset)
    }
}

/// One value from the TOML file, already converted to the string form env values have.
enum FileValue {
    Text(String),
    /// A float, datetime, array or table where a string, integer or boolean belongs.
    Unsupported(&'static str),
}

/// The parsed `OSP_CONFIG` file.
struct FileLayer {
    path: PathBuf,
    values: BTreeMap<&'static str, FileValue>,
}

/// Looks settings up through the layers and records every problem found.
pub(super) struct Context<'a> {
    env: &'a dyn Strings,
    read_file: &'a dyn Fn(&Path) -> std::io::Result<String>,
    file: Option<FileLayer>,
    /// Temporal's `temporal.toml` profile, below the `OSP_CONFIG` file.
    profile: Option<super::temporal_profile::ProfileLayer>,
    problems: Vec<ConfigProblem>,
}

impl<'a> Context<'a> {
    /// Reads and checks the `OSP_CONFIG` file, if one is named. Problems with the file are
    /// recorded and loading goes on without it, so that the other problems show too.
    pub(super) fn new(sources: &Sources<'a>) -> Self {
        let mut cx = Context {
            env: sources.env,
            read_file: sources.read_file,
            file: None,
            profile: None,
            problems: Vec::new(),
        };
        if let Some(path) = cx.env_value(OSP_CONFIG) {
            cx.file = cx.load_file(PathBuf::from(path));
        }
        let mut problems = Vec::new();
        let env = |name: &str| cx.env_value(name);
        let inputs = super::temporal_profile::Inputs {
            env: &env,
            read_file: cx.read_file,
        };
        let profile = super::temporal_profile::load(&inputs, &mut problems);
        cx.profile = profile;
        for (key, message) in problems {
            cx.problem(key, message);
        }
        cx
    }

    fn load_file(&mut self, path: PathBuf) -> Option<FileLayer> {
        let text = match (self.read_file)(&path) {
            Ok(text) => text,
            Err(err) => {
                // The kind only: an io::Error built by the reader could carry anything.
                self.problem(
                    OSP_CONFIG,
                    format!("cannot read `{}`: {}", path.display(), err.kind()),
                );
                return None;
            }
        };
        let table = match text.parse::<toml::Table>() {
            Ok(table) => table,
            Err(err) => {
                // Not `err.to_string()`: it quotes the offending line, which may hold a
                // secret. The message alone is the parser's fixed description.
                let mut message = format!("`{}` is not valid TOML", path.display());
                if let Some(span) = err.span() {
                    let (line, column) = line_column(&text, span.start);
                    let _ = write!(message, " at line {line}, column {column}");
                }
                let reason = err.message().lines().next().unwrap_or_default().trim();
                if !reason.is_empty() {
                    let _ = write!(message, ": {reason}");
                }
                self.problem(OSP_CONFIG, message);
                return None;
            }
        };
        let mut values = BTreeMap::new();
        let mut misplaced = Vec::new();
        flatten(&table, "", &mut values, &mut misplaced);
        // Sorted here, not by the table, whose order depends on toml's features.
        misplaced.sort();
        for (name, message) in misplaced {
            self.problem(format!("{name} in {}", path.display()), message);
        }
        Some(FileLayer { path, values })
    }

    /// An environment value; empty (or blank) counts as unset, as OpenTelemetry and
    /// container tooling treat `NAME=`.
    fn env_value(&self, name: &str) -> Option<String> {
        let value = self.env.get(name)?;
        let value = value.trim();
        (!value.is_empty()).then(|| value.to_owned())
    }

    /// The raw string of `key` from the highest layer that sets it.
    fn raw(&mut self, key: &Key) -> Setting<String> {
        for name in std::iter::once(&key.env).chain(key.aliases) {
            if let Some(value) = self.env_value(name) {
                return Setting::Valid {
                    value,
                    origin: (*name).to_owned(),
                };
            }
        }
        let from_file = self.file.as_ref().and_then(|file| {
            let value = file.values.get(key.file)?;
            Some((format!("{} in {}", key.file, file.path.display()), value))
        });
        let Some((origin, value)) = from_file else {
            return match self
                .profile
                .as_ref()
                .and_then(|profile| Some((profile.values.get(key.file)?, &profile.origin)))
            {
                Some((value, origin)) => Setting::Valid {
                    value: value.trim().to_owned(),
                    origin: format!("{} in {origin}", key.file),
                },
                None => Setting::Unset,
            };
        };
        match value {
            FileValue::Text(value) => Setting::Valid {
                value: value.trim().to_owned(),
                origin,
            },
            FileValue::Unsupported(kind) => {
                let message = format!("must be a string, integer or boolean, not {kind}");
                self.problem(origin.clone(), message);
                Setting::Invalid { origin }
            }
        }
    }

    /// Looks `key` up and parses it, recording a problem when the value is invalid.
    pub(super) fn get<T>(
        &mut self,
        key: &Key,
        parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
    ) -> Setting<T> {
        match self.raw(key) {
            Setting::Unset => Setting::Unset,
            Setting::Invalid { origin } => Setting::Invalid { origin },
            Setting::Valid { value, origin } => match parse(&value) {
                Ok(parsed) => Setting::Valid {
                    value: parsed,
                    origin,
                },
                Err(reason) => {
                    self.invalid(key, &origin, &value, &reason.to_string());
                    Setting::Invalid { origin }
                }
            },
        }
    }

    /// Records that `value` of `key` is wrong; the value is quoted unless `key` is secret.
    fn invalid(&mut self, key: &Key, origin: &str, value: &str, reason: &str) {
        let message = if key.secret || value.is_empty() {
            reason.to_owned()
        } else {
            // A value that is not secret may still be a URL with a password in it.
            format!("{reason} (got `{}`)", shorten(&redact_url(value)))
        };
        self.problem(origin, message);
    }

    /// The value of a required setting; records a problem when it is unset.
    pub(super) fn required<T>(&mut self, key: &Key, setting: Setting<T>) -> Option<T> {
        match setting {
            Setting::Valid { value, .. } => Some(value),
            Setting::Invalid { .. } => None,
            Setting::Unset => {
                let mut message = String::from("is required (or set ");
                for alias in key.aliases {
                    let _ = write!(message, "{alias}, or ");
                }
                let _ = write!(message, "{} in the {OSP_CONFIG} file)", key.file);
                self.problem(key.env, message);
                None
            }
        }
    }

    /// Reads a file named by a setting through the injected reader.
    pub(super) fn read(&mut self, origin: &str, path: &Path) -> Option<String> {
        match (self.read_file)(path) {
            Ok(text) => Some(text),
            Err(err) => {
                // The kind only, never the text of the error or of the file.
                self.problem(
                    origin,
                    format!("cannot read `{}`: {}", path.display(), err.kind()),
                );
                None
            }
        }
    }

    pub(super) fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            key: key.into(),
            message: message.into(),
        });
    }

    /// The loaded configuration, or every problem found while loading it.
    pub(super) fn finish<T>(self, config: Option<T>) -> Result<T, ConfigError> {
        if !self.problems.is_empty() {
            return Err(ConfigError {
                problems: self.problems,
            });
        }
        // Every `None` comes with a recorded problem, a promise the types cannot express;
        // should it ever be broken, this is an error rather than a panic.
        config.ok_or_else(|| ConfigError {
            problems: vec![ConfigProblem {
                key: OSP_CONFIG.to_owned(),
                message: "configuration is incomplete".to_owned(),
            }],
        })
    }
}

/// Walks the TOML tables, keeping known keys and collecting `(key, message)` for the rest.
fn flatten(
    table: &toml::Table,
    prefix: &str,
    values: &mut BTreeMap<&'static str, FileValue>,
    misplaced: &mut Vec<(String, String)>,
) {
    for (name, value) in table {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if let Some(key) = KEYS.iter().find(|key| key.file == path) {
            let value = match value {
                toml::Value::String(text) => FileValue::Text(text.clone()),
                toml::Value::Integer(number) => FileValue::Text(number.to_string()),
                toml::Value::Boolean(flag) => FileValue::Text(flag.to_string()),
                other => FileValue::Unsupported(other.type_str()),
            };
            values.insert(key.file, value);
        } else if KEYS.iter().any(|key| is_table_of(key.file, &path)) {
            match value {
                toml::Value::Table(inner) => flatten(inner, &path, values, misplaced),
                other => {
                    misplaced.push((path, format!("must be a table, not {}", other.type_str())))
                }
            }
        } else {
            let message = match suggest(&path) {
                Some(known) => format!("unknown key (did you mean `{known}`?)"),
                None => "unknown key".to_owned(),
            };
            misplaced.push((path, message));
        }
    }
}

/// Whether `table` is an enclosing table of the dotted key `file`.
fn is_table_of(file: &str, table: &str) -> bool {
    file.strip_prefix(table)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// The known key a misspelt or env-style key most likely meant.
fn suggest(unknown: &str) -> Option<&'static str> {
    let by_env = KEYS.iter().find(|key| {
        std::iter::once(&key.env)
            .chain(key.aliases)
            .any(|name| name.eq_ignore_ascii_case(unknown))
    });
    if let Some(key) = by_env {
        return Some(key.file);
    }
    KEYS.iter()
        .map(|key| (edit_distance(unknown, key.file), key.file))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, file)| file)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    (line, column)
}

/// Quoted values are cut short so that a runaway value does not bury the other problems.
fn shorten(value: &str) -> String {
    const MAX: usize = 80;
    match value.char_indices().nth(MAX) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}
