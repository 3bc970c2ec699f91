//! Changes to a repository: each bumps the version of the role it changes and re-signs it;
//! [`Repository::snapshot`] then publishes them (new snapshot and timestamp).

use kasane_tuf::metadata::{
    Delegations, MetaFile, Metadata, Root, SignedRole, Signer, Snapshot, TargetFile, Targets,
};
use kasane_tuf::verify::verify_delegate;

use super::init::{Lifetimes, RoleSetup, delegated_role, sign_all};
use super::{Repository, expiry};
use crate::documents::HostKeys;
use crate::entry::{Profile, TargetEntry};
use crate::error::{RegistryError, Result};
use crate::hexfmt::Sha256Hash;
use crate::layout::{
    AUTHORS_ROLE, HOST_KEYS_PATH, REVOCATIONS_PATH, REVOCATIONS_ROLE, author_paths,
    validate_author_id,
};
use crate::ticket::{Ticket, TicketModule};

/// `version + 1`, refusing to wrap.
fn next_version(version: u64) -> Result<u64> {
    version.checked_add(1).ok_or(RegistryError::Invalid {
        field: "version",
        reason: "no version after u64::MAX",
    })
}

/// Bumps `m`'s version, sets its expiry `life` seconds from `now`, drops the old signatures.
fn bump<T: SignedRole>(
    m: &mut Metadata<T>,
    version: impl FnOnce(&mut T) -> &mut u64,
    expires: impl FnOnce(&mut T) -> &mut time::OffsetDateTime,
    at: u64,
) -> Result<()> {
    let v = version(&mut m.signed);
    *v = next_version(*v)?;
    *expires(&mut m.signed) = expiry(at)?;
    m.signatures.clear();
    Ok(())
}

fn bump_targets(m: &mut Metadata<Targets>, now: u64, life: u64) -> Result<()> {
    bump(
        m,
        |t| &mut t.version,
        |t| &mut t.expires,
        now.saturating_add(life),
    )
}

fn meta_of<T: SignedRole>(repo: &Repository, role: &str, m: &Metadata<T>) -> Result<MetaFile> {
    let bytes = repo.role_bytes(role, m)?;
    let mut meta = MetaFile::new(m.signed.version());
    meta.length = Some(bytes.len() as u64);
    let file = TargetFile::from_data(&bytes);
    meta.hashes = Some(file.hashes);
    Ok(meta)
}

impl Repository {
    /// The first snapshot and timestamp (version 1), for `init`.
    pub(super) fn snapshot_first(
        &mut self,
        online: &[&dyn Signer],
        now: u64,
        life: &Lifetimes,
    ) -> Result<()> {
        self.snapshot = Metadata::new(Snapshot::new(expiry(now.saturating_add(life.snapshot))?));
        self.timestamp.signed.version = 0;
        self.snapshot.signed.version = 0;
        self.snapshot(online, now, life)
    }

    /// `snapshot`: a new snapshot listing every targets role at its current version (with
    /// length and hashes), and a new timestamp naming it, signed by the online key(s).
    pub fn snapshot(&mut self, online: &[&dyn Signer], now: u64, life: &Lifetimes) -> Result<()> {
        let at = now.saturating_add(life.snapshot);
        let mut meta = std::collections::BTreeMap::new();
        meta.insert(
            "targets.json".to_owned(),
            meta_of(self, "targets", &self.targets)?,
        );
        for (role, m) in &self.delegated {
            meta.insert(format!("{role}.json"), meta_of(self, role, m)?);
        }
        self.snapshot.signed.meta = meta;
        bump(
            &mut self.snapshot,
            |s| &mut s.version,
            |s| &mut s.expires,
            at,
        )?;
        sign_all(&mut self.snapshot, online)?;
        let snap_meta = meta_of(self, "snapshot", &self.snapshot)?;
        self.timestamp.signed.meta = [("snapshot.json".to_owned(), snap_meta)].into();
        bump(
            &mut self.timestamp,
            |t| &mut t.version,
            |t| &mut t.expires,
            at,
        )?;
        sign_all(&mut self.timestamp, online)
    }

    /// `add`: lists (or replaces) a first-party transform in `targets`.
    pub fn add_target(
        &mut self,
        entry: &TargetEntry,
        targets: &[&dyn Signer],
        now: u64,
        life: &Lifetimes,
    ) -> Result<()> {
        entry.validate()?;
        let t = &mut self.targets;
        t.signed
            .targets
            .insert(entry.name.clone(), entry.to_target_file());
        bump_targets(t, now, life.targets)?;
        sign_all(t, targets)
    }

