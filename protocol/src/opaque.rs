//! OPAQUE (RFC 9807) through `opaque-ke`: the cipher suite, the host's OPAQUE keys, and the
//! registration and login steps as functions over bytes.
//!
//! Suite: OPRF ristretto255-SHA512, 3DH over ristretto255 with SHA-512, and argon2id as the
//! client's key-stretching function with OWASP's parameters (m = 19 456 KiB, t = 2, p = 1;
//! `argon2::Params::DEFAULT`). Everything here is generic over the key-stretching function only
//! ([`SuiteWith`]), so RFC 9807's own test vectors (which use the identity function) run
//! through exactly this code; [`Suite`] is the one Kasane uses.
//!
//! Kasane's choices on top of opaque-ke (docs/PROTOCOL.md §5):
//! - the credential identifier and the client identity are the user name, so a record only
//!   opens for the name it was registered under;
//! - the server identity is left to its default (the host's OPAQUE public key);
//! - the context carries the protocol domain and, where the connection allows it, the TLS
//!   exporter value (channel binding), built by [`context`].

use std::marker::PhantomData;

use opaque_ke::ksf::Ksf;
use opaque_ke::{
    ClientLogin, ClientLoginFinishParameters, ClientRegistration,
    ClientRegistrationFinishParameters, CredentialFinalization, CredentialRequest,
    CredentialResponse, Identifiers, RegistrationRequest, RegistrationResponse, RegistrationUpload,
    ServerLogin, ServerLoginParameters, ServerRegistration, ServerSetup,
};
use rand_core::{CryptoRng, RngCore};
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::ProtocolError;

/// The OPAQUE cipher suite with key-stretching function `K`.
#[derive(Debug, Clone, Copy)]
pub struct SuiteWith<K>(PhantomData<K>);

impl<K: Ksf> opaque_ke::CipherSuite for SuiteWith<K> {
    type OprfCs = opaque_ke::Ristretto255;
    type KeyExchange = opaque_ke::TripleDh<opaque_ke::Ristretto255, sha2::Sha512>;
    type Ksf = K;
}

/// Kasane's suite: ristretto255, 3DH with SHA-512, argon2id (OWASP parameters).
pub type Suite = SuiteWith<argon2::Argon2<'static>>;

/// Length of KE1 (blinded element, client nonce, client key share), bytes.
pub const KE1_LEN: usize = 96;
/// Length of KE2 (evaluated element, masking nonce, masked response, server nonce, server key
/// share, server MAC), bytes.
pub const KE2_LEN: usize = 320;
/// Length of KE3 (the client MAC), bytes.
pub const KE3_LEN: usize = 64;
/// Length of OPAQUE's session key and export key (SHA-512), bytes.
pub const OPAQUE_KEY_LEN: usize = 64;
/// Length of a registration record (client public key, masking key, envelope), bytes.
pub const RECORD_LEN: usize = 192;
/// Domain at the start of every OPAQUE context.
pub const CONTEXT_DOMAIN: &[u8] = b"kasane/v2/opaque";

macro_rules! key64 {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; OPAQUE_KEY_LEN]);

        impl $name {
            /// The key bytes (the next key step, or test vectors).
            pub fn expose_secret(&self) -> &[u8; OPAQUE_KEY_LEN] {
                &self.0
            }

            /// A key from stored bytes.
            pub fn from_bytes(bytes: [u8; OPAQUE_KEY_LEN]) -> Self {
                Self(bytes)
            }

            fn from_slice(bytes: &[u8]) -> Result<Self, ProtocolError> {
                let arr: [u8; OPAQUE_KEY_LEN] =
                    bytes.try_into().map_err(|_| ProtocolError::Opaque)?;
                Ok(Self(arr))
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

key64!(
    /// OPAQUE's session key: both sides hold it after a login that verified.
    OpaqueSessionKey
);
key64!(
    /// OPAQUE's export key: only the password holder can compute it (the response key
    /// comes from it).
    ExportKey
);

/// The names and context one OPAQUE run is bound to.
#[derive(Debug, Clone, Copy)]
pub struct Binding<'a> {
    /// The credential identifier (the OPRF key is derived from it).
    pub credential_id: &'a [u8],
    /// The client identity (absent: the client's public key).
    pub client_id: Option<&'a [u8]>,
    /// The server identity (absent: the server's public key).
    pub server_id: Option<&'a [u8]>,
    /// The context both sides must agree on.
    pub context: &'a [u8],
}

impl<'a> Binding<'a> {
    /// Kasane's binding for `user` under `context` (see the module docs).
    pub fn for_user(user: &'a str, context: &'a [u8]) -> Self {
        Self {
            credential_id: user.as_bytes(),
            client_id: Some(user.as_bytes()),
            server_id: None,
            context,
        }
    }

    fn identifiers(&self) -> Identifiers<'a> {
        Identifiers {
            client: self.client_id,
            server: self.server_id,
        }
    }
}

