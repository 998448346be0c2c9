//! One module per command (or family); `run` dispatches and turns the outcome into one
//! exit code from `cp_app::exit::Exit`. Each command asks the application layer for a
//! view and prints it; nothing here decides anything the server would need too.

mod alerts;
mod config;
mod connect;
mod env;
mod exporter;
mod pitr;
mod render;
mod schema;
pub(crate) mod serve;
pub(crate) mod token;
mod validate;

use cp_app::{AppError, Exit};

use crate::cli::{Cli, Command, Output};
use crate::output::{self, ClosedPipe};

/// Why a command stopped early.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The application layer said no (its error knows its exit code).
    App(AppError),
    /// A job failed as a whole (the same error, shared with the job's view).
    Job(std::sync::Arc<AppError>),
    /// Ctrl-C: the job was left (its locks die with the process).
    Interrupted,
    /// stdout was closed by the reader: not an error.
    Pipe,
    /// Anything else (an unexpected I/O failure), with context.
    Other(anyhow::Error),
}

impl From<AppError> for Failure {
    fn from(e: AppError) -> Self {
        Failure::App(e)
    }
}

impl From<ClosedPipe> for Failure {
    fn from(_: ClosedPipe) -> Self {
        Failure::Pipe
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

macro_rules! app_error_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                Failure::App(AppError::from(e))
            }
        }
    )*};
}
app_error_from!(
    cp_runtime::state::StateError,
    cp_drivers::DriverError,
    cp_seed::SeedError,
    cp_runtime::access::AccessError
);

pub(crate) type Outcome = Result<Exit, Failure>;

pub(crate) fn run(cli: Cli) -> Exit {
    let format = cli.global.output;
    if let Err(e) = check_global(&cli.global) {
        return finish(format, Err(e.into()));
    }
    let result = match cli.command {
        Command::Validate { all } => validate::run(&cli.global, all),
        Command::Render { all, out, check } => render::run(&cli.global, all, out, check),
        Command::Config => config::run(&cli.global),
        Command::Schema { view } => schema::run(view.as_deref()),
        Command::Completions { shell } => schema::completions(shell),
        Command::Token(args) => token::run(&cli.global, args),
        Command::Serve(args) => match runtime() {
            Ok(rt) => rt.block_on(serve::run(&cli.global, args)),
            Err(e) => Err(Failure::Other(e)),
        },
        Command::Exporter { exporter } => exporter::run(exporter),
        Command::Pitr { action } => pitr::run(action),
        Command::Alerts => match runtime() {
            Ok(rt) => rt.block_on(alerts::run(&cli.global)),
            Err(e) => Err(Failure::Other(e)),
        },
        other => match runtime() {
            Ok(rt) => rt.block_on(env::run(&cli.global, other)),
            Err(e) => Err(Failure::Other(e)),
        },
    };
    finish(format, result)
}

/// Prints a failure and returns its exit code.
pub(crate) fn finish(format: Output, result: Outcome) -> Exit {
    match result {
        Ok(code) => code,
        Err(Failure::Pipe) => Exit::Success,
        Err(Failure::App(e)) => {
            output::error(format, &e);
            e.exit()
        }
        Err(Failure::Job(e)) => {
            output::error(format, &e);
            e.exit()
        }
        Err(Failure::Interrupted) => Exit::Interrupted,
        Err(Failure::Other(e)) => {
            if e.chain().any(|c| c.downcast_ref::<ClosedPipe>().is_some()) {
                return Exit::Success;
            }
            eprintln!("error: {e:#}");
            Exit::Failure
        }
    }
}

/// The global flags every command shares, checked before anything reads or writes:
/// an unusable `--state-dir` or a malformed `--env` is invalid input (exit 3), not a
/// failure found halfway through.
fn check_global(global: &crate::cli::Global) -> Result<(), AppError> {
    if let Some(dir) = &global.state_dir {
        let text = dir.to_string_lossy();
        if text.is_empty() || text.chars().any(char::is_control) {
            return Err(AppError::Usage(format!(
                "--state-dir `{}` has a control character (or is empty); pass a plain directory path, e.g. .controlplane/dev",
                shown(&text)
            )));
        }
        if dir.exists() && !dir.is_dir() {
            return Err(AppError::Usage(format!(
                "--state-dir {} is a file, not a directory; pass a directory (it is created when missing), e.g. .controlplane/{}",
                shown(&text),
                shown(&global.env)
            )));
        }
    }
    if let Err(e) = cp_core::names::EnvName::new(&global.env) {
        return Err(AppError::Usage(format!(
            "--env: {}; environments are named by their file, e.g. `dev` for environments/dev.yaml",
            shown(&e.to_string())
        )));
    }
    Ok(())
}

/// A value from the command line as an error message shows it: control characters
/// escaped (`\x1b`, `\n`), so echoing it cannot restyle the terminal or forge a line.
pub(crate) fn shown(text: &str) -> std::borrow::Cow<'_, str> {
    cp_core::diag::escape_control(text)
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
