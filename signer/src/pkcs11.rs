//! [`Pkcs11Signer`]: a private key that never leaves a PKCS#11 token (hardware token, HSM,
//! KMS with a PKCS#11 module; SoftHSM2 in tests), through `cryptoki`.
//!
//! The private key object (`CKO_PRIVATE_KEY`) and its public key (`CKO_PUBLIC_KEY`) carry the
//! same `CKA_LABEL`. `CKA_KEY_TYPE` and `CKA_EC_PARAMS` tell the algorithm: `CKK_EC_EDWARDS`
//! on Ed25519 (signed with `CKM_EDDSA`) or `CKK_EC` on P-256 (signed with `CKM_ECDSA` over a
//! SHA-256 digest computed here; the token's raw `r‖s` becomes ASN.1 DER). Every signature is
//! checked against the public key before it is returned, so a faulty token or a mismatched
//! public object cannot publish bad metadata.
//!
//! The module is initialized once per process (`C_Initialize` answering "already
//! initialized" is fine) and never finalized here: other signers may share it.

use std::path::Path;
use std::sync::{Mutex, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::eddsa::{EddsaParams, EddsaSignatureScheme};
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::slot::Slot;
use cryptoki::types::AuthPin;
use rand_core::{OsRng, RngCore as _};
use sha2::{Digest as _, Sha256};

use crate::{KeyKind, PublicKey, Signer, SignerError};

/// DER `OBJECT IDENTIFIER 1.3.101.112` (id-Ed25519), the `CKA_EC_PARAMS` of Ed25519 keys.
const ED25519_PARAMS_OID: &[u8] = &[0x06, 0x03, 0x2b, 0x65, 0x70];
/// DER `PrintableString "edwards25519"`, the older `CKA_EC_PARAMS` spelling of Ed25519.
const ED25519_PARAMS_NAME: &[u8] = b"\x13\x0cedwards25519";
/// DER `OBJECT IDENTIFIER 1.2.840.10045.3.1.7` (prime256v1), the `CKA_EC_PARAMS` of P-256.
const P256_PARAMS_OID: &[u8] = &[0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];

/// A signer whose private key lives on a PKCS#11 token (see the module docs).
///
/// Calls are serialized on one logged-in session; if the token drops the session or the
/// login (token reinserted, HSM failover), the next signature opens a new session and logs in
/// again once. The PIN is kept for that, in a buffer wiped on drop; `Debug` never shows it.
pub struct Pkcs11Signer {
    public: PublicKey,
    kind: KeyKind,
    key_label: String,
    token_label: String,
    ctx: Pkcs11,
    slot: Slot,
    pin: AuthPin,
    live: Mutex<Live>,
}

/// The open, logged-in session and the private key's handle in it.
struct Live {
    session: Session,
    key: ObjectHandle,
}

impl std::fmt::Debug for Pkcs11Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pkcs11Signer")
            .field("token_label", &self.token_label)
            .field("key_label", &self.key_label)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl Pkcs11Signer {
    /// Loads the PKCS#11 module at `module_path`, finds the token labelled `token_label`,
    /// logs in with `user_pin` and finds the key pair labelled `key_label`.
    ///
    /// Errors: [`SignerError::ModuleLoad`], [`SignerError::TokenNotFound`],
    /// [`SignerError::BadPin`], [`SignerError::KeyNotFound`],
    /// [`SignerError::UnsupportedKeyType`], [`SignerError::Token`].
    pub fn open(
        module_path: &Path,
        token_label: &str,
        user_pin: &str,
        key_label: &str,
    ) -> Result<Self, SignerError> {
        let ctx = load_module(module_path)?;
        let slot = find_token(&ctx, token_label)?;
        let pin = AuthPin::from(user_pin.to_owned());
        let session = login(&ctx, slot, &pin, false)?;
        let key = find_one(&session, ObjectClass::PRIVATE_KEY, key_label)?;
        let (kind, public) = read_public_key(&session, key_label)?;
        if key_type(&session, key)? != key_type_of(kind) {
            return Err(SignerError::UnsupportedKeyType(format!(
                "private key {key_label:?} and its public key have different key types"
            )));
        }
        Ok(Self {
            public,
            kind,
            key_label: key_label.to_owned(),
            token_label: token_label.to_owned(),
            ctx,
            slot,
            pin,
            live: Mutex::new(Live { session, key }),
        })
    }

    /// Generates a key pair of `kind` on the token labelled `token_label`, both halves
    /// labelled `key_label` (the private half sensitive and never extractable), and returns
    /// the public key. Refuses ([`SignerError::KeyLabelExists`]) if a private key with that
    /// label already exists. For tests and `kasane-registry keygen --pkcs11`.
    pub fn generate(
        module_path: &Path,
        token_label: &str,
        user_pin: &str,
        key_label: &str,
        kind: KeyKind,
    ) -> Result<PublicKey, SignerError> {
        let ctx = load_module(module_path)?;
        let slot = find_token(&ctx, token_label)?;
        let pin = AuthPin::from(user_pin.to_owned());
        let session = login(&ctx, slot, &pin, true)?;
        let existing = find_objects(&session, ObjectClass::PRIVATE_KEY, key_label)?;
        if !existing.is_empty() {
            return Err(SignerError::KeyLabelExists {
                label: key_label.to_owned(),
            });
        }
        let (mechanism, params) = match kind {
            KeyKind::Ed25519 => (Mechanism::EccEdwardsKeyPairGen, ED25519_PARAMS_OID),
            KeyKind::EcdsaP256 => (Mechanism::EccKeyPairGen, P256_PARAMS_OID),
        };
        let mut id = [0u8; 16];
        OsRng.fill_bytes(&mut id);
        let label = key_label.as_bytes().to_vec();
        let public_template = [
            Attribute::Token(true),
            Attribute::Private(false),
            Attribute::Verify(true),
            Attribute::EcParams(params.to_vec()),
            Attribute::Label(label.clone()),
            Attribute::Id(id.to_vec()),
        ];
        let private_template = [
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Sign(true),
            Attribute::Label(label),
            Attribute::Id(id.to_vec()),
        ];
        session
            .generate_key_pair(&mechanism, &public_template, &private_template)
            .map_err(|e| token_error("generating a key pair", e))?;
        let (_, public) = read_public_key(&session, key_label)?;
        Ok(public)
    }

    /// The algorithm of this key.
    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    /// The label of the key pair on the token.
    pub fn key_label(&self) -> &str {
        &self.key_label
    }

    /// The label of the token holding the key.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    /// One signature on `live`, in the format of [`Signer::sign`].
    fn sign_once(&self, live: &Live, msg: &[u8]) -> Result<Vec<u8>, CkError> {
        match self.kind {
            KeyKind::Ed25519 => {
                let mechanism = Mechanism::Eddsa(EddsaParams::new(EddsaSignatureScheme::Pure));
                live.session.sign(&mechanism, live.key, msg)
            }
            KeyKind::EcdsaP256 => {
                let digest = Sha256::digest(msg);
                let raw = live.session.sign(&Mechanism::Ecdsa, live.key, &digest)?;
                match p256::ecdsa::Signature::from_slice(&raw) {
                    Ok(sig) => Ok(sig.to_der().as_bytes().to_vec()),
                    // Not r‖s: the self-check below turns this into an error.
                    Err(_) => Ok(raw),
                }
            }
        }
    }

    /// A new logged-in session, and the key's handle in it.
    fn reconnect(&self) -> Result<Live, SignerError> {
        let session = login(&self.ctx, self.slot, &self.pin, false)?;
        let key = find_one(&session, ObjectClass::PRIVATE_KEY, &self.key_label)?;
        Ok(Live { session, key })
    }
}

impl Signer for Pkcs11Signer {
    fn public_key(&self) -> &PublicKey {
        &self.public
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, SignerError> {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        let sig = match self.sign_once(&live, msg) {
            Err(CkError::Pkcs11(rv, _)) if session_lost(rv) => {
                *live = self.reconnect()?;
                self.sign_once(&live, msg)
            }
            other => other,
        }
        .map_err(|e| token_error("signing", e))?;
        self.public
            .verify(msg, &sig)
            .map_err(|_| SignerError::Token {
                context: "checking the token's signature",
                source: "the signature does not verify under the key's public key object".into(),
            })?;
        Ok(sig)
    }
}

/// Whether a failed call means the session or its login is gone (worth one new session).
fn session_lost(rv: RvError) -> bool {
    matches!(
        rv,
        RvError::SessionHandleInvalid
            | RvError::SessionClosed
            | RvError::UserNotLoggedIn
            // A logout drops the handles of private objects (SoftHSM does so).
            | RvError::KeyHandleInvalid
            | RvError::ObjectHandleInvalid
            | RvError::DeviceRemoved
            | RvError::TokenNotPresent
    )
}

fn token_error(context: &'static str, source: CkError) -> SignerError {
    SignerError::Token {
        context,
        source: Box::new(source),
    }
}

/// Loads and initializes the module; "already initialized" (another signer) is fine.
fn load_module(path: &Path) -> Result<Pkcs11, SignerError> {
    let load_error = |e: CkError| SignerError::ModuleLoad {
        module: path.to_owned(),
        source: Box::new(e),
    };
    let ctx = Pkcs11::new(path).map_err(load_error)?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(ctx),
        Err(e) => Err(load_error(e)),
    }
}

/// The slot whose token is labelled `label` (labels are blank-padded on the token).
fn find_token(ctx: &Pkcs11, label: &str) -> Result<Slot, SignerError> {
    let slots = ctx
        .get_slots_with_token()
        .map_err(|e| token_error("listing slots", e))?;
    for slot in slots {
        let info = ctx
            .get_token_info(slot)
            .map_err(|e| token_error("reading token information", e))?;
        if info.label().trim_end_matches(' ') == label {
            return Ok(slot);
        }
    }
    Err(SignerError::TokenNotFound {
        label: label.to_owned(),
    })
}

/// Opens a session (read-write if `rw`) and logs the user in. A token already logged in by
/// another session of this process keeps that login.
fn login(ctx: &Pkcs11, slot: Slot, pin: &AuthPin, rw: bool) -> Result<Session, SignerError> {
    let session = if rw {
        ctx.open_rw_session(slot)
    } else {
        ctx.open_ro_session(slot)
    }
    .map_err(|e| token_error("opening a session", e))?;
    match session.login(UserType::User, Some(pin)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => Ok(session),
        Err(
            e @ CkError::Pkcs11(
                RvError::PinIncorrect
                | RvError::PinInvalid
                | RvError::PinLenRange
                | RvError::PinLocked
                | RvError::PinExpired,
                _,
            ),
        ) => Err(SignerError::BadPin {
            source: Box::new(e),
        }),
        Err(e) => Err(token_error("logging in", e)),
    }
}

fn find_objects(
    session: &Session,
    class: ObjectClass,
    label: &str,
) -> Result<Vec<ObjectHandle>, SignerError> {
    let template = [
        Attribute::Class(class),
        Attribute::Label(label.as_bytes().to_vec()),
    ];
    session
        .find_objects(&template)
        .map_err(|e| token_error("finding key objects", e))
}

/// The one object of `class` labelled `label`.
fn find_one(
    session: &Session,
    class: ObjectClass,
    label: &str,
) -> Result<ObjectHandle, SignerError> {
    let class_name = if class == ObjectClass::PRIVATE_KEY {
        "private key"
    } else {
        "public key"
    };
    match find_objects(session, class, label)?.as_slice() {
        [one] => Ok(*one),
        [] => Err(SignerError::KeyNotFound {
            label: label.to_owned(),
            class: class_name,
        }),
        many => Err(SignerError::AmbiguousKey {
            label: label.to_owned(),
            class: class_name,
            count: many.len(),
        }),
    }
}

fn key_type_of(kind: KeyKind) -> KeyType {
    match kind {
        KeyKind::Ed25519 => KeyType::EC_EDWARDS,
        KeyKind::EcdsaP256 => KeyType::EC,
    }
}

fn key_type(session: &Session, object: ObjectHandle) -> Result<KeyType, SignerError> {
    let attrs = session
        .get_attributes(object, &[AttributeType::KeyType])
        .map_err(|e| token_error("reading the key type", e))?;
    attrs
        .into_iter()
        .find_map(|a| match a {
            Attribute::KeyType(t) => Some(t),
            _ => None,
        })
        .ok_or_else(|| SignerError::UnsupportedKeyType("key without CKA_KEY_TYPE".into()))
}

/// Reads the public key object labelled `label`: its type, curve and point.
fn read_public_key(session: &Session, label: &str) -> Result<(KeyKind, PublicKey), SignerError> {
    let object = find_one(session, ObjectClass::PUBLIC_KEY, label)?;
    let wanted = [
        AttributeType::KeyType,
        AttributeType::EcParams,
        AttributeType::EcPoint,
    ];
    let attrs = session
        .get_attributes(object, &wanted)
        .map_err(|e| token_error("reading the public key", e))?;
    let (mut key_type, mut params, mut point) = (None, None, None);
    for attr in attrs {
        match attr {
            Attribute::KeyType(t) => key_type = Some(t),
            Attribute::EcParams(p) => params = Some(p),
            Attribute::EcPoint(p) => point = Some(p),
            _ => {}
        }
    }
    let (Some(key_type), Some(params), Some(point)) = (key_type, params, point) else {
        return Err(SignerError::UnsupportedKeyType(format!(
            "public key {label:?} lacks CKA_KEY_TYPE, CKA_EC_PARAMS or CKA_EC_POINT (not an EC key)"
        )));
    };
    public_key_from_attributes(key_type, &params, &point)
}

/// Builds the public key from `CKA_KEY_TYPE`, `CKA_EC_PARAMS` and `CKA_EC_POINT`.
fn public_key_from_attributes(
    key_type: KeyType,
    params: &[u8],
    point: &[u8],
) -> Result<(KeyKind, PublicKey), SignerError> {
    if key_type == KeyType::EC_EDWARDS {
        if params != ED25519_PARAMS_OID && params != ED25519_PARAMS_NAME {
            return Err(SignerError::UnsupportedKeyType(format!(
                "Edwards curve with CKA_EC_PARAMS {}; only Ed25519 is supported",
                hex::encode(params)
            )));
        }
        let raw = unwrap_octet_string(point, 32);
        let bytes: [u8; 32] = raw
            .try_into()
            .map_err(|_| SignerError::malformed("Ed25519 CKA_EC_POINT", "not 32 bytes"))?;
        ed25519_dalek::VerifyingKey::from_bytes(&bytes)
            .map_err(|e| SignerError::malformed("Ed25519 CKA_EC_POINT", e))?;
        return Ok((KeyKind::Ed25519, PublicKey::Ed25519(bytes)));
    }
    if key_type == KeyType::EC {
        if params != P256_PARAMS_OID {
            return Err(SignerError::UnsupportedKeyType(format!(
                "EC key with CKA_EC_PARAMS {}; only P-256 is supported",
                hex::encode(params)
            )));
        }
        let key = p256::PublicKey::from_sec1_bytes(unwrap_octet_string(point, 65))
            .map_err(|e| SignerError::malformed("P-256 CKA_EC_POINT", e))?;
        return Ok((KeyKind::EcdsaP256, PublicKey::EcdsaP256(key)));
    }
    Err(SignerError::UnsupportedKeyType(format!(
        "PKCS#11 key type {key_type}"
    )))
}

/// `CKA_EC_POINT` is a DER OCTET STRING around the point; some tokens give the bare point.
/// `len` (the bare point's length, under 128) tells them apart without guessing.
fn unwrap_octet_string(point: &[u8], len: usize) -> &[u8] {
    match point {
        [0x04, l, rest @ ..] if usize::from(*l) == len && rest.len() == len => rest,
        _ => point,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ec_point_with_and_without_octet_string() {
        let bare = [7u8; 32];
        let mut wrapped = vec![0x04, 32];
        wrapped.extend_from_slice(&bare);
        assert_eq!(unwrap_octet_string(&wrapped, 32), &bare);
        assert_eq!(unwrap_octet_string(&bare, 32), &bare);
        // A bare P-256 point starts with 0x04 too, but 0x04 0x41 then 64 bytes is not it.
        let mut sec1 = vec![0x04];
        sec1.extend_from_slice(&[1u8; 64]);
        assert_eq!(unwrap_octet_string(&sec1, 65), sec1.as_slice());
    }

    #[test]
    fn unsupported_curves_are_refused() {
        let ed448 = [0x06, 0x03, 0x2b, 0x65, 0x71];
        let err = public_key_from_attributes(KeyType::EC_EDWARDS, &ed448, &[0; 57]).unwrap_err();
        assert!(matches!(err, SignerError::UnsupportedKeyType(_)), "{err:?}");
        let p384 = [0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22];
        let err = public_key_from_attributes(KeyType::EC, &p384, &[0; 97]).unwrap_err();
        assert!(matches!(err, SignerError::UnsupportedKeyType(_)), "{err:?}");
        let err = public_key_from_attributes(KeyType::RSA, &[], &[]).unwrap_err();
        assert!(matches!(err, SignerError::UnsupportedKeyType(_)), "{err:?}");
    }
}
