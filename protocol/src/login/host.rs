//! The host's side of a login: start (KE2, signed) → finish (KE3 checked) → sealed bundle →
//! response (receipt checked) → session. Every state can be taken apart into
//! [`HostLoginParts`] and rebuilt, so any replica can serve the next step.

use ed25519_dalek::{Signer, SigningKey};
use rand_core::{CryptoRng, RngCore};
use zeroize::Zeroizing;

use super::Session;
use crate::derive::DeriveContext;
use crate::error::ProtocolError;
use crate::opaque::{self, Binding, OpaqueSessionKey, ServerKeys, ServerLoginState};
use crate::schedule::{SessionSecret, bundle_key, ct_eq32, seal_bundle, session_id};
use crate::seal::{Padding, Sequencer};
use crate::transcript::{CHANNEL_BINDING_LEN, Transcript, start_signature_digest};
use crate::wire::{
    ChallengeBundle, FinishRequest, ID_LEN, Message, ResponseAccept, ResponseRequest, SealedBundle,
    Signature64, StartRequest, StartResponse,
};
use kasane_abi::{DeriveInputBuf, Direction};

/// What the host chooses and knows for one start request.
#[derive(Debug)]
pub struct HostStartParams<'a> {
    /// The host's OPAQUE keys.
    pub keys: &'a ServerKeys,
    /// The user's registration record; `None` for an unknown name or a refused (throttled)
    /// one: OPAQUE then answers from a fake record, and the login fails at the finish step.
    pub record: Option<&'a [u8]>,
    /// A fresh nonce.
    pub server_nonce: [u8; 32],
    /// A fresh login id.
    pub login_id: [u8; ID_LEN],
    /// The host role key.
    pub host_key: &'a SigningKey,
    /// The TLS exporter value when channel binding is on (`None` behind a TLS-terminating proxy).
    pub channel_binding: Option<&'a [u8; CHANNEL_BINDING_LEN]>,
}

/// The host's answer to a start request.
#[derive(Debug)]
pub struct HostStart;

impl HostStart {
    /// Decodes a start request, answers OPAQUE's KE2 signed by the host key, and returns the
    /// encoded [`StartResponse`].
    pub fn respond<R: RngCore + CryptoRng>(
        rng: &mut R,
        request_bytes: &[u8],
        params: HostStartParams<'_>,
    ) -> Result<(HostAwaitFinish, Vec<u8>), ProtocolError> {
        let request = StartRequest::decode(request_bytes)?;
        let context = opaque::context(params.channel_binding);
        let ids = Binding::for_user(&request.user_id, &context);
        let (state, ke2) =
            opaque::login_respond(rng, params.keys, params.record, &request.ke1, &ids)?;
        let flag = params.channel_binding.is_some();
        let digest = start_signature_digest(
            request_bytes,
            &params.login_id,
            &ke2,
            &params.server_nonce,
            flag,
        );
        let bytes = StartResponse {
            login_id: params.login_id,
            ke2,
            server_nonce: params.server_nonce,
            channel_binding: flag,
            host_public_key: params.host_key.verifying_key().to_bytes(),
            signature: Signature64(params.host_key.sign(&digest).to_bytes()),
        }
        .encode()?;
        let parts = HostLoginParts {
            opaque_state: Some(state.to_bytes()),
            session_key: None,
            start_request: request_bytes.to_vec(),
            start_response: bytes.clone(),
            channel_binding: params.channel_binding.copied(),
            finish_request: None,
            challenge_bundle: None,
        };
        Ok((HostAwaitFinish::from_parts(parts)?, bytes))
    }
}

/// A host login state taken apart for storage between requests (a host replica that gets
/// the next request rebuilds it with `from_parts`). `Debug` prints no secret.
///
/// The transcript is rebuilt from the stored message bytes, so they must be stored exactly.
pub struct HostLoginParts {
    /// OPAQUE's server state (secret), between start and finish.
    pub opaque_state: Option<Zeroizing<Vec<u8>>>,
    /// OPAQUE's session key, after a finish that verified.
    pub session_key: Option<OpaqueSessionKey>,
    /// The start request as received.
    pub start_request: Vec<u8>,
    /// The start response as sent.
    pub start_response: Vec<u8>,
    /// The TLS exporter value, when channel binding is on.
    pub channel_binding: Option<[u8; CHANNEL_BINDING_LEN]>,
    /// The finish request as received (after the finish step).
    pub finish_request: Option<Vec<u8>>,
    /// The challenge bundle's plaintext encoding as sent (after the finish step).
    pub challenge_bundle: Option<Vec<u8>>,
}

