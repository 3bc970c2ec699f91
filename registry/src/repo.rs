//! The publisher's side: a [`Repository`] of signed files, and one method per CLI command
//! (`init`, `add`, `revoke`, `delegate`, `author-sign`, `rotate-root`, `snapshot`,
//! `sign-ticket`). Each method takes the secret keys of the role it re-signs, so offline keys
//! are only needed for the commands that change offline roles.
//!
//! Layout on disk (what clients fetch): `N.root.json` for every root version, `root.json` (a
//! copy of the latest), `targets.json`, `revocations.json`, `snapshot.json`,
//! `authors/<id>.json`. A snapshot never drops an entry it once listed (clients refuse a
//! snapshot that does, see [`crate::trust`]).

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{RegistryError, Result, RoleName};
use crate::hexfmt::Sha256Hash;
use crate::keys::{KeyId, PublicKey, SecretKey};
use crate::metadata::revocations::Revocations;
use crate::metadata::root::{RoleSpec, Roles, Root, SPEC_VERSION};
use crate::metadata::snapshot::{MetaInfo, Snapshot};
use crate::metadata::targets::{AuthorFile, Delegation, Profile, TargetEntry, Targets};
use crate::metadata::ticket::{Ticket, TicketModule};
use crate::metadata::{
    MAX_AUTHOR_LEN, MAX_MODULE_LEN, MAX_REVOCATIONS_LEN, MAX_ROOT_LEN, MAX_SNAPSHOT_LEN,
    MAX_TARGETS_LEN, Metadata, parse_unverified, validate_author_id, verify,
};
use crate::trust::{meta_path, root_path};

const DAY: u64 = 24 * 60 * 60;

/// `version + 1`, refusing to wrap.
fn next_version(version: u64) -> Result<u64> {
    version.checked_add(1).ok_or(RegistryError::Invalid {
        field: "version",
        reason: "no version after u64::MAX",
    })
}

/// How long each role's files stay valid after signing, seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lifetimes {
    /// `root` (default 365 days).
    pub root: u64,
    /// `targets` (default 90 days).
    pub targets: u64,
    /// `revocations` (default 30 days).
    pub revocations: u64,
    /// `snapshot` (default 7 days: the online key re-signs it often).
    pub snapshot: u64,
    /// Session tickets (default 120 s).
    pub ticket: u64,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            root: 365 * DAY,
            targets: 90 * DAY,
            revocations: 30 * DAY,
            snapshot: 7 * DAY,
            ticket: 120,
        }
    }
}

/// A role's public keys and threshold, to build a root.
#[derive(Clone, Debug)]
pub struct RoleSetup {
    /// The keys.
    pub keys: Vec<PublicKey>,
    /// Distinct keys needed.
    pub threshold: u32,
}

impl RoleSetup {
    /// One key, threshold 1 (development setups).
    pub fn single(key: &PublicKey) -> Self {
        Self {
            keys: vec![*key],
            threshold: 1,
        }
    }
}

/// Every role's keys, to build a root.
#[derive(Clone, Debug)]
pub struct RootSetup {
    /// Root keys (offline).
    pub root: RoleSetup,
    /// Targets keys (offline).
    pub targets: RoleSetup,
    /// Snapshot and ticket keys (online).
    pub snapshot: RoleSetup,
    /// Revocations keys.
    pub revocations: RoleSetup,
    /// Host identity keys.
    pub host: RoleSetup,
}

impl RootSetup {
    /// The root payload with these roles (checked).
    pub fn to_root(&self, version: u64, expires: u64) -> Result<Root> {
        let mut keys = BTreeMap::new();
        let mut spec = |r: &RoleSetup| RoleSpec {
            keyids: r
                .keys
                .iter()
                .map(|k| {
                    keys.insert(k.key_id(), (*k).into());
                    k.key_id()
                })
                .collect(),
            threshold: r.threshold,
        };
        let roles = Roles {
            root: spec(&self.root),
            targets: spec(&self.targets),
            snapshot: spec(&self.snapshot),
            revocations: spec(&self.revocations),
            host: spec(&self.host),
        };
        let root = Root {
            spec_version: SPEC_VERSION,
            version,
            expires,
            keys,
            roles,
        };
        root.validate()?;
        Ok(root)
    }
}

