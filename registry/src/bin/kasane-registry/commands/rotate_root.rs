//! `kasane-registry rotate-root`.

use clap::Args;
use kasane_registry::cli::{self, KeyLocation, Role};

use super::{OnlineKey, RepoKeys};
use crate::failure::Failure;

#[derive(Args)]
pub(crate) struct RotateRootArgs {
    #[command(flatten)]
    dirs: RepoKeys,
    /// A current root key: PKCS#8 PEM file or pkcs11: URI (repeatable, for a root threshold
    /// above 1; default <keys>/root.pem).
    #[arg(long, value_name = "KEY")]
    root_key: Vec<KeyLocation>,
    /// The new root key (it also signs the new root).
    #[arg(long, value_name = "KEY")]
    new_root_key: Option<KeyLocation>,
    /// The new targets key (targets is re-signed with it at once).
    #[arg(long, value_name = "KEY")]
    new_targets_key: Option<KeyLocation>,
    /// The new online key for timestamp and snapshot (they are re-signed with it at once).
    #[arg(long, value_name = "KEY")]
    new_online_key: Option<KeyLocation>,
    #[command(flatten)]
    online: OnlineKey,
}

impl RotateRootArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let keys = self.dirs.keys(&[(Role::Online, &self.online.online_key)]);
        let opts = cli::RotateOptions {
            root_keys: self.root_key,
            new_root: self.new_root_key,
            new_targets: self.new_targets_key,
            new_online: self.new_online_key,
        };
        let r = cli::rotate_root(&self.dirs.repo, &keys, &opts)?;
        println!("root version {}", r.version);
        if r.rotated.is_empty() {
            println!("no key changed (new expiry)");
        } else {
            println!("rotated keys: {}", r.rotated.join(", "));
            println!("use the new keys from now on (move new key files into --keys)");
        }
        Ok(())
    }
}
