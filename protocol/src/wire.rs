//! Wire messages: serde + postcard bodies behind a two-byte header `[version, kind]`.
//!
//! Every message implements [`Message`]: [`Message::encode`] writes the header and the
//! postcard body; [`Message::decode`] checks the size cap of the kind first, then the
//! version ([`ProtocolError::UnsupportedVersion`]) and kind, decodes the body, refuses trailing
//! bytes and checks every field limit. Decoding never panics. The byte layout is documented in
//! `docs/PROTOCOL.md`.

use serde::de::{self, DeserializeOwned, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};

use crate::error::ProtocolError;
use crate::limits::MAX_PLAINTEXT_LEN;
use kasane_abi::Direction;

pub use crate::limits::{
    ID_LEN, MAX_CIPHERTEXT_LEN, MAX_PASSWORD_LEN, MAX_RECIPIENT_LEN, MAX_USER_ID_LEN, Shown,
    is_hidden, is_recipient, is_user_name,
};
pub use crate::opaque::{KE1_LEN, KE2_LEN, KE3_LEN};

/// The protocol version every message carries in its first byte.
pub const PROTOCOL_VERSION: u8 = 2;
/// Most profiles a client may announce.
pub const MAX_PROFILES: usize = 4;
/// Most challenges in a bundle (the abi's list limit).
pub const MAX_CHALLENGES: usize = kasane_abi::MAX_LIST_ITEMS;
/// Longest challenge prompt, bytes (also the abi's item limit applies).
pub const MAX_PROMPT_LEN: usize = 256;
/// Longest per-pair salt, bytes.
pub const MAX_SALT_LEN: usize = 64;
/// Longest session ticket, bytes (the registry's cap).
pub const MAX_TICKET_LEN: usize = 4 * 1024;
/// Longest module name, bytes.
pub const MAX_MODULE_NAME_LEN: usize = 128;
/// Longest params (the abi's limit).
pub const MAX_PARAMS_LEN: usize = kasane_abi::MAX_PARAMS_LEN;

pub use kasane_abi::Profile;

/// A wire message: a kind byte, a size cap, a transcript label and field limits.
pub trait Message: Serialize + DeserializeOwned {
    /// The second header byte.
    const KIND: u8;
    /// Longest encoding, header included.
    const MAX_LEN: usize;
    /// The label under which the message enters the transcript.
    const LABEL: &'static [u8];

    /// Checks every field against its documented limit.
    fn validate(&self) -> Result<(), ProtocolError>;

    /// Encodes `[PROTOCOL_VERSION, KIND] ‖ postcard(self)`, refusing fields over their limits.
    fn encode(&self) -> Result<Vec<u8>, ProtocolError> {
        self.validate()?;
        let out = postcard::to_extend(self, vec![PROTOCOL_VERSION, Self::KIND])
            .map_err(ProtocolError::Encode)?;
        if out.len() > Self::MAX_LEN {
            return Err(ProtocolError::TooLarge {
                len: out.len(),
                max: Self::MAX_LEN,
            });
        }
        Ok(out)
    }

    /// Decodes and validates one message. Never panics.
    fn decode(bytes: &[u8]) -> Result<Self, ProtocolError> {
        if bytes.len() > Self::MAX_LEN {
            return Err(ProtocolError::TooLarge {
                len: bytes.len(),
                max: Self::MAX_LEN,
            });
        }
        let Some((&[version, kind], body)) = bytes.split_first_chunk::<2>() else {
            return Err(ProtocolError::Truncated);
        };
        if version != PROTOCOL_VERSION {
            return Err(ProtocolError::UnsupportedVersion(version));
        }
        if kind != Self::KIND {
            return Err(ProtocolError::UnexpectedKind {
                expected: Self::KIND,
                got: kind,
            });
        }
        let (msg, rest) =
            postcard::take_from_bytes::<Self>(body).map_err(ProtocolError::Malformed)?;
        if !rest.is_empty() {
            return Err(ProtocolError::TrailingBytes(rest.len()));
        }
        msg.validate()?;
        Ok(msg)
    }
}

fn check(ok: bool, field: &'static str) -> Result<(), ProtocolError> {
    if ok {
        Ok(())
    } else {
        Err(ProtocolError::FieldRange { field })
    }
}