/// The OPAQUE context: `len(domain) ‖ domain ‖ flag ‖ exporter`, where the flag is 1 and the
/// 32-byte RFC 9266 exporter value follows when channel binding is on, 0 and nothing otherwise.
pub fn context(channel_binding: Option<&[u8; 32]>) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + CONTEXT_DOMAIN.len() + 33);
    out.push(CONTEXT_DOMAIN.len() as u8);
    out.extend_from_slice(CONTEXT_DOMAIN);
    match channel_binding {
        Some(v) => {
            out.push(1);
            out.extend_from_slice(v);
        }
        None => out.push(0),
    }
    out
}

fn opaque_err<E>(_: E) -> ProtocolError {
    ProtocolError::Opaque
}

/// The host's OPAQUE secret: the OPRF seed, its static key pair and the fake client key used
/// for unknown names. Shared by every replica (so an unknown name gets the same OPRF answer
/// everywhere). `Debug` prints no bytes.
#[derive(Clone)]
pub struct ServerKeys<K: Ksf = argon2::Argon2<'static>>(ServerSetup<SuiteWith<K>>);

impl<K: Ksf> std::fmt::Debug for ServerKeys<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerKeys(<redacted>)")
    }
}

impl<K: Ksf> ServerKeys<K> {
    /// Fresh keys.
    pub fn generate<R: RngCore + CryptoRng>(rng: &mut R) -> Self {
        Self(ServerSetup::new(rng))
    }

    /// Keys from their parts (test vectors): the OPRF seed (64 bytes), the static private key
    /// (32) and the fake client public key used for unknown names (32). The stored form is
    /// exactly their concatenation in this order.
    pub fn from_parts(
        oprf_seed: &[u8],
        private_key: &[u8],
        fake_client_public_key: &[u8],
    ) -> Result<Self, ProtocolError> {
        Self::from_bytes(&Zeroizing::new(
            [oprf_seed, private_key, fake_client_public_key].concat(),
        ))
    }

    /// The stored form (secret: write it 0600).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.0.serialize().to_vec())
    }

    /// Keys from their stored form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtocolError> {
        ServerSetup::deserialize(bytes)
            .map(Self)
            .map_err(opaque_err)
    }

    /// The static public key (the server identity by default).
    pub fn public_key(&self) -> Vec<u8> {
        self.0.keypair().public().serialize().to_vec()
    }
}

/// The client between registration start and finish.
pub struct ClientRegistrationState<K: Ksf = argon2::Argon2<'static>>(
    ClientRegistration<SuiteWith<K>>,
);

/// Registration, client side, step 1: the request to send.
pub fn registration_start<K: Ksf, R: RngCore + CryptoRng>(
    rng: &mut R,
    password: &[u8],
) -> Result<(ClientRegistrationState<K>, Vec<u8>), ProtocolError> {
    let r = ClientRegistration::<SuiteWith<K>>::start(rng, password).map_err(opaque_err)?;
    Ok((
        ClientRegistrationState(r.state),
        r.message.serialize().to_vec(),
    ))
}

/// Registration, server side: the response to a registration request.
pub fn registration_response<K: Ksf>(
    keys: &ServerKeys<K>,
    request: &[u8],
    credential_id: &[u8],
) -> Result<Vec<u8>, ProtocolError> {
    let req = RegistrationRequest::deserialize(request).map_err(opaque_err)?;
    let r = ServerRegistration::start(&keys.0, req, credential_id).map_err(opaque_err)?;
    Ok(r.message.serialize().to_vec())
}

/// Registration, client side, step 2: the upload (the record the server keeps) and the
/// export key. Runs the key-stretching function once.
pub fn registration_finish<K: Ksf, R: RngCore + CryptoRng>(
    state: ClientRegistrationState<K>,
    rng: &mut R,
    password: &[u8],
    response: &[u8],
    binding: &Binding<'_>,
) -> Result<(Vec<u8>, ExportKey), ProtocolError> {
    let resp = RegistrationResponse::deserialize(response).map_err(opaque_err)?;
    let r = state
        .0
        .finish(
            rng,
            password,
            resp,
            ClientRegistrationFinishParameters::new(binding.identifiers(), None),
        )
        .map_err(opaque_err)?;
    Ok((
        r.message.serialize().to_vec(),
        ExportKey::from_slice(&r.export_key)?,
    ))
}

/// Registration, server side: the record to store from a client's upload (checked to parse).
pub fn registration_record<K: Ksf>(upload: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let up = RegistrationUpload::<SuiteWith<K>>::deserialize(upload).map_err(opaque_err)?;
    Ok(ServerRegistration::finish(up).serialize().to_vec())
}

