//! One test per attack on the registry and the client trust store, each refused with its own
//! typed error. The repository is simulated (`kasane_registry::simulator`); the attacker
//! overrides the files it serves, and where the attack assumes a stolen key, signs with it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod common;

use common::*;
use kasane_registry::danger::key_from_seed;
use kasane_registry::envelope::Envelope;
use kasane_registry::error::RoleName;
use kasane_registry::keys::{KeyId, RawKey, SecretKey};
use kasane_registry::metadata::snapshot::MetaInfo;
use kasane_registry::metadata::targets::{AuthorFile, MAX_DELEGATIONS, Profile, Targets};
use kasane_registry::metadata::{self, MAX_SNAPSHOT_LEN, Metadata};
use kasane_registry::repo::{author_sign, delegation, target_entry};
use kasane_registry::simulator::RepositorySimulator;
use kasane_registry::trust::{DirFetcher, Fetcher, MAX_ROOT_CHAIN};
use kasane_registry::{RegistryError, Sha256Hash};

const DAY: u64 = 86_400;

// ---- module bytes ----

#[test]
fn tampered_module_bytes() {
    let w = world();
    let t = w.ticket(nonce(1), NAME_A);
    let mut bytes = MOD_A.to_vec();
    bytes[10] ^= 1;
    assert!(matches!(
        err(w.admit(&t, nonce(1), &bytes)),
        RegistryError::HashMismatch
    ));
    // The genuine bytes pass, with the signed limits.
    let ok = w.admit(&t, nonce(1), MOD_A).unwrap();
    assert_eq!(ok.entry.sha256, Sha256Hash::of(MOD_A));
    assert_eq!(ok.entry.length, MOD_A.len() as u64);
}

#[test]
fn module_longer_than_its_metadata() {
    let w = world();
    let t = w.ticket(nonce(1), NAME_A);
    let mut bytes = MOD_A.to_vec();
    bytes.extend_from_slice(&[0; 4096]);
    assert!(matches!(
        err(w.admit(&t, nonce(1), &bytes)),
        RegistryError::LengthMismatch { got, .. } if got == bytes.len() as u64
    ));
}

#[test]
fn module_not_listed() {
    let w = world();
    let t = forge_ticket(
        &w.sim,
        nonce(1),
        "evil",
        Sha256Hash::of(MOD_B),
        MOD_B.len() as u64,
    );
    assert!(matches!(
        err(w.admit(&t, nonce(1), MOD_B)),
        RegistryError::NotListed { name } if name == "evil"
    ));
    // The registry itself refuses to sign a ticket for it.
    assert!(matches!(
        err(w.sim.ticket(nonce(1), "evil")),
        RegistryError::NotListed { .. }
    ));
}

#[test]
fn ticket_naming_module_a_while_module_b_is_delivered() {
    let mut w = world();
    w.sim.publish("other", MOD_B).unwrap();
    w.update().unwrap();
    let t = w.ticket(nonce(1), NAME_A);
    assert_eq!(MOD_A.len(), MOD_B.len());
    assert!(matches!(
        err(w.admit(&t, nonce(1), MOD_B)),
        RegistryError::HashMismatch
    ));
    // A ticket naming A but carrying B's hash (online key misused) disagrees with targets.
    let t = forge_ticket(
        &w.sim,
        nonce(1),
        NAME_A,
        Sha256Hash::of(MOD_B),
        MOD_B.len() as u64,
    );
    assert!(matches!(
        err(w.admit(&t, nonce(1), MOD_B)),
        RegistryError::HashMismatch
    ));
}

// ---- signatures and thresholds ----

#[test]
fn metadata_signed_by_a_wrong_key() {
    let mut w = world();
    let (s, bytes) = served_snapshot(&w.sim);
    let attacker = key_from_seed(&[0xee; 32]);
    w.sim.serve("snapshot.json", resign(&bytes, &[&attacker]));
    assert!(matches!(
        err(w.update()),
        RegistryError::Threshold {
            role: RoleName::Snapshot,
            have: 0,
            need: 1
        }
    ));
    // Targets signed by the (real) snapshot key instead of the targets key.
    w.sim.overrides.clear();
    let targets = w.sim.fetch("targets.json", u64::MAX).unwrap().unwrap();
    let forged = resign(&targets, &refs(&w.sim.keys.snapshot));
    w.sim.serve("targets.json", forged.clone());
    let v = s.meta["targets"].version;
    forge_snapshot(&mut w.sim, |s| {
        s.meta.insert("targets".into(), MetaInfo::of(v, &forged));
    });
    assert!(matches!(
        err(w.update()),
        RegistryError::Threshold {
            role: RoleName::Targets,
            have: 0,
            need: 1
        }
    ));
}

