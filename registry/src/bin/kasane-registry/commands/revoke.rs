//! `kasane-registry revoke`.

use std::path::PathBuf;

use clap::Args;
use kasane_registry::Sha256Hash;
use kasane_registry::cli::{self, RevokeTarget, Role};

use super::{AuthorsKey, OnlineKey, RepoKeys, RevocationsKey, parse_hex32, read_module};
use crate::failure::Failure;

#[derive(Args)]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    dirs: RepoKeys,
    #[command(flatten)]
    what: WhatArgs,
    #[command(flatten)]
    revocations: RevocationsKey,
    #[command(flatten)]
    authors: AuthorsKey,
    #[command(flatten)]
    online: OnlineKey,
}

/// What `revoke` revokes: exactly one of these.
#[derive(Args)]
#[group(required = true, multiple = false)]
struct WhatArgs {
    /// A module hash (64 hex digits).
    #[arg(long, value_name = "SHA256")]
    hash: Option<String>,
    /// A module file: its SHA-256 is revoked.
    #[arg(long, value_name = "MODULE.wasm")]
    module: Option<PathBuf>,
    /// An author id: the authors role stops delegating to it, so none of its modules resolve.
    #[arg(long, value_name = "ID")]
    author: Option<String>,
}

impl WhatArgs {
    fn target(self) -> Result<RevokeTarget, Failure> {
        Ok(match (self.hash, self.module, self.author) {
            (Some(h), ..) => RevokeTarget::Hash(Sha256Hash(parse_hex32(&h, "--hash")?)),
            (_, Some(m), _) => RevokeTarget::Hash(Sha256Hash::of(&read_module(&m)?)),
            (_, _, Some(a)) => RevokeTarget::Author(a),
            (None, None, None) => {
                return Err(crate::failure::usage(anyhow::anyhow!(
                    "give one of --hash, --module, --author"
                )));
            }
        })
    }
}

impl RevokeArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let keys = self.dirs.keys(&[
            (Role::Revocations, &self.revocations.revocations_key),
            (Role::Authors, &self.authors.authors_key),
            (Role::Online, &self.online.online_key),
        ]);
        let target = self.what.target()?;
        let p = cli::revoke(&self.dirs.repo, &keys, &target)?;
        match target {
            RevokeTarget::Hash(h) => println!("revoked module hash {h}"),
            RevokeTarget::Author(a) => println!("revoked author {a}"),
        }
        println!(
            "{} version {}, snapshot version {}",
            p.role.0, p.role.1, p.snapshot
        );
        Ok(())
    }
}
