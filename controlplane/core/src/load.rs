//! Loading an environment: files in, validated [`Environment`] or every error out.
//!
//! The pipeline is parse (each file) -> layer (`base` under `<env>`) -> `--set` ->
//! schema check -> typed deserialize -> semantic validation. The caller reads the
//! files; this module never touches the disk.

use std::collections::BTreeMap;

use crate::diag::{Diagnostic, Diagnostics, Loc, SourceMap, closest};
use crate::model::Environment;
use crate::names::EnvName;
use crate::raw::RawEnvironment;
use crate::schema;
use crate::tree;
use crate::validate::{self, Cx};

/// The contents of an environments directory, as read by the caller.
#[derive(Debug, Clone, Default)]
pub struct EnvFiles {
    /// By stem (`base`, `dev`): the display path and the text, or why it could not be read.
    pub files: BTreeMap<String, EnvFile>,
    /// The directory as a person names it (`environments`), for messages.
    pub dir: String,
}

/// One file of the environments directory.
#[derive(Debug, Clone)]
pub struct EnvFile {
    /// Path for messages (`environments/dev.yaml`).
    pub display: String,
    /// Its text, or why it could not be read (shared: the set of files is cloned).
    pub text: Result<String, std::sync::Arc<std::io::Error>>,
}

impl EnvFiles {
    /// The environment names (every stem except `base`).
    pub fn environments(&self) -> Vec<String> {
        self.files
            .keys()
            .filter(|k| *k != "base")
            .cloned()
            .collect()
    }
}

/// A loaded environment.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The validated model.
    pub env: Environment,
}

/// Loads one environment, applying `--set` overrides (`PATH=VALUE`).
pub fn load(files: &EnvFiles, env: &str, sets: &[String]) -> Result<Loaded, Diagnostics> {
    let known = files.environments();
    let name = match EnvName::new(env) {
        Ok(n) if files.files.contains_key(env) => n,
        Ok(_) | Err(_) => {
            let mut d = Diagnostic::new(format!("unknown environment `{env}`")).expected(format!(
                "one of: {} (files in {}/)",
                if known.is_empty() {
                    "none found".to_owned()
                } else {
                    known.join(", ")
                },
                files.dir
            ));
            d = match closest(env, known.iter().map(String::as_str)) {
                Some(c) => d.help(format!("did you mean `{c}`?")),
                None => d.help(format!(
                    "create {}/{env}.yaml, or pick a known environment with --env",
                    files.dir
                )),
            };
            return Err(Diagnostics::one(d));
        }
    };

    let mut sources = SourceMap::default();
    let mut errors = Vec::new();
    let mut layers = Vec::new();
    for stem in ["base", env] {
        let Some(file) = files.files.get(stem) else {
            continue;
        };
        match &file.text {
            Err(why) => errors.push(
                Diagnostic::new(format!("cannot read {}: {why}", file.display))
                    .help("check that the file exists and is readable by this user"),
            ),
            Ok(text) => {
                let id = sources.add(file.display.clone(), text.clone());
                match tree::parse(&sources, id) {
                    Ok(node) => {
                        if !matches!(node.value, tree::Value::Map(_)) {
                            errors.push(
                                Diagnostic::new(format!("the file holds {}", node.describe()))
                                    .at(Some(sources.locate(node.loc)))
                                    .expected(
                                        "a mapping of settings (`project: ...`, `services: ...`)",
                                    ),
                            );
                        } else {
                            layers.push((id, node));
                        }
                    }
                    Err(d) => errors.extend(d),
                }
            }
        }
    }
    if !errors.is_empty() {
        return Err(Diagnostics(errors));
    }
    let env_source = layers
        .last()
        .map(|(id, _)| *id)
        .expect("the environment file was read");
    let mut merged = layers
        .into_iter()
        .map(|(_, n)| n)
        .reduce(tree::merge)
        .expect("at least the environment file");
    for set in sets {
        let id = sources.add(format!("--set {set}"), set.clone());
        match tree::parse_set(&sources, id).and_then(|s| tree::apply_set(&mut merged, s, &sources))
        {
            Ok(()) => {}
            Err(d) => errors.push(d),
        }
    }
    tree::strip_nulls(&mut merged);
    // The schema check prunes what it rejects, so the semantic checks below still run
    // on the rest and the user sees every problem in one pass.
    errors.extend(schema::check(
        &mut merged,
        &schema::environment_schema(),
        &sources,
    ));
    tree::strip_nulls(&mut merged);
    let raw: RawEnvironment = match serde_json::from_value(merged.to_json()) {
        Ok(raw) => raw,
        Err(e) if errors.is_empty() => {
            // The schema check should have caught this; say so rather than guess a place.
            return Err(Diagnostics::one(Diagnostic::new(format!(
                "the merged environment does not match the model: {e}"
            ))));
        }
        Err(_) => return Err(Diagnostics(errors)),
    };
    let fallback = Loc {
        source: env_source,
        line: 1,
        col: 1,
    };
    let mut cx = Cx::new(&merged, &sources, fallback);
    let env = validate::validate(&name, raw, &mut cx);
    errors.extend(cx.errors);
    if errors.is_empty() {
        Ok(Loaded { env })
    } else {
        Err(Diagnostics(errors))
    }
}