#[test]
fn metadata_under_threshold() {
    let mut w = world();
    set_snapshot_keys(&mut w.sim, 3, 2);
    w.update().unwrap();
    w.sim.refresh().unwrap();
    let (_, bytes) = served_snapshot(&w.sim);
    let one = resign(&bytes, &[&w.sim.keys.snapshot[0]]);
    w.sim.serve("snapshot.json", one);
    assert!(matches!(
        err(w.update()),
        RegistryError::Threshold {
            role: RoleName::Snapshot,
            have: 1,
            need: 2
        }
    ));
    w.sim.overrides.clear();
    w.update().unwrap();
}

#[test]
fn one_signature_repeated_to_reach_a_threshold() {
    let mut w = world();
    set_snapshot_keys(&mut w.sim, 2, 2);
    w.update().unwrap();
    w.sim.refresh().unwrap();
    let (_, bytes) = served_snapshot(&w.sim);
    let k = &w.sim.keys.snapshot[0];
    // The same signature three times, and the same key's signature under the other's id.
    let mut env = Envelope::from_bytes(&bytes, u64::MAX, "s").unwrap();
    env.signatures.clear();
    env.add_signature(k);
    env.add_signature(k);
    env.add_signature(k);
    let mut relabelled = env.signatures[0].clone();
    relabelled.keyid = w.sim.keys.snapshot[1].key_id();
    env.signatures.push(relabelled);
    w.sim.serve("snapshot.json", env.to_bytes());
    assert!(matches!(
        err(w.update()),
        RegistryError::Threshold {
            role: RoleName::Snapshot,
            have: 1,
            need: 2
        }
    ));
}

#[test]
fn one_public_key_under_two_key_ids() {
    let mut w = world();
    let mut next = w.sim.repo.next_root(w.sim.now(), &w.sim.life);
    // The targets key again, under a made-up id, and that id added to the targets role to
    // double its weight.
    let k = w.sim.keys.targets[0].public();
    let fake = KeyId(Sha256Hash::of(b"not a key").0);
    next.keys.insert(fake, RawKey::from(k));
    next.roles.targets.keyids.push(fake);
    next.roles.targets.threshold = 2;
    let bytes = next.sign_to_bytes(&refs(&w.sim.keys.root));
    w.sim.serve("2.root.json", bytes.clone());
    assert!(matches!(
        err(w.update()),
        RegistryError::KeyIdMismatch { keyid } if keyid == fake.to_hex()
    ));
    // The publisher refuses to build it in the first place.
    assert!(matches!(
        err(w.sim.repo.rotate_root(next, &refs(&w.sim.keys.root))),
        RegistryError::KeyIdMismatch { .. }
    ));
}

#[test]
fn root_rotation_not_signed_by_both_old_and_new_thresholds() {
    // Root: 3 keys, threshold 2, rotated to 3 new keys, threshold 2.
    // (old signers, new signers, accepted?)
    let cases: &[(usize, usize, bool)] = &[
        (2, 2, true),
        (3, 3, true),
        (2, 1, false),
        (1, 2, false),
        (0, 3, false),
        (3, 0, false),
        (1, 1, false),
    ];
    for &(old_n, new_n, ok) in cases {
        let mut sim = RepositorySimulator::with_root_keys(3, 2);
        sim.publish(NAME_A, MOD_A).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut client = sim.client(dir.path()).unwrap();
        client.update(&sim).unwrap();

        let new_keys: Vec<SecretKey> = (0..3).map(|_| sim.new_key()).collect();
        let mut next = sim.repo.next_root(sim.now(), &sim.life);
        for id in next.roles.root.keyids.clone() {
            next.keys.remove(&id);
        }
        for k in &new_keys {
            next.keys.insert(k.key_id(), k.public().into());
        }
        next.roles.root.keyids = new_keys.iter().map(SecretKey::key_id).collect();
        let mut signers: Vec<&SecretKey> = sim.keys.root.iter().take(old_n).collect();
        signers.extend(new_keys.iter().take(new_n));
        sim.serve("2.root.json", next.sign_to_bytes(&signers));

        let r = client.update(&sim);
        if ok {
            r.unwrap();
            assert_eq!(client.root().version, 2, "case {old_n}/{new_n}");
        } else {
            let need_old = old_n < 2;
            assert!(
                matches!(
                    &r,
                    Err(RegistryError::Threshold { role: RoleName::Root, have, need: 2 })
                        if *have as usize == if need_old { old_n } else { new_n }
                ),
                "case {old_n}/{new_n}: {r:?}"
            );
            assert_eq!(client.root().version, 1);
        }
    }
}

