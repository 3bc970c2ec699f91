//! `kasane-registry add` (first-party) and `author-sign` (a third-party author): both check a
//! module with the `test` harness and list it, so they share the module arguments.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use kasane_registry::cli::{self, Checked, KeyLocation, ModuleSpec, Published, Role};

use super::{AccessArgs, HarnessArgs, OnlineKey, RepoKeys, TargetsKey};
use crate::failure::{Failure, usage};

/// A module and the limits it is published with.
#[derive(Args)]
struct ModuleArgs {
    /// The module (binary wasm).
    module: PathBuf,
    /// The name to publish it under: [a-z0-9._/-], e.g. sha256-chain or acme/otp.
    #[arg(long)]
    name: String,
    #[command(flatten)]
    harness: HarnessArgs,
    /// Rollout weight (0: published but never picked by the host).
    #[arg(long, value_name = "N", default_value_t = 100)]
    weight: u32,
    /// Publish even if `kasane-registry test` finds a problem (never with a wrong ABI,
    /// profile or import, which the sandbox would refuse anyway, nor when the auth output
    /// ignores a response or the whole session: check `inputs`, a security property).
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
    targets: TargetsKey,
    #[command(flatten)]
    online: OnlineKey,
    #[command(flatten)]
    module: ModuleArgs,
}

impl AddArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let keys = self.dirs.keys(&[
            (Role::Targets, &self.targets.targets_key),
            (Role::Online, &self.online.online_key),
        ]);
        let spec = self.module.spec()?;
        let (checked, p) = cli::add(&self.dirs.repo, &keys, &spec)?;
        print_published("published", &checked, &p);
        Ok(())
    }
}

#[derive(Args)]
pub(crate) struct AuthorSignArgs {
    /// Your author id (as delegated).
    #[arg(long, value_name = "ID")]
    author: String,
    /// Your key: PKCS#8 PEM file or pkcs11: URI (repeatable, for an author threshold above 1).
    #[arg(long = "key", value_name = "KEY", required = true)]
    keys: Vec<KeyLocation>,
    /// The repository (or a copy of it): your current role file is taken from it.
    #[arg(long, value_name = "DIR")]
    repo: PathBuf,
    /// Where to write the signed role file.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "apply",
        conflicts_with = "apply"
    )]
    out: Option<PathBuf>,
    /// Put the signed file and the module into --repo at once and re-sign snapshot and
    /// timestamp (the registry operator's shortcut; needs the online key).
    #[arg(long)]
    apply: bool,
    /// With --apply: the directory of role keys (<keys>/online.pem).
    #[arg(long, value_name = "DIR", requires = "apply")]
    keys_dir: Option<PathBuf>,
    #[command(flatten)]
    online: OnlineKey,
    #[command(flatten)]
    access: AccessArgs,
    #[command(flatten)]
    module: ModuleArgs,
}

impl AuthorSignArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let spec = self.module.spec()?;
        let access = self.access.access();
        if self.apply {
            let keys = cli::Keys {
                dir: self.keys_dir.clone(),
                explicit: self
                    .online
                    .online_key
                    .clone()
                    .map(|l| (Role::Online, l))
                    .into_iter()
                    .collect(),
                access,
            };
            let (checked, p) =
                cli::author_sign_apply(&self.repo, &keys, &self.author, &self.keys, &spec)?;
            print_published("published", &checked, &p);
            return Ok(());
        }
        let out = self
            .out
            .ok_or_else(|| usage(anyhow::anyhow!("give --out FILE or --apply")))?;
        let (bytes, checked) =
            cli::author_sign(&self.repo, &self.author, &self.keys, &access, &spec)?;
        kasane_registry::files::write_public(&out, &bytes)
            .with_context(|| format!("writing {}", out.display()))?;
        print_entry("listed", &checked);
        println!(
            "wrote the role file of author {} to {}",
            self.author,
            out.display()
        );
        println!(
            "the registry takes it in: kasane-registry snapshot --repo DIR --keys KEYS --author {} --author-file {} --module {}",
            self.author,
            out.display(),
            spec.module.display()
        );
        Ok(())
    }
}

fn print_published(verb: &str, c: &Checked, p: &Published) {
    print_entry(verb, c);
    println!("  role    {} version {}", p.role.0, p.role.1);
    println!("  snapshot version {}", p.snapshot);
}

fn print_entry(verb: &str, c: &Checked) {
    let e = &c.entry;
    println!("{verb} {}", e.name);
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
