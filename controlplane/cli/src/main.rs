//! The `controlplane` binary: parses the command line, runs one command over the
//! application layer (`cp_app`), prints its view, and exits with the code of
//! `cp_app::exit::Exit` (0 ok, 1 failure, 2 changes pending or drift, 3 invalid input
//! or usage).

mod cli;
mod commands;
mod output;
mod progress;

use std::process::ExitCode;

use clap::Parser;
use cp_app::Exit;

fn main() -> ExitCode {
    // One TLS stack: aws-lc-rs, installed before any client exists (see CRATES.md).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            // `--help` and `--version` are not errors; every usage error is exit 3.
            let code = if e.use_stderr() {
                Exit::Invalid
            } else {
                Exit::Success
            };
            let _ = e.print();
            return ExitCode::from(code.code());
        }
    };
    ExitCode::from(commands::run(cli).code())
}
