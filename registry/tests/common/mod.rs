//! Shared helpers for the registry's integration tests: a simulated repository with one
//! published module and an updated client, and the attacker's tools (metadata and tickets
//! signed with stolen keys, served in place of the repository's files).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    dead_code,
    unreachable_pub,
    reason = "tests: a failure here is a test failure; not every test file uses every helper"
)]

use kasane_registry::repo::metadata_path;
use kasane_registry::simulator::{FakeClock, RepositorySimulator, refs};
use kasane_registry::ticket::{Ticket, TicketModule};
use kasane_registry::trust::{AdmittedModule, Fetcher, TrustStore};
use kasane_registry::{RegistryError, Result, Sha256Hash};
use kasane_tuf::TufError;
use kasane_tuf::metadata::{
    Ed25519Signer, MetaFile, Metadata, SignedRole, Signer, Snapshot, TargetFile, Targets, Timestamp,
};
use tempfile::TempDir;
use time::OffsetDateTime;

/// Module A: published first-party as `sha256-chain`.
pub const MOD_A: &[u8] = b"\0asm\x01\0\0\0module-a: pretend transform bytes";
/// Module B: same length as A, different bytes.
pub const MOD_B: &[u8] = b"\0asm\x01\0\0\0module-b: pretend transform bytes";
/// The name module A is published under.
pub const NAME_A: &str = "sha256-chain";
/// A day, seconds.
pub const DAY: u64 = 86_400;

/// A client nonce.
pub fn nonce(n: u8) -> [u8; 32] {
    [n; 32]
}

/// A registry, and a client that has updated once.
pub struct World {
    pub sim: RepositorySimulator,
    pub dir: TempDir,
    pub client: TrustStore<FakeClock>,
}

/// A simulated registry with module A published and a client that has updated.
pub fn world() -> World {
    let mut sim = RepositorySimulator::new();
    sim.publish(NAME_A, MOD_A).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut client = sim.client(dir.path()).unwrap();
    client.update(&sim).unwrap();
    World { sim, dir, client }
}

impl World {
    /// Updates the client from the simulator (with any overrides it serves).
    pub fn update(&mut self) -> Result<()> {
        self.client.update(&self.sim)
    }

    /// A legitimate ticket for `nonce` naming `name`.
    pub fn ticket(&self, nonce: [u8; 32], name: &str) -> Vec<u8> {
        self.sim.ticket(nonce, name).unwrap()
    }

    /// Admits `bytes` with a ticket (delegated roles fetched from the simulator).
    pub fn admit<'a>(
        &mut self,
        ticket: &[u8],
        nonce: [u8; 32],
        bytes: &'a [u8],
    ) -> Result<AdmittedModule<'a>> {
        self.client.admit(ticket, &nonce, bytes, &self.sim)
    }

    /// A second client, pinned to root 1, not yet updated.
    pub fn fresh_client(&self) -> (TempDir, TrustStore<FakeClock>) {
        let dir = tempfile::tempdir().unwrap();
        let c = self.sim.client(dir.path()).unwrap();
        (dir, c)
    }
}

/// `now + secs` as a TUF expiry.
pub fn expires_in(sim: &RepositorySimulator, secs: u64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp((sim.now() + secs) as i64).unwrap()
}

/// The file the simulator serves at `path` (overrides included).
pub fn served(sim: &RepositorySimulator, path: &str) -> Vec<u8> {
    sim.fetch(path, u64::MAX).unwrap().unwrap()
}

/// Parses a metadata file without verifying it.
pub fn parse<T: SignedRole>(bytes: &[u8]) -> Metadata<T> {
    Metadata::from_bytes(bytes).unwrap()
}

/// `signed`, signed by each of `keys`, as a file.
pub fn sign<T: SignedRole>(signed: T, keys: &[&dyn Signer]) -> Vec<u8> {
    let mut m = Metadata::new(signed);
    for k in keys {
        m.sign(*k).unwrap();
    }
    m.to_bytes().unwrap()
}

/// What a referring role lists for a file: version, length and SHA-256.
pub fn meta_of(version: u64, bytes: &[u8]) -> MetaFile {
    let mut m = MetaFile::new(version);
    m.length = Some(bytes.len() as u64);
    m.hashes = Some(TargetFile::from_data(bytes).hashes);
    m
}

/// The timestamp the simulator serves (overrides included).
pub fn served_timestamp(sim: &RepositorySimulator) -> Timestamp {
    parse::<Timestamp>(&served(sim, "metadata/timestamp.json")).signed
}