#[test]
fn root_version_repeated_or_skipped() {
    for (version, expected) in [(1, 2), (3, 2), (2 + 1_000, 2)] {
        let mut w = world();
        let mut next = w.sim.repo.next_root(w.sim.now(), &w.sim.life);
        next.version = version;
        w.sim
            .serve("2.root.json", next.sign_to_bytes(&refs(&w.sim.keys.root)));
        assert!(matches!(
            err(w.update()),
            RegistryError::RootVersionGap { expected: e, got } if e == expected && got == version
        ));
    }
}

#[test]
fn root_chain_longer_than_the_cap() {
    let mut w = world();
    let signers: Vec<SecretKey> = w.sim.keys.root.clone();
    let rotate = |sim: &mut RepositorySimulator, n: u32| {
        for _ in 0..n {
            let next = sim.repo.next_root(sim.now(), &sim.life);
            sim.repo.rotate_root(next, &refs(&signers)).unwrap();
        }
    };
    // Exactly the cap is walked in one update...
    rotate(&mut w.sim, MAX_ROOT_CHAIN);
    w.update().unwrap();
    assert_eq!(w.client.root().version, 1 + u64::from(MAX_ROOT_CHAIN));
    // ...one more than the cap is refused.
    rotate(&mut w.sim, MAX_ROOT_CHAIN + 1);
    assert!(matches!(
        err(w.update()),
        RegistryError::RootChainTooLong {
            max: MAX_ROOT_CHAIN
        }
    ));
}

// ---- rollback and freeze ----

#[test]
fn lower_snapshot_version_even_when_the_trusted_copy_expired() {
    let mut w = world();
    let (old, old_bytes) = served_snapshot(&w.sim);
    w.sim.publish("second", MOD_B).unwrap();
    w.update().unwrap();
    w.sim.clock.advance(30 * DAY);
    w.sim.serve("snapshot.json", old_bytes);
    assert!(matches!(
        err(w.update()),
        RegistryError::Rollback { role: RoleName::Snapshot, trusted, got }
            if got == old.version && trusted > got
    ));
}

#[test]
fn lower_targets_version_even_when_the_trusted_copy_expired() {
    let mut w = world();
    let old = w.sim.fetch("targets.json", u64::MAX).unwrap().unwrap();
    let old_v = w.sim.repo.targets().version;
    w.sim.publish("second", MOD_B).unwrap();
    w.update().unwrap();
    w.sim.clock.advance(100 * DAY);
    w.sim.serve("targets.json", old.clone());
    forge_snapshot(&mut w.sim, |s| {
        s.meta.insert("targets".into(), MetaInfo::of(old_v, &old));
    });
    assert!(matches!(
        err(w.update()),
        RegistryError::Rollback { role: RoleName::Targets, got, .. } if got == old_v
    ));
}

#[test]
fn lower_author_file_version_even_when_the_trusted_copy_expired() {
    let mut w = world();
    w.sim.add_author("acme", "acme/").unwrap();
    w.sim.author_publish("acme", "acme/one", MOD_A).unwrap();
    let old = w.sim.fetch("authors/acme.json", u64::MAX).unwrap().unwrap();
    w.sim.author_publish("acme", "acme/two", MOD_B).unwrap();
    w.update().unwrap();
    w.sim.clock.advance(100 * DAY);
    w.sim.serve("authors/acme.json", old.clone());
    forge_snapshot(&mut w.sim, |s| {
        s.meta.insert("authors/acme".into(), MetaInfo::of(1, &old));
    });
    assert!(matches!(
        err(w.update()),
        RegistryError::Rollback { role: RoleName::Author(a), trusted: 2, got: 1 } if a == "acme"
    ));
}

#[test]
fn lower_revocations_version_even_when_the_trusted_copy_expired() {
    let mut w = world();
    let old = w.sim.fetch("revocations.json", u64::MAX).unwrap().unwrap();
    w.sim.revoke(Sha256Hash::of(MOD_A)).unwrap();
    w.update().unwrap();
    w.sim.clock.advance(40 * DAY);
    w.sim.serve("revocations.json", old.clone());
    forge_snapshot(&mut w.sim, |s| {
        s.meta.insert("revocations".into(), MetaInfo::of(1, &old));
    });
    assert!(matches!(
        err(w.update()),
        RegistryError::Rollback {
            role: RoleName::Revocations,
            trusted: 2,
            got: 1
        }
    ));
}

