//! `kasane-registry snapshot`.

use std::path::PathBuf;

use clap::Args;
use kasane_registry::cli::{self, AuthorImport, Role};

use super::{OnlineKey, RepoKeys};
use crate::failure::Failure;

#[derive(Args)]
pub(crate) struct SnapshotArgs {
    #[command(flatten)]
    dirs: RepoKeys,
    #[command(flatten)]
    online: OnlineKey,
    /// The author whose role file --author-file is.
    #[arg(long, value_name = "ID", requires = "author_file")]
    author: Option<String>,
    /// A signed author role file from `author-sign --out`, to take in first.
    #[arg(long, value_name = "FILE", requires = "author")]
    author_file: Option<PathBuf>,
    /// A module the author role file lists (repeatable; needed for each one the repository
    /// does not hold yet).
    #[arg(long, value_name = "MODULE.wasm", requires = "author_file")]
    module: Vec<PathBuf>,
}

impl SnapshotArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let keys = self.dirs.keys(&[(Role::Online, &self.online.online_key)]);
        let import = match (self.author, self.author_file) {
            (Some(author), Some(file)) => Some(AuthorImport {
                author,
                file,
                modules: self.module,
            }),
            _ => None,
        };
        let r = cli::snapshot(&self.dirs.repo, &keys, import.as_ref())?;
        if let Some((author, names)) = &r.accepted {
            println!(
                "accepted the role file of author {author}: {}",
                names.join(", ")
            );
        }
        println!("snapshot version {}", r.version);
        Ok(())
    }
}
