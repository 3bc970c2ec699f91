//! A third-party author, end to end at the library level, the way the CLI commands chain —
//! each step on a repository freshly loaded from disk, each key read from its PKCS#8 file:
//! `init --dev` → `add` → `delegate` → `author-sign` → (client) update → `sign-ticket` →
//! admit; then `revoke` of the hash and of the author, and the same trust store refuses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use kasane_registry::entry::{Profile, TargetEntry};
use kasane_registry::repo::{DEV_KEY_FILES, Lifetimes, Repository, RoleSetup, dev_init};
use kasane_registry::signing::{KeyFileSigner, KeyKind, Signer, TufSigner, tuf_key};
use kasane_registry::simulator::{FakeClock, RepositorySimulator, T0};
use kasane_registry::trust::{Clock, DirFetcher, Pin, TrustStore, verify_repository};
use kasane_registry::{RegistryError, Sha256Hash};
use kasane_tuf::metadata::Metadata;

const MODULE: &[u8] = b"\0asm\x01\0\0\0third-party transform";
const FIRST_PARTY: &[u8] = b"\0asm\x01\0\0\0first-party transform";

fn entry(name: &str, module: &[u8]) -> TargetEntry {
    TargetEntry {
        name: name.into(),
        sha256: Sha256Hash::of(module),
        length: module.len() as u64,
        profile: Profile::Pure,
        fuel: 5_000_000,
        memory: 1 << 20,
        params: b"OCRA-1:HOTP-SHA1-6:QN08".to_vec(),
        rollout_weight: 5,
    }
}

/// A role key from the keys directory, as the CLI opens it.
fn key(keys: &Path, role: &str) -> KeyFileSigner {
    KeyFileSigner::open(&keys.join(format!("{role}.pem")), None).unwrap()
}

/// Loads the repository, applies `f`, re-signs snapshot and timestamp with the online key,
/// checks it as a client would, and saves it: one CLI command.
fn step(repo: &Path, keys: &Path, now: u64, f: impl FnOnce(&mut Repository)) {
    let mut r = Repository::load(repo).unwrap();
    f(&mut r);
    let online = key(keys, "online");
    r.snapshot(&[&TufSigner(&online)], now, &Lifetimes::default())
        .unwrap();
    r.active(now).unwrap();
    r.save(repo).unwrap();
}

