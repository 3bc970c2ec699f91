//! Group commit: jobs submitted concurrently share one commit (one store transaction, one
//! fsync), and each submitter is answered only after that commit returned.
//!
//! [`GroupCommit`] owns one background task. A submitter sends its job with a one-shot reply
//! channel and waits. The task takes the first job, then every job already waiting (up to
//! [`BatchLimits::max_batch`], lingering up to [`BatchLimits::max_wait`] for more when that
//! is not zero), and hands the batch to the commit function. While a commit runs, new jobs
//! queue (up to [`BatchLimits::queue`]; a submitter beyond that waits for room), so the next
//! batch is as large as the disk is slow: one fsync serves everyone who arrived during the
//! previous one. This is the classic group commit of database logs (PostgreSQL's
//! `commit_delay`, InnoDB's binlog group commit), here in front of the store.
//!
//! The commit function answers every job of the batch, in order, or fails as a whole; on a
//! failure (or a panic inside it) every submitter of that batch gets [`CommitError::Failed`]
//! and none an answer: nothing is acknowledged that was not committed. One commit runs at a
//! time, which is what SQLite allows anyway (one writer) and keeps PostgreSQL's order.
//!
//! Written here rather than taken from a crate: the crates that batch (e.g. `tokio-batch`,
//! `batched-fn`) either stop at a timer-only flush or run the batch function synchronously
//! on a thread; this one needs an async commit, per-job answers and an all-or-nothing
//! failure, in about a hundred lines.

use std::fmt::Write as _;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

/// How large a batch may grow and how long it may wait for more (`[messages]` in the
/// configuration for the message path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// Most jobs in one commit (at least 1).
    pub max_batch: usize,
    /// After the first job of a batch, how long to wait for more before committing (zero:
    /// commit at once with whatever is already waiting, the default: batches still form
    /// while the previous commit runs).
    pub max_wait: Duration,
    /// Most jobs waiting for the next commit; a submitter beyond it waits for room.
    pub queue: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_batch: 128,
            max_wait: Duration::ZERO,
            queue: 1024,
        }
    }
}

/// Why a submitted job got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The batch's commit failed: nothing of it is durable, and no job of it succeeded.
    #[error("group commit failed: {0}")]
    Failed(String),
    /// The batcher has stopped (its owner was dropped).
    #[error("group commit stopped")]
    Stopped,
}

/// One submitted job and where its answer goes.
struct Pending<J, R> {
    job: J,
    reply: oneshot::Sender<Result<R, CommitError>>,
}

/// What a batcher has done so far: commits by outcome and the jobs they carried.
#[derive(Debug, Default)]
pub struct CommitStats {
    commits: AtomicU64,
    failed: AtomicU64,
    jobs: AtomicU64,
}

impl CommitStats {
    /// Commits that succeeded.
    pub fn commits(&self) -> u64 {
        self.commits.load(Ordering::Relaxed)
    }

