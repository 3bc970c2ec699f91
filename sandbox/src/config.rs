//! [`SandboxConfig`] and the one place the wasmtime [`Engine`] is configured (DESIGN §2:
//! determinism, fuel, the epoch backstop, the allocator).

use crate::{Limits, MAX_TABLES, SandboxError};
use std::time::Duration;
use wasmparser::WasmFeatures;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

pub use kasane_abi::Profile;

/// True when this build of the sandbox can run `profile` (`wasi` needs the cargo feature).
pub fn profile_available(profile: Profile) -> bool {
    match profile {
        Profile::Pure => true,
        Profile::Wasi => cfg!(feature = "wasi"),
    }
}

/// How instances get their memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Allocator {
    /// wasmtime's pooling allocator: slots reserved up front, fast instantiation (host).
    #[default]
    Pooling,
    /// mmap on demand: no up-front reservation (small clients, tools).
    OnDemand,
}

/// How much Cranelift optimizes a transform's code: compile time against derive time.
///
/// Fuel, the verdict, counts wasm operators before code generation, so both settings give
/// the same key and the same fuel for every input (`tests/determinism.rs`); host and client
/// may use different settings. The setting is part of wasmtime's compatibility hash, so
/// compile-cache entries of one are never loaded by the other. Measurements in BENCHMARKS.md.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Optimization {
    /// Cranelift's `OptLevel::Speed`: the fastest derive. The default, for a host that keeps
    /// each transform loaded (or a client with a compile cache).
    #[default]
    Speed,
    /// Cranelift's `OptLevel::None` (register allocation is unchanged): compiles roughly
    /// 1.3–2.5× faster, derives up to about 15 % slower. For a client that compiles each
    /// transform once per process and keeps no compile cache.
    CompileTime,
}

/// Sizes of the pooling allocator's pools (ignored with [`Allocator::OnDemand`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PoolingSizes {
    /// Most instances (and so memories) alive at once: the number of concurrent derive
    /// calls. One more fails with [`SandboxError::Engine`] rather than waiting. Each slot
    /// reserves address space (not memory) for one linear memory and
    /// [`MAX_TABLES`](crate::MAX_TABLES) tables.
    pub instances: u32,
}

impl Default for PoolingSizes {
    fn default() -> Self {
        Self { instances: 256 }
    }
}

/// Upper bound of an instance's `VMContext` in the pool. Generous so that no module the
/// on-demand allocator accepts is refused by the pool (a 1 MiB module cannot declare enough
/// globals and functions to exceed it): both allocators must give the same verdict.
const MAX_INSTANCE_SIZE: usize = 16 << 20;

/// Bytes of each pooled linear memory kept resident between instances. When a slot is
/// reused, wasmtime resets these bytes in place (the pages the guest dirtied are found with
/// Linux's `PAGEMAP_SCAN` where available, and zeroed or re-copied from the module's data
/// image with `memset`/`memcpy`) instead of `madvise(DONTNEED)` followed by a page fault on
/// first touch. Past this size a slot is still decommitted. The next instance sees exactly
/// the module's initial memory either way (`tests/engine.rs` pins this), so isolation between
/// calls is unchanged; only the cost of the reset moves. 1 MiB covers the built-ins, which
/// start with 2–3 pages of 64 KiB and dirty a few 4 KiB pages per call.
const MEMORY_KEEP_RESIDENT: usize = 1 << 20;

