//! The Kasane sandbox: runs transform modules (ABI v1, see [`kasane_abi`]) in wasmtime so that
//! host and client get bit-identical keys, and a hostile module gets a typed error — never a
//! hang, a panic or an escape.
//!
//! # Module map
//! - `config`: [`SandboxConfig`], [`Profile`], [`Allocator`], [`Optimization`], and the one
//!   function that configures the wasmtime engine (NaN canonicalization, fuel, the epoch
//!   backstop, the refused wasm features, pooling or on-demand memory, the opt level).
//! - `limits`: [`Limits`] (fuel, memory, tables, stack, module size, output length) and the
//!   per-store resource limiter that turns a refused `memory.grow` into
//!   [`SandboxError::MemoryLimit`].
//! - `validate`: static checks with `wasmparser` before wasmtime sees any byte: size, binary
//!   format, feature set, imports per profile, ABI exports and signatures; [`ModuleInfo`].
//! - `sandbox`: [`Sandbox`] (engine, linkers, epoch ticker) and [`Transform`] (one
//!   `InstancePre`) with the derive call and the classification of traps.
//! - `warm`: the warm instances of [`Transform::derive_warm`]: a snapshot of memory and
//!   mutable globals after initialization, restored after each call; a small pool per
//!   transform.
//! - `expose`: the exports a warm instance needs (every mutable global), added to the
//!   validated bytes before compilation.
//! - `state`: the per-store `HostState` (limiter, diagnostics) both profiles implement, and
//!   the pure profile's; a leaf under `sandbox` and `wasi`.
//! - `wasi` (feature `wasi`): the deterministic `wasi_snapshot_preview1` of the
//!   [`Profile::Wasi`] profile.
//! - `cache`: [`CompileCache`], compiled modules on disk behind an HMAC integrity check; its
//!   `load` submodule holds the crate's only `unsafe` (`Module::deserialize`).
//! - `output`: [`Derived`] and the zeroizing [`Key`].
//! - `error`: [`SandboxError`].
//!
//! # What a hostile module gets
//! Every case is a typed [`SandboxError`]; the [`Sandbox`] keeps serving other calls
//! (`tests/hostile.rs` pins each row).
//!
//! | the module… | error | when |
//! |---|---|---|
//! | is larger than `module_bytes` | [`SandboxError::ModuleTooLarge`] | load, before parsing |
//! | is not binary wasm (text, garbage) | [`SandboxError::InvalidWasm`] | load |
//! | uses threads/shared memory, memory64, relaxed SIMD, multi-memory, GC, … or is a component | [`SandboxError::UnsupportedFeature`] | load |
//! | imports anything (pure), or anything but a `wasi_snapshot_preview1` function (wasi) | [`SandboxError::ForbiddenImport`] | load |
//! | lacks `memory` / `kasane_abi_v1` / `kasane_alloc` / `kasane_derive`, or has a wrong signature | [`SandboxError::BadAbi`] | load |
//! | declares more memory or table elements than its limits, or more than [`MAX_TABLES`] tables | [`SandboxError::MemoryLimit`] / [`SandboxError::TableLimit`] | load |
//! | loops (in `kasane_derive`, a start function, `_initialize`, or through host calls) | [`SandboxError::OutOfFuel`] | derive |
//! | grows memory or a table past its limit | [`SandboxError::MemoryLimit`] / [`SandboxError::TableLimit`] | derive |
//! | recurses too deep | [`SandboxError::StackOverflow`] | derive |
//! | traps (`unreachable`, its own out-of-bounds access, `proc_exit`, …) | [`SandboxError::Trap`] | derive |
//! | returns a length outside `1..=output_len`, or pointers outside its memory | [`SandboxError::BadOutput`] | derive |
//! | returns a negative code | [`SandboxError::Guest`] | derive |
//! | is still running when the wall-clock backstop fires (never with sane fuel) | [`SandboxError::WallClockTimeout`] | derive |
//!
//! # Example
//! ```
//! use kasane_sandbox::{Limits, Profile, Sandbox, SandboxConfig};
//!
//! // A transform that returns the first 4 bytes of its input.
//! let wasm = wat::parse_str(r#"(module
//!     (memory (export "memory") 1)
//!     (func (export "kasane_abi_v1"))
//!     (global $next (mut i32) (i32.const 1024))
//!     (func (export "kasane_alloc") (param $len i32) (result i32)
//!         (global.get $next)
//!         (global.set $next (i32.add (global.get $next) (local.get $len))))
//!     (func (export "kasane_derive") (param $in i32) (param $in_len i32)
//!                                    (param $out i32) (param $cap i32) (result i32)
//!         (memory.copy (local.get $out) (local.get $in) (i32.const 4))
//!         (i32.const 4)))"#)?;
//!
//! let sandbox = Sandbox::new(SandboxConfig::default())?;
//! let transform = sandbox.load(&wasm, Profile::Pure, Limits::default())?;
//! let derived = transform.derive(&kasane_abi::DeriveInput::empty())?;
//! assert_eq!(derived.key.as_bytes(), &[1, 1, 0, 0]); // version 1, purpose auth, direction 0
//! assert!(derived.fuel_used > 0);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(unsafe_code)]

mod cache;
mod call;
mod config;
mod error;
mod expose;
mod limits;
mod output;
mod sandbox;
mod state;
mod validate;
mod warm;
#[cfg(feature = "wasi")]
mod wasi;

pub use cache::{CacheOutcome, CompileCache};
pub use config::{
    Allocator, Optimization, PoolingSizes, Profile, SandboxConfig, profile_available,
};
pub use error::SandboxError;
pub use limits::Limits;
pub use output::{Derived, Key};
pub use sandbox::{QUICK_FUEL, Sandbox, Transform};
pub use validate::{ModuleInfo, WASI_MODULE};
#[cfg(feature = "wasi")]
pub use wasi::{DIAGNOSTICS_CAP, HOSTCALL_BYTES, HOSTCALL_FUEL};

pub use kasane_modcheck::MAX_TABLES;

/// Most bytes of stdout + stderr kept from a WASI transform.
#[cfg(not(feature = "wasi"))]
pub const DIAGNOSTICS_CAP: usize = 4096;

pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest as _;
    sha2::Sha256::digest(bytes).into()
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    #[test]
    fn handles_are_shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<crate::Sandbox>();
        assert_send_sync::<crate::Transform>();
        assert_send_sync::<crate::CompileCache>();
        assert_send_sync::<crate::SandboxError>();
    }

    #[test]
    fn hex_is_lowercase_and_complete() {
        assert_eq!(crate::hex(&[0x00, 0xab, 0x0f]), "00ab0f");
    }
}