#[test]
fn role_removed_from_the_snapshot() {
    let mut w = world();
    w.sim.add_author("acme", "acme/").unwrap();
    w.sim.author_publish("acme", "acme/one", MOD_B).unwrap();
    w.update().unwrap();
    forge_snapshot(&mut w.sim, |s| {
        s.meta.remove("authors/acme");
    });
    assert!(matches!(
        err(w.update()),
        RegistryError::MissingFromSnapshot { role: RoleName::Author(a) } if a == "acme"
    ));
    // Dropping revocations (to un-revoke everything) is refused too.
    w.sim.overrides.clear();
    forge_snapshot(&mut w.sim, |s| {
        s.meta.remove("revocations");
    });
    assert!(matches!(
        err(w.update()),
        RegistryError::MissingFromSnapshot {
            role: RoleName::Revocations
        }
    ));
}

#[test]
fn older_validly_signed_author_file_still_listing_a_revoked_hash() {
    let mut w = world();
    w.sim.add_author("acme", "acme/").unwrap();
    w.sim.author_publish("acme", "acme/bad", MOD_B).unwrap();
    let old = w.sim.fetch("authors/acme.json", u64::MAX).unwrap().unwrap();
    // The author withdraws it and the registry revokes its hash.
    w.sim.edit_author("acme", |f| f.targets.clear()).unwrap();
    w.sim.revoke(Sha256Hash::of(MOD_B)).unwrap();
    w.update().unwrap();
    // A client that never saw version 2, served version 1 under a snapshot signed with a
    // stolen online key: the file verifies, but the revocation still holds.
    w.sim.serve("authors/acme.json", old.clone());
    forge_snapshot(&mut w.sim, |s| {
        s.meta.insert("authors/acme".into(), MetaInfo::of(1, &old));
    });
    let (_d, mut fresh) = w.fresh_client();
    fresh.update(&w.sim).unwrap();
    let t = forge_ticket(
        &w.sim,
        nonce(3),
        "acme/bad",
        Sha256Hash::of(MOD_B),
        MOD_B.len() as u64,
    );
    assert!(matches!(
        err(fresh.admit(&t, &nonce(3), MOD_B)),
        RegistryError::Revoked { sha256 } if sha256 == Sha256Hash::of(MOD_B).to_hex()
    ));
    // And a client that saw version 2 refuses version 1 outright.
    assert!(matches!(
        err(w.update()),
        RegistryError::Rollback {
            role: RoleName::Author(_),
            ..
        }
    ));
}

#[test]
fn expired_root() {
    let mut w = world();
    w.sim.clock.advance(366 * DAY);
    w.sim.refresh().unwrap();
    assert!(matches!(
        err(w.update()),
        RegistryError::Expired {
            role: RoleName::Root
        }
    ));
}

#[test]
fn expired_snapshot() {
    let mut w = world();
    let t = w.ticket(nonce(1), NAME_A);
    w.sim.clock.advance(8 * DAY);
    assert!(matches!(
        err(w.update()),
        RegistryError::Expired {
            role: RoleName::Snapshot
        }
    ));
    // The trusted copy is stale too: no login on frozen metadata.
    assert!(matches!(
        err(w.admit(&t, nonce(1), MOD_A)),
        RegistryError::Expired {
            role: RoleName::Snapshot
        }
    ));
}

#[test]
fn expired_targets() {
    let mut w = world();
    w.sim.clock.advance(91 * DAY);
    w.sim.snapshot().unwrap();
    assert!(matches!(
        err(w.update()),
        RegistryError::Expired {
            role: RoleName::Targets
        }
    ));
}

#[test]
fn clock_set_back_before_the_latest_trusted_time() {
    let mut w = world();
    w.sim.clock.advance(3600);
    w.update().unwrap();
    let t = w.ticket(nonce(1), NAME_A);
    w.sim.clock.advance(1);
    let latest = w.client.latest_time();
    w.sim.clock.set(latest - 10);
    assert!(matches!(
        err(w.update()),
        RegistryError::ClockSetBack { now, latest: l } if now == latest - 10 && l == latest
    ));
    assert!(matches!(
        err(w.admit(&t, nonce(1), MOD_A)),
        RegistryError::ClockSetBack { .. }
    ));
    // The latest trusted time survives a restart.
    let reopened =
        kasane_registry::trust::TrustStore::open(w.dir.path(), w.sim.clock.clone()).unwrap();
    assert_eq!(reopened.latest_time(), latest);
}

// ---- mix-and-match ----

