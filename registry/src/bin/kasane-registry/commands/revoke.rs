//! `kasane-registry revoke`.

use std::path::PathBuf;

use clap::Args;
use kasane_registry::Sha256Hash;
use kasane_registry::cli::{self, RevokeTarget};
use kasane_registry::keys::KeyId;

use super::{RepoKeys, parse_hex32, read_module};
use crate::failure::{Failure, usage};

#[derive(Args)]
pub(crate) struct RevokeArgs {
    #[command(flatten)]
    dirs: RepoKeys,
    #[command(flatten)]
    what: WhatArgs,
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
    /// An author key, from its public (or secret) key file.
    #[arg(long, value_name = "FILE")]
    author_key: Option<PathBuf>,
    /// An author key, by key id (64 hex digits).
    #[arg(long, value_name = "KEYID")]
    author_key_id: Option<String>,
}

impl WhatArgs {
    fn target(self) -> Result<RevokeTarget, Failure> {
        let target = match (self.hash, self.module, self.author_key, self.author_key_id) {
            (Some(h), ..) => RevokeTarget::Hash(Sha256Hash(parse_hex32(&h, "--hash")?)),
            (_, Some(m), ..) => RevokeTarget::Hash(Sha256Hash::of(&read_module(&m)?)),
            (_, _, Some(k), _) => RevokeTarget::AuthorKey(cli::author_key_id(&k)?),
            (_, _, _, Some(id)) => {
                RevokeTarget::AuthorKey(KeyId(parse_hex32(&id, "--author-key-id")?))
            }
            (None, None, None, None) => {
                return Err(usage(anyhow::anyhow!(
                    "give one of --hash, --module, --author-key, --author-key-id"
                )));
            }
        };
        Ok(target)
    }
}

impl RevokeArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let target = self.what.target()?;
        cli::revoke(&self.dirs.repo, &self.dirs.keys, &target)?;
        match target {
            RevokeTarget::Hash(h) => println!("revoked module hash {h}"),
            RevokeTarget::AuthorKey(k) => println!("revoked author key {k}"),
        }
        self.dirs.print_snapshot_hint();
        Ok(())
    }
}