    /// Commits that failed (their jobs got [`CommitError::Failed`]).
    pub fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }

    /// Jobs answered by the successful commits.
    pub fn jobs(&self) -> u64 {
        self.jobs.load(Ordering::Relaxed)
    }

    /// Prometheus text for the message path's batcher: commits by outcome and messages
    /// committed (their ratio is the mean batch).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "# HELP kasane_message_commits_total Group commits of accepted messages, by outcome."
        );
        let _ = writeln!(s, "# TYPE kasane_message_commits_total counter");
        for (o, n) in [("ok", self.commits()), ("failed", self.failed())] {
            let _ = writeln!(s, "kasane_message_commits_total{{outcome=\"{o}\"}} {n}");
        }
        let _ = writeln!(
            s,
            "# HELP kasane_messages_committed_total Messages answered by successful group commits."
        );
        let _ = writeln!(s, "# TYPE kasane_messages_committed_total counter");
        let _ = writeln!(s, "kasane_messages_committed_total {}", self.jobs());
        s
    }

    fn count(&self, outcome: &Result<Vec<impl Sized>, String>) {
        match outcome {
            Ok(results) => {
                self.commits.fetch_add(1, Ordering::Relaxed);
                self.jobs.fetch_add(results.len() as u64, Ordering::Relaxed);
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A group-commit batcher in front of one commit function (see the module docs).
pub struct GroupCommit<J, R> {
    tx: mpsc::Sender<Pending<J, R>>,
    stats: Arc<CommitStats>,
}

impl<J, R> std::fmt::Debug for GroupCommit<J, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit").finish_non_exhaustive()
    }
}

impl<J: Send + 'static, R: Send + 'static> GroupCommit<J, R> {
    /// Starts the batcher on the current tokio runtime. `commit` gets each batch's jobs in
    /// arrival order and must answer with one result per job, in the same order, once the
    /// batch is durable; an `Err` fails the whole batch.
    pub fn spawn<F, Fut>(limits: BatchLimits, commit: F) -> Self
    where
        F: Fn(Vec<J>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<R>, String>> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(limits.queue.max(1));
        let stats = Arc::new(CommitStats::default());
        tokio::spawn(run(rx, limits, commit, stats.clone()));
        Self { tx, stats }
    }

    /// Starts the batcher on a thread of its own, named `name`, that calls `commit` itself:
    /// for a commit that blocks from start to end (SQLite's, on a connection the commit
    /// owns, `store::SqliteCommitter`). The jobs that arrived while one commit ran are the
    /// next batch, taken by the same thread at once: under load it hands nothing to
    /// another thread but the answers. It ends when every handle is dropped. Otherwise as
    /// [`spawn`](Self::spawn): the same limits, answers and all-or-nothing failure (a panic
    /// in `commit` fails its batch, and the thread goes on).
    ///
    /// # Errors
    /// The thread, or its timer for [`BatchLimits::max_wait`], could not be started.
    pub fn spawn_thread<F>(limits: BatchLimits, name: &str, commit: F) -> std::io::Result<Self>
    where
        F: FnMut(Vec<J>) -> Result<Vec<R>, String> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(limits.queue.max(1));
        let stats = Arc::new(CommitStats::default());
        let counted = stats.clone();
        // The thread's runtime (a clock for `max_wait`) is made, and dropped, on the thread:
        // a runtime may not be dropped where the caller is, on an async worker.
        let (ready, started) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let clock = tokio::runtime::Builder::new_current_thread()
                    .enable_time()
                    .build();
                match clock {
                    Ok(clock) => {
                        let _ = ready.send(Ok(()));
                        clock.block_on(run_blocking(rx, limits, commit, counted));
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                    }
                }
            })?;
        // Waits for the new thread's runtime: once, a few microseconds.
        started
            .recv()
            .map_err(|_| std::io::Error::other("group commit thread ended at its start"))??;
        Ok(Self { tx, stats })
    }

    /// What this batcher has done so far.
    pub fn stats(&self) -> &CommitStats {
        &self.stats
    }

    /// Submits `job` and waits for its batch's commit.
    pub async fn submit(&self, job: J) -> Result<R, CommitError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Pending { job, reply })
            .await
            .map_err(|_| CommitError::Stopped)?;
        answer.await.map_err(|_| CommitError::Stopped)?
    }
}

/// The batcher's loop: until every [`GroupCommit`] handle is dropped.
async fn run<J, R, F, Fut>(
    mut rx: mpsc::Receiver<Pending<J, R>>,
    limits: BatchLimits,
    commit: F,
    stats: Arc<CommitStats>,
) where
    J: Send + 'static,
    R: Send + 'static,
    F: Fn(Vec<J>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Vec<R>, String>> + Send + 'static,
{
    while let Some(first) = rx.recv().await {
        let batch = collect(&mut rx, first, &limits).await;
        let (jobs, replies): (Vec<J>, Vec<_>) = batch.into_iter().map(|p| (p.job, p.reply)).unzip();
        let count = jobs.len();
        // Its own task: a panic in the commit fails this batch, not the batcher.
        let outcome = match tokio::spawn(commit(jobs)).await {
            Ok(outcome) => outcome,
            Err(e) => Err(format!("commit task: {e}")),
        };
        finish(replies, count, outcome, &stats);
    }
}

/// [`run`] for [`GroupCommit::spawn_thread`]: the commit called in place, blocking (this
/// loop has its thread, and the thread's runtime, to itself).
async fn run_blocking<J, R, F>(
    mut rx: mpsc::Receiver<Pending<J, R>>,
    limits: BatchLimits,
    mut commit: F,
    stats: Arc<CommitStats>,
) where
    F: FnMut(Vec<J>) -> Result<Vec<R>, String>,
{
    while let Some(first) = rx.recv().await {
        let batch = collect(&mut rx, first, &limits).await;
        let (jobs, replies): (Vec<J>, Vec<_>) = batch.into_iter().map(|p| (p.job, p.reply)).unzip();
        let count = jobs.len();
        // A panic fails this batch, not the batcher: a commit that unwinds has rolled back
        // (its transaction ended with it), so its state is fit for the next batch.
        let called = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit(jobs)));
        let outcome = called.unwrap_or_else(|_| Err("commit panicked".to_owned()));
        finish(replies, count, outcome, &stats);
    }
}

