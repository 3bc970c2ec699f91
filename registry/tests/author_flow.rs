//! A third-party author, end to end at the library level, the way the CLI commands chain:
//! keygen → init → delegate → author-sign → snapshot → (client) update → sign-ticket → admit;
//! then revoke, and the same trust store refuses the module, from its cache too.
//! The repository lives on disk and the client reads it through `DirFetcher`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kasane_registry::keys::{SecretKey, read_key_file, write_key_file};
use kasane_registry::metadata::root::fingerprint;
use kasane_registry::metadata::targets::{AuthorFile, Profile};
use kasane_registry::repo::{
    InitSigners, Lifetimes, Repository, RoleSetup, RootSetup, author_sign, delegation, inspect,
    target_entry,
};
use kasane_registry::simulator::{FakeClock, T0};
use kasane_registry::trust::{Clock, DirFetcher, Pin, TrustStore};
use kasane_registry::{RegistryError, Sha256Hash};

const MODULE: &[u8] = b"\0asm\x01\0\0\0third-party transform";

/// `keygen`: a key file with mode 0600, read back.
fn keygen(dir: &Path, name: &str) -> SecretKey {
    let path = dir.join(format!("{name}.key"));
    write_key_file(&path, &SecretKey::generate()).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{name}");
    read_key_file(&path).unwrap()
}

