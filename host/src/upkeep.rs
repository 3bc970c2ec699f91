//! The registry's upkeep while a host serves, unattended: online re-signing, expiry
//! warnings, missing modules, and the registry's part of `/metrics`.
//!
//! - **Re-signing** (TUF's timestamp/snapshot practice): with the online key
//!   (`keys/online.pem`), the host re-signs timestamp and snapshot once less than half of
//!   their lifetime is left ([`resign_online_if_due`]), checked on every login and every
//!   housekeeping pass, under the repository's lock, so replicas sharing the directory
//!   never sign one version twice and a version never moves backwards.
//! - **Offline roles** (root, targets, revocations, authors) cannot be re-signed online:
//!   from [`WARN_BEFORE`] (or half the role's lifetime, if shorter: 15 days for the 30-day
//!   `revocations`) before one expires the host logs a warning once a day, an error
//!   once it has expired, and `/metrics` shows `kasane_registry_expiry_seconds{role}`
//!   (negative once expired); `/readyz` fails then, except for `authors` and an author's own
//!   role, whose lapse only withdraws the modules under it ([`SERVED_ROLES`]).
//! - **Missing modules**: a listed module whose file is missing is logged as an error at each
//!   load and counted in `kasane_registry_missing_modules`, never dropped silently.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use kasane_registry::repo::{Lifetimes, Repository, Resigned, online_due_at, resign_online_if_due};
use kasane_registry::signing::{PublicKey, Signer, TufSigner, tuf_key};

/// How long before an offline role expires the host starts warning: 30 days.
pub const WARN_BEFORE: u64 = 30 * 86_400;
/// After a failed or contended re-signing, the next try is this much later, seconds.
const RETRY_SECS: u64 = 60;
/// Roles re-signed online: never warned about (the host keeps them fresh).
const ONLINE_ROLES: [&str; 2] = ["timestamp", "snapshot"];

/// The roles every login's lookups pass through: one expired stops every login. Not
/// `authors`: a first-party module, `kasane/host-keys.json` and the revocation list are
/// found without it, so when it lapses only the authors' modules leave the offer (as when
/// one author's own role lapses), and a client's trust update still succeeds
/// (`host/tests/registry.rs`, `an_expired_authors_role_withdraws_every_author_and_the_host_stays_ready`).
const SERVED_ROLES: [&str; 5] = [
    "root",
    "timestamp",
    "snapshot",
    "targets",
    kasane_registry::layout::REVOCATIONS_ROLE,
];

/// What the last load saw, for `/metrics` and `/readyz`.
#[derive(Debug, Default)]
struct Seen {
    /// Each role's expiry (unix seconds).
    expiries: Vec<(String, u64)>,
    /// Names of listed modules whose file is missing.
    missing: Vec<String>,
    /// The versions of timestamp and snapshot.
    versions: (u64, u64),
}

/// The registry's upkeep state (one per [`HostRegistry`](crate::registry::HostRegistry)).
pub struct Upkeep {
    /// `keys/online.pem`, if this host re-signs; `SIGHUP` may replace it ([`crate::rekey`]).
    online: arc_swap::ArcSwapOption<Box<dyn Signer>>,
    life: Lifetimes,
    /// When to try re-signing next (unix seconds; 0: at the first chance).
    next_resign: AtomicU64,
    resigned: AtomicU64,
    resign_failed: AtomicU64,
    seen: Mutex<Seen>,
    /// The day (unix seconds / 86400) each role was last warned about.
    warned: Mutex<BTreeMap<String, u64>>,
}

impl std::fmt::Debug for Upkeep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upkeep")
            .field("online", &self.online.load().is_some())
            .finish_non_exhaustive()
    }
}

impl Default for Upkeep {
    fn default() -> Self {
        Self::new(None, Lifetimes::default())
    }
}

/// Why a due re-signing was not made: the online key is not the registry's.
pub const NOT_LISTED: &str = "keys/online.pem is not listed by the registry's root for timestamp and snapshot (rotated out?): not re-signing; put the current online key in place and send SIGHUP";

/// Whether `repo`'s root lists `key` for both online roles (timestamp and snapshot): what a
/// client checks of what that key signs.
#[must_use]
pub fn lists_online_key(repo: &Repository, key: &PublicKey) -> bool {
    let id = tuf_key(key).key_id();
    let root = repo.root();
    ["timestamp", "snapshot"].iter().all(|role| {
        root.roles
            .get(*role)
            .is_some_and(|r| r.keyids.contains(&id))
    })
}

