//! One test per attack on the registry and the client trust store, each refused with its own
//! typed error. The repository is simulated (`kasane_registry::simulator`); the attacker
//! overrides the files it serves, and where the attack assumes a stolen key, signs with it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::*;
use kasane_registry::entry::MAX_MODULE_LEN;
use kasane_registry::layout::MAX_AUTHORS;
use kasane_registry::repo::{RoleSetup, metadata_path};
use kasane_registry::simulator::{RepositorySimulator, refs};
use kasane_registry::ticket::{MAX_TICKET_LEN, Ticket, TicketModule};
use kasane_registry::trust::{
    DirFetcher, Fetcher, LATEST_TIME_SAVE_STEP, STATE_FILE, TICKET_CLOCK_SKEW, TrustStore,
};
use kasane_registry::{RegistryError, Sha256Hash};
use kasane_tuf::TufError;
use kasane_tuf::keys::Key;
use kasane_tuf::metadata::{
    DelegatedRole, Delegations, Metadata, Signature, Signer, Snapshot, Targets,
};
use kasane_tuf::updater::UpdaterConfig;
use kasane_tuf::verify::verify_delegate;

fn entry(name: &str, module: &[u8]) -> kasane_tuf::metadata::TargetFile {
    RepositorySimulator::entry(name, module, 100).to_target_file()
}

// ---- module bytes ----

#[test]
fn tampered_module_bytes() {
    let mut w = world();
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
    assert_eq!(ok.role, "targets");
}

