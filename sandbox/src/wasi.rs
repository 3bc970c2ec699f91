//! The `wasi` profile: a deterministic `wasi_snapshot_preview1`.
//!
//! - no args, no environment, no preopened directories, no sockets, empty stdin;
//! - the wall clock and the monotonic clock both read the session timestamp of the
//!   [`DeriveInput`] (`timestamp` seconds, 0 ns), so `clock_time_get` is the same on the host
//!   and the client;
//! - `random_get` is replaced by a deterministic stream (see [`RandomStream`]);
//! - `poll_oneoff` is replaced by one that returns at once (every clock subscription fires
//!   immediately; fd subscriptions report `EBADF`), and `sched_yield` is a no-op: a guest that
//!   "sleeps" in a loop burns fuel and ends in `OutOfFuel`;
//! - stdout and stderr go to one shared in-memory buffer of [`DIAGNOSTICS_CAP`] bytes, returned
//!   as [`Derived::diagnostics`](crate::Derived::diagnostics). Writes beyond it are short or
//!   fail with an errno; the guest carries on;
//! - every host call costs [`HOSTCALL_FUEL`] on entry and may copy at most [`HOSTCALL_BYTES`]
//!   out of the guest, so host work is charged to fuel like the guest's own.

use crate::error::SandboxError;
use crate::limits::{LimitHit, Limiter};
use crate::state::HostState;
use crate::validate::WASI_MODULE;
use kasane_abi::DeriveInput;
use sha2::{Digest as _, Sha256};
use std::time::Duration;
use wasmtime::{
    AsContextMut as _, CallHook, Caller, Engine, Extern, Linker, Store, StoreContextMut, Trap,
};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};

/// Most bytes of stdout + stderr kept from a WASI transform.
pub const DIAGNOSTICS_CAP: usize = 4096;

/// Most bytes one WASI host call may copy out of the guest (wasmtime's "hostcall fuel",
/// 128 MiB by default): a longer path, iovec list or write buffer fails with `ENOMEM`
/// before anything is copied.
pub const HOSTCALL_BYTES: usize = 64 * 1024;

/// Fuel every WASI host call costs on entry, Kasane's own included: what copying
/// [`HOSTCALL_BYTES`] costs at `random_get`'s rate of one unit per 8 bytes. So no call, not
/// even one that fails after copying, does more host work than the guest paid for, and a
/// guest that calls the host in a loop runs out of fuel, not into the wall-clock backstop.
pub const HOSTCALL_FUEL: u64 = 1 + HOSTCALL_BYTES as u64 / 8;

const ERRNO_SUCCESS: i32 = 0;
const ERRNO_BADF: u16 = 8;
const ERRNO_FAULT: i32 = 21;
const ERRNO_INVAL: i32 = 28;
const ERRNO_NOMEM: i32 = 48;
/// `sizeof(subscription)` and `sizeof(event)` in wasi_snapshot_preview1.
const SUBSCRIPTION_LEN: usize = 48;
const EVENT_LEN: usize = 32;

/// Store state of the WASI profile.
pub(crate) struct WasiState {
    limiter: Limiter,
    ctx: WasiP1Ctx,
    output: MemoryOutputPipe,
    random: RandomStream,
}

impl WasiState {
    pub(crate) fn new(limiter: Limiter, input: &DeriveInput<'_>) -> Self {
        let output = MemoryOutputPipe::new(DIAGNOSTICS_CAP);
        let random = RandomStream::new(input);
        let mut seed = random.clone();
        let mut backstop = [0u8; 64];
        seed.fill(&mut backstop);
        let mut b = WasiCtxBuilder::new();
        b.stdout(output.clone())
            .stderr(output.clone())
            .wall_clock(SessionClock(input.timestamp))
            .monotonic_clock(SessionClock(input.timestamp))
            // Unreachable from preview 1 (random_get is replaced below), but never leave a
            // real entropy source in a context that must be deterministic.
            .secure_random(wasmtime_wasi::Deterministic::new(backstop.to_vec()))
            .insecure_random(wasmtime_wasi::Deterministic::new(backstop.to_vec()))
            .insecure_random_seed(0)
            .allow_blocking_current_thread(false)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        Self {
            limiter,
            ctx: b.build_p1(),
            output,
            random,
        }
    }
}

