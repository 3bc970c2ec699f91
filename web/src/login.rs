//! The login, step by step, as [`kasane_client`'s](../../client-runtime/src/login.rs) native
//! login runs it; the page does the fetching and runs the transform in its Worker between
//! the steps:
//! start (KE1) → finish (KE2 checked against the registry's host keys, KE3 from the
//! password: one argon2id here) → bundle → ticket and module admitted by the trusted
//! registry, the module's bytes checked statically → answers → keyed verifiers → the auth
//! transform's input → response → the host's confirm.

use ed25519_dalek::VerifyingKey;
use kasane_protocol::login::{ClientAwaitAccept, ClientAwaitBundle, ClientChallenge};
use kasane_protocol::wire::Profile;
use kasane_protocol::{ClientStart, ProtocolError};
use kasane_registry::entry::TargetEntry;
use rand_core::OsRng;
use zeroize::Zeroizing;

use crate::error::WebError;
use crate::trust::Trust;

/// Where a login stands.
#[derive(Default)]
pub(crate) enum Step {
    /// Nothing under way.
    #[default]
    Idle,
    /// KE1 sent.
    Started(Box<ClientStart>),
    /// KE3 sent.
    AwaitBundle(Box<ClientAwaitBundle>),
    /// The bundle opened: its ticket and module are checked next.
    Challenged(Box<ClientChallenge>),
    /// The response sent.
    AwaitAccept(Box<ClientAwaitAccept>),
}

/// A login under way.
pub(crate) struct Login {
    pub(crate) user: String,
    pub(crate) nonce: [u8; 32],
    pub(crate) step: Step,
    /// The trusted entry the ticket named, and the role that listed it.
    pub(crate) entry: Option<(TargetEntry, String)>,
    /// The module's bytes passed every check.
    pub(crate) admitted: bool,
    /// The bundle's access counter.
    pub(crate) challenge_counter: u64,
}

impl Login {
    /// Builds KE1 for `user`; returns the login and the start request's bytes.
    pub(crate) fn start(user: &str, password: &str) -> Result<(Self, Vec<u8>), WebError> {
        // A browser runs the pure profile only: it has no WASI host functions.
        // Nor can it read its TLS exporter: it asks the host not to bind (a signed flag).
        let client = ClientStart::new(&mut OsRng, user, password.as_bytes(), vec![Profile::Pure])?
            .without_channel_binding()?;
        let bytes = client.request_bytes().to_vec();
        let login = Self {
            user: user.to_owned(),
            nonce: client.request().client_nonce,
            step: Step::Started(Box::new(client)),
            entry: None,
            admitted: false,
            challenge_counter: 0,
        };
        Ok((login, bytes))
    }

    /// Checks the host's signed start and finishes OPAQUE. On a refused password, returns
    /// the decoy finish to send (so the host counts the failure like any other) beside the
    /// refusal.
    pub(crate) fn finish(
        &mut self,
        response: &[u8],
        trust: &Trust,
    ) -> Result<Vec<u8>, (WebError, Option<Vec<u8>>)> {
        let Step::Started(client) = std::mem::take(&mut self.step) else {
            return Err((WebError::State("finish before start"), None));
        };
        let keys = host_keys(trust).map_err(|e| (e, None))?;
        // A page cannot read its TLS exporter: it asked for no binding.
        match client.receive(&mut OsRng, response, &keys, None) {
            Ok((next, request)) => {
                self.step = Step::AwaitBundle(Box::new(next));
                Ok(request)
            }
            Err(ProtocolError::Opaque) => Err((
                WebError::PasswordRefused,
                kasane_protocol::decoy_finish(&mut OsRng, response),
            )),
            Err(e) => Err((e.into(), None)),
        }
    }

    /// Opens the sealed challenge bundle; returns its prompts.
    pub(crate) fn open_bundle(&mut self, sealed: &[u8]) -> Result<Vec<String>, WebError> {
        let Step::AwaitBundle(client) = std::mem::take(&mut self.step) else {
            return Err(WebError::State("bundle before finish"));
        };
        let challenge = client.receive(sealed)?;
        let prompts = challenge
            .bundle()
            .challenges
            .iter()
            .map(|c| c.prompt.clone())
            .collect();
        self.step = Step::Challenged(Box::new(challenge));
        Ok(prompts)
    }

    /// The challenge state, while the bundle is being checked and answered.
    pub(crate) fn challenge(&self) -> Result<&ClientChallenge, WebError> {
        match &self.step {
            Step::Challenged(c) => Ok(c),
            _ => Err(WebError::State("no bundle open")),
        }
    }

    /// The auth transform's input for the user's `answers` (verifiers keyed by this login's
    /// export key, never the answers themselves).
    pub(crate) fn auth_input(&self, answers: &[String]) -> Result<Vec<u8>, WebError> {
        if !self.admitted {
            return Err(WebError::State("answers before the module was admitted"));
        }
        let challenge = self.challenge()?;
        let refs: Vec<&str> = answers.iter().map(String::as_str).collect();
        let verifiers = challenge.verifiers(&refs)?;
        let input = challenge.auth_input(&verifiers)?;
        Ok(encode_input(&input)?.to_vec())
    }

    /// The response request for the auth transform's output.
    pub(crate) fn respond(&mut self, t_auth: &[u8]) -> Result<Vec<u8>, WebError> {
        let Step::Challenged(challenge) = std::mem::take(&mut self.step) else {
            return Err(WebError::State("response before the bundle"));
        };
        let (awaiting, request) = challenge.respond(t_auth)?;
        self.step = Step::AwaitAccept(Box::new(awaiting));
        Ok(request)
    }

    /// Checks the host's confirm; returns the open session.
    pub(crate) fn confirm(&mut self, body: &[u8]) -> Result<kasane_protocol::Session, WebError> {
        let Step::AwaitAccept(awaiting) = std::mem::take(&mut self.step) else {
            return Err(WebError::State("confirm before the response"));
        };
        Ok(awaiting.receive(body)?)
    }
}

/// The registry's host identity keys (one must sign the start response).
fn host_keys(trust: &Trust) -> Result<Vec<VerifyingKey>, WebError> {
    trust
        .store
        .host_identity_keys()
        .map_err(WebError::registry)?
        .iter()
        .map(|k| VerifyingKey::from_bytes(k).map_err(|_| WebError::Registry("bad host key".into())))
        .collect()
}

/// The transform input's bytes (what the Worker copies into the module's memory).
pub(crate) fn encode_input(
    input: &kasane_abi::DeriveInputBuf,
) -> Result<Zeroizing<Vec<u8>>, WebError> {
    kasane_protocol::with_derive_input(input, |v| v.encode_to_vec())?
        .map(Zeroizing::new)
        .map_err(|_| WebError::Protocol("transform input too large".into()))
}
