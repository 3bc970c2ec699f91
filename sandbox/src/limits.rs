//! [`Limits`]: the resource budget of one transform, and the store-side [`Limiter`] that
//! enforces its memory and table parts.

/// The resource budget of one transform call.
///
/// A registry entry carries its own limits; the host and the client cap them with their
/// configuration ([`Limits::capped_by`]), so a registry entry can lower but never raise what a
/// machine accepts. Every field is checked on both sides with the same values, so both get the
/// same verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limits {
    /// Fuel budget for one derive call: instantiation (including any start function),
    /// `_initialize`, both `kasane_alloc` calls and `kasane_derive` all draw from it.
    /// Roughly one unit per wasm operator. The default, 50 000 000, runs well under a second
    /// and leaves headroom over the built-in transforms (PBKDF2 with many iterations needs an
    /// explicit larger budget in its registry entry).
    pub fuel: u64,
    /// Largest linear memory, in bytes (default 16 MiB).
    pub memory_bytes: u64,
    /// Largest number of elements in any table (default 10 000).
    pub table_elements: u64,
    /// Wasm stack, in bytes (default 512 KiB). Enforced per engine: a [`Sandbox`](crate::Sandbox)
    /// runs every transform with the stack of its `max_limits`, because wasmtime sets the stack
    /// limit on the engine, not per call. Unlike fuel, stack use depends on the compiled code:
    /// keep transforms far from the limit (host and client on different CPU architectures may
    /// disagree on a module that recurses to the edge).
    pub wasm_stack_bytes: usize,
    /// Largest module, in bytes (default 1 MiB), checked before the bytes are parsed.
    pub module_bytes: usize,
    /// Longest key material (default and maximum [`kasane_abi::MAX_OUTPUT_LEN`] = 64); passed to
    /// the guest as `out_cap`.
    pub output_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            fuel: 50_000_000,
            memory_bytes: 16 << 20,
            table_elements: 10_000,
            wasm_stack_bytes: 512 << 10,
            module_bytes: 1 << 20,
            output_len: kasane_abi::MAX_OUTPUT_LEN,
        }
    }
}

impl Limits {
    /// The element-wise minimum of `self` and `cap`: a registry entry's limits capped by the
    /// host's or client's configuration.
    #[must_use]
    pub fn capped_by(self, cap: &Limits) -> Limits {
        Limits {
            fuel: self.fuel.min(cap.fuel),
            memory_bytes: self.memory_bytes.min(cap.memory_bytes),
            table_elements: self.table_elements.min(cap.table_elements),
            wasm_stack_bytes: self.wasm_stack_bytes.min(cap.wasm_stack_bytes),
            module_bytes: self.module_bytes.min(cap.module_bytes),
            output_len: self.output_len.min(cap.output_len),
        }
    }

    /// `output_len` clamped to what ABI v1 allows.
    pub(crate) fn out_cap(&self) -> usize {
        self.output_len.min(kasane_abi::MAX_OUTPUT_LEN)
    }
}

/// Which limit a guest hit; recorded by the [`Limiter`] so the resulting trap is classified
/// as [`SandboxError::MemoryLimit`](crate::SandboxError::MemoryLimit) or
/// [`SandboxError::TableLimit`](crate::SandboxError::TableLimit), never as a plain `-1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LimitHit {
    Memory,
    Table,
}

/// The error the limiter returns to wasmtime; returning an error (instead of `Ok(false)`)
/// makes the growing instruction trap, so a guest cannot ignore the refusal and keep going.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} limit exceeded")]
pub(crate) struct LimitExceeded(pub(crate) LimitHit);

/// Per-store [`wasmtime::ResourceLimiter`] for one call.
#[derive(Debug)]
pub(crate) struct Limiter {
    memory_bytes: u64,
    table_elements: u64,
    pub(crate) hit: Option<LimitHit>,
}

impl Limiter {
    pub(crate) fn new(limits: &Limits) -> Self {
        Self {
            memory_bytes: limits.memory_bytes,
            table_elements: limits.table_elements,
            hit: None,
        }
    }
}

impl wasmtime::ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if u64::try_from(desired).map_or(true, |d| d > self.memory_bytes) {
            self.hit = Some(LimitHit::Memory);
            return Err(wasmtime::Error::new(LimitExceeded(LimitHit::Memory)));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if u64::try_from(desired).map_or(true, |d| d > self.table_elements) {
            self.hit = Some(LimitHit::Table);
            return Err(wasmtime::Error::new(LimitExceeded(LimitHit::Table)));
        }
        Ok(true)
    }

    // A transform needs one instance, one memory (multi-memory is off) and a few tables.
    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        crate::MAX_TABLES as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_by_is_element_wise_min() {
        let entry = Limits {
            fuel: 10,
            memory_bytes: 1 << 30,
            table_elements: 5,
            wasm_stack_bytes: 1 << 20,
            module_bytes: 100,
            output_len: 128,
        };
        let cap = Limits::default();
        let got = entry.capped_by(&cap);
        assert_eq!(got.fuel, 10);
        assert_eq!(got.memory_bytes, cap.memory_bytes);
        assert_eq!(got.table_elements, 5);
        assert_eq!(got.wasm_stack_bytes, cap.wasm_stack_bytes);
        assert_eq!(got.module_bytes, 100);
        assert_eq!(got.output_len, 64);
        assert_eq!(
            Limits {
                output_len: 500,
                ..cap
            }
            .out_cap(),
            64
        );
    }

    #[test]
    fn limiter_refuses_with_an_error_and_records_it() {
        use wasmtime::ResourceLimiter as _;
        let mut l = Limiter::new(&Limits {
            memory_bytes: 65536,
            table_elements: 4,
            ..Limits::default()
        });
        assert!(matches!(l.memory_growing(0, 65536, None), Ok(true)));
        assert!(l.memory_growing(65536, 131072, None).is_err());
        assert_eq!(l.hit, Some(LimitHit::Memory));
        assert!(matches!(l.table_growing(0, 4, None), Ok(true)));
        assert!(l.table_growing(4, 5, None).is_err());
        assert_eq!(l.hit, Some(LimitHit::Table));
    }
}