impl HostState for WasiState {
    fn limiter(&mut self) -> &mut Limiter {
        &mut self.limiter
    }
    fn limit_hit(&self) -> Option<LimitHit> {
        self.limiter.hit
    }
    fn diagnostics(&self) -> Vec<u8> {
        self.output.contents().to_vec()
    }
    fn prepare(store: &mut Store<Self>) {
        store.set_hostcall_fuel(HOSTCALL_BYTES);
        store.call_hook(|mut ctx, hook| match hook {
            CallHook::CallingHost => charge_fuel(&mut ctx, HOSTCALL_FUEL),
            _ => Ok(()),
        });
    }
}

/// Both WASI clocks: the session timestamp, frozen for the whole call.
struct SessionClock(u64);

impl HostWallClock for SessionClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::from_secs(self.0)
    }
}

impl HostMonotonicClock for SessionClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        self.0.saturating_mul(1_000_000_000)
    }
}

/// The bytes `random_get` returns: a SHA-256 counter stream.
///
/// Block `i` (32 bytes) is `SHA-256("kasane/wasi-random/v1" ‖ transcript_hash ‖ counter (u64
/// LE) ‖ seq (u64 LE) ‖ purpose (u8) ‖ direction (u8) ‖ i (u64 LE))`; successive `random_get`
/// calls read successive bytes of the stream. So a transform sees the same "random" bytes on
/// the host and the client, and different ones in every session and message. It is NOT secret
/// from anyone who knows the transcript: WASI randomness must never be used as a key.
#[derive(Clone)]
pub(crate) struct RandomStream {
    prefix: Sha256,
    block: u64,
    buf: [u8; 32],
    used: usize,
}

impl RandomStream {
    pub(crate) fn new(input: &DeriveInput<'_>) -> Self {
        let mut prefix = Sha256::new();
        prefix.update(b"kasane/wasi-random/v1");
        prefix.update(input.transcript_hash);
        prefix.update(input.counter.to_le_bytes());
        prefix.update(input.seq.to_le_bytes());
        prefix.update([input.purpose.as_u8(), input.direction.as_u8()]);
        Self {
            prefix,
            block: 0,
            buf: [0; 32],
            used: 32,
        }
    }

    pub(crate) fn fill(&mut self, out: &mut [u8]) {
        for b in out {
            if self.used == self.buf.len() {
                let mut h = self.prefix.clone();
                h.update(self.block.to_le_bytes());
                self.buf = h.finalize().into();
                self.block = self.block.wrapping_add(1);
                self.used = 0;
            }
            *b = self.buf[self.used];
            self.used += 1;
        }
    }
}

/// Charges host work to the guest's fuel, so no host call is free.
fn charge(caller: &mut Caller<'_, WasiState>, units: u64) -> wasmtime::Result<()> {
    charge_fuel(&mut caller.as_context_mut(), units)
}

fn charge_fuel(ctx: &mut StoreContextMut<'_, WasiState>, units: u64) -> wasmtime::Result<()> {
    let left = ctx.get_fuel()?;
    match left.checked_sub(units) {
        Some(rest) => ctx.set_fuel(rest),
        None => {
            ctx.set_fuel(0)?;
            Err(Trap::OutOfFuel.into())
        }
    }
}

fn memory(caller: &mut Caller<'_, WasiState>) -> Option<wasmtime::Memory> {
    match caller.get_export(kasane_abi::EXPORT_MEMORY) {
        Some(Extern::Memory(m)) => Some(m),
        _ => None,
    }
}

fn range(ptr: i32, len: usize) -> Option<std::ops::Range<usize>> {
    let start = ptr as u32 as usize;
    Some(start..start.checked_add(len)?)
}

fn random_get(mut caller: Caller<'_, WasiState>, buf: i32, len: i32) -> wasmtime::Result<i32> {
    let len = len as u32 as usize;
    charge(&mut caller, 1 + (len as u64) / 8)?;
    let Some(mem) = memory(&mut caller) else {
        return Ok(ERRNO_FAULT);
    };
    let (data, state) = mem.data_and_store_mut(&mut caller);
    let Some(dst) = range(buf, len).and_then(|r| data.get_mut(r)) else {
        return Ok(ERRNO_FAULT);
    };
    state.random.fill(dst);
    Ok(ERRNO_SUCCESS)
}

