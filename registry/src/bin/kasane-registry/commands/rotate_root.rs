//! `kasane-registry rotate-root`.

use std::path::PathBuf;

use clap::Args;
use kasane_registry::cli;

use super::RepoKeys;
use crate::failure::Failure;

#[derive(Args)]
pub(crate) struct RotateRootArgs {
    #[command(flatten)]
    dirs: RepoKeys,
    /// A directory of new role key files.
    #[arg(long, value_name = "DIR")]
    new_keys: Option<PathBuf>,
    /// A current root key holder's secret key file (repeatable; replaces root.key, for a
    /// root with a threshold above 1).
    #[arg(long, value_name = "FILE")]
    root_key: Vec<PathBuf>,
}

impl RotateRootArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let dirs = &self.dirs;
        let r = cli::rotate_root(
            &dirs.repo,
            &dirs.keys,
            self.new_keys.as_deref(),
            &self.root_key,
        )?;
        println!("root version {}", r.version);
        if r.rotated.is_empty() {
            println!("no key changed (new expiry)");
        } else {
            println!("rotated keys: {}", r.rotated.join(", "));
            println!("move the new key files into {}", dirs.keys.display());
        }
        Ok(())
    }
}