#[test]
fn third_party_author_end_to_end_then_revoked() {
    let keys_dir = tempfile::tempdir().unwrap();
    let repo_dir = tempfile::tempdir().unwrap();
    let client_dir = tempfile::tempdir().unwrap();
    let clock = FakeClock::new(T0);
    let life = Lifetimes::default();
    let k = |n: &str| keygen(keys_dir.path(), n);
    let (root, targets, snapshot, revocations, host) = (
        k("root"),
        k("targets"),
        k("snapshot"),
        k("revocations"),
        k("host"),
    );

    // Registry: init.
    let setup = RootSetup {
        root: RoleSetup::single(&root.public()),
        targets: RoleSetup::single(&targets.public()),
        snapshot: RoleSetup::single(&snapshot.public()),
        revocations: RoleSetup::single(&revocations.public()),
        host: RoleSetup::single(&host.public()),
    };
    let signers = InitSigners {
        root: &[&root],
        targets: &[&targets],
        revocations: &[&revocations],
        snapshot: &[&snapshot],
    };
    let repo = Repository::init(&setup, signers, T0, &life).unwrap();
    repo.save(repo_dir.path()).unwrap();
    let pinned = repo.root_bytes().to_vec();

    // Author: keygen, and the registry delegates `acme/` to that key.
    let author = k("acme");
    let mut repo = Repository::load(repo_dir.path()).unwrap();
    let d = delegation("acme", "acme/", &[author.public()], 1).unwrap();
    repo.delegate(d, &[&targets], T0, &life).unwrap();

    // Author: author-sign its file; registry: accept it and snapshot.
    let entry = target_entry(
        "acme/ocra-v9",
        MODULE,
        Profile::Pure,
        5_000_000,
        1 << 20,
        b"OCRA-1:HOTP-SHA1-6:QN08".to_vec(),
        5,
    )
    .unwrap();
    let file = AuthorFile {
        author: "acme".into(),
        version: 1,
        expires: T0 + 90 * 86_400,
        targets: vec![entry.clone()],
        delegations: vec![],
    };
    repo.put_author_file(author_sign(&file, &[&author]).unwrap())
        .unwrap();
    repo.snapshot(&[&snapshot], T0, &life).unwrap();
    repo.save(repo_dir.path()).unwrap();
    let shown =
        inspect(&std::fs::read(repo_dir.path().join("authors/acme.json")).unwrap()).unwrap();
    assert!(shown.contains("acme/ocra-v9"), "{shown}");

    // Client: pinned by fingerprint, update, admit with a ticket.
    let mut store = TrustStore::init(
        client_dir.path(),
        &pinned,
        Pin::Fingerprint(fingerprint(&pinned)),
        clock.clone(),
    )
    .unwrap();
    let fetch = DirFetcher::new(repo_dir.path());
    store.update(&fetch).unwrap();
    let nonce = [7u8; 32];
    let repo = Repository::load(repo_dir.path()).unwrap();
    let ticket = repo
        .sign_ticket(nonce, "acme/ocra-v9", &[&snapshot], clock.now(), &life)
        .unwrap();
    let admitted = store.admit(&ticket, &nonce, MODULE).unwrap();
    assert_eq!(admitted.entry, entry);
    assert_eq!(admitted.author.as_deref(), Some("acme"));
    assert_eq!(
        store
            .admit_cached("acme/ocra-v9", &Sha256Hash::of(MODULE))
            .unwrap(),
        entry
    );
    assert!(
        store
            .runnable()
            .iter()
            .any(|(e, a)| e.name == "acme/ocra-v9" && a.as_deref() == Some("acme"))
    );

    // A restarted client has the same view.
    drop(store);
    let mut store = TrustStore::open(client_dir.path(), clock.clone()).unwrap();
    store.admit(&ticket, &nonce, MODULE).unwrap();

    // Registry: revoke the hash, snapshot. The same store refuses it, from its cache too.
    clock.advance(60);
    let mut repo = Repository::load(repo_dir.path()).unwrap();
    repo.revoke_hash(Sha256Hash::of(MODULE), &[&revocations], clock.now(), &life)
        .unwrap();
    repo.snapshot(&[&snapshot], clock.now(), &life).unwrap();
    repo.save(repo_dir.path()).unwrap();
    store.update(&fetch).unwrap();
    let nonce2 = [8u8; 32];
    let ticket2 = repo
        .sign_ticket(nonce2, "acme/ocra-v9", &[&snapshot], clock.now(), &life)
        .unwrap();
    assert!(matches!(
        store.admit(&ticket2, &nonce2, MODULE),
        Err(RegistryError::Revoked { .. })
    ));
    assert!(matches!(
        store.admit_cached("acme/ocra-v9", &Sha256Hash::of(MODULE)),
        Err(RegistryError::Revoked { .. })
    ));
    assert!(
        store
            .runnable()
            .iter()
            .all(|(e, _)| e.name != "acme/ocra-v9")
    );

    // Revoking the author's key instead takes every module of that author away.
    let other = b"\0asm\x01\0\0\0another one";
    let mut file2 = file.clone();
    file2.version = 2;
    file2.targets =
        vec![target_entry("acme/other", other, Profile::Pure, 1, 1, vec![], 1).unwrap()];
    repo.put_author_file(author_sign(&file2, &[&author]).unwrap())
        .unwrap();
    repo.snapshot(&[&snapshot], clock.now(), &life).unwrap();
    repo.save(repo_dir.path()).unwrap();
    store.update(&fetch).unwrap();
    store
        .admit_cached("acme/other", &Sha256Hash::of(other))
        .unwrap();
    repo.revoke_author_key(author.key_id(), &[&revocations], clock.now(), &life)
        .unwrap();
    repo.snapshot(&[&snapshot], clock.now(), &life).unwrap();
    repo.save(repo_dir.path()).unwrap();
    store.update(&fetch).unwrap();
    assert!(matches!(
        store.admit_cached("acme/other", &Sha256Hash::of(other)),
        Err(RegistryError::AuthorRevoked { author }) if author == "acme"
    ));
}

#[test]
fn fingerprint_pin_refuses_another_root() {
    let dir = tempfile::tempdir().unwrap();
    let sim = kasane_registry::simulator::RepositorySimulator::new();
    let root1 = sim.root1();
    let mut other = root1.clone();
    other.push(b'\n');
    assert!(matches!(
        TrustStore::init(
            dir.path(),
            &root1,
            Pin::Fingerprint(fingerprint(&other)),
            FakeClock::new(T0)
        ),
        Err(RegistryError::FingerprintMismatch)
    ));
}

