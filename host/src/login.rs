//! The login flow (hello → password → response), sessions and logout, over
//! `kasane-protocol`'s host state machines. No HTTP here: [`crate::server`] maps results to
//! answers.
//!
//! Every failure of a login step is one [`LoginError::Failed`], answered with the one
//! uniform [`LoginFailure`](kasane_protocol::LoginFailure); the reason goes to the log.
//! A wrong password and an unknown user are not refused at the password step: both get a
//! **decoy** bundle of the same shape (a real transform and ticket, the user's prompts or
//! stable made-up ones, a counter) after the same argon2id work, and fail at the response
//! step like a wrong response does. Only a lock (throttling) is answered at once.
//!
//! Login states between requests live in the store, not in this process
//! ([`Store::put_pending_login`]): after the hello under the login id, after the password
//! step under the bundle id. Each step takes its
//! state once (`DELETE … RETURNING`), so any replica sharing the database can serve any step,
//! and a replayed step is refused on every replica. The state is the protocol's
//! [`HostLoginParts`] (the X25519 shared secret and the exact messages so far) plus, after
//! the password step, the user, the chosen verifiers and whether the bundle is a decoy,
//! encoded with postcard (`StoredLogin`); it is secret, zeroized in memory, and kept at
//! most until the bundle expires. The bundle's single use and expiry are also enforced by
//! [`Store::take_bundle`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use ed25519_dalek::SigningKey;
use hmac::{Hmac, Mac};
use kasane_protocol::wire::{Challenge, ChallengeBundle, ID_LEN, Message, ModuleRef};
use kasane_protocol::{
    DhSecret, EphemeralSecret, HostAwaitPassword, HostChallenge, HostHello, HostHelloParams,
    HostLoginParts, PasswordRequest, ResponseRequest,
};
use kasane_sandbox::Transform;
use rand::seq::SliceRandom;
use rand::{Rng, RngCore};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::HostError;
use crate::config::Config;
use crate::metrics::{Metrics, Outcome};
use crate::registry::HostRegistry;
use crate::store::{
    Clock, LoginStage, NewBundle, NewPendingLogin, NewSession, Store, ThrottleKey, UnixSeconds,
};

