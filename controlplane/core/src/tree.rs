//! A YAML tree that remembers where every key and value came from.
//!
//! Environment files are parsed into [`Node`]s (serde-saphyr does the YAML; we keep
//! its spans), layered (`base.yaml` under `<env>.yaml`, then `--set` overrides), and
//! only then checked and deserialized. Keeping locations through the merge is what
//! lets every later error name the file, line and column that set the value.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

use crate::diag::{Diagnostic, Loc, SourceId, SourceMap};

/// A value in the tree.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
    /// A list.
    Seq(Vec<Node>),
    /// A mapping, in file order.
    Map(Vec<(Key, Node)>),
}

/// A mapping key and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key.
    pub name: String,
    /// Where the key was written.
    pub loc: Loc,
}

/// A value with its location and, for scalars, the text it was written as.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// Where it was written.
    pub loc: Loc,
    /// The scalar as written (`010`, `1.10`), so a number can become a string exactly.
    pub text: Option<String>,
}

impl Node {
    /// A node of a value at a location.
    pub fn new(value: Value, loc: Loc) -> Self {
        Self {
            value,
            loc,
            text: None,
        }
    }

    /// A short description of what this node is, for "found ..." messages.
    pub fn describe(&self) -> String {
        match &self.value {
            Value::Null => "nothing (null)".to_owned(),
            Value::Bool(b) => format!("the boolean `{b}`"),
            Value::Int(i) => format!("the number `{i}`"),
            Value::Float(_) => {
                format!("the number `{}`", self.text.as_deref().unwrap_or("<float>"))
            }
            Value::Str(s) if s.chars().count() > 40 => {
                format!(
                    "the string \"{}...\"",
                    s.chars().take(37).collect::<String>()
                )
            }
            Value::Str(s) => format!("the string \"{s}\""),
            Value::Seq(_) => "a list".to_owned(),
            Value::Map(_) => "a mapping".to_owned(),
        }
    }

    /// The child of a mapping by key.
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The key of a mapping entry by name.
    pub fn key(&self, key: &str) -> Option<&Key> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k.name == key).map(|(k, _)| k),
            _ => None,
        }
    }

    /// Follows a path of keys and indices; returns the deepest node reached and
    /// whether the whole path exists.
    pub fn walk<'a>(&'a self, path: &[PathSeg]) -> (&'a Node, bool) {
        let mut node = self;
        for seg in path {
            let next = match (seg, &node.value) {
                (PathSeg::Key(k), Value::Map(_)) => node.get(k),
                (PathSeg::Index(i), Value::Seq(items)) => items.get(*i),
                _ => None,
            };
            match next {
                Some(n) => node = n,
                None => return (node, false),
            }
        }
        (node, true)
    }

    /// Where to point for a path: a scalar's value, else the key that introduced the
    /// deepest node reached (the overriding file's key when a layer replaced it).
    pub fn locate(&self, path: &[PathSeg]) -> Loc {
        let mut node = self;
        let mut key_loc = None;
        for seg in path {
            let next = match (seg, &node.value) {
                (PathSeg::Key(k), Value::Map(entries)) => entries
                    .iter()
                    .find(|(key, _)| &key.name == k)
                    .map(|(key, v)| (Some(key.loc), v)),
                (PathSeg::Index(i), Value::Seq(items)) => items.get(*i).map(|v| (None, v)),
                _ => None,
            };
            match next {
                Some((k, n)) => {
                    key_loc = k.or(Some(n.loc));
                    node = n;
                }
                None => return key_loc.unwrap_or(node.loc),
            }
        }
        match node.value {
            Value::Map(_) | Value::Seq(_) => key_loc.unwrap_or(node.loc),
            _ => node.loc,
        }
    }

    /// Converts to JSON for serde deserialization of the typed model.
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as J;
        match &self.value {
            Value::Null => J::Null,
            Value::Bool(b) => J::Bool(*b),
            Value::Int(i) => J::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
            Value::Str(s) => J::String(s.clone()),
            Value::Seq(items) => J::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => J::Object(
                entries
                    .iter()
                    .map(|(k, v)| (k.name.clone(), v.to_json()))
                    .collect(),
            ),
        }
    }
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    /// A mapping key.
    Key(String),
    /// A list index.
    Index(usize),
}

/// A key path, printed `services.postgres.port` or `streams.X.subjects[0]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Path(pub Vec<PathSeg>);

