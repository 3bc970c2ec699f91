//! `kasane-registry init`.

use std::path::PathBuf;

use clap::Args;
use kasane_registry::cli;

use super::RepoKeys;
use crate::failure::Failure;

#[derive(Args)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    dirs: RepoKeys,
    /// A root key holder's secret key file, signing root 1 (repeatable; replaces root.key).
    #[arg(long, value_name = "FILE")]
    root_key: Vec<PathBuf>,
    /// A further root public key that does not sign root 1 (repeatable).
    #[arg(long, value_name = "FILE")]
    root_public_key: Vec<PathBuf>,
    /// Distinct root keys needed to sign a root.
    #[arg(long, value_name = "N")]
    root_threshold: Option<u32>,
    /// The host identity's public key file (replaces host.key: the host keeps the secret).
    #[arg(long, value_name = "FILE")]
    host_public_key: Option<PathBuf>,
}

impl InitArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let opts = cli::InitOptions {
            root_keys: self.root_key,
            root_public_keys: self.root_public_key,
            root_threshold: self.root_threshold,
            host_public_key: self.host_public_key,
        };
        let dirs = self.dirs;
        let r = cli::init(&dirs.repo, &dirs.keys, &opts)?;
        for p in &r.generated {
            println!("generated   {} (mode 0600)", p.display());
        }
        println!("repository  {}", dirs.repo.display());
        println!(
            "root        version 1, {} of {} root keys",
            r.root_threshold, r.root_keys
        );
        println!("fingerprint {}", r.root_fingerprint);
        println!(
            "clients pin it: kasane-registry verify --repo {} --state DIR --fingerprint {}",
            dirs.repo.display(),
            r.root_fingerprint
        );
        Ok(())
    }
}
