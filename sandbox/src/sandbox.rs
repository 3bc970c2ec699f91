//! [`Sandbox`] (the engine, its linkers and the epoch ticker) and [`Transform`] (a validated,
//! compiled, linked module: one `InstancePre`, and its pool of warm instances) with the derive
//! call itself: the one ABI v1 call sequence (`Abi::call`) both paths run.

use crate::cache::Lookup;
use crate::call::{call, new_store};
use crate::limits::Limiter;
use crate::state::{HostState, PureState};
use crate::validate::{self, ModuleInfo};
use crate::warm::{Budget, WarmPool};
use crate::{CacheOutcome, CompileCache, Derived, Limits, Profile, SandboxConfig, SandboxError};
use kasane_abi::DeriveInput;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::{Engine, InstancePre, Linker, Module};

/// A wasmtime engine configured for Kasane transforms, with its linkers. Cheap to clone (one
/// `Arc`); share one per process.
///
/// A background thread ticks the engine's epoch every [`SandboxConfig::epoch_tick`] for the
/// wall-clock backstop; it ends by itself once the engine (and every [`Transform`] made from
/// it) is dropped.
#[derive(Clone)]
pub struct Sandbox {
    inner: Arc<SandboxInner>,
}

struct SandboxInner {
    engine: Engine,
    config: SandboxConfig,
    pure: Linker<PureState>,
    #[cfg(feature = "wasi")]
    wasi: Linker<crate::wasi::WasiState>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Builds the engine and starts its epoch ticker.
    pub fn new(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        let engine = config.engine()?;
        let pure = Linker::new(&engine);
        #[cfg(feature = "wasi")]
        let wasi = crate::wasi::linker(&engine)?;
        let weak = engine.weak();
        let tick = config.tick();
        std::thread::Builder::new()
            .name("kasane-epoch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(tick);
                    match weak.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            })
            .map_err(|e| SandboxError::Engine(format!("cannot start the epoch ticker: {e}")))?;
        Ok(Sandbox {
            inner: Arc::new(SandboxInner {
                engine,
                config,
                pure,
                #[cfg(feature = "wasi")]
                wasi,
            }),
        })
    }

    /// The configuration this sandbox was built with.
    pub fn config(&self) -> &SandboxConfig {
        &self.inner.config
    }

    /// The wasmtime engine (for tools that need to inspect it).
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// Checks `wasm` with `wasmparser` only (nothing is compiled): size, binary format,
    /// features, imports for `profile`, ABI exports, declared memory and tables against
    /// `limits` (capped by this sandbox's `max_limits`).
    pub fn validate(
        &self,
        wasm: &[u8],
        profile: Profile,
        limits: &Limits,
    ) -> Result<ModuleInfo, SandboxError> {
        validate::validate(
            wasm,
            profile,
            &limits.capped_by(&self.inner.config.max_limits),
        )
    }

    /// Validates, compiles and links `wasm`. wasmtime only ever sees validated bytes.
    pub fn load(
        &self,
        wasm: &[u8],
        profile: Profile,
        limits: Limits,
    ) -> Result<Transform, SandboxError> {
        let limits = limits.capped_by(&self.inner.config.max_limits);
        let info = validate::validate(wasm, profile, &limits)?;
        let module = compile(&self.inner.engine, wasm)?;
        self.link(&module, profile, limits, info)
    }

    /// Like [`load`](Self::load), but takes the compiled code from `cache` when an entry for
    /// these bytes, this profile and this engine exists and passes its integrity check; on a
    /// miss (or a bad entry) validates, compiles and stores the result. A cache that cannot
    /// be read or written does not fail the load ([`CacheOutcome::Unusable`]).
    ///
    /// A hit does not run wasmparser again: the entry was written for bytes with the same
    /// SHA-256 (computed here from `wasm`) after they validated under the same rules, and it
    /// carries what validation learned. The checks against `limits` (size, declared memory
    /// and tables) run on every load, so a hit and a miss give the same verdict.
    pub fn load_cached(
        &self,
        wasm: &[u8],
        profile: Profile,
        limits: Limits,
        cache: &CompileCache,
    ) -> Result<(Transform, CacheOutcome), SandboxError> {
        let limits = limits.capped_by(&self.inner.config.max_limits);
        validate::precheck(wasm.len(), profile, &limits)?;
        let engine = &self.inner.engine;
        let (module, info, outcome) = match cache.lookup(engine, &crate::sha256(wasm), profile) {
            Lookup::Hit(module, info) => {
                validate::check_limits(&info, &limits)?;
                (module, info, CacheOutcome::Hit)
            }
            Lookup::Compile(outcome) => {
                let info = validate::validate(wasm, profile, &limits)?;
                let module = compile(engine, wasm)?;
                let outcome = match cache.store(engine, &info, profile, &module) {
                    Ok(()) => outcome,
                    Err(SandboxError::Cache(e)) => CacheOutcome::Unusable(e.kind()),
                    Err(e) => return Err(e),
                };
                (module, info, outcome)
            }
        };
        Ok((self.link(&module, profile, limits, info)?, outcome))
    }

    /// The cache-hit half of [`load_cached`](Self::load_cached), for a module known only by
    /// its SHA-256 and length: `None` unless `cache` holds a sound entry for it under this
    /// engine and profile (nothing is validated or compiled here). For a client that warms
    /// the modules its registry lists before a login has named one: the transform must not
    /// run until the module is admitted, with this hash and these limits.
    pub fn load_cached_by_hash(
        &self,
        sha256: &[u8; 32],
        len: usize,
        profile: Profile,
        limits: Limits,
        cache: &CompileCache,
    ) -> Result<Option<Transform>, SandboxError> {
        let limits = limits.capped_by(&self.inner.config.max_limits);
        validate::precheck(len, profile, &limits)?;
        let Lookup::Hit(module, info) = cache.lookup(&self.inner.engine, sha256, profile) else {
            return Ok(None);
        };
        validate::check_limits(&info, &limits)?;
        Ok(Some(self.link(&module, profile, limits, info)?))
    }

    fn link(
        &self,
        module: &Module,
        profile: Profile,
        limits: Limits,
        info: ModuleInfo,
    ) -> Result<Transform, SandboxError> {
        let link_err =
            |e: wasmtime::Error| SandboxError::BadAbi(format!("imports do not link: {e:#}"));
        let pre = match profile {
            Profile::Pure => Pre::Pure(self.inner.pure.instantiate_pre(module).map_err(link_err)?),
            #[cfg(feature = "wasi")]
            Profile::Wasi => Pre::Wasi(self.inner.wasi.instantiate_pre(module).map_err(link_err)?),
            #[cfg(not(feature = "wasi"))]
            Profile::Wasi => return Err(SandboxError::ProfileUnavailable("wasi")),
        };
        let cap = self.inner.config.warm_instances_per_module;
        let warm = match (&pre, cap) {
            (_, 0) => None,
            (Pre::Pure(_), cap) => crate::expose::plan(module).map(|g| WarmPool::new(g, cap)),
            #[cfg(feature = "wasi")]
            (Pre::Wasi(_), _) => None,
        };
        Ok(Transform {
            inner: Arc::new(TransformInner {
                pre,
                info,
                limits,
                profile,
                deadline_ticks: self.inner.config.deadline_ticks(),
                warm,
                last_warm_fuel: AtomicU64::new(u64::MAX),
            }),
        })
    }
}