#[test]
fn targets_whose_hash_or_version_differs_from_the_snapshot() {
    let mut w = world();
    // A validly signed targets file the snapshot does not name.
    let v = w.sim.repo.targets().version;
    w.sim.publish("second", MOD_B).unwrap();
    let newer = w.sim.fetch("targets.json", u64::MAX).unwrap().unwrap();
    w.sim.overrides.clear();
    let (snap, _) = served_snapshot(&w.sim);
    assert!(snap.meta["targets"].version > v);
    // Serve the newest snapshot but an older, validly signed targets: hash/length differ.
    let mut older = w.sim.repo.targets().clone();
    older.version = v;
    let older = older.sign_to_bytes(&refs(&w.sim.keys.targets));
    w.sim.serve("targets.json", older);
    assert!(matches!(
        err(w.update()),
        RegistryError::SnapshotMismatch {
            role: RoleName::Targets,
            what: "hash" | "length"
        }
    ));
    // A snapshot naming the right bytes under another version number.
    w.sim.overrides.clear();
    let nv = snap.meta["targets"].version;
    forge_snapshot(&mut w.sim, |s| {
        s.meta
            .insert("targets".into(), MetaInfo::of(nv + 5, &newer));
    });
    assert!(matches!(
        err(w.update()),
        RegistryError::SnapshotMismatch {
            role: RoleName::Targets,
            what: "version"
        }
    ));
}

#[test]
fn recovery_after_a_fast_forward_attack_once_the_online_key_rotates() {
    let mut w = world();
    // The stolen online key pushes the snapshot version sky-high.
    forge_snapshot(&mut w.sim, |s| s.version = 1_000_000);
    w.update().unwrap();
    assert_eq!(w.client.floor("snapshot"), Some(1_000_000));
    // The registry's next genuine snapshot is now "a rollback".
    w.sim.overrides.clear();
    w.sim.snapshot().unwrap();
    assert!(matches!(
        err(w.update()),
        RegistryError::Rollback {
            role: RoleName::Snapshot,
            trusted: 1_000_000,
            ..
        }
    ));
    // Rotating the online key in root resets the snapshot floor.
    let stolen = w.sim.keys.snapshot.clone();
    w.sim.rotate_snapshot_key().unwrap();
    w.update().unwrap();
    let floor = w.client.floor("snapshot").unwrap();
    assert!(floor < 100, "{floor}");
    // Tickets from the stolen key no longer verify.
    let (s, bytes) = served_snapshot(&w.sim);
    let t = kasane_registry::metadata::ticket::Ticket {
        client_nonce: Sha256Hash(nonce(1)),
        snapshot_version: s.version,
        snapshot_sha256: Sha256Hash::of(&bytes),
        module: kasane_registry::metadata::ticket::TicketModule {
            name: NAME_A.into(),
            sha256: Sha256Hash::of(MOD_A),
            length: MOD_A.len() as u64,
        },
        issued_at: w.sim.now(),
        expires: w.sim.now() + 60,
    }
    .sign(&refs(&stolen));
    assert!(matches!(
        err(w.admit(&t, nonce(1), MOD_A)),
        RegistryError::Threshold {
            role: RoleName::Ticket,
            have: 0,
            need: 1
        }
    ));
    let t = w.ticket(nonce(1), NAME_A);
    w.admit(&t, nonce(1), MOD_A).unwrap();
}

// ---- tickets ----

#[test]
fn ticket_with_a_stale_or_foreign_client_nonce() {
    let w = world();
    let stale = w.ticket(nonce(1), NAME_A);
    w.admit(&stale, nonce(1), MOD_A).unwrap();
    // Replayed on the next login (new nonce), or lifted from another client's login.
    for n in [nonce(2), nonce(9)] {
        assert!(matches!(
            err(w.admit(&stale, n, MOD_A)),
            RegistryError::NonceMismatch
        ));
    }
}

#[test]
fn ticket_past_its_expiry() {
    let w = world();
    let t = w.ticket(nonce(1), NAME_A);
    w.sim.clock.advance(w.sim.life.ticket + 1);
    assert!(matches!(
        err(w.admit(&t, nonce(1), MOD_A)),
        RegistryError::TicketExpired
    ));
}

// ---- caps and parsing ----

#[test]
fn oversized_metadata() {
    let mut w = world();
    let (_, bytes) = served_snapshot(&w.sim);
    let mut big = bytes.clone();
    big.resize(MAX_SNAPSHOT_LEN as usize + 1, b' ');
    w.sim.serve("snapshot.json", big);
    assert!(matches!(
        err(w.update()),
        RegistryError::TooLarge {
            max: MAX_SNAPSHOT_LEN,
            ..
        }
    ));
    // A ticket past its cap.
    let huge = vec![b' '; 1 << 20];
    assert!(matches!(
        err(w.admit(&huge, nonce(1), MOD_A)),
        RegistryError::TooLarge { .. }
    ));
    // A module over the 1 MiB cap cannot even be described.
    assert!(matches!(
        err(target_entry(
            "big",
            &vec![0; (1 << 20) + 1],
            Profile::Pure,
            1,
            1,
            vec![],
            1
        )),
        RegistryError::TooLarge { .. }
    ));
}

