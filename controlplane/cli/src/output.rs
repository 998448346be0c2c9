//! Where everything the CLI prints goes: views as text (their `Display`) or JSON on
//! stdout, diagnostics and progress on stderr. One write path, so a closed pipe
//! (`controlplane config | head -1`) ends the program quietly with the exit code
//! of a success instead of a panic.

use std::io::{IsTerminal, Write};

use cp_app::error::AppError;
use cp_app::views::ErrorView;
use serde::Serialize;

use crate::cli::Output;

/// Raised when stdout was closed by the reader: main turns it into a quiet exit 0.
#[derive(Debug, thiserror::Error)]
#[error("stdout was closed")]
pub(crate) struct ClosedPipe;

/// Writes `text` to stdout; a closed pipe becomes [`ClosedPipe`].
pub(crate) fn out(text: &str) -> Result<(), ClosedPipe> {
    let mut o = std::io::stdout().lock();
    match o.write_all(text.as_bytes()).and_then(|()| o.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(ClosedPipe),
        // Any other stdout failure cannot be reported on stdout either.
        Err(_) => Err(ClosedPipe),
    }
}

/// Prints a view: its text form, or pretty JSON.
pub(crate) fn view<T: Serialize + std::fmt::Display>(
    format: Output,
    v: &T,
) -> Result<(), ClosedPipe> {
    match format {
        Output::Text => {
            let mut s = v.to_string();
            if !s.ends_with('\n') {
                s.push('\n');
            }
            out(&s)
        }
        Output::Json => json(v),
    }
}

/// Prints a value as pretty JSON.
pub(crate) fn json<T: Serialize>(v: &T) -> Result<(), ClosedPipe> {
    out(&(serde_json::to_string_pretty(v).expect("views serialize") + "\n"))
}

/// Reports an error: text on stderr; with `-o json`, the diagnostics or an error view
/// on stdout (so a pipeline sees it) and the text on stderr too.
pub(crate) fn error(format: Output, e: &AppError) {
    match (format, e) {
        (Output::Text, AppError::Invalid(d)) => eprintln!("{d}"),
        (Output::Json, AppError::Invalid(d)) => {
            let _ = json(&cp_app::views::InvalidView {
                ok: false,
                errors: d.clone(),
            });
        }
        (Output::Text, e) => eprintln!("error: {}", terminal_safe(&chain(e))),
        (Output::Json, e) => {
            eprintln!("error: {}", chain(e));
            let _ = json(&ErrorView {
                ok: false,
                error: chain(e),
                exit_code: e.exit().code(),
            });
        }
    }
}

/// A message for a terminal: control characters other than line breaks and tabs (an
/// escape sequence from a value it quotes) spelled as escapes. Values echoed from the
/// command line are escaped where the message is made (`commands::shown`).
fn terminal_safe(text: &str) -> String {
    text.split('\n')
        .map(|line| cp_core::diag::escape_control(line).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// An error with its sources, each once.
pub(crate) fn chain(e: &AppError) -> String {
    e.chain()
}

/// Asks for a confirmation before destroying `what`. `--yes` confirms; on a terminal
/// the user types the environment's name; without a terminal (CI, pipes) the command
/// is refused, touching nothing.
pub(crate) fn confirm(
    action: &str,
    env: &str,
    what: Vec<String>,
    yes: bool,
) -> Result<(), AppError> {
    if yes || what.is_empty() {
        return Ok(());
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(AppError::NeedsConfirmation {
            action: action.to_owned(),
            what,
        });
    }
    eprintln!("{action} will delete:");
    for w in &what {
        eprintln!("  - {w}");
    }
    eprint!("type the environment's name ({env}) to confirm: ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().read_line(&mut answer);
    if answer.trim() == env {
        Ok(())
    } else {
        Err(AppError::Usage(format!(
            "not confirmed (expected `{env}`); nothing was changed"
        )))
    }
}