impl Path {
    /// Parses `a.b.c` (no indices).
    pub fn keys(s: &str) -> Self {
        Self(s.split('.').map(|k| PathSeg::Key(k.to_owned())).collect())
    }

    /// Parses a path as [`Path`] prints it: `streams.X.subjects[0]`, `a.b[1][2].c`.
    /// A key that itself ends in `[n]` cannot be told from an index; no setting has one.
    pub fn parse(s: &str) -> Self {
        let mut segs = Vec::new();
        for part in s.split('.') {
            let mut key = part;
            let mut indices = Vec::new();
            while let Some(open) = key.rfind('[')
                && let Some(inner) = key[open..]
                    .strip_prefix('[')
                    .and_then(|r| r.strip_suffix(']'))
                && let Ok(i) = inner.parse::<usize>()
            {
                indices.push(i);
                key = &key[..open];
            }
            if !key.is_empty() || indices.is_empty() {
                segs.push(PathSeg::Key(key.to_owned()));
            }
            segs.extend(indices.into_iter().rev().map(PathSeg::Index));
        }
        Self(segs)
    }

    /// This path with a key appended.
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::Key(k.to_owned()));
        p
    }

    /// This path with an index appended.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(PathSeg::Index(i));
        p
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                PathSeg::Key(k) if i == 0 => f.write_str(k)?,
                PathSeg::Key(k) => write!(f, ".{k}")?,
                PathSeg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// What serde-saphyr gives us: values with spans, before we attach source ids.
enum Parsed {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<Parsed>>),
    Map(Vec<(Spanned<String>, Spanned<Parsed>)>),
}

