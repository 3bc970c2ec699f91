//! The login kept in the store between two steps ([`StoredLogin`]), and putting and taking it.

use std::net::IpAddr;

use kasane_protocol::wire::ID_LEN;
use kasane_protocol::{HostLoginParts, OpaqueSessionKey};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::throttle::StartCount;
use super::{Failure, LoginError};
use crate::HostError;
use crate::barrier::BarrierTicket;
use crate::host::Host;
use crate::store::{LoginStage, NewPendingLogin, PendingBounds, UnixSeconds};

/// Most challenge bundles one user may have waiting for their response (a person types one
/// at a time; several devices, or a script logging in on many connections at once, stay
/// within it). Beyond it the user's oldest is evicted: someone with the password cannot
/// fill the table with bundles.
pub const BUNDLES_PER_USER: u64 = 64;

/// A login between two requests, as the store keeps it (postcard): the protocol's
/// [`HostLoginParts`] and what the next step needs. Secret: the OPAQUE state, the session key
/// and the verifiers are zeroized on drop; `Debug` is not implemented.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredLogin {
    opaque_state: Option<Vec<u8>>,
    session_key: Option<Vec<u8>>,
    start_request: Vec<u8>,
    start_response: Vec<u8>,
    channel_binding: Option<[u8; 32]>,
    finish_request: Option<Vec<u8>>,
    challenge_bundle: Option<Vec<u8>>,
    /// The user named in the start request.
    pub(super) user: String,
    /// Whether the start answered from the user's own record (false: an unknown name or a
    /// locked user or source, answered from OPAQUE's fake record).
    pub(super) known: bool,
    /// What the start counted against the user and the source (`None`: locked, nothing).
    pub(super) count: Option<StartCount>,
    /// One verifier per challenge (empty before the bundle).
    pub(super) verifiers: Vec<Vec<u8>>,
    /// The access counter the start drew (`None`: not a known user's login).
    pub(super) counter: Option<DrawnCounter>,
    /// The address the start came from. The later steps count, take back and check
    /// throttle keys of this source, never of their own request's: a finish or response sent
    /// from elsewhere (another network for each wrong card answer) must not escape the keys
    /// the start counted, nor take back another source's failures.
    pub(super) source: IpAddr,
}

/// An access counter a login start drew, and the barrier that puts it on disk.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub(super) struct DrawnCounter {
    pub(super) value: u64,
    pub(super) durable: BarrierTicket,
}

impl Drop for StoredLogin {
    fn drop(&mut self) {
        self.opaque_state.zeroize();
        self.session_key.zeroize();
        for v in &mut self.verifiers {
            v.zeroize();
        }
    }
}

impl StoredLogin {
    pub(super) fn new(parts: HostLoginParts, user: String, known: bool, source: IpAddr) -> Self {
        Self {
            opaque_state: parts.opaque_state.map(|s| s.to_vec()),
            session_key: parts.session_key.map(|k| k.expose_secret().to_vec()),
            start_request: parts.start_request,
            start_response: parts.start_response,
            channel_binding: parts.channel_binding,
            finish_request: parts.finish_request,
            challenge_bundle: parts.challenge_bundle,
            user,
            known,
            count: None,
            verifiers: Vec::new(),
            counter: None,
            source,
        }
    }

    fn encode(&self) -> Result<Zeroizing<Vec<u8>>, LoginError> {
        postcard::to_allocvec(self)
            .map(Zeroizing::new)
            .map_err(|_| Failure::StateEncoding.into())
    }

    fn decode(bytes: &[u8]) -> Result<Self, LoginError> {
        postcard::from_bytes(bytes).map_err(|_| Failure::StateInvalid.into())
    }

