//! Shared helpers for the registry's integration tests: a simulated repository with one
//! published module and an updated client, and the attacker's tools (forged snapshots and
//! tickets signed with a stolen online key).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    dead_code,
    reason = "tests: a failure here is a test failure; not every test file uses every helper"
)]

use kasane_registry::envelope::Envelope;
use kasane_registry::keys::SecretKey;
use kasane_registry::metadata::Metadata;
use kasane_registry::metadata::root::RoleSpec;
use kasane_registry::metadata::snapshot::Snapshot;
use kasane_registry::metadata::ticket::{Ticket, TicketModule};
use kasane_registry::simulator::{FakeClock, RepositorySimulator};
use kasane_registry::trust::{AdmittedModule, Fetcher, TrustStore};
use kasane_registry::{RegistryError, Result, Sha256Hash};
use tempfile::TempDir;

/// Module A: published first-party as `sha256-chain`.
pub(crate) const MOD_A: &[u8] = b"\0asm\x01\0\0\0module-a: pretend transform bytes";
/// Module B: same length as A, different bytes.
pub(crate) const MOD_B: &[u8] = b"\0asm\x01\0\0\0module-b: pretend transform bytes";
/// The name module A is published under.
pub(crate) const NAME_A: &str = "sha256-chain";

/// A client nonce.
pub(crate) fn nonce(n: u8) -> [u8; 32] {
    [n; 32]
}

/// A registry, and a client that has updated once.
pub(crate) struct World {
    pub(crate) sim: RepositorySimulator,
    pub(crate) dir: TempDir,
    pub(crate) client: TrustStore<FakeClock>,
}

/// A simulated registry with module A published and a client that has updated.
pub(crate) fn world() -> World {
    let mut sim = RepositorySimulator::new();
    sim.publish(NAME_A, MOD_A).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut client = sim.client(dir.path()).unwrap();
    client.update(&sim).unwrap();
    World { sim, dir, client }
}

impl World {
    /// Updates the client from the simulator (with any overrides it serves).
    pub(crate) fn update(&mut self) -> Result<()> {
        self.client.update(&self.sim)
    }

    /// A legitimate ticket for `nonce` naming `name`.
    pub(crate) fn ticket(&self, nonce: [u8; 32], name: &str) -> Vec<u8> {
        self.sim.ticket(nonce, name).unwrap()
    }

    /// Admits `bytes` with a ticket.
    pub(crate) fn admit<'a>(
        &self,
        ticket: &[u8],
        nonce: [u8; 32],
        bytes: &'a [u8],
    ) -> Result<AdmittedModule<'a>> {
        self.client.admit(ticket, &nonce, bytes)
    }

    /// A second client, pinned to root 1, not yet updated.
    pub(crate) fn fresh_client(&self) -> (TempDir, TrustStore<FakeClock>) {
        let dir = tempfile::tempdir().unwrap();
        let c = self.sim.client(dir.path()).unwrap();
        (dir, c)
    }
}

/// Secret keys as the slice of references the library takes.
pub(crate) fn refs(keys: &[SecretKey]) -> Vec<&SecretKey> {
    keys.iter().collect()
}

/// The snapshot the simulator currently serves (overrides included).
pub(crate) fn served_snapshot(sim: &RepositorySimulator) -> (Snapshot, Vec<u8>) {
    let bytes = sim.fetch("snapshot.json", u64::MAX).unwrap().unwrap();
    let (s, _) = kasane_registry::metadata::parse_unverified::<Snapshot>(&bytes, "s").unwrap();
    (s, bytes)
}

/// The attacker (holding the online key) signs and serves a snapshot derived from the
/// current one: version + 1, fresh expiry, then `edit`.
pub(crate) fn forge_snapshot(
    sim: &mut RepositorySimulator,
    edit: impl FnOnce(&mut Snapshot),
) -> Vec<u8> {
    let (mut s, _) = served_snapshot(sim);
    s.version += 1;
    s.expires = sim.now() + 7 * 86_400;
    edit(&mut s);
    let bytes = s.sign_to_bytes(&refs(&sim.keys.snapshot));
    sim.serve("snapshot.json", bytes.clone());
    bytes
}

/// A ticket signed with the current snapshot keys, naming any module the caller likes,
/// bound to the snapshot currently served.
pub(crate) fn forge_ticket(
    sim: &RepositorySimulator,
    nonce: [u8; 32],
    name: &str,
    sha256: Sha256Hash,
    length: u64,
) -> Vec<u8> {
    let (s, bytes) = served_snapshot(sim);
    Ticket {
        client_nonce: Sha256Hash(nonce),
        snapshot_version: s.version,
        snapshot_sha256: Sha256Hash::of(&bytes),
        module: TicketModule {
            name: name.to_owned(),
            sha256,
            length,
        },
        issued_at: sim.now(),
        expires: sim.now() + 60,
    }
    .sign(&refs(&sim.keys.snapshot))
}

/// Gives the snapshot role `n` fresh keys with `threshold` (a root rotation), re-snapshots.
pub(crate) fn set_snapshot_keys(sim: &mut RepositorySimulator, n: usize, threshold: u32) {
    let keys: Vec<SecretKey> = (0..n).map(|_| sim.new_key()).collect();
    let mut next = sim.repo.next_root(sim.now(), &sim.life);
    for k in &keys {
        next.keys.insert(k.key_id(), k.public().into());
    }
    next.roles.snapshot = RoleSpec {
        keyids: keys.iter().map(SecretKey::key_id).collect(),
        threshold,
    };
    let signers = refs(&sim.keys.root);
    sim.repo.rotate_root(next, &signers).unwrap();
    sim.keys.snapshot = keys;
    sim.snapshot().unwrap();
}

/// Re-signs an envelope's payload with `keys` (same payload type).
pub(crate) fn resign(env_bytes: &[u8], keys: &[&SecretKey]) -> Vec<u8> {
    let env = Envelope::from_bytes(env_bytes, u64::MAX, "e").unwrap();
    Envelope::sign(&env.payload_type, env.payload, keys).to_bytes()
}

/// The error of a result that must fail.
pub(crate) fn err<T: std::fmt::Debug>(r: Result<T>) -> RegistryError {
    match r {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => e,
    }
}
