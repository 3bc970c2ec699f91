//! Sessions: the state a login leaves in the store ([`StoredSession`]), the bearer token's
//! hash, and [`Host::session`] / [`Host::logout`].

use kasane_abi::Direction;
use kasane_protocol::wire::{ID_LEN, ModuleRef};
use kasane_protocol::{DeriveContext, Session, SessionParts, SessionSecret};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::HostError;
use crate::host::Host;
use crate::store::UnixSeconds;

/// The answer to `GET /v1/session`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The user.
    pub user: String,
    /// The public session id.
    pub session_id: Vec<u8>,
    /// Absolute expiry.
    pub expires_at: UnixSeconds,
}

/// SHA-256 of a session token: what the store keeps.
#[must_use]
pub fn token_hash(token: &[u8; 32]) -> Vec<u8> {
    Sha256::digest(token).to_vec()
}

/// A session's protocol state as the store keeps it (postcard, in `sessions.secret`).
/// Secret: zeroized on drop; `Debug` prints only the module.
#[derive(Serialize, Deserialize)]
pub struct StoredSession {
    version: u8,
    secret: [u8; 32],
    transcript_hash: [u8; 32],
    challenges: Vec<Vec<u8>>,
    counter: u64,
    timestamp: u64,
    server_nonce: [u8; 32],
    client_nonce: [u8; 32],
    params: Vec<u8>,
    module_sha256: [u8; 32],
    module_name: String,
}

impl Drop for StoredSession {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl std::fmt::Debug for StoredSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSession")
            .field("module", &self.module_name)
            .finish_non_exhaustive()
    }
}

impl StoredSession {
    /// The state of a session just established with the transform `module`.
    #[must_use]
    pub fn new(parts: SessionParts, module: &ModuleRef) -> Self {
        let ctx = parts.context;
        Self {
            version: 1,
            secret: *parts.secret.expose_secret(),
            transcript_hash: parts.transcript_hash,
            challenges: ctx.challenges,
            counter: ctx.counter,
            timestamp: ctx.timestamp,
            server_nonce: ctx.server_nonce,
            client_nonce: ctx.client_nonce,
            params: ctx.params,
            module_sha256: module.sha256,
            module_name: module.name.clone(),
        }
    }

    /// The stored form.
    pub fn encode(&self) -> Result<Zeroizing<Vec<u8>>, postcard::Error> {
        postcard::to_allocvec(self).map(Zeroizing::new)
    }

    /// Parses the stored form.
    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        let s: Self = postcard::from_bytes(bytes)?;
        if s.version != 1 {
            return Err(postcard::Error::DeserializeBadEncoding);
        }
        Ok(s)
    }

    /// The session secret (for agreement checks).
    #[must_use]
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.secret
    }

    /// SHA-256 of the session's transform module.
    #[must_use]
    pub fn module_sha256(&self) -> [u8; 32] {
        self.module_sha256
    }

    /// The registry name of the session's transform.
    #[must_use]
    pub(crate) fn module_name(&self) -> &str {
        &self.module_name
    }

    /// The host's protocol session (sending host to client) with these sequence numbers.
    pub(crate) fn restore(
        &self,
        session_id: &[u8],
        last_sent: u64,
        last_received: u64,
    ) -> Option<Session> {
        let session_id: [u8; ID_LEN] = session_id.try_into().ok()?;
        Some(Session::from_parts(SessionParts {
            session_id,
            secret: SessionSecret::from_bytes(self.secret),
            transcript_hash: self.transcript_hash,
            context: DeriveContext {
                challenges: self.challenges.clone(),
                counter: self.counter,
                timestamp: self.timestamp,
                server_nonce: self.server_nonce,
                client_nonce: self.client_nonce,
                params: self.params.clone(),
            },
            outgoing: Direction::HostToClient,
            last_sent,
            last_received,
        }))
    }
}

impl Host {
    /// The live session of a bearer token (touching it), or `None` if it ended (logout,
    /// idle or absolute timeout) or never existed.
    pub async fn session(&self, token: &[u8; 32]) -> Result<Option<SessionInfo>, HostError> {
        let s = self
            .store
            .touch_session(
                &token_hash(token),
                self.now(),
                self.config.session.idle_timeout_secs,
            )
            .await?;
        Ok(s.map(|s| SessionInfo {
            user: s.user,
            session_id: s.session_id,
            expires_at: s.expires_at,
        }))
    }

    /// Ends the session of a bearer token and signs the head of its audit chain (that chain
    /// is final; the others are housekeeping's). False if there was no such session.
    pub async fn logout(&self, token: &[u8; 32]) -> Result<bool, HostError> {
        let hash = token_hash(token);
        self.sessions.forget(&hash);
        let Some(session_id) = self.store.delete_session(&hash).await? else {
            return Ok(false);
        };
        if let Err(e) = self.checkpoint_session(&session_id).await {
            tracing::error!(error = %e, "audit checkpoint at logout");
        }
        Ok(true)
    }
}
