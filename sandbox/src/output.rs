//! What a derive call returns: [`Derived`] and the secret [`Key`].

use std::fmt;
use subtle::ConstantTimeEq as _;
use zeroize::Zeroizing;

/// The result of one successful [`Transform::derive`](crate::Transform::derive).
#[derive(Debug)]
#[non_exhaustive]
pub struct Derived {
    /// The key material (1..=`output_len` bytes).
    pub key: Key,
    /// Fuel used by the whole call: budget minus what was left. The same on every machine that
    /// runs the same wasmtime version.
    pub fuel_used: u64,
    /// What a WASI-profile transform wrote to stdout and stderr (one shared buffer, at most
    /// [`DIAGNOSTICS_CAP`](crate::DIAGNOSTICS_CAP) bytes). Always empty for the pure profile.
    pub diagnostics: Vec<u8>,
}

/// Key material derived by a transform. Zeroized on drop; `Debug` prints only the length;
/// `==` compares in constant time (for equal lengths).
#[derive(Clone)]
pub struct Key(Zeroizing<Vec<u8>>);

impl Key {
    /// Wraps key bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty (never the case for a key returned by a transform).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(<{} bytes>)", self.0.len())
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        // The length of a key is not secret; the bytes are compared in constant time.
        self.0.len() == other.0.len() && bool::from(self.0.as_slice().ct_eq(other.0.as_slice()))
    }
}

impl Eq for Key {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_bytes_and_eq_compares_content() {
        let k = Key::new(vec![0xAB; 32]);
        let s = format!("{k:?}");
        assert_eq!(s, "Key(<32 bytes>)");
        assert_eq!(k, Key::new(vec![0xAB; 32]));
        assert_ne!(k, Key::new(vec![0xAB; 31]));
        assert_ne!(k, Key::new(vec![0xAC; 32]));
    }
}