/// Step 1, client to host: the user name, OPAQUE's KE1, a nonce, the profiles the client can run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartRequest {
    /// The user name ([`is_user_name`]: UTF-8, 1..=[`MAX_USER_ID_LEN`] bytes, nothing
    /// [`is_hidden`]; OPAQUE's credential identifier).
    pub user_id: String,
    /// OPAQUE KE1 ([`KE1_LEN`] bytes).
    pub ke1: Vec<u8>,
    /// The client's nonce (fresh per login; the session ticket binds it).
    pub client_nonce: [u8; 32],
    /// Transform profiles the client can run, 1..=[`MAX_PROFILES`], no repeats.
    pub profiles: Vec<Profile>,
    /// The client can bind the channel (it reads its connection's TLS exporter); `false`
    /// from a browser, which cannot. The host binds only when this is set and its own
    /// configuration says so; the host's start signature covers these bytes, so no one on
    /// the path can clear the flag to turn binding off.
    pub can_bind: bool,
}

impl Message for StartRequest {
    const KIND: u8 = 1;
    // Header, user id (two-byte varint length at 256 bytes), KE1 (one-byte length), nonce,
    // profiles (one-byte count), the binding flag: 395 bytes for the longest user id.
    const MAX_LEN: usize = 2 + (2 + MAX_USER_ID_LEN) + (1 + KE1_LEN) + 32 + (1 + MAX_PROFILES) + 1;
    const LABEL: &'static [u8] = b"start-request";

    fn validate(&self) -> Result<(), ProtocolError> {
        check(is_user_name(&self.user_id), "user_id")?;
        check(self.ke1.len() == KE1_LEN, "ke1")?;
        let n = self.profiles.len();
        let distinct = self
            .profiles
            .iter()
            .enumerate()
            .all(|(i, p)| !self.profiles[..i].contains(p));
        check((1..=MAX_PROFILES).contains(&n) && distinct, "profiles")
    }
}

/// A 64-byte Ed25519 signature (serde has no derive for arrays over 32).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature64(pub [u8; 64]);

impl std::fmt::Debug for Signature64 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signature64(")?;
        for b in &self.0[..8] {
            write!(f, "{b:02x}")?;
        }
        write!(f, "…)")
    }
}

impl Serialize for Signature64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(64)?;
        for b in &self.0 {
            t.serialize_element(b)?;
        }
        t.end()
    }
}

impl<'de> Deserialize<'de> for Signature64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Signature64;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("64 bytes")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Signature64, A::Error> {
                let mut out = [0u8; 64];
                for (i, slot) in out.iter_mut().enumerate() {
                    *slot = seq
                        .next_element()?
                        .ok_or_else(|| de::Error::invalid_length(i, &self))?;
                }
                Ok(Signature64(out))
            }
        }
        d.deserialize_tuple(64, V)
    }
}

/// Step 1, host to client: OPAQUE's KE2 and the host's nonce, signed by the host role key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartResponse {
    /// Names this login in the next request (host-chosen, random).
    pub login_id: [u8; ID_LEN],
    /// OPAQUE KE2 ([`KE2_LEN`] bytes).
    pub ke2: Vec<u8>,
    /// The host's nonce.
    pub server_nonce: [u8; 32],
    /// True when the TLS exporter value enters OPAQUE's context and the transcript (no
    /// TLS-terminating proxy).
    pub channel_binding: bool,
    /// The host role's Ed25519 public key (its key id is SHA-256 of these bytes).
    pub host_public_key: [u8; 32],
    /// Ed25519 signature by that key over [`crate::transcript::start_signature_digest`].
    pub signature: Signature64,
}

impl StartResponse {
    /// The host key id: SHA-256 of the raw public key (as in the registry).
    pub fn host_key_id(&self) -> [u8; 32] {
        Sha256::digest(self.host_public_key).into()
    }
}

impl Message for StartResponse {
    const KIND: u8 = 2;
    const MAX_LEN: usize = 512;
    const LABEL: &'static [u8] = b"start-response";

    fn validate(&self) -> Result<(), ProtocolError> {
        check(self.ke2.len() == KE2_LEN, "ke2")
    }
}

/// Step 2, client to host: OPAQUE's KE3 (the client proves the password).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinishRequest {
    /// The login id from [`StartResponse::login_id`].
    pub login_id: [u8; ID_LEN],
    /// OPAQUE KE3 ([`KE3_LEN`] bytes).
    pub ke3: Vec<u8>,
}