fn poll_oneoff(
    mut caller: Caller<'_, WasiState>,
    subs: i32,
    events: i32,
    nsubs: i32,
    nevents: i32,
) -> wasmtime::Result<i32> {
    let n = nsubs as u32 as usize;
    if n == 0 {
        return Ok(ERRNO_INVAL);
    }
    // What it copies out of the guest is capped as wasmtime-wasi's own calls are.
    if n.saturating_mul(SUBSCRIPTION_LEN) > HOSTCALL_BYTES {
        return Ok(ERRNO_NOMEM);
    }
    charge(&mut caller, 1 + n as u64)?;
    let Some(mem) = memory(&mut caller) else {
        return Ok(ERRNO_FAULT);
    };
    let data = mem.data_mut(&mut caller);
    let (Some(subs_r), Some(events_r), Some(count_r)) = (
        n.checked_mul(SUBSCRIPTION_LEN).and_then(|l| range(subs, l)),
        n.checked_mul(EVENT_LEN).and_then(|l| range(events, l)),
        range(nevents, 4),
    ) else {
        return Ok(ERRNO_FAULT);
    };
    let Some(subscriptions) = data.get(subs_r).map(<[u8]>::to_vec) else {
        return Ok(ERRNO_FAULT);
    };
    let mut out = vec![0u8; n * EVENT_LEN];
    for (sub, ev) in subscriptions
        .chunks_exact(SUBSCRIPTION_LEN)
        .zip(out.chunks_exact_mut(EVENT_LEN))
    {
        // subscription: userdata u64 @0, tag u8 @8; event: userdata u64 @0, errno u16 @8, type u8 @10.
        let tag = sub[8];
        let errno = match tag {
            0 => 0,
            1 | 2 => ERRNO_BADF,
            _ => return Ok(ERRNO_INVAL),
        };
        ev[0..8].copy_from_slice(&sub[0..8]);
        ev[8..10].copy_from_slice(&errno.to_le_bytes());
        ev[10] = tag;
    }
    let Some(dst) = data.get_mut(events_r) else {
        return Ok(ERRNO_FAULT);
    };
    dst.copy_from_slice(&out);
    let Some(count) = data.get_mut(count_r) else {
        return Ok(ERRNO_FAULT);
    };
    count.copy_from_slice(&(n as u32).to_le_bytes());
    Ok(ERRNO_SUCCESS)
}

/// The WASI-profile linker: wasmtime-wasi's preview 1, with `random_get` and `poll_oneoff`
/// replaced by the deterministic versions above.
pub(crate) fn linker(engine: &Engine) -> Result<Linker<WasiState>, SandboxError> {
    let err = |e: wasmtime::Error| SandboxError::Engine(format!("WASI linker: {e:#}"));
    let mut linker = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut WasiState| &mut s.ctx)
        .map_err(err)?;
    linker.allow_shadowing(true);
    linker
        .func_wrap(WASI_MODULE, "random_get", random_get)
        .map_err(err)?;
    linker
        .func_wrap(WASI_MODULE, "poll_oneoff", poll_oneoff)
        .map_err(err)?;
    linker.allow_shadowing(false);
    Ok(linker)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_stream_is_deterministic_and_continuous() {
        let mut input = DeriveInput::empty();
        input.transcript_hash = [7; 32];
        let mut a = RandomStream::new(&input);
        let mut whole = [0u8; 100];
        a.fill(&mut whole);
        let mut b = RandomStream::new(&input);
        let (mut x, mut y) = ([0u8; 33], [0u8; 67]);
        b.fill(&mut x);
        b.fill(&mut y);
        assert_eq!(&whole[..33], &x);
        assert_eq!(&whole[33..], &y);
        let first: [u8; 32] = Sha256::new()
            .chain_update(b"kasane/wasi-random/v1")
            .chain_update([7; 32])
            .chain_update(0u64.to_le_bytes())
            .chain_update(0u64.to_le_bytes())
            .chain_update([input.purpose.as_u8(), input.direction.as_u8()])
            .chain_update(0u64.to_le_bytes())
            .finalize()
            .into();
        assert_eq!(&whole[..32], &first);
        input.transcript_hash = [8; 32];
        let mut c = RandomStream::new(&input);
        let mut other = [0u8; 100];
        c.fill(&mut other);
        assert_ne!(whole, other);
    }
}