#[test]
fn verify_repository_on_a_saved_simulator_repo() {
    let mut sim = kasane_registry::simulator::RepositorySimulator::new();
    sim.publish("sha256-chain", MODULE).unwrap();
    sim.add_author("acme", "acme/").unwrap();
    sim.author_publish("acme", "acme/x", b"\0asm\x01\0\0\0x")
        .unwrap();
    let repo_dir = tempfile::tempdir().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    sim.repo.save(repo_dir.path()).unwrap();
    let pin = fingerprint(&sim.root1());
    let runnable = kasane_registry::trust::verify_repository(
        repo_dir.path(),
        state_dir.path(),
        pin,
        sim.clock.clone(),
    )
    .unwrap();
    let names: Vec<_> = runnable.iter().map(|(e, _)| e.name.as_str()).collect();
    assert_eq!(names, ["sha256-chain", "acme/x"]);
    // Tamper with a file on disk: refused as a snapshot mismatch.
    let p = repo_dir.path().join("targets.json");
    let mut t = std::fs::read(&p).unwrap();
    t.push(b'\n');
    std::fs::write(&p, t).unwrap();
    assert!(matches!(
        kasane_registry::trust::verify_repository(
            repo_dir.path(),
            state_dir.path(),
            pin,
            sim.clock.clone(),
        ),
        Err(RegistryError::SnapshotMismatch { .. })
    ));
}

#[test]
fn cli_style_steps_each_on_a_freshly_loaded_repository() {
    use kasane_registry::repo::{DEV_KEY_FILES, dev_init};
    let repo_dir = tempfile::tempdir().unwrap();
    let keys_dir = tempfile::tempdir().unwrap();
    let state_dir = tempfile::tempdir().unwrap();
    let life = Lifetimes::default();
    let now = T0;
    dev_init(repo_dir.path(), keys_dir.path(), now, &life).unwrap();
    for f in DEV_KEY_FILES {
        let mode = std::fs::metadata(keys_dir.path().join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let key = |f: &str| read_key_file(&keys_dir.path().join(f)).unwrap();
    let step = |f: &dyn Fn(&mut Repository)| {
        let mut repo = Repository::load(repo_dir.path()).unwrap();
        f(&mut repo);
        repo.save(repo_dir.path()).unwrap();
    };
    // add
    step(&|r| {
        let e = target_entry("sha256-chain", MODULE, Profile::Pure, 1, 1, vec![], 100).unwrap();
        r.add_target(e, &[&key("targets.key")], now, &life).unwrap();
    });
    // delegate (the author hands over a public key file only)
    let author = SecretKey::generate();
    let pub_path = keys_dir.path().join("acme.pub");
    kasane_registry::keys::write_public_key_file(&pub_path, &author.public()).unwrap();
    step(&|r| {
        let k = kasane_registry::keys::read_public_key_file(&pub_path).unwrap();
        let d = delegation("acme", "acme/", &[k], 1).unwrap();
        r.delegate(d, &[&key("targets.key")], now, &life).unwrap();
    });
    // author-sign, then the registry takes the file
    let file = AuthorFile {
        author: "acme".into(),
        version: 1,
        expires: now + 86_400 * 30,
        targets: vec![target_entry("acme/x", b"xx", Profile::Wasi, 1, 1, vec![1], 1).unwrap()],
        delegations: vec![],
    };
    let signed = author_sign(&file, &[&author]).unwrap();
    step(&|r| r.put_author_file(signed.clone()).unwrap());
    // snapshot, in a separate run
    step(&|r| r.snapshot(&[&key("snapshot.key")], now, &life).unwrap());
    let runnable = kasane_registry::danger::verify_repository_unpinned(
        repo_dir.path(),
        state_dir.path(),
        FakeClock::new(now + 10),
    )
    .unwrap();
    let names: Vec<_> = runnable.iter().map(|(e, _)| e.name.as_str()).collect();
    assert_eq!(names, ["sha256-chain", "acme/x"]);
}
