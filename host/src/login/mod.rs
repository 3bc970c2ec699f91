//! The login flow (start → finish → response), sessions and logout, over
//! `kasane-protocol`'s host state machines, as methods of [`Host`]. No HTTP here:
//! [`crate::server`] maps results to answers.
//!
//! - `start`: step 1, [`Host::start`] — OPAQUE KE2 from the user's record or the fake one.
//! - `finish`: step 2, [`Host::finish`] — check KE3, pick the challenges, issue the sealed
//!   bundle.
//! - `response`: step 3, [`Host::response`] — take the bundle, run the transform, check
//!   the receipt, open the session.
//! - `session`: [`StoredSession`], [`SessionInfo`], [`token_hash`]; [`Host::session`] and
//!   [`Host::logout`].
//! - `state`: the login kept in the store between steps (`StoredLogin`).
//! - `throttle`: locks after failed logins, per user and per source address.
//!
//! Every failure of a login step is one [`LoginError::Failed`], answered with the one
//! uniform [`LoginFailure`](kasane_protocol::LoginFailure); the reason goes to the log.
//! An unknown name, a user not enrolled for v2 and a locked user or source get KE2 from
//! OPAQUE's fake record (keyed by `keys/opaque.key`, so every replica answers alike): the
//! client cannot open it, sends a KE3 that fails, and the host answers the uniform failure —
//! exactly what a wrong password gets. The host does no password hashing at all.
//!
//! Login states between requests live in the store, not in this process
//! ([`Store::put_pending_login`](crate::store::Store::put_pending_login)): after the start
//! under the login id, after the finish under the bundle id. Each step takes its state once
//! (`DELETE … RETURNING`), so any replica sharing the database can serve any step, and a
//! replayed step is refused on every replica. The state is the protocol's
//! [`HostLoginParts`](kasane_protocol::HostLoginParts) (OPAQUE's server state or session key
//! and the exact messages so far) plus the user, whether the start used the user's own record
//! and, after the finish, the chosen verifiers, encoded with postcard (`StoredLogin`); it is
//! secret, zeroized in memory, and kept at most until it expires. The state after the finish
//! is the bundle's: taking it once is the bundle's single use. These writes are the store's
//! relaxed commits (they survive a crash of the host process); the access counter is the one
//! durable commit of a login.

mod finish;
mod response;
mod session;
mod start;
mod state;
mod throttle;

use kasane_protocol::wire::ID_LEN;
use rand::RngCore;
use rand_core::OsRng;

use crate::HostError;

pub use kasane_protocol::card::{CARD_COLUMNS, CARD_ROWS, card_prompts};
pub use session::{SessionInfo, StoredSession, token_hash};
pub use state::BUNDLES_PER_USER;

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
    /// The protocol refused the start request.
    #[error("start refused")]
    StartRefused,
    /// The login state could not be encoded for the store.
    #[error("login state could not be encoded")]
    StateEncoding,
    /// The login state read back from the store does not decode.
    #[error("stored login state invalid")]
    StateInvalid,
    /// The stored state after the start was refused by the protocol.
    #[error("stored start state invalid")]
    StartStateInvalid,
    /// The stored state after the bundle was refused by the protocol.
    #[error("stored bundle state invalid")]
    BundleStateInvalid,
    /// No login state under this id at this stage (unknown, already used, or expired).
    #[error("unknown, used or expired login state")]
    UnknownLogin,
    /// KE3 did not verify against the user's own record: a wrong password.
    #[error("wrong password")]
    WrongPassword,
    /// KE3 did not verify against the fake record: an unknown name, a user not enrolled for
    /// v2, or a locked user or source.
    #[error("unknown user, or locked")]
    UnknownOrLocked,
    /// The user or the source is locked after failed logins.
    #[error("throttled")]
    Throttled,
    /// The user was removed (or lost its pairs) between the start and the finish.
    #[error("user removed during the login")]
    UserGone,
    /// The protocol refused the bundle the host built.
    #[error("bundle could not be encoded")]
    BundleEncoding,
    /// The bundle is unknown, already used, or expired.
    #[error("unknown, used or expired bundle")]
    UnknownBundle,
    /// The bundle's transform was revoked or removed since the finish step.
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