impl<'de> Deserialize<'de> for Parsed {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Parsed;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any YAML value")
            }
            fn visit_unit<E>(self) -> Result<Parsed, E> {
                Ok(Parsed::Null)
            }
            fn visit_none<E>(self) -> Result<Parsed, E> {
                Ok(Parsed::Null)
            }
            fn visit_some<D2: Deserializer<'de>>(self, d: D2) -> Result<Parsed, D2::Error> {
                Parsed::deserialize(d)
            }
            fn visit_bool<E>(self, v: bool) -> Result<Parsed, E> {
                Ok(Parsed::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Parsed, E> {
                Ok(Parsed::Int(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Parsed, E> {
                i64::try_from(v)
                    .map(Parsed::Int)
                    .map_err(|_| E::custom("integer too large"))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Parsed, E> {
                Ok(Parsed::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Parsed, E> {
                Ok(Parsed::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<Parsed, E> {
                Ok(Parsed::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Parsed, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = a.next_element()? {
                    items.push(item);
                }
                Ok(Parsed::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Parsed, A::Error> {
                let mut entries = Vec::new();
                while let Some(k) = a.next_key::<Spanned<String>>()? {
                    let v = a.next_value()?;
                    entries.push((k, v));
                }
                Ok(Parsed::Map(entries))
            }
        }
        d.deserialize_any(V)
    }
}

fn loc_of(source: SourceId, l: &serde_saphyr::Location) -> Loc {
    Loc {
        source,
        line: l.line().max(1) as u32,
        col: l.column().max(1) as u32,
    }
}

fn convert(source: SourceId, text: &str, p: Spanned<Parsed>) -> Node {
    let loc = loc_of(source, &p.referenced);
    let scalar_text = || {
        let span = p.referenced.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        text.get(start..start + len).map(str::to_owned)
    };
    let (value, raw) = match p.value {
        Parsed::Null => (Value::Null, None),
        Parsed::Bool(b) => (Value::Bool(b), scalar_text()),
        Parsed::Int(i) => (Value::Int(i), scalar_text()),
        Parsed::Float(f) => (Value::Float(f), scalar_text()),
        Parsed::Str(s) => (Value::Str(s), None),
        Parsed::Seq(items) => (
            Value::Seq(
                items
                    .into_iter()
                    .map(|i| convert(source, text, i))
                    .collect(),
            ),
            None,
        ),
        Parsed::Map(entries) => (
            Value::Map(
                entries
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            Key {
                                loc: loc_of(source, &k.referenced),
                                name: k.value,
                            },
                            convert(source, text, v),
                        )
                    })
                    .collect(),
            ),
            None,
        ),
    };
    Node {
        value,
        loc,
        text: raw,
    }
}

/// YAML 1.2 core-schema options: `yes`/`on` stay strings, `010` stays a string.
/// Duplicate keys reach our visitor (see [`duplicate_keys`]): serde-saphyr's own error
/// names only the second occurrence and adds advice of its own.
fn options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        with_snippet: false,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
    }
}

/// Every key written twice in one mapping, each pointing at the repetition and naming
/// the first occurrence. YAML forbids them, and tools disagree on which one wins.
fn duplicate_keys(node: &Node, path: &Path, sources: &SourceMap, out: &mut Vec<Diagnostic>) {
    match &node.value {
        Value::Map(entries) => {
            for (i, (k, v)) in entries.iter().enumerate() {
                let here = path.key(&k.name);
                if let Some((first, _)) = entries[..i].iter().find(|(f, _)| f.name == k.name) {
                    let first_at = sources.locate(first.loc);
                    out.push(
                        Diagnostic::new(format!(
                            "duplicate key `{}`: first set at {first_at}",
                            k.name
                        ))
                        .at(Some(sources.locate(k.loc)))
                        .path(here.to_string())
                        .expected("each key once per mapping")
                        .help(format!(
                            "remove one of the two `{}`: tools disagree on which one wins",
                            k.name
                        )),
                    );
                } else {
                    duplicate_keys(v, &here, sources, out);
                }
            }
        }
        Value::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                duplicate_keys(item, &path.index(i), sources, out);
            }
        }
        _ => {}
    }
}

/// Parses one YAML text into a tree. An empty document is an empty mapping. Every
/// duplicate key is reported, or else the first syntax error.
pub fn parse(sources: &SourceMap, source: SourceId) -> Result<Node, Vec<Diagnostic>> {
    let text = &sources.get(source).text;
    let parsed: Spanned<Parsed> =
        serde_saphyr::from_str_with_options(text, options()).map_err(|e| {
            let loc = e.location().map(|l| sources.locate(loc_of(source, &l)));
            // serde-saphyr prefixes "line N column M: "; the location says that already.
            let full = e.to_string();
            let first = full
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            let message = match first.split_once(": ") {
                Some((head, rest)) if head.starts_with("line ") => rest.to_owned(),
                _ => first.to_owned(),
            };
            let message = match message.rfind(" at line ") {
                Some(i) => message[..i].to_owned(),
                None => message,
            };
            vec![
                Diagnostic::new(format!("invalid YAML: {message}"))
                    .at(loc)
                    .help(
                        "fix the YAML syntax at this place (indentation, a missing `]` or `:`, a tab)",
                    ),
            ]
        })?;
    let node = convert(source, text, parsed);
    let mut duplicates = Vec::new();
    duplicate_keys(&node, &Path::default(), sources, &mut duplicates);
    if !duplicates.is_empty() {
        return Err(duplicates);
    }
    Ok(match node.value {
        Value::Null => Node::new(Value::Map(Vec::new()), node.loc),
        _ => node,
    })
}

/// Layers `over` onto `base`: mappings merge key by key, anything else replaces, and
/// `null` removes the key from the result.
pub fn merge(base: Node, over: Node) -> Node {
    match (base.value, over.value) {
        (Value::Map(mut entries), Value::Map(over_entries)) => {
            for (k, v) in over_entries {
                match entries.iter().position(|(bk, _)| bk.name == k.name) {
                    Some(i) if v.value == Value::Null => {
                        entries.remove(i);
                    }
                    Some(i) => {
                        let (_, old) = entries.remove(i);
                        entries.insert(i, (k, merge(old, v)));
                    }
                    None if v.value == Value::Null => {}
                    None => entries.push((k, v)),
                }
            }
            Node {
                value: Value::Map(entries),
                loc: base.loc,
                text: None,
            }
        }
        (_, value) => Node {
            value,
            loc: over.loc,
            text: over.text,
        },
    }
}

/// Removes `key: null` entries everywhere: null means "not set".
pub fn strip_nulls(node: &mut Node) {
    match &mut node.value {
        Value::Map(entries) => {
            entries.retain(|(_, v)| v.value != Value::Null);
            for (_, v) in entries {
                strip_nulls(v);
            }
        }
        Value::Seq(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// A `--set PATH=VALUE` override, parsed.
#[derive(Debug, Clone)]
pub struct SetOverride {
    /// The keys.
    pub path: Vec<String>,
    /// The value, parsed as YAML.
    pub value: Node,
    /// Where the path starts (column 1 of the argument).
    pub loc: Loc,
}

/// Parses `a.b.c=VALUE` (the value is YAML: `5`, `true`, `[a, b]`, `'05'`). Keys that
/// contain dots are written with `\.`.
pub fn parse_set(sources: &SourceMap, source: SourceId) -> Result<SetOverride, Diagnostic> {
    let text = &sources.get(source).text;
    let at = |col: u32| {
        Some(sources.locate(Loc {
            source,
            line: 1,
            col,
        }))
    };
    let Some((path, value)) = text.split_once('=') else {
        return Err(Diagnostic::new(format!("`{text}` has no `=`"))
            .at(at(1))
            .expected("PATH=VALUE, e.g. services.postgres.port=15432"));
    };
    let mut keys = Vec::new();
    let mut current = String::new();
    let mut chars = path.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'.') => {
                current.push('.');
                chars.next();
            }
            '.' => keys.push(std::mem::take(&mut current)),
            c => current.push(c),
        }
    }
    keys.push(current);
    if keys.iter().any(|k| k.trim().is_empty()) {
        return Err(Diagnostic::new(format!("`{path}` has an empty key"))
            .at(at(1))
            .expected("dot-separated keys, e.g. services.postgres.port"));
    }
    // Parse the value as its own little YAML document, then move its locations onto
    // the argument so errors point into `--set ...`.
    let value_col = u32::try_from(path.chars().count() + 2).unwrap_or(u32::MAX);
    let mut scratch = SourceMap::default();
    let scratch_id = scratch.add("--set value", value);
    let parsed: Result<Spanned<Parsed>, _> = serde_saphyr::from_str_with_options(value, options());
    let mut node = match parsed {
        Ok(p) => convert(scratch_id, value, p),
        Err(e) => {
            return Err(Diagnostic::new(format!(
                "the value `{value}` is not valid YAML: {}",
                e.to_string().lines().next().unwrap_or("")
            ))
            .at(at(value_col))
            .help("quote strings that contain YAML punctuation, e.g. --set 'a.b=\"x: y\"'"));
        }
    };
    let mut duplicates = Vec::new();
    duplicate_keys(&node, &Path::default(), &scratch, &mut duplicates);
    if let Some(d) = duplicates.into_iter().next() {
        let key = d.path.unwrap_or_default();
        return Err(
            Diagnostic::new(format!("the value `{value}` sets `{key}` twice"))
                .at(at(value_col))
                .expected("each key once per mapping"),
        );
    }
    relocate(
        &mut node,
        Loc {
            source,
            line: 1,
            col: value_col,
        },
    );
    Ok(SetOverride {
        path: keys,
        value: node,
        loc: Loc {
            source,
            line: 1,
            col: 1,
        },
    })
}

fn relocate(node: &mut Node, loc: Loc) {
    node.loc = loc;
    match &mut node.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                k.loc = loc;
                relocate(v, loc);
            }
        }
        Value::Seq(items) => items.iter_mut().for_each(|i| relocate(i, loc)),
        _ => {}
    }
}

