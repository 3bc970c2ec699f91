//! The exported entry points behind [`export_transform!`](crate::export_transform).
//!
//! The host instantiates a fresh instance for every call and then calls, in this order,
//! `kasane_alloc(in_len)`, `kasane_alloc(out_cap)` and `kasane_derive`. So the allocator is a
//! bump allocator over one static arena sized for the largest input plus the largest output;
//! nothing is ever freed. `kasane_derive` only accepts ranges that lie inside what the arena
//! has handed out, which is what makes building slices over them sound.
#![allow(
    unsafe_code,
    reason = "the one place of the guest workspace that turns ABI pointers into slices"
)]

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicUsize, Ordering};

use kasane_abi::{DeriveInput, GuestError, MAX_INPUT_LEN, MAX_OUTPUT_LEN};

use crate::DeriveFn;

/// Alignment of every allocation.
const ALIGN: usize = 8;
/// Room for one maximal input and one maximal output, each rounded up to [`ALIGN`].
const ARENA_LEN: usize = MAX_INPUT_LEN + MAX_OUTPUT_LEN + 2 * ALIGN;

#[repr(C, align(16))]
struct Arena(UnsafeCell<[u8; ARENA_LEN]>);

// SAFETY: wasm32 guests are single-threaded (no threads or shared memory: the host refuses
// them), and the arena is only reached through `alloc`/`derive`, which never hold two
// overlapping references to it.
unsafe impl Sync for Arena {}

static ARENA: Arena = Arena(UnsafeCell::new([0; ARENA_LEN]));
/// Offset of the first free byte in `ARENA`.
static NEXT: AtomicUsize = AtomicUsize::new(0);

fn arena_base() -> *mut u8 {
    ARENA.0.get().cast::<u8>()
}

/// `kasane_alloc(len)`: a pointer to `len` writable bytes inside the arena, or 0 when the
/// request is negative or does not fit.
pub fn alloc(len: i32) -> i32 {
    let Ok(len) = usize::try_from(len) else {
        return 0;
    };
    let start = NEXT.load(Ordering::Relaxed);
    let Some(end) = start.checked_add(len).filter(|&end| end <= ARENA_LEN) else {
        return 0;
    };
    // Round the next start up; `end <= ARENA_LEN` and ARENA_LEN is a multiple of ALIGN.
    NEXT.store(
        end.next_multiple_of(ALIGN).min(ARENA_LEN),
        Ordering::Relaxed,
    );
    let addr = arena_base().wrapping_add(start) as usize;
    // Linear memory addresses of wasm32 fit in i32 (the host refuses memory64); 0 on a
    // foreign target keeps the function total.
    i32::try_from(addr).unwrap_or(0)
}

/// Offset inside the arena of the range `[ptr, ptr + len)`, if the whole range lies within
/// what `alloc` has handed out so far.
fn allocated_offset(ptr: i32, len: i32) -> Option<(usize, usize)> {
    let ptr = usize::try_from(ptr).ok()?;
    let len = usize::try_from(len).ok()?;
    let off = ptr.checked_sub(arena_base() as usize)?;
    let end = off.checked_add(len)?;
    (end <= NEXT.load(Ordering::Relaxed)).then_some((off, len))
}

/// `kasane_derive`: decodes the input, runs `f` and checks the length it returns.
///
/// Returns the number of bytes written at `out_ptr` (`1..=out_cap`), or a negative
/// [`GuestError`] code: `BadInput` when a range was not handed out by `kasane_alloc`, the two
/// ranges overlap, or the input does not decode; `Internal` when `f` claims 0 bytes;
/// `OutputCapacity` when it claims more than `out_cap`.
pub fn derive(in_ptr: i32, in_len: i32, out_ptr: i32, out_cap: i32, f: DeriveFn) -> i32 {
    let (Some((in_off, in_len)), Some((out_off, out_cap))) = (
        allocated_offset(in_ptr, in_len),
        allocated_offset(out_ptr, out_cap),
    ) else {
        return GuestError::BadInput.code();
    };
    if in_off < out_off + out_cap && out_off < in_off + in_len {
        return GuestError::BadInput.code();
    }
    // SAFETY: both ranges lie inside `ARENA` (checked by `allocated_offset`) and do not
    // overlap (checked above), so the shared and the mutable slice alias nothing else; the
    // arena is `UnsafeCell`, only reached here, and the guest is single-threaded. `u8` has
    // no alignment or validity requirement, and the arena is initialised (zeroed static).
    let (input, out) = unsafe {
        (
            core::slice::from_raw_parts(arena_base().add(in_off).cast_const(), in_len),
            core::slice::from_raw_parts_mut(arena_base().add(out_off), out_cap),
        )
    };
    let Ok(input) = DeriveInput::decode(input) else {
        return GuestError::BadInput.code();
    };
    match f(&input, out) {
        Ok(0) => GuestError::Internal.code(),
        Ok(n) if n > out.len() => GuestError::OutputCapacity.code(),
        // n <= out_cap <= ARENA_LEN, far below i32::MAX.
        Ok(n) => i32::try_from(n).unwrap_or(GuestError::Internal.code()),
        Err(e) => e.code(),
    }
}

// A compile-time check that the largest output the ABI allows fits the arena.
const _: () = assert!(MAX_OUTPUT_LEN < ARENA_LEN);
