//! [`ClientError`]: every way connecting, logging in or messaging can fail, one variant per cause.

use kasane_protocol::RefusalReason;

/// An error from the client runtime. Each variant names one cause; the `String`s carry the
/// detail (never a secret).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The configuration is unusable (not an `https://` URL, unreadable CA PEM, …).
    #[error("invalid client configuration: {0}")]
    Config(String),
    /// The host's TLS certificate does not verify against the configured trust anchor.
    #[error("host certificate refused: {0}")]
    BadCertificate(String),
    /// The TCP or TLS connection to the host failed.
    #[error("cannot connect to the host: {0}")]
    Connect(String),
    /// A request took longer than the configured timeout.
    #[error("request timed out")]
    TimedOut,
    /// The transform module (or its ticket) is not trusted by the pinned registry.
    #[error("untrusted transform module: {0}")]
    UntrustedModule(String),
    /// The registry revoked the transform module.
    #[error("transform module revoked: {0}")]
    Revoked(String),
    /// The registry metadata could not be fetched or does not verify.
    #[error("registry trust update failed: {0}")]
    Registry(String),
    /// The host's signed ephemeral key does not verify with the trusted host key.
    #[error("host key does not verify (hello signature or unknown host key)")]
    HostKey,
    /// The host refused at the password step, before checking (rate limit or lockout).
    #[error("login throttled: the host refused before checking the password")]
    Throttled,
    /// The host refused the responses: wrong password or wrong answers.
    #[error("login refused: wrong password or wrong answers")]
    LoginRefused,
    /// The host's confirm does not verify: the host did not derive the same session key.
    #[error("host confirm does not verify")]
    Confirm,
    /// The sandbox refused to compile or run the transform.
    #[error("transform sandbox: {0}")]
    Sandbox(String),
    /// The host refused a message-API request.
    #[error("host refused the request: {0}")]
    Refused(RefusalReason),
    /// A received sealed message was refused locally (replayed, reordered, altered, …).
    #[error("received message refused: {0}")]
    Incoming(RefusalReason),
    /// The host broke the protocol (unexpected status, undecodable body, …).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A local file operation failed (trust state, compile cache).
    #[error("i/o error: {0}")]
    Io(String),
    /// The responder could not supply a password or an answer.
    #[error("input: {0}")]
    Input(String),
}
