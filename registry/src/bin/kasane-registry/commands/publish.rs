//! `kasane-registry add` (first-party) and `author-sign` (a third-party author): both check a
//! module with the `test` harness and list it, so they share the module arguments.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use kasane_registry::cli::{self, Checked, ModuleSpec};

use super::{HarnessArgs, RepoKeys};
use crate::failure::Failure;

/// A module and the limits it is published with.
#[derive(Args)]
struct ModuleArgs {
    /// The module (binary wasm).
    module: PathBuf,
    /// The name to publish it under: [a-z0-9._/-], e.g. sha256-chain or acme/otp.
    #[arg(long)]
    name: String,
    /// The entry's version (default: the previous entry's version + 1, or 1).
    #[arg(long, value_name = "N")]
    version: Option<u64>,
    #[command(flatten)]
    harness: HarnessArgs,
    /// Rollout weight (0: published but never picked by the host).
    #[arg(long, value_name = "N", default_value_t = 100)]
    weight: u32,
    /// Publish even if `kasane-registry test` finds a problem (never with a wrong ABI,
    /// profile or import, which the sandbox would refuse anyway).
    #[arg(long)]
    force: bool,
}

impl ModuleArgs {
    fn spec(self) -> Result<ModuleSpec, Failure> {
        let (params, headroom) = self.harness.params_and_headroom()?;
        Ok(ModuleSpec {
            params,
            module: self.module,
            name: self.name,
            version: self.version,
            fuel: self.harness.fuel,
            memory: self.harness.memory,
            profile: self.harness.profile,
            weight: self.weight,
            force: self.force,
            headroom,
        })
    }
}

#[derive(Args)]
pub(crate) struct AddArgs {
    #[command(flatten)]
    dirs: RepoKeys,
    #[command(flatten)]
    module: ModuleArgs,
}

impl AddArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let spec = self.module.spec()?;
        let checked = cli::add(&self.dirs.repo, &self.dirs.keys, &spec)?;
        print_published("published", &checked);
        self.dirs.print_snapshot_hint();
        Ok(())
    }
}

#[derive(Args)]
pub(crate) struct AuthorSignArgs {
    /// Your author id (as delegated).
    #[arg(long, value_name = "ID")]
    author: String,
    /// Your secret key file (repeatable, for an author threshold above 1).
    #[arg(long = "key", value_name = "FILE", required = true)]
    keys: Vec<PathBuf>,
    /// Your current authors/<ID>.json, to extend (its signatures are not checked).
    #[arg(long, value_name = "FILE")]
    previous: Option<PathBuf>,
    /// Where to write the signed file.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    #[command(flatten)]
    module: ModuleArgs,
}

impl AuthorSignArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let spec = self.module.spec()?;
        let (bytes, checked) =
            cli::author_sign_module(&self.author, &self.keys, self.previous.as_deref(), &spec)?;
        kasane_registry::files::write_public(&self.out, &bytes)
            .with_context(|| format!("writing {}", self.out.display()))?;
        print_published("listed", &checked);
        println!(
            "wrote authors/{}.json to {}",
            self.author,
            self.out.display()
        );
        Ok(())
    }
}

fn print_published(verb: &str, c: &Checked) {
    let e = &c.entry;
    println!("{verb} {} version {}", e.name, e.version);
    println!("  sha256  {}", e.sha256);
    println!("  length  {} bytes", e.length);
    println!("  profile {}", e.profile.as_str());
    println!(
        "  fuel    {} (tested: at most {} used)",
        e.fuel, c.report.max_fuel_used
    );
    println!("  memory  {} bytes", e.memory);
    println!(
        "  params  {} ({} bytes)",
        hex::encode(&e.params),
        e.params.len()
    );
    println!("  weight  {}", e.rollout_weight);
    if !c.report.passed() {
        for ch in c.report.checks.iter().filter(|ch| !ch.passed) {
            println!("  forced past failed check {}: {}", ch.name, ch.detail);
        }
    }
}