    /// Removes a first-party transform from `targets` ([`RegistryError::NotListed`] if absent).
    pub fn remove_target(
        &mut self,
        name: &str,
        targets: &[&dyn Signer],
        now: u64,
        life: &Lifetimes,
    ) -> Result<()> {
        let t = &mut self.targets;
        if t.signed.targets.remove(name).is_none() {
            return Err(RegistryError::NotListed {
                name: name.to_owned(),
            });
        }
        bump_targets(t, now, life.targets)?;
        sign_all(t, targets)
    }

    /// Replaces `kasane/host-keys.json` (signed through `targets`).
    pub fn set_host_keys(
        &mut self,
        host: &HostKeys,
        targets: &[&dyn Signer],
        now: u64,
        life: &Lifetimes,
    ) -> Result<()> {
        let bytes = host.to_bytes();
        let t = &mut self.targets;
        t.signed
            .targets
            .insert(HOST_KEYS_PATH.to_owned(), TargetFile::from_data(&bytes));
        bump_targets(t, now, life.targets)?;
        sign_all(t, targets)?;
        self.documents.insert(HOST_KEYS_PATH.to_owned(), bytes);
        Ok(())
    }

    /// `revoke`: adds `hash` to `kasane/revocations.json` (signed through `revocations`).
    /// Re-signing with nothing new (`hash` = `None`) extends the role's expiry.
    pub fn revoke_hash(
        &mut self,
        hash: Option<Sha256Hash>,
        revocations: &[&dyn Signer],
        now: u64,
        life: &Lifetimes,
    ) -> Result<()> {
        let mut list = self.revocations()?;
        if let Some(h) = hash {
            list.add(h);
        }
        let bytes = list.to_bytes();
        let role = self.delegated_mut(REVOCATIONS_ROLE)?;
        role.signed
            .targets
            .insert(REVOCATIONS_PATH.to_owned(), TargetFile::from_data(&bytes));
        bump_targets(role, now, life.revocations)?;
        sign_all(role, revocations)?;
        self.documents.insert(REVOCATIONS_PATH.to_owned(), bytes);
        Ok(())
    }

    /// `refresh`: re-signs a targets role (`targets`, `revocations`, `authors` or an
    /// author's role held by this operator) with the next version, a new expiry (its
    /// lifetime in `life`) and unchanged content, for the offline ceremony before it
    /// expires. [`Repository::snapshot`] then publishes it.
    pub fn refresh_role(
        &mut self,
        role: &str,
        signers: &[&dyn Signer],
        now: u64,
        life: &Lifetimes,
    ) -> Result<()> {
        let lifetime = match role {
            "targets" => life.targets,
            REVOCATIONS_ROLE => life.revocations,
            _ => life.authors,
        };
        let m = if role == "targets" {
            &mut self.targets
        } else {
            self.delegated_mut(role)?
        };
        bump_targets(m, now, lifetime)?;
        sign_all(m, signers)
    }

    fn delegated_mut(&mut self, role: &str) -> Result<&mut Metadata<Targets>> {
        self.delegated
            .get_mut(role)
            .ok_or_else(|| RegistryError::NotListed {
                name: role.to_owned(),
            })
    }

    /// `delegate` with the default weight cap
    /// ([`DEFAULT_MAX_WEIGHT`](crate::weights::DEFAULT_MAX_WEIGHT)): see
    /// [`Repository::delegate_capped`].
    pub fn delegate(
        &mut self,
        id: &str,
        keys: &RoleSetup,
        authors: &[&dyn Signer],
        now: u64,
        life: &Lifetimes,
    ) -> Result<()> {
        let cap = crate::weights::DEFAULT_MAX_WEIGHT;
        self.delegate_capped(id, keys, cap, authors, now, life)
    }

