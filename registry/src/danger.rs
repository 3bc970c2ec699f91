//! What skips or weakens a trust check, for tests only (feature `test-util`; rustls's `danger`
//! habit). Nothing here is compiled into a default build, so no configuration of the
//! registry, the host or the client can reach it.
//!
//! - [`key_from_seed`]: a host identity key from a fixed seed. Anyone who knows the seed holds
//!   the key; test fixtures use it so that runs are reproducible.
//! - [`verify_repository_unpinned`]: verifies a repository against the root it ships itself,
//!   so it proves the files are consistent, not that they come from the right registry.

use std::path::Path;

use crate::entry::TargetEntry;
use crate::error::Result;
use crate::keys::SecretKey;
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

/// A signing key derived from `seed`: a guessable key, for reproducible tests only.
pub fn key_from_seed(seed: &[u8; 32]) -> SecretKey {
    SecretKey::from_seed(seed)
}
