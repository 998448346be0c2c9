//! The one printer of error chains: an error, then each of its sources, once.
//!
//! Errors here carry their cause as `#[source]` and their `Display` does not repeat it,
//! so whoever shows an error to a person (the CLI, a log line at a boundary, a report
//! written to disk) prints the whole chain with [`chain`].

use std::error::Error;

/// An error and its sources on one line, joined with `: `
/// (`postgres: cannot reach PostgreSQL at 127.0.0.1:5432: Connection refused`).
///
/// A source whose text is already contained in what was printed before it is skipped
/// (errors that still embed their cause, or wrap one transparently, are not printed
/// twice). Only each message's first line joins the chain: lines after it (a hint, a
/// list of problems) follow the joined line, in order, so a hint stays last:
///
/// ```text
/// postgres: cannot reach PostgreSQL at 127.0.0.1:5432: Connection refused
///   hint: start it with `controlplane up` (or check services.postgres.port)
/// ```
///
/// Takes any `&dyn Error` (a `&(dyn Error + 'static)` coerces to it), so callers
/// holding a borrowed trait object can use it too.
pub fn chain(err: &dyn Error) -> String {
    let mut head = String::new();
    let mut tail = String::new();
    let mut seen = String::new();
    let mut text = err.to_string();
    let mut next = err.source();
    loop {
        if !text.is_empty() && !seen.contains(&text) {
            let (first, rest) = text.split_once('\n').unwrap_or((&text, ""));
            if !head.is_empty() {
                head.push_str(": ");
            }
            head.push_str(first);
            if !rest.is_empty() {
                tail.push('\n');
                tail.push_str(rest);
            }
            seen.push_str(&text);
            seen.push('\n');
        }
        let Some(e) = next else { break };
        text = e.to_string();
        next = e.source();
    }
    head + &tail
}

#[cfg(test)]
mod tests {
    use super::chain;

    #[derive(Debug, thiserror::Error)]
    #[error("{what}")]
    struct Outer {
        what: String,
        #[source]
        source: Option<std::io::Error>,
    }

    fn outer(what: &str, source: Option<std::io::Error>) -> Outer {
        Outer {
            what: what.to_owned(),
            source,
        }
    }

    #[test]
    fn joins_sources_with_colons() {
        let e = outer(
            "postgres: cannot reach PostgreSQL",
            Some(std::io::Error::other("Connection refused")),
        );
        assert_eq!(
            chain(&e),
            "postgres: cannot reach PostgreSQL: Connection refused"
        );
    }

    #[test]
    fn a_source_already_in_the_message_is_skipped() {
        let e = outer(
            "cannot read x: Connection refused",
            Some(std::io::Error::other("Connection refused")),
        );
        assert_eq!(chain(&e), "cannot read x: Connection refused");
    }

    #[test]
    fn continuation_lines_follow_the_joined_line() {
        let e = outer(
            "redis: cannot connect\n  hint: is Redis up?",
            Some(std::io::Error::other("Connection refused")),
        );
        assert_eq!(
            chain(&e),
            "redis: cannot connect: Connection refused\n  hint: is Redis up?"
        );
    }

    #[test]
    fn no_source_is_the_message() {
        assert_eq!(chain(&outer("plain", None)), "plain");
    }
}
