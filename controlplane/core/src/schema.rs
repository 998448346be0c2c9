//! The JSON Schema of an environment file, and the structural check against it.
//!
//! The schema is generated from [`crate::raw`] (doc comments become descriptions) and
//! is the one contract: editors autocomplete with it, and [`check`] walks the merged
//! tree against it, collecting every unknown key and wrong type with its location
//! before serde ever sees the data. (serde stops at the first error; users want all.)

use serde_json::Value as J;

use crate::diag::{Diagnostic, SourceMap, closest};
use crate::tree::{Node, Path, Value};

/// The schema of an environment file.
pub fn environment_schema() -> J {
    let mut schema = schemars::schema_for!(crate::raw::RawEnvironment).to_value();
    strip_defaults(&mut schema);
    if let J::Object(map) = &mut schema {
        map.insert("title".into(), J::from("controlplane environment file"));
    }
    schema
}

/// The schema as committed under `environments/schema.json`: pretty, newline-terminated.
pub fn environment_schema_text() -> String {
    let mut text = serde_json::to_string_pretty(&environment_schema()).expect("schema serializes");
    text.push('\n');
    text
}

/// `default: null` everywhere is noise for editors; every key is optional anyway.
fn strip_defaults(v: &mut J) {
    match v {
        J::Object(map) => {
            map.remove("default");
            map.values_mut().for_each(strip_defaults);
        }
        J::Array(items) => items.iter_mut().for_each(strip_defaults),
        _ => {}
    }
}

/// Checks a merged tree against the schema. Scalars written where a string is expected
/// (`version: 15`, `cpu: 0.5`) become strings exactly as written. Returns every problem,
/// and prunes what was wrong (unknown keys, mistyped values) so that the semantic checks
/// can still run on the rest and report their problems in the same pass.
pub fn check(root: &mut Node, schema: &J, sources: &SourceMap) -> Vec<Diagnostic> {
    let mut checker = Checker {
        root: schema,
        sources,
        errors: Vec::new(),
    };
    checker.check(root, schema, &Path::default());
    checker.errors
}

struct Checker<'a> {
    root: &'a J,
    sources: &'a SourceMap,
    errors: Vec<Diagnostic>,
}

