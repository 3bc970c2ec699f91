//! `kasane-registry run`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use kasane_registry::run::{parse_input, run_module};

use super::{profile_arg, read_input, read_module};
use crate::failure::Failure;
use kasane_registry::run::ProfileChoice;

#[derive(Args)]
pub(crate) struct RunArgs {
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
    #[arg(long, value_parser = profile_arg(), default_value = "auto")]
    profile: ProfileChoice,
}

impl RunArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let wasm = read_module(&self.module)?;
        let json = read_input(&self.input).map_err(Failure::Usage)?;
        let input = parse_input(&json)
            .with_context(|| format!("in {}", self.input.display()))
            .map_err(Failure::Usage)?;
        let (_, derived) = run_module(&wasm, &input, self.fuel, self.profile)
            .with_context(|| format!("module {}", self.module.display()))
            .map_err(Failure::Failed)?;
        if !derived.diagnostics.is_empty() {
            eprintln!("module output: {}", inert(&derived.diagnostics));
        }
        println!("{}", hex::encode(derived.key.as_bytes()));
        println!("{}", derived.fuel_used);
        Ok(())
    }
}

/// A module's output as text that cannot drive the reviewer's terminal: control characters
/// other than line breaks and tabs (an escape sequence could clear or rewrite the key and
/// fuel printed after it), and the bidirectional and invisible format characters, are shown
/// as escapes (`\u{1b}`).
fn inert(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let mut out = String::with_capacity(text.len());
    for c in text.trim_end().chars() {
        let hidden = matches!(
            c,
            '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}'
        );
        if (c.is_control() && c != '\n' && c != '\t') || hidden {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}
