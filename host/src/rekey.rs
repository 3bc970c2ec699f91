//! `SIGHUP`'s part for the host's signing keys, so that rotating one needs no restart:
//! `keys/host.key` (start responses, audit checkpoints), `keys/ticket.pem` (tickets) and
//! `keys/online.pem` (timestamp and snapshot re-signed online) are read again. Each one that
//! loads and that the registry lists for its role replaces the one in use; one that does not
//! load, or that the registry does not list (clients would refuse what it signs), leaves the
//! one in use, and the reload says why — also when the file still holds the key in use and
//! the registry no longer lists it. Logins in flight go on: a start answered under the
//! old identity key is finished under the new one (the finish signs nothing).

use std::path::Path;
use std::sync::Arc;

use kasane_registry::RegistryError;
use kasane_registry::documents::HostKeys;
use kasane_registry::repo::Repository;
use kasane_registry::signing::{KeyFileSigner, PublicKey, Signer, tuf_key};

use crate::HostError;
use crate::error::KeyError;
use crate::host::Host;
use crate::keyfile::{IDENTITY_KEY_FILE, ONLINE_KEY_FILE, load_identity_key, read_signing_key};
use crate::registry::TICKET_KEY_FILE;

/// What reloading one key file did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyReload {
    /// The file holds the key in use.
    Same,
    /// The file's key, listed by the registry, is in use from now on.
    New,
    /// No such file, and none in use (the online key: this host does not re-sign).
    None,
}

/// What [`Host::reload_keys`] did, key by key: `Err` keeps the key in use.
#[derive(Debug)]
#[non_exhaustive]
pub struct KeysReloaded {
    /// `keys/host.key`.
    pub identity: Result<KeyReload, HostError>,
    /// `keys/ticket.pem`.
    pub ticket: Result<KeyReload, HostError>,
    /// `keys/online.pem`.
    pub online: Result<KeyReload, HostError>,
}

impl Host {
    /// Reads the three signing keys again (see the module documentation), checking each
    /// against the registry as now loaded.
    pub fn reload_keys(&self) -> KeysReloaded {
        let dir = &self.config.keys_dir;
        let Ok(repo) = self.registry.repository(self.now()) else {
            return KeysReloaded {
                identity: Err(HostError::KeysUnchecked),
                ticket: Err(HostError::KeysUnchecked),
                online: Err(HostError::KeysUnchecked),
            };
        };
        KeysReloaded {
            identity: self.reload_identity(&dir.join(IDENTITY_KEY_FILE), &repo),
            ticket: self.reload_ticket(&dir.join(TICKET_KEY_FILE), &repo),
            online: self.reload_online(&dir.join(ONLINE_KEY_FILE), &repo),
        }
    }

    fn reload_identity(&self, path: &Path, repo: &Repository) -> Result<KeyReload, HostError> {
        let key = read_signing_key(path)?;
        let public = key.verifying_key().to_bytes();
        identity_listed(&repo.host_keys()?, path, &public)?;
        if public == self.host_public_key() {
            return Ok(KeyReload::Same);
        }
        self.host_key.store(Arc::new(key));
        Ok(KeyReload::New)
    }

    fn reload_ticket(&self, path: &Path, repo: &Repository) -> Result<KeyReload, HostError> {
        let key = open_signer(path)?;
        ticket_listed(&repo.host_keys()?, path, key.public_key())?;
        if key.public_key() == self.registry.ticket_key().public_key() {
            return Ok(KeyReload::Same);
        }
        self.registry.set_ticket_key(Box::new(key));
        Ok(KeyReload::New)
    }

    fn reload_online(&self, path: &Path, repo: &Repository) -> Result<KeyReload, HostError> {
        let upkeep = self.registry.upkeep();
        let in_use = upkeep.online_key();
        if !path.exists() {
            return match in_use {
                // A file moved away by mistake must not stop the re-signing.
                Some(_) => Err(HostError::key(path, KeyError::Missing)),
                None => Ok(KeyReload::None),
            };
        }
        let key = open_signer(path)?;
        online_listed(repo, path, key.public_key())?;
        if in_use.is_some_and(|k| k.public_key() == key.public_key()) {
            return Ok(KeyReload::Same);
        }
        upkeep.set_online_key(Box::new(key));
        Ok(KeyReload::New)
    }
}

