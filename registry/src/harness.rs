//! `kasane-registry test`: the authoring harness.
//!
//! Before a module is published, its author (and the registry operator) should know that it
//! follows the ABI, imports only what its profile allows, gives the same bytes and the same
//! fuel on two different engine configurations, stays well inside its fuel budget, returns
//! the expected output on known vectors, and gives an auth output that depends on every
//! response and on the session (check `inputs`, [`crate::dependence`]; never overridable by
//! `--force`). [`test_module`] checks all of that and returns a
//! [`Report`] with one [`Check`] per property; it never stops at the first failure, so an author
//! sees everything that is wrong at once.

use kasane_abi::{DeriveInput, DeriveInputBuf};
use kasane_sandbox::{Allocator, Limits, Profile, Sandbox, SandboxConfig, SandboxError};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::dependence::{DependenceError, check_dependence, probe_inputs};
use crate::run::{InputError, ProfileChoice, parse_input};

/// Options for [`test_module`].
#[derive(Clone, Debug)]
pub struct HarnessOptions {
    /// Profile to test under.
    pub profile: ProfileChoice,
    /// The fuel budget the module will be published with.
    pub fuel: u64,
    /// The linear memory limit (bytes) the module will be published with.
    pub memory: u64,
    /// The module's params (as they will appear in its registry entry).
    pub params: Vec<u8>,
    /// Required headroom: the most fuel used on any input times this factor must stay within
    /// the budget (fuel counts can move between wasmtime releases).
    pub headroom: f64,
    /// Extra inputs to run besides the generated ones (for transforms that need a specific
    /// shape of input, such as an OCRA suite with a PIN).
    pub inputs: Vec<DeriveInputBuf>,
    /// Known answers.
    pub vectors: Vec<Vector>,
}

impl Default for HarnessOptions {
    fn default() -> Self {
        Self {
            profile: ProfileChoice::Auto,
            fuel: Limits::default().fuel,
            memory: Limits::default().memory_bytes,
            params: Vec::new(),
            headroom: 2.0,
            inputs: Vec::new(),
            vectors: Vec::new(),
        }
    }
}

/// One known answer: an input and the output it must give.
#[derive(Clone, Debug)]
pub struct Vector {
    /// The input.
    pub input: DeriveInputBuf,
    /// The expected output.
    pub output: Vec<u8>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawVector {
    input: serde_json::Value,
    output: String,
}

/// Why a vectors file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VectorsError {
    /// Not a JSON array of `{"input": {...}, "output": "<hex>"}`.
    #[error("vectors file is not a JSON array of {{\"input\", \"output\"}} objects")]
    Json(#[from] serde_json::Error),
    /// Vector `index` has a bad input.
    #[error("vector {index}")]
    Input {
        /// Position in the file.
        index: usize,
        /// What is wrong with it.
        source: InputError,
    },
    /// Vector `index` has an output that is not hex.
    #[error("vector {index}: output is not hex")]
    Output {
        /// Position in the file.
        index: usize,
        /// The decoding error.
        source: hex::FromHexError,
    },
}

/// Parses a vectors file: a JSON array of `{"input": <run input object>, "output": "<hex>"}`.
pub fn parse_vectors(json: &str) -> Result<Vec<Vector>, VectorsError> {
    let raw: Vec<RawVector> = serde_json::from_str(json)?;
    raw.into_iter()
        .enumerate()
        .map(|(index, v)| {
            let input = parse_input(&v.input.to_string())
                .map_err(|source| VectorsError::Input { index, source })?;
            let output =
                hex::decode(&v.output).map_err(|source| VectorsError::Output { index, source })?;
            Ok(Vector { input, output })
        })
        .collect()
}

/// The verdict on one property.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// Short name of the property (`abi`, `determinism`, …).
    pub name: &'static str,
    /// Whether it holds.
    pub passed: bool,
    /// What was seen, for a person.
    pub detail: String,
}

/// Everything [`test_module`] found.
#[derive(Clone, Debug)]
pub struct Report {
    /// SHA-256 of the module bytes, lowercase hex.
    pub sha256: String,
    /// Module length in bytes.
    pub length: usize,
    /// The profile it was tested under.
    pub profile: Option<Profile>,
    /// The most fuel used on any input.
    pub max_fuel_used: u64,
    /// One entry per property, in the order checked.
    pub checks: Vec<Check>,
    /// Why the `inputs` check refused the module, if the auth output ignores a response or
    /// the whole session. Never overridable (`add --force` does not pass it).
    pub ignored: Option<DependenceError>,
}

impl Report {
    /// True when every check passed.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }

    fn check(&mut self, name: &'static str, passed: bool, detail: impl Into<String>) {
        self.checks.push(Check {
            name,
            passed,
            detail: detail.into(),
        });
    }
}

pub use crate::dependence::generated_inputs;

