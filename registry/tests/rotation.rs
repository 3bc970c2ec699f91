//! Key rotation for every top-level role through the simulator: the client follows each
//! rotation, and the retired key can no longer sign anything it will accept.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod common;

use common::*;
use kasane_registry::RegistryError;
use kasane_registry::error::RoleName;
use kasane_registry::metadata::Metadata;
use kasane_registry::metadata::snapshot::MetaInfo;

#[test]
fn client_follows_every_role_rotation() {
    let mut w = world();
    for role in [
        RoleName::Targets,
        RoleName::Revocations,
        RoleName::Host,
        RoleName::Snapshot,
        RoleName::Root,
    ] {
        w.sim.rotate_keys(&role).unwrap();
        w.update().unwrap();
        let t = w.ticket(nonce(1), NAME_A);
        w.admit(&t, nonce(1), MOD_A).unwrap();
        let have = w.client.role_keys(role.clone()).unwrap();
        assert_eq!(have.keys().len(), 1, "{role}");
    }
    assert_eq!(w.client.root().version, 6);
}

#[test]
fn retired_targets_key_is_refused() {
    let mut w = world();
    let old = w.sim.keys.targets.clone();
    w.sim.rotate_keys(&RoleName::Targets).unwrap();
    w.update().unwrap();
    let mut t = w.sim.repo.targets().clone();
    t.version += 1;
    let forged = t.sign_to_bytes(&refs(&old));
    w.sim.serve("targets.json", forged.clone());
    let v = t.version;
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
fn retired_root_key_cannot_sign_the_next_root() {
    let mut w = world();
    let old = w.sim.keys.root.clone();
    w.sim.rotate_keys(&RoleName::Root).unwrap();
    w.update().unwrap();
    let next = w.sim.repo.next_root(w.sim.now(), &w.sim.life);
    w.sim.serve("3.root.json", next.sign_to_bytes(&refs(&old)));
    assert!(matches!(
        err(w.update()),
        RegistryError::Threshold {
            role: RoleName::Root,
            have: 0,
            need: 1
        }
    ));
    assert_eq!(w.client.root().version, 2);
}

#[test]
fn root_rotation_signed_by_holders_one_at_a_time() {
    use kasane_registry::repo::cosign;
    use kasane_registry::simulator::RepositorySimulator;
    let mut sim = RepositorySimulator::with_root_keys(3, 2);
    let dir = tempfile::tempdir().unwrap();
    let mut client = sim.client(dir.path()).unwrap();
    client.update(&sim).unwrap();
    let next = sim.repo.next_root(sim.now(), &sim.life);
    // Holder 1 signs on their machine, holder 2 adds theirs: 2 of 3, old and new alike.
    let one = next.sign_to_bytes(&[&sim.keys.root[0]]);
    assert!(matches!(
        err(sim.repo.push_root(one.clone())),
        RegistryError::Threshold {
            role: RoleName::Root,
            have: 1,
            need: 2
        }
    ));
    let two = cosign(&one, &sim.keys.root[2]).unwrap();
    sim.repo.push_root(two).unwrap();
    sim.snapshot().unwrap();
    client.update(&sim).unwrap();
    assert_eq!(client.root().version, 2);
}
