//! The login flow (hello → password → response), sessions and logout, over
//! `kasane-protocol`'s host state machines, as methods of [`Host`]. No HTTP here:
//! [`crate::server`] maps results to answers.
//!
//! - `hello`: step 1, [`Host::hello`].
//! - `password`: step 2, [`Host::password`] — open and check the password, pick the
//!   challenges (real or decoy), issue the bundle.
//! - `decoy`: what a decoy is made of (stable salts and counters for unknown users).
//! - `response`: step 3, [`Host::response`] — take the bundle, run the transform, check
//!   the receipt, open the session.
//! - `session`: [`StoredSession`], [`SessionInfo`], [`token_hash`]; [`Host::session`] and
//!   [`Host::logout`].
//! - `state`: the login kept in the store between steps (`StoredLogin`).
//! - `throttle`: locks after failed logins, per user and per source address.
//!
//! Every failure of a login step is one [`LoginError::Failed`], answered with the one
//! uniform [`LoginFailure`](kasane_protocol::LoginFailure); the reason goes to the log.
//! A wrong password and an unknown user are not refused at the password step: both get a
//! **decoy** bundle of the same shape (a real transform and ticket, the user's prompts or
//! stable made-up ones, a counter) after the same argon2id work, and fail at the response
//! step like a wrong response does. Only a lock (throttling) is answered at once.
//!
//! Login states between requests live in the store, not in this process
//! ([`Store::put_pending_login`](crate::store::Store::put_pending_login)): after the hello
//! under the login id, after the password step under the bundle id. Each step takes its
//! state once (`DELETE … RETURNING`), so any replica sharing the database can serve any
//! step, and a replayed step is refused on every replica. The state is the protocol's
//! [`HostLoginParts`](kasane_protocol::HostLoginParts) (the X25519 shared secret and the
//! exact messages so far) plus, after the password step, the user, the chosen verifiers and
//! whether the bundle is a decoy, encoded with postcard (`StoredLogin`); it is secret,
//! zeroized in memory, and kept at most until the bundle expires. The bundle's single use
//! and expiry are also enforced by [`Store::take_bundle`](crate::store::Store::take_bundle).

mod decoy;
mod hello;
mod password;
mod response;
mod session;
mod state;
mod throttle;

use kasane_protocol::wire::ID_LEN;
use rand::RngCore;
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::HostError;

pub use kasane_protocol::card::{CARD_COLUMNS, CARD_ROWS, card_prompts};
pub use session::{SessionInfo, StoredSession, token_hash};

/// Why a login request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// The body is not a valid message of the expected kind (answered 400).
    #[error("malformed request")]
    Malformed(#[source] kasane_protocol::ProtocolError),
    /// The login failed; the reason is logged, never sent.
    #[error("login failed: {0}")]
    Failed(Failure),
    /// The host itself failed (answered like a failure, logged as an error).
    #[error("host error")]
    Internal(#[from] HostError),
}

/// Why a login step failed. Logged, never sent: every one of them is answered with the one
/// uniform failure. A protocol error behind a reason is logged where it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// Channel binding is on and the connection gave no TLS exporter value.
    #[error("no TLS exporter value")]
    NoChannelBinding,
    /// The protocol refused the hello.
    #[error("hello refused")]
    HelloRefused,
    /// The login state could not be encoded for the store.
    #[error("login state could not be encoded")]
    StateEncoding,
    /// The login state read back from the store does not decode.
    #[error("stored login state invalid")]
    StateInvalid,
    /// The stored state after the hello was refused by the protocol.
    #[error("stored hello state invalid")]
    HelloStateInvalid,
    /// The stored state after the bundle was refused by the protocol.
    #[error("stored bundle state invalid")]
    BundleStateInvalid,
    /// No login state under this id at this stage (unknown, already used, or expired).
    #[error("unknown, used or expired login state")]
    UnknownLogin,
    /// The store keeps no more logins between steps.
    #[error("too many logins in flight")]
    TooManyInFlight,
    /// The protocol refused the password request.
    #[error("password request refused")]
    PasswordRefused,
    /// The user or the source address is locked after failed logins.
    #[error("throttled")]
    Throttled,
    /// The password check (a blocking task) did not finish.
    #[error("password check aborted")]
    PasswordCheckAborted,
    /// The protocol refused the bundle the host built.
    #[error("bundle could not be encoded")]
    BundleEncoding,
    /// The bundle is unknown, already used, or expired.
    #[error("unknown, used or expired bundle")]
    UnknownBundle,
    /// The bundle's transform was revoked or removed since the password step.
    #[error("the bundle's transform is no longer active")]
    TransformInactive,
    /// The auth transform's input could not be built.
    #[error("auth input")]
    AuthInput,
    /// The transform run (a blocking task) did not finish.
    #[error("derive aborted")]
    DeriveAborted,
    /// The transform's input could not be handed to it.
    #[error("derive input")]
    DeriveInput,
    /// The transform failed on the host (fuel, memory, a trap).
    #[error("transform failed")]
    TransformFailed,
    /// A decoy bundle was answered (its verifiers are random: it cannot succeed).
    #[error("decoy bundle answered")]
    DecoyAnswered,
    /// The receipt or the response request was refused.
    #[error("response refused")]
    ResponseRefused,
    /// The session state could not be encoded for the store.
    #[error("session state could not be encoded")]
    SessionEncoding,
}

impl From<Failure> for LoginError {
    fn from(f: Failure) -> Self {
        Self::Failed(f)
    }
}

fn random_id() -> [u8; ID_LEN] {
    let mut id = [0u8; ID_LEN];
    OsRng.fill_bytes(&mut id);
    id
}

fn random_verifier() -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(vec![0u8; crate::crypto::VERIFIER_LEN]);
    OsRng.fill_bytes(&mut v);
    v
}
