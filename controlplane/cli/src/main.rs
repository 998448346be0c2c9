//! The `controlplane` binary: parses the command line, runs one command, and maps the
//! outcome to an exit code (0 ok, 1 failure or drift, 2 invalid input or pending plan).

mod cli;
mod commands;
mod platform;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // One TLS stack: aws-lc-rs, installed before any client exists (see CRATES.md).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