/// The public halves of the three signing keys, to check against the registry.
struct Publics<'a> {
    identity: [u8; 32],
    ticket: &'a PublicKey,
    /// `None`: no online key (the host does not re-sign).
    online: Option<&'a PublicKey>,
}

/// Checks that `repo` lists each signing key in `keys_dir` for its role, as a reload would
/// before taking it (`kasane-host check`). An absent `online.pem` is fine: that host does not
/// re-sign.
pub fn check_listed(repo: &Repository, keys_dir: &Path) -> Result<(), HostError> {
    let key = load_identity_key(keys_dir)?;
    let ticket = open_signer(&keys_dir.join(TICKET_KEY_FILE))?;
    let online_path = keys_dir.join(ONLINE_KEY_FILE);
    let online = online_path
        .exists()
        .then(|| open_signer(&online_path))
        .transpose()?;
    let publics = Publics {
        identity: key.verifying_key().to_bytes(),
        ticket: ticket.public_key(),
        online: online.as_ref().map(|k| k.public_key()),
    };
    check_publics(repo, keys_dir, &publics)
}

impl Host {
    /// Checks that the registry as now loaded lists each signing key in use for its role (a
    /// host about to serve logs what fails: clients would refuse what that key signs).
    pub fn check_keys_listed(&self) -> Result<(), HostError> {
        let repo = self.registry.repository(self.now())?;
        let ticket = self.registry.ticket_key();
        let online = self.registry.upkeep().online_key();
        let publics = Publics {
            identity: self.host_public_key(),
            ticket: ticket.public_key(),
            online: online.as_ref().map(|k| k.public_key()),
        };
        check_publics(&repo, &self.config.keys_dir, &publics)
    }
}

/// Each of `publics` listed for its role (the files in `keys_dir` named in the error).
fn check_publics(
    repo: &Repository,
    keys_dir: &Path,
    publics: &Publics<'_>,
) -> Result<(), HostError> {
    let listed = repo.host_keys()?;
    identity_listed(
        &listed,
        &keys_dir.join(IDENTITY_KEY_FILE),
        &publics.identity,
    )?;
    ticket_listed(&listed, &keys_dir.join(TICKET_KEY_FILE), publics.ticket)?;
    if let Some(online) = publics.online {
        online_listed(repo, &keys_dir.join(ONLINE_KEY_FILE), online)?;
    }
    Ok(())
}

/// `public` is one of `kasane/host-keys.json`'s identity keys (`path`: its file, for the error).
fn identity_listed(listed: &HostKeys, path: &Path, public: &[u8; 32]) -> Result<(), HostError> {
    if listed.identity_keys()?.contains(public) {
        Ok(())
    } else {
        Err(HostError::key(path, KeyError::NotListed("identity")))
    }
}

/// `public` is one of `kasane/host-keys.json`'s ticket keys.
fn ticket_listed(listed: &HostKeys, path: &Path, public: &PublicKey) -> Result<(), HostError> {
    if listed.tickets.contains(&tuf_key(public)) {
        Ok(())
    } else {
        Err(HostError::key(path, KeyError::NotListed("ticket")))
    }
}

/// `public` signs for both of root's online roles, timestamp and snapshot.
fn online_listed(repo: &Repository, path: &Path, public: &PublicKey) -> Result<(), HostError> {
    if crate::upkeep::lists_online_key(repo, public) {
        Ok(())
    } else {
        Err(HostError::key(path, KeyError::NotListed("online")))
    }
}

fn open_signer(path: &Path) -> Result<KeyFileSigner, HostError> {
    KeyFileSigner::open(path, None).map_err(|e| RegistryError::from(e).into())
}