impl Message for FinishRequest {
    const KIND: u8 = 3;
    const MAX_LEN: usize = 96;
    const LABEL: &'static [u8] = b"finish-request";

    fn validate(&self) -> Result<(), ProtocolError> {
        check(self.ke3.len() == KE3_LEN, "ke3")
    }
}

/// Step 2, host to client: the encoded [`ChallengeBundle`] under AES-256-GCM with the bundle
/// key (derived from OPAQUE's session key; see `schedule::bundle_key`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedBundle {
    /// Ciphertext and tag.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

impl Message for SealedBundle {
    const KIND: u8 = 4;
    const MAX_LEN: usize = ChallengeBundle::MAX_LEN + 32;
    const LABEL: &'static [u8] = b"sealed-bundle";

    fn validate(&self) -> Result<(), ProtocolError> {
        check(
            (16..=ChallengeBundle::MAX_LEN + 16).contains(&self.ciphertext.len()),
            "ciphertext",
        )
    }
}

/// One challenge of a bundle: what to show the user and the salt that turns the user's
/// response into its verifier.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    /// The challenge code shown (also the bytes given to the transform).
    pub prompt: String,
    /// The per-pair salt for the response verifier.
    pub salt: Vec<u8>,
}

/// The module a bundle names and its limits (copied from its registry entry).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModuleRef {
    /// The module's registry name.
    pub name: String,
    /// Its SHA-256.
    pub sha256: [u8; 32],
    /// Its length in bytes.
    pub length: u64,
    /// Its profile.
    pub profile: Profile,
    /// Fuel budget per derive.
    pub fuel: u64,
    /// Linear memory limit, bytes.
    pub memory: u64,
}

/// Step 2, host to client (inside a [`SealedBundle`]): the challenges, counter, timestamp and
/// chosen transform.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChallengeBundle {
    /// Names this bundle in the response (host-chosen, random; single use).
    pub bundle_id: [u8; ID_LEN],
    /// 1..=[`MAX_CHALLENGES`] challenges.
    pub challenges: Vec<Challenge>,
    /// The user's access counter (strictly increasing, persisted before this is sent).
    pub counter: u64,
    /// The host's clock, unix seconds.
    pub timestamp: u64,
    /// The signed session ticket (registry envelope bytes; verified by the client runtime).
    pub ticket: Vec<u8>,
    /// The chosen module.
    pub module: ModuleRef,
    /// The module's params (from its registry entry).
    pub params: Vec<u8>,
    /// The bundle's expiry, unix seconds (host clock).
    pub expires: u64,
}

impl Message for ChallengeBundle {
    const KIND: u8 = 14;
    const MAX_LEN: usize = 24 * 1024;
    const LABEL: &'static [u8] = b"challenge-bundle";

    fn validate(&self) -> Result<(), ProtocolError> {
        check(
            (1..=MAX_CHALLENGES).contains(&self.challenges.len()),
            "challenges",
        )?;
        for c in &self.challenges {
            check((1..=MAX_PROMPT_LEN).contains(&c.prompt.len()), "prompt")?;
            check(c.salt.len() <= MAX_SALT_LEN, "salt")?;
        }
        check(self.ticket.len() <= MAX_TICKET_LEN, "ticket")?;
        check(
            (1..=MAX_MODULE_NAME_LEN).contains(&self.module.name.len()),
            "module.name",
        )?;
        check(self.params.len() <= MAX_PARAMS_LEN, "params")
    }
}

/// Step 3, client to host: the receipt for a bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseRequest {
    /// The bundle answered.
    pub bundle_id: [u8; ID_LEN],
    /// `HMAC(K_receipt, transcript_hash)`.
    pub receipt: [u8; 32],
}

impl Message for ResponseRequest {
    const KIND: u8 = 5;
    const MAX_LEN: usize = 64;
    const LABEL: &'static [u8] = b"response-request";

    fn validate(&self) -> Result<(), ProtocolError> {
        Ok(())
    }
}

/// Step 3, host to client: the session token and the host's confirm.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseAccept {
    /// The bearer token of the new session (its session id is derived from it).
    pub session_token: [u8; 32],
    /// `HMAC(K_confirm, transcript_hash_after_response)`.
    pub confirm: [u8; 32],
}

