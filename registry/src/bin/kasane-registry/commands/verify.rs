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
    /// The trust store directory (state.json, mode 0600).
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// Pin the first root to this file, delivered out of band (used only when --state
    /// holds no trust store yet).
    #[arg(long, value_name = "FILE", conflicts_with = "fingerprint")]
    root: Option<PathBuf>,
    /// Pin the first root to this SHA-256 of the repository's 1.root.json (used only when
    /// --state holds no trust store yet).
    #[arg(long, value_name = "HEX")]
    fingerprint: Option<String>,
    /// Fail unless this module is runnable (repeatable).
    #[arg(long, value_name = "NAME")]
    require: Vec<String>,
}

impl VerifyArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let pin = match (self.root, self.fingerprint) {
            (Some(p), _) => Some(PinSource::RootFile(p)),
            (None, Some(f)) => Some(PinSource::Fingerprint(Sha256Hash(parse_hex32(
                &f,
                "--fingerprint",
            )?))),
            (None, None) => None,
        };
        let r = cli::verify(&self.repo, &self.state, pin.as_ref())?;
        print_report(&r);
        let missing: Vec<&str> = self
            .require
            .iter()
            .filter(|n| !r.runnable.iter().any(|(e, _)| &e.name == *n))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(Failure::Failed(anyhow::anyhow!(
                "not runnable (not listed, revoked, or its author distrusted): {}",
                missing.join(", ")
            )));
        }
        Ok(())
    }
}

fn print_report(r: &VerifyReport) {
    println!(
        "verified: root version {}, snapshot version {}{}",
        r.root_version,
        r.snapshot_version,
        if r.created { " (new trust store)" } else { "" }
    );
    for (e, author) in &r.runnable {
        println!(
            "{}  version {}  sha256 {}  length {}  profile {}  fuel {}  memory {}  weight {}  {}",
            e.name,
            e.version,
            e.sha256,
            e.length,
            e.profile.as_str(),
            e.fuel,
            e.memory,
            e.rollout_weight,
            author
                .as_ref()
                .map_or("first-party".to_owned(), |a| format!("author {a}")),
        );
    }
    println!("{} runnable modules", r.runnable.len());
}
