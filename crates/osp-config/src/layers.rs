//! The layers merged by the `config` crate (defaults < `temporal.toml` profile < `OSP_CONFIG`
//! file < environment) and the accumulator that collects every problem instead of stopping
//! at the first.
//!
//! What stays ours sits on either side of the merge: the names table ([`KEYS`]) turns
//! environment names and aliases into the file's dotted keys before it, the checks of the
//! file (unknown keys, wrong types, malformed TOML) run while it is read, and each value is
//! parsed and validated after it, under the name of the layer that set it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use config::{Config, Environment, Map, Source, Value, ValueKind};

use super::error::{ConfigError, ConfigProblem};
use super::keys::{KEYS, Key, OSP_CONFIG};
use super::temporal_profile::{self, Profile};
use super::values::{InvalidValue, redact_url};
use super::{Sources, Strings};

/// The origin `config::Environment` gives its values; [`Context::raw`] names the variable
/// instead, from the names table.
const ENVIRONMENT: &str = "the environment";

/// The outcome of looking up and parsing one setting.
pub(super) enum Setting<T> {
    /// Set in no layer, and without a default.
    Unset,
    /// Not set by the user: the default of the names table. Counts as unset wherever a
    /// setting's presence matters (`origin`, `is_set`).
    Default { value: T },
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
            Setting::Default { value } | Setting::Valid { value, .. } => Some(value),
            Setting::Invalid { .. } => None,
        }
    }

    /// The value of a setting that has a default in the names table; `None` when invalid
    /// (problem recorded). A key without a default comes back unset, which `finish` turns
    /// into an error rather than a panic.
    pub(super) fn value(self) -> Option<T> {
        match self {
            Setting::Default { value } | Setting::Valid { value, .. } => Some(value),
            Setting::Unset | Setting::Invalid { .. } => None,
        }
    }

    /// `Some(None)` when unset, `Some(Some(value))` when valid, `None` when invalid
    /// (problem recorded).
    pub(super) fn optional(self) -> Option<Option<T>> {
        match self {
            Setting::Unset => Some(None),
            Setting::Default { value } | Setting::Valid { value, .. } => Some(Some(value)),
            Setting::Invalid { .. } => None,
        }
    }

    /// Where the value came from, whether valid or not; `None` when unset or defaulted.
    pub(super) fn origin(&self) -> Option<&str> {
        match self {
            Setting::Unset | Setting::Default { .. } => None,
            Setting::Valid { origin, .. } | Setting::Invalid { origin } => Some(origin),
        }
    }

    pub(super) fn is_set(&self) -> bool {
        self.origin().is_some()
    }
}

/// One layer as a `config` source: values under their dotted file keys, each carrying the
/// origin problems name it by (`database.url in /etc/osp.toml`).
#[derive(Debug, Clone, Default)]
pub(super) struct Layer {
    values: Vec<(String, Value)>,
}

impl Layer {
    pub(super) fn set(&mut self, key: &str, origin: String, kind: ValueKind) {
        self.values
            .push((key.to_owned(), Value::new(Some(&origin), kind)));
    }
}

impl Source for Layer {
    fn clone_into_box(&self) -> Box<dyn Source + Send + Sync> {
        Box::new(self.clone())
    }

    fn collect(&self) -> Result<Map<String, Value>, config::ConfigError> {
        Ok(self.values.iter().cloned().collect())
    }
}

/// Looks settings up in the merged layers and records every problem found.
pub(super) struct Context<'a> {
    read_file: &'a dyn Fn(&Path) -> std::io::Result<String>,
    merged: Config,
    /// File key -> the environment name that set it (the variable or one of its aliases).
    env_names: BTreeMap<&'static str, &'static str>,
    /// File key -> TOML type of a file value that is not a string, integer or boolean.
    unsupported: BTreeMap<&'static str, &'static str>,
    /// What the `temporal.toml` profile holds beyond the shared keys.
    pub(super) profile: Option<Profile>,
    problems: Vec<ConfigProblem>,
}