/// A target entry for `module`: its hash and length, with the given limits.
pub fn target_entry(
    name: &str,
    module: &[u8],
    profile: Profile,
    fuel: u64,
    memory: u64,
    params: Vec<u8>,
    rollout_weight: u32,
) -> Result<TargetEntry> {
    crate::json::check_len(module.len(), MAX_MODULE_LEN, "module")?;
    let e = TargetEntry {
        name: name.to_owned(),
        version: 1,
        sha256: Sha256Hash::of(module),
        length: module.len() as u64,
        profile,
        fuel,
        memory,
        params,
        rollout_weight,
    };
    e.validate()?;
    Ok(e)
}

/// A signed file and its parsed payload.
#[derive(Clone, Debug)]
struct Signed<M> {
    meta: M,
    bytes: Vec<u8>,
}

impl<M: Metadata> Signed<M> {
    fn sign(meta: M, keys: &[&SecretKey]) -> Result<Self> {
        meta.validate()?;
        let bytes = meta.sign_to_bytes(keys);
        Ok(Self { meta, bytes })
    }
}

/// A repository: every signed file, in memory. See the module documentation.
#[derive(Clone, Debug)]
pub struct Repository {
    roots: Vec<Signed<Root>>,
    targets: Signed<Targets>,
    revocations: Signed<Revocations>,
    authors: BTreeMap<String, Signed<AuthorFile>>,
    snapshot: Signed<Snapshot>,
}

/// The secret keys `init` signs the first files with.
#[derive(Clone, Copy, Debug)]
pub struct InitSigners<'a> {
    /// Root keys (at least the root threshold).
    pub root: &'a [&'a SecretKey],
    /// Targets keys.
    pub targets: &'a [&'a SecretKey],
    /// Revocations keys.
    pub revocations: &'a [&'a SecretKey],
    /// Snapshot keys.
    pub snapshot: &'a [&'a SecretKey],
}

impl Repository {
    /// A new repository: root version 1, empty targets and revocations, a snapshot.
    pub fn init(
        setup: &RootSetup,
        signers: InitSigners<'_>,
        now: u64,
        life: &Lifetimes,
    ) -> Result<Self> {
        let root = setup.to_root(1, now.saturating_add(life.root))?;
        let root = Signed::sign(root, signers.root)?;
        // Check the new root verifies with its own keys before anything depends on it.
        Root::verify_self_signed(&root.bytes)?;
        let targets = Signed::sign(
            Targets {
                version: 1,
                expires: now.saturating_add(life.targets),
                targets: Vec::new(),
                delegations: Vec::new(),
            },
            signers.targets,
        )?;
        let revocations = Signed::sign(
            Revocations {
                version: 1,
                expires: now.saturating_add(life.revocations),
                ..Revocations::default()
            },
            signers.revocations,
        )?;
        let mut repo = Self {
            roots: vec![root],
            targets,
            revocations,
            authors: BTreeMap::new(),
            snapshot: Signed {
                meta: Snapshot {
                    version: 0,
                    expires: 0,
                    meta: BTreeMap::new(),
                },
                bytes: Vec::new(),
            },
        };
        repo.snapshot(signers.snapshot, now, life)?;
        repo.check_signed()?;
        Ok(repo)
    }

    /// The latest root.
    pub fn root(&self) -> &Root {
        // `roots` is never empty: init and load both put root 1 in it.
        &self.roots[self.roots.len() - 1].meta
    }

    /// The latest root file's bytes.
    pub fn root_bytes(&self) -> &[u8] {
        &self.roots[self.roots.len() - 1].bytes
    }

    /// The targets payload.
    pub fn targets(&self) -> &Targets {
        &self.targets.meta
    }

    /// The revocations payload.
    pub fn revocations(&self) -> &Revocations {
        &self.revocations.meta
    }

