//! What a worker serves: every workflow registered in the binary on `TEMPORAL_TASK_QUEUE`,
//! or what a manifest lists (among those) on the manifest's queue.

use std::path::{Path, PathBuf};

use osp_core::activities::ALL_ACTIVITIES;
use osp_core::manifest::{ManifestError, WorkerManifest};
use osp_core::workflows::ALL_WORKFLOWS;

/// The task queue and workflows of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub task_queue: String,
    pub workflows: Vec<String>,
    /// The manifest's service, or `osp` for the built-in set.
    pub service_schema: String,
    pub manifest_path: Option<PathBuf>,
}

/// Why the manifest cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The file could not be read.
    #[error("manifest {path}: cannot read it: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not a usable manifest.
    #[error("manifest {path}: {source}")]
    Manifest {
        path: PathBuf,
        #[source]
        source: ManifestError,
    },
}

impl Plan {
    /// Every OSP workflow on `task_queue`.
    pub fn all(task_queue: &str) -> Self {
        Self::serving(task_queue, ALL_WORKFLOWS)
    }

    /// The workflows `names` on `task_queue`, without a manifest.
    pub fn serving(task_queue: &str, names: &[&str]) -> Self {
        Self {
            task_queue: task_queue.to_owned(),
            workflows: names.iter().map(|name| (*name).to_owned()).collect(),
            service_schema: "osp".to_owned(),
            manifest_path: None,
        }
    }

    /// The manifest at `path`, naming OSP's own workflows and activities.
    pub fn from_manifest(path: &Path) -> Result<Self, PlanError> {
        Self::from_manifest_among(path, ALL_WORKFLOWS, ALL_ACTIVITIES)
    }

    /// The manifest at `path`, naming only workflows and activities of `known_workflows` and
    /// `known_activities` (what the binary registers); its JavaScript-only fields are logged
    /// and ignored.
    pub fn from_manifest_among(
        path: &Path,
        known_workflows: &[&str],
        known_activities: &[&str],
    ) -> Result<Self, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlanError::Read {
            path: path.to_owned(),
            source,
        })?;
        let manifest_error = |source| PlanError::Manifest {
            path: path.to_owned(),
            source,
        };
        let (manifest, warnings) = WorkerManifest::parse(&text).map_err(manifest_error)?;
        for warning in warnings {
            tracing::warn!(
                manifest = %path.display(),
                field = %warning.field,
                "{}",
                warning.message
            );
        }
        manifest
            .check_names(known_workflows, known_activities)
            .map_err(manifest_error)?;
        let mut workflows: Vec<String> = Vec::new();
        for workflow in &manifest.workflows {
            if !workflows.contains(&workflow.name) {
                workflows.push(workflow.name.clone());
            }
        }
        Ok(Self {
            task_queue: manifest.task_queue.clone(),
            workflows,
            service_schema: manifest.service_schema.to_string(),
            manifest_path: Some(path.to_owned()),
        })
    }
}
