//! Registry changes reach the next login without a restart; revocations stick; a client
//! without wasi support never gets a wasi transform.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::*;
use kasane_host::registry::module_path;
use kasane_host::store::Clock;
use kasane_protocol::wire::Profile;
use kasane_registry::Sha256Hash;
use kasane_registry::entry::TargetEntry;
use kasane_registry::repo::{Lifetimes, Repository};
use kasane_registry::signing::{KeyFileSigner, TufSigner};

/// `sha256-chain` with a custom section appended: the same function, another hash.
fn variant(tag: &[u8; 4]) -> Vec<u8> {
    let mut wasm = include_bytes!("../../guest-transforms/dist/sha256-chain.wasm").to_vec();
    wasm.extend_from_slice(&[0x00, 0x05, 0x04]);
    wasm.extend_from_slice(tag);
    wasm
}

/// Publishes `wasm` as `name` into the host's registry with kasane-registry's library.
fn publish(th: &TestHost, name: &str, wasm: &[u8], weight: u32) -> Sha256Hash {
    publish_with(th, name, wasm, 50_000_000, b"", weight)
}

fn publish_with(
    th: &TestHost,
    name: &str,
    wasm: &[u8],
    fuel: u64,
    params: &[u8],
    weight: u32,
) -> Sha256Hash {
    let entry = TargetEntry {
        name: name.to_owned(),
        sha256: Sha256Hash::of(wasm),
        length: wasm.len() as u64,
        profile: Profile::Pure,
        fuel,
        memory: 16 << 20,
        params: params.to_vec(),
        rollout_weight: weight,
    };
    std::fs::write(module_path(&th.cfg.registry_dir, &entry), wasm).unwrap();
    reweigh(th, entry.clone(), weight);
    entry.sha256
}

/// Publishes `entry` (again) with rollout weight `weight`.
fn reweigh(th: &TestHost, mut entry: TargetEntry, weight: u32) {
    entry.rollout_weight = weight;
    edit(th, |repo, now, life| {
        let targets = role_key(th, "targets");
        repo.add_target(&entry, &[&TufSigner(&targets)], now, life)
            .unwrap();
    });
}

fn revoke(th: &TestHost, hash: Sha256Hash) {
    edit(th, |repo, now, life| {
        let revocations = role_key(th, "revocations");
        repo.revoke_hash(Some(hash), &[&TufSigner(&revocations)], now, life)
            .unwrap();
    });
}

/// A development role key of the host's registry (`keys/<role>.pem`).
fn role_key(th: &TestHost, role: &str) -> KeyFileSigner {
    KeyFileSigner::open(&th.cfg.keys_dir.join(format!("{role}.pem")), None).unwrap()
}

/// Loads the host's repository, applies `f`, re-signs snapshot and timestamp, saves.
fn edit(th: &TestHost, f: impl FnOnce(&mut Repository, u64, &Lifetimes)) {
    let now = th.clock.now();
    let life = Lifetimes::default();
    let mut repo = Repository::load(&th.cfg.registry_dir).unwrap();
    f(&mut repo, now, &life);
    let online = role_key(th, "online");
    repo.snapshot(&[&TufSigner(&online)], now, &life).unwrap();
    repo.save(&th.cfg.registry_dir).unwrap();
}

