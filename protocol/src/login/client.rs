//! The client's side of a login: start (KE1) → finish (KE3) → bundle → response → session.

use ed25519_dalek::{Signature, VerifyingKey};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::Session;
use crate::derive::DeriveContext;
use crate::error::ProtocolError;
use crate::opaque::{self, Binding, ClientLoginState, OpaqueSessionKey};
use crate::schedule::{SessionSecret, bundle_key, open_bundle, session_id};
use crate::seal::{Padding, Sequencer};
use crate::transcript::{CHANNEL_BINDING_LEN, Transcript, start_signature_digest};
use crate::verifier::ResponseKey;
use crate::wire::{
    ChallengeBundle, FinishRequest, KE3_LEN, MAX_PASSWORD_LEN, Message, Profile, ResponseAccept,
    ResponseRequest, SealedBundle, StartRequest, StartResponse,
};
use kasane_abi::{DeriveInputBuf, Direction};

/// The client before the host has answered its start request.
#[derive(Debug)]
pub struct ClientStart {
    opaque: ClientLoginState,
    password: Zeroizing<Vec<u8>>,
    request: StartRequest,
    request_bytes: Vec<u8>,
}

impl ClientStart {
    /// Starts a login for `user_id` with a fresh nonce: blinds the password (OPAQUE KE1).
    pub fn new<R: RngCore + CryptoRng>(
        rng: &mut R,
        user_id: &str,
        password: &[u8],
        profiles: Vec<Profile>,
    ) -> Result<Self, ProtocolError> {
        if password.len() > MAX_PASSWORD_LEN {
            return Err(ProtocolError::PlaintextTooLong {
                len: password.len(),
                max: MAX_PASSWORD_LEN,
            });
        }
        let (opaque, ke1) = opaque::login_start(rng, password)?;
        let mut client_nonce = [0u8; 32];
        rng.fill_bytes(&mut client_nonce);
        let request = StartRequest {
            user_id: user_id.to_owned(),
            ke1,
            client_nonce,
            profiles,
            can_bind: true,
        };
        let request_bytes = request.encode()?;
        Ok(Self {
            opaque,
            password: Zeroizing::new(password.to_vec()),
            request,
            request_bytes,
        })
    }

    /// The same start for a client that cannot read its TLS exporter (a browser): it asks
    /// the host not to bind the channel (see [`StartRequest::can_bind`]).
    pub fn without_channel_binding(mut self) -> Result<Self, ProtocolError> {
        self.request.can_bind = false;
        self.request_bytes = self.request.encode()?;
        Ok(self)
    }

    /// The encoded [`StartRequest`] to send.
    pub fn request_bytes(&self) -> &[u8] {
        &self.request_bytes
    }

    /// The request (its nonce is what the session ticket must name).
    pub fn request(&self) -> &StartRequest {
        &self.request
    }

    /// Checks the host's answer and finishes OPAQUE: the host key must be one of
    /// `host_keys` (the registry's `host` role) and its signature must verify strictly;
    /// `channel_binding` is this side's TLS exporter value, used exactly when the host's
    /// signed flag says so. Then opens the OPAQUE envelope with the password (one argon2id):
    /// a wrong password or an unknown name fails here with [`ProtocolError::Opaque`] (send
    /// [`decoy_finish`] then, so the host sees what it sees for any failed login).
    /// Returns the state and the encoded [`FinishRequest`].
    pub fn receive<R: RngCore + CryptoRng>(
        self,
        rng: &mut R,
        response_bytes: &[u8],
        host_keys: &[VerifyingKey],
        channel_binding: Option<&[u8; CHANNEL_BINDING_LEN]>,
    ) -> Result<(ClientAwaitBundle, Vec<u8>), ProtocolError> {
        let response = StartResponse::decode(response_bytes)?;
        verify_start(&self.request_bytes, &response, host_keys)?;
        let binding = match (response.channel_binding, channel_binding) {
            (true, None) => {
                return Err(ProtocolError::ChannelBinding {
                    host: true,
                    local: false,
                });
            }
            (true, Some(v)) => Some(v),
            // The host sits behind a TLS-terminating proxy: our exporter belongs to the proxy.
            (false, _) => None,
        };
        let context = opaque::context(binding);
        let ids = Binding::for_user(&self.request.user_id, &context);
        let fin = opaque::login_finish(self.opaque, rng, &self.password, &response.ke2, &ids)?;
        let bytes = FinishRequest {
            login_id: response.login_id,
            ke3: fin.ke3,
        }
        .encode()?;
        let mut transcript = Transcript::new();
        transcript.append_message::<StartRequest>(&self.request_bytes);
        transcript.append_message::<StartResponse>(response_bytes);
        transcript.append_channel_binding(binding);
        transcript.append_message::<FinishRequest>(&bytes);
        Ok((
            ClientAwaitBundle {
                session_key: fin.session_key,
                response_key: ResponseKey::derive(&fin.export_key),
                transcript,
                client_nonce: self.request.client_nonce,
                server_nonce: response.server_nonce,
                channel_binding: response.channel_binding,
            },
            bytes,
        ))
    }
}

/// Checks the host key and its signature over the start.
fn verify_start(
    request_bytes: &[u8],
    response: &StartResponse,
    host_keys: &[VerifyingKey],
) -> Result<(), ProtocolError> {
    let host_key = host_keys
        .iter()
        .find(|k| k.as_bytes() == &response.host_public_key)
        .ok_or(ProtocolError::HostKey)?;
    let digest = start_signature_digest(
        request_bytes,
        &response.login_id,
        &response.ke2,
        &response.server_nonce,
        response.channel_binding,
    );
    host_key
        .verify_strict(&digest, &Signature::from_bytes(&response.signature.0))
        .map_err(|_| ProtocolError::BadSignature)
}

