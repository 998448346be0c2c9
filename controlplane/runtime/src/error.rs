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
    let mut levels = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        levels.push(e.to_string());
        next = e.source();
    }
    join(levels)
}

/// The longest [`public`] text, in characters.
pub const PUBLIC_MAX: usize = 300;

/// An error as an environment's status shows it (`controlplane status`, the API's and
/// the console's environment views): the chain as [`chain`] prints it, except that
/// text a server sent, which can name roles, users, policies or paths (Vault's error
/// lines, PostgreSQL's message, a Redis error's words, JetStream's error object, a
/// NATS server's reason), is replaced by what kind of refusal it was; control
/// characters are escaped and it is one line of at most [`PUBLIC_MAX`] characters.
/// Whoever shows it logs the whole [`chain`] too, once, where it happened.
pub fn public(err: &(dyn Error + 'static)) -> String {
    let mut levels = Vec::new();
    let mut next = Some(err);
    while let Some(e) = next {
        match server_text(e) {
            Some(summary) => {
                // What the server said ends the chain: its sources are its details.
                levels.push(summary);
                break;
            }
            None => levels.push(e.to_string()),
        }
        next = e.source();
    }
    let joined = join(levels);
    let line = joined.lines().next().unwrap_or_default();
    let mut out = String::new();
    for c in line.chars() {
        if out.chars().count() >= PUBLIC_MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// For an error that carries a server's own words, what kind of refusal it was.
fn server_text(e: &(dyn Error + 'static)) -> Option<String> {
    use crate::probe::NatsNotReady;
    use crate::resp::RespError;
    use crate::vault::RequestError;
    if let Some(r) = e.downcast_ref::<RequestError>() {
        return match r {
            RequestError::Refused {
                method,
                path,
                status,
                ..
            } => Some(format!("{method} /v1/{path}: refused (HTTP {status})")),
            _ => None,
        };
    }
    if let Some(r) = e.downcast_ref::<RespError>() {
        return match r {
            // A Redis error starts with its code (`WRONGPASS`, `NOAUTH`, `NOPERM`).
            RespError::Server { command, message } => {
                let code: String = message
                    .split_whitespace()
                    .next()
                    .filter(|w| w.chars().all(|c| c.is_ascii_uppercase()))
                    .unwrap_or("ERR")
                    .to_owned();
                Some(format!("redis refused `{command}`: {code}"))
            }
            RespError::Protocol(_) => Some("redis sent something that is not RESP".into()),
            RespError::Io(_) => None,
            // Ours (a certificate refused, a CA file unreadable): no server text.
            RespError::Tls(t) => Some(format!("TLS: {t}")),
        };
    }
    if let Some(n) = e.downcast_ref::<NatsNotReady>() {
        return match n {
            NatsNotReady::Unavailable { .. } => Some("JetStream is not available".into()),
            NatsNotReady::Connect(c) => Some(format!("cannot connect: {}", c.kind())),
            _ => None,
        };
    }
    if let Some(sqlx::Error::Database(db)) = e.downcast_ref::<sqlx::Error>() {
        let code = db.code().unwrap_or_default();
        let kind = match code.get(..2).unwrap_or_default() {
            "28" => "authentication failed",
            "3D" => "no such database",
            "53" => "out of resources (too many connections?)",
            "57" => "the server is starting, stopping or in recovery",
            "42" => "permission denied or an unknown object",
            _ => "the server refused the request",
        };
        return Some(format!("postgres: {kind}"));
    }
    None
}

fn join(levels: Vec<String>) -> String {
    let mut head = String::new();
    let mut tail = String::new();
    let mut seen = String::new();
    for text in levels {
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
    fn public_text_keeps_no_server_words_and_no_control_characters() {
        use crate::resp::RespError;
        use crate::vault::RequestError;
        let vault = outer_dyn(
            "reading tenants",
            RequestError::Refused {
                method: reqwest::Method::GET,
                path: "secret/data/tenants".into(),
                status: 403,
                errors: "permission denied: role anumate-admin lacks policy root".into(),
            },
        );
        let shown = super::public(&vault);
        assert_eq!(
            shown,
            "reading tenants: GET /v1/secret/data/tenants: refused (HTTP 403)"
        );
        assert!(chain(&vault).contains("anumate-admin"));
        let redis = outer_dyn(
            "redis at 127.0.0.1:6379",
            RespError::Server {
                command: "AUTH".into(),
                message: "WRONGPASS invalid username-password pair for user cp-admin".into(),
            },
        );
        assert_eq!(
            super::public(&redis),
            "redis at 127.0.0.1:6379: redis refused `AUTH`: WRONGPASS"
        );
        let escape = outer("a\u{1b}[2Jb\nsecond line", None);
        assert_eq!(super::public(&escape), "a\\u{1b}[2Jb");
        let long = outer(&"x".repeat(5000), None);
        assert_eq!(super::public(&long).chars().count(), super::PUBLIC_MAX + 1);
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{what}")]
    struct OuterDyn {
        what: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    }

    fn outer_dyn(what: &str, e: impl std::error::Error + Send + Sync + 'static) -> OuterDyn {
        OuterDyn {
            what: what.to_owned(),
            source: Box::new(e),
        }
    }

    #[test]
    fn no_source_is_the_message() {
        assert_eq!(chain(&outer("plain", None)), "plain");
    }
}
