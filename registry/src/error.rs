//! [`RegistryError`]: every reason the registry library refuses a file, a key or a module.
//!
//! One variant per refusal reason, so tests (and logs) can tell an attack from another.
//! None of these strings is meant for a login peer: the client shows a uniform failure and
//! logs the detail.

use std::fmt;

/// A role of the registry, or one delegated author file, named in an error.
///
/// Its `Display` is the file's name in the repository (`root`, `targets`, `authors/acme`, …).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum RoleName {
    /// `root`: keys and thresholds of every other role.
    Root,
    /// `targets`: first-party modules and delegations.
    Targets,
    /// `snapshot`: versions and hashes of every other file; its keys also sign tickets.
    Snapshot,
    /// `revocations`: revoked module hashes and author keys.
    Revocations,
    /// `host`: the host's identity key (signs its ephemeral login keys).
    Host,
    /// `authors/<id>`: one delegated author's file.
    Author(String),
    /// A per-login session ticket (signed by the `snapshot` role).
    Ticket,
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root => f.write_str("root"),
            Self::Targets => f.write_str("targets"),
            Self::Snapshot => f.write_str("snapshot"),
            Self::Revocations => f.write_str("revocations"),
            Self::Host => f.write_str("host"),
            Self::Author(id) => write!(f, "authors/{id}"),
            Self::Ticket => f.write_str("ticket"),
        }
    }
}

