//! [`HostError`]: what can go wrong in the host library (never sent to a client as is).

use std::path::PathBuf;

/// An error of the host library. Network answers never carry it: a failed login is the one
/// uniform failure answer, and details go to the log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HostError {
    /// The store failed.
    #[error("store")]
    Store(#[from] crate::store::StoreError),
    /// The registry could not be loaded or refused an operation.
    #[error("registry")]
    Registry(#[from] kasane_registry::RegistryError),
    /// The registry in the database (PostgreSQL) could not be read, imported or exported.
    #[error("registry in the database")]
    RegistryDb(#[from] crate::registry_db::RegistryDbError),
    /// The sandbox refused or failed a transform.
    #[error("sandbox")]
    Sandbox(#[from] kasane_sandbox::SandboxError),
    /// A protocol step failed.
    #[error("protocol")]
    Protocol(#[from] kasane_protocol::ProtocolError),
    /// Pruning the audit log (`[audit] retain_days`) failed.
    #[error("pruning the audit log")]
    AuditPrune(#[from] crate::audit_prune::PruneError),
    /// An I/O error on `path`.
    #[error("I/O on {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The listen address could not be bound (or its bound address not read).
    #[error("listening on {addr}")]
    Listen {
        /// The address, as configured.
        addr: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The configuration is invalid.
    #[error("configuration")]
    Config(#[from] ConfigError),
    /// `init` refuses a data directory that already has a configuration file.
    #[error("{path} exists: refusing to initialize over it")]
    AlreadyInitialized {
        /// The configuration file found.
        path: PathBuf,
    },
    /// The registry does not load, so no key could be checked against it (reload).
    #[error("the registry does not load: no key can be checked against it")]
    KeysUnchecked,
    /// A key file (`keys/host.key`, `keys/queue.key`, `keys/opaque.key`) is not usable.
    #[error("key file {path}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: KeyError,
    },
    /// A PEM file (TLS certificate chain or key) could not be read.
    #[error("PEM file {path}")]
    Pem {
        /// The PEM file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    /// rustls refused the TLS configuration (certificate and key, protocol versions).
    #[error("TLS configuration")]
    Tls(#[from] rustls::Error),
    /// The TLS certificate chain and key do not make a usable pair: the key is not the
    /// certificate's, rustls cannot use the key, or the certificate does not parse.
    #[error("TLS certificate {cert} and key {key} do not match or cannot be used")]
    TlsKey {
        /// The certificate chain file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
    /// The self-signed certificate could not be generated.
    #[error("certificate generation")]
    Certificate(#[from] rcgen::Error),
    /// A blocking task (enrollment, a transform) panicked or was cancelled.
    #[error("blocking task")]
    Task(#[from] tokio::task::JoinError),
    /// A lock of in-process state was poisoned by a thread that panicked holding it.
    #[error("{what} lock poisoned")]
    Poisoned {
        /// The state the lock guards.
        what: &'static str,
    },
    /// `[gateway] upstream` does not answer HTTP (checked when the host starts).
    #[error("gateway upstream {upstream} does not answer HTTP: {why}")]
    GatewayUpstream {
        /// The configured upstream.
        upstream: String,
        /// What the probe saw.
        why: String,
    },
    /// `user add` of a name that reads as an existing user's ([`crate::setup::refuse_look_alike`]).
    #[error(
        "user name \"{name}\" reads as the existing user \"{existing}\" (letters that look \
         alike, case ignored: Unicode UTS #39 confusables); choose another name"
    )]
    LookAlike {
        /// The name asked for, characters outside ASCII as code points (`a\u{430}`).
        name: String,
        /// The existing user it would pass for, spelled the same way.
        existing: String,
    },
    /// No active transform in the registry can be run by this client.
    #[error("no runnable transform for the client's profiles")]
    NoTransform,
    /// A module named by the registry is missing from the modules directory or does not
    /// match its entry.
    #[error("module {name} unavailable")]
    ModuleUnavailable {
        /// The registry name (or the module hash, in hex, for a file read by hash).
        name: String,
        /// Why the file could not be read; `None` when it was read but its length or hash
        /// does not match the entry.
        #[source]
        source: Option<kasane_registry::RegistryError>,
    },
}

impl HostError {
    /// An I/O error on `path`.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Self::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// A key file that is not usable.
    pub(crate) fn key(path: &std::path::Path, source: KeyError) -> Self {
        Self::Key {
            path: path.to_owned(),
            source,
        }
    }

    /// A failure to listen on `addr`.
    pub(crate) fn listen(addr: &str, source: std::io::Error) -> Self {
        Self::Listen {
            addr: addr.to_owned(),
            source,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The configuration file is not valid TOML or has unknown or mistyped fields.
    #[error("not a valid configuration file")]
    Parse(#[from] toml::de::Error),
    /// The configuration could not be written as TOML.
    #[error("cannot be written as TOML")]
    Serialize(#[from] toml::ser::Error),
    /// A numeric `KASANE_*` variable is not a number.
    #[error("{var}: not a number")]
    NotANumber {
        /// The variable.
        var: String,
        /// The cause.
        #[source]
        source: std::num::ParseIntError,
    },
    /// A `KASANE_*` variable that nothing reads (a typo such as `KASANE_LISTNE` would
    /// otherwise silently do nothing).
    #[error(
        "{name}: unknown KASANE_* variable (not a configuration override){}",
        other_program(name)
    )]
    UnknownVariable {
        /// The variable.
        name: String,
    },
    /// A boolean `KASANE_*` variable is neither true nor false.
    #[error("{var}: expected true or false")]
    NotABool {
        /// The variable.
        var: String,
    },
    /// `login.challenges_min..=challenges_max` is empty or beyond the protocol's limit.
    #[error(
        "login.challenges_min..=challenges_max ({min}..={max}) must be a non-empty range within 1..={}",
        kasane_protocol::wire::MAX_CHALLENGES
    )]
    ChallengeRange {
        /// `challenges_min`.
        min: u32,
        /// `challenges_max`.
        max: u32,
    },
    /// `max_body_bytes` is below 1024.
    #[error("max_body_bytes ({0}) below 1024")]
    BodyLimit(usize),
    /// `messages.max_body_bytes` is zero or beyond the protocol's 1 MiB.
    #[error("messages.max_body_bytes ({0}) must be within 1..=1048576")]
    MessageBodyLimit(usize),
    /// An `http.trusted_proxies` entry that is not a CIDR.
    #[error("http.trusted_proxies: {0:?} is not a network such as 10.0.0.0/8 or ::1/128")]
    TrustedProxy(String),
    /// `http.proxy_protocol` is on but no proxy is trusted to send the header.
    #[error(
        "http.proxy_protocol = true needs http.trusted_proxies (the load balancers that send the header)"
    )]
    ProxyProtocolWithoutProxies,
    /// A `[throttle]` value out of range.
    #[error(
        "[throttle]: decay_secs and base_secs must be 1 s to 100 years, max_secs at least base_secs and at most that, ipv6_prefix within 1..=128, ipv4_prefix within 1..=32"
    )]
    Throttle,
    /// A `[session]` or `[login]` lifetime (or `login.max_pending`) is zero or too long, or
    /// `session.max_per_user` under 2: a zero idle timeout, say, would end every session as
    /// soon as it began.
    #[error(
        "[session] idle_timeout_secs and absolute_timeout_secs, [login] hello_ttl_secs and bundle_ttl_secs must be 1 s to 100 years, login.max_pending at least 1 and session.max_per_user at least 2"
    )]
    Lifetimes,
    /// `messages.inbox_recheck_secs`, `max_inbox_reads_per_session` or
    /// `max_sends_per_session` is zero.
    #[error(
        "messages.inbox_recheck_secs, max_inbox_reads_per_session and max_sends_per_session must be at least 1"
    )]
    InboxRecheck,
    /// `messages.commit_max_batch` or `messages.commit_max_wait_us` is out of range.
    /// (The bounds are `config::MAX_COMMIT_BATCH` and `config::MAX_COMMIT_WAIT_US`.)
    #[error(
        "messages.commit_max_batch must be 1 to 4096 and messages.commit_max_wait_us at most 100000"
    )]
    GroupCommit,
    /// A `[gateway]` value is unusable: `what` says which and why.
    #[error("[gateway]: {what}")]
    Gateway {
        /// The field and the rule it breaks.
        what: &'static str,
    },
    /// `messages.max_queue_messages` is zero or `messages.max_queue_bytes` is below
    /// `messages.max_body_bytes`.
    #[error(
        "messages.max_queue_messages must be at least 1 and messages.max_queue_bytes at least messages.max_body_bytes"
    )]
    QueueQuota,
    /// `messages.max_user_bytes_per_day` could not hold the largest message, or the largest
    /// gateway request with the room it holds for its response, in one day.
    #[error(
        "messages.max_user_bytes_per_day must be at least {least} bytes: the largest audit record of a message (from messages.max_body_bytes) or, with a gateway, of a request with the room it holds for its response (from [gateway] max_body_bytes)"
    )]
    Budget {
        /// The smallest budget this configuration allows.
        least: u64,
    },
    /// `[audit]`: `retain_days` beyond 36500, or pruning on (`retain_days` > 0) with neither
    /// an `archive_dir` nor `archive = false`.
    #[error(
        "[audit]: retain_days must be at most 36500, and with retain_days > 0 set archive_dir (or archive = false to prune without a copy)"
    )]
    AuditRetention,
    /// An `[http]` limit is zero, or the idle timeout would cut off an inbox long-poll.
    #[error(
        "[http]: max_connections, max_streams and every timeout must be at least 1, and idle_timeout_secs more than the longest long-poll ({long_poll} s)"
    )]
    Http {
        /// The longest inbox long-poll, seconds.
        long_poll: u64,
    },
}