/// [`registration_start`] for Kasane's [`Suite`] (`kasane passwd`).
pub fn start_registration<R: RngCore + CryptoRng>(
    rng: &mut R,
    password: &[u8],
) -> Result<(ClientRegistrationState, Vec<u8>), ProtocolError> {
    registration_start::<argon2::Argon2<'static>, R>(rng, password)
}

/// Kasane's record from a client's upload ([`registration_record`] for [`Suite`]).
pub fn record_from_upload(upload: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    registration_record::<argon2::Argon2<'static>>(upload)
}

/// Runs both sides of a registration in one place (enrollment by the host, which is given
/// the password): the record to store and the export key.
pub fn register<K: Ksf, R: RngCore + CryptoRng>(
    rng: &mut R,
    keys: &ServerKeys<K>,
    password: &[u8],
    binding: &Binding<'_>,
) -> Result<(Vec<u8>, ExportKey), ProtocolError> {
    let (state, request) = registration_start::<K, R>(rng, password)?;
    let response = registration_response(keys, &request, binding.credential_id)?;
    let (upload, export_key) = registration_finish(state, rng, password, &response, binding)?;
    Ok((registration_record::<K>(&upload)?, export_key))
}

/// The client between KE1 and KE3 (holds the OPRF blind and its key share).
pub struct ClientLoginState<K: Ksf = argon2::Argon2<'static>>(ClientLogin<SuiteWith<K>>);

impl<K: Ksf> std::fmt::Debug for ClientLoginState<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientLoginState(<redacted>)")
    }
}

/// Login, client side, step 1: KE1.
pub fn login_start<K: Ksf, R: RngCore + CryptoRng>(
    rng: &mut R,
    password: &[u8],
) -> Result<(ClientLoginState<K>, Vec<u8>), ProtocolError> {
    let r = ClientLogin::<SuiteWith<K>>::start(rng, password).map_err(opaque_err)?;
    Ok((ClientLoginState(r.state), r.message.serialize().to_vec()))
}

/// The server between KE2 and KE3 (secret; its stored form is [`ServerLoginState::to_bytes`]).
pub struct ServerLoginState<K: Ksf = argon2::Argon2<'static>>(ServerLogin<SuiteWith<K>>);

impl<K: Ksf> std::fmt::Debug for ServerLoginState<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerLoginState(<redacted>)")
    }
}

impl<K: Ksf> ServerLoginState<K> {
    /// The stored form (secret).
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(self.0.serialize().to_vec())
    }

    /// The state from its stored form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ProtocolError> {
        ServerLogin::deserialize(bytes)
            .map(Self)
            .map_err(opaque_err)
    }
}

/// Login, server side, step 1: KE2 for a KE1. `record` is the user's registration record, or
/// `None` for an unknown (or refused) name: opaque-ke then answers from a fake record built
/// from the server keys, indistinguishable from a real one.
pub fn login_respond<K: Ksf, R: RngCore + CryptoRng>(
    rng: &mut R,
    keys: &ServerKeys<K>,
    record: Option<&[u8]>,
    ke1: &[u8],
    binding: &Binding<'_>,
) -> Result<(ServerLoginState<K>, Vec<u8>), ProtocolError> {
    let request = CredentialRequest::deserialize(ke1).map_err(opaque_err)?;
    let file = match record {
        Some(r) => Some(ServerRegistration::deserialize(r).map_err(opaque_err)?),
        None => None,
    };
    let r = ServerLogin::start(
        rng,
        &keys.0,
        file,
        request,
        binding.credential_id,
        ServerLoginParameters {
            context: Some(binding.context),
            identifiers: binding.identifiers(),
        },
    )
    .map_err(opaque_err)?;
    Ok((ServerLoginState(r.state), r.message.serialize().to_vec()))
}

/// What the client holds after a login that opened its envelope.
#[derive(Debug)]
pub struct ClientLoginFinish {
    /// KE3, to send.
    pub ke3: Vec<u8>,
    /// The session key.
    pub session_key: OpaqueSessionKey,
    /// The export key.
    pub export_key: ExportKey,
}

/// Login, client side, step 2: opens the envelope with the password (runs the key-stretching
/// function once) and computes KE3. A wrong password, an unknown name or a fake record all
/// fail here, with [`ProtocolError::Opaque`].
pub fn login_finish<K: Ksf, R: RngCore + CryptoRng>(
    state: ClientLoginState<K>,
    rng: &mut R,
    password: &[u8],
    ke2: &[u8],
    binding: &Binding<'_>,
) -> Result<ClientLoginFinish, ProtocolError> {
    let response = CredentialResponse::deserialize(ke2).map_err(opaque_err)?;
    let r = state
        .0
        .finish(
            rng,
            password,
            response,
            ClientLoginFinishParameters::new(Some(binding.context), binding.identifiers(), None),
        )
        .map_err(opaque_err)?;
    Ok(ClientLoginFinish {
        ke3: r.message.serialize().to_vec(),
        session_key: OpaqueSessionKey::from_slice(&r.session_key)?,
        export_key: ExportKey::from_slice(&r.export_key)?,
    })
}