    /// `delegate`: gives author `id` the paths `<id>/*` (terminating) with `keys`, in the
    /// `authors` role, replacing any earlier delegation to `id`. `max_weight` caps the
    /// rollout weight of every module the author lists (`x-kasane-max-weight`, see
    /// [`crate::weights`]).
    pub fn delegate_capped(
        &mut self,
        id: &str,
        keys: &RoleSetup,
        max_weight: u32,
        authors: &[&dyn Signer],
        now: u64,
        life: &Lifetimes,
    ) -> Result<()> {
        validate_author_id(id)?;
        keys.check(id)?;
        let (mut role, role_keys) = delegated_role(id, keys, author_paths(id), true);
        crate::weights::set_delegation_cap(&mut role, max_weight);
        let m = self.delegated_mut(AUTHORS_ROLE)?;
        let d = m.signed.delegations.get_or_insert_with(|| Delegations {
            keys: Default::default(),
            roles: Vec::new(),
            unrecognized: Default::default(),
        });
        d.roles.retain(|r| r.name != id);
        // Checked before anything is added: a refused delegation leaves the role unchanged.
        if d.roles.len() >= crate::layout::MAX_AUTHORS {
            return Err(RegistryError::DelegationCap {
                max: crate::layout::MAX_AUTHORS,
            });
        }
        d.roles.push(role);
        for k in role_keys {
            d.keys.insert(k.key_id(), k);
        }
        prune_keys(d);
        bump_targets(m, now, life.authors)?;
        sign_all(m, authors)
    }

    /// Revokes author `id`: `authors` no longer delegates to it. Its role file stays listed
    /// in the snapshot (clients refuse a snapshot that drops a role), but no lookup reaches it.
    pub fn undelegate(
        &mut self,
        id: &str,
        authors: &[&dyn Signer],
        now: u64,
        life: &Lifetimes,
    ) -> Result<()> {
        let m = self.delegated_mut(AUTHORS_ROLE)?;
        let d = m.signed.delegations.as_mut();
        let before = d.as_ref().map_or(0, |d| d.roles.len());
        if let Some(d) = d {
            d.roles.retain(|r| r.name != id);
            prune_keys(d);
        }
        if m.signed.delegations.as_ref().map_or(0, |d| d.roles.len()) == before {
            return Err(RegistryError::NotListed {
                name: id.to_owned(),
            });
        }
        bump_targets(m, now, life.authors)?;
        sign_all(m, authors)
    }

    /// The role file author `id` would sign next: its current one with the version bumped
    /// and the expiry moved `life.authors` from `now`, or a new empty one. Empty too (with
    /// the version still bumped) when the current file is not signed by the keys `authors`
    /// now delegates to: an id revoked and delegated again to new keys starts over, and its
    /// new key never re-signs what was published under the old one (say, after that key was
    /// stolen).
    pub fn author_template(&self, id: &str, now: u64, life: &Lifetimes) -> Result<Targets> {
        validate_author_id(id)?;
        let at = expiry(now.saturating_add(life.authors))?;
        Ok(match self.delegated.get(id) {
            Some(m) => {
                let mut t = if self.vouched_author_role(id, m) {
                    m.signed.clone()
                } else {
                    Targets::new(at)
                };
                t.version = next_version(m.signed.version)?;
                t.expires = at;
                t
            }
            None => Targets::new(at),
        })
    }

    /// Whether author `id`'s role file `m` verifies under `authors`' current delegation.
    fn vouched_author_role(&self, id: &str, m: &Metadata<Targets>) -> bool {
        let Some(authors) = self.delegated(AUTHORS_ROLE) else {
            return false;
        };
        m.signed_bytes()
            .is_ok_and(|signed| verify_delegate(authors, id, &signed, &m.signatures).is_ok())
    }

    /// `author-sign` (publisher's half): accepts author `id`'s signed role file after
    /// checking it against the delegation in `authors` (threshold of the author's keys, a
    /// version above the current one, every target inside `<id>/*`, every target a transform).
    pub fn put_author_role(&mut self, id: &str, bytes: &[u8]) -> Result<()> {
        let authors = self
            .delegated(AUTHORS_ROLE)
            .ok_or_else(|| RegistryError::NotListed {
                name: AUTHORS_ROLE.to_owned(),
            })?;
        let (m, signed) = Metadata::<Targets>::from_bytes_with_signed(bytes)?;
        verify_delegate(authors, id, &signed, &m.signatures)?;
        if let Some(cur) = self.delegated(id)
            && m.signed.version <= cur.version
        {
            return Err(RegistryError::VersionNotIncreasing {
                role: id.to_owned(),
                current: cur.version,
                new: m.signed.version,
            });
        }
        let prefix = format!("{id}/");
        for (name, file) in &m.signed.targets {
            // `<id>/*` matches one path component (TUF's `fnmatch` per component): a deeper
            // name would be accepted here and never resolve for a client or the host.
            if !name.starts_with(&prefix) || name[prefix.len()..].contains('/') {
                return Err(RegistryError::DelegationPrefix {
                    author: id.to_owned(),
                    name: name.clone(),
                    prefix: prefix.clone(),
                });
            }
            TargetEntry::from_target(name, file)?;
        }
        // Its own bytes are what gets published (the author signed them elsewhere).
        self.loaded
            .insert((id.to_owned(), m.signed.version), bytes.to_vec());
        self.delegated.insert(id.to_owned(), m);
        Ok(())
    }

