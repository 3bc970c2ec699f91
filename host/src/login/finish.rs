//! Step 2: the finish. Checks KE3 (only the password holder gets past it), then answers the
//! challenge bundle sealed under OPAQUE's session key: challenges from the user's pairs, the
//! counter (drawn at the start, on disk before it is answered), the chosen transform and its
//! ticket.

use std::net::IpAddr;

use kasane_protocol::wire::{Challenge, ChallengeBundle, Message, ModuleRef, Profile};
use kasane_protocol::{FinishRequest, HostAwaitBundle, HostAwaitFinish};
use rand::{Rng, RngCore};
use rand_core::OsRng;
use zeroize::Zeroizing;

use super::state::{DrawnCounter, StoredLogin};
use super::throttle::StartCount;
use super::{Failure, LoginError, random_id};
use crate::HostError;
use crate::host::Host;
use crate::registry::Chosen;
use crate::store::{Forgiven, LoginStage, UnixSeconds};

/// The verified finish and what the start announced.
struct Verified {
    next: HostAwaitBundle,
    user: String,
    count: Option<StartCount>,
    counter: DrawnCounter,
    profiles: Vec<Profile>,
    client_nonce: [u8; 32],
    /// The start's source (its throttle keys are this login's).
    source: IpAddr,
}

/// The challenges of one bundle and the verifiers the host keeps for them.
struct Picked {
    challenges: Vec<Challenge>,
    verifiers: Vec<Zeroizing<Vec<u8>>>,
}

impl Host {
    /// Step 2: checks KE3 and answers the sealed challenge bundle. An unknown name, a wrong
    /// password and a locked user or source all fail here, the same way. The throttle keys
    /// are the start's source's, wherever this request comes from.
    pub async fn finish(&self, request: &[u8], from: IpAddr) -> Result<Vec<u8>, LoginError> {
        let req = FinishRequest::decode(request).map_err(LoginError::Malformed)?;
        let now = self.now();
        let verified = self.verify_finish(&req, request, now).await?;
        let source = verified.source;
        if from != source {
            tracing::debug!(%from, start = %source, "finish from another address than its start");
        }
        let ttl = self.config.login.bundle_ttl_secs;
        self.registry.sync(now).await;
        // The transform is chosen and its ticket signed (CPU) while the start's count is
        // taken back and the pairs are read (one store call) and the counter's barrier (begun
        // at the start) is waited for. Each store call takes one connection and holds no
        // other: a login step never waits for a second connection while it holds one.
        let forgiven = verified
            .count
            .as_ref()
            .map(|count| self.forgiven(&verified.user, source, count));
        let durable = async {
            self.barrier
                .wait(Some(verified.counter.durable))
                .await
                .map_err(|e| LoginError::from(HostError::from(e)))
        };
        let choosing = async {
            self.registry.choose(
                &verified.profiles,
                verified.client_nonce,
                now,
                ttl,
                OsRng.next_u64(),
            )
        };
        let (picked, chosen, durable) = tokio::join!(
            self.pick_challenges(&verified.user, forgiven.as_ref().map_or(&[], |f| &f[..])),
            choosing,
            durable
        );
        let (picked, chosen) = (picked?, chosen?);
        durable?;
        self.metrics.transform_chosen(&chosen.entry.name);
        let bundle_id = random_id();
        let expires = now.saturating_add(ttl);
        let bundle = ChallengeBundle {
            bundle_id,
            challenges: picked.challenges,
            counter: verified.counter.value,
            timestamp: now,
            ticket: chosen.ticket.clone(),
            module: module_ref(&chosen),
            params: chosen.entry.params.clone(),
            expires,
        };
        let (state, bytes) = verified.next.send(bundle).map_err(|e| {
            tracing::error!(error = %e, "bundle refused by the protocol");
            Failure::BundleEncoding
        })?;
        let mut next = StoredLogin::new(state.into_parts(), verified.user, true, source);
        next.verifiers = picked.verifiers.iter().map(|v| v.to_vec()).collect();
        // The response step throttles by the same user key as the start (the user's key for
        // a known network, or its global key).
        next.count = verified.count;
        // The bundle's single use is this pending login's: the response step takes it once.
        self.put_pending(bundle_id, LoginStage::Bundle, &next, source, (now, expires))
            .await?;
        Ok(bytes)
    }

    /// Takes the start's state and checks KE3 with it.
    async fn verify_finish(
        &self,
        req: &FinishRequest,
        request: &[u8],
        now: UnixSeconds,
    ) -> Result<Verified, LoginError> {
        let mut stored = self
            .take_pending(&req.login_id, LoginStage::Start, now)
            .await?;
        let state = HostAwaitFinish::from_parts(stored.parts()?).map_err(|e| {
            tracing::error!(error = %e, "stored start state");
            Failure::StartStateInvalid
        })?;
        let profiles = state.request().profiles.clone();
        let client_nonce = state.request().client_nonce;
        let next = state.finish(request).map_err(|e| {
            tracing::debug!(error = %e, known = stored.known, "finish refused");
            if stored.known {
                Failure::WrongPassword
            } else {
                Failure::UnknownOrLocked
            }
        })?;
        // Past KE3 the start answered from the user's record, so it drew a counter.
        let counter = stored.counter.ok_or(Failure::StartStateInvalid)?;
        Ok(Verified {
            next,
            user: std::mem::take(&mut stored.user),
            count: stored.count,
            counter,
            profiles,
            client_nonce,
            source: stored.source,
        })
    }

    /// Challenges at random from the user's pairs, with their stored verifiers; the start's
    /// count is taken back (`forgiven`) in the same store call.
    async fn pick_challenges(
        &self,
        user: &str,
        forgiven: &[Forgiven<'_>],
    ) -> Result<Picked, LoginError> {
        let pairs = self
            .store
            .challenge_pairs_forgiving(user, forgiven)
            .await
            .map_err(HostError::from)?;
        if pairs.is_empty() {
            return Err(Failure::UserGone.into());
        }
        let n = self.challenge_count().min(pairs.len());
        let picked = rand::seq::index::sample(&mut OsRng, pairs.len(), n);
        let mut challenges = Vec::with_capacity(n);
        let mut verifiers = Vec::with_capacity(n);
        for i in picked.iter() {
            let p = &pairs[i];
            challenges.push(Challenge {
                prompt: p.prompt.clone(),
                salt: p.salt.clone(),
            });
            verifiers.push(p.verifier.clone());
        }
        Ok(Picked {
            challenges,
            verifiers,
        })
    }

    /// How many challenges a bundle asks: random within the configured range.
    fn challenge_count(&self) -> usize {
        let login = &self.config.login;
        OsRng.gen_range(login.challenges_min as usize..=login.challenges_max as usize)
    }
}

/// The bundle's reference to the chosen transform.
fn module_ref(chosen: &Chosen) -> ModuleRef {
    let e = &chosen.entry;
    ModuleRef {
        name: e.name.clone(),
        sha256: e.sha256.0,
        length: e.length,
        profile: e.profile,
        fuel: e.fuel,
        memory: e.memory,
    }
}
