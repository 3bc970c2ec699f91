//! `KeyFileSigner`: key files round-trip, are protected at rest, fail with typed errors, and
//! are interchangeable with Python's `cryptography` (what securesystemslib uses).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod support;

use std::path::Path;

use kasane_signer::{KeyFileSigner, KeyKind, PublicKey, Signer, SignerError};

const PASS: &[u8] = b"correct horse battery staple";
const MSG: &[u8] = b"{\"signed\":{\"_type\":\"timestamp\",\"version\":1}}";

fn check_independently(public: &PublicKey, msg: &[u8], sig: &[u8]) {
    match public {
        PublicKey::Ed25519(bytes) => {
            use ed25519_dalek::Verifier as _;
            let key = ed25519_dalek::VerifyingKey::from_bytes(bytes).unwrap();
            let sig = ed25519_dalek::Signature::from_slice(sig).unwrap();
            key.verify(msg, &sig).unwrap();
        }
        PublicKey::EcdsaP256(key) => {
            use p256::ecdsa::signature::Verifier as _;
            let sig = p256::ecdsa::Signature::from_der(sig).unwrap();
            p256::ecdsa::VerifyingKey::from(key)
                .verify(msg, &sig)
                .unwrap();
        }
    }
}

fn roundtrip(kind: KeyKind, passphrase: Option<&[u8]>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    let made = KeyFileSigner::generate(kind, &path, passphrase).unwrap();
    let opened = KeyFileSigner::open(&path, passphrase).unwrap();
    assert_eq!(made.public_key(), opened.public_key());
    assert_eq!(opened.kind(), kind);
    assert_eq!(opened.path(), Some(path.as_path()));

    let sig = opened.sign(MSG).unwrap();
    made.public_key().verify(MSG, &sig).unwrap();
    check_independently(made.public_key(), MSG, &sig);
    assert!(matches!(
        made.public_key().verify(b"another message", &sig),
        Err(SignerError::BadSignature)
    ));
    if kind == KeyKind::Ed25519 {
        assert_eq!(sig.len(), 64);
    }

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "key file mode");
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let header = if passphrase.is_some() {
        "-----BEGIN ENCRYPTED PRIVATE KEY-----\n"
    } else {
        "-----BEGIN PRIVATE KEY-----\n"
    };
    assert!(text.starts_with(header), "{text}");
    if passphrase.is_some() {
        assert_scrypt_aes256cbc(&text);
    }
}

/// The file is PBES2 with scrypt (N = 2^14, r = 8, p = 1) and AES-256-CBC.
fn assert_scrypt_aes256cbc(pem: &str) {
    use pkcs8::pkcs5::{EncryptionScheme, pbes2};
    let (_, doc) = pkcs8::Document::from_pem(pem).unwrap();
    let info = pkcs8::EncryptedPrivateKeyInfo::try_from(doc.as_bytes()).unwrap();
    let EncryptionScheme::Pbes2(params) = info.encryption_algorithm else {
        panic!("not PBES2");
    };
    let pbes2::Kdf::Scrypt(scrypt) = params.kdf else {
        panic!("not scrypt");
    };
    assert_eq!(scrypt.cost_parameter, 1 << 14);
    assert_eq!((scrypt.block_size, scrypt.parallelization), (8, 1));
    assert!(matches!(
        params.encryption,
        pbes2::EncryptionScheme::Aes256Cbc { .. }
    ));
}

#[test]
fn ed25519_plain_and_encrypted_roundtrip() {
    roundtrip(KeyKind::Ed25519, None);
    roundtrip(KeyKind::Ed25519, Some(PASS));
}

#[test]
fn p256_plain_and_encrypted_roundtrip() {
    roundtrip(KeyKind::EcdsaP256, None);
    roundtrip(KeyKind::EcdsaP256, Some(PASS));
}

#[test]
fn never_overwrites_a_key_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    std::fs::write(&path, b"precious").unwrap();
    let err = KeyFileSigner::generate(KeyKind::Ed25519, &path, None).unwrap_err();
    assert!(matches!(err, SignerError::KeyFileExists { .. }), "{err:?}");
    assert_eq!(std::fs::read(&path).unwrap(), b"precious");
}

