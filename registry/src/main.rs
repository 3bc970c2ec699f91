//! `kasane-registry`: publish, inspect and try Kasane transform modules.
//!
//! A thin binary over the `kasane_registry` library. Exit codes: 0 success, 1 the module
//! failed (a typed sandbox error), 2 bad arguments or input.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use kasane_registry::run::{ProfileChoice, parse_input, run_module};
use kasane_sandbox::Profile;

/// Publish, inspect and try Kasane transform modules.
#[derive(Parser)]
#[command(name = "kasane-registry", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run MODULE once on the input in a JSON file and print the output and the fuel used.
    ///
    /// Prints the output as lowercase hex on the first line and the fuel used on the second.
    /// INPUT.json is one object with the fields purpose ("auth" or "message"), challenges and
    /// responses (arrays of hex strings), counter, timestamp, seq, direction (numbers),
    /// server_nonce, client_nonce, transcript_hash, params (hex strings); a missing field is
    /// zero or empty, an unknown one is an error. Exits 1 when the module fails (the typed
    /// error is printed on stderr), 2 on bad arguments or input.
    Run {
        /// The module (binary wasm).
        module: PathBuf,
        /// The derive input as JSON ("-" reads standard input).
        #[arg(long, value_name = "INPUT.json")]
        input: PathBuf,
        /// Fuel budget (default: the sandbox's default budget).
        #[arg(long, value_name = "N")]
        fuel: Option<u64>,
        /// Profile to run under; `auto` picks `wasi` when the module imports
        /// `wasi_snapshot_preview1` and `pure` otherwise.
        #[arg(long, value_enum, default_value_t = ProfileArg::Auto)]
        profile: ProfileArg,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ProfileArg {
    Auto,
    Pure,
    Wasi,
}

/// A failure, with the exit code it maps to.
enum Failure {
    Usage(anyhow::Error),
    Module(anyhow::Error),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Module(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
        Err(Failure::Usage(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn read_input(path: &PathBuf) -> anyhow::Result<String> {
    if path.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin()).context("reading the input from stdin")
    } else {
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
    }
}

fn dispatch(command: Command) -> Result<(), Failure> {
    match command {
        Command::Run {
            module,
            input,
            fuel,
            profile,
        } => {
            let wasm = std::fs::read(&module)
                .with_context(|| format!("reading module {}", module.display()))
                .map_err(Failure::Usage)?;
            let json = read_input(&input).map_err(Failure::Usage)?;
            let input = parse_input(&json)
                .with_context(|| format!("in {}", input.display()))
                .map_err(Failure::Usage)?;
            let profile = match profile {
                ProfileArg::Auto => ProfileChoice::Auto,
                ProfileArg::Pure => ProfileChoice::Fixed(Profile::Pure),
                ProfileArg::Wasi => ProfileChoice::Fixed(Profile::Wasi),
            };
            let (_, derived) = run_module(&wasm, &input, fuel, profile)
                .with_context(|| format!("module {}", module.display()))
                .map_err(Failure::Module)?;
            if !derived.diagnostics.is_empty() {
                eprintln!(
                    "module output: {}",
                    String::from_utf8_lossy(&derived.diagnostics).trim_end()
                );
            }
            println!("{}", hex::encode(derived.key.as_bytes()));
            println!("{}", derived.fuel_used);
            Ok(())
        }
    }
}
