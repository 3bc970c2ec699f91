//! Transform profiles: which host functions a module may import (DESIGN §2). One type for the
//! sandbox, the wire (`start`) and the registry metadata (`"pure"` / `"wasi"` in JSON).

use core::fmt;

/// Which host functions a transform may import.
///
/// With the `serde` feature it serializes as its lowercase name in JSON and as its variant
/// index (`Pure` = 0, `Wasi` = 1) in postcard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Profile {
    /// No imports at all (the default for transforms).
    Pure,
    /// Only `wasi_snapshot_preview1`, served by a deterministic context (no args, env, files
    /// or sockets; clocks read the session timestamp; random is seeded from the transcript).
    /// A sandbox built without its `wasi` feature cannot run it.
    Wasi,
}

impl Profile {
    /// Every profile, in wire order.
    pub const ALL: [Self; 2] = [Self::Pure, Self::Wasi];

    /// The name used in registry metadata and on the command line.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pure => "pure",
            Self::Wasi => "wasi",
        }
    }

    /// Parses the name (exact, lowercase).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == name)
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_exact() {
        for p in Profile::ALL {
            assert_eq!(Profile::from_name(p.as_str()), Some(p));
        }
        assert_eq!(Profile::from_name("WASI"), None);
        assert_eq!(Profile::from_name(""), None);
    }
}
