//! Static checks of a transform module, before any engine sees its bytes: binary format,
//! the allowed feature set, imports per [`Profile`], the ABI v1 exports and their
//! signatures, and the declared memory and table sizes against [`StaticLimits`].
//!
//! One implementation for every runtime that admits modules: the native sandbox (wasmtime)
//! runs it before compiling, and the browser client (its own WebAssembly engine) before
//! instantiating, so the two cannot disagree on what a transform may be.

use kasane_abi::{
    EXPORT_ABI_MARKER, EXPORT_ALLOC, EXPORT_DERIVE, EXPORT_MEMORY, EXPORT_WASI_INITIALIZE, Profile,
};
use sha2::{Digest as _, Sha256};
use wasmparser::types::{EntityType, Types};
use wasmparser::{CompositeInnerType, FuncType, Parser, Payload, ValType, Validator, WasmFeatures};

/// Version of the rules below. Bump it whenever a check changes in a way that could accept
/// or refuse a module differently: the sandbox's compile cache keys on it, because a cache
/// hit skips validation and trusts the verdict stored with the entry.
pub const RULES_VERSION: u32 = 1;

/// The only import module the WASI profile serves.
pub const WASI_MODULE: &str = "wasi_snapshot_preview1";

/// Most tables a transform may define (Rust and C toolchains emit one). Checked at
/// validation ([`ModuleError::TableLimit`]) so the sandbox's pooling and on-demand
/// allocators, which count tables differently, always agree.
pub const MAX_TABLES: u32 = 4;

/// The limits a module's bytes are checked against (the run-time ones, fuel and stack,
/// belong to the engine).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StaticLimits {
    /// Largest module, in bytes, checked before the bytes are parsed.
    pub module_bytes: usize,
    /// Largest initial linear memory, in bytes.
    pub memory_bytes: u64,
    /// Largest initial size of any table, in elements.
    pub table_elements: u64,
}

/// Why a module's bytes are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
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
    /// The module uses a wasm feature Kasane refuses (threads, memory64, relaxed SIMD, …).
    #[error("module uses an unsupported wasm feature: {0}")]
    UnsupportedFeature(String),
    /// The module imports something its profile does not provide.
    #[error("forbidden import {module}::{name}")]
    ForbiddenImport {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
    },
    /// The module does not follow ABI v1: a missing export, a wrong signature, no ABI marker.
    #[error("module does not follow the transform ABI: {0}")]
    BadAbi(String),
    /// The module declares more linear memory than its limit.
    #[error("module declares more linear memory than its limit")]
    MemoryLimit,
    /// The module declares more tables, or larger ones, than its limits.
    #[error("module declares more table elements than its limit")]
    TableLimit,
}

/// What validation learned about a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    /// SHA-256 of the module bytes (the registry's module hash).
    pub sha256: [u8; 32],
    /// `(module, name)` of every import (empty for the pure profile).
    pub imports: Vec<(String, String)>,
    /// The module has a start function (it runs under fuel at each instantiation).
    pub has_start: bool,
    /// The module exports `_initialize` (a reactor); it is called once per derive, after
    /// instantiation and before `kasane_alloc`, in either profile.
    pub has_initialize: bool,
    /// Initial linear memory in bytes.
    pub initial_memory_bytes: u64,
    /// Initial size of each table, in elements (checked against the limits at every load,
    /// including a compile-cache hit, which skips the rest of validation).
    pub table_initials: Vec<u64>,
}

/// The wasm features a transform may use. Everything that threatens determinism or widens the
/// attack surface is off: threads and shared memory, relaxed SIMD, memory64, multi-memory,
/// GC, exceptions, tail calls, stack switching, the component model.
pub fn allowed_features() -> WasmFeatures {
    WasmFeatures::MUTABLE_GLOBAL
        | WasmFeatures::SATURATING_FLOAT_TO_INT
        | WasmFeatures::SIGN_EXTENSION
        | WasmFeatures::REFERENCE_TYPES
        | WasmFeatures::MULTI_VALUE
        | WasmFeatures::BULK_MEMORY
        | WasmFeatures::SIMD
        | WasmFeatures::FLOATS
        | WasmFeatures::EXTENDED_CONST
}

const WASM_MAGIC: [u8; 4] = *b"\0asm";
/// Version field of a core module (a component has a different one).
const CORE_VERSION: [u8; 4] = [1, 0, 0, 0];

