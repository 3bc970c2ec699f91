//! The targets payload: target files, delegations, and which paths a delegation covers.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::roles::signed_role_common;
use super::{Role, SPEC_VERSION, SignedRole, TOP_LEVEL_ROLES, check_unique_keyids, expires_format};
use crate::error::{Result, TufError};
use crate::keys::{Key, KeyId};

/// One target file as a targets role lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TargetFile {
    /// Its length in bytes.
    pub length: u64,
    /// Its hashes (algorithm → hex; not empty).
    pub hashes: BTreeMap<String, String>,
    /// Application data about the file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<Value>,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl TargetFile {
    /// The entry for `data`: its length and SHA-256.
    pub fn from_data(data: &[u8]) -> Self {
        let hashes = BTreeMap::from([("sha256".to_owned(), hex::encode(Sha256::digest(data)))]);
        Self {
            length: data.len() as u64,
            hashes,
            custom: None,
            unrecognized: BTreeMap::new(),
        }
    }

    /// Checks `data` against the length, then against every hash.
    pub fn verify_length_and_hashes(&self, what: &str, data: &[u8]) -> Result<()> {
        crate::hashes::check_length(what, self.length, data)?;
        crate::hashes::check_hashes(what, &self.hashes, data)
    }
}

/// A role the delegating targets role hands (part of) its paths to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DelegatedRole {
    /// The role's name (not a top-level role name).
    pub name: String,
    /// Ids of the keys whose signatures count (unique).
    pub keyids: Vec<KeyId>,
    /// How many distinct listed keys must sign (at least 1).
    pub threshold: u64,
    /// Whether the search stops at this role when it covers the path.
    pub terminating: bool,
    /// Path patterns (`fnmatch` per `/`-separated component); exclusive with
    /// `path_hash_prefixes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paths: Option<Vec<String>>,
    /// Hex prefixes of the SHA-256 of covered paths; exclusive with `paths`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_hash_prefixes: Option<Vec<String>>,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl DelegatedRole {
    /// Whether this delegation covers `target_path`.
    pub fn is_delegated_path(&self, target_path: &str) -> bool {
        if let Some(patterns) = &self.paths {
            return patterns.iter().any(|p| path_matches(target_path, p));
        }
        if let Some(prefixes) = &self.path_hash_prefixes {
            let digest = hex::encode(Sha256::digest(target_path.as_bytes()));
            return prefixes.iter().any(|p| digest.starts_with(p.as_str()));
        }
        false
    }

    /// The keys and threshold part, as a [`Role`].
    pub fn role(&self) -> Role {
        Role {
            keyids: self.keyids.clone(),
            threshold: self.threshold,
            unrecognized: BTreeMap::new(),
        }
    }

    fn validate(&self) -> Result<()> {
        check_unique_keyids(&self.name, &self.keyids)?;
        if self.threshold < 1 {
            return Err(TufError::malformed(
                &self.name,
                "threshold must be at least 1",
            ));
        }
        if self.paths.is_some() == self.path_hash_prefixes.is_some() {
            return Err(TufError::malformed(
                &self.name,
                "exactly one of paths and path_hash_prefixes must be set",
            ));
        }
        Ok(())
    }
}

/// The keys and roles a targets role delegates to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Delegations {
    /// The keys, by id.
    pub keys: BTreeMap<KeyId, Key>,
    /// The delegated roles, in order of trust.
    pub roles: Vec<DelegatedRole>,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl Delegations {
    /// The delegated roles covering `target_path`, in order, each with `terminating`.
    pub fn roles_for_target<'a>(
        &'a self,
        target_path: &'a str,
    ) -> impl Iterator<Item = &'a DelegatedRole> + 'a {
        self.roles
            .iter()
            .filter(move |r| r.is_delegated_path(target_path))
    }

    fn validate(&self) -> Result<()> {
        let mut names = BTreeSet::new();
        for role in &self.roles {
            if role.name.is_empty() || TOP_LEVEL_ROLES.contains(&role.name.as_str()) {
                return Err(TufError::malformed(
                    "delegations",
                    format!("role name {:?} not allowed", role.name),
                ));
            }
            if !names.insert(role.name.as_str()) {
                return Err(TufError::malformed(
                    "delegations",
                    format!("duplicate role {:?}", role.name),
                ));
            }
            role.validate()?;
        }
        Ok(())
    }
}

/// A targets role's payload (top-level `targets` or a delegated role).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Targets {
    /// `targets`.
    #[serde(rename = "_type")]
    pub type_: String,
    /// The TUF version the metadata follows (major version 1).
    pub spec_version: String,
    /// The metadata version (> 0).
    pub version: u64,
    /// When the metadata stops being trusted.
    #[serde(with = "expires_format")]
    pub expires: OffsetDateTime,
    /// Target path → file entry.
    pub targets: BTreeMap<String, TargetFile>,
    /// The roles this role delegates to, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delegations: Option<Delegations>,
    /// Fields this crate does not know.
    #[serde(flatten)]
    pub unrecognized: BTreeMap<String, Value>,
}

impl Targets {
    /// An empty targets payload of version 1.
    pub fn new(expires: OffsetDateTime) -> Self {
        Self {
            type_: "targets".to_owned(),
            spec_version: SPEC_VERSION.to_owned(),
            version: 1,
            expires,
            targets: BTreeMap::new(),
            delegations: None,
            unrecognized: BTreeMap::new(),
        }
    }
}

