//! Step 3: the response. Takes the bundle (once, unexpired), runs the transform on the
//! stored verifiers, checks the receipt in constant time and opens a session.

use std::net::IpAddr;
use std::time::Instant;

use kasane_protocol::wire::{Message, ModuleRef};
use kasane_protocol::{HostChallenge, ResponseRequest, Session};
use kasane_sandbox::{Derived, Transform};
use rand::RngCore;
use rand_core::OsRng;
use zeroize::Zeroizing;

use super::session::{StoredSession, token_hash};
use super::{Failure, LoginError};
use crate::HostError;
use crate::host::Host;
use crate::metrics::Outcome;
use crate::store::{LoginStage, NewSession, UnixSeconds};

impl Host {
    /// Step 3: takes the bundle (once, unexpired), runs the transform on the stored
    /// verifiers, checks the receipt in constant time and opens a session. Returns the
    /// encoded [`ResponseAccept`](kasane_protocol::ResponseAccept). The throttle keys checked
    /// and counted are the start's source's, wherever this request comes from.
    pub async fn response(&self, request: &[u8], from: IpAddr) -> Result<Vec<u8>, LoginError> {
        let req = ResponseRequest::decode(request).map_err(LoginError::Malformed)?;
        let now = self.now();
        // Taken once, unexpired, by whichever replica gets the response first.
        let mut pending = self
            .take_pending(&req.bundle_id, LoginStage::Bundle, now)
            .await
            .map_err(|e| match e {
                LoginError::Failed(Failure::UnknownLogin) => Failure::UnknownBundle.into(),
                e => e,
            })?;
        let state = HostChallenge::from_parts(pending.parts()?).map_err(|e| {
            tracing::error!(error = %e, "stored bundle state");
            Failure::BundleStateInvalid
        })?;
        let verifiers: Vec<Zeroizing<Vec<u8>>> = std::mem::take(&mut pending.verifiers)
            .into_iter()
            .map(Zeroizing::new)
            .collect();
        let count = pending.count.unwrap_or_default();
        let known_network = count.known_network;
        let source = pending.source;
        if from != source {
            tracing::debug!(%from, start = %source, "response from another address than its start");
        }
        // The answer counts as a failure until it proves the card (one check-and-count, as a
        // start's), made in place (see `kasane_os::blocking`) while the transform runs on the
        // blocking pool: the transform is polled first, so it is started first.
        let (derived, counted) = tokio::join!(
            self.derive_auth(&state, &verifiers),
            self.count_response(&pending.user, source, count, now)
        );
        let counted = counted?.ok_or(Failure::Throttled)?;
        let derived = derived?;
        let mut token = [0u8; 32];
        OsRng.fill_bytes(&mut token);
        let module = state.bundle().module.clone();
        let (session, bytes) = match state.accept(request, derived.key.as_bytes(), token) {
            Ok(ok) => ok,
            Err(e) => {
                tracing::debug!(error = %e, "response refused");
                return Err(Failure::ResponseRefused.into());
            }
        };
        // The response proved password and card: the user's throttle is cleared, and the
        // source's count of this answer taken back, even if the session cannot be stored, in
        // the same store call (one commit on a SQLite file).
        let new = self.new_session(session, &module, &token, &pending.user, now)?;
        let [user_key, _] = self.throttle_keys(&pending.user, source, known_network);
        let [_, net] = self.forgiven(&pending.user, source, &counted);
        let opened = self.store.open_session(&new, user_key, &[net]).await;
        self.note_network(&pending.user, source, count, now).await;
        opened.map_err(HostError::from)?;
        self.metrics.login(Outcome::Success);
        tracing::info!(user = %pending.user, "login");
        Ok(bytes)
    }

    /// Runs the bundle's transform on the stored verifiers (off the async workers).
    async fn derive_auth(
        &self,
        state: &HostChallenge,
        verifiers: &[Zeroizing<Vec<u8>>],
    ) -> Result<Derived, LoginError> {
        let transform = self.bundle_transform(state)?;
        let input = state.auth_input(verifiers).map_err(|e| {
            tracing::error!(error = %e, "auth input");
            Failure::AuthInput
        })?;
        let started = Instant::now();
        let derived = tokio::task::spawn_blocking(move || {
            kasane_protocol::with_derive_input(&input, |view| transform.derive(view))
        })
        .await
        .map_err(|_| Failure::DeriveAborted)?
        .map_err(|e| {
            tracing::error!(error = %e, "derive input");
            Failure::DeriveInput
        })?;
        self.metrics.derive_latency(started.elapsed());
        derived.map_err(|e| {
            self.metrics.sandbox_error(&e);
            tracing::warn!(error = %e, "transform failed on the host");
            Failure::TransformFailed.into()
        })
    }

    /// The loaded transform a bundle names (by module hash, among the active ones): the
    /// replica serving the response may not be the one that chose it. A transform revoked
    /// between the two steps is refused.
    fn bundle_transform(&self, state: &HostChallenge) -> Result<Transform, LoginError> {
        let module = &state.bundle().module;
        let entry = self
            .registry
            .active(self.now())?
            .into_iter()
            .find(|e| e.sha256.0 == module.sha256 && e.name == module.name)
            .ok_or(Failure::TransformInactive)?;
        Ok(self.registry.transform(&entry)?)
    }

    /// The established session as the store keeps it, under the token's hash: the whole
    /// protocol state, so any replica can open and seal its messages.
    fn new_session(
        &self,
        session: Session,
        module: &ModuleRef,
        token: &[u8; 32],
        user: &str,
        now: UnixSeconds,
    ) -> Result<NewSession, LoginError> {
        let session_id = session.session_id().to_vec();
        let secret = StoredSession::new(session.into_parts(), module)
            .encode()
            .map_err(|_| Failure::SessionEncoding)?;
        Ok(NewSession {
            token_hash: token_hash(token),
            session_id,
            user: user.to_owned(),
            created: now,
            expires_at: now.saturating_add(self.config.session.absolute_timeout_secs),
            secret,
            max_per_user: self.config.session.max_per_user,
        })
    }
}