async fn chosen(th: &TestHost, conn: &mut Conn, profiles: &[Profile]) -> (String, Profile) {
    let ch = to_bundle(th, conn, "alice", PASSWORD, profiles.to_vec())
        .await
        .unwrap();
    (ch.bundle().module.name.clone(), ch.bundle().module.profile)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_published_transform_is_chosen_without_restart_and_never_once_revoked() {
    let th = start(|_| {}).await;
    th.add_user("alice").await;
    let mut conn = th.connect().await;
    let before = chosen(&th, &mut conn, &[Profile::Pure]).await.0;
    assert_ne!(before, "canary");

    // Weight 1 000 000 against the built-ins' 95: chosen at once (a login completes with it).
    let hash = publish(&th, "canary", &variant(b"cnry"), 1_000_000);
    let mut used = false;
    for _ in 0..5 {
        let (_, _, bundle) = login(&th, &mut conn, "alice").await;
        if bundle.module.name == "canary" {
            used = true;
            break;
        }
    }
    assert!(used, "the published transform was never chosen");

    revoke(&th, hash);
    for _ in 0..30 {
        assert_ne!(chosen(&th, &mut conn, &[Profile::Pure]).await.0, "canary");
    }
    assert!(
        !th.host
            .registry()
            .active(th.clock.now())
            .unwrap()
            .iter()
            .any(|e| e.name == "canary")
    );
    // Publishing it again under its revoked hash does not bring it back.
    publish(&th, "canary", &variant(b"cnry"), 1_000_000);
    for _ in 0..10 {
        assert_ne!(chosen(&th, &mut conn, &[Profile::Pure]).await.0, "canary");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_without_wasi_never_gets_a_wasi_transform() {
    let th = start(|_| {}).await;
    th.add_user("alice").await;
    let mut conn = th.connect().await;
    // Make the wasi built-in the pick for anyone who can run it: weight u32::MAX against the
    // pure built-ins' 95, so a choice that ignored the client's profiles would take it with
    // probability 1 - 2e-8 on each of the draws below.
    let wasi = th
        .host
        .registry()
        .active(th.clock.now())
        .unwrap()
        .into_iter()
        .find(|e| e.profile == Profile::Wasi)
        .expect("a wasi built-in");
    assert_eq!(wasi.name, "sha256-wasi-c");
    reweigh(&th, wasi.clone(), u32::MAX);
    assert!(
        th.host
            .registry()
            .active(th.clock.now())
            .unwrap()
            .iter()
            .any(|e| e.name == wasi.name && e.rollout_weight == u32::MAX)
    );
    for _ in 0..40 {
        let (name, profile) = chosen(&th, &mut conn, &[Profile::Pure]).await;
        assert_eq!(profile, Profile::Pure, "{name}");
        assert_ne!(name, wasi.name);
    }
    // A wasi-only client gets the wasi transform, and the host verifies it.
    let ch = to_bundle(&th, &mut conn, "alice", PASSWORD, vec![Profile::Wasi])
        .await
        .unwrap();
    assert_eq!(ch.bundle().module.name, "sha256-wasi-c");
    let (_, bytes) = respond(&th, &mut conn, ch, &card_map()).await;
    let (status, _) = conn.post("/v1/login/response", bytes).await;
    assert_eq!(status, hyper::StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ticket_and_module_pass_a_client_trust_store() {
    use kasane_protocol::ClientStart;
    use kasane_registry::trust::{DirFetcher, Pin, TrustStore};
    use rand_core::OsRng;

    let th = start(|_| {}).await;
    th.add_user("alice").await;
    let mut conn = th.connect().await;
    let profiles = vec![Profile::Pure, Profile::Wasi];
    let client = ClientStart::new(&mut OsRng, "alice", PASSWORD.as_bytes(), profiles).unwrap();
    let nonce = client.request().client_nonce;
    let (_, start) = conn
        .post("/v1/login/start", client.request_bytes().to_vec())
        .await;
    let (client, req) = client
        .receive(&mut OsRng, &start, &[th.host_key()], Some(&conn.exporter))
        .unwrap();
    let (_, bundle) = conn.post("/v1/login/finish", req).await;
    let ch = client.receive(&bundle).unwrap();
    let bundle = ch.bundle().clone();

    // A client pins root 1 as served by the host and updates from the host's files.
    let (_, root) = conn.get("/v1/registry/metadata/1.root.json", None).await;
    let state = tempfile::tempdir().unwrap();
    let mut trust = TrustStore::init(
        state.path(),
        &root,
        Pin::File,
        kasane_registry::trust::SystemClock,
    )
    .unwrap();
    let repo = DirFetcher::new(&th.cfg.registry_dir);
    trust.update(&repo).unwrap();
    let (module_status, module) = conn
        .get(
            &format!("/v1/modules/{}.wasm", hex::encode(bundle.module.sha256)),
            None,
        )
        .await;
    assert_eq!(module_status, hyper::StatusCode::OK);
    let admitted = trust.admit(&bundle.ticket, &nonce, &module, &repo).unwrap();
    assert_eq!(admitted.entry.name, bundle.module.name);
    assert_eq!(admitted.entry.params, bundle.params);
    assert_eq!(admitted.entry.fuel, bundle.module.fuel);
    // A ticket is bound to its client's nonce.
    assert!(trust.check_ticket(&bundle.ticket, &[0; 32], &repo).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transform_out_of_fuel_fails_uniformly_and_is_counted_by_kind() {
    use kasane_protocol::wire::{Message, ResponseRequest};
    let th = start(|_| {}).await;
    th.add_user("alice").await;
    let mut conn = th.connect().await;
    // PBKDF2 with 1000 iterations cannot finish on 10 000 units of fuel.
    let mut wasm = include_bytes!("../../guest-transforms/dist/pbkdf2-sha256.wasm").to_vec();
    wasm.extend_from_slice(&[0x00, 0x05, 0x04]);
    wasm.extend_from_slice(b"fuel");
    publish_with(&th, "starved", &wasm, 10_000, b"1000", 1_000_000);
    let mut hit = false;
    for _ in 0..5 {
        let ch = to_bundle(&th, &mut conn, "alice", PASSWORD, vec![Profile::Pure])
            .await
            .unwrap();
        if ch.bundle().module.name != "starved" {
            continue;
        }
        // The client's sandbox reaches the same verdict, so it has no receipt to send.
        let req = ResponseRequest {
            bundle_id: ch.bundle().bundle_id,
            receipt: [0; 32],
        }
        .encode()
        .unwrap();
        assert_eq!(
            conn.post("/v1/login/response", req).await,
            uniform_failure()
        );
        hit = true;
        break;
    }
    assert!(hit);
    let m =
        String::from_utf8(conn.get("/metrics", Some(*th.host.metrics_token())).await.1).unwrap();
    assert!(
        m.contains("kasane_sandbox_errors_total{kind=\"out_of_fuel\"} 1"),
        "{m}"
    );
    assert!(m.contains("kasane_transform_choices_total{transform=\"starved\"}"));
}

/// Two entries with the same bytes and different limits: each loads under its own limits (the
/// cache is keyed by hash, profile and limits), as each client runs it under its signed entry.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn same_bytes_under_other_limits_load_under_their_own() {
    let th = start(|_| {}).await;
    let wasm = variant(b"lim1");
    publish_with(&th, "roomy", &wasm, 50_000_000, b"", 1);
    publish_with(&th, "tight", &wasm, 10_000, b"", 1);
    let registry = th.host.registry();
    let active = registry.active(th.clock.now()).unwrap();
    let entry = |name: &str| active.iter().find(|e| e.name == name).unwrap().clone();
    let (roomy, tight) = (entry("roomy"), entry("tight"));
    assert_eq!(roomy.sha256, tight.sha256, "one module, two entries");
    for e in [&roomy, &tight, &roomy] {
        let t = registry.transform(e).unwrap();
        assert_eq!(t.limits(), e.limits(), "{}", e.name);
        assert_eq!(t.limits().fuel, e.fuel);
    }
}

/// A module whose auth output is the same 32 bytes whatever the input (ABI v1, pure).
fn constant_output_module() -> Vec<u8> {
    wat::parse_str(
        r#"(module
  (memory (export "memory") 1)
  (func (export "kasane_abi_v1"))
  (func (export "kasane_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "kasane_derive") (param $in i32) (param $in_len i32) (param $out i32) (param $cap i32) (result i32)
    (i64.store (local.get $out) (i64.const 7))
    (i64.store offset=8 (local.get $out) (i64.const 7))
    (i64.store offset=16 (local.get $out) (i64.const 7))
    (i64.store offset=24 (local.get $out) (i64.const 7))
    (i32.const 32)))"#,
    )
    .unwrap()
}

/// As `delegate --max-weight cap` then `author-sign`: delegates `acme/*` to a fresh author
/// key, and the author lists `modules` (name, bytes, signed weight) in its own role file.
fn author_publish(th: &TestHost, cap: u32, modules: &[(&str, &[u8], u32)]) {
    author_publish_until(th, cap, modules, None);
}

/// [`author_publish`], the author's role expiring at `expires` (unix seconds) if given.
fn author_publish_until(
    th: &TestHost,
    cap: u32,
    modules: &[(&str, &[u8], u32)],
    expires: Option<u64>,
) {
    use kasane_registry::repo::RoleSetup;
    use kasane_registry::signing::{KeyKind, Signer as _, tuf_key};

    let dir = tempfile::tempdir().unwrap();
    let author =
        KeyFileSigner::generate(KeyKind::Ed25519, &dir.path().join("a.pem"), None).unwrap();
    let setup = RoleSetup::single(tuf_key(author.public_key()));
    edit(th, |repo, now, life| {
        let a = role_key(th, "authors");
        repo.delegate_capped("acme", &setup, cap, &[&TufSigner(&a)], now, life)
            .unwrap();
    });
    let repo = Repository::load(&th.cfg.registry_dir).unwrap();
    let mut role = repo
        .author_template("acme", th.clock.now(), &Lifetimes::default())
        .unwrap();
    if let Some(at) = expires {
        role.expires = time::OffsetDateTime::from_unix_timestamp(at as i64).unwrap();
    }
    for (name, wasm, weight) in modules {
        let entry = TargetEntry {
            name: (*name).to_owned(),
            sha256: Sha256Hash::of(wasm),
            length: wasm.len() as u64,
            profile: Profile::Pure,
            fuel: 50_000_000,
            memory: 16 << 20,
            params: Vec::new(),
            rollout_weight: *weight,
        };
        let path = module_path(&th.cfg.registry_dir, &entry);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, wasm).unwrap();
        role.targets
            .insert(entry.name.clone(), entry.to_target_file());
    }
    let mut m = kasane_tuf::metadata::Metadata::new(role);
    m.sign(&TufSigner(&author)).unwrap();
    let signed = m.to_bytes().unwrap();
    edit(th, |repo, _, _| {
        repo.put_author_role("acme", &signed).unwrap()
    });
}

/// An author's own role lapsing takes its modules out of the offer, and nothing else: the
/// host stays ready (first-party logins go on) and does not load the registry again at every
/// request.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_author_s_lapsed_role_withdraws_its_modules_and_the_host_stays_ready() {
    let th = start(|_| {}).await;
    th.add_user("alice").await;
    let chain = variant(b"acme");
    let now = th.clock.now();
    author_publish_until(&th, 10, &[("acme/chain", &chain, 10)], Some(now + 60));
    let offered = |th: &TestHost| {
        let active = th.host.registry().active(th.clock.now()).unwrap();
        active.iter().any(|e| e.name == "acme/chain")
    };
    assert!(offered(&th));
    assert!(th.host.registry().readiness(th.clock.now()).is_ok());
    th.clock.advance(120);
    assert!(!offered(&th), "a lapsed author's module is still offered");
    let ready = th.host.registry().readiness(th.clock.now());
    assert!(ready.is_ok(), "{ready:?}");
    let mut conn = th.connect().await;
    for _ in 0..3 {
        assert_ne!(
            chosen(&th, &mut conn, &[Profile::Pure]).await.0,
            "acme/chain"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_author_module_is_capped_by_its_delegation_and_a_constant_one_never_offered() {
    let th = start(|_| {}).await;
    th.add_user("alice").await;
    let chain = variant(b"acme");
    let constant = constant_output_module();
    author_publish(
        &th,
        10,
        &[
            ("acme/chain", &chain, u32::MAX),
            ("acme/constant", &constant, u32::MAX),
        ],
    );
    let active = th.host.registry().active(th.clock.now()).unwrap();
    let weight = |name: &str| {
        active
            .iter()
            .find(|e| e.name == name)
            .map(|e| e.rollout_weight)
    };
    assert_eq!(weight("acme/chain"), Some(10), "capped by the delegation");
    assert_eq!(weight("acme/constant"), None, "refused by the input check");

    // A client's trust store sees the same effective weight.
    let state = tempfile::tempdir().unwrap();
    let root1 = std::fs::read(th.cfg.registry_dir.join("metadata/1.root.json")).unwrap();
    let seen = kasane_registry::trust::verify_repository(
        &th.cfg.registry_dir,
        state.path(),
        Sha256Hash::of(&root1),
        kasane_registry::trust::SystemClock,
    )
    .unwrap();
    let chain_entry = seen.iter().find(|(e, _)| e.name == "acme/chain").unwrap();
    assert_eq!(
        (chain_entry.0.rollout_weight, chain_entry.1.as_str()),
        (10, "acme")
    );

    // Logins go on, and never with the constant module.
    let mut conn = th.connect().await;
    for _ in 0..10 {
        assert_ne!(
            chosen(&th, &mut conn, &[Profile::Pure]).await.0,
            "acme/constant"
        );
    }
}

/// The `authors` role lapsing (its key is offline and nobody ran `refresh --role authors`):
/// every author's modules leave the offer, as when one author's own role lapses, and nothing
/// else: first-party logins go on, a client's trust update succeeds, and the host stays
/// ready (an unready host would be taken out of its load balancer for no lost login).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_expired_authors_role_withdraws_every_author_and_the_host_stays_ready() {
    use kasane_registry::trust::{DirFetcher, Pin, TrustStore};
    let th = start(|_| {}).await;
    th.add_user("alice").await;
    author_publish(&th, 10, &[("acme/chain", &variant(b"acme"), 10)]);
    edit(&th, |repo, now, life| {
        let short = Lifetimes {
            authors: 60,
            ..*life
        };
        let a = role_key(&th, "authors");
        repo.refresh_role("authors", &[&TufSigner(&a)], now, &short)
            .unwrap();
    });
    let offered = |th: &TestHost| {
        let active = th.host.registry().active(th.clock.now()).unwrap();
        active.iter().any(|e| e.name == "acme/chain")
    };
    assert!(offered(&th));
    let mut conn = th.connect().await;
    let (_, root) = conn.get("/v1/registry/metadata/1.root.json", None).await;
    th.clock.advance(120);
    assert!(
        !offered(&th),
        "an author's module is offered under an expired authors role"
    );
    let ready = th.host.registry().readiness(th.clock.now());
    assert!(ready.is_ok(), "{ready:?}");
    for _ in 0..3 {
        let (name, _) = chosen(&th, &mut conn, &[Profile::Pure]).await;
        assert_ne!(name, "acme/chain");
    }
    // A host started while it is expired starts ready too.
    let restarted = th.replica(th.host.store().clone()).await;
    let ready = restarted.host.registry().readiness(th.clock.now());
    assert!(ready.is_ok(), "{ready:?}");
    let state = tempfile::tempdir().unwrap();
    let mut trust = TrustStore::init(state.path(), &root, Pin::File, th.clock.clone()).unwrap();
    let repo = DirFetcher::new(&th.cfg.registry_dir);
    trust.update(&repo).unwrap();
    assert!(!trust.first_party_modules(&repo).unwrap().is_empty());
}