impl<'a> Context<'a> {
    /// Reads and checks the `OSP_CONFIG` file and the `temporal.toml` profile, then merges
    /// the layers. Problems with a file are recorded and loading goes on without it, so that
    /// the other problems show too.
    pub(super) fn new(sources: &Sources<'a>) -> Self {
        let mut cx = Context {
            read_file: sources.read_file,
            merged: Config::default(),
            env_names: BTreeMap::new(),
            unsupported: BTreeMap::new(),
            profile: None,
            problems: Vec::new(),
        };
        let env = |name: &str| env_value(sources.env, name);
        let file = env(OSP_CONFIG)
            .and_then(|path| cx.load_file(PathBuf::from(path)))
            .unwrap_or_default();
        let mut problems = Vec::new();
        cx.profile = temporal_profile::load(&env, sources.read_file, &mut problems);
        for (key, message) in problems {
            cx.problem(key, message);
        }

        // The names table: each setting's variable, else its first alias that is set.
        let mut environment = Map::new();
        for key in KEYS {
            let set = std::iter::once(&key.env)
                .chain(key.aliases)
                .find_map(|name| Some((*name, env(name)?)));
            if let Some((name, value)) = set {
                cx.env_names.insert(key.file, name);
                environment.insert(key.file.to_owned(), value);
            }
        }
        let profile = cx
            .profile
            .as_ref()
            .map(|profile| profile.layer.clone())
            .unwrap_or_default();
        let merged = KEYS
            .iter()
            .filter_map(|key| Some((key.file, key.default?)))
            .try_fold(Config::builder(), |builder, (key, value)| {
                builder.set_default(key, value)
            })
            .and_then(|builder| {
                builder
                    .add_source(profile)
                    .add_source(file)
                    .add_source(Environment::default().source(Some(environment)))
                    .build()
            });
        match merged {
            Ok(merged) => cx.merged = merged,
            // Only a broken names table (a key that is also a table) gets here; the
            // message names keys, never values.
            Err(error) => cx.problem(OSP_CONFIG, format!("cannot merge the settings: {error}")),
        }
        cx
    }

