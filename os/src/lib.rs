//! What every Kasane crate takes from the operating system, in one place so that each is
//! done one way.
//!
//! # Module map
//! - [`fs`]: private files — created `0600` from the first byte, written to a temporary file in
//!   the same directory, fsynced, renamed over the target, and the directory fsynced — and
//!   private directories (`0700`). Every key, card, cache entry, metadata and state file of
//!   Kasane is written through [`fs::write_private`] or [`fs::write_private_new`].
//! - `blocking` (feature `tokio`): blocking work in place on tokio's multi-thread runtime,
//!   else on its blocking pool.
//! - [`report`]: [`report::Chain`], an error with its sources on one line, for logs and
//!   answers.
//! - [`clock`]: the [`Clock`] trait (unix seconds) with the system clock, and under the
//!   `test-util` feature a manual clock for tests.
//!
//! # Example
//! ```
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("secret.key");
//! kasane_os::fs::write_private_new(&path, b"k").unwrap();
//! assert!(kasane_os::fs::write_private_new(&path, b"other").is_err()); // never replaced
//! kasane_os::fs::write_private(&path, b"rotated").unwrap(); // replaced atomically
//! assert_eq!(std::fs::read(&path).unwrap(), b"rotated");
//! ```
#![forbid(unsafe_code)]

#[cfg(feature = "tokio")]
pub mod blocking;
pub mod clock;
pub mod fs;
pub mod report;

#[cfg(feature = "test-util")]
pub use clock::ManualClock;
pub use clock::{Clock, SystemClock};
