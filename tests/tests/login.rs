//! End-to-end logins: the real host and the real client over TLS 1.3 on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use kasane_client::{Client, ClientError};
use kasane_host::setup::CodeCard;
use kasane_os::report::Chain;
use kasane_tests::{
    TestHost, files_under, proxy, responder, responder_with, start, start_with,
    start_with_foreign_host_key,
};
use zeroize::Zeroizing;

/// The built-in transforms `kasane-host init` publishes.
fn builtins() -> Vec<&'static str> {
    kasane_host::setup::BUILTINS
        .iter()
        .map(|b| b.name)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_with_each_builtin_transform() {
    let th = start().await;
    let card = th.add_user("alice").await;
    let state = tempfile::tempdir().unwrap();
    for name in builtins() {
        th.force(name);
        // A fresh client each time: the registry changed under it.
        let client = Client::connect(th.client_config(Some(state.path().to_owned())))
            .await
            .unwrap();
        let (session, report) = client.login("alice", &mut responder(&card)).await.unwrap();
        assert_eq!(report.transform, name);
        assert_eq!(report.user, "alice");
        assert!(!report.from_cache, "{name}: first use compiles");
        // The session seals with the same transform (purpose = message).
        let mut session = session;
        let accepted = session.send("alice", name.as_bytes()).await.unwrap();
        assert_eq!(accepted.seq, 1, "{name}");
        let got = session.inbox(0).await.unwrap();
        assert_eq!(got.len(), 1, "{name}");
        assert_eq!(got[0].body.as_slice(), name.as_bytes());
        session.close().await.unwrap();
        // Warm: the same module comes from the compile cache.
        let (session, report) = client.login("alice", &mut responder(&card)).await.unwrap();
        assert_eq!(report.transform, name);
        assert!(report.from_cache, "{name}: second use is cached");
        session.close().await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transform_published_while_the_client_runs_is_used_at_its_next_login() {
    let th = start().await;
    let card = th.add_user("alice").await;
    th.force("sha256-chain");
    let client = Client::connect(th.client_config(None)).await.unwrap();
    let (s, report) = client.login("alice", &mut responder(&card)).await.unwrap();
    assert_eq!(report.transform, "sha256-chain");
    s.close().await.unwrap();

    // A new transform (the same code with another custom section: another hash), published
    // and made the only choice while this client keeps running.
    let mut wasm = kasane_host::setup::BUILTINS[0].wasm.to_vec();
    wasm.extend_from_slice(&[0x00, 0x05, 0x04]);
    wasm.extend_from_slice(b"next");
    let hash = th.publish("sha256-chain-next", &wasm, b"", 1);
    th.force("sha256-chain-next");
    let (s, report) = client.login("alice", &mut responder(&card)).await.unwrap();
    assert_eq!(report.transform, "sha256-chain-next");
    assert_eq!(report.sha256, hash.0);
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_revoked_transform_is_refused_even_from_the_cache() {
    let th = start().await;
    let card = th.add_user("alice").await;
    let mut wasm = kasane_host::setup::BUILTINS[0].wasm.to_vec();
    wasm.extend_from_slice(&[0x00, 0x05, 0x04]);
    wasm.extend_from_slice(b"rvkd");
    let hash = th.publish("doomed", &wasm, b"", 1);
    th.force("doomed");
    let state = tempfile::tempdir().unwrap();
    let config = |url: &str| th.client_config_for(url, Some(state.path().to_owned()));
    let client = Client::connect(config(&th.url())).await.unwrap();
    for cached in [false, true] {
        let (s, report) = client.login("alice", &mut responder(&card)).await.unwrap();
        assert_eq!(report.transform, "doomed");
        assert_eq!(report.from_cache, cached);
        s.close().await.unwrap();
    }

    // Revoked in the registry. A compromised host (it holds every key the real one does:
    // the OPAQUE keys, the host key, the online key that signs tickets) still offers it, with
    // a valid ticket for this login; the client refuses it from its own trust state.
    th.revoke(hash);
    let (_compromised, url) = th.compromised().await;
    let client = Client::connect(config(&url)).await.unwrap();
    let Err(err) = client.login("alice", &mut responder(&card)).await else {
        panic!("a revoked module was accepted from the cache");
    };
    assert!(matches!(err, ClientError::Revoked(_)), "got: {err}");
    // The honest host, with the same cache, logs in with another transform.
    th.force("sha256-chain");
    let client = Client::connect(config(&th.url())).await.unwrap();
    let (s, report) = client.login("alice", &mut responder(&card)).await.unwrap();
    assert_ne!(report.sha256, hash.0, "a revoked module ran");
    s.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn module_bytes_swapped_on_the_wire_are_refused_before_compiling() {
    // Behind a TLS-terminating proxy the host turns channel binding off (docs/PROTOCOL.md §12).
    let th = start_with(|c| c.channel_binding = false).await;
    let card = th.add_user("alice").await;
    th.force("hmac-sha256");
    let proxy = proxy::start(&th).await;
    let state = tempfile::tempdir().unwrap();
    let client = Client::connect(th.client_config_for(
        &format!("https://{}", proxy.addr),
        Some(state.path().to_owned()),
    ))
    .await
    .unwrap();
    let Err(err) = client.login("alice", &mut responder(&card)).await else {
        panic!("a swapped module must not log in");
    };
    assert!(
        matches!(err, ClientError::UntrustedModule(_)),
        "expected an untrusted module, got: {err}"
    );
    assert!(proxy.swapped.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    // Nothing was compiled: the compile cache holds no module.
    let compiled: Vec<_> = files_under(state.path())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm" || e == "bin"))
        .collect();
    assert!(compiled.is_empty(), "compiled: {compiled:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_whose_signed_ephemeral_key_does_not_verify_is_refused() {
    let th = start_with_foreign_host_key().await;
    let card = th.add_user("alice").await;
    let client = Client::connect(th.client_config(None)).await.unwrap();
    let Err(err) = client.login("alice", &mut responder(&card)).await else {
        panic!("an impostor host must not log in");
    };
    assert!(matches!(err, ClientError::HostKey), "got: {err}");
}

/// A host with alice enrolled, and a client state directory she has logged in from once.
async fn alice_logged_in() -> (TestHost, CodeCard, tempfile::TempDir) {
    let th = start().await;
    let card = th.add_user("alice").await;
    let state = tempfile::tempdir().unwrap();
    log_in(&th, th.url(), state.path(), &card).await.unwrap();
    (th, card, state)
}

/// One connect, login as alice and logout at `url`, with the client state in `state`.
async fn log_in(
    th: &TestHost,
    url: String,
    state: &std::path::Path,
    card: &CodeCard,
) -> Result<(), ClientError> {
    let client = Client::connect(th.client_config_for(&url, Some(state.to_owned()))).await?;
    let (s, _) = client.login("alice", &mut responder(card)).await?;
    s.close().await
}

/// Moves the new key file `next` into `keys/<file>`, keeping the one in use as
/// `<file>.old`, and reloads the host (`SIGHUP`), as docs/OPERATIONS.md's rotations end.
async fn put_key_in_place(
    th: &TestHost,
    file: &str,
    next: &std::path::Path,
) -> kasane_host::server::Reloaded {
    let keys = &th.cfg.keys_dir;
    std::fs::rename(keys.join(file), keys.join(format!("{file}.old"))).unwrap();
    std::fs::rename(next, keys.join(file)).unwrap();
    th.reload().await
}

/// A rotation of the host's identity key as docs/OPERATIONS.md describes it: the new key
/// listed beside the old one (`host-keys --add-identity`), a host process started on it; a
/// client whose trust state predates the change logs in there (the unknown signer makes it
/// update first) and still at the host on the old key. Once the old key is removed
/// (`--remove-identity`), a host still signing with it is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_identity_key_rotation_keeps_clients_logging_in() {
    use kasane_registry::keys::{SecretKey, write_key_file};
    let (th, card, state) = alice_logged_in().await;
    let login = |url: String| log_in(&th, url, state.path(), &card);

    let key_file = th.cfg.keys_dir.join("host.key");
    let old = kasane_registry::keys::read_key_file(&key_file)
        .unwrap()
        .public();
    let new = SecretKey::generate();
    let listed =
        |k: &kasane_registry::keys::PublicKey| kasane_tuf::keys::Key::ed25519(&k.to_bytes());
    th.edit_host_keys(|h| h.identity.push(listed(&new.public())));
    std::fs::rename(&key_file, th.cfg.keys_dir.join("host.key.old")).unwrap();
    write_key_file(&key_file, &new).unwrap();
    let (_rotated, url) = th.another_process().await;
    login(url.clone()).await.unwrap();
    login(th.url()).await.unwrap();

    th.edit_host_keys(|h| h.identity.retain(|k| *k != listed(&old)));
    login(url).await.unwrap();
    let refused = login(th.url()).await;
    assert!(matches!(refused, Err(ClientError::HostKey)), "{refused:?}");
}

/// A rotation of the ticket key alone, as docs/OPERATIONS.md describes it: a new key listed
/// beside the old one (`host-keys --add-ticket`), moved into `keys/ticket.pem`, a reload, the
/// old key removed. A client whose trust state predates the change (taken up from its state
/// directory without a download) meets a ticket signed by a key it does not know yet: it
/// updates and logs in, before and after the old key is removed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ticket_key_rotation_keeps_clients_logging_in() {
    use kasane_host::rekey::KeyReload;
    use kasane_registry::signing::{KeyFileSigner, KeyKind, Signer, tuf_key};
    let (th, card, state) = alice_logged_in().await;
    let login = || log_in(&th, th.url(), state.path(), &card);

    let keys = th.cfg.keys_dir.clone();
    let next = keys.join("ticket.next.pem");
    let new = KeyFileSigner::generate(KeyKind::Ed25519, &next, None).unwrap();
    let old = tuf_key(
        KeyFileSigner::open(&keys.join("ticket.pem"), None)
            .unwrap()
            .public_key(),
    );
    th.edit_host_keys(|h| h.tickets.push(tuf_key(new.public_key())));
    let r = put_key_in_place(&th, "ticket.pem", &next).await;
    assert!(
        matches!(r.keys.ticket, Ok(KeyReload::New)),
        "{:?}",
        r.keys.ticket
    );
    login().await.unwrap();

    th.edit_host_keys(|h| h.tickets.retain(|k| *k != old));
    login().await.unwrap();
}

/// A reload (`SIGHUP`) takes new signing keys without a restart, each only once the
/// registry lists it: an identity key or a ticket key not listed yet is refused and the one in
/// use goes on signing (logins go on); listed, it is taken, and clients log in under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reload_takes_new_keys_only_once_the_registry_lists_them() {
    use kasane_host::rekey::KeyReload;
    use kasane_registry::keys::{SecretKey, write_key_file};
    use kasane_registry::signing::{KeyFileSigner, KeyKind, Signer, tuf_key};
    let (th, card, state) = alice_logged_in().await;
    let login = || log_in(&th, th.url(), state.path(), &card);
    let keys = th.cfg.keys_dir.clone();
    let old = th.host.host_public_key();
    let new = SecretKey::generate();
    std::fs::rename(keys.join("host.key"), keys.join("host.key.old")).unwrap();
    write_key_file(&keys.join("host.key"), &new).unwrap();
    std::fs::rename(keys.join("ticket.pem"), keys.join("ticket.pem.old")).unwrap();
    let ticket = KeyFileSigner::generate(KeyKind::Ed25519, &keys.join("ticket.pem"), None).unwrap();

    let r = th.reload().await;
    assert!(r.registry.is_ok());
    for (what, got) in [("identity", &r.keys.identity), ("ticket", &r.keys.ticket)] {
        let e = got.as_ref().expect_err(what);
        let chain = Chain(e).to_string();
        let expected = format!("does not list this key for the {what} role");
        assert!(chain.contains(&expected), "{chain}");
    }
    assert!(
        matches!(r.keys.online, Ok(KeyReload::Same)),
        "{:?}",
        r.keys.online
    );
    assert_eq!(th.host.host_public_key(), old);
    login().await.unwrap();

    th.edit_host_keys(|h| {
        h.identity
            .push(kasane_tuf::keys::Key::ed25519(&new.public().to_bytes()));
        h.tickets.push(tuf_key(ticket.public_key()));
    });
    let r = th.reload().await;
    assert!(
        matches!(r.keys.identity, Ok(KeyReload::New)),
        "{:?}",
        r.keys.identity
    );
    assert!(
        matches!(r.keys.ticket, Ok(KeyReload::New)),
        "{:?}",
        r.keys.ticket
    );
    assert_eq!(th.host.host_public_key(), new.public().to_bytes());
    login().await.unwrap();
    let r = th.reload().await;
    assert!(
        matches!(r.keys.identity, Ok(KeyReload::Same)),
        "{:?}",
        r.keys.identity
    );
    assert!(
        matches!(r.keys.ticket, Ok(KeyReload::Same)),
        "{:?}",
        r.keys.ticket
    );

    // With the old keys gone from the registry, logins go on: nothing signs with them now.
    th.edit_host_keys(|h| {
        h.identity
            .retain(|k| *k != kasane_tuf::keys::Key::ed25519(&old));
        h.tickets.retain(|k| *k == tuf_key(ticket.public_key()));
    });
    login().await.unwrap();

    // The online key: a missing file keeps the one in use, and so does a key root does not
    // name for timestamp and snapshot.
    let online = keys.join("online.pem");
    std::fs::rename(&online, keys.join("online.pem.old")).unwrap();
    let r = th.reload().await;
    let e = Chain(r.keys.online.as_ref().unwrap_err()).to_string();
    assert!(
        e.contains("online.pem") && e.contains("no such file"),
        "{e}"
    );
    KeyFileSigner::generate(KeyKind::Ed25519, &online, None).unwrap();
    let r = th.reload().await;
    let e = Chain(r.keys.online.as_ref().unwrap_err()).to_string();
    assert!(
        e.contains("does not list this key for the online role"),
        "{e}"
    );
}

/// An online-key rotation as docs/OPERATIONS.md describes it: `rotate-root
/// --new-online-key` (root N+1, timestamp and snapshot re-signed with the new key), the new
/// key moved into `keys/online.pem`, a reload. The host takes the key, its next re-signing
/// uses it, and a client whose trust state predates the rotation follows the root chain and
/// logs in before and after that re-signing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_online_key_rotation_is_taken_at_a_reload() {
    use kasane_host::rekey::KeyReload;
    use kasane_registry::cli::{KeyAccess, KeyLocation, Keys, RotateOptions, rotate_root};
    use kasane_registry::signing::{KeyFileSigner, KeyKind, Signer, tuf_key};
    let (th, card, state) = alice_logged_in().await;
    let login = || log_in(&th, th.url(), state.path(), &card);

    let keys = th.cfg.keys_dir.clone();
    let next = keys.join("online.pem.next");
    let new = KeyFileSigner::generate(KeyKind::Ed25519, &next, None).unwrap();
    let cli_keys = Keys {
        dir: Some(keys.clone()),
        explicit: Vec::new(),
        access: KeyAccess::default(),
    };
    let options = RotateOptions {
        root_keys: Vec::new(),
        new_root: None,
        new_targets: None,
        new_online: Some(KeyLocation::File(next.clone())),
    };
    let rotated = rotate_root(&th.cfg.registry_dir, &cli_keys, &options).unwrap();
    assert_eq!(rotated.rotated, ["online"]);
    let r = put_key_in_place(&th, "online.pem", &next).await;
    assert!(
        matches!(r.keys.online, Ok(KeyReload::New)),
        "{:?}",
        r.keys.online
    );
    login().await.unwrap();

    // The next re-signing (due half a lifetime before expiry) is the new key's.
    let signed_by = || {
        let path = th.cfg.registry_dir.join("metadata/timestamp.json");
        let json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        let version = json["signed"]["version"].as_u64().unwrap();
        (
            version,
            json["signatures"][0]["keyid"].as_str().unwrap().to_owned(),
        )
    };
    let before = signed_by();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    th.host.registry().maintain(now + 4 * 86_400);
    let after = signed_by();
    assert!(after.0 > before.0, "not re-signed: {before:?} {after:?}");
    assert_eq!(after.1, tuf_key(new.public_key()).key_id().to_string());
    login().await.unwrap();
}

/// The library side of no-cache mode: nothing is kept between logins. The client writes
/// only to its state dir (none here: the trust store lives in memory, and a login that needs
/// a refresh or a delegated role fetches it into memory); with a state dir, the same logins
/// keep files there. (The `kasane` binary, with HOME, XDG dirs and TMPDIR pointed at empty
/// directories, is checked in client-runtime/cli/tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_cache_mode_keeps_nothing_between_logins() {
    let th = start().await;
    let card = th.add_user("alice").await;
    th.force("blake2s-keyed");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");

    let client = Client::connect(th.client_config(None)).await.unwrap();
    let (s, report) = client.login("alice", &mut responder(&card)).await.unwrap();
    assert!(!report.from_cache);
    s.close().await.unwrap();
    // A new timestamp and snapshot: the next ticket names them, so the login refreshes the
    // trust store (in memory).
    let mut wasm = kasane_host::setup::BUILTINS[0].wasm.to_vec();
    wasm.extend_from_slice(&[0x00, 0x05, 0x04]);
    wasm.extend_from_slice(b"next");
    th.publish("sha256-chain-next", &wasm, b"", 1);
    th.force("sha256-chain-next");
    let (s, report) = client.login("alice", &mut responder(&card)).await.unwrap();
    assert_eq!(report.transform, "sha256-chain-next");
    assert!(!report.from_cache);
    s.close().await.unwrap();
    assert!(entries(dir.path()).is_empty());

    // The same logins with a state dir keep the trust state, the module and its compiled
    // form there.
    let mut cached = th.client_config(None);
    cached.state_dir = Some(state.clone());
    let client = Client::connect(cached).await.unwrap();
    for _ in 0..2 {
        let (s, _) = client.login("alice", &mut responder(&card)).await.unwrap();
        s.close().await.unwrap();
    }
    let kept = files_under(&state);
    for part in ["trust", "modules", "cache"] {
        assert!(
            kept.iter().any(|p| p.starts_with(state.join(part))),
            "nothing kept in {part}: {kept:?}"
        );
    }
    assert_eq!(entries(dir.path()), ["state"]);
}

fn entries(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relayed_message_reaches_its_recipient() {
    let th = start().await;
    let alice_card = th.add_user("alice").await;
    let bob_card = th.add_user("bob").await;
    th.force("ocra");
    let client = Client::connect(th.client_config(None)).await.unwrap();
    let (alice, _) = client
        .login("alice", &mut responder(&alice_card))
        .await
        .unwrap();
    let accepted = alice.send("bob", b"hello bob").await.unwrap();
    assert_eq!(accepted.seq, 1);
    // Bob was not logged in: he gets it at his next login.
    let (mut bob, _) = client
        .login("bob", &mut responder(&bob_card))
        .await
        .unwrap();
    let got = bob.inbox(0).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].from, "alice");
    assert_eq!(got[0].body.as_slice(), b"hello bob");
    // Acknowledged: not delivered twice.
    assert!(bob.inbox(0).await.unwrap().is_empty());
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

/// Wrong password, unknown user, wrong response: the real client tells its user which step
/// failed, but on the network the host's answer to each failed step is the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_failure_looks_the_same_on_the_network() {
    let th = start_with(|c| c.channel_binding = false).await;
    let card = th.add_user("alice").await;
    let (addr, log) = proxy::record(&th).await;
    let client = Client::connect(th.client_config_for(&format!("https://{addr}"), None))
        .await
        .unwrap();
    let wrong_password = client
        .login("alice", &mut responder_with("wrong", &card))
        .await;
    assert!(matches!(wrong_password, Err(ClientError::PasswordRefused)));
    let unknown = client.login("mallory", &mut responder(&card)).await;
    assert!(matches!(unknown, Err(ClientError::PasswordRefused)));
    let other_card = kasane_host::setup::CodeCard::generate("alice");
    let wrong_answers = client
        .login(
            "alice",
            &mut responder_with(kasane_tests::PASSWORD, &other_card),
        )
        .await;
    assert!(matches!(wrong_answers, Err(ClientError::LoginRefused)));
    let log = log.lock().unwrap().clone();
    let failed: Vec<_> = log
        .iter()
        .filter(|x| x.request_line.starts_with("POST /v1/login/"))
        .filter(|x| !x.status_line.starts_with("HTTP/1.1 200"))
        .collect();
    let steps: Vec<&str> = failed
        .iter()
        .map(|x| x.request_line.split_whitespace().nth(1).unwrap_or(""))
        .collect();
    assert_eq!(
        steps,
        ["/v1/login/finish", "/v1/login/finish", "/v1/login/response"]
    );
    for x in &failed {
        assert!(
            x.status_line.starts_with("HTTP/1.1 401"),
            "{}",
            x.status_line
        );
        assert_eq!(x.response_body, failed[0].response_body);
    }
    // Every start was answered alike: 200 and a start response of one length.
    let starts: Vec<_> = log
        .iter()
        .filter(|x| x.request_line.starts_with("POST /v1/login/start"))
        .collect();
    assert_eq!(starts.len(), 3);
    for x in &starts {
        assert!(x.status_line.starts_with("HTTP/1.1 200"));
        assert_eq!(x.response_body.len(), starts[0].response_body.len());
    }
}

