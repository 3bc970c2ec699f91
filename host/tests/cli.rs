//! The `kasane-host` binary: `init` then `serve` on nothing but a data directory, and the
//! user commands.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::io::Write;
use std::process::Stdio;

mod common;

use common::{CARD, PASSWORD, connect, file_config, host_bin as bin, serve_bin, start_login_to};
use kasane_protocol::wire::Profile;

/// The metrics token `serve` made in the data directory (`keys/metrics.token`, 64 hex digits).
fn metrics_token(data: &std::path::Path) -> [u8; 32] {
    let hex_text = std::fs::read_to_string(data.join("keys/metrics.token")).unwrap();
    hex::decode(hex_text.trim()).unwrap().try_into().unwrap()
}

fn user_list(data: &str) -> String {
    let out = bin()
        .args(["--data", data, "user", "list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// One failure for `user` with a backoff that locks at the first: locked for an hour.
async fn lock_user(data: &std::path::Path, user: &str) {
    use kasane_host::store::{Backoff, Clock, SystemClock, ThrottleKey};
    let st = kasane_host::store::open(&file_config(data).database_url)
        .await
        .unwrap();
    let backoff = Backoff {
        free_failures: 0,
        base_secs: 3600,
        max_secs: 3600,
        decay_secs: 300,
    };
    let now = SystemClock.now();
    let state = st
        .record_failure(ThrottleKey::User(user), now, &backoff)
        .await
        .unwrap();
    assert!(state.is_locked(now));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_then_serve_works_with_only_a_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();

    let out = bin()
        .args(["--data", data_s, "init", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("TLS certificate SHA-256"), "{text}");
    assert!(text.contains("sha256-wasi-c"), "{text}");
    // A second init refuses to overwrite.
    let again = bin().args(["--data", data_s, "init"]).output().unwrap();
    assert!(!again.status.success());

    // user add with custom pairs, password on stdin.
    let pairs = dir.path().join("pairs.txt");
    std::fs::write(&pairs, CARD).unwrap();
    let out = common::user_add_bin(data_s, "alice", &pairs);
    assert!(String::from_utf8_lossy(&out.stdout).contains("KM4Q"));
    assert!(data.join("cards/alice.svg").is_file());
    // A generated card for bob.
    let mut child = bin()
        .args(["--data", data_s, "user", "add", "bob"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "pw").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let card = String::from_utf8(out.stdout).unwrap();
    assert!(card.contains("Kasane code card for bob"), "{card}");
    // A name no login could carry is refused before the password is asked for.
    let bad = bin()
        .args(["--data", data_s, "user", "add", "mal\tlory"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success(), "{err}");
    assert!(
        err.contains("without control, bidirectional or invisible characters"),
        "{err}"
    );
    // Names that read as alice's (a Cyrillic "а", a capital "I" for "l", another case with a
    // small "l" for "I") are refused before the password is asked for, and the error spells
    // them out (near names are accepted: `setup`'s unit test).
    for look_alike in ["\u{430}lice", "aIice", "ALlCE"] {
        let out = bin()
            .args(["--data", data_s, "user", "add", look_alike])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{look_alike}: {err}");
        assert!(
            err.contains("reads as the existing user \"alice\""),
            "{look_alike}: {err}"
        );
        let spelled = format!("user name \"{}\"", look_alike.escape_default());
        assert!(err.contains(&spelled), "{look_alike}: {err}");
    }

    let list = bin()
        .args(["--data", data_s, "user", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(
        list.contains("alice\tpairs=4") && list.contains("bob\tpairs=40"),
        "{list}"
    );
    assert!(
        bin()
            .args(["--data", data_s, "user", "remove", "bob"])
            .status()
            .unwrap()
            .success()
    );
    assert!(
        !bin()
            .args(["--data", data_s, "user", "remove", "bob"])
            .status()
            .unwrap()
            .success()
    );
    // Lock alice (as failed logins would), see it listed, unlock her.
    lock_user(&data, "alice").await;
    assert!(user_list(data_s).contains("alice\tpairs=4\tfailures=1 locked"));
    assert!(
        bin()
            .args(["--data", data_s, "user", "unlock", "alice"])
            .status()
            .unwrap()
            .success()
    );
    let list = user_list(data_s);
    assert!(
        list.contains("alice\tpairs=4\tfailures=0\tsessions=0\n"),
        "{list}"
    );

    // serve, and a login's first two steps against it.
    let (_serve, addr) = serve_bin(data_s);
    let cert = std::fs::read(data.join("tls/cert.pem")).unwrap();
    let cert_der = {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(&cert)
            .unwrap()
            .to_vec()
    };
    let host_key = kasane_host::setup::read_signing_key(&data.join("keys/host.key"))
        .unwrap()
        .verifying_key();
    let mut conn = connect(addr, &cert_der).await;
    assert_eq!(conn.get("/healthz", None).await.0, hyper::StatusCode::OK);
    let (status, root) = conn.get("/v1/registry/metadata/1.root.json", None).await;
    assert_eq!(status, hyper::StatusCode::OK);
    assert_eq!(
        root,
        std::fs::read(data.join("registry/metadata/1.root.json")).unwrap()
    );
    let (client, req) = start_login_to(&mut conn, host_key, "alice", PASSWORD, vec![Profile::Pure])
        .await
        .unwrap();
    assert!(client.host_uses_channel_binding());
    let (status, bundle) = conn.post("/v1/login/finish", req).await;
    assert_eq!(status, hyper::StatusCode::OK);
    let ch = client.receive(&bundle).unwrap();
    assert_eq!(ch.bundle().counter, 1);
    let metrics =
        String::from_utf8(conn.get("/metrics", Some(metrics_token(&data))).await.1).unwrap();
    assert!(
        metrics.contains("kasane_transform_choices_total"),
        "{metrics}"
    );
}

/// Record 1 of session `sid`'s chain: a message from alice to bob.
fn first_record(sid: &[u8]) -> kasane_host::store::AuditRecord {
    use kasane_host::audit::{AuditPayload, genesis_hash, record_hash};
    let payload = AuditPayload {
        version: 1,
        direction: 0,
        seq: 1,
        recipient: "bob".into(),
        ciphertext: vec![1; 32],
        aad: vec![2; 8],
        module_sha256: [3; 32],
        sender: "alice".into(),
        received_at: 5,
    }
    .encode()
    .unwrap();
    let prev = genesis_hash(sid).to_vec();
    kasane_host::store::AuditRecord {
        session_id: sid.to_vec(),
        seq: 1,
        record_hash: record_hash(sid, 1, &prev, &payload).to_vec(),
        prev_hash: prev,
        payload,
        created: 5,
    }
}

/// `audit verify` and `audit export` on a data directory: a good log passes, a changed
/// record is named and fails the command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_verify_and_export() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let out = bin().args(["--data", data_s, "init"]).output().unwrap();
    assert!(out.status.success());
    assert!(data.join("keys").join("queue.key").exists());
    let cfg = file_config(&data);
    let st = kasane_host::store::open(&cfg.database_url).await.unwrap();
    let sid = vec![9u8; 16];
    st.append_audit(&first_record(&sid)).await.unwrap();

    let ok = bin()
        .args(["--data", data_s, "audit", "verify"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{text}");
    assert!(text.contains("1 chains, 1 records"), "{text}");

    let file = dir.path().join("audit.jsonl");
    let ex = bin()
        .args(["--data", data_s, "audit", "export", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(ex.status.success());
    let lines = std::fs::read_to_string(&file).unwrap();
    assert_eq!(lines.lines().count(), 1);
    assert!(lines.contains(&hex::encode(&sid)));
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let again = bin()
        .args(["--data", data_s, "audit", "export", "--out"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        !again.status.success(),
        "an existing file is not overwritten"
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), lines);

    // Changed behind the host's back.
    let pool = sqlx::SqlitePool::connect(&cfg.database_url).await.unwrap();
    sqlx::query("DROP TRIGGER audit_log_no_update")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query("UPDATE audit_log SET created_at = 6, payload = payload || x'00'")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let bad = bin()
        .args(["--data", data_s, "audit", "verify"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(!bad.status.success());
    assert!(
        text.contains(&format!("session {} record 1", hex::encode(&sid))),
        "{text}"
    );
}

/// `audit prune`: ended chains leave the log for a 0600 archive (records, then each chain's
/// signed marker); `audit verify` then accepts the kept checkpoints and the markers, and
/// fails on a record written into a pruned chain or on a marker the host key did not sign.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_prune_archives_ended_chains_and_verify_checks_the_markers() {
    use ed25519_dalek::Signer as _;
    let dir = tempfile::tempdir().unwrap();
    let data = initialized(dir.path());
    let data_s = data.to_str().unwrap();
    let cfg = file_config(&data);
    let st = kasane_host::store::open(&cfg.database_url).await.unwrap();
    let (a, b) = (vec![9u8; 16], vec![8u8; 16]);
    for sid in [&a, &b] {
        st.append_audit(&first_record(sid)).await.unwrap();
    }
    let key = kasane_host::setup::read_signing_key(&data.join("keys/host.key")).unwrap();
    let hash = first_record(&a).record_hash;
    let signature = key.sign(&kasane_host::audit::checkpoint_message(&a, 1, &hash));
    st.put_audit_checkpoint(&kasane_host::store::AuditCheckpoint {
        session_id: a.clone(),
        seq: 1,
        record_hash: hash,
        signature: signature.to_bytes().to_vec(),
        created: 6,
    })
    .await
    .unwrap();
    let run = |args: &[&str]| bin().args(["--data", data_s, "audit"]).args(args).output();
    let said = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();

    let unsaid = run(&["prune", "--older-than", "30"]).unwrap();
    assert_eq!(
        unsaid.status.code(),
        Some(2),
        "archive or not: the operator says"
    );
    let archive = dir.path().join("pruned.jsonl");
    let archive_s = archive.to_str().unwrap();
    let pruned = run(&["prune", "--older-than", "30", "--archive", archive_s]).unwrap();
    assert!(pruned.status.success(), "{pruned:?}");
    assert!(
        said(&pruned).contains("pruned 2 chains (2 records)"),
        "{}",
        said(&pruned)
    );
    let lines = std::fs::read_to_string(&archive).unwrap();
    let kinds: Vec<bool> = lines
        .lines()
        .map(|l| l.starts_with("{\"pruned\""))
        .collect();
    assert_eq!(kinds, [false, true, false, true], "{lines}");
    assert!(lines.lines().nth(2).unwrap().contains(&hex::encode(&a)));
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&archive).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    // The archive checks offline: whole, then cut off, then changed.
    let checked = run(&["verify", "--archive", archive_s]).unwrap();
    assert!(checked.status.success(), "{}", said(&checked));
    assert!(
        said(&checked).contains("archive ok: 2 chains, 2 records"),
        "{}",
        said(&checked)
    );
    let part = dir.path().join("part.jsonl");
    let first_three: Vec<&str> = lines.lines().take(3).collect();
    std::fs::write(&part, first_three.join("\n")).unwrap();
    let cut = run(&["verify", "--archive", part.to_str().unwrap()]).unwrap();
    assert!(
        said(&cut).contains("line 3: the last chain has no marker"),
        "{}",
        said(&cut)
    );
    let changed = lines.replacen("\"seq\":1,", "\"seq\":2,", 1);
    std::fs::write(&part, changed).unwrap();
    let bad = run(&["verify", "--archive", part.to_str().unwrap()]).unwrap();
    assert!(!bad.status.success());
    assert!(said(&bad).contains("line 1: session"), "{}", said(&bad));
    let again = run(&["prune", "--older-than", "0", "--no-archive"]).unwrap();
    assert!(said(&again).contains("pruned 0 chains"), "{}", said(&again));
    let ok = run(&["verify"]).unwrap();
    assert!(ok.status.success(), "{}", said(&ok));
    let summary = "0 chains, 0 records, 1 signed checkpoints, 2 pruned chains";
    assert!(said(&ok).contains(summary), "{}", said(&ok));

    // A record written into a pruned chain behind the host's back.
    st.append_audit(&first_record(&a)).await.unwrap();
    let bad = run(&["verify"]).unwrap();
    assert!(!bad.status.success());
    assert!(said(&bad).contains("chain marked pruned"), "{}", said(&bad));
    // A marker the host key did not sign: records deleted, not pruned.
    let pool = sqlx::SqlitePool::connect(&cfg.database_url).await.unwrap();
    sqlx::query("DELETE FROM audit_log")
        .execute(&pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO audit_pruned (session_id, seq, record_hash, signature, created_at) \
         VALUES (x'07', 3, x'00', x'00', 7)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let forged = run(&["verify"]).unwrap();
    assert!(!forged.status.success());
    assert!(
        said(&forged).contains("session 07 record 3: pruned-chain marker"),
        "{}",
        said(&forged)
    );
}

/// `dead-letters list` shows what the inbox moved aside; `remove` deletes by id and names
/// an id it does not know.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let data = initialized(dir.path());
    let data_s = data.to_str().unwrap();
    let cfg = file_config(&data);
    let st = kasane_host::store::open(&cfg.database_url).await.unwrap();
    let user = kasane_host::store::NewUser {
        name: "alice".into(),
        opaque_record: vec![1; 8],
        pairs: vec![],
    };
    st.create_user(&user, 1).await.unwrap();
    let id = st.enqueue_message("alice", b"sealed", 5).await.unwrap();
    assert!(st.dead_letter_message("alice", id, 7).await.unwrap());
    let run = |args: &[&str]| {
        bin()
            .args(["--data", data_s, "dead-letters"])
            .args(args)
            .output()
    };
    let listed = run(&["list"]).unwrap();
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success());
    let want = format!("{id}\talice\tbytes=6\tqueued=1970-01-01T00:00:05Z\tmoved=");
    assert!(text.starts_with(&want), "{text}");
    assert!(text.trim_end().ends_with("audit=-"), "{text}");
    let removed = run(&["remove", &id.to_string()]).unwrap();
    assert!(removed.status.success(), "{removed:?}");
    let again = run(&["remove", &id.to_string()]).unwrap();
    assert!(!again.status.success());
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(said.contains(&format!("no dead letter {id}")), "{said}");
    let none = run(&["list"]).unwrap();
    assert!(none.stdout.is_empty());
    assert!(String::from_utf8_lossy(&none.stderr).contains("0 dead letters"));
}

/// Rotating the identity key: `new-identity-key` writes a private key file once; after the
/// switch, checkpoints the old key signed fail `audit verify` until `--key` names the old key
/// (its file or its hex).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_identity_key_and_audit_verify_with_the_old_one() {
    use ed25519_dalek::Signer as _;
    use kasane_host::audit::checkpoint_message;
    use kasane_host::store::AuditCheckpoint;
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = initialized(dir.path());
    let data_s = data.to_str().unwrap();
    let keys = data.join("keys");
    let old = kasane_host::setup::read_signing_key(&keys.join("host.key")).unwrap();
    let cfg = file_config(&data);
    let st = kasane_host::store::open(&cfg.database_url).await.unwrap();
    let sid = vec![7u8; 16];
    let record = first_record(&sid);
    let hash = record.record_hash.clone();
    st.append_audit(&record).await.unwrap();
    let signature = old
        .sign(&checkpoint_message(&sid, 1, &hash))
        .to_bytes()
        .to_vec();
    let checkpoint = AuditCheckpoint {
        session_id: sid,
        seq: 1,
        record_hash: hash,
        signature,
        created: 5,
    };
    st.put_audit_checkpoint(&checkpoint).await.unwrap();

    let next = keys.join("host.key.next");
    let out = bin()
        .args(["--data", data_s, "new-identity-key"])
        .arg(&next)
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let new = kasane_host::setup::read_signing_key(&next).unwrap();
    assert!(
        text.contains(&hex::encode(new.verifying_key().as_bytes())),
        "{text}"
    );
    assert!(
        !text.contains(&hex::encode(new.to_bytes())),
        "the secret is never printed"
    );
    let mode = std::fs::metadata(&next).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let again = bin()
        .args(["--data", data_s, "new-identity-key"])
        .arg(&next)
        .output();
    assert!(!again.unwrap().status.success(), "never overwrites");

    // The switch: the old key kept beside the new one.
    std::fs::rename(keys.join("host.key"), keys.join("host.key.old")).unwrap();
    std::fs::rename(&next, keys.join("host.key")).unwrap();
    let verify = |extra: &[&str]| {
        let out = bin()
            .args(["--data", data_s, "audit", "verify"])
            .args(extra)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (ok, text) = verify(&[]);
    assert!(!ok && text.contains("BROKEN"), "{text}");
    let old_file = keys.join("host.key.old");
    let (ok, text) = verify(&["--key", old_file.to_str().unwrap()]);
    assert!(ok && text.contains("1 signed checkpoints"), "{text}");
    let old_hex = hex::encode(old.verifying_key().as_bytes());
    assert!(verify(&["--key", &old_hex]).0);
    assert!(!verify(&["--key", "no-such-key"]).0);
}

/// `init` into a fresh temporary directory with `KASANE_LOG=info` and `extra` variables;
/// returns the directory, the data path and the process output.
fn init_logging(extra: &[(&str, &str)]) -> (tempfile::TempDir, String, std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").to_str().unwrap().to_owned();
    let mut c = bin();
    c.env("KASANE_LOG", "info")
        .args(["--data", &data, "init", "--listen", "127.0.0.1:0"]);
    for (k, v) in extra {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (dir, data, out)
}

#[test]
fn json_logs_are_json_lines_and_text_logs_into_a_pipe_have_no_colour() {
    let (_dir, _, out) = init_logging(&[("KASANE_LOG_FORMAT", "json")]);
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert!(!lines.is_empty(), "init logs nothing at info");
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).expect(line);
        assert!(v["level"].is_string(), "{line}");
    }

    let (_dir, _, out) = init_logging(&[]);
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("INFO"), "{err}");
    assert!(!err.contains("\x1b["), "{err:?}");

    let (_dir, _, out) = init_logging(&[("KASANE_LOG_FORMAT", "xml")]);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("KASANE_LOG_FORMAT"), "{err}");
}

#[test]
fn an_unknown_kasane_variable_fails_startup_by_name() {
    let (_dir, data, out) = init_logging(&[]);
    assert!(out.status.success());
    let out = bin()
        .env("KASANE_LISTNE", "127.0.0.1:0")
        .args(["--data", &data, "user", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("KASANE_LISTNE"), "{err}");
}

fn check(data: &str) -> std::process::Output {
    bin().args(["--data", data, "check"]).output().unwrap()
}

#[test]
fn check_passes_on_a_fresh_init_and_names_what_fails() {
    let (_dir, data, out) = init_logging(&[]);
    assert!(out.status.success());
    let out = check(&data);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for what in [
        "configuration",
        "listen address 127.0.0.1:",
        "TLS",
        "host key",
        "registry",
        "store",
        "active transforms: ",
        "sha256-chain (weight ",
    ] {
        assert!(
            text.lines()
                .any(|l| l.starts_with("ok: ") && l.contains(what)),
            "{what}: {text}"
        );
    }

    let out = bin()
        .args(["--data", &data, "check"])
        .env("KASANE_LISTEN", "127.0.0.1:99999")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("the listen address 127.0.0.1:99999: invalid port"),
        "{err}"
    );
    let tls = text.lines().find(|l| l.contains("TLS")).unwrap();
    assert!(tls.contains("(valid until 4096-01-01T00:00:00Z)"), "{tls}");
    // An expired certificate: named, and refused (its pair loads; `/readyz` would fail).
    let tls_dir = std::path::Path::new(&data).join("tls");
    let kept_pair = ["cert.pem", "key.pem"].map(|f| std::fs::read(tls_dir.join(f)).unwrap());
    let (cert, key, _) = common::expiring_certificate(1_700_000_000);
    std::fs::write(tls_dir.join("cert.pem"), cert).unwrap();
    std::fs::write(tls_dir.join("key.pem"), key).unwrap();
    let out = check(&data);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("expired at 2023-11-14T22:13:20Z"), "{err}");
    // One that expires within 30 days: ok, with a reminder.
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 10 * 86_400
        + 3_600;
    let (cert, key, _) = common::expiring_certificate(soon);
    std::fs::write(tls_dir.join("cert.pem"), cert).unwrap();
    std::fs::write(tls_dir.join("key.pem"), key).unwrap();
    let out = check(&data);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(text.contains(": expires in 10 days, renew it)"), "{text}");
    for (f, bytes) in ["cert.pem", "key.pem"].iter().zip(kept_pair) {
        std::fs::write(tls_dir.join(f), bytes).unwrap();
    }

    // A queue key other than the one the database was claimed for (a replica that made its
    // own): named, and refused.
    let queue_key = std::path::Path::new(&data).join("keys/queue.key");
    let ok_text = String::from_utf8(check(&data).stdout).unwrap();
    assert!(ok_text.contains("matches the database"), "{ok_text}");
    let kept = std::fs::read(&queue_key).unwrap();
    std::fs::remove_file(&queue_key).unwrap();
    std::fs::write(&queue_key, [9u8; 32]).unwrap();
    let out = check(&data);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("queue key") && err.contains("database"),
        "{err}"
    );
    std::fs::write(&queue_key, kept).unwrap();
    assert!(check(&data).status.success());

    // OPAQUE keys other than those the users were enrolled under (a replica, or an admin
    // machine, that made its own): `user add` and `check` refuse them.
    let add = |name: &str| {
        let mut child = bin()
            .args(["--data", &data, "user", "add", name])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "pw").unwrap();
        child.wait_with_output().unwrap()
    };
    assert!(add("bob").status.success());
    let opaque = std::path::Path::new(&data).join("keys/opaque.key");
    let enrolled = std::fs::read(&opaque).unwrap();
    std::fs::remove_file(&opaque).unwrap();
    let out = add("carol");
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("not the OPAQUE key"), "{err}");
    let out = check(&data);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("not the OPAQUE key"), "{err}");
    std::fs::remove_file(&opaque).unwrap();
    std::fs::write(&opaque, enrolled).unwrap();
    let out = check(&data);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("OPAQUE keys") && text.contains("match the database"),
        "{text}"
    );

    // A host key the registry does not list (a rotation half done): named, and refused.
    let host_key = std::path::Path::new(&data).join("keys/host.key");
    assert!(ok_text.contains("are listed in the registry"), "{ok_text}");
    let listed = std::fs::read(&host_key).unwrap();
    std::fs::remove_file(&host_key).unwrap();
    let made = bin()
        .args(["--data", &data, "new-identity-key"])
        .arg(&host_key)
        .output()
        .unwrap();
    assert!(made.status.success());
    let out = check(&data);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("does not list this key for the identity role")
            && err.contains(host_key.to_str().unwrap()),
        "{err}"
    );
    std::fs::remove_file(&host_key).unwrap();
    std::fs::write(&host_key, listed).unwrap();
    assert!(check(&data).status.success());

    std::fs::remove_file(&host_key).unwrap();
    let out = check(&data);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: "), "{err}");
    assert!(err.contains(host_key.to_str().unwrap()), "{err}");

    let config = std::path::Path::new(&data).join("kasane.toml");
    std::fs::write(&config, "listen = [").unwrap();
    let out = check(&data);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("configuration"), "{err}");
    assert!(err.contains(&data), "{err}");
}