    /// The snapshot payload and the snapshot file's hash.
    pub fn snapshot_info(&self) -> (&Snapshot, Sha256Hash) {
        (&self.snapshot.meta, Sha256Hash::of(&self.snapshot.bytes))
    }

    /// The author files, by id.
    pub fn author(&self, id: &str) -> Option<&AuthorFile> {
        self.authors.get(id).map(|s| &s.meta)
    }

    /// Every file as clients fetch it: path → bytes.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        for r in &self.roots {
            out.insert(root_path(r.meta.version), r.bytes.clone());
        }
        out.insert("root.json".into(), self.root_bytes().to_vec());
        out.insert(meta_path("targets"), self.targets.bytes.clone());
        out.insert(meta_path("revocations"), self.revocations.bytes.clone());
        out.insert(meta_path("snapshot"), self.snapshot.bytes.clone());
        for (id, a) in &self.authors {
            out.insert(meta_path(&format!("authors/{id}")), a.bytes.clone());
        }
        out
    }

    /// Writes every file under `dir` (each atomically, mode 0644).
    pub fn save(&self, dir: &Path) -> Result<()> {
        crate::files::create_private_dir(&dir.join("authors"))?;
        for (path, bytes) in self.files() {
            crate::files::write_public(&dir.join(path), &bytes)?;
        }
        Ok(())
    }

    /// Loads a repository written by [`Repository::save`], checking every signature.
    pub fn load(dir: &Path) -> Result<Self> {
        let read = |path: &str, max: u64| crate::files::read_capped(&dir.join(path), max, path);
        let first = read(&root_path(1), MAX_ROOT_LEN)?;
        let mut roots = vec![Signed {
            meta: Root::verify_self_signed(&first)?,
            bytes: first,
        }];
        loop {
            let v = next_version(roots[roots.len() - 1].meta.version)?;
            let p = dir.join(root_path(v));
            if !p.exists() {
                break;
            }
            let bytes = read(&root_path(v), MAX_ROOT_LEN)?;
            let meta = roots[roots.len() - 1].meta.verify_successor(&bytes)?;
            roots.push(Signed { meta, bytes });
        }
        let parse = |path: &str, max: u64| -> Result<Vec<u8>> { read(&meta_path(path), max) };
        let tb = parse("targets", MAX_TARGETS_LEN)?;
        let rb = parse("revocations", MAX_REVOCATIONS_LEN)?;
        let sb = parse("snapshot", MAX_SNAPSHOT_LEN)?;
        let mut authors = BTreeMap::new();
        let (snap, _) = parse_unverified::<Snapshot>(&sb, "snapshot")?;
        // Every author file on disk: those the snapshot lists, and those accepted since the
        // last snapshot (`author-sign` then `snapshot` may be two runs of the CLI).
        let mut ids: Vec<String> = snap
            .meta
            .keys()
            .filter_map(|n| n.strip_prefix("authors/").map(str::to_owned))
            .collect();
        let authors_dir = dir.join("authors");
        if let Ok(entries) = std::fs::read_dir(&authors_dir) {
            for entry in entries {
                let entry = entry.map_err(|e| RegistryError::io(&authors_dir, e))?;
                let file_name = entry.file_name();
                // Temporary files of an interrupted atomic write start with a dot.
                if let Some(id) = file_name.to_str().and_then(|n| n.strip_suffix(".json"))
                    && !id.starts_with('.')
                    && !ids.iter().any(|x| x == id)
                {
                    ids.push(id.to_owned());
                }
            }
        }
        for id in ids {
            validate_author_id(&id)?;
            let name = format!("authors/{id}");
            let ab = parse(&name, MAX_AUTHOR_LEN)?;
            let (meta, _) = parse_unverified::<AuthorFile>(&ab, &name)?;
            if meta.author != id {
                return Err(RegistryError::Invalid {
                    field: "author",
                    reason: "author file names another author",
                });
            }
            authors.insert(id, Signed { meta, bytes: ab });
        }
        let repo = Self {
            roots,
            targets: Signed {
                meta: parse_unverified(&tb, "targets")?.0,
                bytes: tb,
            },
            revocations: Signed {
                meta: parse_unverified(&rb, "revocations")?.0,
                bytes: rb,
            },
            authors,
            snapshot: Signed {
                meta: snap,
                bytes: sb,
            },
        };
        repo.check_signed()?;
        Ok(repo)
    }

    /// Checks every top-level file against the latest root's keys, and every author file
    /// against its delegation.
    fn check_signed(&self) -> Result<()> {
        let root = self.root();
        verify::<Targets>(&self.targets.bytes, &root.role_keys(RoleName::Targets)?)?;
        verify::<Revocations>(
            &self.revocations.bytes,
            &root.role_keys(RoleName::Revocations)?,
        )?;
        verify::<Snapshot>(&self.snapshot.bytes, &root.role_keys(RoleName::Snapshot)?)?;
        for (id, a) in &self.authors {
            if let Some(d) = self.find_delegation(id) {
                verify::<AuthorFile>(&a.bytes, &d.role_keys()?)?;
            }
        }
        Ok(())
    }

    /// The delegation naming author `id`, in targets or in any author file.
    pub fn find_delegation(&self, id: &str) -> Option<&Delegation> {
        self.targets
            .meta
            .delegations
            .iter()
            .chain(
                self.authors
                    .values()
                    .flat_map(|a| a.meta.delegations.iter()),
            )
            .find(|d| d.author == id)
    }

    fn edit_targets(
        &mut self,
        keys: &[&SecretKey],
        now: u64,
        life: &Lifetimes,
        f: impl FnOnce(&mut Targets) -> Result<()>,
    ) -> Result<()> {
        let mut t = self.targets.meta.clone();
        f(&mut t)?;
        t.version = next_version(t.version)?;
        t.expires = now.saturating_add(life.targets);
        let signed = Signed::sign(t, keys)?;
        verify::<Targets>(&signed.bytes, &self.root().role_keys(RoleName::Targets)?)?;
        self.targets = signed;
        Ok(())
    }

    /// `add`: publishes (or replaces) a first-party module entry. Run [`Repository::snapshot`]
    /// afterwards.
    pub fn add_target(
        &mut self,
        entry: TargetEntry,
        targets_keys: &[&SecretKey],
        now: u64,
        life: &Lifetimes,
    ) -> Result<()> {
        entry.validate()?;
        self.edit_targets(targets_keys, now, life, |t| {
            t.targets.retain(|e| e.name != entry.name);
            t.targets.push(entry);
            Ok(())
        })
    }

    /// Removes a first-party module entry (to stop offering it; [`Repository::revoke_hash`]
    /// also stops clients that cached it).
    pub fn remove_target(
        &mut self,
        name: &str,
        targets_keys: &[&SecretKey],
        now: u64,
        life: &Lifetimes,
    ) -> Result<()> {
        self.edit_targets(targets_keys, now, life, |t| {
            let before = t.targets.len();
            t.targets.retain(|e| e.name != name);
            if t.targets.len() == before {
                return Err(RegistryError::NotListed {
                    name: name.to_owned(),
                });
            }
            Ok(())
        })
    }

    /// `delegate`: delegates `prefix` to an author's keys (replacing an earlier delegation to
    /// the same author).
    pub fn delegate(
        &mut self,
        delegation: Delegation,
        targets_keys: &[&SecretKey],
        now: u64,
        life: &Lifetimes,
    ) -> Result<()> {
        delegation.validate()?;
        self.edit_targets(targets_keys, now, life, |t| {
            t.delegations.retain(|d| d.author != delegation.author);
            t.delegations.push(delegation);
            Ok(())
        })
    }

    /// Accepts an author's signed `authors/<id>` file (from [`author_sign`]): checks its
    /// delegation, signatures, prefix and that its version increases.
    pub fn put_author_file(&mut self, bytes: Vec<u8>) -> Result<()> {
        let (unverified, _) = parse_unverified::<AuthorFile>(&bytes, "author file")?;
        let d =
            self.find_delegation(&unverified.author)
                .ok_or_else(|| RegistryError::NotListed {
                    name: format!("authors/{}", unverified.author),
                })?;
        let keys = d
            .role_keys()?
            .without(&self.revocations.meta.revoked_keys());
        let meta: AuthorFile = verify(&bytes, &keys)?;
        meta.check_within(&d.prefix)?;
        if let Some(old) = self.authors.get(&meta.author)
            && meta.version <= old.meta.version
        {
            return Err(RegistryError::Rollback {
                role: RoleName::Author(meta.author.clone()),
                trusted: old.meta.version,
                got: meta.version,
            });
        }
        self.authors
            .insert(meta.author.clone(), Signed { meta, bytes });
        Ok(())
    }

    fn edit_revocations(
        &mut self,
        keys: &[&SecretKey],
        now: u64,
        life: &Lifetimes,
        f: impl FnOnce(&mut Revocations),
    ) -> Result<()> {
        let mut r = self.revocations.meta.clone();
        f(&mut r);
        r.version = next_version(r.version)?;
        r.expires = now.saturating_add(life.revocations);
        let signed = Signed::sign(r, keys)?;
        verify::<Revocations>(
            &signed.bytes,
            &self.root().role_keys(RoleName::Revocations)?,
        )?;
        self.revocations = signed;
        Ok(())
    }

    /// `revoke`: revokes a module hash.
    pub fn revoke_hash(
        &mut self,
        hash: Sha256Hash,
        revocations_keys: &[&SecretKey],
        now: u64,
        life: &Lifetimes,
    ) -> Result<()> {
        self.edit_revocations(revocations_keys, now, life, |r| {
            if !r.hashes.contains(&hash) {
                r.hashes.push(hash);
            }
        })
    }

    /// `revoke --author-key`: revokes an author key.
    pub fn revoke_author_key(
        &mut self,
        key: KeyId,
        revocations_keys: &[&SecretKey],
        now: u64,
        life: &Lifetimes,
    ) -> Result<()> {
        self.edit_revocations(revocations_keys, now, life, |r| {
            if !r.author_keys.contains(&key) {
                r.author_keys.push(key);
            }
        })
    }

    /// Re-signs revocations unchanged with a new version and expiry (keeps it fresh).
    pub fn refresh_revocations(
        &mut self,
        revocations_keys: &[&SecretKey],
        now: u64,
        life: &Lifetimes,
    ) -> Result<()> {
        self.edit_revocations(revocations_keys, now, life, |_| {})
    }

    /// Re-signs targets unchanged with a new version and expiry (keeps it fresh).
    pub fn refresh_targets(
        &mut self,
        targets_keys: &[&SecretKey],
        now: u64,
        life: &Lifetimes,
    ) -> Result<()> {
        self.edit_targets(targets_keys, now, life, |_| Ok(()))
    }

    /// `snapshot`: a new snapshot naming the current version and hash of every file. Entries
    /// of earlier snapshots are kept (an author file stays listed once published).
    pub fn snapshot(
        &mut self,
        snapshot_keys: &[&SecretKey],
        now: u64,
        life: &Lifetimes,
    ) -> Result<()> {
        let mut meta = self.snapshot.meta.meta.clone();
        meta.insert(
            "targets".into(),
            MetaInfo::of(self.targets.meta.version, &self.targets.bytes),
        );
        meta.insert(
            "revocations".into(),
            MetaInfo::of(self.revocations.meta.version, &self.revocations.bytes),
        );
        for (id, a) in &self.authors {
            meta.insert(
                format!("authors/{id}"),
                MetaInfo::of(a.meta.version, &a.bytes),
            );
        }
        let s = Snapshot {
            version: next_version(self.snapshot.meta.version)?,
            expires: now.saturating_add(life.snapshot),
            meta,
        };
        let signed = Signed::sign(s, snapshot_keys)?;
        verify::<Snapshot>(&signed.bytes, &self.root().role_keys(RoleName::Snapshot)?)?;
        self.snapshot = signed;
        Ok(())
    }

    /// A template for the next root: the latest one with version + 1 and a new expiry. Edit
    /// its keys and roles, then pass it to [`Repository::rotate_root`].
    pub fn next_root(&self, now: u64, life: &Lifetimes) -> Root {
        let mut r = self.root().clone();
        r.version = r.version.saturating_add(1);
        r.expires = now.saturating_add(life.root);
        r
    }

    /// `rotate-root`: signs `next` with `signers` (which must include a threshold of the
    /// current root keys AND of `next`'s root keys) and appends it to the chain.
    pub fn rotate_root(&mut self, next: Root, signers: &[&SecretKey]) -> Result<()> {
        next.validate()?;
        let bytes = next.sign_to_bytes(signers);
        self.push_root(bytes)
    }

    /// Appends a root file signed elsewhere (e.g. by key holders one at a time with
    /// [`crate::envelope::Envelope::add_signature`]), checking the rotation rule.
    pub fn push_root(&mut self, bytes: Vec<u8>) -> Result<()> {
        let meta = self.root().verify_successor(&bytes)?;
        self.roots.push(Signed { meta, bytes });
        Ok(())
    }

    /// The entry a client would resolve for `name` (first-party first, then author files).
    pub fn find_entry(&self, name: &str) -> Option<&TargetEntry> {
        self.targets
            .meta
            .targets
            .iter()
            .chain(self.authors.values().flat_map(|a| a.meta.targets.iter()))
            .find(|e| e.name == name)
    }

    /// `sign-ticket`: a session ticket for `client_nonce` naming module `name`, bound to the
    /// current snapshot.
    pub fn sign_ticket(
        &self,
        client_nonce: [u8; 32],
        name: &str,
        snapshot_keys: &[&SecretKey],
        now: u64,
        life: &Lifetimes,
    ) -> Result<Vec<u8>> {
        let e = self
            .find_entry(name)
            .ok_or_else(|| RegistryError::NotListed {
                name: name.to_owned(),
            })?;
        let t = Ticket {
            client_nonce: Sha256Hash(client_nonce),
            snapshot_version: self.snapshot.meta.version,
            snapshot_sha256: Sha256Hash::of(&self.snapshot.bytes),
            module: TicketModule {
                name: e.name.clone(),
                sha256: e.sha256,
                length: e.length,
            },
            issued_at: now,
            expires: now.saturating_add(life.ticket),
        };
        t.validate()?;
        Ok(t.sign(snapshot_keys))
    }
}