impl<'a> Checker<'a> {
    fn resolve(&self, mut schema: &'a J) -> &'a J {
        while let Some(r) = schema.get("$ref").and_then(J::as_str) {
            let name = r.trim_start_matches("#/$defs/");
            schema = &self.root["$defs"][name];
        }
        schema
    }

    fn error(&mut self, node: &Node, path: &Path, message: String, expected: String) {
        self.errors.push(
            Diagnostic::new(message)
                .at(Some(self.sources.locate(node.loc)))
                .path(path.to_string())
                .expected(expected),
        );
    }

    fn check(&mut self, node: &mut Node, schema: &'a J, path: &Path) {
        let schema = self.resolve(schema);
        if let Some(branches) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(J::as_array)
        {
            self.check_alternatives(node, schema, branches, path);
            return;
        }
        let types = types_of(schema);
        if !types.is_empty() {
            coerce_to_string(node, &types);
            if !types.iter().any(|t| matches_type(node, t)) {
                let expected = self.describe(schema);
                self.error(node, path, format!("found {}", node.describe()), expected);
                node.value = Value::Null;
                return;
            }
        }
        if let Some(allowed) = schema.get("enum").and_then(J::as_array) {
            let values: Vec<&str> = allowed.iter().filter_map(J::as_str).collect();
            self.check_one_of(node, &values, path);
            return;
        }
        if let Some(c) = schema.get("const").and_then(J::as_str) {
            self.check_one_of(node, &[c], path);
            return;
        }
        match &mut node.value {
            Value::Int(i) => {
                let i = *i;
                let min = schema.get("minimum").and_then(J::as_i64);
                let max = schema.get("maximum").and_then(J::as_i64);
                if min.is_some_and(|m| i < m) || max.is_some_and(|m| i > m) {
                    let expected = self.describe(schema);
                    self.error(
                        node,
                        path,
                        format!("found {i}, which is out of range"),
                        expected,
                    );
                    node.value = Value::Null;
                }
            }
            Value::Map(_) => self.check_map(node, schema, path),
            Value::Seq(items) => {
                if let Some(items_schema) = schema.get("items") {
                    for (i, item) in items.iter_mut().enumerate() {
                        self.check(item, items_schema, &path.index(i));
                    }
                }
            }
            _ => {}
        }
    }

    fn check_map(&mut self, node: &mut Node, schema: &'a J, path: &Path) {
        let properties = schema.get("properties").and_then(J::as_object);
        let additional = schema.get("additionalProperties");
        let Value::Map(entries) = &mut node.value else {
            return;
        };
        let mut unknown = Vec::new();
        for (key, value) in entries.iter_mut() {
            let child_path = path.key(&key.name);
            if let Some(prop) = properties.and_then(|p| p.get(&key.name)) {
                self.check(value, prop, &child_path);
            } else if let Some(extra @ J::Object(_)) = additional {
                self.check(value, extra, &child_path);
            } else if additional == Some(&J::Bool(false)) {
                unknown.push((key.clone(), child_path));
            }
        }
        entries.retain(|(k, _)| !unknown.iter().any(|(u, _)| u.name == k.name));
        for (key, child_path) in unknown {
            let known: Vec<&str> = properties
                .map(|p| p.keys().map(String::as_str).collect())
                .unwrap_or_default();
            let mut d = Diagnostic::new(format!("unknown key `{}`", key.name))
                .at(Some(self.sources.locate(key.loc)))
                .path(child_path.to_string())
                .expected(format!(
                    "one of the keys of {}: {}",
                    if path.0.is_empty() {
                        "an environment file".to_owned()
                    } else {
                        format!("`{path}`")
                    },
                    known.join(", ")
                ));
            d = match closest(&key.name, known.iter().copied()) {
                Some(c) => d.help(format!("did you mean `{c}`?")),
                None => d.help("remove it, or see `controlplane schema` for what is accepted"),
            };
            self.errors.push(d);
        }
    }

    fn check_alternatives(
        &mut self,
        node: &mut Node,
        schema: &'a J,
        branches: &'a [J],
        path: &Path,
    ) {
        let branches: Vec<&'a J> = branches.iter().map(|b| self.resolve(b)).collect();
        let (nulls, others): (Vec<&J>, Vec<&J>) = branches
            .into_iter()
            .partition(|b| b.get("type").and_then(J::as_str) == Some("null"));
        if node.value == Value::Null {
            if nulls.is_empty() {
                let expected = self.describe(schema);
                self.error(node, path, format!("found {}", node.describe()), expected);
            }
            return;
        }
        let consts: Vec<&str> = others
            .iter()
            .filter_map(|b| b.get("const").and_then(J::as_str))
            .collect();
        if !consts.is_empty() && consts.len() == others.len() {
            self.check_one_of(node, &consts, path);
            return;
        }
        match others.as_slice() {
            [only] => self.check(node, only, path),
            _ => {
                // Take the first alternative that fits; otherwise report the first's errors.
                let saved = self.errors.len();
                for b in &others {
                    let mut trial = node.clone();
                    self.check(&mut trial, b, path);
                    if self.errors.len() == saved {
                        *node = trial;
                        return;
                    }
                    self.errors.truncate(saved);
                }
                let expected = self.describe(schema);
                self.error(node, path, format!("found {}", node.describe()), expected);
                node.value = Value::Null;
            }
        }
    }

    fn check_one_of(&mut self, node: &mut Node, values: &[&str], path: &Path) {
        let found = match &node.value {
            Value::Str(s) => s.clone(),
            _ => node.text.clone().unwrap_or_default(),
        };
        if values.contains(&found.as_str()) {
            return;
        }
        let list = values
            .iter()
            .map(|v| format!("`{v}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut d = Diagnostic::new(format!("found {}", node.describe()))
            .at(Some(self.sources.locate(node.loc)))
            .path(path.to_string())
            .expected(format!("one of {list}"));
        if let Some(c) = closest(&found, values.iter().copied()) {
            d = d.help(format!("did you mean `{c}`?"));
        }
        self.errors.push(d);
        node.value = Value::Null;
    }

    /// What a schema accepts, in words.
    fn describe(&self, schema: &J) -> String {
        let schema = self.resolve(schema);
        if let Some(branches) = schema
            .get("anyOf")
            .or_else(|| schema.get("oneOf"))
            .and_then(J::as_array)
        {
            let consts: Vec<String> = branches
                .iter()
                .filter_map(|b| self.resolve(b).get("const").and_then(J::as_str))
                .map(|c| format!("`{c}`"))
                .collect();
            if !consts.is_empty() {
                return format!("one of {}", consts.join(", "));
            }
            let parts: Vec<String> = branches
                .iter()
                .filter(|b| b.get("type").and_then(J::as_str) != Some("null"))
                .map(|b| self.describe(b))
                .collect();
            return parts.join(" or ");
        }
        let types: Vec<String> = types_of(schema)
            .into_iter()
            .filter(|t| t != "null")
            .collect();
        let words: Vec<String> = types
            .iter()
            .map(|t| match t.as_str() {
                "integer" => {
                    let min = schema.get("minimum").and_then(J::as_i64);
                    let max = schema.get("maximum").and_then(J::as_i64);
                    match (min, max) {
                        (Some(a), Some(b)) => format!("a whole number from {a} to {b}"),
                        (Some(a), None) => format!("a whole number of at least {a}"),
                        _ => "a whole number".to_owned(),
                    }
                }
                "number" => "a number".to_owned(),
                "boolean" => "`true` or `false`".to_owned(),
                "string" => "a string".to_owned(),
                "array" => match schema.get("items") {
                    Some(items) => format!("a list of {}", plural(&self.describe(items))),
                    None => "a list".to_owned(),
                },
                "object" => match schema.get("additionalProperties") {
                    Some(extra @ J::Object(_)) => {
                        format!("a mapping of names to {}", plural(&self.describe(extra)))
                    }
                    _ => "a mapping".to_owned(),
                },
                other => other.to_owned(),
            })
            .collect();
        if words.is_empty() {
            "a value".to_owned()
        } else {
            words.join(" or ")
        }
    }
}

fn plural(s: &str) -> String {
    let s = s
        .strip_prefix("a ")
        .or_else(|| s.strip_prefix("an "))
        .unwrap_or(s);
    match s {
        "string" => "strings".to_owned(),
        "mapping" => "mappings".to_owned(),
        other => other.to_owned(),
    }
}

fn types_of(schema: &J) -> Vec<String> {
    match schema.get("type") {
        Some(J::String(t)) => vec![t.clone()],
        Some(J::Array(ts)) => ts.iter().filter_map(J::as_str).map(str::to_owned).collect(),
        _ => Vec::new(),
    }
}

fn matches_type(node: &Node, t: &str) -> bool {
    matches!(
        (t, &node.value),
        ("null", Value::Null)
            | ("boolean", Value::Bool(_))
            | ("integer", Value::Int(_))
            | ("number", Value::Int(_) | Value::Float(_))
            | ("string", Value::Str(_))
            | ("array", Value::Seq(_))
            | ("object", Value::Map(_))
    )
}

/// Where only a string fits, a scalar written as a number or boolean becomes the
/// string it was written as (`version: 15` is `"15"`, `cpu: 0.5` is `"0.5"`).
fn coerce_to_string(node: &mut Node, types: &[String]) {
    let wants_string = types.iter().any(|t| t == "string");
    let takes_as_is = types.iter().any(|t| {
        matches!(
            (t.as_str(), &node.value),
            ("integer" | "number", Value::Int(_))
                | ("number", Value::Float(_))
                | ("boolean", Value::Bool(_))
        )
    });
    if wants_string
        && !takes_as_is
        && let (Value::Int(_) | Value::Float(_) | Value::Bool(_), Some(text)) =
            (&node.value, &node.text)
    {
        node.value = Value::Str(text.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::parse;

    fn errors(text: &str) -> Vec<String> {
        let mut sources = SourceMap::default();
        let id = sources.add("env.yaml", text);
        let mut tree = parse(&sources, id).unwrap();
        check(&mut tree, &environment_schema(), &sources)
            .into_iter()
            .map(|d| {
                format!(
                    "{}:{} {} | {} | {}",
                    d.location.as_ref().unwrap().line,
                    d.location.as_ref().unwrap().column,
                    d.path.unwrap_or_default(),
                    d.message,
                    d.help.unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn collects_every_structural_error() {
        let e = errors(
            "tier: prod\nservices:\n  postgres:\n    prot: 5432\n    replicas: many\n  redis:\n    port: 70000\napps:\n  web:\n    env: {A: 1}\n    depends_on: postgres\n",
        );
        assert_eq!(
            e,
            vec![
                "1:7 tier | found the string \"prod\" | did you mean `production`?",
                "5:15 services.postgres.replicas | found the string \"many\" | ",
                "4:5 services.postgres.prot | unknown key `prot` | did you mean `port`?",
                "7:11 services.redis.port | found 70000, which is out of range | ",
                "11:17 apps.web.depends_on | found the string \"postgres\" | ",
            ]
        );
    }

    #[test]
    fn numbers_become_strings_where_strings_are_expected() {
        let mut sources = SourceMap::default();
        let id = sources.add(
            "env.yaml",
            "services:\n  postgres:\n    version: 15\n    resources: {requests: {cpu: 0.50}}\n",
        );
        let mut tree = parse(&sources, id).unwrap();
        assert!(check(&mut tree, &environment_schema(), &sources).is_empty());
        assert_eq!(
            tree.to_json()["services"]["postgres"],
            serde_json::json!({"version": "15", "resources": {"requests": {"cpu": "0.50"}}})
        );
    }

    #[test]
    fn schema_describes_expectations() {
        let mut sources = SourceMap::default();
        let id = sources.add(
            "env.yaml",
            "services: {redis: {port: x}}\nstreams: {S: {subjects: 3}}\n",
        );
        let mut tree = parse(&sources, id).unwrap();
        let e = check(&mut tree, &environment_schema(), &sources);
        let expected: Vec<_> = e.iter().map(|d| d.expected.clone().unwrap()).collect();
        assert_eq!(
            expected,
            vec!["a whole number from 0 to 65535", "a list of strings"]
        );
    }
}
