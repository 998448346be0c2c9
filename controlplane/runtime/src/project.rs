//! The project on disk: where environment files, templates and state live.
//!
//! A project root holds `environments/`, `templates/`, `alerts/`, `dashboards/`,
//! `migrations/`; state goes under `.controlplane/<env>/`. This module reads the
//! environment files for [`cp_core::load`]; it does not interpret them.

use std::path::{Path, PathBuf};

use cp_core::render::Templates;
use cp_core::{Diagnostics, EnvFile, EnvFiles, Loaded};

/// The directories under the project root that hold templates.
pub const TEMPLATE_DIRS: &[&str] = &["templates", "alerts", "dashboards"];

/// Where a project's files are.
#[derive(Debug, Clone)]
pub struct Project {
    /// The environments directory (`--environments`).
    pub environments: PathBuf,
    /// The project root: the parent of the environments directory.
    pub root: PathBuf,
}

impl Project {
    /// A project whose environment files are in `environments`.
    pub fn new(environments: impl Into<PathBuf>) -> Self {
        let environments = environments.into();
        let root = environments
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        Self { environments, root }
    }

    /// Reads every `*.yaml` file of the environments directory. A file that cannot be
    /// read is recorded with the reason (the loader reports it if it is needed).
    pub fn env_files(&self) -> Result<EnvFiles, std::io::Error> {
        let dir_display = self.environments.display().to_string();
        let mut files = EnvFiles {
            dir: dir_display.trim_end_matches('/').to_owned(),
            ..EnvFiles::default()
        };
        let entries = std::fs::read_dir(&self.environments)?;
        for entry in entries {
            let path = entry?.path();
            let (Some(stem), Some("yaml" | "yml")) = (
                path.file_stem().and_then(|s| s.to_str()),
                path.extension().and_then(|s| s.to_str()),
            ) else {
                continue;
            };
            let text = std::fs::read_to_string(&path).map_err(std::sync::Arc::new);
            files.files.insert(
                stem.to_owned(),
                EnvFile {
                    display: path.display().to_string(),
                    text,
                },
            );
        }
        Ok(files)
    }

    /// Reads and loads one environment.
    pub fn load(&self, env: &str, sets: &[String]) -> Result<Loaded, LoadError> {
        let files = self.env_files().map_err(|source| LoadError::Dir {
            dir: self.environments.clone(),
            source,
        })?;
        cp_core::load(&files, env, sets).map_err(LoadError::Invalid)
    }

    /// Reads every template under `templates/`, `alerts/` and `dashboards/` (names are
    /// paths relative to the root with `/`; Markdown files are documentation, not
    /// templates).
    pub fn templates(&self) -> Result<Templates, std::io::Error> {
        let mut t = Templates::default();
        for dir in TEMPLATE_DIRS {
            let root = self.root.join(dir);
            if !root.is_dir() {
                continue;
            }
            let mut stack = vec![root];
            while let Some(d) = stack.pop() {
                for entry in std::fs::read_dir(&d)? {
                    let path = entry?.path();
                    if path.is_dir() {
                        stack.push(path);
                        continue;
                    }
                    let hidden = path
                        .file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with('.'));
                    if hidden || path.extension().and_then(|e| e.to_str()) == Some("md") {
                        continue;
                    }
                    let rel = path.strip_prefix(&self.root).expect("under root");
                    let name = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy())
                        .collect::<Vec<_>>()
                        .join("/");
                    t.files.insert(name, std::fs::read_to_string(&path)?);
                }
            }
        }
        Ok(t)
    }

    /// The default directory `render` writes to.
    pub fn rendered_dir(&self) -> PathBuf {
        self.root.join("rendered")
    }

    /// The state directory of an environment (`.controlplane/<env>`), unless overridden.
    pub fn state_dir(&self, env: &str) -> PathBuf {
        self.root.join(".controlplane").join(env)
    }
}

/// Why an environment could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The directory could not be listed.
    #[error(
        "cannot read the environments directory {dir}; pass --environments DIR or run from the project root"
    )]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The files are invalid.
    #[error("{0}")]
    Invalid(Diagnostics),
}
