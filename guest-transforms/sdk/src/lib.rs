//! `kasane-guest`: the guest side of the Kasane transform ABI v1, for transforms written in
//! Rust (`no_std`, no allocator, no imports).
//!
//! A transform is one function over the decoded input; [`export_transform!`] turns it into
//! a module with the exports the host expects (`memory`, `kasane_abi_v1`, `kasane_alloc`,
//! `kasane_derive`).
//!
//! # Module map
//! - [`glue`]: the exported entry points behind the macro — a bump allocator over a static
//!   arena and the `kasane_derive` driver (decode, call, check the length). The only `unsafe`
//!   code of the guest workspace lives here.
//! - [`ctx`]: the byte strings the built-in specifications hash (docs/TRANSFORMS.md): `ctx`
//!   streamed without allocation, `lp(x)`, `R`, and output helpers.
//! - `panic` (feature `panic-handler`, wasm32 only): a panic handler that traps.
//!
//! # Example
//! ```ignore
//! #![no_std]
//! use kasane_guest::abi::{DeriveInput, GuestError};
//!
//! kasane_guest::export_transform!(derive);
//!
//! fn derive(input: &DeriveInput<'_>, out: &mut [u8]) -> Result<usize, GuestError> {
//!     let key = input.responses.get(0).ok_or(GuestError::MissingInput)?;
//!     kasane_guest::write_output(out, key.get(..16).ok_or(GuestError::MissingInput)?)
//! }
//! ```
#![no_std]

pub use kasane_abi as abi;

pub mod ctx;
pub mod glue;
#[cfg(all(target_arch = "wasm32", feature = "panic-handler"))]
mod panic;

pub use ctx::{R_MAX_LEN, ctx_chunks, lp_chunks, lp_concat, require_responses, write_output};

/// The signature of a transform: decoded input in, key material written to `out` (whose
/// length is the host's `out_cap`), returns the number of bytes written (`1..=out.len()`).
pub type DeriveFn = fn(&abi::DeriveInput<'_>, &mut [u8]) -> Result<usize, abi::GuestError>;

/// Exports the ABI v1 entry points for `derive`, a [`DeriveFn`].
///
/// Use it once per transform crate (a `cdylib`), at the crate root.
#[macro_export]
macro_rules! export_transform {
    ($derive:path) => {
        /// Marks the module as Kasane ABI v1; never called.
        #[allow(unsafe_code, reason = "an ABI export needs an unmangled name")]
        #[unsafe(no_mangle)]
        pub extern "C" fn kasane_abi_v1() {}

        /// ABI v1 allocator: a pointer to `len` writable bytes, or 0.
        #[allow(unsafe_code, reason = "an ABI export needs an unmangled name")]
        #[unsafe(no_mangle)]
        pub extern "C" fn kasane_alloc(len: i32) -> i32 {
            $crate::glue::alloc(len)
        }

        /// ABI v1 entry point: key material length, or a negative `GuestError` code.
        #[allow(unsafe_code, reason = "an ABI export needs an unmangled name")]
        #[unsafe(no_mangle)]
        pub extern "C" fn kasane_derive(
            in_ptr: i32,
            in_len: i32,
            out_ptr: i32,
            out_cap: i32,
        ) -> i32 {
            const DERIVE: $crate::DeriveFn = $derive;
            $crate::glue::derive(in_ptr, in_len, out_ptr, out_cap, DERIVE)
        }
    };
}