impl std::fmt::Debug for ResponseAccept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseAccept").finish_non_exhaustive()
    }
}

impl Message for ResponseAccept {
    const KIND: u8 = 6;
    const MAX_LEN: usize = 80;
    const LABEL: &'static [u8] = b"response-accept";

    fn validate(&self) -> Result<(), ProtocolError> {
        Ok(())
    }
}

/// The one answer to any failed login step: it says nothing about why.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginFailure;

impl Message for LoginFailure {
    const KIND: u8 = 7;
    const MAX_LEN: usize = 2;
    const LABEL: &'static [u8] = b"login-failure";

    fn validate(&self) -> Result<(), ProtocolError> {
        Ok(())
    }
}

/// A message sealed for one direction of a session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedMessage {
    /// The session it belongs to.
    pub session_id: [u8; ID_LEN],
    /// Client to host (0) or host to client (1).
    #[serde(with = "direction_byte")]
    pub direction: Direction,
    /// Sequence number in that direction, strictly increasing from 1.
    pub seq: u64,
    /// The final recipient's user id (empty: the host itself).
    pub recipient: String,
    /// AES-256-GCM ciphertext and tag.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

impl Message for SealedMessage {
    const KIND: u8 = 8;
    const MAX_LEN: usize = MAX_CIPHERTEXT_LEN + MAX_RECIPIENT_LEN + 64;
    const LABEL: &'static [u8] = b"sealed-message";

    fn validate(&self) -> Result<(), ProtocolError> {
        check(self.seq >= 1, "seq")?;
        check(is_recipient(&self.recipient), "recipient")?;
        check(
            (16..=MAX_CIPHERTEXT_LEN).contains(&self.ciphertext.len()),
            "ciphertext",
        )
    }
}

mod direction_byte {
    use super::*;

    pub(super) fn serialize<S: Serializer>(d: &Direction, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(d.as_u8())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Direction, D::Error> {
        let b = u8::deserialize(d)?;
        Direction::from_u8(b).ok_or_else(|| de::Error::custom("direction must be 0 or 1"))
    }
}

// --- Messages after login (issue 6; docs/PROTOCOL.md §13) ---

/// Most messages in one [`Inbox`].
pub const MAX_INBOX_MESSAGES: usize = 64;
/// Longest encoded [`Inbox`]; a host stops adding messages before it would pass this.
pub const MAX_INBOX_LEN: usize = 8 * 1024 * 1024;
/// Most ids in one [`InboxAck`].
pub const MAX_ACK_IDS: usize = 1024;

/// The host's answer to a sealed message it accepted (stored in the audit log and, for a
/// relayed message, queued): from here on the message is not lost.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageAccepted {
    /// The sequence number accepted (the one the client sent).
    pub seq: u64,
    /// The host's time of acceptance, unix seconds.
    pub received_at: u64,
}

impl Message for MessageAccepted {
    const KIND: u8 = 9;
    const MAX_LEN: usize = 2 + 10 + 10;
    const LABEL: &'static [u8] = b"message-accepted";

    fn validate(&self) -> Result<(), ProtocolError> {
        check(self.seq >= 1, "seq")
    }
}

/// Why the host refused a sealed message (or an inbox request). Unlike a login failure this
/// is specific: the session is authenticated, and the sender needs to know what to fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RefusalReason {
    /// The body did not decode as the expected message.
    Malformed,
    /// No live session for the bearer token (logged out, timed out, never existed).
    SessionEnded,
    /// The sealed message names another session than the bearer token's.
    WrongSession,
    /// The sealed message travels host → client.
    WrongDirection,
    /// The sequence number was already accepted; for a `PasswdFinish`, the record it replaces
    /// has been replaced since (by another change).
    Replayed,
    /// The sequence number is lower than one already accepted.
    Reordered,
    /// The message does not authenticate: altered in any field, or re-addressed.
    Altered,
    /// The plaintext is over the host's configured size.
    TooLarge,
    /// The host could not store it now (try again; nothing was kept).
    Unavailable,
    /// The recipient's queue is at the host's quota (try again once the recipient has read
    /// some; nothing was kept). A name with no user fills the same way, so this does not say
    /// whether the recipient exists.
    QueueFull,
    /// The sender has had the host's daily byte budget for one user audited today (UTC):
    /// try again after midnight UTC; nothing was kept.
    BudgetSpent,
}

