//! `controlplane render [--all] [--out DIR] [--check]`: render every file an
//! environment needs; `--check` compares with DIR instead (a CI stage).
//!
//! Everything is rendered in memory first: a broken template or invalid environment
//! writes nothing. Files are then replaced atomically, and files under the rendered
//! environment's directories that are no longer produced are removed.

use cp_app::views::{RenderCheckView, RenderDriftView, RenderView};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use cp_app::{AppError, Exit};
use cp_core::render::{self, Output, Renderer, check::Drift};

use super::Outcome;
use crate::cli::{Global, Output as Format};
use crate::output;

pub(crate) fn run(global: &Global, all: bool, out: Option<PathBuf>, check: bool) -> Outcome {
    let project = global.target().project();
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
        return Err(AppError::Invalid(cp_core::Diagnostics(errors)).into());
    }
    let base = base.expect("no errors");
    let templates = project.templates().context("cannot read the templates")?;
    let rendered = Renderer::new(&templates)
        .and_then(|r| r.render(&base, &envs))
        .map_err(|e| AppError::Usage(format!("{e}\n\nnothing was written.")))?;
    let out_dir = out.clone().unwrap_or_else(|| project.rendered_dir());
    if let Some(file) = out_dir.ancestors().find(|a| a.exists() && !a.is_dir()) {
        // A wrong argument, refused before anything is written (exit 3).
        return Err(AppError::Usage(format!(
            "--out {}: {} is not a directory; name a directory (it is created if missing)",
            out_dir.display(),
            file.display()
        ))
        .into());
    }
    let mut owned: Vec<String> = vec!["kubernetes/base/".into()];
    for e in &envs {
        owned.extend(render::owned_dirs(e.name.as_str()));
    }
    let on_disk = read_owned(&out_dir, &owned)?;
    let drift = render::check::check(&rendered, &on_disk);
    if check {
        return report_check(global, all, out.as_deref(), &out_dir, &drift);
    }
    write(&out_dir, &rendered, &drift)?;
    let changed = drift.len();
    match global.output {
        Format::Text => output::out(&format!(
            "rendered {} files for {} into {} ({changed} changed)\n",
            rendered.files.len(),
            names.join(", "),
            out_dir.display()
        ))?,
        Format::Json => output::json(&RenderView {
            ok: true,
            dir: out_dir.clone(),
            files: rendered.files.len(),
            changed,
        })?,
    }
    Ok(Exit::Success)
}

/// The `render` command that brings the output up to date, repeating the flags the
/// user gave (`--environments`, `--env`, `--set`, `--all`, `--out`).
fn fix_command(global: &Global, all: bool, out: Option<&Path>) -> String {
    let mut c = vec!["controlplane".to_owned()];
    if global.environments != Path::new("environments") {
        c.push(format!("--environments {}", global.environments.display()));
    }
    if !all && global.env != "dev" {
        c.push(format!("--env {}", global.env));
    }
    for s in &global.sets {
        c.push(format!("--set {s}"));
    }
    c.push("render".into());
    if all {
        c.push("--all".into());
    }
    if let Some(o) = out {
        c.push(format!("--out {}", o.display()));
    }
    c.join(" ")
}

fn report_check(
    global: &Global,
    all: bool,
    out: Option<&Path>,
    out_dir: &Path,
    drift: &[Drift],
) -> Outcome {
    if drift.is_empty() {
        match global.output {
            Format::Text => output::out(&format!("ok: {} is up to date\n", out_dir.display()))?,
            Format::Json => output::json(&RenderCheckView {
                ok: true,
                drift: Vec::new(),
                fix: None,
            })?,
        }
        return Ok(Exit::Success);
    }
    match global.output {
        Format::Text => {
            for d in drift {
                output::out(&format!("{d}\n"))?;
            }
            eprintln!(
                "drift: {} file(s) in {} differ from what the environments render; run `{}` and commit the result",
                drift.len(),
                out_dir.display(),
                fix_command(global, all, out)
            );
        }
        Format::Json => {
            let item = |path: &str, kind: &str, diff: Option<&String>| RenderDriftView {
                path: path.to_owned(),
                kind: kind.to_owned(),
                diff: diff.cloned(),
            };
            let items: Vec<_> = drift
                .iter()
                .map(|d| match d {
                    Drift::Changed { path, diff } => item(path, "changed", Some(diff)),
                    Drift::Missing { path } => item(path, "missing", None),
                    Drift::Stale { path } => item(path, "stale", None),
                })
                .collect();
            output::json(&RenderCheckView {
                ok: false,
                drift: items,
                fix: Some(fix_command(global, all, out)),
            })?;
        }
    }
    Ok(Exit::Pending)
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