/// Counts a batch's commit and answers its submitters: each its result, or every one the
/// failure (also when the commit answered a wrong number of results).
fn finish<R>(
    replies: Vec<oneshot::Sender<Result<R, CommitError>>>,
    count: usize,
    outcome: Result<Vec<R>, String>,
    stats: &CommitStats,
) {
    let outcome = match outcome {
        Ok(results) if results.len() != count => {
            Err(format!("{} answers for {count} jobs", results.len()))
        }
        other => other,
    };
    stats.count(&outcome);
    answer(replies, outcome);
}

/// The first job and whatever else arrives within the limits.
async fn collect<J, R>(
    rx: &mut mpsc::Receiver<Pending<J, R>>,
    first: Pending<J, R>,
    limits: &BatchLimits,
) -> Vec<Pending<J, R>> {
    let max = limits.max_batch.max(1);
    let mut batch = Vec::with_capacity(max.min(64));
    batch.push(first);
    let deadline = tokio::time::Instant::now() + limits.max_wait;
    while batch.len() < max {
        match rx.try_recv() {
            Ok(p) => batch.push(p),
            Err(mpsc::error::TryRecvError::Disconnected) => break,
            Err(mpsc::error::TryRecvError::Empty) if limits.max_wait.is_zero() => break,
            Err(mpsc::error::TryRecvError::Empty) => {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(p)) => batch.push(p),
                    Ok(None) | Err(_) => break,
                }
            }
        }
    }
    batch
}