#[test]
fn path_traversal_in_names() {
    for bad in ["../etc/passwd", "a/../../b", "/abs", "a//b", "A", "x\\y"] {
        assert!(
            matches!(
                err(target_entry(bad, MOD_A, Profile::Pure, 1, 1, vec![], 1)),
                RegistryError::BadName { .. }
            ),
            "{bad}"
        );
    }
    let k = key_from_seed(&[5; 32]).public();
    assert!(matches!(
        err(delegation("..", "acme/", &[k], 1)),
        RegistryError::BadName { .. }
    ));
    assert!(matches!(
        err(delegation("acme", "../", &[k], 1)),
        RegistryError::BadName { .. }
    ));
    // A validly signed targets file with a traversal name is refused when parsed.
    let w = world();
    let mut t: Targets = w.sim.repo.targets().clone();
    t.targets[0].name = "../../etc/shadow".into();
    let bytes = t.sign_to_bytes(&refs(&w.sim.keys.targets));
    let keys = w.sim.repo.root().role_keys(RoleName::Targets).unwrap();
    assert!(matches!(
        err(metadata::verify::<Targets>(&bytes, &keys)),
        RegistryError::BadName { .. }
    ));
    // The directory fetcher never leaves its directory.
    let f = DirFetcher::new(w.dir.path());
    assert!(matches!(
        err(f.fetch("../state.json", 1 << 20)),
        RegistryError::BadName { .. }
    ));
}

#[test]
fn duplicate_json_keys() {
    let mut w = world();
    let t = w.sim.repo.targets().clone();
    let payload = format!(
        r#"{{"version":{v},"expires":{e},"targets":[],"delegations":[],"version":{v2}}}"#,
        v = t.version + 1,
        e = t.expires,
        v2 = t.version + 2,
    );
    let env = Envelope::sign(
        Targets::PAYLOAD_TYPE,
        payload.into_bytes(),
        &refs(&w.sim.keys.targets),
    )
    .to_bytes();
    w.sim.serve("targets.json", env.clone());
    let v = t.version + 1;
    forge_snapshot(&mut w.sim, |s| {
        s.meta.insert("targets".into(), MetaInfo::of(v, &env));
    });
    assert!(matches!(
        err(w.update()),
        RegistryError::DuplicateKey { key } if key == "version"
    ));
    // In the envelope itself.
    let dup_env = br#"{"payloadType":"a","payload":"","signatures":[],"payloadType":"b"}"#;
    assert!(matches!(
        err(Envelope::from_bytes(dup_env, 1024, "e")),
        RegistryError::DuplicateKey { key } if key == "payloadType"
    ));
}

#[test]
fn threshold_zero() {
    let mut w = world();
    let mut next = w.sim.repo.next_root(w.sim.now(), &w.sim.life);
    next.roles.targets.threshold = 0;
    w.sim
        .serve("2.root.json", next.sign_to_bytes(&refs(&w.sim.keys.root)));
    assert!(matches!(
        err(w.update()),
        RegistryError::ZeroThreshold {
            role: RoleName::Targets
        }
    ));
    let k = key_from_seed(&[5; 32]).public();
    assert!(matches!(
        err(delegation("acme", "acme/", &[k], 0)),
        RegistryError::ZeroThreshold {
            role: RoleName::Author(_)
        }
    ));
}

#[test]
fn weak_ed25519_keys() {
    let mut w = world();
    // The identity point: small order, "verifies" forged signatures under weak checks.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let mut next = w.sim.repo.next_root(w.sim.now(), &w.sim.life);
    let id = KeyId(Sha256Hash::of(&identity).0);
    next.keys.insert(id, RawKey(identity));
    next.roles.host.keyids.push(id);
    w.sim
        .serve("2.root.json", next.sign_to_bytes(&refs(&w.sim.keys.root)));
    assert!(matches!(err(w.update()), RegistryError::WeakKey));
    assert!(matches!(
        err(kasane_registry::keys::PublicKey::from_bytes(&identity)),
        RegistryError::WeakKey
    ));
}

// ---- delegations ----

#[test]
fn author_signing_outside_its_delegated_prefix() {
    let mut w = world();
    let key = w.sim.add_author("acme", "acme/").unwrap();
    let file = AuthorFile {
        author: "acme".into(),
        version: 1,
        expires: w.sim.now() + 30 * DAY,
        targets: vec![
            target_entry("sha256-chain-v2", MOD_B, Profile::Pure, 1, 1, vec![], 1).unwrap(),
        ],
        delegations: vec![],
    };
    let bytes = author_sign(&file, &[&key]).unwrap();
    // The registry refuses to take it...
    assert!(matches!(
        err(w.sim.repo.put_author_file(bytes.clone())),
        RegistryError::DelegationPrefix { author, name, prefix }
            if author == "acme" && name == "sha256-chain-v2" && prefix == "acme/"
    ));
    // ...and a client refuses it even under a snapshot signed with the online key.
    w.sim.serve("authors/acme.json", bytes.clone());
    forge_snapshot(&mut w.sim, |s| {
        s.meta
            .insert("authors/acme".into(), MetaInfo::of(1, &bytes));
    });
    assert!(matches!(
        err(w.update()),
        RegistryError::DelegationPrefix { .. }
    ));
}