/// Why a login request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// The body is not a valid message of the expected kind (answered 400).
    #[error("malformed request")]
    Malformed(#[source] kasane_protocol::ProtocolError),
    /// The login failed; the reason is logged, never sent.
    #[error("login failed: {0}")]
    Failed(&'static str),
    /// The host itself failed (answered like a failure, logged as an error).
    #[error("host error")]
    Internal(#[from] HostError),
}

pub use kasane_protocol::card::{CARD_COLUMNS, CARD_ROWS, card_prompts};

/// A login between two requests, as the store keeps it (postcard): the protocol's
/// [`HostLoginParts`] and, after the password step, what the response step needs. Secret:
/// `dh` and `verifiers` are zeroized on drop; `Debug` is not implemented.
#[derive(Serialize, Deserialize)]
struct StoredLogin {
    /// The X25519 shared secret.
    dh: [u8; 32],
    hello_request: Vec<u8>,
    hello_response: Vec<u8>,
    channel_binding: Option<[u8; 32]>,
    password_request: Option<Vec<u8>>,
    challenge_bundle: Option<Vec<u8>>,
    /// The user the bundle was issued to (empty after the hello).
    user: String,
    /// One verifier per challenge; random for a decoy (empty after the hello).
    verifiers: Vec<Vec<u8>>,
    decoy: bool,
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
    fn new(parts: HostLoginParts) -> Self {
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
            .map_err(|_| LoginError::Failed("login state could not be encoded"))
    }

    fn decode(bytes: &[u8]) -> Result<Self, LoginError> {
        postcard::from_bytes(bytes).map_err(|_| LoginError::Failed("stored login state invalid"))
    }

    /// The protocol's parts (the messages are copied; the secret moves into a `DhSecret`).
    fn parts(&mut self) -> HostLoginParts {
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

/// The host: configuration, store, registry, keys, clock and metrics. Logins in flight live
/// in the store, so any number of `Host`s sharing one database serve the same logins.
pub struct Host {
    config: Config,
    store: Arc<dyn Store>,
    registry: HostRegistry,
    host_key: SigningKey,
    clock: Arc<dyn Clock>,
    metrics: Metrics,
    decoy_key: Zeroizing<[u8; 32]>,
    decoy_counters: Mutex<HashMap<String, u64>>,
    /// AES-256-GCM key sealing queued messages at rest (`keys/queue.key`).
    queue_key: Zeroizing<[u8; 32]>,
    /// Per-user wake-ups for inbox long-polls (notified on enqueue, in this process).
    inbox_waiters: Mutex<HashMap<String, Arc<tokio::sync::Notify>>>,
}

mod messages;
pub use messages::{MAX_WAIT_SECS, QUEUE_KEY_FILE, StoredSession, load_queue_key};

impl std::fmt::Debug for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Host")
            .field("store", &self.store.backend())
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

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

fn lock<T>(m: &Mutex<T>) -> Result<std::sync::MutexGuard<'_, T>, LoginError> {
    m.lock()
        .map_err(|_| LoginError::Internal(HostError::Config("lock poisoned".into())))
}

fn random_id() -> [u8; ID_LEN] {
    let mut id = [0u8; ID_LEN];
    OsRng.fill_bytes(&mut id);
    id
}

/// SHA-256 of a session token: what the store keeps.
#[must_use]
pub fn token_hash(token: &[u8; 32]) -> Vec<u8> {
    Sha256::digest(token).to_vec()
}

impl Host {
    /// A host from its parts. `host_key` is the registry's `host` role key.
    #[must_use]
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        registry: HostRegistry,
        host_key: SigningKey,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let mut decoy_key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut *decoy_key);
        Self {
            config,
            store,
            registry,
            host_key,
            clock,
            metrics: Metrics::default(),
            decoy_key,
            decoy_counters: Mutex::new(HashMap::new()),
            queue_key: {
                // Replaced by `with_queue_key` for a host on a data directory.
                let mut k = Zeroizing::new([0u8; 32]);
                OsRng.fill_bytes(&mut *k);
                k
            },
            inbox_waiters: Mutex::new(HashMap::new()),
        }
    }

    /// Sets the key that seals queued messages at rest (see [`load_queue_key`]). Without it
    /// a host uses a random key of its own, so its queue does not survive a restart.
    #[must_use]
    pub fn with_queue_key(mut self, key: Zeroizing<[u8; 32]>) -> Self {
        self.queue_key = key;
        self
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store.
    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The registry.
    #[must_use]
    pub fn registry(&self) -> &HostRegistry {
        &self.registry
    }

    /// The metrics.
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The host role's public key (clients find it in the registry root).
    #[must_use]
    pub fn host_public_key(&self) -> [u8; 32] {
        self.host_key.verifying_key().to_bytes()
    }

    fn now(&self) -> UnixSeconds {
        self.clock.now()
    }

    /// Step 1: answers a hello, signed by the host key. `channel_binding` is the connection's
    /// RFC 9266 exporter value (used only when the configuration turns binding on).
    pub async fn hello(
        &self,
        request: &[u8],
        channel_binding: Option<&[u8; 32]>,
    ) -> Result<Vec<u8>, LoginError> {
        kasane_protocol::HelloRequest::decode(request).map_err(LoginError::Malformed)?;
        let binding = if self.config.channel_binding {
            Some(channel_binding.ok_or(LoginError::Failed("no TLS exporter value"))?)
        } else {
            None
        };
        let mut server_nonce = [0u8; 32];
        OsRng.fill_bytes(&mut server_nonce);
        let login_id = random_id();
        let (state, bytes) = HostHello::respond(
            request,
            HostHelloParams {
                ephemeral: EphemeralSecret::random(&mut OsRng),
                server_nonce,
                login_id,
                host_key: &self.host_key,
                channel_binding: binding,
            },
        )
        .map_err(|e| {
            tracing::debug!(error = %e, "hello refused");
            LoginError::Failed("hello refused")
        })?;
        let now = self.now();
        let stored = StoredLogin::new(state.into_parts());
        self.put_pending(
            login_id,
            LoginStage::Hello,
            &stored,
            now,
            now.saturating_add(self.config.login.hello_ttl_secs),
        )
        .await?;
        Ok(bytes)
    }

    /// Keeps a login's state in the store for its next step (any replica may serve it).
    async fn put_pending(
        &self,
        id: [u8; ID_LEN],
        stage: LoginStage,
        stored: &StoredLogin,
        now: UnixSeconds,
        expires_at: UnixSeconds,
    ) -> Result<(), LoginError> {
        let max = u64::try_from(self.config.login.max_pending).unwrap_or(u64::MAX);
        let kept = self
            .store
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
            Err(LoginError::Failed("too many logins in flight"))
        }
    }

    /// Takes a login's state from the store: once, unexpired, at this stage.
    async fn take_pending(
        &self,
        id: &[u8; ID_LEN],
        stage: LoginStage,
        now: UnixSeconds,
    ) -> Result<StoredLogin, LoginError> {
        let bytes = self
            .store
            .take_pending_login(id, stage, now)
            .await
            .map_err(HostError::from)?
            .ok_or(LoginError::Failed("unknown, used or expired login state"))?;
        StoredLogin::decode(&bytes)
    }

    async fn locked(
        &self,
        user: &str,
        source: IpAddr,
        now: UnixSeconds,
    ) -> Result<bool, LoginError> {
        let u = self
            .store
            .throttle_state(ThrottleKey::User(user))
            .await
            .map_err(HostError::from)?;
        let s = self
            .store
            .throttle_state(ThrottleKey::Source(source))
            .await
            .map_err(HostError::from)?;
        Ok(u.is_locked(now) || s.is_locked(now))
    }

    async fn record_failure(&self, user: &str, source: IpAddr) {
        let now = self.now();
        let backoff = self.config.throttle.backoff();
        for key in [ThrottleKey::User(user), ThrottleKey::Source(source)] {
            match self.store.record_failure(key, now, &backoff).await {
                Ok(st) if st.is_locked(now) => self.metrics.lock_engaged(),
                Ok(_) => {}
                Err(e) => tracing::error!(error = %e, "recording a failure"),
            }
        }
    }

    fn decoy_salt(&self, user: &str, prompt: &str) -> Vec<u8> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*self.decoy_key)
            .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
        mac.update(b"salt\0");
        mac.update(user.as_bytes());
        mac.update(b"\0");
        mac.update(prompt.as_bytes());
        mac.finalize().into_bytes()[..crate::crypto::SALT_LEN].to_vec()
    }

    fn decoy_counter(&self, user: &str) -> Result<u64, LoginError> {
        let mut map = lock(&self.decoy_counters)?;
        if map.len() > self.config.login.max_pending {
            map.clear();
        }
        let start = || {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&*self.decoy_key)
                .unwrap_or_else(|_| <Hmac<Sha256> as Mac>::new(&Default::default()));
            mac.update(b"counter\0");
            mac.update(user.as_bytes());
            let b = mac.finalize().into_bytes();
            u64::from(u16::from_le_bytes([b[0], b[1]]) % 500)
        };
        let c = map.entry(user.to_owned()).or_insert_with(start);
        *c += 1;
        Ok(*c)
    }

    /// Step 2: opens the password, checks it (argon2id) and answers a challenge bundle — a
    /// real one, or a decoy of the same shape for a wrong password or an unknown user.
    pub async fn password(&self, request: &[u8], source: IpAddr) -> Result<Vec<u8>, LoginError> {
        let req = PasswordRequest::decode(request).map_err(LoginError::Malformed)?;
        let now = self.now();
        let mut stored = self
            .take_pending(&req.login_id, LoginStage::Hello, now)
            .await?;
        let state = HostAwaitPassword::from_parts(stored.parts()).map_err(|e| {
            tracing::error!(error = %e, "stored hello state");
            LoginError::Failed("stored hello state invalid")
        })?;
        let profiles = state.hello().profiles.clone();
        let client_nonce = state.hello().client_nonce;
        let (attempt, await_bundle) = state.receive(request).map_err(|e| {
            tracing::debug!(error = %e, "password request refused");
            LoginError::Failed("password request refused")
        })?;
        let user_name = attempt.user_id.clone();
        if self.locked(&user_name, source, now).await? {
            self.metrics.login(Outcome::Throttled);
            return Err(LoginError::Failed("throttled"));
        }
        let user = self
            .store
            .get_user(&user_name)
            .await
            .map_err(HostError::from)?;
        let password = attempt.password.clone();
        let phc = user.as_ref().map(|u| u.password_hash.clone());
        let password_ok = tokio::task::spawn_blocking(move || match phc {
            Some(phc) => crate::crypto::verify_password(&phc, &password),
            None => {
                crate::crypto::dummy_verify(&password);
                false
            }
        })
        .await
        .map_err(|_| LoginError::Failed("password check aborted"))?;
        let real = password_ok && user.as_ref().is_some_and(|u| !u.pairs.is_empty());
        if !real {
            self.record_failure(&user_name, source).await;
        }

        let ttl = self.config.login.bundle_ttl_secs;
        let chosen = self
            .registry
            .choose(&profiles, client_nonce, now, ttl, OsRng.next_u64())
            .map_err(LoginError::Internal)?;
        self.metrics.transform_chosen(&chosen.entry.name);

        let (min, max) = (
            self.config.login.challenges_min as usize,
            self.config.login.challenges_max as usize,
        );
        let want = OsRng.gen_range(min..=max);
        let (challenges, verifiers, counter) = match user.as_ref().filter(|u| !u.pairs.is_empty()) {
            Some(u) => {
                let n = want.min(u.pairs.len());
                let picked = rand::seq::index::sample(&mut OsRng, u.pairs.len(), n);
                let mut ch = Vec::with_capacity(n);
                let mut vs = Vec::with_capacity(n);
                for i in picked.iter() {
                    let p = &u.pairs[i];
                    ch.push(Challenge {
                        prompt: p.prompt.clone(),
                        salt: p.salt.clone(),
                    });
                    vs.push(if real {
                        p.verifier.clone()
                    } else {
                        random_verifier()
                    });
                }
                // Persisted before the bundle is answered (also for a wrong password: the
                // counter only has to increase, and a decoy must look the same).
                let counter = self
                    .store
                    .next_counter(&u.name)
                    .await
                    .map_err(HostError::from)?;
                (ch, vs, counter)
            }
            None => {
                let mut prompts = card_prompts();
                prompts.shuffle(&mut OsRng);
                let ch: Vec<Challenge> = prompts
                    .into_iter()
                    .take(want)
                    .map(|p| Challenge {
                        salt: self.decoy_salt(&user_name, &p),
                        prompt: p,
                    })
                    .collect();
                let vs = ch.iter().map(|_| random_verifier()).collect();
                // The same counter statement a known user costs (it matches no row).
                let _ = self.store.next_counter(&user_name).await;
                (ch, vs, self.decoy_counter(&user_name)?)
            }
        };
        let bundle_id = random_id();
        let expires = now.saturating_add(ttl);
        let e = &chosen.entry;
        let bundle = ChallengeBundle {
            bundle_id,
            challenges,
            counter,
            timestamp: now,
            ticket: chosen.ticket.clone(),
            module: ModuleRef {
                name: e.name.clone(),
                sha256: e.sha256.0,
                length: e.length,
                profile: e.profile,
                fuel: e.fuel,
                memory: e.memory,
            },
            params: e.params.clone(),
            expires,
        };
        let (state, bytes) = await_bundle.send(bundle).map_err(|e| {
            tracing::error!(error = %e, "bundle refused by the protocol");
            LoginError::Failed("bundle could not be encoded")
        })?;
        self.store
            .put_bundle(&NewBundle {
                id: bundle_id.to_vec(),
                user: user_name.clone(),
                body: bytes.clone(),
                expires_at: expires,
            })
            .await
            .map_err(HostError::from)?;
        let mut next = StoredLogin::new(state.into_parts());
        next.user = user_name;
        next.verifiers = verifiers.iter().map(|v| v.to_vec()).collect();
        next.decoy = !real;
        self.put_pending(bundle_id, LoginStage::Bundle, &next, now, expires)
            .await?;
        Ok(bytes)
    }

    /// Step 3: takes the bundle (once, unexpired), runs the transform on the stored
    /// verifiers, checks the receipt in constant time and opens a session. Returns the
    /// encoded [`ResponseAccept`](kasane_protocol::ResponseAccept).
    pub async fn response(&self, request: &[u8], source: IpAddr) -> Result<Vec<u8>, LoginError> {
        let req = ResponseRequest::decode(request).map_err(LoginError::Malformed)?;
        let now = self.now();
        // The store decides single use and expiry (shared by every replica): both rows are
        // taken, whichever is missing fails the login.
        let pending = self
            .take_pending(&req.bundle_id, LoginStage::Bundle, now)
            .await;
        let bundle = self
            .store
            .take_bundle(&req.bundle_id, now)
            .await
            .map_err(HostError::from)?;
        let mut pending = match (pending, bundle) {
            (Ok(p), Some(_)) => p,
            // A store fault is logged as one, not as a failed login.
            (Err(e @ LoginError::Internal(_)), _) => return Err(e),
            _ => return Err(LoginError::Failed("unknown, used or expired bundle")),
        };
        let state = HostChallenge::from_parts(pending.parts()).map_err(|e| {
            tracing::error!(error = %e, "stored bundle state");
            LoginError::Failed("stored bundle state invalid")
        })?;
        let verifiers: Vec<Zeroizing<Vec<u8>>> = std::mem::take(&mut pending.verifiers)
            .into_iter()
            .map(Zeroizing::new)
            .collect();
        if self.locked(&pending.user, source, now).await? {
            self.metrics.login(Outcome::Throttled);
            return Err(LoginError::Failed("throttled"));
        }
        let transform = self.bundle_transform(&state)?;
        let input = state.auth_input(&verifiers).map_err(|e| {
            tracing::error!(error = %e, "auth input");
            LoginError::Failed("auth input")
        })?;
        let started = Instant::now();
        let derived = tokio::task::spawn_blocking(move || {
            kasane_protocol::with_derive_input(&input, |view| transform.derive(view))
        })
        .await
        .map_err(|_| LoginError::Failed("derive aborted"))?
        .map_err(|e| {
            tracing::error!(error = %e, "derive input");
            LoginError::Failed("derive input")
        })?;
        self.metrics.derive_latency(started.elapsed());
        let derived = match derived {
            Ok(d) => d,
            Err(e) => {
                self.metrics.sandbox_error(&e);
                tracing::warn!(error = %e, "transform failed on the host");
                return Err(LoginError::Failed("transform failed"));
            }
        };
        let mut token = [0u8; 32];
        OsRng.fill_bytes(&mut token);
        let module = state.bundle().module.clone();
        let accepted = state.accept(request, derived.key.as_bytes(), token);
        let (session, bytes) = match accepted {
            Ok(ok) if !pending.decoy => ok,
            Ok(_) => {
                // A decoy cannot be answered (its verifiers are random); counted at the password step.
                return Err(LoginError::Failed("decoy bundle answered"));
            }
            Err(e) => {
                if !pending.decoy {
                    self.record_failure(&pending.user, source).await;
                }
                tracing::debug!(error = %e, "response refused");
                return Err(LoginError::Failed("response refused"));
            }
        };
        // The whole protocol state (not only the secret): any replica can open and seal
        // this session's messages.
        let session_id = session.session_id().to_vec();
        let secret = StoredSession::new(session.into_parts(), &module)
            .encode()
            .map_err(|_| LoginError::Failed("session state could not be encoded"))?;
        self.store
            .create_session(&NewSession {
                token_hash: token_hash(&token),
                session_id,
                user: pending.user.clone(),
                created: now,
                expires_at: now.saturating_add(self.config.session.absolute_timeout_secs),
                secret,
            })
            .await
            .map_err(HostError::from)?;
        if let Err(e) = self
            .store
            .clear_throttle(ThrottleKey::User(&pending.user))
            .await
        {
            tracing::error!(error = %e, "clearing the user's throttle");
        }
        self.metrics.login(Outcome::Success);
        tracing::info!(user = %pending.user, "login");
        Ok(bytes)
    }

    /// The loaded transform a bundle names (by module hash, among the active ones): the
    /// replica serving the response may not be the one that chose it. A transform revoked
    /// between the two steps is refused.
    fn bundle_transform(&self, state: &HostChallenge) -> Result<Transform, LoginError> {
        let module = &state.bundle().module;
        let entry = self
            .registry
            .active()?
            .into_iter()
            .find(|e| e.sha256.0 == module.sha256 && e.name == module.name)
            .ok_or(LoginError::Failed(
                "the bundle's transform is no longer active",
            ))?;
        Ok(self.registry.transform(&entry)?)
    }

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

    /// Ends the session of a bearer token. False if there was none.
    pub async fn logout(&self, token: &[u8; 32]) -> Result<bool, HostError> {
        let ended = self.store.delete_session(&token_hash(token)).await?;
        if ended {
            // The ended session's chain is final: sign its head now.
            if let Err(e) = self.checkpoint_audit().await {
                tracing::error!(error = %e, "audit checkpoints at logout");
            }
        }
        Ok(ended)
    }

    /// Deletes expired bundles, logins in flight and sessions from the store, and signs a
    /// checkpoint of every audit chain that advanced since its last one. `serve` runs it every minute.
    pub async fn housekeeping(&self) -> Result<crate::store::Purged, HostError> {
        let now = self.now();
        let purged = self
            .store
            .purge_expired(now, self.config.session.idle_timeout_secs)
            .await?;
        self.checkpoint_audit().await?;
        Ok(purged)
    }

    /// Counts a failed login in the metrics (the server calls this for every failure).
    pub fn count_failure(&self) {
        self.metrics.login(Outcome::Failure);
    }
}

fn random_verifier() -> Zeroizing<Vec<u8>> {
    let mut v = Zeroizing::new(vec![0u8; crate::crypto::VERIFIER_LEN]);
    OsRng.fill_bytes(&mut v);
    v
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
