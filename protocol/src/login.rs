//! The login as two state machines over wire bytes, and the resulting [`Session`].
//!
//! Each state consumes itself and returns the next, so a step cannot run twice (a second use
//! of one bundle, a replayed response) on one state. The machines never do I/O, never read a
//! clock and never run a transform: the caller moves bytes, checks expiries and tickets, and
//! runs the sandbox on the [`DeriveInputBuf`]s they build.
//!
//! ```text
//! client                                host
//! ClientHello::new ── HelloRequest ───▶ HostHello::respond
//! .receive        ◀── HelloResponse ──  (signs with the host key)
//! ClientPassword::request ─ PasswordRequest ▶ HostAwaitPassword::receive → PasswordAttempt
//! ClientAwaitBundle::receive ◀ ChallengeBundle ─ HostAwaitBundle::send
//! ClientChallenge::respond ─ ResponseRequest ▶ HostChallenge::accept (receipt checked)
//! ClientAwaitAccept::receive ◀ ResponseAccept ─ → Session on both sides
//! ```

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use zeroize::Zeroizing;

use crate::derive::DeriveContext;
use crate::error::ProtocolError;
use crate::schedule::{
    DhSecret, EphemeralSecret, SessionSecret, open_password, password_aad, password_key,
    seal_password, session_id,
};
use crate::seal::{MessageHeader, Padding, Sequencer, open_message, seal_message};
use crate::transcript::{CHANNEL_BINDING_LEN, Transcript, hello_signature_digest};
use crate::wire::{
    ChallengeBundle, HelloRequest, HelloResponse, ID_LEN, Message, PasswordRequest, Profile,
    ResponseAccept, ResponseRequest, SealedMessage, Signature64,
};
use kasane_abi::{DeriveInputBuf, Direction};

/// The client before the host has answered its hello.
#[derive(Debug)]
pub struct ClientHello {
    secret: EphemeralSecret,
    request: HelloRequest,
    request_bytes: Vec<u8>,
}

impl ClientHello {
    /// Starts a login with a fresh ephemeral key and nonce.
    pub fn new<R: rand_core::RngCore + rand_core::CryptoRng>(
        rng: &mut R,
        profiles: Vec<Profile>,
    ) -> Result<Self, ProtocolError> {
        let secret = EphemeralSecret::random(rng);
        let mut nonce = [0u8; 32];
        rng.fill_bytes(&mut nonce);
        Self::from_parts(secret, nonce, profiles)
    }

    /// Starts a login with a given ephemeral secret and nonce (test vectors).
    pub fn from_parts(
        secret: EphemeralSecret,
        client_nonce: [u8; 32],
        profiles: Vec<Profile>,
    ) -> Result<Self, ProtocolError> {
        let request = HelloRequest {
            client_ephemeral: secret.public_key(),
            client_nonce,
            profiles,
        };
        let request_bytes = request.encode()?;
        Ok(Self {
            secret,
            request,
            request_bytes,
        })
    }

    /// The encoded [`HelloRequest`] to send.
    pub fn request_bytes(&self) -> &[u8] {
        &self.request_bytes
    }

    /// The request (its nonce is what the session ticket must name).
    pub fn request(&self) -> &HelloRequest {
        &self.request
    }