/// Applies a `--set` override to the merged tree, creating mappings on the way.
pub fn apply_set(root: &mut Node, set: SetOverride, sources: &SourceMap) -> Result<(), Diagnostic> {
    let mut node = root;
    let mut walked = Path::default();
    let (last, parents) = set
        .path
        .split_last()
        .expect("parse_set gives at least one key");
    for key in parents {
        walked = walked.key(key);
        if node.value == Value::Null {
            node.value = Value::Map(Vec::new());
        }
        let found = node.describe();
        let Value::Map(entries) = &mut node.value else {
            return Err(Diagnostic::new(format!(
                "cannot set below `{}`: it is {found}, not a mapping",
                Path(walked.0[..walked.0.len() - 1].to_vec())
            ))
            .at(Some(sources.locate(set.loc)))
            .path(walked.to_string()));
        };
        let i = match entries.iter().position(|(k, _)| &k.name == key) {
            Some(i) => i,
            None => {
                entries.push((
                    Key {
                        name: key.clone(),
                        loc: set.loc,
                    },
                    Node::new(Value::Map(Vec::new()), set.loc),
                ));
                entries.len() - 1
            }
        };
        node = &mut entries[i].1;
    }
    if node.value == Value::Null {
        node.value = Value::Map(Vec::new());
    }
    let found = node.describe();
    let Value::Map(entries) = &mut node.value else {
        return Err(Diagnostic::new(format!(
            "cannot set `{last}` inside `{walked}`: it is {found}, not a mapping"
        ))
        .at(Some(sources.locate(set.loc)))
        .path(walked.key(last).to_string()));
    };
    let key = Key {
        name: last.clone(),
        loc: set.loc,
    };
    match entries.iter().position(|(k, _)| &k.name == last) {
        Some(i) => {
            let (_, old) = entries.remove(i);
            entries.insert(i, (key, merge(old, set.value)));
        }
        None => entries.push((key, set.value)),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(sources: &mut SourceMap, name: &str, text: &str) -> Node {
        let id = sources.add(name, text);
        parse(sources, id).expect("valid yaml")
    }

    #[test]
    fn keeps_locations_and_scalar_text() {
        let mut s = SourceMap::default();
        let t = tree(&mut s, "a.yaml", "a:\n  b: 1.10\n  c: yes\n  d: 010\n");
        let a = t.get("a").unwrap();
        let b = a.get("b").unwrap();
        assert_eq!((b.loc.line, b.loc.col), (2, 6));
        assert_eq!(b.text.as_deref(), Some("1.10"));
        assert_eq!(a.get("c").unwrap().value, Value::Str("yes".into()));
        assert_eq!(a.get("d").unwrap().value, Value::Str("010".into()));
        assert_eq!(a.key("d").unwrap().loc.line, 4);
    }

    #[test]
    fn duplicate_keys_and_syntax_errors_have_locations() {
        let mut s = SourceMap::default();
        let id = s.add("dup.yaml", "a: 1\nb:\n  - {x: 1, x: 2}\na: 2\n");
        let e = parse(&s, id).unwrap_err();
        let found: Vec<_> = e
            .iter()
            .map(|d| {
                (
                    d.path.clone().unwrap(),
                    d.message.clone(),
                    d.location.as_ref().unwrap().line,
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (
                    "b[0].x".to_owned(),
                    "duplicate key `x`: first set at dup.yaml:3:6".to_owned(),
                    3
                ),
                (
                    "a".to_owned(),
                    "duplicate key `a`: first set at dup.yaml:1:1".to_owned(),
                    4
                ),
            ]
        );
        let id = s.add("bad.yaml", "a: [1, 2\nb: 3\n");
        let e = parse(&s, id).unwrap_err().remove(0);
        assert!(e.message.starts_with("invalid YAML"), "{e}");
        assert_eq!(e.location.as_ref().unwrap().file, "bad.yaml");
    }

    #[test]
    fn paths_parse_as_they_print() {
        for text in ["a", "a.b[0]", "a.b[1][2].c", "streams.X.subjects[3]"] {
            assert_eq!(Path::parse(text).to_string(), text);
        }
        assert_eq!(
            Path::parse("a[2].b").0,
            [
                PathSeg::Key("a".into()),
                PathSeg::Index(2),
                PathSeg::Key("b".into())
            ]
        );
    }

    #[test]
    fn merge_layers_maps_and_null_removes() {
        let mut s = SourceMap::default();
        let base = tree(&mut s, "base.yaml", "a: {x: 1, y: 2}\nl: [1, 2]\nk: 1\n");
        let over = tree(&mut s, "env.yaml", "a: {y: 3, z: 4}\nl: [9]\nk: null\n");
        let m = merge(base, over);
        assert_eq!(
            m.to_json(),
            serde_json::json!({"a": {"x": 1, "y": 3, "z": 4}, "l": [9]})
        );
        let y = m.get("a").unwrap().get("y").unwrap();
        assert_eq!(s.get(y.loc.source).name, "env.yaml");
    }

    #[test]
    fn set_overrides_create_and_replace() {
        let mut s = SourceMap::default();
        let mut t = tree(
            &mut s,
            "base.yaml",
            "services:\n  postgres:\n    port: 5432\n",
        );
        let id = s.add("--set", "services.postgres.port=15432");
        let set = parse_set(&s, id).unwrap();
        apply_set(&mut t, set, &s).unwrap();
        let id = s.add("--set", "apps.a\\.b.tag='007'");
        apply_set(&mut t, parse_set(&s, id).unwrap(), &s).unwrap();
        assert_eq!(
            t.to_json(),
            serde_json::json!({"services": {"postgres": {"port": 15432}}, "apps": {"a.b": {"tag": "007"}}})
        );
        let id = s.add("--set", "services.postgres.port.x=1");
        let e = apply_set(&mut t, parse_set(&s, id).unwrap(), &s).unwrap_err();
        assert!(e.message.contains("not a mapping"), "{e}");
    }
}
