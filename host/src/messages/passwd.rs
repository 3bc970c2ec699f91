//! `kasane passwd`: a logged-in user replaces password and card. Step 1 answers OPAQUE's
//! registration request for the new password (under the host's OPAQUE keys, bound to the
//! session's user) and names the record the change replaces (its SHA-256); step 2 takes the
//! new record and the new card's keyed verifiers, authenticated by the session secret with
//! that name under the MAC, and stores both in one transaction, only in place of that record:
//! a change applies once. The host sees neither the new password nor the new responses.

use kasane_protocol::wire::{Message, PasswdChallenge, PasswdStart};
use kasane_protocol::{ProtocolError, RefusalReason, opaque};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::unavailable;
use crate::host::Host;
use crate::login::StoredSession;
use crate::store::ChallengePair;

impl Host {
    /// Step 1: the registration response for the session's user.
    pub async fn passwd_start(
        &self,
        token: Option<&[u8; 32]>,
        body: &[u8],
    ) -> Result<Vec<u8>, RefusalReason> {
        let req = PasswdStart::decode(body).map_err(|_| RefusalReason::Malformed)?;
        let token = token.ok_or(RefusalReason::SessionEnded)?;
        let session = self.live_session(token, self.now()).await?;
        let response = opaque::registration_response(
            &self.opaque_keys,
            &req.registration_request,
            session.user.as_bytes(),
        )
        .map_err(|_| RefusalReason::Malformed)?;
        let current = self.current_record(&session.user).await?;
        PasswdChallenge {
            registration_response: response,
            replaces: Sha256::digest(&current).into(),
        }
        .encode()
        .map_err(unavailable)
    }

    /// Step 2: checks the session's MAC and the record, then replaces the user's OPAQUE
    /// record and pairs.
    pub async fn passwd_finish(
        &self,
        token: Option<&[u8; 32]>,
        body: &[u8],
    ) -> Result<(), RefusalReason> {
        let token = token.ok_or(RefusalReason::SessionEnded)?;
        let session = self.live_session(token, self.now()).await?;
        let stored = StoredSession::decode(&session.secret).map_err(unavailable)?;
        let ps = stored
            .restore(
                &session.session_id,
                session.last_seq_to_client,
                session.from_client.top(),
            )
            .ok_or(RefusalReason::Unavailable)?;
        let msg = ps.open_passwd(body).map_err(|e| match e {
            ProtocolError::ReceiptMismatch => RefusalReason::Altered,
            _ => RefusalReason::Malformed,
        })?;
        let record =
            opaque::record_from_upload(&msg.upload).map_err(|_| RefusalReason::Malformed)?;
        let pairs: Vec<ChallengePair> = msg
            .pairs
            .into_iter()
            .map(|p| ChallengePair {
                prompt: p.prompt,
                salt: p.salt,
                verifier: Zeroizing::new(p.verifier),
            })
            .collect();
        // A change applies to the record step 1 named, once (compared and replaced in one
        // statement): sent again after another change it names a record the user no longer has.
        let current = self.current_record(&session.user).await?;
        let replaced = if Sha256::digest(&current).as_slice() == msg.replaces {
            let (user, keep) = (&session.user, &session.session_id);
            let done = self.store.reenroll(user, &current, &record, &pairs, keep);
            done.await.map_err(unavailable)?
        } else {
            None
        };
        let Some(ended) = replaced else {
            // Not applied here. If it was this same change (sent again after it applied, or
            // twice at once), it is done: the client keeps the card the host now holds.
            if self.current_record(&session.user).await? == record {
                tracing::info!(user = %session.user, "password and card change sent again: already made");
                return Ok(());
            }
            return Err(RefusalReason::Replayed);
        };
        // The user's other sessions are gone from the store; from this process's memory too
        // (another replica drops its copy when it reads `session_ends`, as after a logout).
        for token_hash in &ended {
            self.sessions.forget(token_hash);
        }
        tracing::info!(
            user = %session.user,
            pairs = pairs.len(),
            other_sessions_ended = ended.len(),
            "password and card changed"
        );
        Ok(())
    }

    /// The user's OPAQUE record as stored now. A session's user without one (removed, or
    /// stored before login v2) has no credentials to replace.
    async fn current_record(&self, user: &str) -> Result<Vec<u8>, RefusalReason> {
        let user = self.store.get_user(user).await.map_err(unavailable)?;
        user.and_then(|u| u.opaque_record)
            .ok_or(RefusalReason::SessionEnded)
    }
}
