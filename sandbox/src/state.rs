//! What every wasmtime store carries: the [`HostState`] trait the derive call is generic over,
//! and [`PureState`] for the pure profile. A leaf below both `sandbox` (which runs the call)
//! and `wasi` (whose `WasiState` implements the trait), so neither imports the other for it.

use crate::limits::{LimitHit, Limiter};

/// The state every store carries: the limiter, and for the WASI profile the WASI context.
pub(crate) trait HostState: Send + 'static {
    fn limiter(&mut self) -> &mut Limiter;
    fn limit_hit(&self) -> Option<LimitHit>;
    /// What the guest wrote to stdout/stderr.
    fn diagnostics(&self) -> Vec<u8>;
    /// Sets up a new store of this profile beyond the limits every store has (the WASI
    /// profile charges its host calls to fuel).
    fn prepare(_store: &mut wasmtime::Store<Self>)
    where
        Self: Sized,
    {
    }
}

/// Store state of the pure profile: nothing but the limiter.
pub(crate) struct PureState {
    limiter: Limiter,
}

impl PureState {
    pub(crate) fn new(limiter: Limiter) -> Self {
        Self { limiter }
    }
}

impl HostState for PureState {
    fn limiter(&mut self) -> &mut Limiter {
        &mut self.limiter
    }
    fn limit_hit(&self) -> Option<LimitHit> {
        self.limiter.hit
    }
    fn diagnostics(&self) -> Vec<u8> {
        Vec::new()
    }
}