    /// The protocol's parts (the messages are moved out; the secrets move into their types).
    pub(super) fn parts(&mut self) -> Result<HostLoginParts, LoginError> {
        let session_key = match self.session_key.take() {
            Some(k) => {
                let k = Zeroizing::new(k);
                let arr: [u8; 64] = k.as_slice().try_into().map_err(|_| Failure::StateInvalid)?;
                Some(OpaqueSessionKey::from_bytes(arr))
            }
            None => None,
        };
        Ok(HostLoginParts {
            opaque_state: self.opaque_state.take().map(Zeroizing::new),
            session_key,
            start_request: std::mem::take(&mut self.start_request),
            start_response: std::mem::take(&mut self.start_response),
            channel_binding: self.channel_binding,
            finish_request: self.finish_request.take(),
            challenge_bundle: self.challenge_bundle.take(),
        })
    }
}

impl Host {
    /// Keeps a login's state in the store for its next step (any replica may serve it),
    /// evicting the oldest in flight beyond the bounds (starts per source network and in all,
    /// bundles per user): a flood from one network only ever evicts its own starts, and no
    /// flood of starts evicts a bundle.
    pub(super) async fn put_pending(
        &self,
        id: [u8; ID_LEN],
        stage: LoginStage,
        stored: &StoredLogin,
        source: IpAddr,
        (now, expires_at): (UnixSeconds, UnixSeconds),
    ) -> Result<(), LoginError> {
        let login = &self.config().login;
        let bounds = PendingBounds {
            total: u64::try_from(login.max_pending).unwrap_or(u64::MAX),
            per_source: u64::try_from(login.max_pending_per_source).unwrap_or(u64::MAX),
            bundles_per_user: BUNDLES_PER_USER,
        };
        let evicted = self
            .store()
            .put_pending_login(
                &NewPendingLogin {
                    id: id.to_vec(),
                    stage,
                    source: self.config().throttle.source_key(source).to_key(),
                    user: stored.user.clone(),
                    parts: stored.encode()?,
                    expires_at,
                },
                now,
                bounds,
            )
            .await
            .map_err(HostError::from)?;
        if evicted > 0 {
            tracing::debug!(evicted, "logins in flight evicted to make room");
        }
        Ok(())
    }

    /// Takes a login's state from the store: once, unexpired, at this stage.
    pub(super) async fn take_pending(
        &self,
        id: &[u8; ID_LEN],
        stage: LoginStage,
        now: UnixSeconds,
    ) -> Result<StoredLogin, LoginError> {
        let bytes = self
            .store()
            .take_pending_login(id, stage, now)
            .await
            .map_err(HostError::from)?
            .ok_or(Failure::UnknownLogin)?;
        StoredLogin::decode(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_login_roundtrips_and_refuses_garbage() {
        let parts = HostLoginParts {
            opaque_state: None,
            session_key: Some(OpaqueSessionKey::from_bytes([7; 64])),
            start_request: vec![1, 2, 3],
            start_response: vec![4, 5],
            channel_binding: Some([9; 32]),
            finish_request: Some(vec![6]),
            challenge_bundle: Some(vec![8, 8]),
        };
        let source: IpAddr = "192.0.2.9".parse().unwrap();
        let mut stored = StoredLogin::new(parts, "alice".into(), true, source);
        stored.verifiers = vec![vec![1; 32], vec![2; 32]];
        let bytes = stored.encode().unwrap();
        let mut back = StoredLogin::decode(&bytes).unwrap();
        assert_eq!(
            (back.user.as_str(), back.known, back.verifiers.clone()),
            ("alice", true, vec![vec![1; 32], vec![2; 32]])
        );
        assert_eq!(back.source, source);
        let p = back.parts().unwrap();
        assert_eq!(p.session_key.unwrap().expose_secret(), &[7; 64]);
        assert!(p.opaque_state.is_none());
        assert_eq!(
            (p.start_request, p.start_response, p.channel_binding),
            (vec![1, 2, 3], vec![4, 5], Some([9; 32]))
        );
        assert_eq!(
            (p.finish_request, p.challenge_bundle),
            (Some(vec![6]), Some(vec![8, 8]))
        );
        for bad in [&[][..], &[0xff; 3][..], &bytes[..bytes.len() - 1]] {
            assert!(StoredLogin::decode(bad).is_err());
        }
    }
}
