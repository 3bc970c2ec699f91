//! Kasane's layout on a standard TUF repository: which roles exist beside the top-level four,
//! which target paths are Kasane's own documents, and the rules for names.
//!
//! ```text
//! root ──> timestamp, snapshot (one online key), targets (offline)
//! targets: first-party transforms ("sha256-chain", …) and kasane/host-keys.json
//!   ├─ delegates "revocations"  paths ["kasane/revocations.json"], terminating
//!   └─ delegates "authors"      paths ["*/*"]
//!        └─ delegates "<author>" paths ["<author>/*"], terminating  (tuf-on-ci's layout)
//! ```
//!
//! Revoking an author is re-signing `authors` without its delegation; revoking a module is
//! listing its hash in `kasane/revocations.json`.

use crate::error::{RegistryError, Result};

/// The delegated role that signs `kasane/revocations.json`.
pub const REVOCATIONS_ROLE: &str = "revocations";
/// The delegated role between `targets` and the third-party authors.
pub const AUTHORS_ROLE: &str = "authors";
/// The target listing the host's identity and ticket keys.
pub const HOST_KEYS_PATH: &str = "kasane/host-keys.json";
/// The target listing revoked module hashes.
pub const REVOCATIONS_PATH: &str = "kasane/revocations.json";
/// Target paths under this prefix are Kasane's documents, never transforms.
pub const RESERVED_PREFIX: &str = "kasane/";
/// What `authors` is delegated (every `<author>/<name>` path).
pub const AUTHORS_PATHS: &str = "*/*";

/// Most authors the `authors` role delegates.
pub const MAX_AUTHORS: usize = 64;
/// Longest module name.
pub const MAX_NAME_LEN: usize = 128;
/// Longest author id.
pub const MAX_AUTHOR_ID_LEN: usize = 64;
/// Role names an author may not take.
const RESERVED_ROLES: [&str; 7] = [
    "root",
    "timestamp",
    "snapshot",
    "targets",
    REVOCATIONS_ROLE,
    AUTHORS_ROLE,
    "kasane",
];

fn bad_name(name: &str, reason: &'static str) -> RegistryError {
    RegistryError::BadName {
        name: name.chars().take(200).collect(),
        reason,
    }
}

/// Checks a target path: 1 to [`MAX_NAME_LEN`] characters of `[a-z0-9._/-]`, no `..`, no
/// empty or `.` component, no leading or trailing `/`.
pub fn validate_name(name: &str) -> Result<()> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(bad_name(name, "length out of range"));
    }
    if !name
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'/' | b'-'))
    {
        return Err(bad_name(name, "characters outside [a-z0-9._/-]"));
    }
    if name.contains("..") {
        return Err(bad_name(name, "contains .."));
    }
    if name.starts_with('/') || name.ends_with('/') {
        return Err(bad_name(name, "leading or trailing /"));
    }
    if name.split('/').any(|c| c.is_empty() || c == ".") {
        return Err(bad_name(name, "empty or . component"));
    }
    Ok(())
}

/// Checks a transform's name: a valid target path outside [`RESERVED_PREFIX`].
pub fn validate_module_name(name: &str) -> Result<()> {
    validate_name(name)?;
    if name.starts_with(RESERVED_PREFIX) {
        return Err(bad_name(
            name,
            "kasane/ is reserved for the registry's own files",
        ));
    }
    Ok(())
}

/// Checks an author id: 1 to [`MAX_AUTHOR_ID_LEN`] characters of `[a-z0-9-]`, not starting
/// with `-`, and not a role name Kasane uses.
pub fn validate_author_id(id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_AUTHOR_ID_LEN {
        return Err(bad_name(id, "author id length out of range"));
    }
    if !id
        .bytes()
        .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'))
        || id.starts_with('-')
    {
        return Err(bad_name(id, "author id outside [a-z0-9-]"));
    }
    if RESERVED_ROLES.contains(&id) {
        return Err(bad_name(id, "a role name Kasane uses"));
    }
    Ok(())
}

/// The author a module name belongs to (`acme/ocra-v2` → `acme`), `None` for a first-party
/// name without `/`.
pub fn author_of(name: &str) -> Option<&str> {
    name.split_once('/').map(|(a, _)| a)
}

/// The path patterns an author is delegated: everything under its id.
pub fn author_paths(id: &str) -> Vec<String> {
    vec![format!("{id}/*")]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["sha256-chain", "acme/ocra-v2", "a.b_c/d-e/f", "x"] {
            validate_module_name(ok).unwrap();
        }
        for bad in [
            "",
            "../etc/passwd",
            "a/../b",
            "/abs",
            "a/",
            "a//b",
            "./a",
            "A",
            "a b",
            "a\\b",
            "é",
            "kasane/host-keys.json",
            &"a".repeat(MAX_NAME_LEN + 1),
        ] {
            assert!(
                matches!(
                    validate_module_name(bad),
                    Err(RegistryError::BadName { .. })
                ),
                "{bad:?}"
            );
        }
        validate_author_id("acme-labs").unwrap();
        for bad in ["acme/x", "..", "-a", "authors", "revocations", "targets"] {
            assert!(validate_author_id(bad).is_err(), "{bad:?}");
        }
        assert_eq!(author_of("acme/x"), Some("acme"));
        assert_eq!(author_of("sha256-chain"), None);
    }
}