/// What a request on a session the host has ended gets.
fn assert_session_ended<T: std::fmt::Debug>(result: Result<T, ClientError>) {
    assert!(
        matches!(
            result,
            Err(ClientError::Refused(
                kasane_protocol::RefusalReason::SessionEnded
            ))
        ),
        "{result:?}"
    );
}

/// `kasane-host user logout` (`Store::end_sessions`, another process): the host, which
/// answers the session's inbox from memory, reads the end from the store within about a
/// second (`host/src/session_ends.rs`) and refuses it; the user logs in again. SIGHUP
/// forgets every session held: a live one is read from the store again and goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sessions_ended_by_another_process_are_refused_within_seconds() {
    let th = start().await;
    let card = th.add_user("alice").await;
    let client = Client::connect(th.client_config(None)).await.unwrap();
    let (mut s, _) = client.login("alice", &mut responder(&card)).await.unwrap();
    s.inbox(0).await.unwrap();
    let reloaded = th.reload().await;
    assert!(reloaded.sessions_forgotten >= 1, "{reloaded:?}");
    s.inbox(0).await.unwrap();
    let ended = th.host.store().end_sessions("alice").await.unwrap();
    assert_eq!(ended, Some(1));
    // Bounded: the host reads ends every second; 10 s is far from a minute's write-through.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let refused = loop {
        match s.inbox(0).await {
            Ok(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            other => break other,
        }
    };
    assert_session_ended(refused);
    let (again, _) = client.login("alice", &mut responder(&card)).await.unwrap();
    again.close().await.unwrap();
}

