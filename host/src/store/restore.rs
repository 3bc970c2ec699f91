//! Putting a backup of a SQLite database in its place ([`restore_file`]): the backup copied
//! and checked, made safe to serve ([`Store::after_restore`]), and renamed over the database,
//! which is kept beside it; with what the backup takes back, user by user.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use sha2::{Digest as _, Sha256};

use super::{Restored, Result, SqliteStore, Store as _, StoreError, UnixSeconds};

/// What [`restore_file`] did, and what the backup took back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The sessions, logins in flight and counters [`Store::after_restore`](super::Store::after_restore) changed.
    pub restored: Restored,
    /// Where the database the backup replaced is now (`None`: there was none).
    pub replaced: Option<PathBuf>,
    /// Users the replaced database has and the backup has not (enrolled since the backup):
    /// gone now.
    pub gone: Vec<String>,
    /// Users the backup has and the replaced database has not (removed since the backup):
    /// back now, able to log in.
    pub back: Vec<String>,
    /// Users whose password or card differ (changed since the backup): the old ones work
    /// again.
    pub changed: Vec<String>,
}

/// Replaces the SQLite database `db` with a copy of `backup` (a file `kasane-host backup`
/// wrote), with no other connection open on `db` ([`StoreError::InUse`] otherwise: the host
/// must be stopped). The copy is checked ([`StoreError::NotADatabase`]), migrated, and made
/// safe to serve ([`Store::after_restore`](super::Store::after_restore)) beside `db` as
/// `<db>.restoring` (which must not exist) before anything is renamed; then `db` becomes
/// `<db>.replaced-<now>` and the copy `db`. A failure before the renames leaves `db` as it was.
pub async fn restore_file(db: &Path, backup: &Path, now: UnixSeconds) -> Result<RestoreReport> {
    let claim = Claim::take(db)?;
    let before = claim.as_ref().map(|c| credentials(&c.conn)).transpose()?;
    let copy = with_suffix(db, ".restoring");
    copy_private(backup, &copy)?;
    let prepared = prepare(&copy, backup).await;
    let (restored, after) = match prepared {
        Ok(done) => done,
        Err(e) => {
            for f in [
                copy.clone(),
                with_suffix(&copy, "-wal"),
                with_suffix(&copy, "-shm"),
            ] {
                let _ = std::fs::remove_file(f);
            }
            return Err(e);
        }
    };
    let replaced = match claim {
        Some(claim) => Some(claim.set_aside(db, now)?),
        None => None,
    };
    let io = |source| StoreError::RestoreFile {
        path: db.to_owned(),
        source,
    };
    std::fs::rename(&copy, db).map_err(io)?;
    kasane_os::fs::sync_parent(db).map_err(io)?;
    Ok(compare(restored, replaced, before, &after))
}

/// The report from the users' credentials before (the replaced database; `None`: there was
/// none, so nothing to compare) and after.
fn compare(
    restored: Restored,
    replaced: Option<PathBuf>,
    before: Option<Credentials>,
    after: &Credentials,
) -> RestoreReport {
    let mut report = RestoreReport {
        restored,
        replaced,
        gone: Vec::new(),
        back: Vec::new(),
        changed: Vec::new(),
    };
    let Some(before) = before else {
        return report;
    };
    for (name, digest) in &before {
        match after.get(name) {
            None => report.gone.push(name.clone()),
            Some(d) if d != digest => report.changed.push(name.clone()),
            Some(_) => {}
        }
    }
    let back = after.keys().filter(|n| !before.contains_key(*n));
    report.back.extend(back.cloned());
    report
}