/// Sends each submitter its answer, or every one of them the batch's failure.
fn answer<R>(
    replies: Vec<oneshot::Sender<Result<R, CommitError>>>,
    outcome: Result<Vec<R>, String>,
) {
    match outcome {
        Ok(results) => {
            for (reply, result) in replies.into_iter().zip(results) {
                // A submitter that stopped waiting no longer needs its answer.
                let _ = reply.send(Ok(result));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, jobs = replies.len(), "group commit failed");
            for reply in replies {
                let _ = reply.send(Err(CommitError::Failed(e.clone())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Submits every job of `jobs` at once; their answers, in order.
    async fn join_all<R: Send + 'static>(
        gc: &Arc<GroupCommit<u32, R>>,
        jobs: std::ops::Range<u32>,
    ) -> Vec<(u32, Result<R, CommitError>)> {
        let tasks: Vec<_> = jobs
            .map(|i| {
                let gc = gc.clone();
                tokio::spawn(async move { (i, gc.submit(i).await) })
            })
            .collect();
        let mut answers = Vec::new();
        for t in tasks {
            answers.push(t.await.expect("task"));
        }
        answers
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_jobs_share_commits_and_each_gets_its_own_answer() {
        let commits = Arc::new(AtomicUsize::new(0));
        let counted = commits.clone();
        let gc = Arc::new(GroupCommit::spawn(
            BatchLimits::default(),
            move |jobs: Vec<u32>| {
                counted.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    Ok(jobs.into_iter().map(|j| j * 2).collect())
                }
            },
        ));
        for (i, answer) in join_all(&gc, 0..64).await {
            assert_eq!(answer, Ok(i * 2));
        }
        let n = commits.load(Ordering::SeqCst);
        assert!(
            n < 64,
            "64 concurrent jobs took {n} commits: nothing was grouped"
        );
    }

    #[tokio::test]
    async fn a_failed_commit_acknowledges_no_job_of_its_batch() {
        let gc = Arc::new(GroupCommit::spawn(
            BatchLimits::default(),
            |jobs: Vec<u32>| async move {
                if jobs.contains(&13) {
                    Err("disk full".to_owned())
                } else {
                    Ok(jobs)
                }
            },
        ));
        let answers = join_all(&gc, 10..16).await;
        let failed: Vec<_> = answers.iter().filter(|(_, a)| a.is_err()).collect();
        assert!(failed.iter().any(|(i, _)| *i == 13));
        for (i, a) in &answers {
            match a {
                Ok(v) => assert_eq!(v, i),
                Err(e) => assert_eq!(e, &CommitError::Failed("disk full".into())),
            }
        }
    }

    #[tokio::test]
    async fn a_panicking_commit_fails_its_batch_and_the_batcher_goes_on() {
        let gc = GroupCommit::spawn(BatchLimits::default(), |jobs: Vec<u32>| async move {
            assert!(!jobs.contains(&0), "boom");
            Ok(jobs)
        });
        assert!(matches!(gc.submit(0).await, Err(CommitError::Failed(_))));
        assert_eq!(gc.submit(7).await, Ok(7));
        assert_eq!((gc.stats().commits(), gc.stats().failed()), (1, 1));
        assert!(
            gc.stats()
                .render()
                .contains("kasane_message_commits_total{outcome=\"failed\"} 1")
        );
    }

    #[tokio::test]
    async fn a_batch_never_exceeds_max_batch() {
        let limits = BatchLimits {
            max_batch: 3,
            max_wait: Duration::from_millis(50),
            queue: 16,
        };
        let gc = Arc::new(GroupCommit::spawn(limits, |jobs: Vec<u32>| async move {
            Ok(vec![jobs.len(); jobs.len()])
        }));
        for (_, s) in join_all(&gc, 0..10).await {
            let s = s.expect("committed");
            assert!((1..=3).contains(&s), "batch of {s}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_its_own_thread_jobs_share_commits_and_each_gets_its_own_answer() {
        let commits = Arc::new(AtomicUsize::new(0));
        let counted = commits.clone();
        let commit = move |jobs: Vec<u32>| {
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
            Ok(jobs.into_iter().map(|j| j * 2).collect())
        };
        let gc = GroupCommit::spawn_thread(BatchLimits::default(), "test-commit", commit);
        let gc = Arc::new(gc.expect("thread"));
        for (i, answer) in join_all(&gc, 0..64).await {
            assert_eq!(answer, Ok(i * 2));
        }
        let n = commits.load(Ordering::SeqCst);
        assert!(n < 64, "64 concurrent jobs took {n} commits");
    }

    #[tokio::test]
    async fn on_its_own_thread_a_failed_or_panicking_commit_fails_only_its_batch() {
        let limits = BatchLimits {
            max_batch: 3,
            max_wait: Duration::from_millis(50),
            queue: 16,
        };
        let commit = |jobs: Vec<u32>| {
            assert!(!jobs.contains(&0), "boom");
            match jobs.contains(&13) {
                true => Err("disk full".to_owned()),
                false => Ok(vec![jobs.len() as u32; jobs.len()]),
            }
        };
        let gc = GroupCommit::spawn_thread(limits, "test-commit", commit).expect("thread");
        assert!(matches!(gc.submit(0).await, Err(CommitError::Failed(_))));
        assert_eq!(
            gc.submit(13).await,
            Err(CommitError::Failed("disk full".into()))
        );
        let gc = Arc::new(gc);
        for (_, size) in join_all(&gc, 20..30).await {
            assert!((1..=3).contains(&size.expect("committed")), "max_batch 3");
        }
        assert_eq!(gc.stats().failed(), 2);
    }

    #[tokio::test]
    async fn on_its_own_thread_the_batcher_ends_with_its_last_handle() {
        let (alive, ended) = std::sync::mpsc::channel::<()>();
        let commit = move |jobs: Vec<u32>| {
            let _ = &alive;
            Ok(jobs)
        };
        let gc = GroupCommit::spawn_thread(BatchLimits::default(), "test-commit", commit);
        let gc = gc.expect("thread");
        assert_eq!(gc.submit(5).await, Ok(5));
        drop(gc);
        // The thread drops the commit (and `alive` with it) as it ends.
        let gone = ended.recv_timeout(Duration::from_secs(10));
        assert_eq!(gone, Err(std::sync::mpsc::RecvTimeoutError::Disconnected));
    }
}
