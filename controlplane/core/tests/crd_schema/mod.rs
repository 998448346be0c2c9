//! A structural-schema validator for custom resources: checks an object against the
//! CustomResourceDefinitions an operator publishes, as the API server does with strict
//! field validation (`kubectl apply --validate=strict`).
//!
//! Why not the `jsonschema` crate: a CRD schema is OpenAPI v3 read with Kubernetes
//! semantics that JSON Schema does not have (unknown fields are errors unless
//! `x-kubernetes-preserve-unknown-fields`, `x-kubernetes-int-or-string`, list types,
//! required fields satisfied by a `default`, served versions); rewriting every vendored
//! schema to emulate those would be more code than this module, and less obvious about
//! what it checks. What it checks: the apiVersion is a *served* version of a vendored CRD
//! for the kind; then `type`, `properties`, `required`, `enum`, `items`,
//! `additionalProperties`, `nullable`, the two extensions above, `x-kubernetes-list-type`
//! (`set` and `map` uniqueness), `anyOf`/`allOf`/`oneOf`/`not`, `pattern` (Go RE2
//! syntax, which the `regex` crate shares), `format` (`int32`, `int64`, `byte`,
//! `date-time`), and the min/max bounds. The root `metadata` is checked only as an object
//! (the API server validates ObjectMeta itself). Not checked: CEL rules
//! (`x-kubernetes-validations`), which need a CEL interpreter.
//!
//! One deliberate difference: a `null` where the schema does not allow one is an error
//! here, while the API server silently drops it. In rendered output a null means a
//! template produced nothing where it meant something.

#![allow(dead_code, unreachable_pub)]

use std::path::Path;

use serde_json::Value;

/// One vendored CustomResourceDefinition.
#[derive(Debug)]
pub struct Crd {
    /// Where it came from: `external-secrets-v2.9.0/external-secrets.io_externalsecrets.yaml`.
    pub source: String,
    /// `externalsecrets.external-secrets.io`.
    pub name: String,
    /// `external-secrets.io`.
    pub group: String,
    /// `ExternalSecret`.
    pub kind: String,
    /// `scope: Namespaced`.
    pub namespaced: bool,
    /// `spec.versions[]`: name, served, `schema.openAPIV3Schema`.
    pub versions: Vec<(String, bool, Value)>,
}

