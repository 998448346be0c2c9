//! Shared helpers for cp-core's integration tests: the shipped environment files.

#![allow(dead_code, unreachable_pub)]

use cp_core::{EnvFile, EnvFiles, Environment};

pub use cp_testkit::{environments_dir, repo_root};

/// Reads a directory of environment files the way the CLI does.
pub fn read_dir(dir: &std::path::Path) -> EnvFiles {
    let mut files = EnvFiles {
        dir: "environments".into(),
        ..EnvFiles::default()
    };
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let stem = path.file_stem().unwrap().to_str().unwrap().to_owned();
        files.files.insert(
            stem.clone(),
            EnvFile {
                display: format!("environments/{stem}.yaml"),
                text: std::fs::read_to_string(&path).map_err(std::sync::Arc::new),
            },
        );
    }
    files
}

/// The shipped files.
pub fn shipped() -> EnvFiles {
    read_dir(&environments_dir())
}

/// Loads a shipped environment.
pub fn load(env: &str) -> Environment {
    cp_core::load(&shipped(), env, &[])
        .unwrap_or_else(|d| panic!("{env} is invalid:\n{d}"))
        .env
}

/// Reads the repository's templates the way `cp_runtime::project::Project::templates`
/// does (cp-core cannot depend on cp-runtime): every file under `templates/`,
/// `alerts/` and `dashboards/` except Markdown, by path relative to the root.
pub fn templates() -> cp_core::render::Templates {
    let root = repo_root();
    let mut t = cp_core::render::Templates::default();
    for dir in ["templates", "alerts", "dashboards"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().and_then(|e| e.to_str()) != Some("md")
                    && !path.file_name().unwrap().to_str().unwrap().starts_with('.')
                {
                    let rel = path
                        .strip_prefix(&root)
                        .unwrap()
                        .to_str()
                        .unwrap()
                        .replace('\\', "/");
                    t.files.insert(rel, std::fs::read_to_string(&path).unwrap());
                }
            }
        }
    }
    t
}

/// Renders the shipped environments with the repository's templates.
pub fn render(envs: &[&str]) -> cp_core::render::Output {
    let files = shipped();
    let base = cp_core::load_base(&files).unwrap();
    let envs: Vec<Environment> = envs.iter().map(|e| load(e)).collect();
    cp_core::render::Renderer::new(&templates())
        .unwrap_or_else(|e| panic!("{e}"))
        .render(&base, &envs)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// A shipped environment with `--set` overrides.
pub fn load_with(env: &str, sets: &[&str]) -> Environment {
    let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
    cp_core::load(&shipped(), env, &sets)
        .unwrap_or_else(|d| panic!("{env} {sets:?}:\n{d}"))
        .env
}

/// Production as it outgrows one replica: PostgreSQL as a CloudNativePG cluster, NATS
/// and OpenBao as 3-node clusters, the audit stream replicated 3 times.
pub const CLUSTERED: &[&str] = &[
    "services.postgres.replicas=3",
    "services.nats.replicas=3",
    "services.vault.replicas=3",
    "streams.AUDIT_EVENTS.replicas=3",
];

/// Renders `envs` (already loaded) with the repository's templates.
pub fn render_loaded(envs: &[Environment]) -> cp_core::render::Output {
    let base = cp_core::load_base(&shipped()).unwrap();
    cp_core::render::Renderer::new(&templates())
        .unwrap_or_else(|e| panic!("{e}"))
        .render(&base, envs)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The shipped environment names.
pub const ENVS: &[&str] = &["dev", "staging", "production"];
