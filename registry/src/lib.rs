//! The Kasane transform registry: what may run, and the tools that publish and try modules.
//!
//! # Module map
//! - [`run`] (feature `cli`): `kasane-registry run` — runs one module on one input given as
//!   JSON, for authors and tools. Parses the input file format documented there.
//! - [`harness`] (feature `cli`): `kasane-registry test` — the authoring harness (ABI, imports,
//!   determinism across two engines, fuel headroom, output length, known-answer vectors).
//!
//! Signed metadata, the client-side trust store and the rest of the CLI arrive with the
//! registry issue; see `docs/` for the design they follow.
#![forbid(unsafe_code)]

#[cfg(feature = "cli")]
pub mod harness;
#[cfg(feature = "cli")]
pub mod run;
