//! Durability on request, off the login's path: [`DurableBarrier`].
//!
//! A login start draws the user's access counter in a relaxed commit (no fsync). The finish
//! may answer a bundle carrying that counter only once it is on disk, so that no crash can
//! give two bundles one counter. The start asks for a barrier as it answers: a durable write
//! ([`Store::make_durable`]) begun after the start's commit, which runs while the client
//! computes its argon2id (tens of milliseconds). By the finish it has almost always
//! returned, and the finish's wait costs nothing; a finish served by another replica, or by
//! this one after a restart, asks for a barrier of its own and waits for it.
//!
//! Barriers are coalesced: one write runs at a time, and it serves every request made before
//! it began. However many starts arrive, there is at most one durable write in flight and
//! one to follow it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rand_core::{OsRng, RngCore};
use tokio::sync::watch;

use crate::store::{Store, StoreError};

/// A request for a barrier: which barrier (this process's) and which generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BarrierTicket {
    /// The [`DurableBarrier`] that issued it (random per process).
    instance: u64,
    /// The generation to wait for.
    generation: u64,
}

/// Where the barrier writes stand: every generation up to `durable` is on disk; the write
/// begun for `failed` (if any is at or past a waiter's generation) returned an error.
#[derive(Debug, Clone, Copy, Default)]
struct Reached {
    durable: u64,
    failed: u64,
}

/// Coalesced durable writes: see the module docs.
#[derive(Debug, Clone)]
pub struct DurableBarrier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    instance: u64,
    /// The latest generation asked for.
    asked: AtomicU64,
    /// Whether a task is writing barriers.
    running: AtomicBool,
    reached: watch::Sender<Reached>,
}

impl DurableBarrier {
    /// A barrier over `store`'s commits.
    pub fn new(store: Arc<dyn Store>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                instance: OsRng.next_u64(),
                asked: AtomicU64::new(0),
                running: AtomicBool::new(false),
                reached: watch::Sender::new(Reached::default()),
            }),
        }
    }

    /// Asks for a durable write to begin after every commit that has returned by now, in
    /// the background (the caller must be in a tokio runtime).
    pub fn request(&self) -> BarrierTicket {
        let ticket = self.reserve();
        self.write_soon();
        ticket
    }

    /// [`request`](Self::request) in two halves, for a caller with writes of its own still
    /// to make: the ticket now (every commit returned by now is covered), the write once
    /// [`write_soon`](Self::write_soon) is called. A durable write holds SQLite's write
    /// lock while it syncs, so begun at once it would delay the caller's own next write.
    pub fn reserve(&self) -> BarrierTicket {
        let generation = self.inner.asked.fetch_add(1, Ordering::SeqCst) + 1;
        BarrierTicket {
            instance: self.inner.instance,
            generation,
        }
    }

    /// Starts writing barriers in the background for the tickets reserved so far, unless a
    /// write is under way already (it goes on until every reserved ticket is served).
    pub fn write_soon(&self) {
        if !self.inner.running.swap(true, Ordering::SeqCst) {
            tokio::spawn(self.inner.clone().run());
        }
    }

    /// Returns once every commit that had returned when `ticket` was requested is durable:
    /// waits for the ticket's barrier if this process issued it, else asks for a new one.
    pub async fn wait(&self, ticket: Option<BarrierTicket>) -> Result<(), StoreError> {
        let ticket = match ticket {
            Some(t) if t.instance == self.inner.instance => t,
            _ => self.request(),
        };
        let mut reached = self.inner.reached.subscribe();
        let at = reached
            .wait_for(|r| r.durable >= ticket.generation || r.failed >= ticket.generation)
            .await
            .map_err(|_| StoreError::NotDurable)?;
        if at.durable >= ticket.generation {
            Ok(())
        } else {
            Err(StoreError::NotDurable)
        }
    }
}

impl Inner {
    /// Writes barriers until every generation asked for has one begun after it.
    async fn run(self: Arc<Self>) {
        loop {
            let target = self.asked.load(Ordering::SeqCst);
            let written = self.store.make_durable().await;
            self.reached.send_modify(|r| match &written {
                Ok(()) => r.durable = r.durable.max(target),
                Err(_) => r.failed = r.failed.max(target),
            });
            if let Err(e) = written {
                tracing::error!(error = %e, "durable barrier");
            }
            self.running.store(false, Ordering::SeqCst);
            // A request made after `target` was read either saw `running` true (and relies
            // on this loop) or spawned a task of its own: exactly one of the two goes on.
            if self.asked.load(Ordering::SeqCst) == target
                || self.running.swap(true, Ordering::SeqCst)
            {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SqliteStore;

    async fn marks(store: &SqliteStore) -> i64 {
        sqlx::query_scalar("SELECT n FROM durable_marks")
            .fetch_one(store.pool())
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn barriers_are_coalesced_and_each_request_gets_a_later_write() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(
            SqliteStore::open_file(&dir.path().join("k.db"))
                .await
                .unwrap(),
        );
        let barrier = DurableBarrier::new(store.clone());
        let mut waits = tokio::task::JoinSet::new();
        for _ in 0..50 {
            let (barrier, ticket) = (barrier.clone(), barrier.request());
            waits.spawn(async move { barrier.wait(Some(ticket)).await });
        }
        while let Some(done) = waits.join_next().await {
            done.unwrap().unwrap();
        }
        let after_burst = marks(&store).await;
        assert!((1..=50).contains(&after_burst), "{after_burst} writes");
        assert!(after_burst < 50, "50 requests at once were not coalesced");
        // Once the writes are done, a new request (or a ticket of another process) gets a
        // write of its own.
        barrier.wait(Some(barrier.request())).await.unwrap();
        assert_eq!(marks(&store).await, after_burst + 1);
        let foreign = BarrierTicket {
            instance: barrier.inner.instance ^ 1,
            generation: 1,
        };
        barrier.wait(Some(foreign)).await.unwrap();
        barrier.wait(None).await.unwrap();
        assert_eq!(marks(&store).await, after_burst + 3);
    }

    #[tokio::test]
    async fn a_failed_write_fails_its_waiters() {
        let store = Arc::new(SqliteStore::open("sqlite::memory:").await.unwrap());
        let barrier = DurableBarrier::new(store.clone());
        barrier.wait(None).await.unwrap();
        sqlx::query("DROP TABLE durable_marks")
            .execute(store.pool())
            .await
            .unwrap();
        let err = barrier.wait(None).await.unwrap_err();
        assert!(matches!(err, StoreError::NotDurable), "{err}");
    }
}