/// Why a key file (`keys/host.key`, `keys/queue.key`) is not usable; carried by
/// [`HostError::Key`] with the file's path.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A raw key file of the wrong length.
    #[error("a key file of the wrong length ({0} bytes)")]
    Length(usize),
    /// A raw key file of the right length whose content is not a valid key.
    #[error("not a valid key")]
    Invalid,
    /// A signing key the registry does not list for its role (`identity` or `ticket` in
    /// `kasane/host-keys.json`; `online`: root's timestamp and snapshot roles), so clients
    /// would refuse what it signs.
    #[error(
        "the registry does not list this key for the {0} role (list it first: docs/OPERATIONS.md, \"Rotate keys\")"
    )]
    NotListed(&'static str),
    /// No such file, while a key of this role is in use.
    #[error("no such file")]
    Missing,
    /// Another key than the one the database's queued messages are sealed with: every
    /// replica must use the same `keys/queue.key` (copy it from the first host).
    #[error(
        "not the queue key this database's messages are sealed with (copy keys/queue.key from the host that first used this database)"
    )]
    OtherQueueKey,
    /// `keys/opaque.key` is not the key this database's users were enrolled under: every
    /// login would fail like a wrong password (and count against the user's throttle on
    /// every replica). Typically a replica or an admin machine that made a fresh key.
    #[error(
        "not the OPAQUE key this database's users were enrolled under (copy keys/opaque.key from the host that first used this database)"
    )]
    OtherOpaqueKey,
}

/// What an unknown variable is, when another Kasane program reads it (set in the same shell).
fn other_program(name: &str) -> &'static str {
    match name {
        "KASANE_CONFIG" => {
            "; KASANE_CONFIG is the kasane client's config file: the host's configuration is \
             kasane.toml in its data directory (--data or KASANE_DATA)"
        }
        _ => "",
    }
}
