//! Step 2: the password. Opens and checks it (argon2id), then answers a challenge bundle — a
//! real one, or a decoy of the same shape for a wrong password or an unknown user.

use std::net::IpAddr;

use kasane_protocol::wire::{Challenge, ChallengeBundle, ID_LEN, Message, ModuleRef, Profile};
use kasane_protocol::{HostAwaitBundle, HostAwaitPassword, PasswordAttempt, PasswordRequest};
use rand::seq::SliceRandom;
use rand::{Rng, RngCore};
use rand_core::OsRng;
use zeroize::Zeroizing;

use super::state::StoredLogin;
use super::{Failure, LoginError, card_prompts, random_id, random_verifier};
use crate::HostError;
use crate::host::Host;
use crate::registry::Chosen;
use crate::store::{LoginStage, NewBundle, UnixSeconds, UserRecord};

/// The opened password request and what the hello announced.
struct Opened {
    attempt: PasswordAttempt,
    next: HostAwaitBundle,
    profiles: Vec<Profile>,
    client_nonce: [u8; 32],
}

/// The challenges of one bundle, the verifiers the host keeps for them, and the counter.
struct Picked {
    challenges: Vec<Challenge>,
    verifiers: Vec<Zeroizing<Vec<u8>>>,
    counter: u64,
}

impl Host {
    /// Step 2: opens the password, checks it (argon2id) and answers a challenge bundle — a
    /// real one, or a decoy of the same shape for a wrong password or an unknown user.
    pub async fn password(&self, request: &[u8], source: IpAddr) -> Result<Vec<u8>, LoginError> {
        let req = PasswordRequest::decode(request).map_err(LoginError::Malformed)?;
        let now = self.now();
        let opened = self.open_password(&req, request, now).await?;
        let user_name = opened.attempt.user_id.clone();
        let (user, real) = self.authenticate(&opened.attempt, source, now).await?;
        let ttl = self.config.login.bundle_ttl_secs;
        let chosen = self.registry.choose(
            &opened.profiles,
            opened.client_nonce,
            now,
            ttl,
            OsRng.next_u64(),
        )?;
        self.metrics.transform_chosen(&chosen.entry.name);
        let picked = match &user {
            Some(u) => self.real_challenges(u, real).await?,
            None => self.decoy_challenges(&user_name).await?,
        };
        let bundle_id = random_id();
        let expires = now.saturating_add(ttl);
        let bundle = ChallengeBundle {
            bundle_id,
            challenges: picked.challenges,
            counter: picked.counter,
            timestamp: now,
            ticket: chosen.ticket.clone(),
            module: module_ref(&chosen),
            params: chosen.entry.params.clone(),
            expires,
        };
        let (state, bytes) = opened.next.send(bundle).map_err(|e| {
            tracing::error!(error = %e, "bundle refused by the protocol");
            Failure::BundleEncoding
        })?;
        let mut next = StoredLogin::new(state.into_parts());
        next.user = user_name;
        next.verifiers = picked.verifiers.iter().map(|v| v.to_vec()).collect();
        next.decoy = !real;
        self.keep_bundle(bundle_id, &next, &bytes, now, expires)
            .await?;
        Ok(bytes)
    }

    /// Takes the hello's state and opens the password request with it.
    async fn open_password(
        &self,
        req: &PasswordRequest,
        request: &[u8],
        now: UnixSeconds,
    ) -> Result<Opened, LoginError> {
        let mut stored = self
            .take_pending(&req.login_id, LoginStage::Hello, now)
            .await?;
        let state = HostAwaitPassword::from_parts(stored.parts()).map_err(|e| {
            tracing::error!(error = %e, "stored hello state");
            Failure::HelloStateInvalid
        })?;
        let profiles = state.hello().profiles.clone();
        let client_nonce = state.hello().client_nonce;
        let (attempt, next) = state.receive(request).map_err(|e| {
            tracing::debug!(error = %e, "password request refused");
            Failure::PasswordRefused
        })?;
        Ok(Opened {
            attempt,
            next,
            profiles,
            client_nonce,
        })
    }

