//! `Pkcs11Signer` against SoftHSM2.
//!
//! SoftHSM reads its configuration (`SOFTHSM2_CONF`) once per process, at `C_Initialize`, and
//! stays initialized until the process ends; environment variables are process-wide and tests
//! run in threads. So each test here re-runs itself in a child process (this test binary,
//! filtered to that one test) whose environment alone names a fresh temporary token
//! directory: tests stay parallel, isolated, and free of `unsafe` `set_var`. The parent then
//! scans that directory for any PEM private key.
//!
//! The module is env `KASANE_PKCS11_MODULE`, else `/usr/lib/softhsm/libsofthsm2.so`; without
//! it a test says why and returns, except under env `CI`, where it fails.
#![cfg(feature = "pkcs11")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
use kasane_signer::{KeyKind, Pkcs11Signer, PublicKey, Signer, SignerError};

/// Set in the child: the temporary directory holding `softhsm2.conf` and `tokens/`.
const CHILD_DIR: &str = "KASANE_SOFTHSM_TEST_DIR";
const DEFAULT_MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
const TOKEN: &str = "kasane-test";
const SO_PIN: &str = "so-pin-8765";
const USER_PIN: &str = "user-pin-1234";
const MSG: &[u8] = b"{\"signed\":{\"_type\":\"root\",\"version\":1}}";

struct Fixture {
    module: PathBuf,
}

fn module_path() -> Option<PathBuf> {
    let module = std::env::var_os("KASANE_PKCS11_MODULE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_MODULE));
    if module.is_file() {
        return Some(module);
    }
    support::skip_or_fail(&format!(
        "no PKCS#11 module at {} (install softhsm2 or set KASANE_PKCS11_MODULE)",
        module.display()
    ));
    None
}

/// Runs `body` in a child process with its own SoftHSM token directory (see the module docs).
fn with_softhsm(test_name: &str, body: fn(&Fixture)) {
    if let Some(dir) = std::env::var_os(CHILD_DIR) {
        assert!(Path::new(&dir).join("softhsm2.conf").is_file());
        let fixture = Fixture {
            module: PathBuf::from(std::env::var_os("KASANE_PKCS11_MODULE").unwrap()),
        };
        init_token(&fixture.module);
        body(&fixture);
        return;
    }
    let Some(module) = module_path() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("softhsm2.conf");
    std::fs::create_dir(dir.path().join("tokens")).unwrap();
    let conf_text = format!(
        "directories.tokendir = {}/tokens\nobjectstore.backend = file\nlog.level = ERROR\n",
        dir.path().display()
    );
    std::fs::write(&conf, conf_text).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir.path())
        .env("SOFTHSM2_CONF", &conf)
        .env("KASANE_PKCS11_MODULE", &module)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("--- child stdout ---\n{stdout}\n--- child stderr ---\n{stderr}");
    assert!(out.status.success(), "child test {test_name} failed");
    assert!(
        stdout.contains("1 passed"),
        "the child did not run {test_name}"
    );
    assert_no_pem_private_key(dir.path());
}

/// Initializes the one free SoftHSM slot as token `TOKEN` with the user PIN, through
/// cryptoki (`C_InitToken`, `C_InitPIN`).
fn init_token(module: &Path) {
    let ctx = Pkcs11::new(module).unwrap();
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = ctx.get_all_slots().unwrap()[0];
    let so_pin = AuthPin::from(SO_PIN.to_owned());
    ctx.init_token(slot, &so_pin, TOKEN).unwrap();
    let session = ctx.open_rw_session(slot).unwrap();
    session.login(UserType::So, Some(&so_pin)).unwrap();
    session
        .init_pin(&AuthPin::from(USER_PIN.to_owned()))
        .unwrap();
    session.logout().unwrap();
}

/// SoftHSM keeps private objects encrypted under the PIN-derived token key; no file under
/// the token directory may hold a PEM private key.
fn assert_no_pem_private_key(dir: &Path) {
    let mut files = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        if path.is_dir() {
            stack.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        files += 1;
        let bytes = std::fs::read(&path).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("PRIVATE KEY-----"),
            "PEM private key in {}",
            path.display()
        );
    }
    assert!(files > 1, "the token directory holds the token's files");
}