/// Compiles bytes that [`validate::validate`] accepted, with the exports a warm instance
/// needs (`expose`).
pub(crate) fn compile(engine: &Engine, wasm: &[u8]) -> Result<Module, SandboxError> {
    let exposed = crate::expose::expose(wasm)?;
    Module::from_binary(engine, &exposed)
        .map_err(|e| SandboxError::Engine(format!("compile: {e:#}")))
}

enum Pre {
    Pure(InstancePre<PureState>),
    #[cfg(feature = "wasi")]
    Wasi(InstancePre<crate::wasi::WasiState>),
}

/// A loaded transform: validated, compiled and linked (`InstancePre`), with its module hash,
/// limits and profile. Cheap to clone; keep one per module hash. Each [`derive`](Self::derive)
/// runs in a fresh store and instance, dropped at the end of the call;
/// [`derive_warm`](Self::derive_warm) gives the same results on a few reused instances that
/// all clones share.
#[derive(Clone)]
pub struct Transform {
    inner: Arc<TransformInner>,
}

struct TransformInner {
    pre: Pre,
    info: ModuleInfo,
    limits: Limits,
    profile: Profile,
    deadline_ticks: u64,
    /// Idle warm instances; `None` when this transform is never reused (WASI profile, a
    /// module whose state cannot be restored, or warm reuse disabled).
    warm: Option<WarmPool>,
    /// Fuel the last [`Transform::derive_warm`] call used (`u64::MAX`: none yet, or it
    /// failed): what [`Transform::is_quick`] goes by.
    last_warm_fuel: AtomicU64,
}