struct Run {
    output: Vec<u8>,
    fuel: u64,
}

fn run_on(
    sandbox: &Sandbox,
    wasm: &[u8],
    profile: Profile,
    limits: Limits,
    inputs: &[DeriveInputBuf],
) -> Result<Vec<Result<Run, SandboxError>>, SandboxError> {
    let transform = sandbox.load(wasm, profile, limits)?;
    Ok(inputs
        .iter()
        .map(|input| {
            let bytes = input.encode().map_err(SandboxError::Input)?;
            let decoded = DeriveInput::decode(&bytes)
                .map_err(|e| SandboxError::BadAbi(format!("input re-decode failed: {e}")))?;
            let d = transform.derive(&decoded)?;
            Ok(Run {
                output: d.key.as_bytes().to_vec(),
                fuel: d.fuel_used,
            })
        })
        .collect())
}

fn sandbox(allocator: Allocator, limits: &Limits) -> Result<Sandbox, SandboxError> {
    let mut config = SandboxConfig {
        allocator,
        ..SandboxConfig::default()
    };
    config.max_limits.fuel = config.max_limits.fuel.max(limits.fuel);
    config.max_limits.memory_bytes = config.max_limits.memory_bytes.max(limits.memory_bytes);
    Sandbox::new(config)
}

/// Tests `wasm` as an author would before publishing it. Never panics on a hostile module:
/// every failure becomes a failed [`Check`] naming the typed sandbox error.
pub fn test_module(wasm: &[u8], opts: &HarnessOptions) -> Report {
    let mut report = Report {
        sha256: hex::encode(Sha256::digest(wasm)),
        length: wasm.len(),
        profile: None,
        max_fuel_used: 0,
        checks: Vec::new(),
        ignored: None,
    };
    let limits = Limits {
        fuel: opts.fuel,
        memory_bytes: opts.memory,
        ..Limits::default()
    };
    let (pooling, on_demand) = match (
        sandbox(Allocator::Pooling, &limits),
        sandbox(Allocator::OnDemand, &limits),
    ) {
        (Ok(p), Ok(o)) => (p, o),
        (Err(e), _) | (_, Err(e)) => {
            report.check("engine", false, format!("cannot start the sandbox: {e}"));
            return report;
        }
    };
    let Some(profile) = check_abi(&mut report, &pooling, wasm, opts.profile, &limits) else {
        return report;
    };

    let mut inputs = generated_inputs(&opts.params);
    inputs.extend(opts.inputs.iter().cloned());
    inputs.extend(opts.vectors.iter().map(|v| v.input.clone()));
    let runs = match (
        run_on(&pooling, wasm, profile, limits, &inputs),
        run_on(&on_demand, wasm, profile, limits, &inputs),
    ) {
        (Ok(pooling), Ok(on_demand)) => Runs { pooling, on_demand },
        (Err(e), _) | (_, Err(e)) => {
            report.check("compile", false, e.to_string());
            return report;
        }
    };
    report.check(
        "compile",
        true,
        "compiled on a pooling and an on-demand engine",
    );
    check_derive(&mut report, &runs);
    check_determinism(&mut report, &runs);
    check_fuel(&mut report, &runs, opts);
    check_output(&mut report, &runs);
    if !opts.vectors.is_empty() {
        check_vectors(&mut report, &runs, &opts.vectors);
    }
    check_inputs(
        &mut report,
        &pooling,
        wasm,
        (profile, limits),
        (&opts.params, &inputs),
    );
    report
}

/// Input dependence ([`check_dependence`]): the auth output must change with every response
/// and with the session. Runs on the probe inputs and the caller's own.
fn check_inputs(
    report: &mut Report,
    sandbox: &Sandbox,
    wasm: &[u8],
    (profile, limits): (Profile, Limits),
    (params, inputs): (&[u8], &[DeriveInputBuf]),
) {
    let mut candidates = probe_inputs(params);
    candidates.extend(inputs.iter().cloned());
    let verdict = match sandbox.load(wasm, profile, limits) {
        Err(e) => Err(e.to_string()),
        Ok(t) => check_dependence(&t, &candidates).map_err(|e| {
            let detail = e.to_string();
            // A module that derives on no input logs nobody in: the derive check already
            // fails, and --force may pass both (hosts still leave an author's out).
            if e != DependenceError::NoAuthInput {
                report.ignored = Some(e);
            }
            detail
        }),
    };
    match verdict {
        Ok(()) => report.check(
            "inputs",
            true,
            "the auth output changes with every response and with the session",
        ),
        Err(detail) => report.check("inputs", false, detail),
    }
}