    /// The next root: the current one with the version bumped and a fresh expiry (edit its
    /// keys, then sign it with both the old and the new root thresholds).
    pub fn next_root(&self, now: u64, life: &Lifetimes) -> Result<Root> {
        let mut r = self.root.signed.clone();
        r.version = next_version(r.version)?;
        r.expires = expiry(now.saturating_add(life.root))?;
        Ok(r)
    }

    /// `rotate-root`: signs `next` with `signers` (a threshold of the old root keys and of
    /// the new ones) and appends it to the chain.
    pub fn rotate_root(&mut self, next: Root, signers: &[&dyn Signer]) -> Result<()> {
        let mut m = Metadata::new(next);
        sign_all(&mut m, signers)?;
        self.push_root(m.to_bytes()?)
    }

    /// Appends a root signed elsewhere (by offline holders), after checking that it is the
    /// next version and is signed by a threshold of the current root and of itself.
    pub fn push_root(&mut self, bytes: Vec<u8>) -> Result<()> {
        let (m, signed) = Metadata::<Root>::from_bytes_with_signed(&bytes)?;
        let cur = &self.root.signed;
        if m.signed.version != cur.version.saturating_add(1) {
            return Err(RegistryError::VersionNotIncreasing {
                role: "root".into(),
                current: cur.version,
                new: m.signed.version,
            });
        }
        verify_delegate(cur, "root", &signed, &m.signatures)?;
        verify_delegate(&m.signed, "root", &signed, &m.signatures)?;
        self.root = m;
        self.roots.push(bytes);
        Ok(())
    }

    /// `sign-ticket`: a session ticket for `client_nonce` naming `entry` (an active
    /// transform), bound to the current timestamp and snapshot versions.
    pub fn sign_ticket(
        &self,
        client_nonce: [u8; 32],
        entry: &TargetEntry,
        ticket_key: &dyn Signer,
        now: u64,
        life: &Lifetimes,
    ) -> Result<Vec<u8>> {
        let module = TicketModule {
            name: entry.name.clone(),
            sha256: entry.sha256,
            length: entry.length,
        };
        Ticket::new(client_nonce, self.versions(), module, now, life.ticket).sign(ticket_key)
    }
}

/// Drops delegation keys no role lists any more.
fn prune_keys(d: &mut Delegations) {
    let used: std::collections::BTreeSet<_> = d.roles.iter().flat_map(|r| &r.keyids).collect();
    d.keys.retain(|id, _| used.contains(id));
}

/// Adds one key holder's signature to a metadata file signed elsewhere (a root that needs
/// two offline holders, an author role with a threshold of 2): the payload is not changed.
pub fn cosign(file: &[u8], signer: &dyn Signer) -> Result<Vec<u8>> {
    let v: serde_json::Value = crate::json::from_slice_strict(file, super::init::MAX_FILE, "file")?;
    let kind = v
        .get("signed")
        .and_then(|s| s.get("_type"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    match kind {
        "root" => cosign_as::<Root>(file, signer),
        "targets" => cosign_as::<Targets>(file, signer),
        _ => Err(RegistryError::Invalid {
            field: "_type",
            reason: "only root and targets files are co-signed offline",
        }),
    }
}

fn cosign_as<T: SignedRole>(file: &[u8], signer: &dyn Signer) -> Result<Vec<u8>> {
    let mut m = Metadata::<T>::from_bytes(file)?;
    m.sign(signer)?;
    Ok(m.to_bytes()?)
}

/// Picks one module for a login, weighted by rollout weight, among `candidates` (e.g.
/// [`Repository::active`]) whose profile is in `profiles` (what the client announced).
/// `roll` is a uniformly random `u64` from the caller's RNG. `None` if no candidate has a
/// positive weight.
pub fn choose_weighted<'a>(
    candidates: &'a [(TargetEntry, String)],
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