/// `Session::change_credentials` (what `kasane passwd` runs): it ends the user's other
/// sessions (one in use, one the host has in memory) and keeps the one it came through;
/// afterwards only the new password with the new card logs in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn changing_password_and_card_takes_effect_at_the_next_login() {
    let th = start().await;
    let card = th.add_user("alice").await;
    let client = Client::connect(th.client_config(None)).await.unwrap();
    let (mut other, _) = client.login("alice", &mut responder(&card)).await.unwrap();
    other.inbox(0).await.unwrap();
    let (mut s, _) = client.login("alice", &mut responder(&card)).await.unwrap();
    let new_card = kasane_host::setup::CodeCard::generate("alice");
    s.change_credentials(Zeroizing::new("a new password".into()), &new_card)
        .await
        .unwrap();
    assert_session_ended(other.inbox(0).await);
    s.inbox(0).await.unwrap();
    s.close().await.unwrap();
    let old = client.login("alice", &mut responder(&card)).await;
    assert!(matches!(old, Err(ClientError::PasswordRefused)), "{old:?}");
    let old_card = client
        .login("alice", &mut responder_with("a new password", &card))
        .await;
    assert!(
        matches!(old_card, Err(ClientError::LoginRefused)),
        "{old_card:?}"
    );
    let (s, _) = client
        .login("alice", &mut responder_with("a new password", &new_card))
        .await
        .unwrap();
    s.close().await.unwrap();
}

