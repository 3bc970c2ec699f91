//! The signature threshold rule.

use std::collections::BTreeSet;

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
/// `role`: counts DISTINCT keys the delegator lists for the role whose signature
/// verifies; signatures by unlisted keys are ignored, and one key counts once however
/// many signatures it has — and however many key ids the delegator lists it under, however
/// each spells it ([`Key::material`]: the same public key under two ids is one vote,
/// stricter than python-tuf, which counts ids).
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
    // The keys already counted, by their decoded material (not their JSON spelling).
    let mut counted: BTreeSet<(&str, Vec<u8>)> = BTreeSet::new();
    let mut valid = 0u64;
    for keyid in listed {
        let Some(key) = delegator.key(keyid) else {
            continue;
        };
        let verifies = signatures
            .iter()
            .filter(|s| &s.keyid == keyid)
            .any(|s| hex::decode(&s.sig).is_ok_and(|sig| key.verify(signed_bytes, &sig).is_ok()));
        if verifies && key.material().is_some_and(|m| counted.insert(m)) {
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
