//! Blocking work under tokio — the host's SQLite calls and OPAQUE's curve arithmetic, the
//! client's argon2id and transforms — run without stalling the runtime, one way: [`run`]
//! (feature `tokio`).
//!
//! On tokio's multi-thread runtime (the host's, the `kasane` binary's) the work runs in place
//! ([`tokio::task::block_in_place`]): tokio hands this worker's queued tasks to another
//! thread, and the caller goes on as soon as the work is done. On the blocking pool the same
//! call waits for a pool thread to wake, then for a worker to wake again with the answer;
//! on this project's 2-vCPU machine that cost 40–170 µs per call of a login's latency
//! (BENCHMARKS.md, "Login: blocking work in place"). On a current-thread runtime (many
//! tests), where work in place is not allowed, it runs on the blocking pool.
//!
//! In place, nothing else in the calling task runs meanwhile: a future joined with the call
//! (`tokio::join!`) waits for it. Where overlap matters, start the other side on the
//! blocking pool first (as the host's response step does with the transform, and the
//! client's start with its warming).

use std::panic::AssertUnwindSafe;

use tokio::runtime::{Handle, RuntimeFlavor};

/// The work panicked (or, on the blocking pool, was cancelled); logged by the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("blocking work aborted")
    }
}

impl std::error::Error for Aborted {}

impl From<tokio::task::JoinError> for Aborted {
    fn from(_: tokio::task::JoinError) -> Self {
        Self
    }
}

/// Runs `f` in place on a multi-thread runtime, else on the blocking pool (see the module
/// documentation). A panic in `f` is [`Aborted`] either way.
pub async fn run<T, F>(f: F) -> Result<T, Aborted>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    if in_place_allowed() {
        let caught = tokio::task::block_in_place(|| std::panic::catch_unwind(AssertUnwindSafe(f)));
        return caught.map_err(|_| Aborted);
    }
    tokio::task::spawn_blocking(f).await.map_err(|_| Aborted)
}

fn in_place_allowed() -> bool {
    Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread() -> std::thread::ThreadId {
        std::thread::current().id()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn in_place_on_a_multi_thread_runtime() {
        let here = thread();
        assert_eq!(run(thread).await, Ok(here));
        assert_eq!(run(|| panic!("boom")).await, Err::<(), _>(Aborted));
    }

    #[tokio::test]
    async fn on_the_blocking_pool_on_a_current_thread_runtime() {
        let here = thread();
        assert_ne!(run(thread).await, Ok(here));
        assert_eq!(run(|| panic!("boom")).await, Err::<(), _>(Aborted));
    }
}