    fn load_file(&mut self, path: PathBuf) -> Option<Layer> {
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
                self.problem(OSP_CONFIG, invalid_toml(&path, &text, &err));
                return None;
            }
        };
        let mut layer = Layer::default();
        let mut misplaced = Vec::new();
        let mut walk = Walk {
            path: &path,
            layer: &mut layer,
            unsupported: &mut self.unsupported,
            misplaced: &mut misplaced,
        };
        walk.table(&table, "");
        // Sorted here, not by the table, whose order depends on toml's features.
        misplaced.sort();
        for (name, message) in misplaced {
            self.problem(format!("{name} in {}", path.display()), message);
        }
        Some(layer)
    }

    /// The merged value of `key`, from the highest layer that sets it.
    fn raw(&mut self, key: &Key) -> Setting<String> {
        let (table, leaf) = key.file.rsplit_once('.').unwrap_or(("", key.file));
        let Some(value) = self
            .merged
            .get_table(table)
            .ok()
            .and_then(|mut table| table.remove(leaf))
        else {
            return Setting::Unset;
        };
        let origin = match value.origin() {
            None => None,
            Some(ENVIRONMENT) => self.env_names.get(key.file).map(|name| (*name).to_owned()),
            Some(origin) => Some(origin.to_owned()),
        };
        let text = match value.kind {
            ValueKind::String(text) => text.trim().to_owned(),
            ValueKind::I64(number) => number.to_string(),
            ValueKind::Boolean(flag) => flag.to_string(),
            _ => {
                let kind = self.unsupported.get(key.file).copied().unwrap_or("table");
                let origin = origin.unwrap_or_else(|| key.file.to_owned());
                let message = format!("must be a string, integer or boolean, not {kind}");
                self.problem(origin.clone(), message);
                return Setting::Invalid { origin };
            }
        };
        match origin {
            Some(origin) => Setting::Valid {
                value: text,
                origin,
            },
            // `set_default` values carry no origin.
            None => Setting::Default { value: text },
        }
    }

    /// Looks `key` up and parses it, recording a problem when the value is invalid.
    pub(super) fn get<T>(
        &mut self,
        key: &Key,
        parse: impl FnOnce(&str) -> Result<T, InvalidValue>,
    ) -> Setting<T> {
        let (value, origin) = match self.raw(key) {
            Setting::Unset => return Setting::Unset,
            Setting::Invalid { origin } => return Setting::Invalid { origin },
            Setting::Default { value } => (value, None),
            Setting::Valid { value, origin } => (value, Some(origin)),
        };
        match (parse(&value), origin) {
            (Ok(value), Some(origin)) => Setting::Valid { value, origin },
            (Ok(value), None) => Setting::Default { value },
            (Err(reason), origin) => {
                let origin = origin.unwrap_or_else(|| format!("the default of {}", key.env));
                self.invalid(key, &origin, &value, &reason.to_string());
                Setting::Invalid { origin }
            }
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
            Setting::Default { value } | Setting::Valid { value, .. } => Some(value),
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

/// An environment value; empty (or blank) counts as unset, as OpenTelemetry and container
/// tooling treat `NAME=`.
fn env_value(env: &dyn Strings, name: &str) -> Option<String> {
    let value = env.get(name)?;
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// Walks the `OSP_CONFIG` file's tables into a layer, keeping known keys and collecting
/// `(key, message)` for the rest.
struct Walk<'w> {
    path: &'w Path,
    layer: &'w mut Layer,
    unsupported: &'w mut BTreeMap<&'static str, &'static str>,
    misplaced: &'w mut Vec<(String, String)>,
}

impl Walk<'_> {
    fn table(&mut self, table: &toml::Table, prefix: &str) {
        for (name, value) in table {
            let path = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if let Some(key) = KEYS.iter().find(|key| key.file == path) {
                let kind = match value {
                    toml::Value::String(text) => ValueKind::String(text.clone()),
                    toml::Value::Integer(number) => ValueKind::I64(*number),
                    toml::Value::Boolean(flag) => ValueKind::Boolean(*flag),
                    // Kept in the layer, so that it hides lower layers as it would if it
                    // were valid, and reported only if no higher layer overrides it.
                    other => {
                        self.unsupported.insert(key.file, other.type_str());
                        ValueKind::Array(Vec::new())
                    }
                };
                let origin = format!("{} in {}", key.file, self.path.display());
                self.layer.set(key.file, origin, kind);
            } else if KEYS.iter().any(|key| is_table_of(key.file, &path)) {
                match value {
                    toml::Value::Table(inner) => self.table(inner, &path),
                    other => self
                        .misplaced
                        .push((path, format!("must be a table, not {}", other.type_str()))),
                }
            } else {
                let message = match suggest(&path) {
                    Some(known) => format!("unknown key (did you mean `{known}`?)"),
                    None => "unknown key".to_owned(),
                };
                self.misplaced.push((path, message));
            }
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
        .map(|key| (strsim::levenshtein(unknown, key.file), key.file))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, file)| file)
}

/// Says where and why `text` (the file at `path`) is not TOML.
///
/// Not `err.to_string()`: it quotes the offending line, which may hold a secret. The message
/// alone is the parser's fixed description.
pub(super) fn invalid_toml(path: &Path, text: &str, err: &toml::de::Error) -> String {
    let mut message = format!("`{}` is not valid TOML", path.display());
    if let Some(span) = err.span() {
        let (line, column) = line_column(text, span.start);
        let _ = write!(message, " at line {line}, column {column}");
    }
    let reason = err.message().lines().next().unwrap_or_default().trim();
    if !reason.is_empty() {
        let _ = write!(message, ": {reason}");
    }
    message
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