/// Fuel under which a warm call counts as quick ([`Transform::is_quick`]): about a
/// millisecond of guest code at most, usually far less (the built-ins use tens of thousands).
pub const QUICK_FUEL: u64 = 1_000_000;

impl std::fmt::Debug for Transform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transform")
            .field("module_hash", &crate::hex(&self.inner.info.sha256))
            .field("profile", &self.inner.profile)
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Transform {
    /// SHA-256 of the module bytes.
    pub fn module_hash(&self) -> [u8; 32] {
        self.inner.info.sha256
    }

    /// The module's profile.
    pub fn profile(&self) -> Profile {
        self.inner.profile
    }

    /// The effective limits (the requested ones capped by the sandbox's `max_limits`).
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// What validation learned about the module.
    pub fn info(&self) -> &ModuleInfo {
        &self.inner.info
    }

    /// Runs the transform on `input`: a fresh instance under the fuel budget (the start
    /// function and `_initialize` included), `kasane_alloc` for the input and the output,
    /// `kasane_derive`, then the output is checked and copied out.
    ///
    /// Hostile behaviour is an error, never a hang or a panic: see [`SandboxError`]. An
    /// out-of-bounds pointer returned by the guest (from `kasane_alloc`, or an output that
    /// does not fit in memory) is [`SandboxError::BadOutput`]; an out-of-bounds access the
    /// guest makes itself is a [`SandboxError::Trap`].
    pub fn derive(&self, input: &DeriveInput<'_>) -> Result<Derived, SandboxError> {
        let bytes = zeroize::Zeroizing::new(input.encode_to_vec()?);
        let limiter = Limiter::new(&self.inner.limits);
        match &self.inner.pre {
            Pre::Pure(pre) => self.run(pre, PureState::new(limiter), &bytes),
            #[cfg(feature = "wasi")]
            Pre::Wasi(pre) => self.run(pre, crate::wasi::WasiState::new(limiter, input), &bytes),
        }
    }

    /// Like [`derive`](Self::derive), with the same key, the same `fuel_used` and the same
    /// error for every input, but on a warm instance when one can be reused: an instance
    /// already instantiated and initialized, whose linear memory and mutable globals are put
    /// back to their post-initialization snapshot after each call, so nothing of one call
    /// reaches the next. The call's fuel budget is what a fresh instance would have left after
    /// its initialization.
    ///
    /// The instance is dropped, not reused, after any error, when its memory grew, or when
    /// the module could change state that cannot be restored (a table, a dropped segment, a
    /// mutable reference-typed global). WASI-profile transforms, whose host state is per call,
    /// and sandboxes with [`SandboxConfig::warm_instances_per_module`] = 0 always take the
    /// fresh path.
    ///
    /// Idle instances are shared by all clones of this transform (so by every session that
    /// uses the module), at most `warm_instances_per_module` of them; each holds one of the
    /// pooling allocator's [`PoolingSizes::instances`](crate::PoolingSizes::instances) slots
    /// for as long as this transform lives.
    pub fn derive_warm(&self, input: &DeriveInput<'_>) -> Result<Derived, SandboxError> {
        self.warm_with(input, &self.inner.limits)
            .unwrap_or_else(|| self.derive(input))
    }

    /// A call on a warm instance under `limits` (the transform's, or fewer fuel), noting its
    /// fuel for [`is_quick`](Self::is_quick); `None` if the transform has no warm instances.
    fn warm_with(
        &self,
        input: &DeriveInput<'_>,
        limits: &Limits,
    ) -> Option<Result<Derived, SandboxError>> {
        let (Pre::Pure(pre), Some(pool)) = (&self.inner.pre, &self.inner.warm) else {
            return None;
        };
        let bytes = match input.encode_to_vec() {
            Ok(b) => zeroize::Zeroizing::new(b),
            Err(e) => return Some(Err(e.into())),
        };
        let budget = Budget {
            limits,
            deadline_ticks: self.inner.deadline_ticks,
            has_initialize: self.inner.info.has_initialize,
        };
        let derived = pool.derive(pre, budget, &bytes);
        let fuel = derived.as_ref().map_or(u64::MAX, |d| d.fuel_used);
        self.inner.last_warm_fuel.store(fuel, Ordering::Relaxed);
        Some(derived)
    }

    /// [`derive_warm`](Self::derive_warm) stopped at [`QUICK_FUEL`], for a caller that runs
    /// it in place (on an async worker) when [`is_quick`](Self::is_quick): whatever the
    /// module does with this input, the call in place burns at most that much. `Ok(None)`: it
    /// needs more (or the transform has no warm instances); run
    /// [`derive_warm`](Self::derive_warm) where a long call may block: its result is the one
    /// this call would have had with the whole budget. A module that is quick for some inputs
    /// and slow for others thus never holds a worker for its slow ones.
    pub fn derive_quick(&self, input: &DeriveInput<'_>) -> Result<Option<Derived>, SandboxError> {
        let limits = Limits {
            fuel: self.inner.limits.fuel.min(QUICK_FUEL),
            ..self.inner.limits
        };
        match self.warm_with(input, &limits) {
            None => Ok(None),
            // Out of the capped budget only: the whole one decides.
            Some(Err(SandboxError::OutOfFuel)) if limits.fuel < self.inner.limits.fuel => Ok(None),
            Some(other) => other.map(Some),
        }
    }

    /// Whether a [`derive_warm`](Self::derive_warm) call can be expected to be quick: the
    /// module runs on warm instances and its last warm call succeeded within [`QUICK_FUEL`].
    /// A caller on an async runtime may then run the call in place instead of handing it to
    /// a blocking thread (a thread hand-off costs more than such a call); the fuel limit still
    /// bounds every call, and a call that turns out slow makes the next ones not quick.
    pub fn is_quick(&self) -> bool {
        self.inner.warm.is_some() && self.inner.last_warm_fuel.load(Ordering::Relaxed) <= QUICK_FUEL
    }

    /// Number of idle warm instances kept for [`derive_warm`](Self::derive_warm), at most
    /// [`SandboxConfig::warm_instances_per_module`]; always 0 for a transform that is never
    /// reused.
    pub fn warm_instances(&self) -> usize {
        self.inner.warm.as_ref().map_or(0, WarmPool::idle)
    }

    /// Bytes of guest memory the idle warm instances keep as their snapshots: only the 4 KiB
    /// pages initialization left non-zero, not the whole declared memory.
    pub fn warm_snapshot_bytes(&self) -> usize {
        self.inner.warm.as_ref().map_or(0, WarmPool::snapshot_bytes)
    }

    fn run<T: HostState>(
        &self,
        pre: &InstancePre<T>,
        state: T,
        input: &[u8],
    ) -> Result<Derived, SandboxError> {
        let limits = &self.inner.limits;
        let mut store = new_store(pre, state, limits, self.inner.deadline_ticks)?;

        let result = call(
            pre,
            &mut store,
            input,
            limits.out_cap(),
            self.inner.info.has_initialize,
        );
        let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let key = result.map_err(|f| f.classify(store.data().limit_hit()))?;
        Ok(Derived {
            key,
            fuel_used,
            diagnostics: store.data().diagnostics(),
        })
    }
}
