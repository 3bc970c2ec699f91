//! No file holding a secret is ever readable by group or others: `init`, `user add`, `serve`
//! and a whole login, each run by the real `kasane-host` binary under umask 000 (where a file
//! created without an explicit private mode comes out 0666), leave every key, card, database
//! file and the TLS key 0600, and their folders 0700.
#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;

mod common;

use common::{
    CARD, PASSWORD, card_map, client_sandbox, connect, fetch_transform, host_bin_umask_000,
    serve_with, start_login_to, verifiers,
};
use kasane_protocol::wire::{Message, Profile, ResponseAccept};

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

/// Every file and folder below `dir`, `dir` itself included.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(p) = todo.pop() {
        if p.is_dir() {
            todo.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
        }
        out.push(p);
    }
    out
}

/// Secret by name: a private key (not its `.pub`), a card, the database and its WAL and
/// SHM, the TLS key.
fn holds_a_secret(data: &Path, p: &Path) -> bool {
    let rel = p.strip_prefix(data).unwrap().to_string_lossy().into_owned();
    let name = p.file_name().unwrap().to_string_lossy().into_owned();
    (rel.starts_with("keys/") && !name.ends_with(".pub"))
        || rel.starts_with("cards/")
        || name.starts_with("kasane.db")
        || rel == "tls/key.pem"
}

fn run_ok(args: &[&str], stdin: &str) {
    let mut child = host_bin_umask_000()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A whole login of alice against the host at `addr` (hello, password, transform, response).
async fn login(data: &Path, addr: std::net::SocketAddr) {
    use rustls_pki_types::pem::PemObject;
    let cert = rustls_pki_types::CertificateDer::from_pem_file(data.join("tls/cert.pem")).unwrap();
    let host_key = kasane_host::setup::read_signing_key(&data.join("keys/host.key"))
        .unwrap()
        .verifying_key();
    let mut conn = connect(addr, &cert).await;
    let (client, req) = start_login_to(&mut conn, host_key, "alice", PASSWORD, vec![Profile::Pure])
        .await
        .unwrap();
    let (_, bundle) = conn.post("/v1/login/finish", req).await;
    let ch = client.receive(&bundle).unwrap();
    let transform = fetch_transform(&client_sandbox(), &mut conn, ch.bundle()).await;
    let input = ch.auth_input(&verifiers(&ch, &card_map())).unwrap();
    let derived = tokio::task::spawn_blocking(move || {
        kasane_protocol::with_derive_input(&input, |v| transform.derive(v))
            .unwrap()
            .unwrap()
    })
    .await
    .unwrap();
    let (awaiting, bytes) = ch.respond(derived.key.as_bytes()).unwrap();
    let (status, body) = conn.post("/v1/login/response", bytes).await;
    assert_eq!(status, hyper::StatusCode::OK);
    assert_eq!(
        ResponseAccept::decode(&body).unwrap().session_token.len(),
        32
    );
    awaiting.receive(&body).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_private_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let pairs = dir.path().join("pairs.txt");
    std::fs::write(&pairs, CARD).unwrap();
    run_ok(&["--data", d, "init", "--listen", "127.0.0.1:0"], "");
    run_ok(
        &[
            "--data",
            d,
            "user",
            "add",
            "alice",
            "--pairs",
            pairs.to_str().unwrap(),
        ],
        &format!("{PASSWORD}\n"),
    );
    let (serve, addr) = serve_with(host_bin_umask_000(), d);
    login(&data, addr).await;
    drop(serve);

    let all = tree(&data);
    let secrets: Vec<_> = all.iter().filter(|p| holds_a_secret(&data, p)).collect();
    for must in [
        "keys/host.key",
        "keys/queue.key",
        "cards/alice.card",
        "cards/alice.svg",
        "kasane.db",
        "tls/key.pem",
    ] {
        assert!(
            secrets.contains(&&data.join(must)),
            "{must} missing: {all:?}"
        );
    }
    let open: Vec<_> = secrets
        .iter()
        .filter(|p| mode(p) & 0o077 != 0)
        .map(|p| (p, format!("{:o}", mode(p))))
        .collect();
    assert!(
        open.is_empty(),
        "secrets readable by group or others: {open:?}"
    );
    for folder in [data.clone(), data.join("keys"), data.join("cards")] {
        assert_eq!(mode(&folder), 0o700, "{}", folder.display());
    }
    // Nothing anywhere in the data directory is readable or writable by group or others:
    // not even the registry, which is public by design but served by the host itself.
    let open: Vec<_> = all
        .iter()
        .filter(|p| mode(p) & 0o077 != 0)
        .map(|p| (p, format!("{:o}", mode(p))))
        .collect();
    assert!(open.is_empty(), "open to group or others: {open:?}");
    assert!(
        all.iter()
            .any(|p| p.ends_with("registry/metadata/timestamp.json"))
    );
}