/// Login, server side, step 2: checks KE3; the session key if the client proved the password.
pub fn login_verify<K: Ksf>(
    state: ServerLoginState<K>,
    ke3: &[u8],
    binding: &Binding<'_>,
) -> Result<OpaqueSessionKey, ProtocolError> {
    let fin = CredentialFinalization::deserialize(ke3).map_err(opaque_err)?;
    let r = state
        .0
        .finish(
            fin,
            ServerLoginParameters {
                context: Some(binding.context),
                identifiers: binding.identifiers(),
            },
        )
        .map_err(opaque_err)?;
    OpaqueSessionKey::from_slice(&r.session_key)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;
    use opaque_ke::ksf::Identity;
    use rand_core::OsRng;

    type Fast = Identity;

    #[test]
    fn lengths_match_the_documented_constants() {
        let keys = ServerKeys::<Fast>::generate(&mut OsRng);
        let ctx = context(None);
        let b = Binding::for_user("alice", &ctx);
        let (record, export) = register(&mut OsRng, &keys, b"pw", &b).unwrap();
        assert_eq!(record.len(), RECORD_LEN);
        let (st, ke1) = login_start::<Fast, _>(&mut OsRng, b"pw").unwrap();
        assert_eq!(ke1.len(), KE1_LEN);
        let (sst, ke2) = login_respond(&mut OsRng, &keys, Some(&record), &ke1, &b).unwrap();
        assert_eq!(ke2.len(), KE2_LEN);
        let fin = login_finish(st, &mut OsRng, b"pw", &ke2, &b).unwrap();
        assert_eq!(fin.ke3.len(), KE3_LEN);
        assert_eq!(fin.export_key.expose_secret(), export.expose_secret());
        let sst = ServerLoginState::<Fast>::from_bytes(&sst.to_bytes()).unwrap();
        let key = login_verify(sst, &fin.ke3, &b).unwrap();
        assert_eq!(key.expose_secret(), fin.session_key.expose_secret());
        assert_eq!(
            ServerKeys::<Fast>::from_bytes(&keys.to_bytes())
                .unwrap()
                .public_key(),
            keys.public_key()
        );
    }

    #[test]
    fn wrong_password_other_name_and_other_context_fail() {
        let keys = ServerKeys::<Fast>::generate(&mut OsRng);
        let ctx = context(None);
        let bound = context(Some(&[7; 32]));
        let alice = Binding::for_user("alice", &ctx);
        let (record, _) = register(&mut OsRng, &keys, b"pw", &alice).unwrap();
        let attempt = |pw: &[u8], server: &Binding<'_>, client: &Binding<'_>| {
            let (st, ke1) = login_start::<Fast, _>(&mut OsRng, pw).unwrap();
            let (sst, ke2) = login_respond(&mut OsRng, &keys, Some(&record), &ke1, server)?;
            let fin = login_finish(st, &mut OsRng, pw, &ke2, client)?;
            login_verify(sst, &fin.ke3, server).map(|_| ())
        };
        assert!(attempt(b"pw", &alice, &alice).is_ok());
        assert!(attempt(b"pW", &alice, &alice).is_err());
        let bob = Binding::for_user("bob", &ctx);
        assert!(
            attempt(b"pw", &bob, &bob).is_err(),
            "record bound to its name"
        );
        let alice_bound = Binding::for_user("alice", &bound);
        assert!(attempt(b"pw", &alice, &alice_bound).is_err(), "context");
    }

    #[test]
    fn an_unknown_name_gets_the_same_oprf_answer_from_restored_keys() {
        let keys = ServerKeys::<Fast>::generate(&mut OsRng);
        let copy = ServerKeys::<Fast>::from_bytes(&keys.to_bytes()).unwrap();
        let ctx = context(None);
        let b = Binding::for_user("nobody", &ctx);
        let (_, ke1) = login_start::<Fast, _>(&mut OsRng, b"pw").unwrap();
        let (_, a) = login_respond(&mut OsRng, &keys, None, &ke1, &b).unwrap();
        let (_, c) = login_respond(&mut OsRng, &copy, None, &ke1, &b).unwrap();
        assert_eq!(a.len(), KE2_LEN);
        assert_eq!(a[..32], c[..32], "evaluated element is keyed by the seed");
        assert_ne!(a[32..], c[32..], "the rest is fresh per answer");
    }
}