impl Upkeep {
    /// Upkeep re-signing with `online` (none: this host never re-signs) for `life.snapshot`.
    #[must_use]
    pub fn new(online: Option<Box<dyn Signer>>, life: Lifetimes) -> Self {
        Self {
            online: arc_swap::ArcSwapOption::new(online.map(Arc::new)),
            life,
            next_resign: AtomicU64::new(0),
            resigned: AtomicU64::new(0),
            resign_failed: AtomicU64::new(0),
            seen: Mutex::new(Seen::default()),
            warned: Mutex::new(BTreeMap::new()),
        }
    }

    /// Re-signs timestamp and snapshot in `dir` if they are due at `now` (cheap when not:
    /// one comparison). True if new files were written.
    pub fn resign_if_due(&self, dir: &Path, now: u64) -> bool {
        let Some(online) = self.due_signer(now) else {
            return false;
        };
        let signer = TufSigner(online.as_ref().as_ref());
        // Checked before signing: with a key the root no longer lists (rotated out while the
        // host runs), re-signing would replace a valid timestamp with one no client accepts.
        let outcome = match Repository::load(dir) {
            Ok(repo) if !lists_online_key(&repo, online.public_key()) => Err(NOT_LISTED.to_owned()),
            Ok(_) => {
                resign_online_if_due(dir, &[&signer], now, &self.life).map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        self.record(now, outcome)
    }

    /// The online key if this host re-signs and a re-signing may be due at `now` (cheap:
    /// one comparison); the caller re-signs and reports with [`Upkeep::record`].
    #[must_use]
    pub fn due_signer(&self, now: u64) -> Option<Arc<Box<dyn Signer>>> {
        if now < self.next_resign.load(Ordering::Relaxed) {
            return None;
        }
        self.online.load_full()
    }

    /// The online key in use, if this host re-signs.
    pub(crate) fn online_key(&self) -> Option<Arc<Box<dyn Signer>>> {
        self.online.load_full()
    }

    /// Re-signs with `key` from now on (at the next chance: a re-signing held back after a
    /// failure is tried again).
    pub(crate) fn set_online_key(&self, key: Box<dyn Signer>) {
        self.online.store(Some(Arc::new(key)));
        self.next_resign.store(0, Ordering::Relaxed);
    }

    /// The lifetimes re-signed metadata gets.
    #[must_use]
    pub fn lifetimes(&self) -> &Lifetimes {
        &self.life
    }

    /// Counts and logs the outcome of a re-signing tried at `now`; after a failure or a busy
    /// lock the next try is [`RETRY_SECS`] later. True if new files were written.
    pub fn record<E: std::fmt::Display>(&self, now: u64, outcome: Result<Resigned, E>) -> bool {
        match outcome {
            Ok(Resigned::Done {
                timestamp,
                snapshot,
            }) => {
                self.resigned.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    timestamp,
                    snapshot,
                    "registry: re-signed timestamp and snapshot"
                );
                true
            }
            // Another writer re-signed: the next load sets the real due time from the files
            // (until then, at most one try per `RETRY_SECS`).
            Ok(Resigned::NotDue) => {
                self.retry_later(now);
                false
            }
            // Said, not only retried: a lock held for long (a `kasane-registry` command
            // waiting at a passphrase prompt) would otherwise hold re-signing back unseen.
            Ok(Resigned::Busy) => {
                tracing::info!(
                    retry_secs = RETRY_SECS,
                    "registry: re-signing due, but another writer holds the registry's lock; trying again later"
                );
                self.retry_later(now);
                false
            }
            Err(e) => {
                self.resign_failed.fetch_add(1, Ordering::Relaxed);
                tracing::error!(error = %e, "registry: re-signing timestamp and snapshot failed");
                self.retry_later(now);
                false
            }
        }
    }

    fn retry_later(&self, now: u64) {
        self.next_resign
            .store(now.saturating_add(RETRY_SECS), Ordering::Relaxed);
    }

    /// Records a freshly loaded repository: its expiries, versions and when its online
    /// roles are next due.
    pub fn loaded(&self, repo: &Repository) {
        self.next_resign
            .store(online_due_at(repo, self.life.snapshot), Ordering::Relaxed);
        if let Ok(mut s) = self.seen.lock() {
            s.expiries = repo.expiries();
            s.versions = repo.versions();
        }
    }

    /// Records the listed modules whose file is missing (each logged as an error).
    pub fn missing(&self, names: Vec<String>) {
        for name in &names {
            tracing::error!(
                module = %name,
                "registry: a listed module's file is missing; it is not offered"
            );
        }
        if let Ok(mut s) = self.seen.lock() {
            s.missing = names;
        }
    }

    /// The first role expired at `now` that every login needs, with its expiry. Neither
    /// `authors` nor an author's own role is one: when either lapses only the modules under
    /// it stop being offered (a lookup no longer reaches them), so it warns
    /// ([`Upkeep::warn_expiring`]) but never makes the host unready.
    #[must_use]
    pub fn expired(&self, now: u64) -> Option<(String, u64)> {
        let s = self.seen.lock().ok()?;
        s.expiries
            .iter()
            .filter(|(role, _)| SERVED_ROLES.contains(&role.as_str()))
            .find(|(_, e)| *e <= now)
            .cloned()
    }

    /// Logs, once a day per role, each offline role that expires within [`WARN_BEFORE`] (or
    /// half its lifetime, if shorter: [`warn_ahead`]) (a
    /// warning) or has expired (an error), naming the role and when.
    pub fn warn_expiring(&self, now: u64) {
        let expiries = match self.seen.lock() {
            Ok(s) => s.expiries.clone(),
            Err(_) => return,
        };
        let Ok(mut warned) = self.warned.lock() else {
            return;
        };
        let today = now / 86_400;
        for (role, at) in expiries {
            if ONLINE_ROLES.contains(&role.as_str()) && self.online.load().is_some() {
                continue;
            }
            let ahead = warn_ahead(&role, &self.life);
            if at > now.saturating_add(ahead) || warned.get(&role) == Some(&today) {
                continue;
            }
            let when = rfc3339(at);
            if at <= now {
                let effect = if SERVED_ROLES.contains(&role.as_str()) {
                    "clients refuse this registry"
                } else {
                    "the modules it lists are not offered"
                };
                tracing::error!(role = %role, expired = %when, seconds_ago = now - at,
                    "registry: {role} has expired; {effect} until it is re-signed (kasane-registry refresh --role {role})");
            } else {
                tracing::warn!(role = %role, expires = %when, seconds_left = at - now,
                    "registry: {role} expires soon; re-sign it (kasane-registry refresh --role {role})");
            }
            warned.insert(role, today);
        }
    }

    /// The registry's metrics as Prometheus text, at `now`.
    #[must_use]
    pub fn render(&self, now: u64) -> String {
        let mut s = String::new();
        let (expiries, missing, versions) = match self.seen.lock() {
            Ok(seen) => (seen.expiries.clone(), seen.missing.len(), seen.versions),
            Err(_) => return s,
        };
        let _ = writeln!(
            s,
            "# HELP kasane_registry_expiry_seconds Seconds until each registry role expires (negative: expired)."
        );
        let _ = writeln!(s, "# TYPE kasane_registry_expiry_seconds gauge");
        for (role, at) in expiries {
            let left = i128::from(at) - i128::from(now);
            let _ = writeln!(
                s,
                "kasane_registry_expiry_seconds{{role=\"{role}\"}} {left}"
            );
        }
        let _ = writeln!(
            s,
            "# HELP kasane_registry_missing_modules Listed modules whose file is missing."
        );
        let _ = writeln!(s, "# TYPE kasane_registry_missing_modules gauge");
        let _ = writeln!(s, "kasane_registry_missing_modules {missing}");
        let _ = writeln!(
            s,
            "# HELP kasane_registry_version Versions of the registry's online roles."
        );
        let _ = writeln!(s, "# TYPE kasane_registry_version gauge");
        let _ = writeln!(
            s,
            "kasane_registry_version{{role=\"timestamp\"}} {}",
            versions.0
        );
        let _ = writeln!(
            s,
            "kasane_registry_version{{role=\"snapshot\"}} {}",
            versions.1
        );
        let _ = writeln!(
            s,
            "# HELP kasane_registry_resigned_total Online re-signings by outcome."
        );
        let _ = writeln!(s, "# TYPE kasane_registry_resigned_total counter");
        for (o, n) in [("ok", &self.resigned), ("error", &self.resign_failed)] {
            let _ = writeln!(
                s,
                "kasane_registry_resigned_total{{outcome=\"{o}\"}} {}",
                n.load(Ordering::Relaxed)
            );
        }
        s
    }
}

/// How long before `role` expires the host warns: [`WARN_BEFORE`], or half the role's
/// lifetime if that is shorter (`revocations` lives 30 days: warning from the day it is
/// signed would be a warning nobody reads).
fn warn_ahead(role: &str, life: &Lifetimes) -> u64 {
    let lifetime = match role {
        "root" => life.root,
        "targets" => life.targets,
        "revocations" => life.revocations,
        "timestamp" | "snapshot" => life.snapshot,
        _ => life.authors,
    };
    WARN_BEFORE.min(lifetime / 2)
}

/// Unix seconds as RFC 3339 (UTC), for logs.
#[must_use]
pub fn rfc3339(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| format!("@{unix}"))
}