/// Picks one module for a login, weighted by rollout weight, among `candidates` (e.g.
/// [`crate::trust::TrustStore::runnable`]) whose profile is in `profiles` (what the client
/// announced). `roll` is a uniformly random `u64` from the caller's RNG. `None` if no
/// candidate has a positive weight.
pub fn choose_weighted<'a>(
    candidates: &'a [(TargetEntry, Option<String>)],
    profiles: &[Profile],
    roll: u64,
) -> Option<&'a TargetEntry> {
    let eligible = || {
        candidates
            .iter()
            .map(|(e, _)| e)
            .filter(|e| e.rollout_weight > 0 && profiles.contains(&e.profile))
    };
    let total: u64 = eligible().map(|e| u64::from(e.rollout_weight)).sum();
    if total == 0 {
        return None;
    }
    // Modulo bias is at most total / 2^64 (total < 2^40): negligible for a rollout share.
    let mut point = roll % total;
    for e in eligible() {
        let w = u64::from(e.rollout_weight);
        if point < w {
            return Some(e);
        }
        point -= w;
    }
    None
}

/// The key files [`dev_init`] writes, one per role, in the keys directory.
pub const DEV_KEY_FILES: [&str; 5] = [
    "root.key",
    "targets.key",
    "snapshot.key",
    "revocations.key",
    "host.key",
];

