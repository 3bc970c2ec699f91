//! Interop with python-tuf as the independent peer: a registry built and signed by python-tuf's
//! Metadata API (tests/tuf-interop/make_repo.py: ECDSA P-256 root and targets keys, an Ed25519
//! online key, an ECDSA and an Ed25519 author, `custom.kasane` on every transform) is served by
//! a real Kasane host, and a real Kasane client logs in through a transform from it — an
//! author's, resolved through `targets` → `authors` → the author.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::process::Command;

use kasane_client::Client;
use kasane_registry::signing::{KeyFileSigner, PublicKey, Signer};
use kasane_tests::{responder, start};

/// The interpreter with tests/tuf-interop/requirements.txt installed: `KASANE_TEST_PYTHON`,
/// else `python3`. `None` (after printing why) when it cannot import tuf outside CI; in CI a
/// missing peer fails the test.
fn python() -> Option<String> {
    let python = std::env::var("KASANE_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
    let ok = Command::new(&python)
        .args(["-c", "import tuf"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(python);
    }
    let why = format!(
        "{python} cannot import tuf: set KASANE_TEST_PYTHON to a venv with tests/tuf-interop/requirements.txt"
    );
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("SKIPPED: {why}");
    None
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A module spec for make_repo.py.
fn module(name: &str, file: &str, weight: u32) -> String {
    let path = workspace().join("guest-transforms/dist").join(file);
    format!(
        "{name}={}:fuel=50000000,memory=16777216,weight={weight}",
        path.display()
    )
}

/// Replaces `dir` with a copy of `from` (the host reads the repository from disk on its
/// next login).
fn replace_dir(dir: &Path, from: &Path) {
    std::fs::remove_dir_all(dir).unwrap();
    let status = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_python_tuf_registry_serves_a_kasane_login() {
    let Some(python) = python() else { return };
    let th = start().await;
    let card = th.add_user("alice").await;
    let identity = kasane_host::setup::read_signing_key(&th.cfg.keys_dir.join("host.key"))
        .unwrap()
        .verifying_key();
    let ticket = KeyFileSigner::open(&th.cfg.keys_dir.join("ticket.pem"), None).unwrap();
    let PublicKey::Ed25519(ticket) = ticket.public_key().clone() else {
        panic!("the development ticket key is Ed25519")
    };
    let out = tempfile::tempdir().unwrap();
    let repo = out.path().join("repo");
    let made = Command::new(&python)
        .arg(workspace().join("tests/tuf-interop/make_repo.py"))
        .arg(&repo)
        // Weight 0: published, never chosen; the login must go through an author's module.
        .args(["--module", &module("sha256-chain", "sha256-chain.wasm", 0)])
        .args([
            "--author-module",
            &module("acme/chain", "sha256-chain.wasm", 100),
        ])
        .args([
            "--author-module",
            &module("beta/hmac", "hmac-sha256.wasm", 0),
        ])
        .args(["--host-identity", &hex::encode(identity.as_bytes())])
        .args(["--host-ticket", &hex::encode(ticket)])
        .output()
        .unwrap();
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    for part in ["metadata", "targets"] {
        replace_dir(&th.cfg.registry_dir.join(part), &repo.join(part));
    }

    // The host finds the python-made registry ready: every role unexpired, a transform active.
    let now = kasane_host::store::Clock::now(&kasane_host::store::SystemClock);
    let readiness = th.host.registry().readiness(now);
    assert!(readiness.is_ok(), "{readiness:?}");

    // The client pins python-tuf's root 1 (client_config reads it from the host's registry).
    let state = tempfile::tempdir().unwrap();
    let client = Client::connect(th.client_config(Some(state.path().to_owned())))
        .await
        .unwrap();
    let (session, report) = client.login("alice", &mut responder(&card)).await.unwrap();
    assert_eq!(report.transform, "acme/chain");
    assert_eq!(report.signed_by, "author:acme");
    let session = session;
    assert_eq!(session.send("alice", b"hello").await.unwrap().seq, 1);
    session.close().await.unwrap();
}
