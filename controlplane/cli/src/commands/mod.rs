//! One module per command (or family); `run` dispatches and turns the outcome into one
//! exit code from `cp_app::exit::Exit`. Each command asks the application layer for a
//! view and prints it; nothing here decides anything the server would need too.

mod alerts;
mod config;
mod connect;
mod env;
mod exporter;
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

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}
