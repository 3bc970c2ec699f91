//! [`RegistryError`]: every reason the registry library refuses a file, a key or a module.
//!
//! One variant per refusal reason, so tests (and logs) can tell an attack from another. The
//! TUF workflow's own refusals (rollback, freeze, threshold, mix-and-match, …) arrive as
//! [`RegistryError::Tuf`] with `kasane_tuf`'s typed error inside. None of these strings is
//! meant for a login peer: the client shows a uniform failure and logs the detail.

use std::fmt;

/// A role of the registry, or a Kasane document, named in an error.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum RoleName {
    /// `root`.
    Root,
    /// `timestamp`.
    Timestamp,
    /// `snapshot`.
    Snapshot,
    /// `targets`.
    Targets,
    /// A delegated role (`revocations`, `authors`, an author id).
    Delegated(String),
    /// A per-login session ticket (signed by a ticket key from `kasane/host-keys.json`).
    Ticket,
}

impl fmt::Display for RoleName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Root => f.write_str("root"),
            Self::Timestamp => f.write_str("timestamp"),
            Self::Snapshot => f.write_str("snapshot"),
            Self::Targets => f.write_str("targets"),
            Self::Delegated(r) => f.write_str(r),
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
    /// A key file is malformed.
    #[error("bad key file: {0}")]
    BadKeyFile(&'static str),

    // ---- versions, time and consistency ----
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
    /// An author lists a module, or delegates a prefix, outside its own delegated prefix
    /// (`<id>/<name>`, one component below the author's id).
    #[error("authors/{author}: {name:?} is outside the delegated prefix {prefix:?}")]
    DelegationPrefix {
        /// The author.
        author: String,
        /// The name outside the prefix.
        name: String,
        /// The prefix delegated to the author.
        prefix: String,
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
    /// The module's hash is revoked.
    #[error("module {sha256} is revoked")]
    Revoked {
        /// The revoked hash (lowercase hex).
        sha256: String,
    },
    /// The ticket was issued for another login (not this client's nonce).
    #[error("ticket nonce does not match this login")]
    NonceMismatch,
    /// The ticket has expired, is not yet valid, or claims too long a lifetime (beyond
    /// [`TICKET_CLOCK_SKEW`](crate::trust::TICKET_CLOCK_SKEW) either way: the device's clock
    /// may be off).
    #[error("ticket expired or not yet valid (is this device's clock right?)")]
    TicketExpired,

    // ---- TUF ----
    /// The TUF workflow refused metadata or a target (rollback, freeze, threshold,
    /// mix-and-match, unknown target, …): the typed reason is inside.
    #[error("TUF: {0}")]
    Tuf(#[from] kasane_tuf::TufError),
    /// A signer failed (a key file, a token).
    #[error("signing: {0}")]
    Sign(#[from] kasane_tuf::SignError),
    /// A key file or token could not be opened or used.
    #[error("signer: {0}")]
    Signer(#[from] kasane_signer::SignerError),
    /// A role's threshold is zero or above its number of keys.
    #[error("{role}: threshold {threshold} with {keys} keys")]
    BadThreshold {
        /// The role.
        role: String,
        /// The threshold asked for.
        threshold: u64,
        /// How many keys the role has.
        keys: usize,
    },
    /// A new role file does not have a higher version than the one it replaces.
    #[error("{role}: version {new} does not follow the current version {current}")]
    VersionNotIncreasing {
        /// The role.
        role: String,
        /// The current version.
        current: u64,
        /// The version offered.
        new: u64,
    },
    /// A target names no transform (no `custom.kasane`).
    #[error("target {name:?} is not a transform (no custom.kasane)")]
    NotATransform {
        /// The target path.
        name: String,
    },
    /// The ticket is not signed by any ticket key of `kasane/host-keys.json`.
    #[error("ticket not signed by a host ticket key")]
    TicketSignature,
    /// The ticket names other timestamp or snapshot versions than the trusted ones.
    #[error("ticket names timestamp {ticket:?}, the trust store has {trusted:?}")]
    TicketVersions {
        /// (timestamp, snapshot) versions in the ticket.
        ticket: (u64, u64),
        /// (timestamp, snapshot) versions trusted.
        trusted: (u64, u64),
    },
    /// The module is listed with another hash or length than the ticket names.
    #[error("ticket names a module the trusted metadata lists otherwise")]
    TicketModule,

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