/// Loads several environments (`validate --all`, `render --all`): every model, or every
/// problem once. A problem found identically in several environments (a mistake in
/// `base.yaml`, a bad `--set`) is one diagnostic whose `affects` names them all; when
/// more than one environment is loaded, every diagnostic names the ones it affects.
pub fn load_each(
    files: &EnvFiles,
    envs: &[String],
    sets: &[String],
) -> Result<Vec<Loaded>, Diagnostics> {
    let mut loaded = Vec::new();
    let mut merged: Vec<Diagnostic> = Vec::new();
    for env in envs {
        match load(files, env, sets) {
            Ok(l) => loaded.push(l),
            Err(Diagnostics(found)) => {
                for d in found {
                    let affected = EnvName::new(env).ok().filter(|_| envs.len() > 1);
                    match merged.iter_mut().find(|m| same_problem(m, &d)) {
                        Some(m) => m.affects.extend(affected),
                        None => merged.push(Diagnostic {
                            affects: affected.into_iter().collect(),
                            ..d
                        }),
                    }
                }
            }
        }
    }
    if merged.is_empty() {
        Ok(loaded)
    } else {
        Err(Diagnostics(merged))
    }
}

/// Whether two diagnostics report the same thing at the same place (ignoring which
/// environments they affect).
fn same_problem(a: &Diagnostic, b: &Diagnostic) -> bool {
    a.location == b.location
        && a.path == b.path
        && a.message == b.message
        && a.expected == b.expected
        && a.help == b.help
        && a.notes == b.notes
}

/// Loads `base.yaml` alone, as the shared layer the Kustomize base is rendered from.
/// Structural errors fail; semantic ones are the environments' business (the base
/// alone may, say, lack a backup destination every environment adds).
pub fn load_base(files: &EnvFiles) -> Result<Environment, Diagnostics> {
    let Some(file) = files.files.get("base") else {
        return Ok(empty_base());
    };
    let text = file.text.as_ref().map_err(|why| {
        Diagnostics::one(Diagnostic::new(format!(
            "cannot read {}: {why}",
            file.display
        )))
    })?;
    let mut sources = SourceMap::default();
    let id = sources.add(file.display.clone(), text.clone());
    let mut tree = tree::parse(&sources, id).map_err(Diagnostics)?;
    tree::strip_nulls(&mut tree);
    let errors = schema::check(&mut tree, &schema::environment_schema(), &sources);
    if !errors.is_empty() {
        return Err(Diagnostics(errors));
    }
    let raw: RawEnvironment = serde_json::from_value(tree.to_json()).map_err(|e| {
        Diagnostics::one(Diagnostic::new(format!(
            "base.yaml does not match the model: {e}"
        )))
    })?;
    let mut cx = Cx::new(
        &tree,
        &sources,
        Loc {
            source: id,
            line: 1,
            col: 1,
        },
    );
    Ok(validate::validate(&EnvName::base(), raw, &mut cx))
}

fn empty_base() -> Environment {
    let mut sources = SourceMap::default();
    let id = sources.add("base.yaml", "{}");
    let tree = tree::parse(&sources, id).expect("valid");
    let mut cx = Cx::new(
        &tree,
        &sources,
        Loc {
            source: id,
            line: 1,
            col: 1,
        },
    );
    validate::validate(&EnvName::base(), RawEnvironment::default(), &mut cx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(texts: &[(&str, &str)]) -> EnvFiles {
        let mut f = EnvFiles {
            dir: "environments".into(),
            ..EnvFiles::default()
        };
        for (stem, text) in texts {
            f.files.insert(
                (*stem).to_owned(),
                EnvFile {
                    display: format!("environments/{stem}.yaml"),
                    text: Ok((*text).to_owned()),
                },
            );
        }
        f
    }

    #[test]
    fn load_each_reports_a_shared_problem_once_naming_the_environments() {
        let f = files(&[
            (
                "base",
                "backup: {enabled: false}\nproject: Not_A_Label\n\
                 vault: {policies: {anumate-app: [{path: x/*, capabilities: [read]}]}}\n",
            ),
            ("a", "namespace: a\n"),
            ("b", "namespace: b\nservices: {redis: {port: 0}}\n"),
        ]);
        let envs = f.environments();
        let found: Vec<(String, Vec<String>)> = load_each(&f, &envs, &[])
            .unwrap_err()
            .0
            .into_iter()
            .map(|d| {
                let affects = d.affects.iter().map(|e| e.to_string()).collect();
                (d.path.unwrap_or_default(), affects)
            })
            .collect();
        assert_eq!(
            found,
            [
                ("project".to_owned(), vec!["a".to_owned(), "b".to_owned()]),
                ("services.redis.port".to_owned(), vec!["b".to_owned()]),
            ]
        );
        // One environment: nothing to tell apart.
        let one = load_each(&f, &["a".to_owned()], &[]).unwrap_err();
        assert!(one.0.iter().all(|d| d.affects.is_empty()), "{one}");
        let valid = "backup: {enabled: false}\n\
                     vault: {policies: {anumate-app: [{path: x/*, capabilities: [read]}]}}\n";
        let both = files(&[("a", valid), ("b", valid)]);
        assert_eq!(
            load_each(&both, &both.environments(), &[]).unwrap().len(),
            2
        );
    }
}
