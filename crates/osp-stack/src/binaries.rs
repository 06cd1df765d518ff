//! Finds the Postgres, PgBouncer and Temporal binaries: an explicit variable first, else the
//! project's own tools (`make setup`'s `.tools/`), else PATH, else the places Debian packages
//! install them.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::StackError;

/// What to tell a developer whose machine lacks a binary.
const SETUP_HINT: &str = "run `make setup`";

/// Where Debian's `postgresql-NN` packages put the server binaries.
const DEBIAN_POSTGRES_ROOT: &str = "/usr/lib/postgresql";

/// Where Debian's `pgbouncer` package puts the binary (not on a normal user's PATH).
const DEBIAN_PGBOUNCER: &str = "/usr/sbin/pgbouncer";

/// What the override variable holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum VariableHolds {
    /// The binary itself (`OSP_PGBOUNCER_BIN`, `OSP_TEMPORAL_BIN`).
    Binary,
    /// The directory holding the binary (`OSP_PG_BIN_DIR`).
    Directory,
}

/// The outcome of looking for one program in its variable and on PATH.
#[derive(Debug)]
struct Lookup {
    program: String,
    /// The variable was set: its answer is final, so a typo is reported instead of silently
    /// testing against some other installation.
    explicit: bool,
    found: Option<PathBuf>,
    searched: Vec<String>,
}

impl Lookup {
    fn missing(self) -> StackError {
        StackError::MissingBinary {
            name: self.program,
            searched: self.searched.join(", "),
            hint: SETUP_HINT,
        }
    }
}

/// The testkit's one place that reads the environment: the override `variable`, then `PATH`.
/// Everything else takes its settings as arguments, so tests never need to change the
/// process environment.
fn binary_from_env_or_path(variable: &str, program: &str, holds: VariableHolds) -> Lookup {
    resolve(
        variable,
        std::env::var_os(variable),
        std::env::var_os("PATH"),
        program,
        holds,
    )
}

/// The pure part of [`binary_from_env_or_path`].
fn resolve(
    variable: &str,
    value: Option<OsString>,
    path: Option<OsString>,
    program: &str,
    holds: VariableHolds,
) -> Lookup {
    if let Some(value) = value.filter(|value| !value.is_empty()) {
        let candidate = match holds {
            VariableHolds::Binary => PathBuf::from(value),
            VariableHolds::Directory => PathBuf::from(value).join(program),
        };
        return Lookup {
            program: program.to_owned(),
            explicit: true,
            found: is_executable(&candidate).then(|| candidate.clone()),
            searched: vec![format!("{variable}={}", candidate.display())],
        };
    }
    let found = path.as_ref().and_then(|path| {
        std::env::split_paths(path)
            .map(|dir| dir.join(program))
            .find(|candidate| is_executable(candidate))
    });
    Lookup {
        program: program.to_owned(),
        explicit: false,
        found,
        searched: vec![format!("{variable} (unset)"), "PATH".to_owned()],
    }
}

fn is_executable(path: &Path) -> bool {
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// A directory with both `initdb` and `postgres` in it.
fn is_postgres_bin_dir(dir: &Path) -> bool {
    is_executable(&dir.join("initdb")) && is_executable(&dir.join("postgres"))
}

/// The Postgres bin directory: `OSP_PG_BIN_DIR`, else the directory of `initdb` on PATH
/// (following a symlink to the real installation), else the newest
/// `/usr/lib/postgresql/*/bin`.
pub(crate) fn postgres_bin_dir() -> Result<PathBuf, StackError> {
    let mut lookup = binary_from_env_or_path("OSP_PG_BIN_DIR", "initdb", VariableHolds::Directory);
    if let Some(initdb) = &lookup.found {
        // A PATH directory may hold a symlink to `initdb` but no `postgres`; the real
        // installation directory holds both.
        let candidates = [
            initdb
                .canonicalize()
                .ok()
                .and_then(|real| real.parent().map(Path::to_path_buf)),
            initdb.parent().map(Path::to_path_buf),
        ];
        if let Some(dir) = candidates
            .into_iter()
            .flatten()
            .find(|dir| is_postgres_bin_dir(dir))
        {
            return Ok(dir);
        }
        lookup
            .searched
            .push(format!("{} (no `postgres` beside it)", initdb.display()));
    }
    if lookup.explicit {
        return Err(lookup.missing());
    }
    lookup
        .searched
        .push(format!("{DEBIAN_POSTGRES_ROOT}/*/bin"));
    newest_debian_postgres(Path::new(DEBIAN_POSTGRES_ROOT)).ok_or_else(|| lookup.missing())
}

/// The `bin` directory of the highest-numbered version under `root` (so 15 beats 9.6).
fn newest_debian_postgres(root: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(root).ok()?;
    entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            let version: Vec<u32> = name
                .split('.')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?;
            let bin = entry.path().join("bin");
            is_postgres_bin_dir(&bin).then_some((version, bin))
        })
        .max()
        .map(|(_, bin)| bin)
}