/// The finish request a client sends when OPAQUE failed on its side (wrong password, unknown
/// name): a random KE3 for the login the host named, which the host refuses like any wrong
/// one. `None` if the start response does not even decode.
pub fn decoy_finish<R: RngCore + CryptoRng>(rng: &mut R, response_bytes: &[u8]) -> Option<Vec<u8>> {
    let response = StartResponse::decode(response_bytes).ok()?;
    let mut ke3 = vec![0u8; KE3_LEN];
    rng.fill_bytes(&mut ke3);
    FinishRequest {
        login_id: response.login_id,
        ke3,
    }
    .encode()
    .ok()
}

/// The client after its finish request, waiting for the sealed challenge bundle.
#[derive(Debug)]
pub struct ClientAwaitBundle {
    session_key: OpaqueSessionKey,
    response_key: ResponseKey,
    transcript: Transcript,
    client_nonce: [u8; 32],
    server_nonce: [u8; 32],
    channel_binding: bool,
}

impl ClientAwaitBundle {
    /// Whether the host bound the TLS channel (a client may require it).
    pub fn host_uses_channel_binding(&self) -> bool {
        self.channel_binding
    }

    /// Opens and decodes the bundle. The caller then verifies its ticket and module
    /// (registry) and checks its expiry.
    pub fn receive(self, sealed_bytes: &[u8]) -> Result<ClientChallenge, ProtocolError> {
        let sealed = SealedBundle::decode(sealed_bytes)?;
        let th_finish = self.transcript.hash();
        let key = bundle_key(&self.session_key, &th_finish);
        let plain = open_bundle(&key, &th_finish, &sealed.ciphertext)?;
        let bundle = ChallengeBundle::decode(&plain)?;
        let mut transcript = self.transcript;
        transcript.append_message::<ChallengeBundle>(&plain);
        let ctx = DeriveContext::new(&bundle, self.server_nonce, self.client_nonce);
        Ok(ClientChallenge {
            session_key: self.session_key,
            response_key: self.response_key,
            th_bundle: transcript.hash(),
            transcript,
            bundle,
            ctx,
        })
    }
}

/// The client holding a bundle, waiting for the user's responses and the transform.
#[derive(Debug)]
pub struct ClientChallenge {
    session_key: OpaqueSessionKey,
    response_key: ResponseKey,
    transcript: Transcript,
    th_bundle: [u8; 32],
    bundle: ChallengeBundle,
    ctx: DeriveContext,
}

impl ClientChallenge {
    /// The bundle (challenges to show, ticket, module).
    pub fn bundle(&self) -> &ChallengeBundle {
        &self.bundle
    }

    /// The transcript hash after the bundle (the auth input's `transcript_hash`).
    pub fn transcript_hash(&self) -> [u8; 32] {
        self.th_bundle
    }

    /// The verifiers of the user's responses, one per challenge in order (keyed by this
    /// login's export key).
    pub fn verifiers(&self, responses: &[&str]) -> Result<Vec<Zeroizing<Vec<u8>>>, ProtocolError> {
        if responses.len() != self.bundle.challenges.len() {
            return Err(ProtocolError::FieldRange { field: "responses" });
        }
        responses
            .iter()
            .zip(&self.bundle.challenges)
            .map(|(r, c)| self.response_key.verifier(r, &c.salt))
            .collect()
    }

    /// The auth transform's input for these verifiers (one per challenge, in order).
    pub fn auth_input(
        &self,
        verifiers: &[Zeroizing<Vec<u8>>],
    ) -> Result<DeriveInputBuf, ProtocolError> {
        self.ctx.auth_input(&self.th_bundle, verifiers)
    }

    /// Derives the session secret from the transform's output and returns the encoded
    /// [`ResponseRequest`] carrying the receipt.
    pub fn respond(self, t_auth: &[u8]) -> Result<(ClientAwaitAccept, Vec<u8>), ProtocolError> {
        let secret = SessionSecret::derive(&self.session_key, t_auth, &self.th_bundle)?;
        let bytes = ResponseRequest {
            bundle_id: self.bundle.bundle_id,
            receipt: secret.receipt(&self.th_bundle),
        }
        .encode()?;
        let mut transcript = self.transcript;
        transcript.append_message::<ResponseRequest>(&bytes);
        Ok((
            ClientAwaitAccept {
                secret,
                th_final: transcript.hash(),
                ctx: self.ctx,
            },
            bytes,
        ))
    }
}

/// The client waiting for the host's confirm.
#[derive(Debug)]
pub struct ClientAwaitAccept {
    secret: SessionSecret,
    th_final: [u8; 32],
    ctx: DeriveContext,
}

impl ClientAwaitAccept {
    /// Checks the confirm (mutual authentication, bound to the session token) and opens the
    /// session.
    pub fn receive(self, accept_bytes: &[u8]) -> Result<Session, ProtocolError> {
        let accept = ResponseAccept::decode(accept_bytes)?;
        self.secret
            .verify_confirm(&self.th_final, &accept.session_token, &accept.confirm)?;
        Ok(Session {
            session_id: session_id(&accept.session_token),
            secret: self.secret,
            th_final: self.th_final,
            ctx: self.ctx,
            seq: Sequencer::new(Direction::ClientToHost),
            padding: Padding::None,
        })
    }
}
