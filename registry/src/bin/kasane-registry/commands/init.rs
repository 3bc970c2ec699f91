//! `kasane-registry init`.

use std::path::PathBuf;

use clap::Args;
use kasane_registry::cli::{self, KeyLocation, Role};

use super::{AuthorsKey, OnlineKey, RepoKeys, TargetsKey};
use crate::failure::Failure;

#[derive(Args)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    dirs: RepoKeys,
    /// Write fresh unencrypted keys for every role into --keys (development only).
    #[arg(long, conflicts_with_all = [
        "root_key", "root_public_key", "root_threshold", "host_public_key", "targets_key",
        "online_key", "revocations_key", "authors_key", "ticket_key",
    ])]
    dev: bool,
    /// A root key signing root 1: PKCS#8 PEM file or pkcs11: URI (repeatable; default
    /// <keys>/root.pem).
    #[arg(long, value_name = "KEY")]
    root_key: Vec<KeyLocation>,
    /// A further root public key (PEM) that does not sign root 1 (repeatable).
    #[arg(long, value_name = "FILE")]
    root_public_key: Vec<PathBuf>,
    /// Distinct root keys needed to sign a root (default 1).
    #[arg(long, value_name = "N")]
    root_threshold: Option<u64>,
    /// The host identity's public key file (default: the public half of <keys>/host.key).
    #[arg(long, value_name = "FILE")]
    host_public_key: Option<PathBuf>,
    #[command(flatten)]
    targets: TargetsKey,
    #[command(flatten)]
    online: OnlineKey,
    /// The revocations key: PKCS#8 PEM file or pkcs11: URI (default <keys>/revocations.pem).
    #[arg(long, value_name = "KEY")]
    revocations_key: Option<KeyLocation>,
    #[command(flatten)]
    authors: AuthorsKey,
    /// The host's ticket key (Ed25519; only its public half is published): PKCS#8 PEM file
    /// or pkcs11: URI (default <keys>/ticket.pem).
    #[arg(long, value_name = "KEY")]
    ticket_key: Option<KeyLocation>,
}

impl InitArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let keys = self.dirs.keys(&[
            (Role::Targets, &self.targets.targets_key),
            (Role::Online, &self.online.online_key),
            (Role::Revocations, &self.revocations_key),
            (Role::Authors, &self.authors.authors_key),
            (Role::Ticket, &self.ticket_key),
        ]);
        let opts = cli::InitOptions {
            dev: self.dev,
            root_keys: self.root_key,
            root_public_keys: self.root_public_key,
            root_threshold: self.root_threshold,
            host_public_key: self.host_public_key,
        };
        let repo = &self.dirs.repo;
        let r = cli::init(repo, &keys, &opts)?;
        for p in &r.generated {
            println!("generated   {} (mode 0600)", p.display());
        }
        println!("repository  {}", repo.display());
        println!(
            "root        version 1, {} of {} root keys",
            r.root_threshold, r.root_keys
        );
        println!("fingerprint {}", r.root_fingerprint);
        println!(
            "clients pin it: kasane-registry verify --repo {} --state DIR --fingerprint {}",
            repo.display(),
            r.root_fingerprint
        );
        Ok(())
    }
}
