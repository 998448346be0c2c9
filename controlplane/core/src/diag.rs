//! Diagnostics: every problem found in the environment files, with where it is.
//!
//! A [`Diagnostic`] is self-contained (file, line, column, the source line) so it can
//! be printed for a person or serialized for a machine without the sources at hand.
//! Loading collects all of them before returning, never just the first.

use std::fmt;

use serde::Serialize;

use crate::names::EnvName;

/// Index of a source in a [`SourceMap`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceId(pub(crate) u32);

/// A place in a source: 1-based line and column (characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Loc {
    /// Which source.
    pub source: SourceId,
    /// 1-based line.
    pub line: u32,
    /// 1-based column, in characters.
    pub col: u32,
}

/// One input text: an environment file or a `--set` argument.
#[derive(Debug, Clone)]
pub struct Source {
    /// How a person names it: `environments/dev.yaml`, `--set services.redis.port=1`.
    pub name: String,
    /// Its text.
    pub text: String,
}

/// All inputs of one load, so locations can be resolved to text.
#[derive(Debug, Clone, Default)]
pub struct SourceMap {
    sources: Vec<Source>,
}

impl SourceMap {
    /// Adds a source and returns its id.
    pub fn add(&mut self, name: impl Into<String>, text: impl Into<String>) -> SourceId {
        self.sources.push(Source {
            name: name.into(),
            text: text.into(),
        });
        SourceId(u32::try_from(self.sources.len() - 1).expect("fewer than 2^32 sources"))
    }

    /// The source behind an id.
    pub fn get(&self, id: SourceId) -> &Source {
        &self.sources[id.0 as usize]
    }

    /// Resolves a location to something printable.
    pub fn locate(&self, loc: Loc) -> Location {
        let source = self.get(loc.source);
        Location {
            file: source.name.clone(),
            line: loc.line,
            column: loc.col,
            line_text: source
                .text
                .lines()
                .nth(loc.line.saturating_sub(1) as usize)
                .map(str::to_owned),
        }
    }
}

/// A resolved place: file, line, column and the text of that line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Location {
    /// The file (or `--set` argument) as a person names it.
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// The source line, for the snippet.
    #[serde(skip)]
    pub line_text: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.file.starts_with("--set ") {
            // A flag has no lines; `--set a.b=1:1:5` would read as part of the value.
            write!(f, "{} (column {})", self.file, self.column)
        } else {
            write!(f, "{}:{}:{}", self.file, self.line, self.column)
        }
    }
}

/// One problem: where, which key, what was found, what was expected, what to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    /// Where it is; `None` when no file is to blame (an unknown environment name).
    pub location: Option<Location>,
    /// The key path, e.g. `services.postgres.port`.
    pub path: Option<String>,
    /// What is wrong, naming what was found.
    pub message: String,
    /// What was expected instead.
    pub expected: Option<String>,
    /// What to do about it.
    pub help: Option<String>,
    /// Other places that take part (the other side of a clash).
    pub notes: Vec<String>,
    /// The environments this problem breaks, when several were loaded at once
    /// ([`crate::load::load_each`]): a mistake in `base.yaml` is reported once, naming them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub affects: Vec<EnvName>,
}

