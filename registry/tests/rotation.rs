//! Key rotation for the top-level roles and the host's ticket key through the simulator:
//! the client follows each rotation, and a retired key can no longer sign anything it accepts.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod common;

use common::*;
use kasane_registry::RegistryError;
use kasane_registry::repo::cosign;
use kasane_registry::simulator::{RepositorySimulator, refs};
use kasane_tuf::TufError;
use kasane_tuf::metadata::Signer;

/// Replaces the host's ticket key in `kasane/host-keys.json`; returns the retired key.
fn rotate_ticket_key(w: &mut World) -> kasane_tuf::metadata::Ed25519Signer {
    let new = w.sim.new_key();
    let mut host = w.sim.repo.host_keys().unwrap();
    host.tickets = vec![new.key()];
    let t = refs(&w.sim.keys.targets);
    let (now, life) = (w.sim.now(), w.sim.life);
    w.sim.repo.set_host_keys(&host, &t, now, &life).unwrap();
    w.sim.snapshot().unwrap();
    std::mem::replace(&mut w.sim.keys.ticket, new)
}

#[test]
fn client_follows_every_role_rotation() {
    let mut w = world();
    for role in ["targets", "online", "root"] {
        w.sim.rotate_keys(role).unwrap();
        w.update().unwrap();
        let t = w.ticket(nonce(1), NAME_A);
        w.admit(&t, nonce(1), MOD_A).unwrap();
    }
    rotate_ticket_key(&mut w);
    w.update().unwrap();
    let t = w.ticket(nonce(1), NAME_A);
    w.admit(&t, nonce(1), MOD_A).unwrap();
    assert_eq!(w.client.root_version().unwrap(), 4);
}

#[test]
fn retired_targets_key_is_refused() {
    let mut w = world();
    let old = w.sim.retire_keys("targets").unwrap();
    w.update().unwrap();
    let mut t = w.sim.repo.targets().clone();
    t.version += 1;
    let forged = sign(t, &refs(&old));
    let (name, meta) = serve_role(&mut w.sim, "targets", forged);
    forge_snapshot(&mut w.sim, |s| {
        s.meta.insert(name, meta);
    });
    assert!(matches!(
        tuf_err(w.update()),
        TufError::ThresholdNotMet { role, valid: 0, threshold: 1 } if role == "targets"
    ));
}

/// After a ticket key rotation the host signs with a key that only the newer
/// `kasane/host-keys.json` lists. A client that has not updated since is told to update
/// (`TicketVersions`, not `TicketSignature`: its login updates and checks again), and then
/// admits the same ticket.
#[test]
fn a_ticket_signed_by_a_new_ticket_key_makes_a_stale_client_update() {
    let mut w = world();
    rotate_ticket_key(&mut w);
    let t = w.ticket(nonce(1), NAME_A);
    assert!(matches!(
        err(w.admit(&t, nonce(1), MOD_A)),
        RegistryError::TicketVersions { .. }
    ));
    w.update().unwrap();
    w.admit(&t, nonce(1), MOD_A).unwrap();
}

#[test]
fn retired_ticket_key_is_refused() {
    let mut w = world();
    let old = rotate_ticket_key(&mut w);
    w.update().unwrap();
    let stolen = std::mem::replace(&mut w.sim.keys.ticket, old);
    let t = forge_ticket(&w.sim, nonce(1), NAME_A, MOD_A);
    w.sim.keys.ticket = stolen;
    assert!(matches!(
        err(w.admit(&t, nonce(1), MOD_A)),
        RegistryError::TicketSignature
    ));
}

#[test]
fn retired_root_key_cannot_sign_the_next_root() {
    let mut w = world();
    let old = w.sim.retire_keys("root").unwrap();
    w.update().unwrap();
    let next = w.sim.repo.next_root(w.sim.now(), &w.sim.life).unwrap();
    w.sim.serve("metadata/3.root.json", sign(next, &refs(&old)));
    assert!(matches!(
        tuf_err(w.update()),
        TufError::ThresholdNotMet { role, valid: 0, threshold: 1 } if role == "root"
    ));
    assert_eq!(w.client.root_version().unwrap(), 2);
}

#[test]
fn root_rotation_signed_by_holders_one_at_a_time() {
    let mut sim = RepositorySimulator::with_root_keys(3, 2);
    let dir = tempfile::tempdir().unwrap();
    let mut client = sim.client(dir.path()).unwrap();
    client.update(&sim).unwrap();
    let next = sim.repo.next_root(sim.now(), &sim.life).unwrap();
    // Holder 1 signs on their machine, holder 3 adds theirs: 2 of 3, old and new alike.
    let one = sign(next, &refs(&sim.keys.root[..1]));
    assert!(matches!(
        tuf_err(sim.repo.push_root(one.clone())),
        TufError::ThresholdNotMet { role, valid: 1, threshold: 2 } if role == "root"
    ));
    let two = cosign(&one, &sim.keys.root[2]).unwrap();
    sim.repo.push_root(two).unwrap();
    sim.snapshot().unwrap();
    client.update(&sim).unwrap();
    assert_eq!(client.root_version().unwrap(), 2);
}