/// A `PasswdFinish` sent again within its session, by whoever holds the bearer token and saw
/// the body (a TLS-terminating proxy with binding off), is refused as replayed once another
/// change followed it, and changes nothing: the change made after it stays in force, and the
/// session it came through too. The last change sent again (a retry) is answered as done.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_password_change_sent_again_is_refused_and_changes_nothing() {
    let th = start_with(|c| c.channel_binding = false).await;
    let card = th.add_user("alice").await;
    let (addr, log) = proxy::record(&th).await;
    let url = format!("https://{addr}");
    let client = Client::connect(th.client_config_for(&url, None))
        .await
        .unwrap();
    let (mut s, _) = client.login("alice", &mut responder(&card)).await.unwrap();
    let (first, second) = (CodeCard::generate("alice"), CodeCard::generate("alice"));
    for (password, card) in [("first new one", &first), ("second new one", &second)] {
        let password = Zeroizing::new(password.to_owned());
        s.change_credentials(password, card).await.unwrap();
    }
    let finishes: Vec<Vec<u8>> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|x| x.request_line.starts_with("POST /v1/passwd/finish"))
        .map(|x| x.request_body.clone())
        .collect();
    assert_eq!(finishes.len(), 2);
    let token = s.bearer_token();
    for (body, answer) in finishes.iter().zip(["HTTP/1.1 409", "HTTP/1.1 204"]) {
        let status = post_to_host(&th, "/v1/passwd/finish", &token, body).await;
        assert!(status.starts_with(answer), "{status}");
    }
    s.inbox(0).await.unwrap();
    s.close().await.unwrap();
    for (password, card, works) in [
        ("first new one", &first, false),
        ("second new one", &second, true),
    ] {
        let login = client
            .login("alice", &mut responder_with(password, card))
            .await;
        assert_eq!(login.is_ok(), works, "{password}: {:?}", login.err());
    }
}