impl Diagnostic {
    /// A diagnostic with just a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            location: None,
            path: None,
            message: message.into(),
            expected: None,
            help: None,
            notes: Vec::new(),
            affects: Vec::new(),
        }
    }

    /// Sets the location.
    pub fn at(mut self, location: Option<Location>) -> Self {
        self.location = location;
        self
    }

    /// Sets the key path.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.path = (!path.is_empty()).then_some(path);
        self
    }

    /// Says what was expected.
    pub fn expected(mut self, expected: impl Into<String>) -> Self {
        self.expected = Some(expected.into());
        self
    }

    /// Says what to do.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Hides the value at the location in the printed source line: for problems with
    /// a secret's value, which must never reach a terminal or a CI log.
    pub fn redact_value(mut self) -> Self {
        if let Some(loc) = &mut self.location
            && let Some(text) = &loc.line_text
        {
            let keep: String = text
                .chars()
                .take(loc.column.saturating_sub(1) as usize)
                .collect();
            loc.line_text = Some(format!("{keep}<redacted>"));
        }
        self
    }

    /// Adds a note.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    /// Every text that can carry a user's value (the file name, the key path, the
    /// message, the source line, notes) goes through [`escape_control`]: a value with
    /// an escape sequence or a newline prints as `\x1b` or `\n`, never raw, so it can
    /// neither restyle a terminal nor forge a line of the report.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("error: ")?;
        if let Some(location) = &self.location {
            write!(
                f,
                "{}: ",
                clip(&escape_control(&location.to_string()), MAX_SHOWN)
            )?;
        }
        if let Some(path) = &self.path {
            write!(f, "{}: ", clip(&escape_control(path), MAX_SHOWN))?;
        }
        f.write_str(&clip(&escape_control(&self.message), MAX_SHOWN))?;
        if let Some(location) = &self.location
            && let Some(text) = &location.line_text
        {
            let number = location.line.to_string();
            let pad = " ".repeat(number.len());
            // A window of the line around the column: a line of a megabyte (a value
            // pasted on one line, a flow collection nested 100 000 deep) shows as a
            // few dozen characters either side of the caret.
            let chars: Vec<char> = text.chars().collect();
            let col = (location.column.saturating_sub(1) as usize).min(chars.len());
            let from = col.saturating_sub(SNIPPET_SIDE);
            let to = (col + SNIPPET_SIDE).min(chars.len());
            let lead = if from > 0 { "…" } else { "" };
            let tail = if to < chars.len() { "…" } else { "" };
            let before: String = chars[from..col].iter().collect();
            let after: String = chars[col..to].iter().collect();
            // The caret sits under the escaped text, so it is measured on it.
            let before = format!("{lead}{}", escape_control(&before));
            let caret_pad: String = before
                .chars()
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let text = format!("{before}{}{tail}", escape_control(&after));
            write!(f, "\n{pad} |\n{number} | {text}\n{pad} | {caret_pad}^")?;
        }
        if let Some(expected) = &self.expected {
            write!(
                f,
                "\n  = expected: {}",
                clip(&escape_control(expected), MAX_SHOWN)
            )?;
        }
        for note in &self.notes {
            write!(f, "\n  = note: {}", clip(&escape_control(note), MAX_SHOWN))?;
        }
        if !self.affects.is_empty() {
            let names: Vec<&str> = self.affects.iter().map(EnvName::as_str).collect();
            write!(f, "\n  = affects: {}", names.join(", "))?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  = help: {}", clip(&escape_control(help), MAX_SHOWN))?;
        }
        Ok(())
    }
}

/// The most characters of a message shown: a value echoed in it (a 1 MB string where
/// a name belongs) is cut, saying how much was left out.
const MAX_SHOWN: usize = 400;

/// Characters of the source line shown on each side of the caret.
const SNIPPET_SIDE: usize = 60;

/// `text` cut to `max` characters, saying how many were left out.
pub fn clip(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    match text.char_indices().nth(max) {
        None => std::borrow::Cow::Borrowed(text),
        Some((cut, _)) => {
            let left = text[cut..].chars().count();
            std::borrow::Cow::Owned(format!("{}… ({left} more characters)", &text[..cut]))
        }
    }
}

/// `text` with every control character but the tab spelled as an escape (`\n`,
/// `\r`, `\x1b`, `\u{9b}`), so a value echoed to a terminal or a log cannot move the
/// cursor, change colours or start a line of its own. Borrowed when there is nothing
/// to escape. The one place diagnostics and the CLI's errors escape what they echo.
pub fn escape_control(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() && (c as u32) < 0x80 => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// Every problem found by one load. Non-empty.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl Diagnostics {
    /// A single problem.
    pub fn one(d: Diagnostic) -> Self {
        Self(vec![d])
    }
}

