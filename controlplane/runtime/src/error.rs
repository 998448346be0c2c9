//! The one error-chain printer: an error, then each cause once, joined by `: `. Every
//! front end and every log line prints errors through it; no `Display` in the code
//! base prints its own source (the chain does).

/// `err` and its sources, each once: a cause whose text the message already holds
/// (an error that wraps another transparently) is not repeated.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut src = err.source();
    while let Some(s) = src {
        let text = s.to_string();
        if !text.is_empty() && !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("cannot read {path}")]
    struct Outer {
        path: String,
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn each_cause_once() {
        let e = Outer {
            path: "x.yaml".into(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        };
        assert_eq!(super::chain(&e), "cannot read x.yaml: no such file");
    }
}