/// `OSP_PGBOUNCER_BIN`, else `pgbouncer` on PATH, else `/usr/sbin/pgbouncer`.
pub(crate) fn pgbouncer_binary() -> Result<PathBuf, StackError> {
    let mut lookup =
        binary_from_env_or_path("OSP_PGBOUNCER_BIN", "pgbouncer", VariableHolds::Binary);
    if let Some(found) = lookup.found.take() {
        return Ok(found);
    }
    if lookup.explicit {
        return Err(lookup.missing());
    }
    lookup.searched.push(DEBIAN_PGBOUNCER.to_owned());
    let fallback = PathBuf::from(DEBIAN_PGBOUNCER);
    if is_executable(&fallback) {
        Ok(fallback)
    } else {
        Err(lookup.missing())
    }
}

/// Where `make setup` installs the pinned `temporal` CLI, relative to the workspace root.
const PROJECT_TEMPORAL: &str = ".tools/venv/bin/temporal";

/// `OSP_TEMPORAL_BIN`, else the pinned CLI `make setup` put in `.tools/` of the current
/// directory or an ancestor (tests run in their package's directory inside the workspace),
/// else `temporal` on PATH. The project's pin comes before PATH so that a different CLI
/// installed elsewhere cannot change the server the tests run against.
pub(crate) fn temporal_binary() -> Result<PathBuf, StackError> {
    let mut lookup = binary_from_env_or_path("OSP_TEMPORAL_BIN", "temporal", VariableHolds::Binary);
    if !lookup.explicit {
        let cwd = std::env::current_dir().unwrap_or_default();
        if let Some(pinned) = project_tool(&cwd, PROJECT_TEMPORAL) {
            return Ok(pinned);
        }
        lookup
            .searched
            .insert(1, format!("{PROJECT_TEMPORAL} above {}", cwd.display()));
    }
    match lookup.found.take() {
        Some(found) => Ok(found),
        None => Err(lookup.missing()),
    }
}

/// `relative` below `start` or the nearest ancestor of it that has it, if it is executable.
fn project_tool(start: &Path, relative: &str) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join(relative))
        .find(|candidate| is_executable(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_names_the_variable_and_make_setup() {
        let lookup = resolve(
            "OSP_TEMPORAL_BIN",
            Some("/nonexistent/osp-testkit/temporal".into()),
            Some("/usr/bin".into()),
            "temporal",
            VariableHolds::Binary,
        );
        assert!(lookup.explicit);
        assert!(lookup.found.is_none());
        let message = lookup.missing().to_string();
        assert!(message.contains("`temporal`"), "{message}");
        assert!(
            message.contains("OSP_TEMPORAL_BIN=/nonexistent/osp-testkit/temporal"),
            "{message}"
        );
        assert!(message.contains("run `make setup`"), "{message}");
    }

    #[test]
    fn an_unset_variable_falls_back_to_path_and_says_so_when_nothing_is_found() {
        let empty = std::env::temp_dir().join("osp-testkit-no-such-dir");
        let lookup = resolve(
            "OSP_PG_BIN_DIR",
            None,
            Some(empty.into_os_string()),
            "initdb",
            VariableHolds::Directory,
        );
        assert!(!lookup.explicit);
        let message = lookup.missing().to_string();
        assert!(
            message.contains("OSP_PG_BIN_DIR (unset), PATH"),
            "{message}"
        );
        assert!(message.contains("run `make setup`"), "{message}");
    }

    #[test]
    fn the_project_tool_is_found_from_any_directory_below_the_workspace() {
        let root = std::env::temp_dir().join(format!("osp-testkit-tools-{}", std::process::id()));
        let bin = root.join(".tools/venv/bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(root.join("crates/osp-x")).unwrap();
        let cli = bin.join("temporal");
        std::fs::write(&cli, "#!/bin/sh\n").unwrap();
        assert_eq!(
            project_tool(&root.join("crates/osp-x"), PROJECT_TEMPORAL),
            None
        );
        std::fs::set_permissions(&cli, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(
            project_tool(&root.join("crates/osp-x"), PROJECT_TEMPORAL),
            Some(cli.clone())
        );
        assert_eq!(project_tool(&root, PROJECT_TEMPORAL), Some(cli));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_directory_variable_names_the_program_inside_it() {
        let lookup = resolve(
            "OSP_PG_BIN_DIR",
            Some("/opt/pg/bin".into()),
            None,
            "initdb",
            VariableHolds::Directory,
        );
        assert_eq!(lookup.searched, ["OSP_PG_BIN_DIR=/opt/pg/bin/initdb"]);
    }

    #[test]
    fn the_newest_postgres_version_wins_numerically() {
        let root = std::env::temp_dir().join(format!(
            "osp-testkit-unit-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        for version in ["9.6", "15", "13"] {
            let bin = root.join(version).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            for program in ["initdb", "postgres"] {
                std::fs::write(bin.join(program), "#!/bin/sh\n").unwrap();
                std::fs::set_permissions(bin.join(program), std::fs::Permissions::from_mode(0o755))
                    .unwrap();
            }
        }
        let newest = newest_debian_postgres(&root);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(newest, Some(root.join("15").join("bin")));
    }
}