/// The snapshot the served timestamp names.
pub fn served_snapshot(sim: &RepositorySimulator) -> Snapshot {
    let v = served_timestamp(sim).snapshot_meta().unwrap().version;
    parse::<Snapshot>(&served(sim, &metadata_path("snapshot", Some(v)))).signed
}

/// The attacker (holding the online key) serves a timestamp naming snapshot `bytes` at
/// `version`: the served timestamp's version + 1, fresh expiry.
pub fn forge_timestamp(sim: &mut RepositorySimulator, version: u64, bytes: &[u8]) {
    let next = served_timestamp(sim).version + 1;
    forge_timestamp_at(sim, next, version, bytes);
}

/// [`forge_timestamp`] with the timestamp's own version chosen.
pub fn forge_timestamp_at(sim: &mut RepositorySimulator, ts: u64, version: u64, bytes: &[u8]) {
    let mut t = served_timestamp(sim);
    t.version = ts;
    t.expires = expires_in(sim, 7 * DAY);
    t.meta = [("snapshot.json".to_owned(), meta_of(version, bytes))].into();
    let file = sign(t, &refs(&sim.keys.online));
    sim.serve("metadata/timestamp.json", file);
}

/// Serves snapshot `bytes` (of `version`) and a timestamp naming it (online key).
pub fn serve_snapshot(sim: &mut RepositorySimulator, version: u64, bytes: Vec<u8>) {
    sim.serve(&metadata_path("snapshot", Some(version)), bytes.clone());
    forge_timestamp(sim, version, &bytes);
}

/// The attacker (holding the online key) serves a snapshot derived from the served one
/// (version + 1, fresh expiry, then `edit`) and a timestamp naming it.
pub fn forge_snapshot(sim: &mut RepositorySimulator, edit: impl FnOnce(&mut Snapshot)) -> Vec<u8> {
    let mut s = served_snapshot(sim);
    s.version += 1;
    s.expires = expires_in(sim, 7 * DAY);
    edit(&mut s);
    let v = s.version;
    let bytes = sign(s, &refs(&sim.keys.online));
    serve_snapshot(sim, v, bytes.clone());
    bytes
}

/// Serves a signed targets-type file for `role` at its versioned path and returns the
/// snapshot entry naming it (`<role>.json`, meta).
pub fn serve_role(sim: &mut RepositorySimulator, role: &str, bytes: Vec<u8>) -> (String, MetaFile) {
    let v = parse::<Targets>(&bytes).signed.version;
    sim.serve(&metadata_path(role, Some(v)), bytes.clone());
    (format!("{role}.json"), meta_of(v, &bytes))
}

/// A ticket signed with the host's ticket key (stolen), naming any module the caller likes,
/// bound to the timestamp and snapshot versions currently served.
pub fn forge_ticket(
    sim: &RepositorySimulator,
    nonce: [u8; 32],
    name: &str,
    module: &[u8],
) -> Vec<u8> {
    let t = served_timestamp(sim);
    let versions = (t.version, t.snapshot_meta().unwrap().version);
    let m = TicketModule {
        name: name.to_owned(),
        sha256: Sha256Hash::of(module),
        length: module.len() as u64,
    };
    Ticket::new(nonce, versions, m, sim.now(), 60)
        .sign(&sim.keys.ticket)
        .unwrap()
}

/// Gives timestamp and snapshot `n` fresh keys with `threshold` (a root rotation), then
/// re-signs both.
pub fn set_online_keys(sim: &mut RepositorySimulator, n: usize, threshold: u64) {
    let keys: Vec<Ed25519Signer> = (0..n).map(|_| sim.new_key()).collect();
    let mut next = sim.repo.next_root(sim.now(), &sim.life).unwrap();
    for role in ["timestamp", "snapshot"] {
        next.roles.get_mut(role).unwrap().keyids.clear();
        for k in &keys {
            next.add_key(role, k.key()).unwrap();
        }
        next.roles.get_mut(role).unwrap().threshold = threshold;
    }
    let root = refs(&sim.keys.root);
    sim.repo.rotate_root(next, &root).unwrap();
    sim.keys.online = keys;
    sim.snapshot().unwrap();
}

/// The error of a result that must fail.
pub fn err<T: std::fmt::Debug>(r: Result<T>) -> RegistryError {
    match r {
        Ok(v) => panic!("expected a refusal, got {v:?}"),
        Err(e) => e,
    }
}

/// The TUF error inside a result that must fail with one.
pub fn tuf_err<T: std::fmt::Debug>(r: Result<T>) -> TufError {
    match err(r) {
        RegistryError::Tuf(e) => e,
        other => panic!("expected a TUF refusal, got {other:?}"),
    }
}