#[test]
fn passphrase_errors_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let enc = dir.path().join("enc.pem");
    let plain = dir.path().join("plain.pem");
    KeyFileSigner::generate(KeyKind::EcdsaP256, &enc, Some(PASS)).unwrap();
    KeyFileSigner::generate(KeyKind::Ed25519, &plain, None).unwrap();

    let wrong = KeyFileSigner::open(&enc, Some(b"not the passphrase")).unwrap_err();
    assert!(matches!(wrong, SignerError::WrongPassphrase), "{wrong:?}");
    let missing = KeyFileSigner::open(&enc, None).unwrap_err();
    assert!(
        matches!(missing, SignerError::PassphraseRequired),
        "{missing:?}"
    );
    let unneeded = KeyFileSigner::open(&plain, Some(PASS)).unwrap_err();
    assert!(
        matches!(unneeded, SignerError::NotEncrypted),
        "{unneeded:?}"
    );
    let empty = KeyFileSigner::generate(KeyKind::Ed25519, &dir.path().join("e.pem"), Some(b""));
    assert!(
        matches!(empty, Err(SignerError::EmptyPassphrase)),
        "{empty:?}"
    );
    assert!(!dir.path().join("e.pem").exists());

    let absent = KeyFileSigner::open(&dir.path().join("absent.pem"), None).unwrap_err();
    assert!(matches!(absent, SignerError::Io { .. }), "{absent:?}");
    let public_pem = dir.path().join("pub.pem");
    std::fs::write(
        &public_pem,
        PublicKey::read_pem_file(&plain).is_err().to_string(),
    )
    .unwrap();
    let not_pem = KeyFileSigner::open(&public_pem, None).unwrap_err();
    assert!(
        matches!(not_pem, SignerError::MalformedKey { .. }),
        "{not_pem:?}"
    );
}

#[test]
fn debug_never_shows_the_secret() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    let signer = KeyFileSigner::generate(KeyKind::Ed25519, &path, None).unwrap();
    let pem = std::fs::read_to_string(&path).unwrap();
    use ed25519_dalek::pkcs8::DecodePrivateKey as _;
    let secret = ed25519_dalek::SigningKey::from_pkcs8_pem(&pem)
        .unwrap()
        .to_bytes();
    let shown = format!("{signer:?} {signer:#?}");
    assert!(!shown.contains(&hex::encode(secret)), "{shown}");
    assert!(
        !shown.contains(format!("{:?}", &secret[..8]).trim_end_matches(']')),
        "{shown}"
    );
    assert!(!shown.contains(&format!("{secret:?}")), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
}