#[test]
fn module_longer_than_its_metadata() {
    let mut w = world();
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
    let mut w = world();
    // A ticket signed with the (stolen) ticket key for a module no role lists.
    let t = forge_ticket(&w.sim, nonce(1), "evil", MOD_B);
    assert!(matches!(
        err(w.admit(&t, nonce(1), MOD_B)),
        RegistryError::NotListed { name } if name == "evil"
    ));
    // The registry itself refuses to sign a ticket for it.
    assert!(matches!(
        tuf_err(w.sim.ticket(nonce(1), "evil")),
        TufError::UnknownTarget { path } if path == "evil"
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
    // A ticket naming A but carrying B's hash (ticket key misused) disagrees with targets.
    let t = forge_ticket(&w.sim, nonce(1), NAME_A, MOD_B);
    assert!(matches!(
        err(w.admit(&t, nonce(1), MOD_B)),
        RegistryError::TicketModule
    ));
}

// ---- signatures and thresholds ----

#[test]
fn metadata_signed_by_a_wrong_key() {
    let mut w = world();
    let attacker = w.sim.new_key();
    // A snapshot signed by a key root does not list (the timestamp naming it is genuine).
    let mut s = served_snapshot(&w.sim);
    s.version += 1;
    let v = s.version;
    serve_snapshot(&mut w.sim, v, sign(s, &[&attacker]));
    assert!(matches!(
        tuf_err(w.update()),
        TufError::ThresholdNotMet { role, valid: 0, threshold: 1 } if role == "snapshot"
    ));
    // Targets signed by the (real) online key instead of the targets key. (The timestamp
    // above verified and is trusted now: the next one forged goes on from it.)
    let mut t = w.sim.repo.targets().clone();
    t.version += 1;
    let forged = sign(t, &refs(&w.sim.keys.online));
    let (name, meta) = serve_role(&mut w.sim, "targets", forged);
    forge_snapshot(&mut w.sim, |s| {
        s.meta.insert(name, meta);
    });
    assert!(matches!(
        tuf_err(w.update()),
        TufError::ThresholdNotMet { role, valid: 0, threshold: 1 } if role == "targets"
    ));
}

#[test]
fn metadata_under_threshold() {
    let mut w = world();
    set_online_keys(&mut w.sim, 3, 2);
    w.update().unwrap();
    let mut s = served_snapshot(&w.sim);
    s.version += 1;
    let v = s.version;
    let one = sign(s, &refs(&w.sim.keys.online[..1]));
    serve_snapshot(&mut w.sim, v, one);
    assert!(matches!(
        tuf_err(w.update()),
        TufError::ThresholdNotMet { role, valid: 1, threshold: 2 } if role == "snapshot"
    ));
    // The genuine metadata passes once its timestamp version is past the forged one.
    w.sim.overrides.clear();
    w.sim.snapshot().unwrap();
    w.sim.snapshot().unwrap();
    w.update().unwrap();
}

/// A snapshot of the next version, signed by the first online key only.
fn snapshot_signed_once(w: &World) -> (u64, Metadata<Snapshot>, Signature) {
    let mut s = served_snapshot(&w.sim);
    s.version += 1;
    let v = s.version;
    let mut m = Metadata::new(s);
    m.sign(&w.sim.keys.online[0]).unwrap();
    let sig = m.signatures[0].clone();
    (v, m, sig)
}

#[test]
fn one_signature_repeated_to_reach_a_threshold() {
    let mut w = world();
    set_online_keys(&mut w.sim, 2, 2);
    w.update().unwrap();
    let (v, mut m, sig) = snapshot_signed_once(&w);
    // The threshold rule counts distinct listed key ids: one signature three times is one.
    let signed = m.signed_bytes().unwrap();
    let thrice = vec![sig.clone(), sig.clone(), sig.clone()];
    assert!(matches!(
        verify_delegate(w.sim.repo.root(), "snapshot", &signed, &thrice),
        Err(TufError::ThresholdNotMet {
            valid: 1,
            threshold: 2,
            ..
        })
    ));
    // A file repeating a key id is refused as it is parsed.
    m.signatures = thrice;
    serve_snapshot(&mut w.sim, v, m.to_bytes().unwrap());
    assert!(matches!(
        tuf_err(w.update()),
        TufError::Malformed { what, .. } if what == "snapshot"
    ));
    // The same signature relabelled with the other listed key's id does not verify under it.
    let mut relabelled = sig.clone();
    relabelled.keyid = w.sim.keys.online[1].key().key_id();
    m.signatures = vec![sig, relabelled];
    serve_snapshot(&mut w.sim, v, m.to_bytes().unwrap());
    assert!(matches!(
        tuf_err(w.update()),
        TufError::ThresholdNotMet { role, valid: 1, threshold: 2 } if role == "snapshot"
    ));
}

/// Replaces "one public key under two key ids": in TUF only the key ids the delegator lists
/// count, each once, so a signature by any other key adds nothing.
#[test]
fn a_signature_by_an_unlisted_key_does_not_count() {
    let mut w = world();
    set_online_keys(&mut w.sim, 2, 2);
    w.update().unwrap();
    let outsider = w.sim.new_key();
    let (v, mut m, _) = snapshot_signed_once(&w);
    m.sign(&outsider).unwrap();
    assert_eq!(m.signatures.len(), 2);
    serve_snapshot(&mut w.sim, v, m.to_bytes().unwrap());
    assert!(matches!(
        tuf_err(w.update()),
        TufError::ThresholdNotMet { role, valid: 1, threshold: 2 } if role == "snapshot"
    ));
    // With the second listed key it passes.
    m.sign(&w.sim.keys.online[1]).unwrap();
    serve_snapshot(&mut w.sim, v, m.to_bytes().unwrap());
    w.update().unwrap();
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
        let dir = tempfile::tempdir().unwrap();
        let mut client = sim.client(dir.path()).unwrap();
        client.update(&sim).unwrap();

        let new_keys: Vec<_> = (0..3).map(|_| sim.new_key()).collect();
        let mut next = sim.repo.next_root(sim.now(), &sim.life).unwrap();
        next.roles.get_mut("root").unwrap().keyids.clear();
        for k in &new_keys {
            next.add_key("root", k.key()).unwrap();
        }
        let mut signers = refs(&sim.keys.root[..old_n]);
        signers.extend(refs(&new_keys[..new_n]));
        sim.serve("metadata/2.root.json", sign(next, &signers));

        let r = client.update(&sim);
        if ok {
            r.unwrap();
            assert_eq!(client.root_version().unwrap(), 2, "case {old_n}/{new_n}");
            continue;
        }
        let valid = if old_n < 2 { old_n } else { new_n } as u64;
        assert!(
            matches!(&r, Err(RegistryError::Tuf(TufError::ThresholdNotMet { role, valid: v, threshold: 2 }))
                if role == "root" && *v == valid),
            "case {old_n}/{new_n}: {r:?}"
        );
        assert_eq!(client.root_version().unwrap(), 1);
    }
}

#[test]
fn root_version_repeated_or_skipped() {
    for version in [1, 3, 2 + 1_000] {
        let mut w = world();
        let mut next = w.sim.repo.next_root(w.sim.now(), &w.sim.life).unwrap();
        next.version = version;
        let bytes = sign(next, &refs(&w.sim.keys.root));
        w.sim.serve("metadata/2.root.json", bytes);
        assert!(matches!(
            tuf_err(w.update()),
            TufError::VersionMismatch { role, expected: 2, got } if role == "root" && got == version
        ));
    }
}

/// The root chain is walked at most `max_root_rotations` versions per update (python-tuf's
/// rule): a longer chain is neither refused nor walked forever; the next update goes on.
#[test]
fn root_chain_longer_than_the_cap() {
    let mut w = world();
    let cap = u64::from(UpdaterConfig::default().max_root_rotations);
    for _ in 0..=cap {
        w.sim.bump_root().unwrap();
    }
    w.update().unwrap();
    assert_eq!(w.client.root_version().unwrap(), 1 + cap);
    w.update().unwrap();
    assert_eq!(w.client.root_version().unwrap(), 2 + cap);
}

// ---- rollback and freeze ----

#[test]
fn lower_snapshot_version_even_when_the_trusted_copy_expired() {
    let mut w = world();
    let old_ts = served(&w.sim, "metadata/timestamp.json");
    let old_v = served_snapshot(&w.sim).version;
    let old_snap = served(&w.sim, &metadata_path("snapshot", Some(old_v)));
    w.sim.publish("second", MOD_B).unwrap();
    w.update().unwrap();
    w.sim.clock.advance(30 * DAY);
    // The old timestamp replayed.
    w.sim.serve("metadata/timestamp.json", old_ts);
    assert!(matches!(
        tuf_err(w.update()),
        TufError::Rollback { role, trusted, new } if role == "timestamp" && trusted > new
    ));
    // A fresh timestamp (stolen online key) naming the old snapshot.
    w.sim.overrides.clear();
    forge_timestamp(&mut w.sim, old_v, &old_snap);
    assert!(matches!(
        tuf_err(w.update()),
        TufError::Rollback { role, trusted, new } if role == "snapshot" && new == old_v && trusted > new
    ));
}

/// A snapshot (stolen online key, fresh expiry) naming an older version of `role`, whose
/// trusted copy expired long ago: a rollback of `<role>.json` all the same.
fn assert_role_rollback(w: &mut World, role: &str, old: Vec<u8>, old_v: u64, days: u64) {
    w.update().unwrap();
    w.sim.clock.advance(days * DAY);
    let file = format!("{role}.json");
    w.sim.serve(&metadata_path(role, Some(old_v)), old.clone());
    forge_snapshot(&mut w.sim, |s| {
        s.meta.insert(file.clone(), meta_of(old_v, &old));
    });
    assert!(matches!(
        tuf_err(w.update()),
        TufError::Rollback { role: r, trusted, new } if r == file && new == old_v && trusted > new
    ));
}

#[test]
fn lower_targets_version_even_when_the_trusted_copy_expired() {
    let mut w = world();
    let old_v = w.sim.repo.targets().version;
    let old = served(&w.sim, &metadata_path("targets", Some(old_v)));
    w.sim.publish("second", MOD_B).unwrap();
    assert_role_rollback(&mut w, "targets", old, old_v, 100);
}

#[test]
fn lower_author_role_version_even_when_the_trusted_copy_expired() {
    let mut w = world();
    w.sim.add_author("acme").unwrap();
    w.sim.author_publish("acme", "acme/one", MOD_A).unwrap();
    let old = served(&w.sim, "metadata/1.acme.json");
    w.sim.author_publish("acme", "acme/two", MOD_B).unwrap();
    assert_role_rollback(&mut w, "acme", old, 1, 100);
}

#[test]
fn lower_revocations_version_even_when_the_trusted_copy_expired() {
    let mut w = world();
    let old = served(&w.sim, "metadata/1.revocations.json");
    w.sim.revoke(Sha256Hash::of(MOD_A)).unwrap();
    assert_role_rollback(&mut w, "revocations", old, 1, 40);
}

#[test]
fn role_removed_from_the_snapshot() {
    // Dropping an author's role, or revocations (to un-revoke everything), is refused.
    for role in ["acme.json", "revocations.json"] {
        let mut w = world();
        w.sim.add_author("acme").unwrap();
        w.sim.author_publish("acme", "acme/one", MOD_B).unwrap();
        w.update().unwrap();
        forge_snapshot(&mut w.sim, |s| {
            s.meta.remove(role);
        });
        assert!(matches!(
            tuf_err(w.update()),
            TufError::RoleRemoved { role: r } if r == role
        ));
    }
}

#[test]
fn older_validly_signed_author_role_still_listing_a_revoked_hash() {
    let mut w = world();
    w.sim.add_author("acme").unwrap();
    w.sim.author_publish("acme", "acme/bad", MOD_B).unwrap();
    let old = served(&w.sim, "metadata/1.acme.json");
    // The author withdraws it and the registry revokes its hash.
    w.sim.edit_author("acme", |t| t.targets.clear()).unwrap();
    w.sim.revoke(Sha256Hash::of(MOD_B)).unwrap();
    w.update().unwrap();
    // A client that never saw version 2, served version 1 under a snapshot signed with a
    // stolen online key: the role verifies, but the revocation still holds.
    w.sim.serve("metadata/1.acme.json", old.clone());
    forge_snapshot(&mut w.sim, |s| {
        s.meta.insert("acme.json".into(), meta_of(1, &old));
    });
    let (_d, mut fresh) = w.fresh_client();
    fresh.update(&w.sim).unwrap();
    let t = forge_ticket(&w.sim, nonce(3), "acme/bad", MOD_B);
    assert!(matches!(
        err(fresh.admit(&t, &nonce(3), MOD_B, &w.sim)),
        RegistryError::Revoked { sha256 } if sha256 == Sha256Hash::of(MOD_B).to_hex()
    ));
    // A cached copy of it is refused too.
    assert!(matches!(
        err(fresh.admit_cached(&Sha256Hash::of(MOD_B))),
        RegistryError::Revoked { .. }
    ));
    // And a client that saw version 2 refuses version 1 outright.
    assert!(matches!(
        tuf_err(w.update()),
        TufError::Rollback { role, trusted: 2, new: 1 } if role == "acme.json"
    ));
}

#[test]
fn expired_root() {
    let mut w = world();
    w.sim.clock.advance(366 * DAY);
    w.sim.refresh().unwrap();
    assert!(matches!(
        tuf_err(w.update()),
        TufError::Expired { role } if role == "root"
    ));
}

#[test]
fn expired_timestamp_or_snapshot() {
    let mut w = world();
    w.sim.clock.advance(8 * DAY);
    assert!(matches!(
        tuf_err(w.update()),
        TufError::Expired { role } if role == "timestamp"
    ));
    // The trusted copy is stale too: no login on frozen metadata.
    let t = forge_ticket(&w.sim, nonce(1), NAME_A, MOD_A);
    assert!(matches!(
        tuf_err(w.admit(&t, nonce(1), MOD_A)),
        TufError::Expired { role } if role == "timestamp"
    ));
    // A fresh timestamp (stolen online key) over the frozen snapshot.
    let v = served_snapshot(&w.sim).version;
    let snap = served(&w.sim, &metadata_path("snapshot", Some(v)));
    forge_timestamp(&mut w.sim, v, &snap);
    assert!(matches!(
        tuf_err(w.update()),
        TufError::Expired { role } if role == "snapshot"
    ));
}

#[test]
fn expired_targets() {
    let mut w = world();
    w.sim.clock.advance(91 * DAY);
    w.sim.snapshot().unwrap();
    assert!(matches!(
        tuf_err(w.update()),
        TufError::Expired { role } if role == "targets"
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
    let reopened = TrustStore::open(w.dir.path(), w.sim.clock.clone()).unwrap();
    assert_eq!(reopened.latest_time(), latest);
}

#[test]
fn a_clock_far_ahead_at_first_use_is_not_kept_once_corrected() {
    let mut sim = RepositorySimulator::new();
    sim.publish(NAME_A, MOD_A).unwrap();
    let right = sim.now();
    sim.clock.set(right + 10 * 365 * DAY);
    let dir = tempfile::tempdir().unwrap();
    let mut client = sim.client(dir.path()).unwrap();
    assert!(
        client.update(&sim).is_err(),
        "expired metadata at +10 years"
    );
    sim.clock.set(right);
    client.update(&sim).unwrap();
    assert_eq!(client.latest_time(), right);
}

// ---- mix-and-match ----

#[test]
fn metadata_whose_hash_or_version_differs_from_the_referring_role() {
    let mut w = world();
    w.sim.publish("second", MOD_B).unwrap();
    // A validly signed snapshot other than the one the timestamp pins.
    let mut s = served_snapshot(&w.sim);
    s.expires = expires_in(&w.sim, DAY);
    let path = metadata_path("snapshot", Some(s.version));
    w.sim.serve(&path, sign(s, &refs(&w.sim.keys.online)));
    let e = tuf_err(w.update());
    assert!(
        matches!(&e, TufError::LengthMismatch { what, .. } | TufError::HashMismatch { what, .. } if what == "snapshot"),
        "{e:?}"
    );
    // A validly signed targets of the version the snapshot names, but other bytes.
    w.sim.overrides.clear();
    let v = w.sim.repo.targets().version;
    let mut other = w.sim.repo.targets().clone();
    other.targets.remove("second");
    let other = sign(other, &refs(&w.sim.keys.targets));
    w.sim.serve(&metadata_path("targets", Some(v)), other);
    let e = tuf_err(w.update());
    assert!(
        matches!(&e, TufError::LengthMismatch { what, .. } | TufError::HashMismatch { what, .. } if what == "targets"),
        "{e:?}"
    );
    // A snapshot (stolen online key) naming the right bytes under another version number.
    w.sim.overrides.clear();
    let genuine = served(&w.sim, &metadata_path("targets", Some(v)));
    w.sim
        .serve(&metadata_path("targets", Some(v + 5)), genuine.clone());
    forge_snapshot(&mut w.sim, |s| {
        s.meta
            .insert("targets.json".into(), meta_of(v + 5, &genuine));
    });
    assert!(matches!(
        tuf_err(w.update()),
        TufError::VersionMismatch { role, expected, got } if role == "targets" && expected == v + 5 && got == v
    ));
}

#[test]
fn recovery_after_a_fast_forward_attack_once_the_online_key_rotates() {
    let mut w = world();
    // The stolen online key pushes the timestamp and snapshot versions sky-high.
    let big = 1_000_000;
    let mut s = served_snapshot(&w.sim);
    s.version = big;
    let bytes = sign(s, &refs(&w.sim.keys.online));
    w.sim
        .serve(&metadata_path("snapshot", Some(big)), bytes.clone());
    forge_timestamp_at(&mut w.sim, big, big, &bytes);
    w.update().unwrap();
    assert_eq!(w.client.versions(), Some((big, big)));
    let minted = forge_ticket(&w.sim, nonce(1), NAME_A, MOD_A);
    // The registry's next genuine timestamp is now "a rollback".
    w.sim.overrides.clear();
    w.sim.snapshot().unwrap();
    assert!(matches!(
        tuf_err(w.update()),
        TufError::Rollback { role, trusted, .. } if role == "timestamp" && trusted == big
    ));
    // A new root rotating the online key lets the client accept the lower versions.
    w.sim.rotate_keys("online").unwrap();
    w.update().unwrap();
    let (ts, snap) = w.client.versions().unwrap();
    assert!(ts < 100 && snap < 100, "{ts} {snap}");
    // A ticket bound to the fast-forwarded versions no longer matches; a genuine one does.
    assert!(matches!(
        err(w.admit(&minted, nonce(1), MOD_A)),
        RegistryError::TicketVersions { ticket: (b, _), .. } if b == big
    ));
    let t = w.ticket(nonce(1), NAME_A);
    w.admit(&t, nonce(1), MOD_A).unwrap();
}

// ---- tickets ----

#[test]
fn ticket_with_a_stale_or_foreign_client_nonce() {
    let mut w = world();
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
    let mut w = world();
    let t = w.ticket(nonce(1), NAME_A);
    // A clock a few minutes off the host's either way is no refusal.
    w.sim
        .clock
        .advance(w.sim.life.ticket + TICKET_CLOCK_SKEW - 1);
    w.admit(&t, nonce(1), MOD_A).unwrap();
    let t = w.ticket(nonce(2), NAME_A);
    w.sim
        .clock
        .advance(w.sim.life.ticket + TICKET_CLOCK_SKEW + 1);
    assert!(matches!(
        err(w.admit(&t, nonce(2), MOD_A)),
        RegistryError::TicketExpired
    ));
}

// ---- caps and parsing ----

#[test]
fn oversized_metadata() {
    let mut w = world();
    let cap = UpdaterConfig::default().timestamp_max_length;
    let mut big = served(&w.sim, "metadata/timestamp.json");
    big.resize(cap as usize + 1, b' ');
    w.sim.serve("metadata/timestamp.json", big);
    assert!(matches!(
        tuf_err(w.update()),
        TufError::TooLarge { max, .. } if max == cap
    ));
    // A snapshot longer than the length the timestamp pins is not read past that length.
    w.sim.overrides.clear();
    w.sim.publish("second", MOD_B).unwrap();
    let path = metadata_path("snapshot", Some(w.sim.repo.current_snapshot().version));
    let mut padded = served(&w.sim, &path);
    let len = padded.len() as u64;
    padded.extend_from_slice(&[b' '; 1024]);
    w.sim.serve(&path, padded);
    assert!(matches!(
        tuf_err(w.update()),
        TufError::TooLarge { max, .. } if max == len
    ));
    // A ticket past its cap.
    let huge = vec![b' '; MAX_TICKET_LEN as usize + 1];
    assert!(matches!(
        err(w.admit(&huge, nonce(1), MOD_A)),
        RegistryError::TooLarge {
            max: MAX_TICKET_LEN,
            ..
        }
    ));
    // A module over the 1 MiB cap cannot even be published.
    let e = RepositorySimulator::entry("big", &vec![0; MAX_MODULE_LEN as usize + 1], 1);
    assert!(matches!(
        err(w.sim.publish_entry(e)),
        RegistryError::Invalid {
            field: "length",
            ..
        }
    ));
}

#[test]
fn path_traversal_in_names() {
    let w = world();
    let module = |name: &str| TicketModule {
        name: name.into(),
        sha256: Sha256Hash::of(MOD_A),
        length: MOD_A.len() as u64,
    };
    for bad in ["../etc/passwd", "a/../../b", "/abs", "a//b", "A", "x\\y"] {
        let e = RepositorySimulator::entry(bad, MOD_A, 1);
        assert!(
            matches!(e.validate(), Err(RegistryError::BadName { .. })),
            "{bad}"
        );
        // A validly signed target under that name is still not a transform.
        let from = kasane_registry::entry::TargetEntry::from_target(bad, &entry(NAME_A, MOD_A));
        assert!(matches!(from, Err(RegistryError::BadName { .. })), "{bad}");
        let t = Ticket::new(nonce(1), (1, 1), module(bad), w.sim.now(), 60);
        assert!(
            matches!(
                t.sign(&w.sim.keys.ticket),
                Err(RegistryError::BadName { .. })
            ),
            "{bad}"
        );
    }
    let setup = RoleSetup::single(w.sim.keys.authors[0].key());
    let mut repo = w.sim.repo.clone();
    let a = refs(&w.sim.keys.authors);
    assert!(matches!(
        err(repo.delegate("..", &setup, &a, w.sim.now(), &w.sim.life)),
        RegistryError::BadName { .. }
    ));
    // The directory fetcher never leaves its directory.
    let f = DirFetcher::new(w.dir.path().join("metadata"));
    assert!(matches!(f.fetch("../state.json", 1 << 20), Ok(None)));
    assert!(matches!(f.fetch("root.json", 1 << 20), Ok(Some(_))));
}

#[test]
fn duplicate_json_keys() {
    let mut w = world();
    w.sim.publish("second", MOD_B).unwrap();
    let ts = String::from_utf8(served(&w.sim, "metadata/timestamp.json")).unwrap();
    // Inside `signed`: serde_json would keep the last value (and refuse the version).
    let spec = "\"spec_version\": \"1.0.31\"";
    let twice = ts.replacen(
        spec,
        &format!("{spec},\n    \"spec_version\": \"9.0.0\""),
        1,
    );
    // In the envelope: an empty signature list hidden in front of the real one.
    let env = ts.replacen(
        "\"signatures\":",
        "\"signatures\": [],\n  \"signatures\":",
        1,
    );
    for (dup, key) in [(twice, "spec_version"), (env, "signatures")] {
        assert_ne!(dup, ts);
        w.sim.serve("metadata/timestamp.json", dup.into_bytes());
        assert!(matches!(
            tuf_err(w.update()),
            TufError::DuplicateKey { what, key: k } if what == "timestamp" && k == key
        ));
    }
    // Kasane's own strict parsing (tickets, documents) refuses them too.
    let t = String::from_utf8(w.ticket(nonce(1), NAME_A)).unwrap();
    let dup = t.replacen("\"signatures\":", "\"signatures\":[],\"signatures\":", 1);
    assert!(matches!(
        Ticket::verify(dup.as_bytes(), &[w.sim.keys.ticket.key()]),
        Err(RegistryError::DuplicateKey { key }) if key == "signatures"
    ));
}

#[test]
fn threshold_zero() {
    let mut w = world();
    let mut next = w.sim.repo.next_root(w.sim.now(), &w.sim.life).unwrap();
    next.roles.get_mut("targets").unwrap().threshold = 0;
    let bytes = sign(next.clone(), &refs(&w.sim.keys.root));
    w.sim.serve("metadata/2.root.json", bytes);
    assert!(matches!(
        tuf_err(w.update()),
        TufError::Malformed { what, .. } if what == "targets"
    ));
    // The publisher refuses to build it, and to delegate to an author with threshold 0.
    let root = refs(&w.sim.keys.root);
    assert!(matches!(
        tuf_err(w.sim.repo.clone().rotate_root(next, &root)),
        TufError::Malformed { .. }
    ));
    let zero = RoleSetup {
        keys: vec![w.sim.new_key().key()],
        threshold: 0,
    };
    let a = refs(&w.sim.keys.authors);
    assert!(matches!(
        err(w
            .sim
            .repo
            .clone()
            .delegate("acme", &zero, &a, w.sim.now(), &w.sim.life)),
        RegistryError::BadThreshold { threshold: 0, .. }
    ));
}

#[test]
fn weak_ed25519_keys() {
    let w = world();
    // The identity point: small order, "verifies" forged signatures under weak checks.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    let weak = Key::ed25519(&identity);
    // R = identity, S = 0: accepted for any message by a cofactored, non-strict check.
    let mut forged = [0u8; 64];
    forged[0] = 1;
    assert!(matches!(
        weak.verify(b"any targets file", &forged),
        Err(TufError::BadSignature { .. })
    ));
    // A root that lists it for targets (a careless root holder) still gets no signature.
    let mut root = w.sim.repo.root().clone();
    root.roles.get_mut("targets").unwrap().keyids.clear();
    root.add_key("targets", weak.clone()).unwrap();
    let sig = Signature {
        keyid: weak.key_id(),
        sig: hex::encode(forged),
        unrecognized: BTreeMap::new(),
    };
    assert!(matches!(
        verify_delegate(&root, "targets", b"any targets file", &[sig]),
        Err(TufError::ThresholdNotMet { valid: 0, .. })
    ));
    // The host's own key files refuse it outright.
    assert!(matches!(
        kasane_registry::keys::PublicKey::from_bytes(&identity),
        Err(RegistryError::WeakKey)
    ));
}

// ---- delegations ----

/// Delegations from one role to `names`, each covering `path` with `key`, not terminating.
fn delegations(names: &[String], path: &str, key: &Key) -> Delegations {
    let roles = names
        .iter()
        .map(|name| DelegatedRole {
            name: name.clone(),
            keyids: vec![key.key_id()],
            threshold: 1,
            terminating: false,
            paths: Some(vec![path.to_owned()]),
            path_hash_prefixes: None,
            unrecognized: BTreeMap::new(),
        })
        .collect();
    Delegations {
        keys: [(key.key_id(), key.clone())].into(),
        roles,
        unrecognized: BTreeMap::new(),
    }
}

#[test]
fn author_signing_outside_its_delegated_prefix() {
    let mut w = world();
    let key = w.sim.add_author("acme").unwrap();
    let mut t = w
        .sim
        .repo
        .author_template("acme", w.sim.now(), &w.sim.life)
        .unwrap();
    t.targets.insert("evil/x".into(), entry("evil/x", MOD_B));
    let bytes = sign(t, &[&key]);
    // The registry refuses to take it...
    assert!(matches!(
        err(w.sim.repo.put_author_role("acme", &bytes)),
        RegistryError::DelegationPrefix { author, name, prefix }
            if author == "acme" && name == "evil/x" && prefix == "acme/"
    ));
    // ...and served under a snapshot signed with the online key, no lookup reaches it.
    let (name, meta) = serve_role(&mut w.sim, "acme", bytes);
    forge_snapshot(&mut w.sim, |s| {
        s.meta.insert(name, meta);
    });
    w.update().unwrap();
    let t = forge_ticket(&w.sim, nonce(1), "evil/x", MOD_B);
    assert!(matches!(
        err(w.admit(&t, nonce(1), MOD_B)),
        RegistryError::NotListed { name } if name == "evil/x"
    ));
}

/// An author revoked after its key was stolen, then delegated again to a new key: the next
/// role file the new key signs starts empty, so what the thief published does not come back.
#[test]
fn an_author_delegated_again_to_a_new_key_does_not_re_sign_the_old_modules() {
    let mut w = world();
    w.sim.add_author("acme").unwrap();
    w.sim.author_publish("acme", "acme/evil", MOD_B).unwrap();
    let a = refs(&w.sim.keys.authors);
    let (now, life) = (w.sim.now(), w.sim.life);
    w.sim.repo.undelegate("acme", &a, now, &life).unwrap();
    w.sim.add_author("acme").unwrap();
    let t = w.sim.repo.author_template("acme", now, &life).unwrap();
    assert!(t.targets.is_empty(), "{:?}", t.targets.keys());
    w.sim.author_publish("acme", "acme/good", MOD_A).unwrap();
    let active = w.sim.repo.active(w.sim.now()).unwrap();
    let names: Vec<&str> = active.iter().map(|(e, _)| e.name.as_str()).collect();
    assert!(
        names.contains(&"acme/good") && !names.contains(&"acme/evil"),
        "{names:?}"
    );
}

#[test]
fn author_revoked_by_undelegation() {
    let mut w = world();
    w.sim.add_author("acme").unwrap();
    w.sim.author_publish("acme", "acme/one", MOD_B).unwrap();
    w.update().unwrap();
    let t = w.ticket(nonce(1), "acme/one");
    assert_eq!(w.admit(&t, nonce(1), MOD_B).unwrap().role, "acme");
    let a = refs(&w.sim.keys.authors);
    let (now, life) = (w.sim.now(), w.sim.life);
    w.sim.repo.undelegate("acme", &a, now, &life).unwrap();
    w.sim.snapshot().unwrap();
    w.update().unwrap();
    // The role is still listed in the snapshot, but no lookup reaches it any more.
    assert!(w.sim.repo.current_snapshot().meta.contains_key("acme.json"));
    let t = forge_ticket(&w.sim, nonce(2), "acme/one", MOD_B);
    assert!(matches!(
        err(w.admit(&t, nonce(2), MOD_B)),
        RegistryError::NotListed { name } if name == "acme/one"
    ));
    assert!(matches!(
        tuf_err(w.sim.ticket(nonce(2), "acme/one")),
        TufError::UnknownTarget { .. }
    ));
    assert!(
        w.sim
            .repo
            .active(w.sim.now())
            .unwrap()
            .iter()
            .all(|(e, _)| e.name != "acme/one")
    );
}

#[test]
fn delegation_cycle_ends_in_a_typed_error() {
    let mut w = world();
    let acme = w.sim.add_author("acme").unwrap();
    let team = w.sim.new_key();
    // acme → team (acme/team/*), team → acme (acme/*): a cycle, served with the online key.
    let to_team = delegations(&["team".into()], "acme/team/*", &team.key());
    w.sim
        .edit_author("acme", |t| t.delegations = Some(to_team))
        .unwrap();
    let mut t = Targets::new(expires_in(&w.sim, 30 * DAY));
    t.delegations = Some(delegations(&["acme".into()], "acme/*", &acme.key()));
    let (name, meta) = serve_role(&mut w.sim, "team", sign(t, &[&team]));
    forge_snapshot(&mut w.sim, |s| {
        s.meta.insert(name, meta);
    });
    w.update().unwrap();
    let t = forge_ticket(&w.sim, nonce(1), "acme/team/x", MOD_B);
    assert!(matches!(
        err(w.admit(&t, nonce(1), MOD_B)),
        RegistryError::NotListed { name } if name == "acme/team/x"
    ));
}

#[test]
fn delegation_graph_wider_than_the_search_cap() {
    let mut w = world();
    w.sim.add_author("acme").unwrap();
    let k = w.sim.new_key();
    // acme delegates acme/* to 40 roles, each served and listed (stolen online key).
    let kids: Vec<String> = (0..40).map(|i| format!("acme-{i}")).collect();
    let d = delegations(&kids, "acme/*", &k.key());
    w.sim
        .edit_author("acme", |t| t.delegations = Some(d))
        .unwrap();
    let mut listed = Vec::new();
    for kid in &kids {
        let t = Targets::new(expires_in(&w.sim, 30 * DAY));
        listed.push(serve_role(&mut w.sim, kid, sign(t, &[&k])));
    }
    forge_snapshot(&mut w.sim, |s| s.meta.extend(listed));
    w.update().unwrap();
    let t = forge_ticket(&w.sim, nonce(1), "acme/nowhere", MOD_B);
    let max = UpdaterConfig::default().max_delegations;
    assert!(matches!(
        tuf_err(w.admit(&t, nonce(1), MOD_B)),
        TufError::DelegationLimit { path, max: m } if path == "acme/nowhere" && m == max
    ));
}

#[test]
fn publisher_refuses_more_authors_than_the_cap() {
    let mut sim = RepositorySimulator::new();
    let keys: Vec<_> = (0..=MAX_AUTHORS).map(|_| sim.new_key()).collect();
    let a = refs(&sim.keys.authors);
    for (i, k) in keys.iter().enumerate() {
        let r = sim.repo.delegate(
            &format!("a{i}"),
            &RoleSetup::single(k.key()),
            &a,
            sim.now(),
            &sim.life,
        );
        if i < MAX_AUTHORS {
            r.unwrap();
        } else {
            assert!(matches!(
                err(r),
                RegistryError::DelegationCap { max: MAX_AUTHORS }
            ));
        }
    }
    // The refused delegation left the authors role as it was.
    let authors = sim.repo.delegated("authors").unwrap();
    assert_eq!(
        authors.delegations.as_ref().unwrap().roles.len(),
        MAX_AUTHORS
    );
    assert_eq!(authors.version, 1 + MAX_AUTHORS as u64);
}

// ---- stolen keys ----

#[test]
fn stolen_online_key_alone_cannot_make_a_new_module_runnable() {
    let mut w = world();
    // With the ticket key too (the host's keys): a ticket for a module nobody published...
    let t = forge_ticket(&w.sim, nonce(1), "sha256-chain-evil", MOD_B);
    assert!(matches!(
        err(w.admit(&t, nonce(1), MOD_B)),
        RegistryError::NotListed { .. }
    ));
    // ...or naming a published module with other bytes.
    let t = forge_ticket(&w.sim, nonce(1), NAME_A, MOD_B);
    assert!(matches!(
        err(w.admit(&t, nonce(1), MOD_B)),
        RegistryError::TicketModule
    ));
    // A targets file signed with the online key.
    let mut targets = w.sim.repo.targets().clone();
    targets.version += 1;
    targets.targets.insert("evil".into(), entry("evil", MOD_B));
    let forged = sign(targets, &refs(&w.sim.keys.online));
    let (name, meta) = serve_role(&mut w.sim, "targets", forged);
    forge_snapshot(&mut w.sim, |s| {
        s.meta.insert(name, meta);
    });
    assert!(matches!(
        tuf_err(w.update()),
        TufError::ThresholdNotMet { role, valid: 0, .. } if role == "targets"
    ));
}

#[test]
fn stolen_author_key_alone_cannot_make_a_new_module_runnable() {
    let mut w = world();
    let key = w.sim.add_author("acme").unwrap();
    w.sim.author_publish("acme", "acme/good", MOD_A).unwrap();
    w.update().unwrap();
    // The thief signs a new acme role listing its module and serves it in place of the
    // genuine one (the snapshot names version 1).
    let mut t = w.sim.repo.delegated("acme").unwrap().clone();
    t.targets
        .insert("acme/evil".into(), entry("acme/evil", MOD_B));
    w.sim.serve("metadata/1.acme.json", sign(t, &[&key]));
    // A client fetching it refuses it: the snapshot pins its length (and hash), so the
    // longer file is not even read to its end.
    let t = w.ticket(nonce(1), "acme/good");
    assert!(matches!(
        tuf_err(w.admit(&t, nonce(1), MOD_A)),
        TufError::TooLarge { what, .. } if what == "metadata/1.acme.json"
    ));
    // Without the online key there is no ticket for it: the registry will not sign one.
    assert!(matches!(
        tuf_err(w.sim.ticket(nonce(1), "acme/evil")),
        TufError::UnknownTarget { .. }
    ));
}

#[test]
fn lower_timestamp_version_after_a_client_restart() {
    let mut w = world();
    let old_ts = served(&w.sim, "metadata/timestamp.json");
    w.sim.publish("second", MOD_B).unwrap();
    w.update().unwrap();
    let versions = w.client.versions();
    // Restart: the trusted metadata comes back from disk; nothing is admitted before an update.
    let dir = w.dir.path().to_owned();
    w.client = TrustStore::open(&dir, w.sim.clock.clone()).unwrap();
    let t = w.ticket(nonce(4), "second");
    assert!(matches!(
        err(w.admit(&t, nonce(4), MOD_B)),
        RegistryError::NotInitialized
    ));
    w.update().unwrap();
    assert_eq!(w.client.versions(), versions);
    w.admit(&t, nonce(4), MOD_B).unwrap();
    w.sim.serve("metadata/timestamp.json", old_ts);
    assert!(matches!(
        tuf_err(w.update()),
        TufError::Rollback { role, .. } if role == "timestamp"
    ));
    // A damaged state file is an error, never a reset.
    std::fs::write(dir.join(STATE_FILE), b"{\"format\":2").unwrap();
    assert!(matches!(
        TrustStore::open(&dir, w.sim.clock.clone()),
        Err(RegistryError::Json(_))
    ));
}

// ---- an update that finds nothing new ----

/// The simulator, recording every path the client asks for.
struct Recording<'a> {
    sim: &'a RepositorySimulator,
    asked: std::sync::Mutex<Vec<String>>,
}

impl Fetcher for Recording<'_> {
    fn fetch(&self, path: &str, max_len: u64) -> Result<Option<Vec<u8>>, TufError> {
        self.asked.lock().unwrap().push(path.to_owned());
        self.sim.fetch(path, max_len)
    }
}

/// Updates `w`'s client through a [`Recording`] fetcher; returns the paths asked for.
fn recorded_update(w: &mut World) -> Vec<String> {
    let rec = Recording {
        sim: &w.sim,
        asked: std::sync::Mutex::new(Vec::new()),
    };
    w.client.update(&rec).unwrap();
    rec.asked.into_inner().unwrap()
}

/// Every file under `dir` with its bytes and modification time.
fn tree(dir: &Path) -> BTreeMap<PathBuf, (Vec<u8>, std::time::SystemTime)> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let path = e.unwrap().path();
        if path.is_dir() {
            out.extend(tree(&path));
        } else {
            let modified = std::fs::metadata(&path).unwrap().modified().unwrap();
            out.insert(path.clone(), (std::fs::read(&path).unwrap(), modified));
        }
    }
    out
}

