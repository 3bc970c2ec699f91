//! [`Sandbox`] (the engine, its linkers and the epoch ticker) and [`Transform`] (a validated,
//! compiled, linked module: one `InstancePre`, and its pool of warm instances) with the derive
//! call itself: the one ABI v1 call sequence (`Abi::call`) both paths run.

use crate::cache::Lookup;
use crate::limits::{LimitExceeded, LimitHit, Limiter};
use crate::state::{HostState, PureState};
use crate::validate::{self, ModuleInfo};
use crate::warm::{Budget, WarmPool};
use crate::{
    CacheOutcome, CompileCache, Derived, Key, Limits, Profile, SandboxConfig, SandboxError,
};
use kasane_abi::{DeriveInput, EXPORT_ALLOC, EXPORT_DERIVE, EXPORT_MEMORY, EXPORT_WASI_INITIALIZE};
use std::sync::Arc;
use wasmtime::{Engine, Instance, InstancePre, Linker, Memory, Module, Store, Trap, TypedFunc};

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
    /// miss (or a bad entry) validates, compiles and stores the result.
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
        let (module, info, outcome) = match cache.lookup(engine, &crate::sha256(wasm), profile)? {
            Lookup::Hit(module, info) => {
                validate::check_limits(&info, &limits)?;
                (module, info, CacheOutcome::Hit)
            }
            Lookup::Compile(outcome) => {
                let info = validate::validate(wasm, profile, &limits)?;
                let module = compile(engine, wasm)?;
                cache.store(engine, &info, profile, &module)?;
                (module, info, outcome)
            }
        };
        Ok((self.link(&module, profile, limits, info)?, outcome))
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
}

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
        let (Pre::Pure(pre), Some(pool)) = (&self.inner.pre, &self.inner.warm) else {
            return self.derive(input);
        };
        let bytes = zeroize::Zeroizing::new(input.encode_to_vec()?);
        let budget = Budget {
            limits: &self.inner.limits,
            deadline_ticks: self.inner.deadline_ticks,
            has_initialize: self.inner.info.has_initialize,
        };
        pool.derive(pre, budget, &bytes)
    }

    /// Number of idle warm instances kept for [`derive_warm`](Self::derive_warm), at most
    /// [`SandboxConfig::warm_instances_per_module`]; always 0 for a transform that is never
    /// reused.
    pub fn warm_instances(&self) -> usize {
        self.inner.warm.as_ref().map_or(0, WarmPool::idle)
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

/// A store for one instance of `pre`: the limiter, the whole fuel budget and the wall-clock
/// backstop.
pub(crate) fn new_store<T: HostState>(
    pre: &InstancePre<T>,
    state: T,
    limits: &Limits,
    deadline_ticks: u64,
) -> Result<Store<T>, SandboxError> {
    let mut store = Store::new(pre.module().engine(), state);
    store.limiter(|s| s.limiter());
    store
        .set_fuel(limits.fuel)
        .map_err(|e| SandboxError::Engine(format!("set_fuel: {e:#}")))?;
    store.set_epoch_deadline(deadline_ticks);
    store.epoch_deadline_trap();
    Ok(store)
}

/// A failure inside one call, before classification.
pub(crate) enum Failure {
    /// wasmtime failed while instantiating (not necessarily a trap).
    Instantiate(wasmtime::Error),
    /// wasmtime failed inside a guest call.
    Call(wasmtime::Error),
    /// Already typed.
    Typed(SandboxError),
}

impl From<SandboxError> for Failure {
    fn from(e: SandboxError) -> Self {
        Failure::Typed(e)
    }
}

impl Failure {
    pub(crate) fn classify(self, hit: Option<LimitHit>) -> SandboxError {
        let (err, in_call) = match self {
            Failure::Typed(e) => return e,
            Failure::Instantiate(e) => (e, false),
            Failure::Call(e) => (e, true),
        };
        // The limiter's record comes first: a guest cannot turn a refused grow into anything
        // else, because the refusal itself traps.
        let hit = hit.or_else(|| err.downcast_ref::<LimitExceeded>().map(|l| l.0));
        match hit {
            Some(LimitHit::Memory) => return SandboxError::MemoryLimit,
            Some(LimitHit::Table) => return SandboxError::TableLimit,
            None => {}
        }
        if let Some(trap) = err.downcast_ref::<Trap>() {
            return match trap {
                Trap::OutOfFuel => SandboxError::OutOfFuel,
                Trap::StackOverflow => SandboxError::StackOverflow,
                Trap::Interrupt => SandboxError::WallClockTimeout,
                other => SandboxError::Trap(other.to_string()),
            };
        }
        #[cfg(feature = "wasi")]
        if let Some(exit) = err.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return SandboxError::Trap(format!("proc_exit({})", exit.0));
        }
        if in_call {
            SandboxError::Trap(format!("{err:#}"))
        } else {
            SandboxError::Engine(format!("instantiate: {err:#}"))
        }
    }
}

