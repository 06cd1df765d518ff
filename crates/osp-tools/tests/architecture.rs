//! Checks the invariants ARCHITECTURE.md states, from `cargo metadata` and the source tree,
//! so that the document stays true (after rust-analyzer's `tidy`).

#![expect(clippy::unwrap_used, reason = "test helpers fail the test loudly")]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// Package name -> names of its normal (non-dev, non-build) dependencies, resolved.
struct Graph {
    normal: BTreeMap<String, BTreeSet<String>>,
    workspace: BTreeSet<String>,
}

impl Graph {
    fn load() -> Self {
        let output = Command::new(env!("CARGO"))
            .args(["metadata", "--format-version", "1", "--locked"])
            .current_dir(workspace_root())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let metadata: Value = serde_json::from_slice(&output.stdout).unwrap();
        let name_of: BTreeMap<&str, &str> = metadata["packages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
            .collect();
        let workspace = metadata["workspace_members"]
            .as_array()
            .unwrap()
            .iter()
            .map(|id| name_of[id.as_str().unwrap()].to_owned())
            .collect();
        let mut normal = BTreeMap::new();
        for node in metadata["resolve"]["nodes"].as_array().unwrap() {
            let deps = node["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|dep| {
                    dep["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|kind| kind["kind"].is_null())
                })
                .map(|dep| name_of[dep["pkg"].as_str().unwrap()].to_owned())
                .collect();
            normal.insert(name_of[node["id"].as_str().unwrap()].to_owned(), deps);
        }
        Self { normal, workspace }
    }

    fn direct(&self, package: &str) -> &BTreeSet<String> {
        &self.normal[package]
    }

    /// Everything `package` links, transitively, through normal dependencies.
    fn transitive(&self, package: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![package.to_owned()];
        while let Some(next) = todo.pop() {
            for dep in self.normal.get(&next).into_iter().flatten() {
                if seen.insert(dep.clone()) {
                    todo.push(dep.clone());
                }
            }
        }
        seen
    }

    fn osp_deps(&self, package: &str) -> BTreeSet<String> {
        self.transitive(package)
            .into_iter()
            .filter(|dep| self.workspace.contains(dep))
            .collect()
    }
}

/// Database drivers, HTTP and mail clients: what the pure crates must not link.
const IO_LIBRARIES: [&str; 6] = [
    "tokio-postgres",
    "deadpool-postgres",
    "reqwest",
    "lettre",
    "hyper-rustls",
    "tokio-postgres-rustls",
];

#[test]
fn osp_core_depends_on_no_other_osp_crate_and_no_io_library() {
    let graph = Graph::load();
    assert_eq!(graph.osp_deps("osp-core"), BTreeSet::new());
    // temporalio-common (for the activity definitions) brings the SDK's protobuf and gRPC
    // types; no database driver, HTTP or mail client may come in.
    let linked = graph.transitive("osp-core");
    for io in IO_LIBRARIES {
        assert!(!linked.contains(io), "osp-core links {io}");
    }
    assert!(
        !graph.direct("osp-core").contains("tokio"),
        "osp-core depends on tokio"
    );
}

#[test]
fn osp_core_code_does_no_io_and_reads_no_environment() {
    let problems = io_in_library_code("crates/osp-core/src");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn osp_config_depends_on_the_contracts_only_and_no_io_library() {
    let graph = Graph::load();
    assert_eq!(
        graph.osp_deps("osp-config"),
        BTreeSet::from(["osp-core".to_owned()])
    );
    let linked = graph.transitive("osp-config");
    for io in IO_LIBRARIES {
        assert!(!linked.contains(io), "osp-config links {io}");
    }
    for direct in ["tokio", "anyhow"] {
        assert!(
            !graph.direct("osp-config").contains(direct),
            "osp-config depends on {direct}"
        );
    }
    // Layered by the maintained crate, not by hand.
    assert!(graph.direct("osp-config").contains("config"));
}

#[test]
fn osp_config_code_reads_only_its_injected_sources() {
    // The environment comes in as a map and files through the reader the binaries pass;
    // `envconfig`'s own file and environment lookups are not called.
    let mut problems = io_in_library_code("crates/osp-config/src");
    let mut files = Vec::new();
    files_under(
        &workspace_root().join("crates/osp-config/src"),
        "rs",
        &mut files,
    );
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for forbidden in ["load_client_config", "load_from_env"] {
            if text.contains(forbidden) {
                problems.push(format!("{}: uses {forbidden}", file.display()));
            }
        }
        if text.contains("Environment::") && !text.contains(".source(Some(") {
            problems.push(format!(
                "{}: a config Environment without an injected source reads the process environment",
                file.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Uses of the file system, sockets, processes, the environment or tokio in the library code
/// (not the test modules, which may fake a file reader) of the crate sources under `dir`.
fn io_in_library_code(dir: &str) -> Vec<String> {
    let mut files = Vec::new();
    files_under(&workspace_root().join(dir), "rs", &mut files);
    let mut problems = Vec::new();
    for file in &files {
        if file.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        for forbidden in [
            "std::fs",
            "std::net",
            "std::env::",
            "std::process",
            "tokio::",
        ] {
            if code.contains(forbidden) {
                problems.push(format!("{}: uses {forbidden}", file.display()));
            }
        }
    }
    problems
}

#[test]
fn workflows_never_link_the_database_side() {
    let graph = Graph::load();
    let linked = graph.transitive("osp-workflows");
    for forbidden in [
        "osp-activities",
        "tokio-postgres",
        "deadpool-postgres",
        "postgres-protocol",
    ] {
        assert!(
            !linked.contains(forbidden),
            "osp-workflows links {forbidden}"
        );
    }
}

#[test]
fn the_database_side_does_not_link_the_workflows() {
    let graph = Graph::load();
    assert!(!graph.transitive("osp-activities").contains("osp-workflows"));
}

#[test]
fn only_the_assemblers_link_both_sides() {
    let graph = Graph::load();
    let both: BTreeSet<String> = graph
        .workspace
        .iter()
        .filter(|package| {
            let linked = graph.transitive(package);
            linked.contains("osp-workflows") && linked.contains("osp-activities")
        })
        .cloned()
        .collect();
    let mut allowed: BTreeSet<String> = ["osp-worker", "osp-testkit", "osp-tools"]
        .map(String::from)
        .into();
    // A service under `examples/` assembles its own worker on the builder, as a user does.
    allowed.extend(
        example_packages()
            .into_iter()
            .filter(|package| graph.direct(package).contains("osp-worker")),
    );
    assert!(both.is_subset(&allowed), "{both:?}");
}

#[test]
fn no_crate_links_the_tools() {
    // The demo, scenarios and benchmarks are binaries of `osp-tools`; a user who depends on
    // the testkit (or anything else) must not compile them.
    let graph = Graph::load();
    for package in &graph.workspace {
        assert!(
            !graph.direct(package).contains("osp-tools"),
            "{package} depends on osp-tools"
        );
    }
}

/// The package names of the crates under `examples/`, read from their manifests.
fn example_packages() -> BTreeSet<String> {
    package_dirs("examples").into_keys().collect()
}

/// Package name -> manifest text of every crate directly under `dir` of the workspace.
fn package_dirs(dir: &str) -> BTreeMap<String, String> {
    let mut packages = BTreeMap::new();
    let Ok(entries) = std::fs::read_dir(workspace_root().join(dir)) else {
        return packages;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let Ok(manifest) = std::fs::read_to_string(path.join("Cargo.toml")) else {
            continue;
        };
        packages.insert(name, manifest);
    }
    packages
}

#[test]
fn examples_use_only_the_public_crates() {
    // An example is what a service outside the workspace writes: the stack and the tools are
    // the project's own, never a user's dependency (the testkit re-exports what tests need).
    let examples = package_dirs("examples");
    assert!(!examples.is_empty(), "no crate under examples/");
    for (name, manifest) in &examples {
        for private in ["osp-stack", "osp-tools"] {
            assert!(
                !manifest.contains(private),
                "examples/{name} depends on {private}"
            );
        }
    }
}

#[test]
fn the_throwaway_stack_knows_nothing_of_osp() {
    // osp-stack is infrastructure the testkit, the demo and the benchmarks share, and what
    // `make fresh-check` builds on a bare machine: it must stay small and independent.
    let graph = Graph::load();
    assert_eq!(graph.osp_deps("osp-stack"), BTreeSet::new());
}

#[test]
fn libraries_use_thiserror_not_anyhow() {
    let graph = Graph::load();
    for library in [
        "osp-core",
        "osp-config",
        "osp-activities",
        "osp-workflows",
        "osp-stack",
    ] {
        assert!(
            !graph.direct(library).contains("anyhow"),
            "{library} depends on anyhow"
        );
    }
}

/// Directories of installed third-party code, ignored by git: the Node peer's npm packages
/// (`make bench-setup`), some of them Rust sources of their own.
const NOT_OURS: &str = "node_modules";

fn files_under(dir: &Path, extension: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            if path.file_name().is_some_and(|name| name == NOT_OURS) {
                continue;
            }
            files_under(&path, extension, out);
        } else if path.extension().is_some_and(|e| e == extension) {
            out.push(path);
        }
    }
}

#[test]
fn crates_are_named_like_their_directories_and_inherit_the_workspace_lints() {
    let graph = Graph::load();
    let mut dirs = BTreeSet::new();
    let crates = package_dirs("crates");
    let examples = package_dirs("examples");
    for (name, manifest) in crates.iter().chain(&examples) {
        assert!(manifest.contains(&format!("name = \"{name}\"")), "{name}");
        assert!(
            manifest.contains("[lints]\nworkspace = true"),
            "{name} does not inherit [workspace.lints]"
        );
        dirs.insert(name.clone());
    }
    assert_eq!(dirs, graph.workspace);
}

#[test]
fn every_source_file_says_what_it_is_for() {
    let mut files = Vec::new();
    files_under(&workspace_root().join("crates"), "rs", &mut files);
    files_under(&workspace_root().join("examples"), "rs", &mut files);
    assert!(files.len() > 10);
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        if !text.starts_with("//!") {
            problems.push(format!(
                "{}: does not start with a //! line",
                file.display()
            ));
        }
        if text.contains(&["#[", "ignore]"].concat()) {
            problems.push(format!(
                "{}: an ignored test hides a failure",
                file.display()
            ));
        }
    }
    let mut sql = Vec::new();
    files_under(&workspace_root().join("crates"), "sql", &mut sql);
    files_under(&workspace_root().join("examples"), "sql", &mut sql);
    for file in &sql {
        if !std::fs::read_to_string(file).unwrap().starts_with("-- ") {
            problems.push(format!(
                "{}: does not start with a -- comment",
                file.display()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn installed_packages_are_not_the_projects_files() {
    // After `make bench` the Node peer's packages include Rust sources without a `//!` line;
    // `make test` after `make bench` failed on them.
    let root = std::env::temp_dir().join(format!("osp-files-under-{}", std::process::id()));
    let ours = root.join("src");
    let installed = root.join("peer").join(NOT_OURS).join("pkg");
    std::fs::create_dir_all(&ours).unwrap();
    std::fs::create_dir_all(&installed).unwrap();
    std::fs::write(ours.join("lib.rs"), "//! ours\n").unwrap();
    std::fs::write(installed.join("lib.rs"), "fn theirs() {}\n").unwrap();
    let mut found = Vec::new();
    files_under(&root, "rs", &mut found);
    std::fs::remove_dir_all(&root).unwrap();
    assert_eq!(found, [ours.join("lib.rs")]);
}