/// Checks the copy, migrates it and ends what it must not serve; its users' credentials.
/// Leaves it in rollback-journal mode (no `-wal` file to carry into the rename).
async fn prepare(copy: &Path, backup: &Path) -> Result<(Restored, Credentials)> {
    check_database(copy, backup)?;
    let store = SqliteStore::open_file(copy).await?;
    let restored = store.after_restore().await;
    store.close().await;
    // Dropped, not only closed: a sqlx connection to the copy was seen to stay open (its
    // worker thread alive) after `close` for as long as the store lived.
    drop(store);
    let restored = restored?;
    let conn = open_existing(copy)?;
    // The copy is ours alone, but the store's connections may still be closing on their
    // threads (a close checkpoints, locking the file): the read waits for them, and leaving
    // WAL mode, which needs them gone and fails at once (no busy handler), is tried again
    // for a while.
    conn.busy_timeout(Duration::from_secs(10))?;
    let after = credentials(&conn)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match leave_wal(&conn) {
            Err(StoreError::Sqlite(e))
                if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            done => break done?,
        }
    }
    Ok((restored, after))
}

/// A SQLite file that passes `PRAGMA quick_check` and holds the host's tables.
fn check_database(copy: &Path, backup: &Path) -> Result<()> {
    let refuse = |reason: String| StoreError::NotADatabase {
        path: backup.to_owned(),
        reason,
    };
    let conn = open_existing(copy)?;
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .map_err(|e| refuse(e.to_string()))?;
    if check != "ok" {
        return Err(refuse(format!("quick_check: {check}")));
    }
    let tables: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' \
             AND name IN ('users', 'sessions', '_sqlx_migrations')",
            [],
            |r| r.get(0),
        )
        .map_err(|e| refuse(e.to_string()))?;
    if tables != 3 {
        return Err(refuse("not a Kasane host's database".into()));
    }
    Ok(())
}

/// Takes the database out of WAL mode: its `-wal` checkpointed into it and removed, so that
/// the file alone is the whole database and can be renamed. [`StoreError::OutOfRange`] if
/// SQLite keeps another mode.
fn leave_wal(conn: &Connection) -> Result<()> {
    let mode: String = conn.query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(StoreError::OutOfRange {
            what: "journal mode (the database stayed in WAL mode)",
        });
    }
    Ok(())
}

/// An existing database file, read-write, not waiting for locks (until told otherwise).
fn open_existing(path: &Path) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE)?;
    conn.busy_timeout(Duration::ZERO)?;
    Ok(conn)
}

/// The database file, held exclusively: no other connection (a serving host's) can open it
/// while this lives, and none was open when it was taken.
struct Claim {
    conn: Connection,
}

impl Claim {
    /// `None` if `db` does not exist; [`StoreError::InUse`] if another connection has it open.
    fn take(db: &Path) -> Result<Option<Self>> {
        if !db.exists() {
            return Ok(None);
        }
        let conn = open_existing(db)?;
        // A connection that is closing lets go within moments; a serving host's never do.
        conn.busy_timeout(Duration::from_secs(2))?;
        conn.pragma_update(None, "locking_mode", "EXCLUSIVE")?;
        // In WAL mode every open connection holds a shared lock: the exclusive one is
        // refused while the host (or any other process) has the database open.
        conn.execute_batch("BEGIN EXCLUSIVE; COMMIT;")
            .map_err(|e| match e.sqlite_error_code() {
                Some(rusqlite::ErrorCode::DatabaseBusy) => StoreError::InUse {
                    path: db.to_owned(),
                },
                _ => e.into(),
            })?;
        Ok(Some(Self { conn }))
    }

    /// Renames the database to `<db>.replaced-<now>`, out of WAL mode first (its `-wal`
    /// checkpointed into it and removed), then lets it go.
    fn set_aside(self, db: &Path, now: UnixSeconds) -> Result<PathBuf> {
        leave_wal(&self.conn)?;
        let aside = with_suffix(db, &format!(".replaced-{now}"));
        // A link, then the old name gone: a rename would replace an existing `aside`.
        let moved = std::fs::hard_link(db, &aside).and_then(|()| std::fs::remove_file(db));
        moved.map_err(|source| StoreError::RestoreFile {
            path: aside.clone(),
            source,
        })?;
        drop(self.conn);
        // Out of WAL mode, the database has no `-wal` left; its `-shm` (which SQLite may
        // keep) belongs to no database now.
        let shm = with_suffix(db, "-shm");
        if shm.exists() {
            std::fs::remove_file(&shm)
                .map_err(|source| StoreError::RestoreFile { path: shm, source })?;
        }
        Ok(aside)
    }
}

