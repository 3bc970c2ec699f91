//! The signature threshold rule, and length / hash checks of fetched bytes.

use std::collections::{BTreeMap, BTreeSet};

use sha2::Digest;

use crate::error::{Result, TufError};
use crate::keys::{Key, KeyId};
use crate::metadata::{Role, Root, Signature, Targets};

/// Metadata that delegates trust: [`Root`] (to the top-level roles) and [`Targets`] (to
/// delegated roles).
pub trait Delegator {
    /// This delegator's name, for errors.
    fn delegator_name(&self) -> &str;
    /// The keys and threshold given to `role`, if it delegates that role.
    fn role(&self, role: &str) -> Option<Role>;
    /// The key listed under `keyid`.
    fn key(&self, keyid: &KeyId) -> Option<&Key>;
}

impl Delegator for Root {
    fn delegator_name(&self) -> &str {
        "root"
    }
    fn role(&self, role: &str) -> Option<Role> {
        self.roles.get(role).cloned()
    }
    fn key(&self, keyid: &KeyId) -> Option<&Key> {
        self.keys.get(keyid)
    }
}

impl Delegator for Targets {
    fn delegator_name(&self) -> &str {
        "targets"
    }
    fn role(&self, role: &str) -> Option<Role> {
        let delegations = self.delegations.as_ref()?;
        delegations
            .roles
            .iter()
            .find(|r| r.name == role)
            .map(|r| r.role())
    }
    fn key(&self, keyid: &KeyId) -> Option<&Key> {
        self.delegations.as_ref()?.keys.get(keyid)
    }
}

/// Checks that `signatures` over `signed_bytes` meet the threshold `delegator` sets for
/// `role`: counts DISTINCT key ids the delegator lists for the role whose signature
/// verifies; signatures by unlisted keys are ignored, and one key counts once however
/// many signatures it has.
pub fn verify_delegate(
    delegator: &dyn Delegator,
    role: &str,
    signed_bytes: &[u8],
    signatures: &[Signature],
) -> Result<()> {
    let spec = delegator.role(role).ok_or_else(|| TufError::NotDelegated {
        role: role.to_owned(),
        delegator: delegator.delegator_name().to_owned(),
    })?;
    let listed: BTreeSet<&KeyId> = spec.keyids.iter().collect();
    let mut valid = 0u64;
    for keyid in listed {
        let Some(key) = delegator.key(keyid) else {
            continue;
        };
        let verifies = signatures
            .iter()
            .filter(|s| &s.keyid == keyid)
            .any(|s| hex::decode(&s.sig).is_ok_and(|sig| key.verify(signed_bytes, &sig).is_ok()));
        if verifies {
            valid += 1;
        }
    }
    if valid < spec.threshold {
        return Err(TufError::ThresholdNotMet {
            role: role.to_owned(),
            valid,
            threshold: spec.threshold,
        });
    }
    Ok(())
}

/// Fails unless `data` is `expected` bytes long.
pub fn check_length(what: &str, expected: u64, data: &[u8]) -> Result<()> {
    let got = data.len() as u64;
    if got != expected {
        return Err(TufError::LengthMismatch {
            what: what.to_owned(),
            expected,
            got,
        });
    }
    Ok(())
}

/// Fails unless every hash in `hashes` (algorithm → hex) is `data`'s; an unknown algorithm
/// fails too.
pub fn check_hashes(what: &str, hashes: &BTreeMap<String, String>, data: &[u8]) -> Result<()> {
    for (algorithm, expected) in hashes {
        let got = match algorithm.as_str() {
            "sha224" => hex::encode(sha2::Sha224::digest(data)),
            "sha256" => hex::encode(sha2::Sha256::digest(data)),
            "sha384" => hex::encode(sha2::Sha384::digest(data)),
            "sha512" => hex::encode(sha2::Sha512::digest(data)),
            _ => String::new(),
        };
        if got.is_empty() || got != *expected {
            return Err(TufError::HashMismatch {
                what: what.to_owned(),
                algorithm: algorithm.clone(),
            });
        }
    }
    Ok(())
}