/// The ABI v1 call sequence on a fresh instance. Returns the key or an unclassified failure.
fn call<T: HostState>(
    pre: &InstancePre<T>,
    store: &mut Store<T>,
    input: &[u8],
    out_cap: usize,
    has_initialize: bool,
) -> Result<Key, Failure> {
    let instance = initialize(pre, store, has_initialize)?;
    Abi::of(instance, store)?.call(store, input, out_cap)
}

/// Instantiates (running any start function) and calls `_initialize` when there is one.
pub(crate) fn initialize<T: HostState>(
    pre: &InstancePre<T>,
    store: &mut Store<T>,
    has_initialize: bool,
) -> Result<Instance, Failure> {
    let instance = pre.instantiate(&mut *store).map_err(Failure::Instantiate)?;
    if has_initialize {
        let init: TypedFunc<(), ()> = instance
            .get_typed_func(&mut *store, EXPORT_WASI_INITIALIZE)
            .map_err(|_| abi_missing(EXPORT_WASI_INITIALIZE))?;
        init.call(&mut *store, ()).map_err(Failure::Call)?;
    }
    Ok(instance)
}

fn abi_missing(what: &str) -> SandboxError {
    SandboxError::BadAbi(format!("export {what} unavailable"))
}

/// The ABI v1 exports of an initialized instance.
pub(crate) struct Abi {
    pub(crate) memory: Memory,
    alloc: TypedFunc<i32, i32>,
    derive: TypedFunc<(i32, i32, i32, i32), i32>,
}

impl Abi {
    /// Looks the exports up.
    pub(crate) fn of<T>(instance: Instance, store: &mut Store<T>) -> Result<Abi, Failure> {
        Ok(Abi {
            memory: instance
                .get_memory(&mut *store, EXPORT_MEMORY)
                .ok_or_else(|| abi_missing(EXPORT_MEMORY))?,
            alloc: instance
                .get_typed_func(&mut *store, EXPORT_ALLOC)
                .map_err(|_| abi_missing(EXPORT_ALLOC))?,
            derive: instance
                .get_typed_func(&mut *store, EXPORT_DERIVE)
                .map_err(|_| abi_missing(EXPORT_DERIVE))?,
        })
    }

    /// `kasane_alloc` for the input and the output, the input written, `kasane_derive`, the
    /// output checked and copied out. Returns the key or an unclassified failure.
    pub(crate) fn call<T>(
        &self,
        store: &mut Store<T>,
        input: &[u8],
        out_cap: usize,
    ) -> Result<Key, Failure> {
        // Both lengths are bounded by the ABI (64 KiB input, 64 bytes output).
        let in_len = i32::try_from(input.len())
            .map_err(|_| SandboxError::Engine("input longer than i32::MAX".into()))?;
        let out_len = i32::try_from(out_cap)
            .map_err(|_| SandboxError::Engine("output cap longer than i32::MAX".into()))?;
        let in_ptr = self
            .alloc
            .call(&mut *store, in_len)
            .map_err(Failure::Call)?;
        let out_ptr = self
            .alloc
            .call(&mut *store, out_len)
            .map_err(Failure::Call)?;
        for (what, ptr) in [("input", in_ptr), ("output", out_ptr)] {
            if ptr == 0 {
                return Err(SandboxError::BadOutput(format!(
                    "{EXPORT_ALLOC} returned 0 for the {what} buffer"
                ))
                .into());
            }
        }
        self.memory
            .write(&mut *store, guest_addr(in_ptr), input)
            .map_err(|_| {
                SandboxError::BadOutput(format!(
                    "{EXPORT_ALLOC} returned an input pointer outside memory"
                ))
            })?;

        let ret = self
            .derive
            .call(&mut *store, (in_ptr, in_len, out_ptr, out_len))
            .map_err(Failure::Call)?;
        if ret < 0 {
            return Err(SandboxError::Guest(ret).into());
        }
        let n = usize::try_from(ret).unwrap_or(usize::MAX);
        if n < kasane_abi::MIN_OUTPUT_LEN || n > out_cap {
            return Err(SandboxError::BadOutput(format!(
                "returned length {n}, expected {}..={out_cap}",
                kasane_abi::MIN_OUTPUT_LEN
            ))
            .into());
        }
        let mut key = zeroize::Zeroizing::new(vec![0u8; n]);
        self.memory
            .read(&*store, guest_addr(out_ptr), &mut key)
            .map_err(|_| SandboxError::BadOutput("output range lies outside memory".into()))?;
        Ok(Key::new(std::mem::take(&mut *key)))
    }
}

/// A guest pointer is an unsigned 32-bit address carried in an `i32`.
fn guest_addr(ptr: i32) -> usize {
    // Reinterpreting the bits is the ABI: wasm32 addresses are u32.
    ptr as u32 as usize
}