/// Validates `wasm` for `profile` under `limits`. Never panics; every failure is its own
/// [`ModuleError`].
pub fn validate(
    wasm: &[u8],
    profile: Profile,
    limits: &StaticLimits,
) -> Result<ModuleInfo, ModuleError> {
    if wasm.len() > limits.module_bytes {
        return Err(ModuleError::ModuleTooLarge {
            len: wasm.len(),
            max: limits.module_bytes,
        });
    }
    match (wasm.get(0..4), wasm.get(4..8)) {
        (Some(magic), Some(version)) if magic == WASM_MAGIC => {
            if version != CORE_VERSION {
                return Err(ModuleError::UnsupportedFeature(
                    "not a core module (components are not supported)".into(),
                ));
            }
        }
        _ => return Err(ModuleError::InvalidWasm("not a binary wasm module".into())),
    }

    let types = match Validator::new_with_features(allowed_features()).validate_all(wasm) {
        Ok(types) => types,
        Err(restricted) => {
            // Tell "valid, but uses a feature we refuse" from "not valid at all", so each
            // hostile case gets its own error.
            return Err(
                match Validator::new_with_features(WasmFeatures::all()).validate_all(wasm) {
                    Ok(_) => ModuleError::UnsupportedFeature(restricted.message().to_owned()),
                    Err(e) => ModuleError::InvalidWasm(e.to_string()),
                },
            );
        }
    };

    let imports = check_imports(&types, profile)?;
    let (initial_memory_bytes, has_initialize) = check_exports(&types)?;
    let tables = types.as_ref();
    let table_initials = (0..tables.table_count())
        .map(|i| tables.table_at(i).initial)
        .collect();

    let mut has_start = false;
    for payload in Parser::new(0).parse_all(wasm) {
        match payload {
            Ok(Payload::StartSection { .. }) => has_start = true,
            Ok(_) => {}
            Err(e) => return Err(ModuleError::InvalidWasm(e.to_string())),
        }
    }

    let info = ModuleInfo {
        sha256: <[u8; 32]>::from(Sha256::digest(wasm)),
        imports,
        has_start,
        has_initialize,
        initial_memory_bytes,
        table_initials,
    };
    check_limits(&info, limits)?;
    Ok(info)
}

/// The checks that depend on the caller's `limits` rather than on the bytes alone: declared
/// memory and tables. [`validate`] runs them, and so does a compile-cache hit, whose entry
/// stores the `ModuleInfo` of bytes validated earlier possibly under other limits.
pub fn check_limits(info: &ModuleInfo, limits: &StaticLimits) -> Result<(), ModuleError> {
    if info.initial_memory_bytes > limits.memory_bytes {
        return Err(ModuleError::MemoryLimit);
    }
    if u32::try_from(info.table_initials.len()).unwrap_or(u32::MAX) > MAX_TABLES {
        return Err(ModuleError::TableLimit);
    }
    if info
        .table_initials
        .iter()
        .any(|&initial| initial > limits.table_elements)
    {
        return Err(ModuleError::TableLimit);
    }
    Ok(())
}

fn check_imports(types: &Types, profile: Profile) -> Result<Vec<(String, String)>, ModuleError> {
    let types = types.as_ref();
    let Some(imports) = types.core_imports() else {
        return Err(ModuleError::UnsupportedFeature("not a core module".into()));
    };
    let mut out = Vec::new();
    for (module, name, ty) in imports {
        let allowed = match profile {
            Profile::Pure => false,
            Profile::Wasi => {
                module == WASI_MODULE
                    && matches!(ty, EntityType::Func(_))
                    && WASI_P1_FUNCTIONS.contains(&name)
            }
        };
        if !allowed {
            return Err(ModuleError::ForbiddenImport {
                module: module.into(),
                name: name.into(),
            });
        }
        out.push((module.to_owned(), name.to_owned()));
    }
    Ok(out)
}

/// Export names an embedder may add to a module it runs (the sandbox's warm instances export
/// their mutable globals as `kasane:warm:…`): a module's own export there is refused, not
/// silently replaced (it may be what declares a function for `ref.func`).
pub const RESERVED_EXPORT_PREFIX: &str = "kasane:";

