//! `controlplane render [--all] [--out DIR] [--check]`: render every file an
//! environment needs; `--check` compares with DIR instead (a CI stage).
//!
//! Everything is rendered in memory first: a broken template or invalid environment
//! writes nothing. Files are then replaced atomically, and files under the rendered
//! environment's directories that are no longer produced are removed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use cp_core::render::{self, Output, Renderer, check::Drift};
use cp_runtime::project::Project;

use crate::cli::{Global, Output as Format};

pub(crate) fn run(
    global: &Global,
    project: &Project,
    all: bool,
    out: Option<PathBuf>,
    check: bool,
) -> Result<ExitCode> {
    let files = project
        .env_files()
        .with_context(|| format!("cannot read {}", project.environments.display()))?;
    let names = if all {
        files.environments()
    } else {
        vec![global.env.clone()]
    };
    let mut envs = Vec::new();
    let mut errors = Vec::new();
    match cp_core::load_each(&files, &names, &global.sets) {
        Ok(loaded) => envs.extend(loaded.into_iter().map(|l| l.env)),
        Err(d) => errors.extend(d.0),
    }
    let base = match cp_core::load_base(&files) {
        Ok(b) => Some(b),
        // The environments already reported what is wrong in base.yaml; only a problem
        // every environment overrides is left for the base alone to report.
        Err(d) if errors.is_empty() => {
            errors.extend(d.0);
            None
        }
        Err(_) => None,
    };
    if !errors.is_empty() {
        super::report(global, &cp_core::Diagnostics(errors));
        return Ok(ExitCode::from(super::INVALID));
    }
    let base = base.expect("no errors");
    let templates = project.templates().context("cannot read the templates")?;
    let rendered = match Renderer::new(&templates).and_then(|r| r.render(&base, &envs)) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}\n\nnothing was written.");
            return Ok(ExitCode::from(super::INVALID));
        }
    };
    let out_dir = out.unwrap_or_else(|| project.rendered_dir());
    let mut owned: Vec<String> = vec!["kubernetes/base/".into()];
    for e in &envs {
        owned.extend(render::owned_dirs(e.name.as_str()));
    }
    let on_disk = read_owned(&out_dir, &owned)?;
    let drift = render::check::check(&rendered, &on_disk);
    if check {
        return Ok(report_check(global, &out_dir, &drift));
    }
    write(&out_dir, &rendered, &drift)?;
    let changed = drift.len();
    match global.output {
        Format::Text => println!(
            "rendered {} files for {} into {} ({changed} changed)",
            rendered.files.len(),
            names.join(", "),
            out_dir.display()
        ),
        Format::Json => println!(
            "{}",
            serde_json::json!({"ok": true, "dir": out_dir, "files": rendered.files.len(), "changed": changed})
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn report_check(global: &Global, out_dir: &Path, drift: &[Drift]) -> ExitCode {
    if drift.is_empty() {
        match global.output {
            Format::Text => println!("ok: {} is up to date", out_dir.display()),
            Format::Json => println!("{}", serde_json::json!({"ok": true, "drift": []})),
        }
        return ExitCode::SUCCESS;
    }
    match global.output {
        Format::Text => {
            for d in drift {
                println!("{d}");
            }
            eprintln!(
                "error: {} file(s) in {} differ from what the environments render; run `controlplane render` and commit the result",
                drift.len(),
                out_dir.display()
            );
        }
        Format::Json => {
            let items: Vec<_> = drift
                .iter()
                .map(|d| match d {
                    Drift::Changed { path, diff } => {
                        serde_json::json!({"path": path, "kind": "changed", "diff": diff})
                    }
                    Drift::Missing { path } => serde_json::json!({"path": path, "kind": "missing"}),
                    Drift::Stale { path } => serde_json::json!({"path": path, "kind": "stale"}),
                })
                .collect();
            println!("{}", serde_json::json!({"ok": false, "drift": items}));
        }
    }
    ExitCode::from(1)
}

/// Every file under the owned directories, by path relative to `out_dir`.
fn read_owned(out_dir: &Path, owned: &[String]) -> Result<BTreeMap<String, String>> {
    let mut files = BTreeMap::new();
    for dir in owned {
        let root = out_dir.join(dir);
        if !root.is_dir() {
            continue;
        }
        let mut stack = vec![root];
        while let Some(d) = stack.pop() {
            for entry in
                std::fs::read_dir(&d).with_context(|| format!("cannot read {}", d.display()))?
            {
                let path = entry?.path();
                if path.is_dir() {
                    // Another environment's overlay is not ours to judge.
                    if path.parent() == Some(out_dir.join("kubernetes/overlays").as_path()) {
                        continue;
                    }
                    stack.push(path);
                } else {
                    let rel = path.strip_prefix(out_dir).expect("under out_dir");
                    let text = std::fs::read_to_string(&path)
                        .unwrap_or_else(|_| String::from("<unreadable>"));
                    files.insert(rel.to_string_lossy().replace('\\', "/"), text);
                }
            }
        }
    }
    Ok(files)
}

fn write(out_dir: &Path, rendered: &Output, drift: &[Drift]) -> Result<()> {
    for d in drift {
        match d {
            Drift::Changed { path, .. } | Drift::Missing { path } => {
                let target = out_dir.join(path);
                cp_runtime::state::write_atomic(&target, rendered.files[path].as_bytes(), 0o644)
                    .with_context(|| format!("cannot write {}", target.display()))?;
            }
            Drift::Stale { path } => {
                let target = out_dir.join(path);
                std::fs::remove_file(&target)
                    .with_context(|| format!("cannot remove {}", target.display()))?;
            }
        }
    }
    Ok(())
}