impl RefusalReason {
    /// A short stable name (`replayed`, `altered`, …) for logs and CLI output.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::SessionEnded => "session-ended",
            Self::WrongSession => "wrong-session",
            Self::WrongDirection => "wrong-direction",
            Self::Replayed => "replayed",
            Self::Reordered => "reordered",
            Self::Altered => "altered",
            Self::TooLarge => "too-large",
            Self::Unavailable => "unavailable",
            Self::QueueFull => "queue-full",
            Self::BudgetSpent => "budget-spent",
        }
    }
}

impl std::fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The body of every refused message-API request (with a 4xx/503 status).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageRefused {
    /// Why.
    pub reason: RefusalReason,
}

impl Message for MessageRefused {
    const KIND: u8 = 10;
    const MAX_LEN: usize = 4;
    const LABEL: &'static [u8] = b"message-refused";

    fn validate(&self) -> Result<(), ProtocolError> {
        Ok(())
    }
}

/// What a relayed message carries inside the host → client seal: the host vouches for the
/// sender and the time it accepted the message.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Queue id: the client acknowledges it with [`InboxAck`] once it has the message.
    pub id: u64,
    /// The sending user.
    pub from: String,
    /// When the host accepted it, unix seconds.
    pub sent_at: u64,
    /// The sender's plaintext.
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("id", &self.id)
            .field("from", &self.from)
            .field("sent_at", &self.sent_at)
            .field("body_len", &self.body.len())
            .finish()
    }
}

impl Message for Delivery {
    const KIND: u8 = 11;
    const MAX_LEN: usize = MAX_PLAINTEXT_LEN;
    const LABEL: &'static [u8] = b"delivery";

    fn validate(&self) -> Result<(), ProtocolError> {
        check(self.id >= 1, "id")?;
        check(is_user_name(&self.from), "from")
    }
}

/// Overhead of a [`Delivery`] around its body: header, id, sender and time (upper bound).
pub const DELIVERY_OVERHEAD: usize = 2 + 10 + 2 + MAX_USER_ID_LEN + 10 + 5;
const _: () = assert!(crate::limits::MAX_BODY_LEN + DELIVERY_OVERHEAD <= MAX_PLAINTEXT_LEN);

/// Messages for the client, each sealed host → client for its session.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inbox {
    /// Sealed [`Delivery`]s, oldest first.
    pub messages: Vec<SealedMessage>,
    /// More are queued than fit in this answer.
    pub more: bool,
}

impl Message for Inbox {
    const KIND: u8 = 12;
    const MAX_LEN: usize = MAX_INBOX_LEN;
    const LABEL: &'static [u8] = b"inbox";

    fn validate(&self) -> Result<(), ProtocolError> {
        check(self.messages.len() <= MAX_INBOX_MESSAGES, "messages")?;
        self.messages.iter().try_for_each(Message::validate)
    }
}

/// The client's acknowledgement of delivered messages: the host deletes them from the queue.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InboxAck {
    /// [`Delivery::id`]s the client has opened and kept.
    pub ids: Vec<u64>,
}

impl Message for InboxAck {
    const KIND: u8 = 13;
    const MAX_LEN: usize = 2 + 5 + MAX_ACK_IDS * 10;
    const LABEL: &'static [u8] = b"inbox-ack";

    fn validate(&self) -> Result<(), ProtocolError> {
        check(!self.ids.is_empty() && self.ids.len() <= MAX_ACK_IDS, "ids")
    }
}

/// Length of an OPAQUE registration request, bytes.
pub const REGISTRATION_REQUEST_LEN: usize = 32;
/// Length of an OPAQUE registration response, bytes.
pub const REGISTRATION_RESPONSE_LEN: usize = 64;
/// Most pairs a re-enrollment may upload (a standard card has 40; the largest upload stays
/// under the host's default 64 KiB body limit).
pub const MAX_ENROLLED_PAIRS: usize = 128;
/// Largest encoding of one [`EnrolledPair`]: a prompt, a salt and a verifier at their limits.
const MAX_ENROLLED_PAIR_LEN: usize = 2 + MAX_PROMPT_LEN + 1 + MAX_SALT_LEN + 1 + 32;