impl std::fmt::Debug for HostLoginParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostLoginParts")
            .field(
                "opaque_state",
                &self.opaque_state.as_ref().map(|_| "<redacted>"),
            )
            .field("session_key", &self.session_key)
            .field("start_request_len", &self.start_request.len())
            .field("finish_request", &self.finish_request.is_some())
            .field("challenge_bundle", &self.challenge_bundle.is_some())
            .finish_non_exhaustive()
    }
}

/// The stored start, decoded, with the transcript up to the channel binding.
struct Replayed {
    transcript: Transcript,
    request: StartRequest,
    response: StartResponse,
}

fn replay_start(parts: &HostLoginParts) -> Result<Replayed, ProtocolError> {
    let request = StartRequest::decode(&parts.start_request)?;
    let response = StartResponse::decode(&parts.start_response)?;
    if response.channel_binding != parts.channel_binding.is_some() {
        return Err(ProtocolError::ChannelBinding {
            host: response.channel_binding,
            local: parts.channel_binding.is_some(),
        });
    }
    let mut transcript = Transcript::new();
    transcript.append_message::<StartRequest>(&parts.start_request);
    transcript.append_message::<StartResponse>(&parts.start_response);
    transcript.append_channel_binding(parts.channel_binding.as_ref());
    Ok(Replayed {
        transcript,
        request,
        response,
    })
}

/// The host after its start response, waiting for KE3.
#[derive(Debug)]
pub struct HostAwaitFinish {
    state: ServerLoginState,
    transcript: Transcript,
    request: StartRequest,
    response: StartResponse,
    parts: HostLoginParts,
}

impl HostAwaitFinish {
    /// Takes the state apart for storage.
    pub fn into_parts(self) -> HostLoginParts {
        self.parts
    }

    /// Rebuilds the state from stored parts (which must be those of the start step).
    pub fn from_parts(parts: HostLoginParts) -> Result<Self, ProtocolError> {
        let (Some(state), None, None) = (
            parts.opaque_state.as_ref(),
            &parts.finish_request,
            &parts.session_key,
        ) else {
            return Err(ProtocolError::FieldRange { field: "parts" });
        };
        let state = ServerLoginState::from_bytes(state)?;
        let r = replay_start(&parts)?;
        Ok(Self {
            state,
            transcript: r.transcript,
            request: r.request,
            response: r.response,
            parts,
        })
    }

    /// The client's start request (its name, profiles and nonce).
    pub fn request(&self) -> &StartRequest {
        &self.request
    }

    /// The login id this state answers to.
    pub fn login_id(&self) -> &[u8; ID_LEN] {
        &self.response.login_id
    }

    /// Checks KE3: only a client that knows the password gets past this (a fake record never
    /// does). Returns the state that sends the bundle.
    pub fn finish(self, request_bytes: &[u8]) -> Result<HostAwaitBundle, ProtocolError> {
        let req = FinishRequest::decode(request_bytes)?;
        if req.login_id != self.response.login_id {
            return Err(ProtocolError::LoginMismatch);
        }
        let context = opaque::context(self.parts.channel_binding.as_ref());
        let ids = Binding::for_user(&self.request.user_id, &context);
        let session_key = opaque::login_verify(self.state, &req.ke3, &ids)?;
        let mut transcript = self.transcript;
        transcript.append_message::<FinishRequest>(request_bytes);
        let mut parts = self.parts;
        parts.opaque_state = None;
        parts.finish_request = Some(request_bytes.to_vec());
        Ok(HostAwaitBundle {
            session_key,
            transcript,
            client_nonce: self.request.client_nonce,
            server_nonce: self.response.server_nonce,
            parts,
        })
    }
}

/// The host after a verified finish, ready to send the bundle.
#[derive(Debug)]
pub struct HostAwaitBundle {
    session_key: OpaqueSessionKey,
    transcript: Transcript,
    client_nonce: [u8; 32],
    server_nonce: [u8; 32],
    parts: HostLoginParts,
}