/// Why the registry library refused something.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    // ---- encoding ----
    /// A file is larger than the cap for its kind.
    #[error("{what} is {len} bytes, more than the cap of {max}")]
    TooLarge {
        /// What was too large (a role, `module`, `key file`, …).
        what: String,
        /// Its length, or the first length past the cap that was seen.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// A JSON object has the same key twice (serde would silently keep the last one).
    #[error("duplicate JSON key {key:?}")]
    DuplicateKey {
        /// The repeated key.
        key: String,
    },
    /// The JSON is malformed or does not have the expected shape.
    #[error("malformed JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A hex field is malformed (odd length, not lowercase hex, or the wrong length).
    #[error("malformed hex in {field}")]
    BadHex {
        /// The field.
        field: &'static str,
    },
    /// The envelope's payload type is not the one expected here.
    #[error("payload type {got:?} where {expected:?} was expected")]
    WrongPayloadType {
        /// The expected type.
        expected: &'static str,
        /// The type found.
        got: String,
    },
    /// A field has a value out of its allowed range (e.g. an unknown spec version).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },

    // ---- names ----
    /// A module name, author id or delegation prefix is not allowed.
    #[error("bad name {name:?}: {reason}")]
    BadName {
        /// The name (at most its first 200 characters).
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// The same module name or author id appears twice in one file.
    #[error("{name:?} appears twice")]
    DuplicateName {
        /// The name.
        name: String,
    },

    // ---- keys and signatures ----
    /// A public key is not a valid Ed25519 point.
    #[error("invalid Ed25519 public key")]
    BadKey,
    /// A public key has small order (a "weak" key that verifies forged signatures).
    #[error("weak Ed25519 public key refused")]
    WeakKey,
    /// A key id is not the SHA-256 of the public key it names.
    #[error("key id {keyid} is not the SHA-256 of its public key")]
    KeyIdMismatch {
        /// The key id as written.
        keyid: String,
    },
    /// One public key is listed twice (under two key ids, or twice for one role).
    #[error("public key listed twice for {role}")]
    DuplicatePublicKey {
        /// The role whose key list repeats a key.
        role: RoleName,
    },
    /// A role names a key id that is not in the key list.
    #[error("{role} names unknown key id {keyid}")]
    UnknownKeyId {
        /// The role.
        role: RoleName,
        /// The key id.
        keyid: String,
    },
    /// A threshold of zero, which any unsigned file would meet.
    #[error("threshold 0 for {role}")]
    ZeroThreshold {
        /// The role.
        role: RoleName,
    },
    /// A threshold higher than the number of keys: nothing could ever meet it.
    #[error("threshold {threshold} for {role} exceeds its {keys} keys")]
    UnreachableThreshold {
        /// The role.
        role: RoleName,
        /// The threshold.
        threshold: u32,
        /// The number of keys.
        keys: usize,
    },
    /// Fewer distinct public keys produced a valid signature than the threshold needs.
    #[error("{role}: {have} valid signature(s) from distinct keys, {need} needed")]
    Threshold {
        /// The role.
        role: RoleName,
        /// Distinct trusted keys whose signature verified.
        have: u32,
        /// The threshold.
        need: u32,
    },
    /// A key file is malformed.
    #[error("bad key file: {0}")]
    BadKeyFile(&'static str),

    // ---- versions, time and consistency ----
    /// A role's version is lower than the one already trusted (rollback), or the same version
    /// with different content.
    #[error("{role}: version {got} is older than the trusted version {trusted}")]
    Rollback {
        /// The role.
        role: RoleName,
        /// The version floor.
        trusted: u64,
        /// The version offered.
        got: u64,
    },
    /// The same version of a role with different content.
    #[error("{role}: version {version} reused with different content")]
    VersionReuse {
        /// The role.
        role: RoleName,
        /// The version.
        version: u64,
    },
    /// A role's metadata has expired (a freeze attack, or a registry that stopped signing).
    #[error("{role} expired")]
    Expired {
        /// The role.
        role: RoleName,
    },
    /// The clock reads earlier than the latest time this trust store has already seen.
    #[error("clock reads {now}, before the latest trusted time {latest}")]
    ClockSetBack {
        /// The clock's reading.
        now: u64,
        /// The latest trusted time.
        latest: u64,
    },
    /// Root N+1 does not carry version N+1.
    #[error("root chain: expected version {expected}, got {got}")]
    RootVersionGap {
        /// The version expected.
        expected: u64,
        /// The version found.
        got: u64,
    },
    /// More new root versions than one update may walk.
    #[error("root chain longer than {max} versions in one update")]
    RootChainTooLong {
        /// The cap.
        max: u32,
    },
    /// A file differs from what the snapshot (or a ticket) records for it.
    #[error("{role} does not match the snapshot: {what}")]
    SnapshotMismatch {
        /// The file.
        role: RoleName,
        /// Which property differs (`hash`, `length`, `version`, `ticket snapshot`…).
        what: &'static str,
    },
    /// A file the trusted snapshot listed is missing from the new one.
    #[error("{role} was removed from the snapshot")]
    MissingFromSnapshot {
        /// The file.
        role: RoleName,
    },
    /// The first root does not match the pinned fingerprint.
    #[error("root does not match the pinned fingerprint")]
    FingerprintMismatch,
    /// The trust store has no trusted snapshot yet (run an update first).
    #[error("no trusted snapshot yet: update first")]
    NotInitialized,
    /// A file needed for an update could not be fetched.
    #[error("{path} is missing from the repository")]
    Missing {
        /// The path.
        path: String,
    },

    // ---- delegations ----
    /// An author lists a module, or delegates a prefix, outside its own delegated prefix.
    #[error("authors/{author}: {name:?} is outside the delegated prefix {prefix:?}")]
    DelegationPrefix {
        /// The author.
        author: String,
        /// The name outside the prefix.
        name: String,
        /// The prefix delegated to the author.
        prefix: String,
    },
    /// The delegation graph reaches one author twice.
    #[error("delegation cycle (or second path) through authors/{author}")]
    DelegationCycle {
        /// The author reached twice.
        author: String,
    },
    /// More delegations, or deeper ones, than the caps allow.
    #[error("delegations exceed the cap of {max}")]
    DelegationCap {
        /// The cap.
        max: usize,
    },

    // ---- modules and tickets ----
    /// The module's SHA-256 differs from the one signed.
    #[error("module hash mismatch")]
    HashMismatch,
    /// The module's length differs from the one signed.
    #[error("module length {got} differs from the signed {expected}")]
    LengthMismatch {
        /// The signed length.
        expected: u64,
        /// The length delivered.
        got: u64,
    },
    /// No trusted metadata lists the module (or the author listing it lost its delegation).
    #[error("module {name:?} is not listed")]
    NotListed {
        /// The name.
        name: String,
    },
    /// The module's hash, or every key of the author that listed it, is revoked.
    #[error("module {sha256} is revoked")]
    Revoked {
        /// The revoked hash (lowercase hex).
        sha256: String,
    },
    /// Every key of the author that would list the module is revoked (below its threshold).
    #[error("authors/{author}: its keys are revoked")]
    AuthorRevoked {
        /// The author.
        author: String,
    },
    /// The ticket was issued for another login (not this client's nonce).
    #[error("ticket nonce does not match this login")]
    NonceMismatch,
    /// The ticket has expired, is not yet valid, or claims too long a lifetime.
    #[error("ticket expired or not yet valid")]
    TicketExpired,

    // ---- I/O ----
    /// Reading or writing the trust store or a key file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

impl RegistryError {
    /// An [`RegistryError::Io`] for `path`.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = RegistryError> = std::result::Result<T, E>;