/// Same for each pooled table (reset to null elements in place).
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// Configuration of a [`Sandbox`](crate::Sandbox).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SandboxConfig {
    /// Pooling (default) or on-demand memory.
    pub allocator: Allocator,
    /// Upper bounds for every transform: a registry entry's limits are capped by these. The
    /// wasm stack and the pool's slot sizes come from here.
    pub max_limits: Limits,
    /// Pool sizes when `allocator` is [`Allocator::Pooling`].
    pub pooling: PoolingSizes,
    /// Cranelift's optimization level (default [`Optimization::Speed`]).
    pub optimization: Optimization,
    /// Wall-clock backstop for one derive call (default 10 s). Fuel is the verdict; this only
    /// stops a call stuck where fuel is not consumed. It fires as
    /// [`SandboxError::WallClockTimeout`].
    pub wall_clock_backstop: Duration,
    /// Period of the epoch ticker thread (default 50 ms, at least 1 ms): the backstop's
    /// resolution.
    pub epoch_tick: Duration,
    /// Most idle warm instances kept per loaded transform for
    /// [`Transform::derive_warm`](crate::Transform::derive_warm) (default 4; 0 disables warm
    /// reuse, and `derive_warm` is then `derive`). With [`Allocator::Pooling`], each idle
    /// instance holds one of the [`PoolingSizes::instances`] slots as long as its transform
    /// is loaded: keep this times the number of loaded modules well below that pool size.
    pub warm_instances_per_module: usize,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            allocator: Allocator::Pooling,
            max_limits: Limits::default(),
            pooling: PoolingSizes::default(),
            optimization: Optimization::default(),
            wall_clock_backstop: Duration::from_secs(10),
            epoch_tick: Duration::from_millis(50),
            warm_instances_per_module: 4,
        }
    }
}

impl SandboxConfig {
    /// The ticker period, at least 1 ms (a zero period would spin a core).
    pub(crate) fn tick(&self) -> Duration {
        self.epoch_tick.max(Duration::from_millis(1))
    }

    /// Number of epoch ticks that make up the backstop (at least 1).
    pub(crate) fn deadline_ticks(&self) -> u64 {
        let tick = self.tick().as_nanos();
        u64::try_from(self.wall_clock_backstop.as_nanos() / tick)
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// Builds the engine. Every determinism setting of DESIGN §2 lives here.
    pub(crate) fn engine(&self) -> Result<Engine, SandboxError> {
        let mut c = Config::new();
        c.cranelift_nan_canonicalization(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            // Exactly the features `validate` allows, whatever wasmtime's defaults or compiled
            // features are: no threads, relaxed SIMD, memory64, multi-memory, GC, exceptions,
            // tail calls, stack switching or components.
            .wasm_features(WasmFeatures::all(), false)
            .wasm_features(crate::validate::allowed_features(), true)
            .wasm_backtrace_max_frames(None)
            .max_wasm_stack(self.max_limits.wasm_stack_bytes)
            .cranelift_opt_level(match self.optimization {
                Optimization::Speed => OptLevel::Speed,
                Optimization::CompileTime => OptLevel::None,
            });
        // wasmtime requires the async stack to hold the wasm stack even when async is unused.
        let async_stack = self
            .max_limits
            .wasm_stack_bytes
            .saturating_add(1 << 20)
            .max(2 << 20);
        c.async_stack_size(async_stack);
        if self.allocator == Allocator::Pooling {
            let mut pool = PoolingAllocationConfig::new();
            let memory = usize::try_from(self.max_limits.memory_bytes).unwrap_or(usize::MAX);
            let tables = usize::try_from(self.max_limits.table_elements).unwrap_or(usize::MAX);
            pool.total_core_instances(self.pooling.instances)
                .total_memories(self.pooling.instances)
                .total_tables(self.pooling.instances.saturating_mul(MAX_TABLES))
                .total_component_instances(0)
                .max_core_instance_size(MAX_INSTANCE_SIZE)
                .max_memories_per_module(1)
                .max_tables_per_module(MAX_TABLES)
                .max_memory_size(memory)
                .table_elements(tables)
                .linear_memory_keep_resident(MEMORY_KEEP_RESIDENT)
                .table_keep_resident(TABLE_KEEP_RESIDENT);
            c.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        } else {
            c.allocation_strategy(InstanceAllocationStrategy::OnDemand);
        }
        Engine::new(&c).map_err(|e| SandboxError::Engine(format!("{e:#}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_is_backstop_over_tick_and_never_zero() {
        let c = SandboxConfig::default();
        assert_eq!(c.deadline_ticks(), 200);
        let zero = SandboxConfig {
            epoch_tick: Duration::ZERO,
            wall_clock_backstop: Duration::ZERO,
            ..c
        };
        assert_eq!(zero.tick(), Duration::from_millis(1));
        assert_eq!(zero.deadline_ticks(), 1);
    }

    #[test]
    fn pure_is_always_available_and_wasi_follows_the_feature() {
        assert!(profile_available(Profile::Pure));
        assert_eq!(profile_available(Profile::Wasi), cfg!(feature = "wasi"));
    }
}
