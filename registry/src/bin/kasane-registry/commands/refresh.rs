//! `kasane-registry refresh`.

use clap::{Args, ValueEnum};
use kasane_registry::cli::{self, KeyLocation, RefreshRole, Role};

use super::{AuthorsKey, OnlineKey, RepoKeys, RevocationsKey, TargetsKey};
use crate::failure::Failure;

/// The offline roles `refresh` re-signs.
#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Root,
    Targets,
    Revocations,
    Authors,
}

#[derive(Args)]
pub(crate) struct RefreshArgs {
    #[command(flatten)]
    dirs: RepoKeys,
    /// The role to re-sign.
    #[arg(long, value_enum)]
    role: RoleArg,
    /// The root key (for --role root): PKCS#8 PEM file or pkcs11: URI (default
    /// <keys>/root.pem).
    #[arg(long, value_name = "KEY")]
    root_key: Option<KeyLocation>,
    #[command(flatten)]
    targets: TargetsKey,
    #[command(flatten)]
    revocations: RevocationsKey,
    #[command(flatten)]
    authors: AuthorsKey,
    #[command(flatten)]
    online: OnlineKey,
}

impl RefreshArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let keys = self.dirs.keys(&[
            (Role::Root, &self.root_key),
            (Role::Targets, &self.targets.targets_key),
            (Role::Revocations, &self.revocations.revocations_key),
            (Role::Authors, &self.authors.authors_key),
            (Role::Online, &self.online.online_key),
        ]);
        let role = match self.role {
            RoleArg::Root => RefreshRole::Root,
            RoleArg::Targets => RefreshRole::Targets,
            RoleArg::Revocations => RefreshRole::Revocations,
            RoleArg::Authors => RefreshRole::Authors,
        };
        let p = cli::refresh(&self.dirs.repo, &keys, role)?;
        println!(
            "re-signed {} version {}, snapshot version {}",
            p.role.0, p.role.1, p.snapshot
        );
        Ok(())
    }
}
