//! Static checks before wasmtime ever sees the bytes: the size and this build's profiles
//! here, then everything else in [`kasane_modcheck`] (format, feature set, imports per
//! [`Profile`], the ABI v1 exports, declared memory and tables), which the browser client
//! runs too.

use crate::error::SandboxError;
use crate::limits::Limits;
use kasane_abi::Profile;
use kasane_modcheck::{ModuleError, StaticLimits};
pub use kasane_modcheck::{ModuleInfo, WASI_MODULE};
pub(crate) use kasane_modcheck::{RULES_VERSION, WASI_P1_FUNCTIONS, allowed_features};

/// Validates `wasm` for `profile` under `limits` (already capped). Never panics; every failure
/// is its own [`SandboxError`].
pub(crate) fn validate(
    wasm: &[u8],
    profile: Profile,
    limits: &Limits,
) -> Result<ModuleInfo, SandboxError> {
    precheck(wasm.len(), profile, limits)?;
    Ok(kasane_modcheck::validate(
        wasm,
        profile,
        &static_limits(limits),
    )?)
}

/// The checks that run before anything is parsed: the module size and whether this build
/// serves `profile`. Both [`validate`] and a compile-cache hit run them.
pub(crate) fn precheck(
    wasm_len: usize,
    profile: Profile,
    limits: &Limits,
) -> Result<(), SandboxError> {
    if wasm_len > limits.module_bytes {
        return Err(SandboxError::ModuleTooLarge {
            len: wasm_len,
            max: limits.module_bytes,
        });
    }
    if profile == Profile::Wasi && !cfg!(feature = "wasi") {
        return Err(SandboxError::ProfileUnavailable("wasi"));
    }
    Ok(())
}

/// The checks that depend on the caller's `limits` rather than on the bytes alone: declared
/// memory and tables. A compile-cache hit runs them, because its entry stores the
/// `ModuleInfo` of bytes validated earlier possibly under other limits.
pub(crate) fn check_limits(info: &ModuleInfo, limits: &Limits) -> Result<(), SandboxError> {
    Ok(kasane_modcheck::check_limits(info, &static_limits(limits))?)
}

fn static_limits(limits: &Limits) -> StaticLimits {
    StaticLimits {
        module_bytes: limits.module_bytes,
        memory_bytes: limits.memory_bytes,
        table_elements: limits.table_elements,
    }
}

impl From<ModuleError> for SandboxError {
    fn from(e: ModuleError) -> Self {
        match e {
            ModuleError::ModuleTooLarge { len, max } => SandboxError::ModuleTooLarge { len, max },
            ModuleError::InvalidWasm(s) => SandboxError::InvalidWasm(s),
            ModuleError::UnsupportedFeature(s) => SandboxError::UnsupportedFeature(s),
            ModuleError::ForbiddenImport { module, name } => {
                SandboxError::ForbiddenImport { module, name }
            }
            ModuleError::BadAbi(s) => SandboxError::BadAbi(s),
            ModuleError::MemoryLimit => SandboxError::MemoryLimit,
            ModuleError::TableLimit => SandboxError::TableLimit,
        }
    }
}