#[test]
fn delegation_cycles_and_the_delegation_cap() {
    let mut w = world();
    let acme = w.sim.add_author("acme", "acme/").unwrap();
    let team = w.sim.new_key();
    w.sim.author_keys.insert("team".into(), vec![team.clone()]);
    w.sim.author_files.insert(
        "team".into(),
        AuthorFile {
            author: "team".into(),
            version: 0,
            expires: 0,
            targets: vec![],
            delegations: vec![],
        },
    );
    // acme → team (acme/team/), team → acme (acme/team/x/): a cycle.
    let to_team = delegation("team", "acme/team/", &[team.public()], 1).unwrap();
    w.sim
        .edit_author("acme", |f| f.delegations.push(to_team))
        .unwrap();
    let back = delegation("acme", "acme/team/x/", &[acme.public()], 1).unwrap();
    w.sim
        .edit_author("team", |f| f.delegations.push(back))
        .unwrap();
    assert!(matches!(
        err(w.update()),
        RegistryError::DelegationCycle { author } if author == "acme"
    ));

    // The cap: one delegation too many is refused by the publisher and by any parser.
    let mut sim = RepositorySimulator::new();
    let mut t = sim.repo.targets().clone();
    for i in 0..=MAX_DELEGATIONS {
        let k = sim.new_key().public();
        t.delegations
            .push(delegation(&format!("a{i}"), &format!("p{i}/"), &[k], 1).unwrap());
    }
    let bytes = t.sign_to_bytes(&refs(&sim.keys.targets));
    let keys = sim.repo.root().role_keys(RoleName::Targets).unwrap();
    assert!(matches!(
        err(metadata::verify::<Targets>(&bytes, &keys)),
        RegistryError::DelegationCap {
            max: MAX_DELEGATIONS
        }
    ));
    let now = sim.now();
    let life = sim.life;
    for (i, d) in t.delegations.iter().enumerate() {
        let r = sim
            .repo
            .delegate(d.clone(), &refs(&sim.keys.targets.clone()), now, &life);
        if i < MAX_DELEGATIONS {
            r.unwrap();
        } else {
            assert!(matches!(err(r), RegistryError::DelegationCap { .. }));
        }
    }
}

// ---- stolen keys ----

#[test]
fn stolen_online_key_alone_cannot_make_a_new_module_runnable() {
    let mut w = world();
    // A ticket for a module nobody published.
    let t = forge_ticket(
        &w.sim,
        nonce(1),
        "sha256-chain-evil",
        Sha256Hash::of(MOD_B),
        MOD_B.len() as u64,
    );
    assert!(matches!(
        err(w.admit(&t, nonce(1), MOD_B)),
        RegistryError::NotListed { .. }
    ));
    // A ticket naming a published module with other bytes.
    let t = forge_ticket(
        &w.sim,
        nonce(1),
        NAME_A,
        Sha256Hash::of(MOD_B),
        MOD_B.len() as u64,
    );
    assert!(matches!(
        err(w.admit(&t, nonce(1), MOD_B)),
        RegistryError::HashMismatch
    ));
    // A targets file signed with the online key.
    let mut targets = w.sim.repo.targets().clone();
    targets.version += 1;
    targets
        .targets
        .push(target_entry("evil", MOD_B, Profile::Pure, 1, 1, vec![], 100).unwrap());
    let forged = targets.sign_to_bytes(&refs(&w.sim.keys.snapshot));
    w.sim.serve("targets.json", forged.clone());
    let v = targets.version;
    forge_snapshot(&mut w.sim, |s| {
        s.meta.insert("targets".into(), MetaInfo::of(v, &forged));
    });
    assert!(matches!(
        err(w.update()),
        RegistryError::Threshold {
            role: RoleName::Targets,
            have: 0,
            ..
        }
    ));
}

