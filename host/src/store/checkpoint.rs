//! SQLite's WAL checkpoints off the commit path: [`Checkpointer`].
//!
//! In WAL mode a commit appends pages to the `-wal` file; a checkpoint copies them back into
//! the database file, syncs it, and lets the next writer start the WAL over. By default
//! SQLite checkpoints inside the commit that takes the WAL past 1,000 pages, on the
//! committing connection: that commit, and every message waiting on it, waits for the copy
//! and the database file's fsync too. On the message path that was the acknowledgement's
//! tail (BENCHMARKS.md, issue 15, run G: a ~5–7 ms p99 at a fifth of capacity, 2–4 ms with
//! no checkpoint at all).
//!
//! Here a thread of its own, on a connection of its own, runs `PRAGMA
//! wal_checkpoint(PASSIVE)` at most every [`MIN_INTERVAL`] while commits are made (the
//! message committer pokes it after each), and every [`IDLE_INTERVAL`] when another
//! connection committed. A passive checkpoint never waits for readers or the writer, so the
//! commit path never waits for it.
//!
//! A passive checkpoint that runs while commits land copies what was there when it began;
//! the WAL starts over only once a checkpoint has copied all of it. Every connection of the
//! store therefore keeps SQLite's own checkpoint as a backstop, at [`BACKSTOP_PAGES`]
//! instead of 1,000: should the background ones never finish under a steady load, the
//! commit that crosses the backstop checkpoints itself (copying only what the last
//! background pass left), and the WAL stays bounded.

use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::{Result, StoreError};

/// SQLite's own (inline) checkpoint threshold on every connection of the store, in pages
/// (4 KiB each: ~40 MiB of WAL). Reached only when the background checkpoints fall behind.
pub const BACKSTOP_PAGES: u32 = 10_000;

/// Least time between two background checkpoints while commits are made. Short, so that
/// each checkpoint's sync of the database file carries little: a commit's WAL sync queued
/// behind it on the disk then waits little (at 64 KiB × 16 sessions, 20 ms doubled the ack
/// p99 that 2–5 ms gave; BENCHMARKS.md, issue 15, run H).
const MIN_INTERVAL: Duration = Duration::from_millis(5);

/// How often the thread looks for commits it was not told about (the login path's).
const IDLE_INTERVAL: Duration = Duration::from_secs(1);

/// A handle on the checkpoint thread of one SQLite file; the thread ends once every handle
/// is dropped.
#[derive(Debug, Clone)]
pub struct Checkpointer {
    poke: SyncSender<()>,
}

impl Checkpointer {
    /// Opens a connection to the existing WAL-mode database at `path` and starts its
    /// checkpoint thread.
    ///
    /// # Errors
    /// The file could not be opened, or the thread not started.
    pub fn spawn(path: &Path) -> Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        set_backstop(&conn)?;
        // One pending poke is enough: they all ask for the same thing.
        let (poke, pokes) = sync_channel(1);
        std::thread::Builder::new()
            .name("kasane-checkpoint".to_owned())
            .spawn(move || run(&conn, &pokes))
            .map_err(StoreError::Thread)?;
        Ok(Self { poke })
    }

    /// Says that a commit was made: a checkpoint follows within [`MIN_INTERVAL`]. Never
    /// blocks.
    pub fn poke(&self) {
        match self.poke.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        }
    }
}

/// Sets SQLite's inline checkpoint of `conn` to the backstop.
///
/// # Errors
/// SQLite refused the setting.
pub fn set_backstop(conn: &Connection) -> rusqlite::Result<()> {
    conn.pragma_update(None, "wal_autocheckpoint", BACKSTOP_PAGES)
}

/// The thread's loop: a checkpoint after each poke (at most one per [`MIN_INTERVAL`]) or,
/// without pokes, after another connection's commit; until every handle is dropped.
fn run(conn: &Connection, pokes: &Receiver<()>) {
    let mut seen = data_version(conn);
    let mut last = Instant::now();
    loop {
        match pokes.recv_timeout(IDLE_INTERVAL) {
            Ok(()) => std::thread::sleep(MIN_INTERVAL.saturating_sub(last.elapsed())),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        // Commits made while it slept are in this checkpoint: their pokes are spent.
        let _ = pokes.try_recv();
        let version = data_version(conn);
        if version.is_some() && version == seen {
            continue;
        }
        seen = version;
        last = Instant::now();
        if let Err(e) = checkpoint(conn) {
            tracing::warn!(error = %e, "background WAL checkpoint failed");
        }
    }
}

/// SQLite's count of commits by other connections, as of now (`None`: unreadable).
fn data_version(conn: &Connection) -> Option<i64> {
    conn.pragma_query_value(None, "data_version", |r| r.get(0))
        .ok()
}

/// One passive checkpoint: copies what it can, waits for no one.
fn checkpoint(conn: &Connection) -> rusqlite::Result<()> {
    let (busy, log, copied): (i64, i64, i64) =
        conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    tracing::trace!(busy, log, copied, "background WAL checkpoint");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poke_gets_the_wal_copied_into_the_database_file() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("db");
        let w = Connection::open(&path).expect("open");
        w.pragma_update(None, "journal_mode", "WAL").expect("wal");
        // Nothing but the thread copies pages into the database file.
        w.pragma_update(None, "wal_autocheckpoint", 0).expect("off");
        w.execute("CREATE TABLE t (b BLOB)", []).expect("table");
        let ckpt = Checkpointer::spawn(&path).expect("spawn");
        let before = std::fs::metadata(&path).expect("db").len();
        for _ in 0..50 {
            w.execute("INSERT INTO t VALUES (zeroblob(4000))", [])
                .expect("insert");
        }
        ckpt.poke();
        let deadline = Instant::now() + Duration::from_secs(10);
        // In WAL mode the file grows only by a checkpoint: polls for it, no fixed sleep.
        while std::fs::metadata(&path).expect("db").len() < before + 50 * 4000 {
            assert!(Instant::now() < deadline, "the WAL was not checkpointed");
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}