impl SignedRole for Targets {
    signed_role_common!("targets");

    fn validate(&self) -> Result<()> {
        for (path, file) in &self.targets {
            if file.hashes.is_empty() {
                return Err(TufError::malformed(path, "hashes must not be empty"));
            }
        }
        self.delegations
            .as_ref()
            .map_or(Ok(()), Delegations::validate)
    }
}

/// Whether `target` matches `pattern`: same number of `/`-separated components, each
/// matching with shell-style wildcards (`*`, `?`, `[...]`, `[!...]`), as Python's
/// `fnmatch.fnmatchcase`.
pub fn path_matches(target: &str, pattern: &str) -> bool {
    let targets: Vec<&str> = target.split('/').collect();
    let patterns: Vec<&str> = pattern.split('/').collect();
    targets.len() == patterns.len() && targets.iter().zip(&patterns).all(|(t, p)| fnmatch(t, p))
}

#[derive(Debug)]
enum Token {
    Star,
    Any,
    Lit(char),
    Class {
        negate: bool,
        items: Vec<(char, char)>,
    },
}

fn tokenize(pattern: &str) -> Vec<Token> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while let Some(&c) = chars.get(i) {
        i += 1;
        match c {
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::Any),
            '[' => match parse_class(&chars, i) {
                Some((token, next)) => {
                    tokens.push(token);
                    i = next;
                }
                None => tokens.push(Token::Lit('[')),
            },
            c => tokens.push(Token::Lit(c)),
        }
    }
    tokens
}

/// Parses a `[...]` class whose `[` is just before `start`; None if it never closes.
fn parse_class(chars: &[char], start: usize) -> Option<(Token, usize)> {
    let mut i = start;
    let negate = chars.get(i) == Some(&'!');
    if negate {
        i += 1;
    }
    let body_start = i;
    // A `]` right after `[` or `[!` is a literal member.
    if chars.get(i) == Some(&']') {
        i += 1;
    }
    while chars.get(i).is_some_and(|c| *c != ']') {
        i += 1;
    }
    chars.get(i)?;
    let body = &chars[body_start..i];
    let mut items = Vec::new();
    let mut j = 0;
    while let Some(&lo) = body.get(j) {
        if body.get(j + 1) == Some(&'-') && j + 2 < body.len() {
            items.push((lo, body[j + 2]));
            j += 3;
        } else {
            items.push((lo, lo));
            j += 1;
        }
    }
    Some((Token::Class { negate, items }, i + 1))
}

fn token_matches(token: &Token, c: char) -> bool {
    match token {
        Token::Star | Token::Any => true,
        Token::Lit(l) => *l == c,
        Token::Class { negate, items } => {
            items.iter().any(|(lo, hi)| *lo <= c && c <= *hi) != *negate
        }
    }
}

/// Shell-style wildcard match of one component (no special meaning for `/`).
fn fnmatch(text: &str, pattern: &str) -> bool {
    let tokens = tokenize(pattern);
    let text: Vec<char> = text.chars().collect();
    let (mut t, mut p) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Star) => {
                backtrack = Some((p, t));
                p += 1;
            }
            Some(token) if token_matches(token, text[t]) => {
                t += 1;
                p += 1;
            }
            _ => match backtrack {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    backtrack = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p..].iter().all(|tok| matches!(tok, Token::Star))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnmatch_per_component() {
        assert!(path_matches("a/b.txt", "a/*.txt"));
        assert!(path_matches("a/b.txt", "*/*"));
        assert!(!path_matches("a/b/c.txt", "a/*.txt"));
        assert!(!path_matches("a/b/c.txt", "*"));
        assert!(path_matches("file1.txt", "file?.txt"));
        assert!(!path_matches("file10.txt", "file?.txt"));
        assert!(path_matches("x", "*"));
        assert!(path_matches("", "*"));
        assert!(path_matches("abc", "a*c"));
        assert!(path_matches("abbbc", "a*b*c"));
        assert!(!path_matches("abd", "a*c"));
        assert!(path_matches("b1", "[abc][0-9]"));
        assert!(!path_matches("d1", "[abc][0-9]"));
        assert!(path_matches("d1", "[!abc]1"));
        assert!(path_matches("[x", "[x"));
        assert!(path_matches("]", "[]]"));
        assert!(!path_matches("A.txt", "a.txt"));
    }

    #[test]
    fn hash_prefixes_use_sha256_of_the_path() {
        let digest = hex::encode(Sha256::digest(b"foo/bar"));
        let role = DelegatedRole {
            name: "bin".into(),
            keyids: vec![],
            threshold: 1,
            terminating: false,
            paths: None,
            path_hash_prefixes: Some(vec![digest[..2].to_owned()]),
            unrecognized: BTreeMap::new(),
        };
        assert!(role.is_delegated_path("foo/bar"));
        let other = if digest.starts_with('0') { "1" } else { "0" };
        let role = DelegatedRole {
            path_hash_prefixes: Some(vec![other.into()]),
            ..role
        };
        assert!(!role.is_delegated_path("foo/bar"));
    }
}