impl HostAwaitBundle {
    /// Encodes the bundle, seals it under the bundle key and returns the encoded
    /// [`SealedBundle`].
    pub fn send(self, bundle: ChallengeBundle) -> Result<(HostChallenge, Vec<u8>), ProtocolError> {
        let plain = bundle.encode()?;
        let th_finish = self.transcript.hash();
        let key = bundle_key(&self.session_key, &th_finish);
        let bytes = SealedBundle {
            ciphertext: seal_bundle(&key, &th_finish, &plain)?,
        }
        .encode()?;
        let mut transcript = self.transcript;
        transcript.append_message::<ChallengeBundle>(&plain);
        let ctx = DeriveContext::new(&bundle, self.server_nonce, self.client_nonce);
        let mut parts = self.parts;
        parts.challenge_bundle = Some(plain);
        parts.session_key = Some(self.session_key.clone());
        Ok((
            HostChallenge {
                session_key: self.session_key,
                th_bundle: transcript.hash(),
                transcript,
                bundle,
                ctx,
                parts,
            },
            bytes,
        ))
    }
}

/// The host after sending a bundle, waiting for the receipt.
#[derive(Debug)]
pub struct HostChallenge {
    session_key: OpaqueSessionKey,
    transcript: Transcript,
    th_bundle: [u8; 32],
    bundle: ChallengeBundle,
    ctx: DeriveContext,
    parts: HostLoginParts,
}

impl HostChallenge {
    /// Takes the state apart for storage.
    pub fn into_parts(self) -> HostLoginParts {
        self.parts
    }

    /// Rebuilds the state from stored parts (which must include the finish request, the
    /// bundle and the session key).
    pub fn from_parts(parts: HostLoginParts) -> Result<Self, ProtocolError> {
        let (Some(finish), Some(plain), Some(session_key), None) = (
            parts.finish_request.as_ref(),
            parts.challenge_bundle.as_ref(),
            parts.session_key.clone(),
            parts.opaque_state.as_ref(),
        ) else {
            return Err(ProtocolError::FieldRange { field: "parts" });
        };
        let r = replay_start(&parts)?;
        if FinishRequest::decode(finish)?.login_id != r.response.login_id {
            return Err(ProtocolError::LoginMismatch);
        }
        let bundle = ChallengeBundle::decode(plain)?;
        let mut transcript = r.transcript;
        transcript.append_message::<FinishRequest>(finish);
        transcript.append_message::<ChallengeBundle>(plain);
        let ctx = DeriveContext::new(&bundle, r.response.server_nonce, r.request.client_nonce);
        Ok(Self {
            session_key,
            th_bundle: transcript.hash(),
            transcript,
            bundle,
            ctx,
            parts,
        })
    }

    /// The bundle sent.
    pub fn bundle(&self) -> &ChallengeBundle {
        &self.bundle
    }

    /// The transcript hash after the bundle.
    pub fn transcript_hash(&self) -> [u8; 32] {
        self.th_bundle
    }

    /// The auth transform's input for the stored verifiers of the challenges sent.
    pub fn auth_input(
        &self,
        verifiers: &[Zeroizing<Vec<u8>>],
    ) -> Result<DeriveInputBuf, ProtocolError> {
        self.ctx.auth_input(&self.th_bundle, verifiers)
    }

    /// Checks the receipt against the host's own transform output (constant time) and, on
    /// success, opens the session and returns the encoded [`ResponseAccept`], whose confirm
    /// binds the session token.
    pub fn accept(
        self,
        response_bytes: &[u8],
        t_auth: &[u8],
        session_token: [u8; 32],
    ) -> Result<(Session, Vec<u8>), ProtocolError> {
        let req = ResponseRequest::decode(response_bytes)?;
        let secret = SessionSecret::derive(&self.session_key, t_auth, &self.th_bundle)?;
        // Checked after deriving so both failures take the same path length.
        let same_bundle = ct_eq32(&pad16(&req.bundle_id), &pad16(&self.bundle.bundle_id));
        secret.verify_receipt(&self.th_bundle, &req.receipt)?;
        if !same_bundle {
            return Err(ProtocolError::BundleMismatch);
        }
        let mut transcript = self.transcript;
        transcript.append_message::<ResponseRequest>(response_bytes);
        let th_final = transcript.hash();
        let bytes = ResponseAccept {
            session_token,
            confirm: secret.confirm(&th_final, &session_token),
        }
        .encode()?;
        Ok((
            Session {
                session_id: session_id(&session_token),
                secret,
                th_final,
                ctx: self.ctx,
                seq: Sequencer::new(Direction::HostToClient),
                padding: Padding::None,
            },
            bytes,
        ))
    }
}

fn pad16(id: &[u8; ID_LEN]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out[..ID_LEN].copy_from_slice(id);
    out
}