#[test]
fn tuf_fields_and_public_key_files() {
    let dir = tempfile::tempdir().unwrap();
    for (kind, keytype, scheme) in [
        (KeyKind::Ed25519, "ed25519", "ed25519"),
        (KeyKind::EcdsaP256, "ecdsa", "ecdsa-sha2-nistp256"),
    ] {
        let path = dir.path().join(format!("{keytype}.pem"));
        let signer = KeyFileSigner::generate(kind, &path, None).unwrap();
        let public = signer.public_key();
        assert_eq!(public.tuf_keytype(), keytype);
        assert_eq!(public.tuf_scheme(), scheme);
        let tuf = public.tuf_public();
        match kind {
            KeyKind::Ed25519 => {
                assert_eq!(tuf.len(), 64);
                assert!(
                    tuf.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                );
            }
            KeyKind::EcdsaP256 => {
                assert!(tuf.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{tuf}");
                assert!(tuf.ends_with("\n-----END PUBLIC KEY-----\n"), "{tuf}");
            }
        }
        assert_eq!(&PublicKey::from_tuf(keytype, scheme, &tuf).unwrap(), public);
        let pub_path = dir.path().join(format!("{keytype}.pub"));
        std::fs::write(&pub_path, public.to_pem().unwrap()).unwrap();
        assert_eq!(&PublicKey::read_pem_file(&pub_path).unwrap(), public);
        // A private key file is not a public key file.
        assert!(PublicKey::read_pem_file(&path).is_err());
    }
    let mixed = PublicKey::from_tuf("ed25519", "ecdsa-sha2-nistp256", "00");
    assert!(
        matches!(mixed, Err(SignerError::UnsupportedKeyType(_))),
        "{mixed:?}"
    );
}

/// Loads `path` with `load_pem_private_key(data, password)`, prints the public key's SPKI PEM
/// and checks a signature made in Rust the way securesystemslib does.
const PY_LOAD_AND_VERIFY: &str = r#"
import sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
path, password, msg, sig = sys.argv[1], sys.argv[2], sys.argv[3], bytes.fromhex(sys.argv[4])
data = open(path, "rb").read()
key = serialization.load_pem_private_key(data, password.encode() if password else None)
pub = key.public_key()
if isinstance(key, ed25519.Ed25519PrivateKey):
    pub.verify(sig, msg.encode())
else:
    assert isinstance(key.curve, ec.SECP256R1)
    pub.verify(sig, msg.encode(), ec.ECDSA(hashes.SHA256()))
sys.stdout.write(pub.public_bytes(serialization.Encoding.PEM,
    serialization.PublicFormat.SubjectPublicKeyInfo).decode())
"#;

#[test]
fn python_cryptography_reads_our_key_files() {
    let Some(python) = support::python_with_cryptography() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let msg = std::str::from_utf8(MSG).unwrap();
    for kind in [KeyKind::Ed25519, KeyKind::EcdsaP256] {
        for passphrase in [None, Some(PASS)] {
            let path = dir
                .path()
                .join(format!("{kind:?}-{}.pem", passphrase.is_some()));
            let signer = KeyFileSigner::generate(kind, &path, passphrase).unwrap();
            let sig = hex::encode(signer.sign(MSG).unwrap());
            let password = passphrase
                .map(|p| std::str::from_utf8(p).unwrap())
                .unwrap_or("");
            let args = [path.to_str().unwrap(), password, msg, &sig];
            let py_public = support::run_python(&python, PY_LOAD_AND_VERIFY, &args);
            assert_eq!(py_public, signer.public_key().to_pem().unwrap(), "{kind:?}");
            if kind == KeyKind::EcdsaP256 {
                assert_eq!(py_public, signer.public_key().tuf_public());
            }
        }
    }
}

/// Writes an encrypted key (`BestAvailableEncryption`) to `path`, prints the SPKI PEM of its
/// public key, then a line with the hex signature of `msg` as securesystemslib makes it.
const PY_GENERATE: &str = r#"
import sys
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
kind, path, password, msg = sys.argv[1], sys.argv[2], sys.argv[3].encode(), sys.argv[4].encode()
if kind == "ed25519":
    key = ed25519.Ed25519PrivateKey.generate()
    sig = key.sign(msg)
else:
    key = ec.generate_private_key(ec.SECP256R1())
    sig = key.sign(msg, ec.ECDSA(hashes.SHA256()))
open(path, "wb").write(key.private_bytes(serialization.Encoding.PEM,
    serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(password)))
sys.stdout.write(key.public_key().public_bytes(serialization.Encoding.PEM,
    serialization.PublicFormat.SubjectPublicKeyInfo).decode())
sys.stdout.write(sig.hex() + "\n")
"#;

#[test]
fn python_cryptography_key_files_open_here() {
    let Some(python) = support::python_with_cryptography() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let msg = std::str::from_utf8(MSG).unwrap();
    for kind in ["ed25519", "ecdsa"] {
        let path = dir.path().join(format!("{kind}.pem"));
        let password = std::str::from_utf8(PASS).unwrap();
        let args = [kind, path.to_str().unwrap(), password, msg];
        let out = support::run_python(&python, PY_GENERATE, &args);
        let (py_public, sig_line) = out.rsplit_once("-----END PUBLIC KEY-----\n").unwrap();
        let py_public = format!("{py_public}-----END PUBLIC KEY-----\n");
        let py_sig = hex::decode(sig_line.trim()).unwrap();
        assert!(
            std::fs::read_to_string(&path)
                .unwrap()
                .starts_with("-----BEGIN ENCRYPTED")
        );

        let signer = KeyFileSigner::open(&path, Some(PASS)).unwrap();
        assert_eq!(signer.public_key().tuf_keytype(), kind);
        assert_eq!(
            signer.public_key(),
            &PublicKey::from_pem(&py_public).unwrap()
        );
        assert_eq!(signer.public_key().to_pem().unwrap(), py_public);
        signer.public_key().verify(MSG, &py_sig).unwrap();
        let ours = signer.sign(MSG).unwrap();
        signer.public_key().verify(MSG, &ours).unwrap();
        let wrong = KeyFileSigner::open(&path, Some(b"wrong")).unwrap_err();
        assert!(matches!(wrong, SignerError::WrongPassphrase), "{wrong:?}");
        assert!(Path::new(&path).exists());
    }
}
