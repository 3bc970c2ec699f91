//! `kasane-registry verify`.

use std::path::PathBuf;

use clap::Args;
use kasane_registry::Sha256Hash;
use kasane_registry::cli::{self, PinSource, VerifyReport};

use super::parse_hex32;
use crate::failure::Failure;

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// The repository directory.
    #[arg(long, value_name = "DIR")]
    repo: PathBuf,
    /// The trust store directory to create (mode 0700; anything there is replaced).
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    #[command(flatten)]
    pin: PinArgs,
    /// Fail unless this module is runnable (repeatable).
    #[arg(long, value_name = "NAME")]
    require: Vec<String>,
}

/// How the first root is pinned: exactly one of these.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct PinArgs {
    /// The SHA-256 of the repository's metadata/1.root.json (as `init` prints it).
    #[arg(long, value_name = "HEX")]
    fingerprint: Option<String>,
    /// Root version 1, delivered out of band (the repository's must be identical).
    #[arg(long, value_name = "FILE")]
    root: Option<PathBuf>,
}

impl VerifyArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let pin = match (self.pin.fingerprint, self.pin.root) {
            (Some(f), _) => PinSource::Fingerprint(Sha256Hash(parse_hex32(&f, "--fingerprint")?)),
            (None, Some(p)) => PinSource::RootFile(p),
            (None, None) => {
                return Err(crate::failure::usage(anyhow::anyhow!(
                    "give --fingerprint HEX or --root FILE"
                )));
            }
        };
        let r = cli::verify(&self.repo, &self.state, &pin)?;
        print_report(&r);
        let missing: Vec<&str> = self
            .require
            .iter()
            .filter(|n| !r.runnable.iter().any(|(e, _)| &e.name == *n))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Failure::Failed(anyhow::anyhow!(
                "not runnable (not listed, revoked, or its author no longer delegated): {}",
                missing.join(", ")
            )));
        }
        Ok(())
    }
}

fn print_report(r: &VerifyReport) {
    println!(
        "verified: root version {}, timestamp version {}, snapshot version {}",
        r.root_version, r.versions.0, r.versions.1
    );
    for (e, role) in &r.runnable {
        println!(
            "{}  sha256 {}  length {}  profile {}  fuel {}  memory {}  weight {}  role {}",
            e.name,
            e.sha256,
            e.length,
            e.profile.as_str(),
            e.fuel,
            e.memory,
            e.rollout_weight,
            role,
        );
    }
    println!("{} runnable modules", r.runnable.len());
}