    /// Checks the host's answer: its key must be one of `host_keys` (the keys of the
    /// registry's `host` role, from the client's trust store) and its signature must verify
    /// strictly. `channel_binding` is
    /// this side's TLS exporter value; it is used exactly when the host's signed flag says so,
    /// and a host that asks for it when there is none is refused.
    pub fn receive(
        self,
        response_bytes: &[u8],
        host_keys: &[VerifyingKey],
        channel_binding: Option<&[u8; CHANNEL_BINDING_LEN]>,
    ) -> Result<ClientPassword, ProtocolError> {
        let response = HelloResponse::decode(response_bytes)?;
        let host_key = host_keys
            .iter()
            .find(|k| k.as_bytes() == &response.host_public_key)
            .ok_or(ProtocolError::HostKey)?;
        let digest = hello_signature_digest(
            &self.request_bytes,
            &response.login_id,
            &response.server_ephemeral,
            &response.server_nonce,
            response.channel_binding,
        );
        host_key
            .verify_strict(&digest, &Signature::from_bytes(&response.signature.0))
            .map_err(|_| ProtocolError::BadSignature)?;
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
        let dh = self.secret.diffie_hellman(&response.server_ephemeral)?;
        let mut transcript = Transcript::new();
        transcript.append_message::<HelloRequest>(&self.request_bytes);
        transcript.append_message::<HelloResponse>(response_bytes);
        transcript.append_channel_binding(binding);
        Ok(ClientPassword {
            dh,
            transcript,
            login_id: response.login_id,
            client_nonce: self.request.client_nonce,
            server_nonce: response.server_nonce,
            channel_binding: response.channel_binding,
        })
    }
}

/// The client after a verified hello, ready to send the password.
#[derive(Debug)]
pub struct ClientPassword {
    dh: DhSecret,
    transcript: Transcript,
    login_id: [u8; ID_LEN],
    client_nonce: [u8; 32],
    server_nonce: [u8; 32],
    channel_binding: bool,
}

impl ClientPassword {
    /// Whether the host bound the TLS channel (a client may require it).
    pub fn host_uses_channel_binding(&self) -> bool {
        self.channel_binding
    }

    /// Seals the password and returns the encoded [`PasswordRequest`].
    pub fn request(
        self,
        user_id: &str,
        password: &[u8],
    ) -> Result<(ClientAwaitBundle, Vec<u8>), ProtocolError> {
        let th = self.transcript.hash();
        let key = password_key(&self.dh, &th);
        let sealed_password =
            seal_password(&key, &password_aad(&th, &self.login_id, user_id), password)?;
        let bytes = PasswordRequest {
            login_id: self.login_id,
            user_id: user_id.to_owned(),
            sealed_password,
        }
        .encode()?;
        let mut transcript = self.transcript;
        transcript.append_message::<PasswordRequest>(&bytes);
        Ok((
            ClientAwaitBundle {
                dh: self.dh,
                transcript,
                client_nonce: self.client_nonce,
                server_nonce: self.server_nonce,
            },
            bytes,
        ))
    }
}

/// The client waiting for its challenge bundle.
#[derive(Debug)]
pub struct ClientAwaitBundle {
    dh: DhSecret,
    transcript: Transcript,
    client_nonce: [u8; 32],
    server_nonce: [u8; 32],
}