#[test]
fn third_party_author_end_to_end_then_revoked() {
    let keys_dir = tempfile::tempdir().unwrap();
    let repo_dir = tempfile::tempdir().unwrap();
    let client_dir = tempfile::tempdir().unwrap();
    let (keys, repo) = (keys_dir.path(), repo_dir.path());
    let clock = FakeClock::new(T0);
    let life = Lifetimes::default();

    // init --dev: every role's key file, mode 0600.
    dev_init(repo, keys, T0, &life).unwrap();
    for f in DEV_KEY_FILES {
        let mode = std::fs::metadata(keys.join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let pinned = std::fs::read(repo.join("metadata/1.root.json")).unwrap();

    // add: a first-party module.
    step(repo, keys, T0, |r| {
        let t = key(keys, "targets");
        r.add_target(
            &entry("sha256-chain", FIRST_PARTY),
            &[&TufSigner(&t)],
            T0,
            &life,
        )
        .unwrap();
    });
    // keygen (the author, ECDSA) and delegate: the registry gets only the public key.
    let author_path = keys.join("acme-author.pem");
    let author = KeyFileSigner::generate(KeyKind::EcdsaP256, &author_path, None).unwrap();
    let public = author.public_key().clone();
    step(repo, keys, T0, |r| {
        let a = key(keys, "authors");
        let setup = RoleSetup::single(tuf_key(&public));
        r.delegate("acme", &setup, &[&TufSigner(&a)], T0, &life)
            .unwrap();
    });
    // author-sign: the author's template plus its module, signed with its key; the registry
    // accepts it.
    let loaded = Repository::load(repo).unwrap();
    let mut role = loaded.author_template("acme", T0, &life).unwrap();
    let e = entry("acme/ocra-v9", MODULE);
    role.targets.insert(e.name.clone(), e.to_target_file());
    let mut m = Metadata::new(role);
    m.sign(&TufSigner(&author)).unwrap();
    let signed = m.to_bytes().unwrap();
    step(repo, keys, T0, |r| {
        r.put_author_role("acme", &signed).unwrap()
    });

    // Client: pinned by fingerprint, update, admit with a ticket.
    let mut store = TrustStore::init(
        client_dir.path(),
        &pinned,
        Pin::Fingerprint(Sha256Hash::of(&pinned)),
        clock.clone(),
    )
    .unwrap();
    let fetch = DirFetcher::new(repo);
    store.update(&fetch).unwrap();
    let nonce = [7u8; 32];
    let ticket_key = key(keys, "ticket");
    let ticket = |n: [u8; 32], now: u64| {
        let r = Repository::load(repo).unwrap();
        let e = r.find_entry("acme/ocra-v9", now).unwrap();
        r.sign_ticket(n, &e, &TufSigner(&ticket_key), now, &life)
            .unwrap()
    };
    let t1 = ticket(nonce, clock.now());
    let admitted = store.admit(&t1, &nonce, MODULE, &fetch).unwrap();
    assert_eq!(admitted.entry, e);
    assert_eq!(admitted.role, "acme");

    // revoke the hash: the same store refuses it, from its cache too.
    clock.advance(60);
    let now = clock.now();
    step(repo, keys, now, |r| {
        let v = key(keys, "revocations");
        r.revoke_hash(Some(Sha256Hash::of(MODULE)), &[&TufSigner(&v)], now, &life)
            .unwrap();
    });
    store.update(&fetch).unwrap();
    let nonce2 = [8u8; 32];
    let t2 = ticket(nonce2, now);
    assert!(matches!(
        store.admit(&t2, &nonce2, MODULE, &fetch),
        Err(RegistryError::Revoked { .. })
    ));
    assert!(matches!(
        store.admit_cached(&Sha256Hash::of(MODULE)),
        Err(RegistryError::Revoked { .. })
    ));

    // revoke the author: nothing it lists resolves any more.
    step(repo, keys, now, |r| {
        let a = key(keys, "authors");
        r.undelegate("acme", &[&TufSigner(&a)], now, &life).unwrap();
    });
    store.update(&fetch).unwrap();
    let runnable = verify_repository(
        repo,
        tempfile::tempdir().unwrap().path(),
        Sha256Hash::of(&pinned),
        clock.clone(),
    )
    .unwrap();
    let names: Vec<_> = runnable.iter().map(|(e, _)| e.name.as_str()).collect();
    assert_eq!(names, ["sha256-chain"]);
}

#[test]
fn fingerprint_pin_refuses_another_root() {
    let dir = tempfile::tempdir().unwrap();
    let sim = RepositorySimulator::new();
    let root1 = sim.root1();
    let mut other = root1.clone();
    other.push(b'\n');
    assert!(matches!(
        TrustStore::init(
            dir.path(),
            &root1,
            Pin::Fingerprint(Sha256Hash::of(&other)),
            FakeClock::new(T0)
        ),
        Err(RegistryError::FingerprintMismatch)
    ));
}

#[test]
fn author_role_signed_by_another_key_is_refused() {
    let keys_dir = tempfile::tempdir().unwrap();
    let repo_dir = tempfile::tempdir().unwrap();
    let (keys, repo) = (keys_dir.path(), repo_dir.path());
    let life = Lifetimes::default();
    dev_init(repo, keys, T0, &life).unwrap();
    let author = KeyFileSigner::generate(KeyKind::Ed25519, &keys.join("a.pem"), None).unwrap();
    let mallory = KeyFileSigner::generate(KeyKind::Ed25519, &keys.join("m.pem"), None).unwrap();
    step(repo, keys, T0, |r| {
        let a = key(keys, "authors");
        let setup = RoleSetup::single(tuf_key(author.public_key()));
        r.delegate("acme", &setup, &[&TufSigner(&a)], T0, &life)
            .unwrap();
    });
    let mut r = Repository::load(repo).unwrap();
    let mut role = r.author_template("acme", T0, &life).unwrap();
    let e = entry("acme/x", MODULE);
    role.targets.insert(e.name.clone(), e.to_target_file());
    let mut m = Metadata::new(role.clone());
    m.sign(&TufSigner(&mallory)).unwrap();
    assert!(r.put_author_role("acme", &m.to_bytes().unwrap()).is_err());
    // A name outside acme/* is refused even with the right key.
    // So is one deeper than acme/<name>, which `acme/*` never resolves.
    for stray in ["sha256-chain", "acme/b/c"] {
        let mut role2 = role.clone();
        let stray = entry(stray, MODULE);
        role2
            .targets
            .insert(stray.name.clone(), stray.to_target_file());
        let mut m = Metadata::new(role2);
        m.sign(&TufSigner(&author)).unwrap();
        assert!(matches!(
            r.put_author_role("acme", &m.to_bytes().unwrap()),
            Err(RegistryError::DelegationPrefix { .. })
        ));
    }
}

/// `Repository::load_files` (what a host with the registry in PostgreSQL loads from) reads
/// the same repository as `Repository::load` from the directory, and says which file is
/// missing or too large.
#[test]
fn a_repository_loads_from_files_in_memory_as_from_its_directory() {
    let (keys_dir, repo_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (keys, repo) = (keys_dir.path(), repo_dir.path());
    dev_init(repo, keys, T0, &Lifetimes::default()).unwrap();
    let on_disk = Repository::load(repo).unwrap();
    let files = on_disk.files().unwrap();
    let in_memory = Repository::load_files(&files).unwrap();
    assert_eq!(in_memory.files().unwrap(), files);
    assert_eq!(in_memory.versions(), on_disk.versions());
    assert_eq!(in_memory.active(T0).unwrap(), on_disk.active(T0).unwrap());

    let mut without = files.clone();
    let snapshot = format!("metadata/{}.snapshot.json", on_disk.versions().1);
    without.remove(&snapshot);
    assert!(matches!(
        Repository::load_files(&without),
        Err(RegistryError::Missing { path }) if path == snapshot
    ));
    let mut huge = files;
    huge.insert("metadata/timestamp.json".into(), vec![b' '; 5_000_001]);
    assert!(matches!(
        Repository::load_files(&huge),
        Err(RegistryError::TooLarge { .. })
    ));
}
