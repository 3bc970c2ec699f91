//! What skips or weakens a trust check, for tests only (feature `test-util`; rustls's `danger`
//! habit). Nothing here is compiled into a default build, so no configuration of the
//! registry, the host or the client can reach it.
//!
//! - [`verify_repository_unpinned`]: verifies a repository against the root it ships itself,
//!   so it proves the files are consistent, not that they come from the right registry.

use std::path::Path;

use crate::entry::TargetEntry;
use crate::error::Result;
use crate::trust::{Clock, Pin, verify_repository_pinned};

/// [`crate::trust::verify_repository`] without a pin: the repository's own `1.root.json` is
/// trusted as given (trust on first use of the very directory being checked).
pub fn verify_repository_unpinned<C: Clock>(
    repo_dir: &Path,
    state_dir: &Path,
    clock: C,
) -> Result<Vec<(TargetEntry, String)>> {
    verify_repository_pinned(repo_dir, state_dir, Pin::File, clock)
}