/// `backup` copied to the new file `copy` (mode 0600, synced); an existing `copy` (left by a
/// restore that did not finish) is refused.
fn copy_private(backup: &Path, copy: &Path) -> Result<()> {
    let mut from = std::fs::File::open(backup).map_err(|source| StoreError::RestoreFile {
        path: backup.to_owned(),
        source,
    })?;
    let io = |source| StoreError::RestoreFile {
        path: copy.to_owned(),
        source,
    };
    let mut to = kasane_os::fs::create_private_file(copy).map_err(io)?;
    let copied = std::io::copy(&mut from, &mut to).and_then(|_| to.sync_all());
    if let Err(e) = copied {
        let _ = std::fs::remove_file(copy);
        return Err(io(e));
    }
    Ok(())
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Each user's credentials (OPAQUE record and card pairs) as one digest, by name.
type Credentials = BTreeMap<String, [u8; 32]>;

/// The users' [`Credentials`]: two digests differ when the password or the card changed.
fn credentials(conn: &Connection) -> Result<Credentials> {
    let mut stmt = conn.prepare(
        "SELECT u.name, u.opaque_record, p.prompt, p.salt, p.verifier \
         FROM users u LEFT JOIN challenge_pairs p ON p.user_id = u.id \
         ORDER BY u.name, p.idx",
    )?;
    let mut rows = stmt.query([])?;
    let mut digests: BTreeMap<String, Sha256> = BTreeMap::new();
    while let Some(row) = rows.next()? {
        let name: String = row.get(0)?;
        let record: Option<Vec<u8>> = row.get(1)?;
        let h = digests.entry(name).or_insert_with(|| {
            let mut h = Sha256::new();
            field(&mut h, record.as_deref());
            h
        });
        let prompt: Option<String> = row.get(2)?;
        field(h, prompt.as_deref().map(str::as_bytes));
        field(h, row.get::<_, Option<Vec<u8>>>(3)?.as_deref());
        field(h, row.get::<_, Option<Vec<u8>>>(4)?.as_deref());
    }
    Ok(digests
        .into_iter()
        .map(|(name, h)| (name, h.finalize().into()))
        .collect())
}

/// One value into a digest, its length first (`None`: a marker no value has).
fn field(h: &mut Sha256, value: Option<&[u8]>) {
    match value {
        Some(v) => {
            h.update(u64::try_from(v.len()).unwrap_or(u64::MAX).to_be_bytes());
            h.update(v);
        }
        None => h.update(u64::MAX.to_be_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compare_names_gone_back_and_changed_users_only_against_a_replaced_database() {
        let creds = |list: &[(&str, u8)]| -> Credentials {
            list.iter()
                .map(|(n, d)| ((*n).to_owned(), [*d; 32]))
                .collect()
        };
        let after = creds(&[("alice", 1), ("bob", 2), ("dave", 4)]);
        let before = creds(&[("alice", 1), ("bob", 9), ("carol", 3)]);
        let r = compare(Restored::default(), None, Some(before), &after);
        assert_eq!(
            (r.gone, r.back, r.changed),
            (
                vec!["carol".to_owned()],
                vec!["dave".to_owned()],
                vec!["bob".to_owned()]
            )
        );
        // No database replaced (lost): nothing to compare, no user named.
        let r = compare(Restored::default(), None, None, &after);
        assert!(r.gone.is_empty() && r.back.is_empty() && r.changed.is_empty());
    }
}
