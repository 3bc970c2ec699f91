//! `kasane-registry`: publish, inspect and try Kasane transform modules.
//!
//! A thin binary over the `kasane_registry` library: it parses the arguments, runs the one
//! command named (each is a struct with its own `run`, in `commands/`), and prints the error
//! chain once. Exit codes: 0 success, 1 the module, file or signature was refused, 2 bad
//! arguments or input.

mod commands;
mod failure;

use std::process::ExitCode;

use clap::Parser;

use crate::commands::Command;
use crate::failure::{Failure, one_line};

/// Publish, inspect and try Kasane transform modules.
///
/// Repository commands take an explicit repository directory (--repo) and a keys directory
/// (--keys) holding one secret key file per role: root.key, targets.key, snapshot.key,
/// revocations.key, host.key (mode 0600). Each command reads only the keys it signs with.
/// Exit codes: 0 success, 1 failure (refused module, file or signature), 2 bad arguments.
#[derive(Parser)]
#[command(name = "kasane-registry", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Failed(e)) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(1)
        }
        Err(Failure::Usage(e)) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(2)
        }
    }
}
