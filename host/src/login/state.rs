//! The login kept in the store between two steps ([`StoredLogin`]), and putting and taking it.

use kasane_protocol::wire::ID_LEN;
use kasane_protocol::{DhSecret, HostLoginParts};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use super::{Failure, LoginError};
use crate::HostError;
use crate::host::Host;
use crate::store::{LoginStage, NewPendingLogin, UnixSeconds};

/// A login between two requests, as the store keeps it (postcard): the protocol's
/// [`HostLoginParts`] and, after the password step, what the response step needs. Secret:
/// `dh` and `verifiers` are zeroized on drop; `Debug` is not implemented.
#[derive(Serialize, Deserialize)]
pub(super) struct StoredLogin {
    /// The X25519 shared secret.
    dh: [u8; 32],
    hello_request: Vec<u8>,
    hello_response: Vec<u8>,
    channel_binding: Option<[u8; 32]>,
    password_request: Option<Vec<u8>>,
    challenge_bundle: Option<Vec<u8>>,
    /// The user the bundle was issued to (empty after the hello).
    pub(super) user: String,
    /// One verifier per challenge; random for a decoy (empty after the hello).
    pub(super) verifiers: Vec<Vec<u8>>,
    pub(super) decoy: bool,
}

impl Drop for StoredLogin {
    fn drop(&mut self) {
        self.dh.zeroize();
        for v in &mut self.verifiers {
            v.zeroize();
        }
    }
}

impl StoredLogin {
    pub(super) fn new(parts: HostLoginParts) -> Self {
        Self {
            dh: *parts.dh.expose_secret(),
            hello_request: parts.hello_request,
            hello_response: parts.hello_response,
            channel_binding: parts.channel_binding,
            password_request: parts.password_request,
            challenge_bundle: parts.challenge_bundle,
            user: String::new(),
            verifiers: Vec::new(),
            decoy: false,
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

    /// The protocol's parts (the messages are copied; the secret moves into a `DhSecret`).
    pub(super) fn parts(&mut self) -> HostLoginParts {
        HostLoginParts {
            dh: DhSecret::from_bytes(self.dh),
            hello_request: std::mem::take(&mut self.hello_request),
            hello_response: std::mem::take(&mut self.hello_response),
            channel_binding: self.channel_binding,
            password_request: self.password_request.take(),
            challenge_bundle: self.challenge_bundle.take(),
        }
    }
}

impl Host {
    /// Keeps a login's state in the store for its next step (any replica may serve it).
    pub(super) async fn put_pending(
        &self,
        id: [u8; ID_LEN],
        stage: LoginStage,
        stored: &StoredLogin,
        now: UnixSeconds,
        expires_at: UnixSeconds,
    ) -> Result<(), LoginError> {
        let max = u64::try_from(self.config().login.max_pending).unwrap_or(u64::MAX);
        let kept = self
            .store()
            .put_pending_login(
                &NewPendingLogin {
                    id: id.to_vec(),
                    stage,
                    parts: stored.encode()?,
                    expires_at,
                },
                now,
                max,
            )
            .await
            .map_err(HostError::from)?;
        if kept {
            Ok(())
        } else {
            Err(Failure::TooManyInFlight.into())
        }
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
            dh: DhSecret::from_bytes([7; 32]),
            hello_request: vec![1, 2, 3],
            hello_response: vec![4, 5],
            channel_binding: Some([9; 32]),
            password_request: Some(vec![6]),
            challenge_bundle: Some(vec![8, 8]),
        };
        let mut stored = StoredLogin::new(parts);
        stored.user = "alice".into();
        stored.verifiers = vec![vec![1; 32], vec![2; 32]];
        stored.decoy = true;
        let bytes = stored.encode().unwrap();
        let mut back = StoredLogin::decode(&bytes).unwrap();
        assert_eq!(
            (back.user.as_str(), back.decoy, back.verifiers.clone()),
            ("alice", true, vec![vec![1; 32], vec![2; 32]])
        );
        let p = back.parts();
        assert_eq!(p.dh.expose_secret(), &[7; 32]);
        assert_eq!(
            (p.hello_request, p.hello_response, p.channel_binding),
            (vec![1, 2, 3], vec![4, 5], Some([9; 32]))
        );
        assert_eq!(
            (p.password_request, p.challenge_bundle),
            (Some(vec![6]), Some(vec![8, 8]))
        );
        for bad in [&[][..], &[0xff; 3][..], &bytes[..bytes.len() - 1]] {
            assert!(StoredLogin::decode(bad).is_err());
        }
    }
}
