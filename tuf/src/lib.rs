//! TUF 1.0 (The Update Framework): metadata, canonical JSON, signature thresholds and the
//! client workflow. Nothing here is specific to Kasane; `kasane-registry` builds on it.
//!
//! Module map:
//! - [`error`]: `TufError`, the one error type (a variant per refusal reason), and `SignError`.
//! - [`canonical`]: canonical JSON bytes (what signatures cover), as securesystemslib makes them.
//! - [`keys`]: public keys as metadata lists them, key ids, signature verification.
//! - [`metadata`]: the signed envelope, the four role payloads, path patterns, signing.
//! - [`hashes`]: length and hash checks of fetched bytes.
//! - [`memo`]: bounded memos of metadata parsing and signature checks (a client repeats both).
//! - [`verify`]: the signature threshold rule (distinct listed keys).
//! - [`updater`]: the client workflow (trusted set, updater, fetcher and store traits).
#![forbid(unsafe_code)]

pub mod canonical;
pub mod error;
pub mod hashes;
pub mod keys;
pub mod memo;
pub mod metadata;
pub mod updater;
pub mod verify;

pub use error::{Result, SignError, TufError};
pub use keys::{Key, KeyId, KeyVal};
pub use metadata::{
    DelegatedRole, Delegations, Ed25519Signer, MetaFile, Metadata, Role, Root, Signature,
    SignedRole, Signer, Snapshot, TargetFile, Targets, Timestamp,
};
pub use updater::{
    DirectoryStore, Fetcher, MetadataStore, TargetInfo, TrustedSet, Updater, UpdaterConfig,
};
