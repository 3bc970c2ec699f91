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
