//! Warm instances of a pure-profile transform: instantiated and initialized once, then reused
//! for many calls, each of which sees exactly what a fresh instance would.
//!
//! A [`Warm`] keeps a snapshot taken right after initialization: the linear memory's bytes
//! and every mutable global's value (reached through the exports `expose` added). After a
//! successful call, the 4 KiB pages that differ from the snapshot are copied back and the
//! globals are set again. A page that was all zeros in the snapshot (most of a guest's stack
//! and heap) is not kept: it is compared with one static zero page, so the snapshot holds
//! only the pages initialization wrote (a module declaring 16 MiB of memory does not cost a
//! second 16 MiB per warm instance), and the comparison
//! reads only the live memory and a page that stays in cache: in the message path the
//! restore was the largest single item of the profile, and its reads of the snapshot pushed
//! the worker's other data out of the cache (BENCHMARKS.md, run K). The instance is dropped
//! instead when its memory grew, when a global could not be restored, or when the call failed
//! in any way. The fuel budget of a call is what a fresh instance would have left after its
//! initialization, and the fuel it reports counts that initialization too, so the key, the
//! fuel and every error are the fresh path's. [`WarmPool`] keeps a few idle ones per
//! transform.

use crate::call::{Abi, Failure, initialize, new_store};
use crate::limits::Limiter;
use crate::state::{HostState, PureState};
use crate::{Derived, Limits, SandboxError};
use std::sync::{Mutex, PoisonError};
use wasmtime::{Global, InstancePre, Store, Val};

/// The granularity of the memory comparison after a call.
const PAGE: usize = 4096;

/// What a page that was all zeros in the snapshot is compared with and restored from.
static ZERO_PAGE: [u8; PAGE] = [0; PAGE];

/// What a warm instance runs under: the transform's limits and backstop.
#[derive(Clone, Copy)]
pub(crate) struct Budget<'a> {
    pub(crate) limits: &'a Limits,
    pub(crate) deadline_ticks: u64,
    pub(crate) has_initialize: bool,
}

/// One initialized instance with its post-initialization snapshot.
pub(crate) struct Warm {
    store: Store<PureState>,
    abi: Abi,
    /// Each mutable global with its value after initialization.
    globals: Vec<(Global, Val)>,
    /// The linear memory after initialization, page by page (`PAGE` bytes; the last may be
    /// shorter): `None` for a page that was all zeros.
    pages: Vec<Option<Box<[u8]>>>,
    /// The linear memory's length after initialization, bytes.
    memory_len: usize,
    /// Fuel the instantiation and `_initialize` used.
    init_fuel: u64,
    /// False when some mutable global was not reachable: the instance serves one call only.
    reusable: bool,
}

impl Warm {
    /// Instantiates and initializes under the same fuel budget and backstop as a fresh
    /// derive, then takes the snapshot. An error is the one the fresh path gives.
    pub(crate) fn new(
        pre: &InstancePre<PureState>,
        budget: Budget<'_>,
        globals: &[String],
    ) -> Result<Warm, SandboxError> {
        let limits = budget.limits;
        let state = PureState::new(Limiter::new(limits));
        let mut store = new_store(pre, state, limits, budget.deadline_ticks)?;
        let abi = initialize(pre, &mut store, budget.has_initialize)
            .and_then(|instance| Ok((instance, Abi::of(instance, &mut store)?)));
        let (instance, abi) = abi.map_err(|f| f.classify(store.data().limit_hit()))?;
        let init_fuel = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let mut snapshot = Vec::with_capacity(globals.len());
        for name in globals {
            if let Some(global) = instance.get_global(&mut store, name) {
                let value = global.get(&mut store);
                snapshot.push((global, value));
            }
        }
        let reusable = snapshot.len() == globals.len();
        let memory = abi.memory.data(&store);
        let memory_len = memory.len();
        let pages = memory
            .chunks(PAGE)
            .map(|page| (!is_zero(page)).then(|| page.into()))
            .collect();
        Ok(Warm {
            store,
            abi,
            globals: snapshot,
            pages,
            memory_len,
            init_fuel,
            reusable,
        })
    }

