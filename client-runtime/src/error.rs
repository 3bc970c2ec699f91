//! [`ClientError`]: every way connecting, logging in or messaging can fail, one variant per
//! class of cause, each keeping the error that caused it (`source()`), so a caller can match
//! on the class and print the whole chain.
//!
//! The `Display` of each error says only its own step; the cause follows through
//! [`std::error::Error::source`] (print with `{:#}` in anyhow, or walk the chain).

use std::io;
use std::path::PathBuf;

use kasane_protocol::{ProtocolError, RefusalReason};
use kasane_registry::RegistryError;
use kasane_sandbox::SandboxError;

/// An error from the client runtime. Each variant names one class of cause and keeps it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration is unusable (not an `https://` URL, unreadable CA PEM, …).
    #[error("invalid client configuration")]
    Config(#[from] ConfigError),
    /// The host's TLS certificate does not verify against the configured trust anchor
    /// (always a [`rustls::Error::InvalidCertificate`], naming the reason).
    #[error("host certificate refused")]
    BadCertificate(#[source] rustls::Error),
    /// The TCP, TLS or HTTP connection to the host failed.
    #[error("cannot connect to the host")]
    Connect(#[from] ConnectError),
    /// A request took longer than the configured timeout.
    #[error("request timed out")]
    TimedOut,
    /// The transform module (or its ticket) is not trusted by the pinned registry.
    #[error("untrusted transform module")]
    UntrustedModule(#[from] ModuleRefused),
    /// The registry revoked the transform module (or every key of its author):
    /// [`RegistryError::Revoked`] or [`RegistryError::AuthorRevoked`].
    #[error("transform module revoked")]
    Revoked(#[source] RegistryError),
    /// The registry metadata could not be fetched or does not verify.
    #[error("registry trust update failed")]
    Registry(#[from] RegistryUpdateError),
    /// The host's signed start response does not verify with a trusted host key.
    #[error("host key does not verify (start signature or unknown host key)")]
    HostKey,
    /// The password step failed: a wrong password, an unknown user, or a user or address the
    /// host has locked after failed logins — OPAQUE makes these look the same, by design.
    #[error("login refused: wrong password, unknown user, or locked after failed logins")]
    PasswordRefused,
    /// The host refused the responses (wrong answers), or a login step it no longer had.
    #[error("login refused: wrong answers")]
    LoginRefused,
    /// The host's confirm does not verify: the host did not derive the same session key.
    #[error("host confirm does not verify")]
    Confirm,
    /// The sandbox refused to compile or run the transform.
    #[error("transform sandbox")]
    Sandbox(#[from] SandboxError),
    /// Blocking work (compiling or running the transform, OPAQUE's argon2id) panicked or
    /// was cancelled.
    #[error("a blocking task of the login failed")]
    Task(#[from] kasane_os::blocking::Aborted),
    /// The host refused a message-API request.
    #[error("host refused the request: {0}")]
    Refused(RefusalReason),
    /// A received sealed message was refused locally (replayed, reordered, altered, …).
    #[error("received message refused: {0}")]
    Incoming(RefusalReason),
    /// The exchange with the host broke the protocol (unexpected status, undecodable body, …).
    #[error("protocol error")]
    Protocol(#[from] ProtocolFailure),
    /// A local file operation failed (state directory, temporary trust directory, compile
    /// cache).
    #[error("local file error")]
    Io(#[from] FileError),
    /// The responder could not supply a password or an answer.
    #[error("input")]
    Input(#[from] InputError),
}

/// Why the configuration is unusable ([`ClientError::Config`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The server URL is not `https://host[:port]`.
    #[error("{url:?}: {problem}")]
    BadUrl {
        /// The URL as configured.
        url: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The server URL's port is not a number from 0 to 65535.
    #[error("{url:?}: bad port")]
    BadPort {
        /// The URL as configured.
        url: String,
        /// The parse failure.
        #[source]
        source: std::num::ParseIntError,
    },
    /// The name to check in the host's certificate is not a valid TLS server name.
    #[error("{name:?} is not a valid TLS server name")]
    BadServerName {
        /// The name.
        name: String,
        /// The check that refused it.
        #[source]
        source: rustls::pki_types::InvalidDnsNameError,
    },
    /// The CA PEM could not be read.
    #[error("CA certificate PEM unreadable")]
    CaPem(#[source] rustls::pki_types::pem::Error),
    /// A certificate of the CA PEM was refused as a trust anchor.
    #[error("CA certificate refused")]
    CaCertificate(#[source] rustls::Error),
    /// The CA PEM holds no certificate.
    #[error("no certificate in the CA PEM")]
    NoCaCertificate,
    /// rustls refused the TLS settings.
    #[error("TLS configuration")]
    Tls(#[source] rustls::Error),
}

/// How connecting to the host failed ([`ClientError::Connect`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The TCP connection failed.
    #[error("TCP connection to {addr}")]
    Tcp {
        /// The `host:port` dialled.
        addr: String,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The TLS handshake failed (other than a refused certificate).
    #[error("TLS handshake")]
    Tls(#[source] rustls::Error),
    /// The connection failed during the TLS handshake.
    #[error("TLS handshake")]
    TlsIo(#[source] io::Error),
    /// The TLS exporter (channel binding) could not be derived.
    #[error("TLS exporter")]
    Exporter(#[source] rustls::Error),
    /// The HTTP/1.1 handshake failed.
    #[error("HTTP handshake")]
    Handshake(#[source] hyper::Error),
    /// The connection failed while sending a request or waiting for the response head.
    #[error("request")]
    Request(#[source] hyper::Error),
}

/// How the exchange with the host broke the protocol ([`ClientError::Protocol`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolFailure {
    /// A step got an HTTP status the protocol does not allow there.
    #[error("{step}: unexpected HTTP status {status}")]
    UnexpectedStatus {
        /// The step (`start`, `finish`, `send`, …).
        step: &'static str,
        /// The status code.
        status: u16,
    },
    /// The protocol library refused a message (undecodable, failed check, too large, …).
    #[error("protocol message")]
    Message(#[from] ProtocolError),
    /// The response body is larger than the client reads.
    #[error("response body larger than {max} bytes")]
    BodyTooLarge {
        /// The cap.
        max: usize,
    },
    /// Reading the response body failed.
    #[error("reading the response body")]
    Body(#[source] hyper::Error),
    /// The HTTP request could not be built.
    #[error("building the request")]
    Request(#[source] hyper::http::Error),
}

/// Why a module or its ticket is not trusted ([`ClientError::UntrustedModule`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModuleRefused {
    /// The trust store refused the ticket or the module bytes.
    #[error("the registry refused the ticket or the module")]
    Registry(#[from] RegistryError),
    /// The bundle describes the module otherwise than its trusted registry entry.
    #[error("the bundle's module does not match the trusted entry for {name}")]
    BundleMismatch {
        /// The module name of the trusted entry.
        name: String,
    },
}

/// Why the trust update failed ([`ClientError::Registry`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryUpdateError {
    /// The trust store refused (a file does not verify, a rollback, an expired role, its
    /// state file, …).
    #[error("trust store")]
    Trust(#[from] RegistryError),
    /// The update asked for a file name this client does not fetch.
    #[error("unexpected file name {path:?}")]
    UnsafePath {
        /// The name asked for.
        path: String,
    },
    /// The host sent a file larger than the update allows for it.
    #[error("{path} is larger than {max} bytes")]
    TooLarge {
        /// The file.
        path: String,
        /// The cap.
        max: u64,
    },
    /// The host answered a registry request with an unexpected status.
    #[error("GET {path}: HTTP {status}")]
    Status {
        /// The file.
        path: String,
        /// The status code.
        status: u16,
    },
    /// The update asked for more files than any real repository needs.
    #[error("the update needs more than {attempts} files")]
    TooManyFiles {
        /// The most attempts made.
        attempts: usize,
    },
}

/// A local file operation that failed ([`ClientError::Io`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// A file-system call failed.
    #[error("{what} {}", path.display())]
    Io {
        /// What was being done (`creating the state directory`, …).
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl FileError {
    /// A failed file-system call on `path`.
    pub fn io(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Io {
            what,
            path: path.into(),
            source,
        }
    }
}

/// Why a [`crate::Responder`] could not supply a password or an answer ([`ClientError::Input`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The code card has no cell for a prompt.
    #[error("the code card has no cell {prompt:?}")]
    NoCell {
        /// The prompt.
        prompt: String,
    },
    /// Reading the input failed (no terminal, closed input, …).
    #[error("{what}")]
    Read {
        /// What could not be done, and what to do instead.
        what: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl From<tokio::task::JoinError> for ClientError {
    fn from(e: tokio::task::JoinError) -> Self {
        Self::Task(e.into())
    }
}

impl From<RegistryError> for ClientError {
    /// A trust store refusal: revocations and module refusals keep their own class, anything
    /// else is a failed trust update.
    fn from(e: RegistryError) -> Self {
        match e {
            RegistryError::Revoked { .. } => ClientError::Revoked(e),
            RegistryError::HashMismatch
            | RegistryError::LengthMismatch { .. }
            | RegistryError::NotListed { .. }
            | RegistryError::NonceMismatch
            | RegistryError::TicketExpired
            | RegistryError::TicketSignature
            | RegistryError::TicketModule => ClientError::UntrustedModule(e.into()),
            other => ClientError::Registry(other.into()),
        }
    }
}

impl From<ProtocolError> for ClientError {
    fn from(e: ProtocolError) -> Self {
        ClientError::Protocol(e.into())
    }
}

impl ClientError {
    /// A refusal while checking this login's ticket or admitting its module: revoked, or
    /// (whatever else the trust store says) untrusted.
    pub(crate) fn admission(e: RegistryError) -> Self {
        match e {
            RegistryError::Revoked { .. } => ClientError::Revoked(e),
            other => ClientError::UntrustedModule(other.into()),
        }
    }

    /// A step's HTTP status the protocol does not allow there.
    pub(crate) fn unexpected(step: &'static str, status: hyper::StatusCode) -> Self {
        ProtocolFailure::UnexpectedStatus {
            step,
            status: status.as_u16(),
        }
        .into()
    }
}