/// One `POST` of `body` to the host itself over TLS with `token` as the bearer token: the
/// answer's status line.
async fn post_to_host(th: &TestHost, path: &str, token: &str, body: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tls = kasane_tests::client_tls(&std::fs::read(&th.cfg.tls_cert).unwrap(), &[]);
    let tcp = tokio::net::TcpStream::connect(th.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = tokio_rustls::TlsConnector::from(tls)
        .connect(name, tcp)
        .await
        .unwrap();
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {token}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(body).await.unwrap();
    let mut answer = Vec::new();
    let _ = conn.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    answer.lines().next().unwrap_or_default().to_owned()
}

/// One state directory serves hosts of two registries: each pinned root has its own trust
/// store, so a login to the second host does not run against the first one's registry (it
/// failed with "registry trust update failed" until the state was deleted by hand).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_state_directory_serves_hosts_of_two_registries() {
    let a = start().await;
    let b = start().await;
    let card_a = a.add_user("alice").await;
    let card_b = b.add_user("alice").await;
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    for (th, card) in [(&a, &card_a), (&b, &card_b), (&a, &card_a)] {
        let client = Client::connect(th.client_config(Some(state.clone())))
            .await
            .unwrap();
        let (s, _) = client.login("alice", &mut responder(card)).await.unwrap();
        s.close().await.unwrap();
    }
    let stores = std::fs::read_dir(state.join("trust")).unwrap().count();
    assert_eq!(stores, 2, "one trust store per pinned root");
}
