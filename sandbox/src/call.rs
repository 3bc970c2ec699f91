//! One derive call inside a wasmtime store, shared by the fresh path ([`crate::Transform`])
//! and warm instances ([`crate::warm`]): the store with its limits ([`new_store`]), the ABI v1
//! call sequence ([`initialize`], [`Abi`], [`call`]) and the classification of what failed
//! ([`Failure`]).

use crate::limits::{LimitExceeded, LimitHit};
use crate::state::HostState;
use crate::{Key, Limits, SandboxError};
use kasane_abi::{EXPORT_ALLOC, EXPORT_DERIVE, EXPORT_MEMORY, EXPORT_WASI_INITIALIZE};
use wasmtime::{Instance, InstancePre, Memory, Store, Trap, TypedFunc};

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
    T::prepare(&mut store);
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
pub(crate) fn call<T: HostState>(
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
