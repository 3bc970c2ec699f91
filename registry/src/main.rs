//! `kasane-registry`: publish, inspect and try Kasane transform modules.
//!
//! A thin binary over the `kasane_registry` library. Exit codes: 0 success, 1 the module
//! failed (a typed sandbox error), 2 bad arguments or input.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand, ValueEnum};
use kasane_registry::harness::{HarnessOptions, parse_vectors, test_module};
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

    /// Test MODULE as an author would before publishing it.
    ///
    /// Checks the ABI and imports, compiles on a pooling and an on-demand engine, runs 16
    /// generated inputs (plus any --input and --vectors) on both, and requires identical output
    /// and fuel, the most fuel used times --headroom within the --fuel budget, and one output
    /// length. Prints one line per check; exits 1 if any check fails, 2 on bad arguments.
    Test {
        /// The module (binary wasm).
        module: PathBuf,
        /// The fuel budget the module will be published with.
        #[arg(long, value_name = "N", default_value_t = kasane_sandbox::Limits::default().fuel)]
        fuel: u64,
        /// The module's params, as hex (as in its registry entry).
        #[arg(long, value_name = "HEX", default_value = "")]
        params: String,
        /// Required headroom factor over the most fuel used.
        #[arg(long, value_name = "FACTOR", default_value_t = 2.0)]
        headroom: f64,
        /// An extra input (the `run` JSON format); repeatable.
        #[arg(long = "input", value_name = "INPUT.json")]
        inputs: Vec<PathBuf>,
        /// Known answers: a JSON array of {"input": {...}, "output": "<hex>"}.
        #[arg(long, value_name = "VECTORS.json")]
        vectors: Option<PathBuf>,
        /// Profile to test under.
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

impl ProfileArg {
    fn choice(self) -> ProfileChoice {
        match self {
            ProfileArg::Auto => ProfileChoice::Auto,
            ProfileArg::Pure => ProfileChoice::Fixed(Profile::Pure),
            ProfileArg::Wasi => ProfileChoice::Fixed(Profile::Wasi),
        }
    }
}

fn read_module(path: &PathBuf) -> Result<Vec<u8>, Failure> {
    std::fs::read(path)
        .with_context(|| format!("reading module {}", path.display()))
        .map_err(Failure::Usage)
}

fn dispatch(command: Command) -> Result<(), Failure> {
    match command {
        Command::Run {
            module,
            input,
            fuel,
            profile,
        } => {
            let wasm = read_module(&module)?;
            let json = read_input(&input).map_err(Failure::Usage)?;
            let input = parse_input(&json)
                .with_context(|| format!("in {}", input.display()))
                .map_err(Failure::Usage)?;
            let (_, derived) = run_module(&wasm, &input, fuel, profile.choice())
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
        Command::Test {
            module,
            fuel,
            params,
            headroom,
            inputs,
            vectors,
            profile,
        } => {
            let wasm = read_module(&module)?;
            let usage = |e: anyhow::Error| Failure::Usage(e);
            if !(headroom.is_finite() && headroom >= 1.0) {
                return Err(usage(anyhow::anyhow!(
                    "--headroom must be a number of at least 1.0, got {headroom}"
                )));
            }
            let params = hex::decode(&params)
                .context("--params is not valid hex")
                .map_err(usage)?;
            let inputs = inputs
                .iter()
                .map(|p| {
                    let json = read_input(p)?;
                    parse_input(&json).with_context(|| format!("in {}", p.display()))
                })
                .collect::<anyhow::Result<Vec<_>>>()
                .map_err(usage)?;
            let vectors = match vectors {
                None => Vec::new(),
                Some(p) => {
                    let json = read_input(&p).map_err(usage)?;
                    parse_vectors(&json)
                        .with_context(|| format!("in {}", p.display()))
                        .map_err(usage)?
                }
            };
            let opts = HarnessOptions {
                profile: profile.choice(),
                fuel,
                params,
                headroom,
                inputs,
                vectors,
            };
            let report = test_module(&wasm, &opts);
            println!("module  {}", module.display());
            println!("sha256  {}", report.sha256);
            println!("length  {} bytes", report.length);
            if let Some(p) = report.profile {
                println!("profile {p:?}");
            }
            for c in &report.checks {
                let verdict = if c.passed { "ok  " } else { "FAIL" };
                println!("{verdict} {:<12} {}", c.name, c.detail);
            }
            if report.passed() {
                println!(
                    "passed: fuel used at most {} of {}",
                    report.max_fuel_used, fuel
                );
                Ok(())
            } else {
                let failed: Vec<&str> = report
                    .checks
                    .iter()
                    .filter(|c| !c.passed)
                    .map(|c| c.name)
                    .collect();
                Err(Failure::Module(anyhow::anyhow!(
                    "module failed: {}",
                    failed.join(", ")
                )))
            }
        }
    }
}
