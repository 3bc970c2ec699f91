//! `kasane-registry delegate`.

use std::path::PathBuf;

use clap::Args;
use kasane_registry::cli;

use super::RepoKeys;
use crate::failure::Failure;

#[derive(Args)]
pub(crate) struct DelegateArgs {
    #[command(flatten)]
    dirs: RepoKeys,
    /// The author id: [a-z0-9-], up to 64 characters.
    #[arg(long, value_name = "ID")]
    author: String,
    /// The name prefix the author may publish under; ends with `/` (e.g. acme/).
    #[arg(long, value_name = "PREFIX")]
    prefix: String,
    /// An author public key file (repeatable).
    #[arg(long = "author-key", value_name = "FILE", required = true)]
    author_keys: Vec<PathBuf>,
    /// Distinct author keys needed to sign the author's file.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threshold: u32,
}

impl DelegateArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        cli::delegate(
            &self.dirs.repo,
            &self.dirs.keys,
            &self.author,
            &self.prefix,
            &self.author_keys,
            self.threshold,
        )?;
        println!(
            "delegated {} to author {} ({} of {} keys)",
            self.prefix,
            self.author,
            self.threshold,
            self.author_keys.len()
        );
        Ok(())
    }
}