/// ABI and imports, validated before anything is compiled. Picks the profile (`Auto`: `wasi`
/// when the module imports `wasi_snapshot_preview1`); `None` when the module is refused.
fn check_abi(
    report: &mut Report,
    sandbox: &Sandbox,
    wasm: &[u8],
    choice: ProfileChoice,
    limits: &Limits,
) -> Option<Profile> {
    let profile = match choice {
        ProfileChoice::Fixed(p) => p,
        ProfileChoice::Auto => match sandbox.validate(wasm, Profile::Pure, limits) {
            Err(SandboxError::ForbiddenImport { module, .. })
                if module == "wasi_snapshot_preview1" =>
            {
                Profile::Wasi
            }
            _ => Profile::Pure,
        },
    };
    report.profile = Some(profile);
    match sandbox.validate(wasm, profile, limits) {
        Ok(_) => {
            report.check(
                "abi",
                true,
                format!("exports and imports follow ABI v1 under the {profile:?} profile"),
            );
            Some(profile)
        }
        Err(e) => {
            report.check("abi", false, e.to_string());
            None
        }
    }
}

/// Every input's result on both engines, in input order.
struct Runs {
    pooling: Vec<Result<Run, SandboxError>>,
    on_demand: Vec<Result<Run, SandboxError>>,
}

impl Runs {
    /// The inputs that derived on both engines.
    fn both_ok(&self) -> Vec<(&Run, &Run)> {
        self.pooling
            .iter()
            .zip(&self.on_demand)
            .filter_map(|(a, b)| Some((a.as_ref().ok()?, b.as_ref().ok()?)))
            .collect()
    }
}

/// Every input must derive; the first error names the reason.
fn check_derive(report: &mut Report, runs: &Runs) {
    let total = runs.pooling.len();
    let errors: Vec<String> = runs
        .pooling
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.as_ref().err().map(|e| format!("input {i}: {e}")))
        .collect();
    match errors.first() {
        None => report.check("derive", true, format!("{total} inputs derived")),
        Some(first) => report.check(
            "derive",
            false,
            format!("{} of {total} inputs failed; {first}", errors.len()),
        ),
    }
}

/// Determinism: same bytes and same fuel on both engines, for the same verdicts.
fn check_determinism(report: &mut Report, runs: &Runs) {
    let ok_runs = runs.both_ok();
    let same_verdicts = runs
        .pooling
        .iter()
        .zip(&runs.on_demand)
        .all(|(a, b)| a.is_ok() == b.is_ok());
    let diverging = ok_runs
        .iter()
        .filter(|(a, b)| a.output != b.output || a.fuel != b.fuel)
        .count();
    report.check(
        "determinism",
        same_verdicts && diverging == 0 && !ok_runs.is_empty(),
        if ok_runs.is_empty() {
            "no input derived, nothing to compare".to_owned()
        } else if same_verdicts && diverging == 0 {
            format!(
                "{} inputs: identical output and fuel on both engines",
                ok_runs.len()
            )
        } else {
            format!("{diverging} inputs differ between engines")
        },
    );
}

/// Fuel: the most used must leave headroom in the budget.
fn check_fuel(report: &mut Report, runs: &Runs, opts: &HarnessOptions) {
    let ok_runs = runs.both_ok();
    report.max_fuel_used = ok_runs.iter().map(|(a, _)| a.fuel).max().unwrap_or(0);
    let needed = (report.max_fuel_used as f64 * opts.headroom).ceil();
    let detail = format!(
        "max {} of budget {} ({:.1} %); {:.1}x headroom required",
        report.max_fuel_used,
        opts.fuel,
        100.0 * report.max_fuel_used as f64 / opts.fuel.max(1) as f64,
        opts.headroom
    );
    report.check(
        "fuel",
        !ok_runs.is_empty() && needed <= opts.fuel as f64,
        detail,
    );
}

/// Output length: within the ABI and the same for every input.
fn check_output(report: &mut Report, runs: &Runs) {
    let lengths: std::collections::BTreeSet<usize> =
        runs.both_ok().iter().map(|(a, _)| a.output.len()).collect();
    report.check(
        "output",
        lengths.len() == 1,
        match lengths.len() {
            0 => "no output".to_owned(),
            1 => format!("{} bytes on every input", lengths.iter().sum::<usize>()),
            _ => format!("length varies between inputs: {lengths:?}"),
        },
    );
}

/// Known answers: the vectors are the last inputs run.
fn check_vectors(report: &mut Report, runs: &Runs, vectors: &[Vector]) {
    let offset = runs.pooling.len() - vectors.len();
    let wrong: Vec<usize> = vectors
        .iter()
        .enumerate()
        .filter(|(i, v)| !matches!(&runs.pooling[offset + i], Ok(r) if r.output == v.output))
        .map(|(i, _)| i)
        .collect();
    report.check(
        "vectors",
        wrong.is_empty(),
        if wrong.is_empty() {
            format!("{} known answers match", vectors.len())
        } else {
            format!("vectors {wrong:?} of {} do not match", vectors.len())
        },
    );
}
