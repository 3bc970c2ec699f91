//! [`SandboxError`]: every way loading or running a transform can fail.

use kasane_abi::{EncodeError, GuestError};

/// Why a transform could not be loaded or run.
///
/// Guest failures are values, never panics: a module that loops, grows memory, overflows its
/// stack, traps or breaks the ABI gets one of these, and the [`Sandbox`](crate::Sandbox) keeps
/// serving other calls.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// The fuel budget ran out (an endless loop, or a budget too small for the work).
    #[error("transform ran out of fuel")]
    OutOfFuel,
    /// The guest asked for more linear memory than its limit (at instantiation or through
    /// `memory.grow`).
    #[error("transform exceeded its linear memory limit")]
    MemoryLimit,
    /// The guest asked for more table elements than its limit.
    #[error("transform exceeded its table size limit")]
    TableLimit,
    /// The guest exhausted its wasm stack (deep or endless recursion).
    #[error("transform overflowed its wasm stack")]
    StackOverflow,
    /// The wall-clock backstop fired. Fuel is meant to be the verdict and epochs only a guard
    /// against host work the fuel does not see (WASI host calls are charged by the most they
    /// can copy, docs/SECURITY.md, but a guard stays). A budget
    /// near the largest allowed (2 billion) on a module whose instructions are slow (one
    /// that chases pointers through 16 MiB misses the cache at most of them) can also reach
    /// it first; the verdict then depends on the machine, so keep fuel budgets to what a
    /// module needs.
    #[error("transform hit the wall-clock backstop")]
    WallClockTimeout,
    /// Any other wasm trap (`unreachable`, an out-of-bounds access made by the guest itself,
    /// division by zero, `proc_exit` in the WASI profile, …).
    #[error("transform trapped: {0}")]
    Trap(String),
    /// The module does not follow ABI v1: a missing export, a wrong signature, no ABI marker.
    #[error("module does not follow the transform ABI: {0}")]
    BadAbi(String),
    /// The module imports something its profile does not provide.
    #[error("forbidden import {module}::{name}")]
    ForbiddenImport {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
    },
    /// The module uses a wasm feature Kasane refuses (threads, memory64, relaxed SIMD, …).
    #[error("module uses an unsupported wasm feature: {0}")]
    UnsupportedFeature(String),
    /// The module's output broke the ABI: a length outside `1..=output_len`, or a pointer
    /// that does not lie inside its memory.
    #[error("transform returned bad output: {0}")]
    BadOutput(String),
    /// The module is larger than the module size limit (checked before parsing).
    #[error("module of {len} bytes is larger than the limit of {max} bytes")]
    ModuleTooLarge {
        /// Module length in bytes.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The bytes are not a valid binary wasm module.
    #[error("invalid wasm module: {0}")]
    InvalidWasm(String),
    /// The profile the module needs is not compiled in (the cargo feature `wasi` is off).
    #[error("profile {0} is not available in this build")]
    ProfileUnavailable(&'static str),
    /// The transform returned this negative error code from `kasane_derive`.
    #[error("transform reported an error: {}", guest_message(*.0))]
    Guest(i32),
    /// The [`DeriveInput`](kasane_abi::DeriveInput) could not be encoded.
    #[error("derive input could not be encoded: {0}")]
    Input(#[from] EncodeError),
    /// wasmtime refused the configuration or failed outside the guest (e.g. the pooling
    /// allocator is full).
    #[error("wasm engine error: {0}")]
    Engine(String),
    /// The compile cache could not be opened (its directory or `cache.key`). Reading and
    /// writing entries never fails a load: see [`CacheOutcome::Unusable`](crate::CacheOutcome::Unusable).
    #[error("compile cache I/O error: {0}")]
    Cache(#[from] std::io::Error),
}

fn guest_message(code: i32) -> String {
    match GuestError::from_code(code) {
        Some(e) => format!("code {code}: {e}"),
        None => format!("code {code} (unknown)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_codes_are_named_in_display() {
        let known = SandboxError::Guest(GuestError::BadParams.code()).to_string();
        assert!(known.contains("-2") && known.contains("params"), "{known}");
        let unknown = SandboxError::Guest(-99).to_string();
        assert!(
            unknown.contains("-99") && unknown.contains("unknown"),
            "{unknown}"
        );
    }
}
