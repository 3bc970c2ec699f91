//! `kasane-registry snapshot`.

use std::path::PathBuf;

use clap::Args;
use kasane_registry::cli;

use super::RepoKeys;
use crate::failure::Failure;

#[derive(Args)]
pub(crate) struct SnapshotArgs {
    #[command(flatten)]
    dirs: RepoKeys,
    /// A signed authors/<ID>.json from `author-sign` (repeatable).
    #[arg(long, value_name = "FILE")]
    author_file: Vec<PathBuf>,
}

impl SnapshotArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let r = cli::snapshot(&self.dirs.repo, &self.dirs.keys, &self.author_file)?;
        for a in &r.authors {
            println!("accepted authors/{a}");
        }
        println!("snapshot version {}", r.version);
        Ok(())
    }
}