#[test]
fn nothing_new_fetches_two_files_and_writes_nothing_within_the_hour() {
    let mut w = world();
    let before = tree(w.dir.path());
    w.sim.clock.advance(60);
    // The next root (absent) and the timestamp: what it names was verified before.
    let asked = recorded_update(&mut w);
    assert_eq!(asked, ["metadata/2.root.json", "metadata/timestamp.json"]);
    assert_eq!(w.client.latest_time(), w.sim.now(), "time still advances");
    let t = w.ticket(nonce(1), NAME_A);
    w.admit(&t, nonce(1), MOD_A).unwrap();
    assert_eq!(
        tree(w.dir.path()),
        before,
        "a file in the trust store changed"
    );
    // An hour on, the latest trusted time is written (and survives a restart).
    w.sim.clock.advance(LATEST_TIME_SAVE_STEP);
    w.update().unwrap();
    assert_ne!(tree(w.dir.path()), before);
    let reopened = TrustStore::open(w.dir.path(), w.sim.clock.clone()).unwrap();
    assert_eq!(reopened.latest_time(), w.sim.now());
    // A new snapshot is followed as before: the files it names are fetched again.
    w.sim.publish("other", MOD_B).unwrap();
    let asked = recorded_update(&mut w);
    let targets = metadata_path("targets", Some(w.sim.repo.targets().version));
    assert!(asked.contains(&targets), "{asked:?}");
    let t = w.ticket(nonce(2), "other");
    w.admit(&t, nonce(2), MOD_B).unwrap();
}