/// The most diagnostics printed for a person; the rest are counted (`--output json`
/// lists every one). Fixing the first few usually fixes many of the others.
pub const MAX_PRINTED: usize = 50;

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().take(MAX_PRINTED).enumerate() {
            if i > 0 {
                f.write_str("\n\n")?;
            }
            write!(f, "{d}")?;
        }
        let n = self.0.len();
        if n > MAX_PRINTED {
            write!(
                f,
                "\n\n... and {} more (`--output json` lists them all)",
                n - MAX_PRINTED
            )?;
        }
        write!(
            f,
            "\n\n{n} error{} found; nothing was changed.",
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for Diagnostics {}

/// The closest of `candidates` to `word`, if close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_and_rejects_strangers() {
        let keys = ["port", "version", "image", "replicas"];
        assert_eq!(closest("prot", keys), Some("port"));
        assert_eq!(closest("replica", keys), Some("replicas"));
        assert_eq!(closest("zzz", keys), None);
    }

    #[test]
    fn control_characters_in_echoed_values_print_escaped() {
        let mut sources = SourceMap::default();
        let id = sources.add("environments/dev\x1b.yaml", "namespace: \"a\x1b[31mb\"\n");
        let d = Diagnostic::new("`a\x1b[31mb` is not a valid namespace\nerror: forged")
            .at(Some(sources.locate(Loc {
                source: id,
                line: 1,
                col: 15,
            })))
            .path("namespace")
            .note("seen \u{9b}here\r")
            .help("fix\x07 it");
        let shown = d.to_string();
        assert!(
            !shown
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "{shown:?}"
        );
        assert!(shown.contains("`a\\x1b[31mb` is not a valid namespace\\nerror: forged"));
        assert!(shown.contains("environments/dev\\x1b.yaml:1:15"));
        assert!(shown.contains("note: seen \\u{9b}here\\r"));
        assert!(shown.contains("help: fix\\x07 it"));
        // The caret stays under the column, measured on the escaped line.
        let lines: Vec<&str> = shown.lines().collect();
        let src = lines.iter().find(|l| l.starts_with("1 | ")).unwrap();
        let caret = lines.iter().find(|l| l.trim_end().ends_with('^')).unwrap();
        assert_eq!(&src[caret.len() - 1..caret.len()], "[");
        assert_eq!(escape_control("plain"), "plain");
    }

    #[test]
    fn huge_values_and_lines_print_as_a_bounded_window() {
        let mut sources = SourceMap::default();
        let line = format!("x: {}{}", "[".repeat(100_000), "]".repeat(100_000));
        let id = sources.add("dev.yaml", line);
        let d = Diagnostic::new(format!("`{}` is not a name", "a".repeat(1_000_000))).at(Some(
            sources.locate(Loc {
                source: id,
                line: 1,
                col: 50_000,
            }),
        ));
        let shown = d.to_string();
        assert!(shown.len() < 2_000, "{} bytes", shown.len());
        assert!(shown.contains("(999616 more characters)"), "{shown}");
        let lines: Vec<&str> = shown.lines().collect();
        let src = lines.iter().find(|l| l.starts_with("1 | ")).unwrap();
        let caret = lines.iter().find(|l| l.trim_end().ends_with('^')).unwrap();
        assert!(src.starts_with("1 | …[[[") && src.ends_with('…'), "{src}");
        assert_eq!(caret.chars().count(), 4 + 1 + SNIPPET_SIDE + 1);
    }

    #[test]
    fn renders_snippet_with_caret() {
        let mut sources = SourceMap::default();
        let id = sources.add("environments/dev.yaml", "a: 1\nservices:\n  prot: 5\n");
        let d = Diagnostic::new("unknown key `prot`")
            .at(Some(sources.locate(Loc {
                source: id,
                line: 3,
                col: 3,
            })))
            .path("services.prot")
            .help("did you mean `port`?");
        assert_eq!(
            d.to_string(),
            "error: environments/dev.yaml:3:3: services.prot: unknown key `prot`\n  |\n3 |   prot: 5\n  |   ^\n  = help: did you mean `port`?"
        );
    }
}