/// `kasane passwd`, step 1, client to host (bearer session): OPAQUE's registration request
/// for the new password.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswdStart {
    /// OPAQUE registration request ([`REGISTRATION_REQUEST_LEN`] bytes).
    pub registration_request: Vec<u8>,
}

impl Message for PasswdStart {
    const KIND: u8 = 15;
    const MAX_LEN: usize = 2 + 1 + REGISTRATION_REQUEST_LEN;
    const LABEL: &'static [u8] = b"passwd-start";

    fn validate(&self) -> Result<(), ProtocolError> {
        check(
            self.registration_request.len() == REGISTRATION_REQUEST_LEN,
            "registration_request",
        )
    }
}

/// `kasane passwd`, step 1, host to client: OPAQUE's registration response, and which
/// credentials the change replaces.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswdChallenge {
    /// OPAQUE registration response ([`REGISTRATION_RESPONSE_LEN`] bytes).
    pub registration_response: Vec<u8>,
    /// SHA-256 of the user's OPAQUE record as the host holds it now. The client sends it back
    /// under the session's MAC ([`PasswdFinish::replaces`]), so that a change applies once:
    /// a record is never made twice, so a `PasswdFinish` sent again names a record the host
    /// no longer holds.
    pub replaces: [u8; 32],
}

impl Message for PasswdChallenge {
    const KIND: u8 = 16;
    const MAX_LEN: usize = 2 + 1 + REGISTRATION_RESPONSE_LEN + 32;
    const LABEL: &'static [u8] = b"passwd-challenge";

    fn validate(&self) -> Result<(), ProtocolError> {
        check(
            self.registration_response.len() == REGISTRATION_RESPONSE_LEN,
            "registration_response",
        )
    }
}

/// One pair of a new card as the host keeps it: the prompt, its salt, its keyed verifier.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrolledPair {
    /// The prompt (`A1` …).
    pub prompt: String,
    /// The pair's salt.
    pub salt: Vec<u8>,
    /// `HMAC(K_resp, u8(len(salt)) ‖ salt ‖ normalize(response))` under the new export key.
    pub verifier: Vec<u8>,
}

impl std::fmt::Debug for EnrolledPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrolledPair")
            .field("prompt", &self.prompt)
            .finish_non_exhaustive()
    }
}

/// `kasane passwd`, step 2, client to host (bearer session): the new OPAQUE record upload and
/// the new card's verifiers, authenticated by the session (`mac`, see
/// [`crate::SessionSecret::passwd_mac`], over this message encoded with `mac` all zero).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswdFinish {
    /// OPAQUE registration upload ([`crate::opaque::RECORD_LEN`] bytes).
    pub upload: Vec<u8>,
    /// The new card's pairs, 1..=[`MAX_ENROLLED_PAIRS`], prompts distinct.
    pub pairs: Vec<EnrolledPair>,
    /// [`PasswdChallenge::replaces`] of step 1: the record this change replaces.
    pub replaces: [u8; 32],
    /// The session's MAC.
    pub mac: [u8; 32],
}

impl Message for PasswdFinish {
    const KIND: u8 = 17;
    const MAX_LEN: usize = 2
        + 2
        + crate::opaque::RECORD_LEN
        + 2
        + MAX_ENROLLED_PAIRS * MAX_ENROLLED_PAIR_LEN
        + 32
        + 32;
    const LABEL: &'static [u8] = b"passwd-finish";

    fn validate(&self) -> Result<(), ProtocolError> {
        check(self.upload.len() == crate::opaque::RECORD_LEN, "upload")?;
        let n = self.pairs.len();
        check((1..=MAX_ENROLLED_PAIRS).contains(&n), "pairs")?;
        for (i, p) in self.pairs.iter().enumerate() {
            check((1..=MAX_PROMPT_LEN).contains(&p.prompt.len()), "prompt")?;
            check((8..=MAX_SALT_LEN).contains(&p.salt.len()), "salt")?;
            check(
                p.verifier.len() == crate::verifier::VERIFIER_LEN,
                "verifier",
            )?;
            check(
                !self.pairs[..i].iter().any(|q| q.prompt == p.prompt),
                "pairs",
            )?;
        }
        Ok(())
    }
}
const _: () = assert!(PasswdFinish::MAX_LEN <= 64 * 1024);