    /// The claimed user (if known, with pairs) and whether the password is right; refuses a
    /// locked user or source, and counts a wrong password as a failure.
    async fn authenticate(
        &self,
        attempt: &PasswordAttempt,
        source: IpAddr,
        now: UnixSeconds,
    ) -> Result<(Option<UserRecord>, bool), LoginError> {
        self.refuse_if_locked(&attempt.user_id, source, now).await?;
        let user = self
            .store
            .get_user(&attempt.user_id)
            .await
            .map_err(HostError::from)?
            .filter(|u| !u.pairs.is_empty());
        let password_ok = self.check_password(user.as_ref(), attempt).await?;
        let real = password_ok && user.is_some();
        if !real {
            self.record_failure(&attempt.user_id, source).await;
        }
        Ok((user, real))
    }

    /// Checks the password against the user's hash, or does the same work against a hash
    /// of nothing for an unknown user (decoys cost what real logins do).
    async fn check_password(
        &self,
        user: Option<&UserRecord>,
        attempt: &PasswordAttempt,
    ) -> Result<bool, LoginError> {
        let password = attempt.password.clone();
        let phc = user.map(|u| u.password_hash.clone());
        tokio::task::spawn_blocking(move || match phc {
            Some(phc) => crate::crypto::verify_password(&phc, &password),
            None => {
                crate::crypto::dummy_verify(&password);
                false
            }
        })
        .await
        .map_err(|_| Failure::PasswordCheckAborted.into())
    }

    /// Challenges from the user's own pairs; the stored verifiers if the password was
    /// right, random ones (a decoy) if not.
    async fn real_challenges(&self, u: &UserRecord, real: bool) -> Result<Picked, LoginError> {
        let n = self.challenge_count().min(u.pairs.len());
        let picked = rand::seq::index::sample(&mut OsRng, u.pairs.len(), n);
        let mut challenges = Vec::with_capacity(n);
        let mut verifiers = Vec::with_capacity(n);
        for i in picked.iter() {
            let p = &u.pairs[i];
            challenges.push(Challenge {
                prompt: p.prompt.clone(),
                salt: p.salt.clone(),
            });
            verifiers.push(if real {
                p.verifier.clone()
            } else {
                random_verifier()
            });
        }
        // Persisted before the bundle is answered (also for a wrong password: the counter
        // only has to increase, and a decoy must look the same).
        let counter = self
            .store
            .next_counter(&u.name)
            .await
            .map_err(HostError::from)?;
        Ok(Picked {
            challenges,
            verifiers,
            counter,
        })
    }

    /// Challenges for an unknown user: card prompts with stable made-up salts.
    async fn decoy_challenges(&self, user: &str) -> Result<Picked, LoginError> {
        let mut prompts = card_prompts();
        prompts.shuffle(&mut OsRng);
        let challenges: Vec<Challenge> = prompts
            .into_iter()
            .take(self.challenge_count())
            .map(|p| Challenge {
                salt: self.decoy_salt(user, &p),
                prompt: p,
            })
            .collect();
        let verifiers = challenges.iter().map(|_| random_verifier()).collect();
        // The same counter statement a known user costs (it matches no row).
        let _ = self.store.next_counter(user).await;
        Ok(Picked {
            challenges,
            verifiers,
            counter: self.decoy_counter(user)?,
        })
    }

    /// How many challenges a bundle asks: random within the configured range.
    fn challenge_count(&self) -> usize {
        let login = &self.config.login;
        OsRng.gen_range(login.challenges_min as usize..=login.challenges_max as usize)
    }

    /// Stores the bundle (single use, until it expires) and the login state the response
    /// step takes.
    async fn keep_bundle(
        &self,
        bundle_id: [u8; ID_LEN],
        next: &StoredLogin,
        bytes: &[u8],
        now: UnixSeconds,
        expires: UnixSeconds,
    ) -> Result<(), LoginError> {
        self.store
            .put_bundle(&NewBundle {
                id: bundle_id.to_vec(),
                user: next.user.clone(),
                body: bytes.to_vec(),
                expires_at: expires,
            })
            .await
            .map_err(HostError::from)?;
        self.put_pending(bundle_id, LoginStage::Bundle, next, now, expires)
            .await
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