impl Crd {
    /// The CRDs in one YAML file (a file may hold several documents).
    pub fn parse(source: &str, text: &str) -> Vec<Crd> {
        let docs: Vec<Value> = serde_saphyr::from_str_multiple(text)
            .unwrap_or_else(|e| panic!("{source}: not YAML: {e}"));
        docs.into_iter()
            .filter(|d| d["kind"] == "CustomResourceDefinition")
            .map(|d| {
                let s = &d["spec"];
                let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                Crd {
                    source: source.to_owned(),
                    name: text(&d["metadata"]["name"]),
                    group: text(&s["group"]),
                    kind: text(&s["names"]["kind"]),
                    namespaced: s["scope"] == "Namespaced",
                    versions: s["versions"]
                        .as_array()
                        .unwrap_or_else(|| panic!("{source}: no spec.versions"))
                        .iter()
                        .map(|v| {
                            let schema = v["schema"]["openAPIV3Schema"].clone();
                            assert!(schema.is_object(), "{source}: a version without a schema");
                            (text(&v["name"]), v["served"] == true, schema)
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// The names of the versions the CRD serves.
    pub fn served(&self) -> Vec<&str> {
        self.versions
            .iter()
            .filter(|v| v.1)
            .map(|v| v.0.as_str())
            .collect()
    }
}

/// A set of vendored CRDs.
#[derive(Debug, Default)]
pub struct Crds(pub Vec<Crd>);

impl Crds {
    /// Every `*.yaml` one directory below `dir` (`<operator>-<version>/<file>.yaml`).
    pub fn load(dir: &Path) -> Crds {
        let mut crds = Vec::new();
        let mut subdirs: Vec<_> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        subdirs.sort();
        for sub in subdirs {
            let mut files: Vec<_> = std::fs::read_dir(&sub)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
                .collect();
            files.sort();
            for f in files {
                let source = f.strip_prefix(dir).unwrap().display().to_string();
                crds.extend(Crd::parse(&source, &std::fs::read_to_string(&f).unwrap()));
            }
        }
        Crds(crds)
    }

    /// The CRD for a group and kind.
    pub fn find(&self, group: &str, kind: &str) -> Option<&Crd> {
        self.0.iter().find(|c| c.group == group && c.kind == kind)
    }

    /// Validates an object: its apiVersion must be served by the CRD of its kind, and
    /// it must match that version's schema. Returns the CRD, or every problem found.
    pub fn validate(&self, obj: &Value) -> Result<&Crd, Vec<String>> {
        let api_version = obj["apiVersion"].as_str().unwrap_or_default();
        let kind = obj["kind"].as_str().unwrap_or_default();
        let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
        let Some(crd) = self.find(group, kind) else {
            return Err(vec![format!(
                "no vendored CRD for kind {kind} in group `{group}`: vendor the operator's CRD under tests/crds/"
            )]);
        };
        let served = crd.served().join(", ");
        let schema = match crd.versions.iter().find(|v| v.0 == version) {
            None => {
                return Err(vec![format!(
                    "{api_version}: version {version} does not exist in {} ({}); it serves {served}",
                    crd.name, crd.source
                )]);
            }
            Some((_, false, _)) => {
                return Err(vec![format!(
                    "{api_version}: version {version} is not served by {} ({}); it serves {served}",
                    crd.name, crd.source
                )]);
            }
            Some((_, true, schema)) => schema,
        };
        let mut errors = Vec::new();
        check(schema, obj, "", true, &mut errors);
        if errors.is_empty() {
            Ok(crd)
        } else {
            Err(errors)
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn has_type(v: &Value, ty: &str) -> bool {
    let found = type_name(v);
    found == ty || (ty == "number" && found == "integer")
}

/// Validates `v` at `path` against `s`. `strict` reports unknown fields; it is off inside
/// `anyOf`/`allOf`/`oneOf`/`not` branches, which in a structural schema only add value
/// checks (which fields exist is decided by the enclosing schema).
fn check(s: &Value, v: &Value, path: &str, strict: bool, errors: &mut Vec<String>) {
    let at = if path.is_empty() { "<root>" } else { path };
    let mut err = |m: String| errors.push(format!("{at}: {m}"));
    if v.is_null() {
        if s["nullable"] != true {
            err("null is not allowed here".into());
        }
        return;
    }
    if s["x-kubernetes-int-or-string"] == true {
        if !has_type(v, "integer") && !v.is_string() {
            err(format!(
                "expected an integer or a string, found {}",
                type_name(v)
            ));
            return;
        }
    } else if let Some(ty) = s["type"].as_str()
        && !has_type(v, ty)
    {
        err(format!("expected {ty}, found {}", type_name(v)));
        return;
    }
    if let Some(allowed) = s["enum"].as_array()
        && !allowed.contains(v)
    {
        err(format!(
            "{v} is not one of {}",
            Value::Array(allowed.clone())
        ));
    }
    let bound = |k: &str| s[k].as_f64();
    match v {
        Value::String(text) => {
            let len = text.chars().count() as f64;
            if bound("minLength").is_some_and(|m| len < m) {
                err(format!("shorter than minLength {}", s["minLength"]));
            }
            if bound("maxLength").is_some_and(|m| len > m) {
                err(format!("longer than maxLength {}", s["maxLength"]));
            }
            if let Some(p) = s["pattern"].as_str() {
                let re = regex::Regex::new(p).unwrap_or_else(|e| panic!("pattern {p}: {e}"));
                if !re.is_match(text) {
                    err(format!("{text:?} does not match the pattern {p}"));
                }
            }
            match s["format"].as_str() {
                Some("byte") if !is_base64(text) => err("not base64 (format byte)".into()),
                Some("date-time") if chrono::DateTime::parse_from_rfc3339(text).is_err() => {
                    err(format!("{text:?} is not an RFC 3339 date-time"));
                }
                _ => {}
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().expect("JSON numbers are finite");
            let excl = |k: &str| s[k] == true;
            if let Some(m) = bound("minimum")
                && (x < m || (excl("exclusiveMinimum") && x == m))
            {
                err(format!("{n} is below the minimum {m}"));
            }
            if let Some(m) = bound("maximum")
                && (x > m || (excl("exclusiveMaximum") && x == m))
            {
                err(format!("{n} is above the maximum {m}"));
            }
            let range = match s["format"].as_str() {
                Some("int32") => Some((i32::MIN as f64, i32::MAX as f64)),
                Some("int64") => Some((i64::MIN as f64, i64::MAX as f64)),
                _ => None,
            };
            if let Some((lo, hi)) = range
                && (x < lo || x > hi)
            {
                err(format!("{n} is out of range for {}", s["format"]));
            }
        }
        Value::Array(items) => {
            let len = items.len() as f64;
            if bound("minItems").is_some_and(|m| len < m) {
                err(format!("fewer items than minItems {}", s["minItems"]));
            }
            if bound("maxItems").is_some_and(|m| len > m) {
                err(format!("more items than maxItems {}", s["maxItems"]));
            }
            match s["x-kubernetes-list-type"].as_str() {
                Some("set") => {
                    for (i, item) in items.iter().enumerate() {
                        if items[..i].contains(item) {
                            err(format!("item {i} repeats an earlier one (list type set)"));
                        }
                    }
                }
                Some("map") => {
                    let keys: Vec<&str> = s["x-kubernetes-list-map-keys"]
                        .as_array()
                        .map(|k| k.iter().filter_map(Value::as_str).collect())
                        .unwrap_or_default();
                    let key_of =
                        |item: &Value| keys.iter().map(|k| item[*k].clone()).collect::<Vec<_>>();
                    for (i, item) in items.iter().enumerate() {
                        if items[..i].iter().any(|o| key_of(o) == key_of(item)) {
                            err(format!(
                                "item {i} repeats the keys {keys:?} of an earlier one (list type map)"
                            ));
                        }
                    }
                }
                _ => {}
            }
            if s["items"].is_object() {
                for (i, item) in items.iter().enumerate() {
                    check(&s["items"], item, &format!("{path}[{i}]"), strict, errors);
                }
            }
        }
        Value::Object(fields) => {
            let len = fields.len() as f64;
            if bound("minProperties").is_some_and(|m| len < m) {
                err(format!(
                    "fewer fields than minProperties {}",
                    s["minProperties"]
                ));
            }
            if bound("maxProperties").is_some_and(|m| len > m) {
                err(format!(
                    "more fields than maxProperties {}",
                    s["maxProperties"]
                ));
            }
            let props = &s["properties"];
            for r in s["required"].as_array().into_iter().flatten() {
                let r = r.as_str().unwrap_or_default();
                // A field with a default is filled in before validation runs.
                if !fields.contains_key(r) && props[r].get("default").is_none() {
                    err(format!("missing required field \"{r}\""));
                }
            }
            let preserve = s["x-kubernetes-preserve-unknown-fields"] == true;
            for (k, fv) in fields {
                let p = join(path, k);
                if path.is_empty() && k == "metadata" {
                    if !fv.is_object() {
                        errors.push(format!(
                            "metadata: expected object, found {}",
                            type_name(fv)
                        ));
                    }
                } else if props.get(k).is_some() {
                    check(&props[k], fv, &p, strict, errors);
                } else if s["additionalProperties"].is_object() {
                    check(&s["additionalProperties"], fv, &p, strict, errors);
                } else if strict && !preserve && s["additionalProperties"] != true {
                    errors.push(format!("unknown field \"{p}\""));
                }
            }
        }
        Value::Bool(_) | Value::Null => {}
    }
    let passes = |branch: &Value| {
        let mut e = Vec::new();
        check(branch, v, path, false, &mut e);
        e.is_empty()
    };
    if let Some(any) = s["anyOf"].as_array()
        && !any.iter().any(passes)
    {
        errors.push(format!("{at}: matches none of anyOf"));
    }
    if let Some(one) = s["oneOf"].as_array()
        && one.iter().filter(|b| passes(b)).count() != 1
    {
        errors.push(format!("{at}: does not match exactly one of oneOf"));
    }
    for b in s["allOf"].as_array().into_iter().flatten() {
        check(b, v, path, false, errors);
    }
    if s["not"].is_object() && passes(&s["not"]) {
        errors.push(format!("{at}: matches the schema under not"));
    }
}

fn is_base64(text: &str) -> bool {
    let body = text.trim_end_matches('=');
    text.len().is_multiple_of(4)
        && text.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A small CRD serving v1 (not v1beta1), with the constructs the validator knows.
    const WIDGET: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets}
  scope: Namespaced
  versions:
    - name: v1beta1
      served: false
      storage: false
      schema: {openAPIV3Schema: {type: object}}
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            apiVersion: {type: string}
            kind: {type: string}
            metadata: {type: object}
            spec:
              type: object
              required: [size, mode]
              properties:
                size: {type: integer, format: int32, minimum: 1}
                mode: {type: string, enum: [fast, slow], default: fast}
                name: {type: string, pattern: '^[a-z]+$', maxLength: 8}
                port: {x-kubernetes-int-or-string: true, anyOf: [{type: integer}, {type: string}]}
                labels: {type: object, additionalProperties: {type: string}}
                extra: {type: object, x-kubernetes-preserve-unknown-fields: true}
                tags: {type: array, x-kubernetes-list-type: set, items: {type: string}}
                note: {type: string, nullable: true}
"#;

    fn crds() -> Crds {
        Crds(Crd::parse("test/widget.yaml", WIDGET))
    }

    fn widget(spec: Value) -> Value {
        json!({"apiVersion": "example.com/v1", "kind": "Widget",
               "metadata": {"name": "w", "anything": {"goes": 1}}, "spec": spec})
    }

    fn errors(obj: Value) -> Vec<String> {
        crds().validate(&obj).err().unwrap_or_default()
    }

    #[test]
    fn accepts_a_valid_object_with_every_construct() {
        let obj = widget(json!({
            "size": 3, "name": "abc", "port": "http", "labels": {"a": "b"},
            "extra": {"free": {"form": [1, 2]}}, "tags": ["x", "y"], "note": null
        }));
        assert_eq!(errors(obj), Vec::<String>::new());
        assert!(errors(widget(json!({"size": 1, "port": 8080}))).is_empty());
    }

    #[test]
    fn rejects_an_unknown_field() {
        assert_eq!(
            errors(widget(json!({"size": 1, "colour": "red"}))),
            vec!["unknown field \"spec.colour\""]
        );
        let mut obj = widget(json!({"size": 1}));
        obj["status2"] = json!({});
        assert_eq!(errors(obj), vec!["unknown field \"status2\""]);
    }

    #[test]
    fn rejects_a_wrong_type() {
        assert_eq!(
            errors(widget(json!({"size": "3"}))),
            vec!["spec.size: expected integer, found string"]
        );
        assert_eq!(
            errors(widget(json!({"size": 1, "port": true}))),
            vec!["spec.port: expected an integer or a string, found boolean"]
        );
        assert_eq!(
            errors(widget(json!({"size": 1, "labels": {"a": 1}}))),
            vec!["spec.labels.a: expected string, found integer"]
        );
    }

    #[test]
    fn rejects_a_missing_required_field_unless_it_has_a_default() {
        assert_eq!(
            errors(widget(json!({"mode": "slow"}))),
            vec!["spec: missing required field \"size\""]
        );
    }

    #[test]
    fn rejects_values_outside_enum_pattern_bounds_and_list_type() {
        let e = errors(widget(json!({
            "size": 0, "mode": "medium", "name": "Abc", "tags": ["x", "x"]
        })));
        assert_eq!(
            e,
            vec![
                "spec.size: 0 is below the minimum 1",
                "spec.mode: \"medium\" is not one of [\"fast\",\"slow\"]",
                "spec.name: \"Abc\" does not match the pattern ^[a-z]+$",
                "spec.tags: item 1 repeats an earlier one (list type set)",
            ]
        );
        assert_eq!(
            errors(widget(json!({"size": 4_000_000_000u64}))),
            vec!["spec.size: 4000000000 is out of range for \"int32\""]
        );
        assert_eq!(
            errors(widget(json!({"size": 1, "labels": null}))),
            vec!["spec.labels: null is not allowed here"]
        );
    }

    #[test]
    fn rejects_a_version_the_crd_does_not_serve_or_have() {
        let mut obj = widget(json!({"size": 1}));
        obj["apiVersion"] = json!("example.com/v1beta1");
        assert_eq!(
            errors(obj.clone()),
            vec![
                "example.com/v1beta1: version v1beta1 is not served by widgets.example.com (test/widget.yaml); it serves v1"
            ]
        );
        obj["apiVersion"] = json!("example.com/v2");
        assert!(errors(obj.clone())[0].contains("version v2 does not exist"));
        obj["kind"] = json!("Gadget");
        assert!(errors(obj)[0].contains("no vendored CRD for kind Gadget"));
    }

    #[test]
    fn metadata_is_checked_only_as_an_object() {
        let mut obj = widget(json!({"size": 1}));
        obj["metadata"] = json!("w");
        assert_eq!(errors(obj), vec!["metadata: expected object, found string"]);
    }

    #[test]
    fn base64() {
        assert!(is_base64("aGVsbG8="));
        assert!(is_base64(""));
        assert!(!is_base64("aGVsbG8"));
        assert!(!is_base64("a*=="));
    }
}
