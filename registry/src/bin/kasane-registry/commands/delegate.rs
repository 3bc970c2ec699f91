//! `kasane-registry delegate`.

use std::path::PathBuf;

use clap::Args;
use kasane_registry::cli::{self, Role};

use super::{AuthorsKey, OnlineKey, RepoKeys};
use crate::failure::Failure;

#[derive(Args)]
pub(crate) struct DelegateArgs {
    #[command(flatten)]
    dirs: RepoKeys,
    #[command(flatten)]
    authors: AuthorsKey,
    #[command(flatten)]
    online: OnlineKey,
    /// The author id: [a-z0-9-], up to 64 characters; it may publish <ID>/<name>.
    #[arg(long, value_name = "ID")]
    author: String,
    /// An author public key file, PEM (repeatable).
    #[arg(long = "author-key", value_name = "FILE", required = true)]
    author_keys: Vec<PathBuf>,
    /// Distinct author keys needed to sign the author's role file.
    #[arg(long, value_name = "N", default_value_t = 1)]
    threshold: u64,
    /// The largest rollout weight any of this author's modules gets, whatever weight the
    /// author signs (the host and clients use min(weight, N)). Stored in the delegation as
    /// "x-kasane-max-weight"; a delegation made before this option is capped at 10.
    #[arg(long, value_name = "N", default_value_t = kasane_registry::weights::DEFAULT_MAX_WEIGHT)]
    max_weight: u32,
}

impl DelegateArgs {
    pub(crate) fn run(self) -> Result<(), Failure> {
        let keys = self.dirs.keys(&[
            (Role::Authors, &self.authors.authors_key),
            (Role::Online, &self.online.online_key),
        ]);
        let p = cli::delegate(
            &self.dirs.repo,
            &keys,
            &self.author,
            &self.author_keys,
            self.threshold,
            self.max_weight,
        )?;
        println!(
            "delegated {}/* to author {} ({} of {} keys, weight capped at {}); authors version {}, snapshot version {}",
            self.author,
            self.author,
            self.threshold,
            self.author_keys.len(),
            self.max_weight,
            p.role.1,
            p.snapshot
        );
        Ok(())
    }
}