/// Checks the ABI v1 exports; returns the initial memory size and whether `_initialize` exists.
fn check_exports(types: &Types) -> Result<(u64, bool), ModuleError> {
    let types = types.as_ref();
    let Some(exports) = types.core_exports() else {
        return Err(ModuleError::UnsupportedFeature("not a core module".into()));
    };
    let exports: Vec<(&str, EntityType)> = exports.collect();
    if let Some((name, _)) = exports
        .iter()
        .find(|(n, _)| n.starts_with(RESERVED_EXPORT_PREFIX))
    {
        return Err(ModuleError::BadAbi(format!(
            "export {name:?} uses the reserved prefix {RESERVED_EXPORT_PREFIX:?}"
        )));
    }
    let find = |name: &str| exports.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
    let func = |name: &str| -> Result<Option<FuncType>, ModuleError> {
        match find(name) {
            None => Ok(None),
            Some(EntityType::Func(id)) => match types.get(id).map(|s| &s.composite_type.inner) {
                Some(CompositeInnerType::Func(f)) => Ok(Some(f.clone())),
                _ => Err(ModuleError::BadAbi(format!(
                    "export {name} is not a plain function"
                ))),
            },
            Some(_) => Err(ModuleError::BadAbi(format!(
                "export {name} is not a function"
            ))),
        }
    };
    let expect = |name: &str, params: &[ValType], results: &[ValType]| {
        let f = func(name)?.ok_or_else(|| ModuleError::BadAbi(format!("missing export {name}")))?;
        if f.params() != params || f.results() != results {
            return Err(ModuleError::BadAbi(format!(
                "export {name} has type {}, expected {}",
                show(f.params(), f.results()),
                show(params, results)
            )));
        }
        Ok(())
    };

    use ValType::I32;
    expect(EXPORT_ABI_MARKER, &[], &[])?;
    let memory = match find(EXPORT_MEMORY) {
        Some(EntityType::Memory(m)) => m,
        Some(_) => {
            return Err(ModuleError::BadAbi(format!(
                "export {EXPORT_MEMORY} is not a memory"
            )));
        }
        None => {
            return Err(ModuleError::BadAbi(format!(
                "missing export {EXPORT_MEMORY}"
            )));
        }
    };
    expect(EXPORT_ALLOC, &[I32], &[I32])?;
    expect(EXPORT_DERIVE, &[I32, I32, I32, I32], &[I32])?;
    // A reactor (WASI or not: clang's `-mexec-model=reactor` runs static constructors
    // there) gets `_initialize` called once per instance, in either profile.
    let has_initialize = func(EXPORT_WASI_INITIALIZE)?.is_some();
    if has_initialize {
        expect(EXPORT_WASI_INITIALIZE, &[], &[])?;
    }
    // Page size is 64 KiB (custom page sizes are off); saturate rather than overflow.
    let initial = memory.initial.saturating_mul(65_536);
    Ok((initial, has_initialize))
}

fn show(params: &[ValType], results: &[ValType]) -> String {
    let list = |v: &[ValType]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!("({}) -> ({})", list(params), list(results))
}

/// Every function of `wasi_snapshot_preview1`; any other name is refused at validation.
pub const WASI_P1_FUNCTIONS: &[&str] = &[
    "args_get",
    "args_sizes_get",
    "environ_get",
    "environ_sizes_get",
    "clock_res_get",
    "clock_time_get",
    "fd_advise",
    "fd_allocate",
    "fd_close",
    "fd_datasync",
    "fd_fdstat_get",
    "fd_fdstat_set_flags",
    "fd_fdstat_set_rights",
    "fd_filestat_get",
    "fd_filestat_set_size",
    "fd_filestat_set_times",
    "fd_pread",
    "fd_prestat_get",
    "fd_prestat_dir_name",
    "fd_pwrite",
    "fd_read",
    "fd_readdir",
    "fd_renumber",
    "fd_seek",
    "fd_sync",
    "fd_tell",
    "fd_write",
    "path_create_directory",
    "path_filestat_get",
    "path_filestat_set_times",
    "path_link",
    "path_open",
    "path_readlink",
    "path_remove_directory",
    "path_rename",
    "path_symlink",
    "path_unlink_file",
    "poll_oneoff",
    "proc_exit",
    "proc_raise",
    "sched_yield",
    "random_get",
    "sock_accept",
    "sock_recv",
    "sock_send",
    "sock_shutdown",
];