/// `init` with development keys: one fresh key per role (threshold 1), written to `keys_dir`
/// as [`DEV_KEY_FILES`] (mode 0600), and a new repository saved in `repo_dir`. Not for real
/// deployments: see docs/REGISTRY.md for the key ceremony.
pub fn dev_init(
    repo_dir: &Path,
    keys_dir: &Path,
    now: u64,
    life: &Lifetimes,
) -> Result<Repository> {
    crate::files::create_private_dir(keys_dir)?;
    let keys: [SecretKey; 5] = std::array::from_fn(|_| SecretKey::generate());
    for (name, key) in DEV_KEY_FILES.iter().zip(&keys) {
        crate::keys::write_key_file(&keys_dir.join(name), key)?;
    }
    let [root, targets, snapshot, revocations, host] = &keys;
    let setup = RootSetup {
        root: RoleSetup::single(&root.public()),
        targets: RoleSetup::single(&targets.public()),
        snapshot: RoleSetup::single(&snapshot.public()),
        revocations: RoleSetup::single(&revocations.public()),
        host: RoleSetup::single(&host.public()),
    };
    let signers = InitSigners {
        root: &[root],
        targets: &[targets],
        revocations: &[revocations],
        snapshot: &[snapshot],
    };
    let repo = Repository::init(&setup, signers, now, life)?;
    repo.save(repo_dir)?;
    Ok(repo)
}

