//! [`ProtocolError`]: every way a message, a key step or a sealed message can be refused.
//!
//! These are for logs and for the state machines. What crosses the network after a failed
//! login is always the one uniform [`LoginFailure`](crate::wire::LoginFailure).

/// An error from decoding, the key schedule, sealing or the login state machines.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// The encoded message is longer than the cap for its kind.
    #[error("message of {len} bytes, at most {max} allowed")]
    TooLarge {
        /// Length received.
        len: usize,
        /// Cap for this kind of message.
        max: usize,
    },
    /// The message is shorter than its two-byte header.
    #[error("message shorter than its header")]
    Truncated,
    /// The header names a protocol version this crate does not speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u8),
    /// The header names another kind of message than the one expected here.
    #[error("expected message kind {expected}, got {got}")]
    UnexpectedKind {
        /// Kind byte expected.
        expected: u8,
        /// Kind byte received.
        got: u8,
    },
    /// The body is not valid postcard for this message.
    #[error("malformed message body")]
    Malformed(#[source] postcard::Error),
    /// Bytes remain after the message body.
    #[error("{0} trailing bytes after the message")]
    TrailingBytes(usize),
    /// A field is outside its documented limits.
    #[error("field {field} out of range")]
    FieldRange {
        /// The field's name.
        field: &'static str,
    },
    /// A message could not be encoded (a field over its limit).
    #[error("message could not be encoded")]
    Encode(#[source] postcard::Error),
    /// The host's signature over its start response does not verify with the expected host key.
    #[error("host signature does not verify")]
    BadSignature,
    /// The host's public key is not a valid Ed25519 key, or not the expected one.
    #[error("unexpected or invalid host key")]
    HostKey,
    /// OPAQUE refused a step: KE2 did not open (wrong password, unknown user), KE3 did not
    /// verify, or a value did not parse.
    #[error("OPAQUE refused the step (wrong password, unknown user, or a malformed value)")]
    Opaque,
    /// The host announced channel binding but no TLS exporter value was given, or the reverse.
    #[error("channel binding mismatch: host says {host}, local value present: {local}")]
    ChannelBinding {
        /// The flag in the host's signed start response.
        host: bool,
        /// Whether this side has an exporter value.
        local: bool,
    },
    /// AES-256-GCM refused to open (wrong key, altered ciphertext or associated data).
    #[error("authenticated decryption failed")]
    Decrypt,
    /// The receipt the client sent does not match the host's.
    #[error("receipt does not match")]
    ReceiptMismatch,
    /// The confirm the host sent does not match the client's.
    #[error("confirm does not match")]
    ConfirmMismatch,
    /// The response names another challenge bundle than the one sent.
    #[error("response for another challenge bundle")]
    BundleMismatch,
    /// The password request names another login than this one.
    #[error("password request for another login")]
    LoginMismatch,
    /// A transform returned key material of a length outside `1..=64`.
    #[error("transform output of {0} bytes, expected 1..=64")]
    TransformOutput(usize),
    /// The abi refused to encode a derive input (too many challenges, too long an item, …).
    #[error("derive input refused")]
    DeriveInput(#[from] kasane_abi::EncodeError),
    /// A sealed message belongs to another session.
    #[error("sealed message for another session")]
    WrongSession,
    /// A sealed message travels in the wrong direction for this side.
    #[error("sealed message in the wrong direction")]
    WrongDirection,
    /// A sealed message repeats the last accepted sequence number.
    #[error("replayed message (seq {seq})")]
    Replayed {
        /// The repeated sequence number.
        seq: u64,
    },
    /// A sealed message has a lower sequence number than one already accepted (or 0).
    #[error("reordered message (seq {seq}, last accepted {last})")]
    Reordered {
        /// Sequence number received.
        seq: u64,
        /// Last sequence number accepted.
        last: u64,
    },
    /// The sending sequence number would overflow.
    #[error("sequence numbers exhausted")]
    SequenceExhausted,
    /// The padding after decryption is malformed.
    #[error("malformed padding")]
    Padding,
    /// A plaintext is longer than a sealed message may carry.
    #[error("plaintext of {len} bytes, at most {max}")]
    PlaintextTooLong {
        /// Length given.
        len: usize,
        /// Cap.
        max: usize,
    },
}
