//! The one error type of the crate: every refusal has its own variant, carrying what was
//! refused and the values that made it so.

use std::io;

/// Why a metadata file, a key, a signature or a target was refused, or why an operation failed.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TufError {
    /// The bytes are not the metadata (or key, or signature) they claim to be.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being parsed (a role name, "key", "signature", ...).
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A JSON object in the metadata has the same key twice (serde_json would silently
    /// keep the last value, another parser the first).
    #[error("{what}: duplicate JSON key {key:?}")]
    DuplicateKey {
        /// What was being parsed (a role name).
        what: String,
        /// The repeated key.
        key: String,
    },
    /// The metadata's `_type` is not the role it was fetched as.
    #[error("{role}: expected _type {expected:?}, got {got:?}")]
    WrongType {
        /// The role the metadata was fetched as.
        role: String,
        /// The `_type` that role has.
        expected: String,
        /// The `_type` the metadata carries.
        got: String,
    },
    /// The metadata's `spec_version` is not a TUF 1.x version.
    #[error("{role}: unsupported spec_version {spec_version:?}")]
    UnsupportedSpecVersion {
        /// The role whose metadata it is.
        role: String,
        /// The version string it carries.
        spec_version: String,
    },
    /// Fewer distinct keys the delegator lists for the role signed than its threshold.
    #[error("{role}: {valid} valid signatures, threshold {threshold}")]
    ThresholdNotMet {
        /// The role whose metadata it is.
        role: String,
        /// Distinct listed keys whose signature verified.
        valid: u64,
        /// How many the delegator requires.
        threshold: u64,
    },
    /// One signature does not verify with its key.
    #[error("signature by key {keyid} does not verify")]
    BadSignature {
        /// The signing key's id.
        keyid: String,
    },
    /// The key's type or scheme is not one this crate verifies.
    #[error("unsupported key type {keytype:?} / scheme {scheme:?}")]
    UnsupportedKey {
        /// The key's `keytype`.
        keytype: String,
        /// The key's `scheme`.
        scheme: String,
    },
    /// The delegator names no role of that name.
    #[error("{delegator} delegates no role {role:?}")]
    NotDelegated {
        /// The role asked for.
        role: String,
        /// The role that was supposed to delegate it.
        delegator: String,
    },
    /// A newer version is older than the trusted one.
    #[error("{role}: rollback from version {trusted} to {new}")]
    Rollback {
        /// The role (or meta file) whose version went back.
        role: String,
        /// The trusted version.
        trusted: u64,
        /// The version offered.
        new: u64,
    },
    /// The version is not the one the referring metadata (or URL) says.
    #[error("{role}: expected version {expected}, got {got}")]
    VersionMismatch {
        /// The role whose metadata it is.
        role: String,
        /// The version expected.
        expected: u64,
        /// The version found.
        got: u64,
    },
    /// A new timestamp has the same version as the trusted one (the trusted one is kept).
    #[error("{role}: version {version} is the trusted version")]
    EqualVersion {
        /// The role.
        role: String,
        /// The version both carry.
        version: u64,
    },
    /// The new snapshot no longer lists a role the trusted snapshot listed.
    #[error("snapshot: {role} removed from meta")]
    RoleRemoved {
        /// The meta file name that went missing (`<role>.json`).
        role: String,
    },
    /// The snapshot does not list the metadata of this role.
    #[error("{role} is not listed in snapshot")]
    NotInSnapshot {
        /// The role name.
        role: String,
    },
    /// The metadata has expired at the reference time.
    #[error("{role} has expired")]
    Expired {
        /// The role.
        role: String,
    },
    /// The bytes' length is not the one the referring metadata gives.
    #[error("{what}: expected length {expected}, got {got}")]
    LengthMismatch {
        /// The file.
        what: String,
        /// Length in the referring metadata.
        expected: u64,
        /// Length received.
        got: u64,
    },
    /// A hash of the bytes is not the one the referring metadata gives (or its algorithm
    /// is unknown).
    #[error("{what}: {algorithm} hash mismatch")]
    HashMismatch {
        /// The file.
        what: String,
        /// The hash algorithm.
        algorithm: String,
    },
    /// A fetched file is larger than allowed.
    #[error("{what} is larger than {max} bytes")]
    TooLarge {
        /// The file.
        what: String,
        /// The cap in bytes.
        max: u64,
    },
    /// No role reachable for this path lists the target.
    #[error("unknown target {path:?}")]
    UnknownTarget {
        /// The target path.
        path: String,
    },
    /// More delegated roles would be visited than allowed.
    #[error("delegation search for {path:?} stopped after {max} roles")]
    DelegationLimit {
        /// The target path searched for.
        path: String,
        /// The cap.
        max: u32,
    },
    /// More root versions than allowed in one update.
    #[error("more than {max} root rotations")]
    TooManyRootRotations {
        /// The cap.
        max: u32,
    },
    /// A required file was not found on the repository.
    #[error("{what} not found on the repository")]
    NotFound {
        /// The file.
        what: String,
    },
    /// The trusted root is not in the metadata store.
    #[error("no trusted root in the metadata store")]
    NoTrustedRoot,
    /// A workflow step was called out of order (for example snapshot before timestamp).
    #[error("{step} called out of order: {reason}")]
    OutOfOrder {
        /// The step.
        step: String,
        /// What has to come first, or must not have happened yet.
        reason: String,
    },
    /// The fetcher failed (network, HTTP status other than not-found, ...).
    #[error("fetching {what}: {reason}")]
    Fetch {
        /// What was being fetched.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// Signing failed.
    #[error(transparent)]
    Sign(#[from] SignError),
    /// Local storage failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being read or written.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl TufError {
    pub(crate) fn malformed(what: impl Into<String>, reason: impl ToString) -> Self {
        Self::Malformed {
            what: what.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        Self::Io {
            what: what.into(),
            source,
        }
    }
}

/// A [`crate::metadata::Signer`] could not sign.
#[derive(Debug, thiserror::Error)]
#[error("signing failed: {reason}")]
pub struct SignError {
    /// Why.
    pub reason: String,
}

/// The crate's result type.
pub type Result<T, E = TufError> = std::result::Result<T, E>;