impl ClientAwaitBundle {
    /// Decodes the bundle. The caller then verifies its ticket and module (registry) and
    /// checks its expiry.
    pub fn receive(self, bundle_bytes: &[u8]) -> Result<ClientChallenge, ProtocolError> {
        let bundle = ChallengeBundle::decode(bundle_bytes)?;
        let mut transcript = self.transcript;
        transcript.append_message::<ChallengeBundle>(bundle_bytes);
        let ctx = DeriveContext::new(&bundle, self.server_nonce, self.client_nonce);
        Ok(ClientChallenge {
            dh: self.dh,
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
    dh: DhSecret,
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
        let secret = SessionSecret::derive(&self.dh, t_auth, &self.th_bundle)?;
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
    /// Checks the confirm (mutual authentication) and opens the session.
    pub fn receive(self, accept_bytes: &[u8]) -> Result<Session, ProtocolError> {
        let accept = ResponseAccept::decode(accept_bytes)?;
        self.secret
            .verify_confirm(&self.th_final, &accept.confirm)?;
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

/// The host's answer to a hello.
#[derive(Debug)]
pub struct HostHello;

/// What the host chooses for one hello.
#[derive(Debug)]
pub struct HostHelloParams<'a> {
    /// A fresh ephemeral secret.
    pub ephemeral: EphemeralSecret,
    /// A fresh nonce.
    pub server_nonce: [u8; 32],
    /// A fresh login id.
    pub login_id: [u8; ID_LEN],
    /// The host role key.
    pub host_key: &'a SigningKey,
    /// The TLS exporter value when channel binding is on (`None` behind a TLS-terminating proxy).
    pub channel_binding: Option<&'a [u8; CHANNEL_BINDING_LEN]>,
}

impl HostHello {
    /// Decodes a hello, answers it signed by the host key, and returns the encoded
    /// [`HelloResponse`].
    pub fn respond(
        request_bytes: &[u8],
        params: HostHelloParams<'_>,
    ) -> Result<(HostAwaitPassword, Vec<u8>), ProtocolError> {
        let request = HelloRequest::decode(request_bytes)?;
        let dh = params.ephemeral.diffie_hellman(&request.client_ephemeral)?;
        let server_ephemeral = params.ephemeral.public_key();
        let flag = params.channel_binding.is_some();
        let digest = hello_signature_digest(
            request_bytes,
            &params.login_id,
            &server_ephemeral,
            &params.server_nonce,
            flag,
        );
        let bytes = HelloResponse {
            login_id: params.login_id,
            server_ephemeral,
            server_nonce: params.server_nonce,
            channel_binding: flag,
            host_public_key: params.host_key.verifying_key().to_bytes(),
            signature: Signature64(params.host_key.sign(&digest).to_bytes()),
        }
        .encode()?;
        let mut transcript = Transcript::new();
        transcript.append_message::<HelloRequest>(request_bytes);
        transcript.append_message::<HelloResponse>(&bytes);
        transcript.append_channel_binding(params.channel_binding);
        let log = HostLog {
            hello_request: request_bytes.to_vec(),
            hello_response: bytes.clone(),
            channel_binding: params.channel_binding.copied(),
        };
        Ok((
            HostAwaitPassword {
                dh,
                transcript,
                request,
                login_id: params.login_id,
                server_nonce: params.server_nonce,
                log,
            },
            bytes,
        ))
    }
}

/// The host waiting for the password.
#[derive(Debug)]
pub struct HostAwaitPassword {
    dh: DhSecret,
    transcript: Transcript,
    request: HelloRequest,
    login_id: [u8; ID_LEN],
    server_nonce: [u8; 32],
    log: HostLog,
}

/// The messages of a login so far, kept so a host state can be stored and rebuilt.
#[derive(Clone, Debug)]
struct HostLog {
    hello_request: Vec<u8>,
    hello_response: Vec<u8>,
    channel_binding: Option<[u8; CHANNEL_BINDING_LEN]>,
}

/// A host login state taken apart for storage between requests (a host replica that gets
/// the next request rebuilds it with `from_parts`). `Debug` prints no secret.
///
/// The transcript is rebuilt from the stored message bytes, so they must be stored exactly.
#[derive(Debug)]
pub struct HostLoginParts {
    /// The X25519 shared secret.
    pub dh: DhSecret,
    /// The hello request as received.
    pub hello_request: Vec<u8>,
    /// The hello response as sent.
    pub hello_response: Vec<u8>,
    /// The TLS exporter value, when channel binding was on.
    pub channel_binding: Option<[u8; CHANNEL_BINDING_LEN]>,
    /// The password request as received (after the password step).
    pub password_request: Option<Vec<u8>>,
    /// The challenge bundle as sent (after the password step).
    pub challenge_bundle: Option<Vec<u8>>,
}

/// Rebuilds the state after the hello from stored parts.
fn replay_hello(
    parts: &HostLoginParts,
) -> Result<(Transcript, HelloRequest, HelloResponse), ProtocolError> {
    let request = HelloRequest::decode(&parts.hello_request)?;
    let response = HelloResponse::decode(&parts.hello_response)?;
    if response.channel_binding != parts.channel_binding.is_some() {
        return Err(ProtocolError::ChannelBinding {
            host: response.channel_binding,
            local: parts.channel_binding.is_some(),
        });
    }
    let mut transcript = Transcript::new();
    transcript.append_message::<HelloRequest>(&parts.hello_request);
    transcript.append_message::<HelloResponse>(&parts.hello_response);
    transcript.append_channel_binding(parts.channel_binding.as_ref());
    Ok((transcript, request, response))
}

/// A decrypted password attempt (zeroized on drop; `Debug` prints no password).
pub struct PasswordAttempt {
    /// The user id claimed.
    pub user_id: String,
    /// The password, to check with argon2id.
    pub password: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for PasswordAttempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordAttempt")
            .field("user_id", &self.user_id)
            .finish_non_exhaustive()
    }
}

impl HostAwaitPassword {
    /// Takes the state apart for storage.
    pub fn into_parts(self) -> HostLoginParts {
        HostLoginParts {
            dh: self.dh,
            hello_request: self.log.hello_request,
            hello_response: self.log.hello_response,
            channel_binding: self.log.channel_binding,
            password_request: None,
            challenge_bundle: None,
        }
    }

    /// Rebuilds the state from stored parts (which must not have reached the password step).
    pub fn from_parts(parts: HostLoginParts) -> Result<Self, ProtocolError> {
        if parts.password_request.is_some() || parts.challenge_bundle.is_some() {
            return Err(ProtocolError::FieldRange { field: "parts" });
        }
        let (transcript, request, response) = replay_hello(&parts)?;
        Ok(Self {
            transcript,
            request,
            login_id: response.login_id,
            server_nonce: response.server_nonce,
            log: HostLog {
                hello_request: parts.hello_request.clone(),
                hello_response: parts.hello_response.clone(),
                channel_binding: parts.channel_binding,
            },
            dh: parts.dh,
        })
    }

    /// The client's hello (its profiles choose the transform; its nonce goes in the ticket).
    pub fn hello(&self) -> &HelloRequest {
        &self.request
    }

    /// The login id this state answers to.
    pub fn login_id(&self) -> &[u8; ID_LEN] {
        &self.login_id
    }

    /// Decodes and opens the password. The caller checks it (or prepares a decoy) and sends
    /// a bundle with [`HostAwaitBundle::send`].
    pub fn receive(
        self,
        request_bytes: &[u8],
    ) -> Result<(PasswordAttempt, HostAwaitBundle), ProtocolError> {
        let req = PasswordRequest::decode(request_bytes)?;
        if req.login_id != self.login_id {
            return Err(ProtocolError::LoginMismatch);
        }
        let th = self.transcript.hash();
        let key = password_key(&self.dh, &th);
        let password = open_password(
            &key,
            &password_aad(&th, &self.login_id, &req.user_id),
            &req.sealed_password,
        )?;
        let mut transcript = self.transcript;
        transcript.append_message::<PasswordRequest>(request_bytes);
        Ok((
            PasswordAttempt {
                user_id: req.user_id,
                password,
            },
            HostAwaitBundle {
                dh: self.dh,
                transcript,
                client_nonce: self.request.client_nonce,
                server_nonce: self.server_nonce,
                log: self.log,
                password_request: request_bytes.to_vec(),
            },
        ))
    }
}

/// The host after the password step, ready to send a bundle (real or decoy).
#[derive(Debug)]
pub struct HostAwaitBundle {
    dh: DhSecret,
    transcript: Transcript,
    client_nonce: [u8; 32],
    server_nonce: [u8; 32],
    log: HostLog,
    password_request: Vec<u8>,
}

impl HostAwaitBundle {
    /// Encodes the bundle and returns the encoded [`ChallengeBundle`].
    pub fn send(self, bundle: ChallengeBundle) -> Result<(HostChallenge, Vec<u8>), ProtocolError> {
        let bytes = bundle.encode()?;
        let mut transcript = self.transcript;
        transcript.append_message::<ChallengeBundle>(&bytes);
        let ctx = DeriveContext::new(&bundle, self.server_nonce, self.client_nonce);
        Ok((
            HostChallenge {
                dh: self.dh,
                th_bundle: transcript.hash(),
                transcript,
                bundle,
                ctx,
                log: self.log,
                password_request: self.password_request,
                bundle_bytes: bytes.clone(),
            },
            bytes,
        ))
    }
}

/// The host after sending a bundle, waiting for the receipt.
#[derive(Debug)]
pub struct HostChallenge {
    dh: DhSecret,
    transcript: Transcript,
    th_bundle: [u8; 32],
    bundle: ChallengeBundle,
    ctx: DeriveContext,
    log: HostLog,
    password_request: Vec<u8>,
    bundle_bytes: Vec<u8>,
}

impl HostChallenge {
    /// Takes the state apart for storage.
    pub fn into_parts(self) -> HostLoginParts {
        HostLoginParts {
            dh: self.dh,
            hello_request: self.log.hello_request,
            hello_response: self.log.hello_response,
            channel_binding: self.log.channel_binding,
            password_request: Some(self.password_request),
            challenge_bundle: Some(self.bundle_bytes),
        }
    }

    /// Rebuilds the state from stored parts (which must include the password request and
    /// the bundle).
    pub fn from_parts(parts: HostLoginParts) -> Result<Self, ProtocolError> {
        let (Some(password_request), Some(bundle_bytes)) = (
            parts.password_request.clone(),
            parts.challenge_bundle.clone(),
        ) else {
            return Err(ProtocolError::FieldRange { field: "parts" });
        };
        let (mut transcript, request, response) = replay_hello(&parts)?;
        if PasswordRequest::decode(&password_request)?.login_id != response.login_id {
            return Err(ProtocolError::LoginMismatch);
        }
        let bundle = ChallengeBundle::decode(&bundle_bytes)?;
        transcript.append_message::<PasswordRequest>(&password_request);
        transcript.append_message::<ChallengeBundle>(&bundle_bytes);
        let ctx = DeriveContext::new(&bundle, response.server_nonce, request.client_nonce);
        Ok(Self {
            th_bundle: transcript.hash(),
            transcript,
            bundle,
            ctx,
            log: HostLog {
                hello_request: parts.hello_request.clone(),
                hello_response: parts.hello_response.clone(),
                channel_binding: parts.channel_binding,
            },
            password_request,
            bundle_bytes,
            dh: parts.dh,
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
    /// success, opens the session and returns the encoded [`ResponseAccept`].
    pub fn accept(
        self,
        response_bytes: &[u8],
        t_auth: &[u8],
        session_token: [u8; 32],
    ) -> Result<(Session, Vec<u8>), ProtocolError> {
        let req = ResponseRequest::decode(response_bytes)?;
        let secret = SessionSecret::derive(&self.dh, t_auth, &self.th_bundle)?;
        // Checked after deriving so both failures take the same path length.
        let same_bundle =
            crate::schedule::ct_eq32(&pad16(&req.bundle_id), &pad16(&self.bundle.bundle_id));
        secret.verify_receipt(&self.th_bundle, &req.receipt)?;
        if !same_bundle {
            return Err(ProtocolError::BundleMismatch);
        }
        let mut transcript = self.transcript;
        transcript.append_message::<ResponseRequest>(response_bytes);
        let th_final = transcript.hash();
        let bytes = ResponseAccept {
            session_token,
            confirm: secret.confirm(&th_final),
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

/// Everything that makes up a [`Session`], for a host that stores sessions (and restores them
/// on any replica). `Debug` prints no secret.
///
/// Restoring the same parts twice and sealing from both copies would reuse a `(key, nonce)`
/// pair: a store must hand out sending sequence numbers atomically (e.g. with
/// `UPDATE … SET last_sent = last_sent + 1 RETURNING last_sent`) and restore with that value.
#[derive(Debug)]
pub struct SessionParts {
    /// The session id.
    pub session_id: [u8; ID_LEN],
    /// The session secret.
    pub secret: SessionSecret,
    /// The final transcript hash.
    pub transcript_hash: [u8; 32],
    /// The public transform context.
    pub context: DeriveContext,
    /// The direction this side sends in (host: host to client).
    pub outgoing: Direction,
    /// The last sequence number reserved for sending.
    pub last_sent: u64,
    /// The last incoming sequence number accepted.
    pub last_received: u64,
}

/// An established session: seals and opens messages through the per-message transform.
///
/// Deliberately not `Clone`: two copies sealing with the same sequence number would reuse a
/// key and nonce. See [`SessionParts`] for storing one.
///
/// Sending: [`Session::prepare_seal`] reserves a sequence number and gives the transform's
/// input; [`Session::seal`] seals with its output. Receiving: [`Session::prepare_open`]
/// checks session, direction and sequence number and gives the input; [`Session::open`]
/// opens and only then records the sequence number.
#[derive(Debug)]
pub struct Session {
    session_id: [u8; ID_LEN],
    secret: SessionSecret,
    th_final: [u8; 32],
    ctx: DeriveContext,
    seq: Sequencer,
    padding: Padding,
}

impl Session {
    /// Takes the session apart for storage.
    pub fn into_parts(self) -> SessionParts {
        SessionParts {
            session_id: self.session_id,
            secret: self.secret,
            transcript_hash: self.th_final,
            context: self.ctx,
            outgoing: self.seq.outgoing(),
            last_sent: self.seq.last_sent(),
            last_received: self.seq.last_received(),
        }
    }

    /// Restores a stored session (padding off; set it again if wanted).
    pub fn from_parts(parts: SessionParts) -> Self {
        Self {
            session_id: parts.session_id,
            secret: parts.secret,
            th_final: parts.transcript_hash,
            ctx: parts.context,
            seq: Sequencer::restore(parts.outgoing, parts.last_sent, parts.last_received),
            padding: Padding::None,
        }
    }

    /// The session id (public; derived from the token).
    pub fn session_id(&self) -> &[u8; ID_LEN] {
        &self.session_id
    }

    /// The final transcript hash (after the response request).
    pub fn transcript_hash(&self) -> &[u8; 32] {
        &self.th_final
    }

    /// The session secret (for test vectors and agreement checks).
    pub fn secret(&self) -> &SessionSecret {
        &self.secret
    }

    /// The sequence state.
    pub fn sequencer(&self) -> &Sequencer {
        &self.seq
    }

    /// Turns length-hiding padding on or off for messages this side sends.
    pub fn set_padding(&mut self, padding: Padding) {
        self.padding = padding;
    }

    /// Reserves the next outgoing sequence number; returns it and the transform input.
    pub fn prepare_seal(&mut self) -> Result<(u64, DeriveInputBuf), ProtocolError> {
        let seq = self.seq.next_outgoing()?;
        Ok((
            seq,
            self.ctx
                .message_input(&self.th_final, self.seq.outgoing(), seq),
        ))
    }

    /// Seals `plaintext` as message `seq` (from [`Session::prepare_seal`]) for `recipient`.
    pub fn seal(
        &self,
        seq: u64,
        t_msg: &[u8],
        recipient: &str,
        plaintext: &[u8],
    ) -> Result<SealedMessage, ProtocolError> {
        seal_message(
            &self.secret,
            t_msg,
            MessageHeader {
                session_id: &self.session_id,
                direction: self.seq.outgoing(),
                seq,
                recipient,
            },
            plaintext,
            self.padding,
        )
    }

    /// Checks a received message's session, direction and sequence number; returns the
    /// transform input for it.
    pub fn prepare_open(&self, sealed: &SealedMessage) -> Result<DeriveInputBuf, ProtocolError> {
        if sealed.session_id != self.session_id {
            return Err(ProtocolError::WrongSession);
        }
        self.seq.check_incoming(sealed.direction, sealed.seq)?;
        Ok(self
            .ctx
            .message_input(&self.th_final, sealed.direction, sealed.seq))
    }

    /// Opens a received message with the transform's output and records its sequence number.
    pub fn open(
        &mut self,
        sealed: &SealedMessage,
        t_msg: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, ProtocolError> {
        if sealed.session_id != self.session_id {
            return Err(ProtocolError::WrongSession);
        }
        self.seq.check_incoming(sealed.direction, sealed.seq)?;
        let plaintext = open_message(&self.secret, t_msg, sealed)?;
        self.seq.commit_incoming(sealed.direction, sealed.seq)?;
        Ok(plaintext)
    }
}