/// Adds one key holder's signature to a file signed elsewhere (a root that needs two offline
/// holders, an author file with an author threshold of 2): the payload is not changed.
pub fn cosign(file: &[u8], key: &SecretKey) -> Result<Vec<u8>> {
    let mut env = crate::envelope::Envelope::from_bytes(file, MAX_TARGETS_LEN * 2, "file")?;
    env.add_signature(key);
    Ok(env.to_bytes())
}

/// `author-sign`: an author signs its `authors/<id>` file with its own keys.
pub fn author_sign(file: &AuthorFile, author_keys: &[&SecretKey]) -> Result<Vec<u8>> {
    file.validate()?;
    Ok(file.sign_to_bytes(author_keys))
}

/// A delegation of `prefix` to author `id` with `keys` and `threshold`.
pub fn delegation(
    id: &str,
    prefix: &str,
    keys: &[PublicKey],
    threshold: u32,
) -> Result<Delegation> {
    let d = Delegation {
        author: id.to_owned(),
        prefix: prefix.to_owned(),
        keys: keys.iter().map(|k| (k.key_id(), (*k).into())).collect(),
        threshold,
    };
    d.validate()?;
    Ok(d)
}

/// `inspect`: the payload of any Kasane file, pretty-printed, with its payload type and the
/// key ids of its signatures. Checks no signature: for display only.
pub fn inspect(bytes: &[u8]) -> Result<String> {
    let env = crate::envelope::Envelope::from_bytes(bytes, MAX_TARGETS_LEN * 2, "file")?;
    crate::json::check_no_duplicate_keys(&env.payload)?;
    let v: serde_json::Value = serde_json::from_slice(&env.payload)?;
    let mut out = format!("payloadType: {}\nsignatures:\n", env.payload_type);
    for s in &env.signatures {
        out.push_str(&format!("  {}\n", s.keyid));
    }
    out.push_str(&serde_json::to_string_pretty(&v)?);
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_choice_follows_weights_and_profiles() {
        let e = |name: &str, profile, w| {
            let mut e = target_entry(name, name.as_bytes(), profile, 1, 1, vec![], w).unwrap();
            e.rollout_weight = w;
            (e, None)
        };
        let c = vec![
            e("a", Profile::Pure, 95),
            e("b", Profile::Pure, 5),
            e("w", Profile::Wasi, 1000),
            e("off", Profile::Pure, 0),
        ];
        let mut counts = BTreeMap::new();
        for roll in 0..100u64 {
            let got = choose_weighted(&c, &[Profile::Pure], roll).unwrap();
            *counts.entry(got.name.clone()).or_insert(0) += 1;
        }
        assert_eq!(counts.get("a"), Some(&95));
        assert_eq!(counts.get("b"), Some(&5));
        assert_eq!(counts.get("w"), None);
        assert!(choose_weighted(&c, &[], 7).is_none());
        assert_eq!(
            choose_weighted(&c, &[Profile::Wasi], u64::MAX)
                .unwrap()
                .name,
            "w"
        );
    }
}