/// `backup FILE` while nothing else runs: a 0600 copy (even under umask 000) that opens as
/// a database holding the user; a second backup to the same path fails and leaves it as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_writes_a_private_copy_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let init = bin().args(["--data", data_s, "init"]).output().unwrap();
    assert!(init.status.success());
    add_user(data_s, "carol");

    let file = dir.path().join("kasane backup.db");
    let out = common::host_bin_umask_000()
        .args(["--data", data_s, "backup"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let bytes = std::fs::read(&file).unwrap();

    let again = bin()
        .args(["--data", data_s, "backup"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("backup"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(std::fs::read(&file).unwrap(), bytes, "left intact");

    let copy = kasane_host::store::SqliteStore::open_file(&file)
        .await
        .unwrap();
    use kasane_host::store::Store as _;
    assert!(copy.get_user("carol").await.unwrap().is_some());
}

/// `kasane-host throttle list` shows user and network entries with their lock; `throttle
/// clear KEY` forgets one (and says so for a key that has none).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_list_and_clear() {
    use kasane_host::store::{Backoff, Clock, SystemClock, ThrottleKey};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let out = bin()
        .args(["--data", data_s, "init", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(out.status.success());
    lock_user(&data, "alice").await;
    let st = kasane_host::store::open(&file_config(&data).database_url)
        .await
        .unwrap();
    let net = ThrottleKey::network("2001:db8::9".parse().unwrap(), 64);
    st.record_failure(net, SystemClock.now(), &Backoff::default())
        .await
        .unwrap();
    let list = || {
        let out = bin()
            .args(["--data", data_s, "throttle", "list"])
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let text = list();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("a:2001:db8::/64\tfailures=1"),
        "{text}"
    );
    assert!(!lines[0].contains("locked"), "{text}");
    assert!(
        lines[1].starts_with("u:alice\tfailures=1\tlocked "),
        "{text}"
    );
    let out = bin()
        .args(["--data", data_s, "throttle", "clear", "a:2001:db8::/64"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "cleared a:2001:db8::/64\n"
    );
    assert!(!list().contains("2001:db8"));
    let out = bin()
        .args(["--data", data_s, "throttle", "clear", "a:2001:db8::/64"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no throttle entry a:2001:db8::/64"), "{err}");
}

/// A throttle entry whose name a terminal cannot show as is (counted before names were
/// checked: a newline, an escape sequence, a zero-width space) is listed on one line with
/// those characters escaped, and `throttle clear` takes the key as listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttle_keys_are_listed_escaped_and_cleared_as_listed() {
    use kasane_host::store::{Backoff, Clock, SystemClock, ThrottleKey};
    let dir = tempfile::tempdir().unwrap();
    let data = initialized(dir.path());
    let data_s = data.to_str().unwrap();
    let st = kasane_host::store::open(&file_config(&data).database_url)
        .await
        .unwrap();
    let forged = "ad\u{200b}min\nu:root\tfailures=0\u{1b}[2J";
    st.record_failure(
        ThrottleKey::User(forged),
        SystemClock.now(),
        &Backoff::default(),
    )
    .await
    .unwrap();
    let run = |args: &[&str]| {
        let out = bin().args(["--data", data_s]).args(args).output().unwrap();
        (out.status.success(), String::from_utf8(out.stdout).unwrap())
    };
    let listed = r"u:ad\u{200b}min\nu:root\tfailures=0\u{1b}[2J";
    let (ok, text) = run(&["throttle", "list"]);
    assert!(ok);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with(&format!("{listed}\tfailures=1")), "{text}");
    let (ok, text) = run(&["throttle", "clear", listed]);
    assert!(ok, "{text}");
    assert_eq!(text, format!("cleared {listed}\n"));
    assert_eq!(run(&["throttle", "list"]), (true, String::new()));
}

/// `<dir>/data`, made by `kasane-host init`.
fn initialized(dir: &std::path::Path) -> std::path::PathBuf {
    let data = dir.join("data");
    let init = bin().arg("--data").arg(&data).arg("init").output().unwrap();
    assert!(init.status.success(), "{init:?}");
    data
}

/// `kasane-host user add NAME` with a password on standard input.
fn add_user(data: &str, name: &str) {
    let mut child = bin()
        .args(["--data", data, "user", "add", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "pw-{name}").unwrap();
    assert!(child.wait().unwrap().success());
}

/// A live session of `user` (valid for an hour) straight into the store.
fn new_session(user: &str) -> kasane_host::store::NewSession {
    use kasane_host::store::{Clock, SystemClock};
    let now = SystemClock.now();
    kasane_host::store::NewSession {
        token_hash: vec![7; 32],
        session_id: vec![7, 0xee],
        user: user.to_owned(),
        created: now,
        expires_at: now + 3600,
        secret: zeroize::Zeroizing::new(vec![0x5e; 32]),
        max_per_user: 128,
    }
}

/// `restore FILE`: refused while the database is open elsewhere, and for a file that is not
/// a host database (the database left as it was); then the backup takes the database's
/// place (kept beside it), its session ended, its counters moved 2^32 ahead, and the users
/// it takes back named: enrolled since (gone), removed since (back), changed since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_puts_a_backup_in_place_and_names_what_it_takes_back() {
    use kasane_host::store::{RESTORE_COUNTER_JUMP, SqliteStore, Store as _};
    let dir = tempfile::tempdir().unwrap();
    let data = initialized(dir.path());
    let data_s = data.to_str().unwrap();
    for name in ["alice", "bob", "dave"] {
        add_user(data_s, name);
    }
    let db = data.join("kasane.db");
    let st = SqliteStore::open_file(&db).await.unwrap();
    assert_eq!(st.next_counter("alice").await.unwrap(), 1);
    st.create_session(&new_session("alice")).await.unwrap();
    let backup = dir.path().join("b.db");
    st.backup_to(&backup).await.unwrap();
    add_user(data_s, "carol");
    assert!(st.remove_user("dave").await.unwrap());
    let bob = st
        .get_user("bob")
        .await
        .unwrap()
        .unwrap()
        .opaque_record
        .unwrap();
    assert!(
        st.reenroll("bob", &bob, &[9; 32], &[], &[])
            .await
            .unwrap()
            .is_some()
    );

    let restore = |file: &std::path::Path| {
        let out = bin()
            .args(["--data", data_s, "restore"])
            .arg(file)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    };
    let (ok, text) = restore(&backup);
    assert!(!ok && text.contains("in use"), "{text}");
    st.close().await;
    drop(st);
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"not a database").unwrap();
    let (ok, text) = restore(&junk);
    assert!(!ok && text.contains("not a Kasane host database"), "{text}");

    let (ok, text) = restore(&backup);
    assert!(ok, "{text}");
    assert!(text.contains("ended 1 session and"), "{text}");
    assert!(
        text.contains("gone now (enroll them again): carol\n"),
        "{text}"
    );
    assert!(text.contains("(remove them again): dave\n"), "{text}");
    assert!(text.contains("(change them again): bob\n"), "{text}");
    let names: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("kasane.db"))
        .collect();
    let aside = names.iter().find(|n| n.starts_with("kasane.db.replaced-"));
    let aside = data.join(aside.unwrap_or_else(|| panic!("{names:?}")));
    assert!(!names.iter().any(|n| n.contains("restoring")), "{names:?}");

    let replaced = SqliteStore::open_file(&aside).await.unwrap();
    assert!(
        replaced.get_user("carol").await.unwrap().is_some(),
        "nothing lost"
    );
    replaced.close().await;
    let restored = SqliteStore::open_file(&db).await.unwrap();
    assert!(restored.get_user("carol").await.unwrap().is_none());
    assert!(restored.get_user("dave").await.unwrap().is_some());
    let alice = restored.get_user("alice").await.unwrap().unwrap();
    assert_eq!(alice.counter, 1 + RESTORE_COUNTER_JUMP);
    assert!(
        restored
            .touch_session(
                &[7; 32],
                kasane_host::store::Clock::now(&kasane_host::store::SystemClock),
                3600
            )
            .await
            .unwrap()
            .is_none()
    );
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&db).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
}