#[test]
fn stolen_author_key_alone_cannot_make_a_new_module_runnable() {
    let mut w = world();
    let key = w.sim.add_author("acme", "acme/").unwrap();
    w.sim.author_publish("acme", "acme/good", MOD_A).unwrap();
    w.update().unwrap();
    // The thief signs a new author file listing its module, and serves it.
    let mut file = w.sim.author_files["acme"].clone();
    file.version += 1;
    file.targets
        .push(target_entry("acme/evil", MOD_B, Profile::Pure, 1, 1, vec![], 100).unwrap());
    w.sim
        .serve("authors/acme.json", author_sign(&file, &[&key]).unwrap());
    // A client holding the current snapshot keeps the files it verified (it does not even
    // fetch them again); one that fetches everything refuses the file: the snapshot pins
    // each file's hash.
    w.update().unwrap();
    assert!(
        !w.client
            .runnable()
            .iter()
            .any(|(e, _)| e.name == "acme/evil")
    );
    let (_dir, mut fresh) = w.fresh_client();
    assert!(matches!(
        err(fresh.update(&w.sim)),
        RegistryError::SnapshotMismatch {
            role: RoleName::Author(_),
            ..
        }
    ));
    // Without the online key there is no ticket for it either: the registry will not sign one.
    assert!(matches!(
        err(w.sim.ticket(nonce(1), "acme/evil")),
        RegistryError::NotListed { .. }
    ));
}

#[test]
fn lower_snapshot_version_after_a_client_restart() {
    let mut w = world();
    let (_, old_bytes) = served_snapshot(&w.sim);
    w.sim.publish("second", MOD_B).unwrap();
    w.update().unwrap();
    let floor = w.client.floor("snapshot").unwrap();
    // Restart: the floors come back from disk.
    let dir = w.dir.path().to_owned();
    w.client = kasane_registry::trust::TrustStore::open(&dir, w.sim.clock.clone()).unwrap();
    assert_eq!(w.client.floor("snapshot"), Some(floor));
    let t = w.ticket(nonce(4), "second");
    w.admit(&t, nonce(4), MOD_B).unwrap();
    w.sim.serve("snapshot.json", old_bytes);
    assert!(matches!(
        err(w.update()),
        RegistryError::Rollback {
            role: RoleName::Snapshot,
            ..
        }
    ));
    // A damaged state file is an error, never a reset to no floors.
    std::fs::write(dir.join("state.json"), b"{\"format\":1").unwrap();
    assert!(kasane_registry::trust::TrustStore::open(&dir, w.sim.clock.clone()).is_err());
}

// ---- an update that finds nothing new ----

/// The simulator, recording every path the client asks for.
struct Recording<'a> {
    sim: &'a kasane_registry::simulator::RepositorySimulator,
    asked: std::sync::Mutex<Vec<String>>,
}

impl kasane_registry::trust::Fetcher for Recording<'_> {
    fn fetch(&self, path: &str, max_len: u64) -> kasane_registry::Result<Option<Vec<u8>>> {
        self.asked.lock().unwrap().push(path.to_owned());
        self.sim.fetch(path, max_len)
    }
}

#[test]
fn nothing_new_fetches_two_files_and_writes_nothing_within_the_hour() {
    let mut w = world();
    let state = w.dir.path().join(kasane_registry::trust::STATE_FILE);
    let saved = std::fs::read(&state).unwrap();
    w.sim.clock.advance(60);
    let rec = Recording {
        sim: &w.sim,
        asked: std::sync::Mutex::new(Vec::new()),
    };
    w.client.update(&rec).unwrap();
    // The next root (absent) and the snapshot: what it names was verified before.
    assert_eq!(*rec.asked.lock().unwrap(), ["2.root.json", "snapshot.json"]);
    assert_eq!(std::fs::read(&state).unwrap(), saved, "state written");
    assert_eq!(w.client.latest_time(), w.sim.now(), "time still advances");
    w.admit(&w.ticket(nonce(1), NAME_A), nonce(1), MOD_A)
        .unwrap();
    // An hour on, the latest trusted time is written (and survives a restart).
    w.sim
        .clock
        .advance(kasane_registry::trust::LATEST_TIME_SAVE_STEP);
    w.update().unwrap();
    assert_ne!(std::fs::read(&state).unwrap(), saved);
    let reopened =
        kasane_registry::trust::TrustStore::open(w.dir.path(), w.sim.clock.clone()).unwrap();
    assert_eq!(reopened.latest_time(), w.sim.now());
    // A new snapshot is followed as before: the files it names are fetched again.
    w.sim.publish("other", MOD_B).unwrap();
    let rec = Recording {
        sim: &w.sim,
        asked: std::sync::Mutex::new(Vec::new()),
    };
    w.client.update(&rec).unwrap();
    assert!(
        rec.asked
            .lock()
            .unwrap()
            .contains(&"targets.json".to_owned())
    );
    assert!(w.client.runnable().iter().any(|(e, _)| e.name == "other"));
}
