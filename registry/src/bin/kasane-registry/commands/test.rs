//! `kasane-registry test`.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::Args;
use kasane_abi::DeriveInputBuf;
use kasane_registry::harness::{HarnessOptions, Report, Vector, parse_vectors, test_module};
use kasane_registry::run::parse_input;

use super::{HarnessArgs, read_input, read_module};
use crate::failure::{Failure, usage};

#[derive(Args)]
pub(crate) struct TestArgs {
    /// The module (binary wasm).
    module: PathBuf,
    #[command(flatten)]
    harness: HarnessArgs,
    /// An extra input (the `run` JSON format); repeatable.
    #[arg(long = "input", value_name = "INPUT.json")]
    inputs: Vec<PathBuf>,
    /// Known answers: a JSON array of {"input": {...}, "output": "<hex>"}.
    #[arg(long, value_name = "VECTORS.json")]
    vectors: Option<PathBuf>,
}

impl TestArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let wasm = read_module(&self.module)?;
        let (params, headroom) = self.harness.params_and_headroom()?;
        let opts = HarnessOptions {
            profile: self.harness.profile,
            fuel: self.harness.fuel,
            memory: self.harness.memory,
            params,
            headroom,
            inputs: read_inputs(&self.inputs)?,
            vectors: read_vectors(self.vectors.as_deref())?,
        };
        let report = test_module(&wasm, &opts);
        print_report(&self.module, &report);
        if report.passed() {
            println!(
                "passed: fuel used at most {} of {}",
                report.max_fuel_used, opts.fuel
            );
            Ok(())
        } else {
            let failed: Vec<&str> = report
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| c.name)
                .collect();
            Err(Failure::Failed(anyhow::anyhow!(
                "module failed: {}",
                failed.join(", ")
            )))
        }
    }
}

fn read_inputs(paths: &[PathBuf]) -> Result<Vec<DeriveInputBuf>, Failure> {
    paths
        .iter()
        .map(|p| {
            let json = read_input(p)?;
            parse_input(&json).with_context(|| format!("in {}", p.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .map_err(usage)
}

fn read_vectors(path: Option<&Path>) -> Result<Vec<Vector>, Failure> {
    let Some(p) = path else {
        return Ok(Vec::new());
    };
    let json = read_input(p).map_err(usage)?;
    parse_vectors(&json)
        .with_context(|| format!("in {}", p.display()))
        .map_err(usage)
}

fn print_report(module: &Path, report: &Report) {
    println!("module  {}", module.display());
    println!("sha256  {}", report.sha256);
    println!("length  {} bytes", report.length);
    if let Some(p) = report.profile {
        println!("profile {}", p.as_str());
    }
    for c in &report.checks {
        let verdict = if c.passed { "ok  " } else { "FAIL" };
        println!("{verdict} {:<12} {}", c.name, c.detail);
    }
}