    /// Runs one derive call on `input` (the encoded `DeriveInput`). Returns its result and
    /// whether the instance was restored to its snapshot and may serve another call.
    pub(crate) fn derive(
        &mut self,
        budget: Budget<'_>,
        input: &[u8],
    ) -> (Result<Derived, SandboxError>, bool) {
        let limits = budget.limits;
        *self.store.data_mut() = PureState::new(Limiter::new(limits));
        let left = limits.fuel.saturating_sub(self.init_fuel);
        if let Err(e) = self.store.set_fuel(left) {
            return (Err(SandboxError::Engine(format!("set_fuel: {e:#}"))), false);
        }
        self.store.set_epoch_deadline(budget.deadline_ticks);
        let result = self.abi.call(&mut self.store, input, limits.out_cap());
        // Budget minus what is left: the initialization's fuel is in it, as on the fresh path.
        let fuel_used = limits
            .fuel
            .saturating_sub(self.store.get_fuel().unwrap_or(0));
        match result {
            Ok(key) => {
                let derived = Derived {
                    key,
                    fuel_used,
                    diagnostics: self.store.data().diagnostics(),
                };
                let restored = self.reusable && self.restore();
                (Ok(derived), restored)
            }
            Err(failure) => (Err(classify(failure, &self.store)), false),
        }
    }

    /// Bytes of linear memory the snapshot holds: the pages initialization left non-zero.
    fn snapshot_bytes(&self) -> usize {
        self.pages.iter().flatten().map(|page| page.len()).sum()
    }

    /// Copies back the pages that differ from the snapshot and sets every global again.
    /// False (the instance must be dropped) when the memory changed size or a global refused.
    fn restore(&mut self) -> bool {
        let memory = self.abi.memory.data_mut(&mut self.store);
        if memory.len() != self.memory_len {
            return false;
        }
        for (now, kept) in memory.chunks_mut(PAGE).zip(&self.pages) {
            let then = kept.as_deref().unwrap_or(&ZERO_PAGE[..now.len()]);
            if now != then {
                now.copy_from_slice(then);
            }
        }
        self.globals
            .iter()
            .all(|(global, value)| global.set(&mut self.store, *value).is_ok())
    }
}

/// Whether `page` (at most `PAGE` bytes) is all zeros.
fn is_zero(page: &[u8]) -> bool {
    ZERO_PAGE.get(..page.len()) == Some(page)
}

fn classify(failure: Failure, store: &Store<PureState>) -> SandboxError {
    failure.classify(store.data().limit_hit())
}

/// The idle warm instances of one transform, shared by all its clones.
pub(crate) struct WarmPool {
    /// Names of the exported mutable globals (from `expose::plan`).
    globals: Vec<String>,
    /// Most idle instances kept.
    cap: usize,
    idle: Mutex<Vec<Warm>>,
}

impl WarmPool {
    /// An empty pool keeping at most `cap` idle instances.
    pub(crate) fn new(globals: Vec<String>, cap: usize) -> Self {
        Self {
            globals,
            cap,
            idle: Mutex::new(Vec::with_capacity(cap)),
        }
    }

    /// Runs one call on an idle instance, or on a new one when none is idle, and keeps the
    /// instance afterwards when it was restored and the pool has room.
    pub(crate) fn derive(
        &self,
        pre: &InstancePre<PureState>,
        budget: Budget<'_>,
        input: &[u8],
    ) -> Result<Derived, SandboxError> {
        let idle = self.lock().pop();
        let mut warm = match idle {
            Some(warm) => warm,
            None => Warm::new(pre, budget, &self.globals)?,
        };
        let (result, reusable) = warm.derive(budget, input);
        if reusable {
            let mut idle = self.lock();
            if idle.len() < self.cap {
                idle.push(warm);
            }
        }
        result
    }

    /// Number of idle instances (for tests and metrics).
    pub(crate) fn idle(&self) -> usize {
        self.lock().len()
    }

    /// Bytes the idle instances' memory snapshots hold (for tests and metrics).
    pub(crate) fn snapshot_bytes(&self) -> usize {
        self.lock().iter().map(Warm::snapshot_bytes).sum()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Warm>> {
        // Nothing panics while the lock is held; a poisoned list is still a list of
        // restored instances.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
