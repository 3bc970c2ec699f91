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
/// The registry is a TUF 1.0 repository (--repo DIR: metadata/ and targets/, consistent
/// snapshots). Each repository command opens only the keys of the roles it signs: a key is a
/// PKCS#8 PEM file (optionally passphrase-encrypted: --passphrase-env VAR, or a prompt on a
/// terminal) or a PKCS#11 URI pkcs11:token=<label>;object=<label> (module --pkcs11-module or
/// env KASANE_PKCS11_MODULE; PIN env KASANE_PKCS11_PIN). A role's key defaults to
/// <keys>/<role>.pem for root, targets, online (timestamp and snapshot), revocations,
/// authors and ticket. Every change re-signs snapshot and timestamp with the online key and
/// is checked as a client would check it before anything is written.
/// Exit codes: 0 success, 1 failure (refused module, file, key or signature), 2 bad arguments.
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