fn check_independently(public: &PublicKey, msg: &[u8], sig: &[u8]) {
    match public {
        PublicKey::Ed25519(bytes) => {
            let key = ed25519_dalek::VerifyingKey::from_bytes(bytes).unwrap();
            let sig = ed25519_dalek::Signature::from_slice(sig).unwrap();
            key.verify_strict(msg, &sig).unwrap();
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

fn sign_and_verify(fx: &Fixture, kind: KeyKind, label: &str) -> Pkcs11Signer {
    let generated = Pkcs11Signer::generate(&fx.module, TOKEN, USER_PIN, label, kind).unwrap();
    let signer = Pkcs11Signer::open(&fx.module, TOKEN, USER_PIN, label).unwrap();
    assert_eq!(signer.public_key(), &generated);
    assert_eq!(signer.kind(), kind);
    let sig = signer.sign(MSG).unwrap();
    signer.public_key().verify(MSG, &sig).unwrap();
    check_independently(&generated, MSG, &sig);
    assert!(matches!(
        generated.verify(b"other metadata", &sig),
        Err(SignerError::BadSignature)
    ));
    if kind == KeyKind::Ed25519 {
        assert_eq!(sig.len(), 64);
        assert_eq!(signer.sign(MSG).unwrap(), sig, "Ed25519 is deterministic");
    }
    // The TUF fields round-trip, so the registry can publish this key.
    let tuf = generated.tuf_public();
    let back = PublicKey::from_tuf(generated.tuf_keytype(), generated.tuf_scheme(), &tuf);
    assert_eq!(back.unwrap(), generated);
    let shown = format!("{signer:?}");
    assert!(!shown.contains(USER_PIN), "{shown}");
    signer
}

#[test]
fn ed25519_key_on_softhsm() {
    with_softhsm("ed25519_key_on_softhsm", |fx| {
        sign_and_verify(fx, KeyKind::Ed25519, "root-1");
        let again = Pkcs11Signer::generate(&fx.module, TOKEN, USER_PIN, "root-1", KeyKind::Ed25519);
        assert!(
            matches!(again, Err(SignerError::KeyLabelExists { .. })),
            "{again:?}"
        );
    });
}

#[test]
fn p256_key_on_softhsm() {
    with_softhsm("p256_key_on_softhsm", |fx| {
        let signer = sign_and_verify(fx, KeyKind::EcdsaP256, "timestamp-1");
        // ECDSA is randomized on the token; both signatures verify.
        let (a, b) = (signer.sign(MSG).unwrap(), signer.sign(MSG).unwrap());
        check_independently(signer.public_key(), MSG, &a);
        check_independently(signer.public_key(), MSG, &b);
    });
}

#[test]
fn several_keys_on_one_token_sign_from_threads() {
    with_softhsm("several_keys_on_one_token_sign_from_threads", |fx| {
        let root: Arc<dyn Signer> = Arc::new(sign_and_verify(fx, KeyKind::Ed25519, "root"));
        let online: Arc<dyn Signer> = Arc::new(sign_and_verify(fx, KeyKind::EcdsaP256, "online"));
        let threads: Vec<_> = [root.clone(), online.clone(), root.clone(), online.clone()]
            .into_iter()
            .enumerate()
            .map(|(i, signer)| {
                std::thread::spawn(move || {
                    let msg = format!("snapshot {i}");
                    for _ in 0..10 {
                        let sig = signer.sign(msg.as_bytes()).unwrap();
                        signer.public_key().verify(msg.as_bytes(), &sig).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // Dropping one signer (its session) leaves the other working.
        drop(root);
        let sig = online.sign(MSG).unwrap();
        check_independently(online.public_key(), MSG, &sig);
    });
}

fn generate_rsa(module: &Path, label: &str) {
    use cryptoki::mechanism::Mechanism;
    use cryptoki::object::Attribute;
    let ctx = Pkcs11::new(module).unwrap();
    // No other context is alive here, so the module was unloaded and loads afresh.
    ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .unwrap();
    let slot = ctx.get_slots_with_token().unwrap()[0];
    let session = ctx.open_rw_session(slot).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::from(USER_PIN.to_owned())))
        .unwrap();
    let label = label.as_bytes().to_vec();
    let public = [
        Attribute::Token(true),
        Attribute::ModulusBits(2048.into()),
        Attribute::PublicExponent(vec![1, 0, 1]),
        Attribute::Label(label.clone()),
    ];
    let private = [
        Attribute::Token(true),
        Attribute::Private(true),
        Attribute::Sign(true),
        Attribute::Label(label),
    ];
    session
        .generate_key_pair(&Mechanism::RsaPkcsKeyPairGen, &public, &private)
        .unwrap();
}

#[test]
fn typed_errors_for_pin_key_and_token() {
    with_softhsm("typed_errors_for_pin_key_and_token", |fx| {
        Pkcs11Signer::generate(&fx.module, TOKEN, USER_PIN, "targets", KeyKind::Ed25519).unwrap();
        // No session of this process is logged in here, so the token really checks the PIN.
        let bad = Pkcs11Signer::open(&fx.module, TOKEN, "not-the-pin", "targets").unwrap_err();
        assert!(matches!(bad, SignerError::BadPin { .. }), "{bad:?}");
        assert!(
            std::error::Error::source(&bad).is_some(),
            "the token's answer is kept"
        );

        let missing = Pkcs11Signer::open(&fx.module, TOKEN, USER_PIN, "no-such-key").unwrap_err();
        assert!(
            matches!(&missing, SignerError::KeyNotFound { label, class: "private key" } if label == "no-such-key"),
            "{missing:?}"
        );
        let token =
            Pkcs11Signer::open(&fx.module, "no-such-token", USER_PIN, "targets").unwrap_err();
        assert!(
            matches!(token, SignerError::TokenNotFound { .. }),
            "{token:?}"
        );
        // An RSA key pair: found, but not a key type Kasane signs with.
        generate_rsa(&fx.module, "rsa");
        let rsa = Pkcs11Signer::open(&fx.module, TOKEN, USER_PIN, "rsa").unwrap_err();
        assert!(matches!(rsa, SignerError::UnsupportedKeyType(_)), "{rsa:?}");
        // After the failures, the right PIN still works.
        let signer = Pkcs11Signer::open(&fx.module, TOKEN, USER_PIN, "targets").unwrap();
        check_independently(signer.public_key(), MSG, &signer.sign(MSG).unwrap());
    });
}

#[test]
fn signer_logs_in_again_after_the_token_logs_out() {
    with_softhsm("signer_logs_in_again_after_the_token_logs_out", |fx| {
        Pkcs11Signer::generate(&fx.module, TOKEN, USER_PIN, "online", KeyKind::EcdsaP256).unwrap();
        let signer = Pkcs11Signer::open(&fx.module, TOKEN, USER_PIN, "online").unwrap();
        check_independently(signer.public_key(), MSG, &signer.sign(MSG).unwrap());
        // The login belongs to the whole process: a logout anywhere ends it for the signer's
        // session too (as a token reinsertion or an HSM failover would).
        let ctx = Pkcs11::new(&fx.module).unwrap();
        let slot = ctx.get_slots_with_token().unwrap()[0];
        let other = ctx.open_ro_session(slot).unwrap();
        other.logout().unwrap();
        drop(other);
        let sig = signer.sign(MSG).unwrap();
        check_independently(signer.public_key(), MSG, &sig);
    });
}

#[test]
fn module_that_cannot_load() {
    let dir = tempfile::tempdir().unwrap();
    let absent = dir.path().join("absent.so");
    let err = Pkcs11Signer::open(&absent, TOKEN, USER_PIN, "root").unwrap_err();
    assert!(matches!(err, SignerError::ModuleLoad { .. }), "{err:?}");
    let not_a_library = dir.path().join("text.so");
    std::fs::write(&not_a_library, b"not an ELF file").unwrap();
    let err = Pkcs11Signer::open(&not_a_library, TOKEN, USER_PIN, "root").unwrap_err();
    assert!(matches!(err, SignerError::ModuleLoad { .. }), "{err:?}");
    assert!(
        std::error::Error::source(&err).is_some(),
        "the loader's error is kept"
    );
}
