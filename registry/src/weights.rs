//! Rollout weight caps per delegation (issue 14 item 7).
//!
//! A third-party author sets `custom.kasane.rollout_weight` on its own targets, so a stolen
//! author key could put its module in front of almost every login. The registry operator
//! therefore caps each author when delegating: the delegation object in the `authors` role
//! carries [`MAX_WEIGHT_FIELD`] (an extra field, which TUF keeps and signs, so python-tuf
//! still reads the metadata):
//!
//! ```json
//! {"name": "acme", "keyids": ["…"], "threshold": 1, "terminating": true,
//!  "paths": ["acme/*"], "x-kasane-max-weight": 10}
//! ```
//!
//! The weight a client's trust store reports is `min(entry weight, cap)`
//! ([`effective_entry`]); the host picks by that, with an author's entries scaled down
//! together where they sum past the cap ([`cap_per_delegation`]: the cap bounds the author's
//! share, not each module's). First-party entries (role `targets`) are uncapped. A
//! delegation without the field is capped at [`DEFAULT_MAX_WEIGHT`]; one whose field is not
//! an integer in `0..=u32::MAX`, or a role reached other than by a delegation of `authors`
//! (Kasane's tools never make one), is capped at 0: published, never picked.

use kasane_tuf::metadata::DelegatedRole;
use kasane_tuf::updater::{TargetInfo, TrustedSet};

use crate::entry::TargetEntry;
use crate::error::Result;
use crate::layout::AUTHORS_ROLE;

/// The extra field of a delegation in `authors` that caps its author's rollout weights.
pub const MAX_WEIGHT_FIELD: &str = "x-kasane-max-weight";

/// The cap of a delegation that has no [`MAX_WEIGHT_FIELD`] (delegations made before caps
/// existed), and the default of `kasane-registry delegate --max-weight`: an author's module
/// is then at most a 10 % canary next to one first-party module of the default weight 100.
pub const DEFAULT_MAX_WEIGHT: u32 = 10;

/// The cap a delegation carries: its [`MAX_WEIGHT_FIELD`], [`DEFAULT_MAX_WEIGHT`] when absent,
/// 0 when malformed (fail closed: the operator signed something no Kasane tool writes).
pub fn delegation_cap(role: &DelegatedRole) -> u32 {
    match role.unrecognized.get(MAX_WEIGHT_FIELD) {
        None => DEFAULT_MAX_WEIGHT,
        Some(v) => v.as_u64().and_then(|n| u32::try_from(n).ok()).unwrap_or(0),
    }
}

/// Sets `cap` on a delegation (what `delegate --max-weight` writes).
pub fn set_delegation_cap(role: &mut DelegatedRole, cap: u32) {
    role.unrecognized
        .insert(MAX_WEIGHT_FIELD.to_owned(), serde_json::Value::from(cap));
}

/// The cap on entries listed by `role`, as the trusted metadata of one lookup says: `None`
/// for `targets` (first-party), the delegation's cap for an author `authors` delegates to,
/// else 0.
pub fn role_cap(trusted: &TrustedSet, role: &str) -> Option<u32> {
    if role == "targets" {
        return None;
    }
    let cap = trusted
        .targets(AUTHORS_ROLE)
        .and_then(|a| a.delegations.as_ref())
        .and_then(|d| d.roles.iter().find(|r| r.name == role))
        .map_or(0, delegation_cap);
    Some(cap)
}

/// The entry a verified lookup found, with its rollout weight capped by the delegation that
/// reached it (see the module documentation).
pub fn effective_entry(info: &TargetInfo, trusted: &TrustedSet) -> Result<TargetEntry> {
    let mut entry = TargetEntry::from_target(&info.path, &info.file)?;
    if let Some(cap) = role_cap(trusted, &info.role) {
        entry.rollout_weight = entry.rollout_weight.min(cap);
    }
    Ok(entry)
}

/// Caps each delegation's entries **together**: where an author's effective weights sum to
/// more than its delegation's cap (many modules, each within the cap), each is scaled down
/// so that they sum to the cap (rounded down, the units rounding left go one each to the
/// first entries in order). Without this, an author key could publish
/// M modules at the cap and reach M times the share the operator granted. `entries` are
/// [`effective_entry`] results with the role that listed each (as
/// [`Repository::active`](crate::repo::Repository::active) returns them), after whatever
/// filtering the caller does (revocations, the input check): the modules that can be
/// picked share the cap. `cap_of` gives a role's cap (`None`: first-party, uncapped), as
/// [`Repository::delegation_cap`](crate::repo::Repository::delegation_cap) does.
pub fn cap_per_delegation(
    entries: &mut [(TargetEntry, String)],
    cap_of: impl Fn(&str) -> Option<u32>,
) {
    let roles: std::collections::BTreeSet<String> =
        entries.iter().map(|(_, role)| role.clone()).collect();
    for role in roles {
        let Some(cap) = cap_of(&role) else {
            continue;
        };
        let of_role = |(_, r): &&mut (TargetEntry, String)| *r == role;
        let sum: u64 = entries
            .iter_mut()
            .filter(of_role)
            .map(|(e, _)| u64::from(e.rollout_weight))
            .sum();
        if sum <= u64::from(cap) {
            continue;
        }
        let mut left = u64::from(cap);
        let mut rounded = Vec::new();
        for (e, _) in entries.iter_mut().filter(of_role) {
            let scaled = u64::from(e.rollout_weight) * u64::from(cap) / sum;
            left -= scaled;
            // An entry signed at weight 0 stays unpicked.
            rounded.push(e.rollout_weight > 0);
            e.rollout_weight = u32::try_from(scaled).unwrap_or(0);
        }
        for ((e, _), positive) in entries.iter_mut().filter(of_role).zip(rounded) {
            if left > 0 && positive {
                e.rollout_weight += 1;
                left -= 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn role(extra: &str) -> DelegatedRole {
        let json = format!(
            r#"{{"name": "acme", "keyids": [], "threshold": 1, "terminating": true,
                "paths": ["acme/*"]{extra}}}"#
        );
        serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn an_old_delegation_without_the_field_gets_the_default_cap() {
        assert_eq!(delegation_cap(&role("")), DEFAULT_MAX_WEIGHT);
        assert_eq!(DEFAULT_MAX_WEIGHT, 10);
    }

    #[test]
    fn the_field_caps_and_a_malformed_one_caps_at_zero() {
        assert_eq!(
            delegation_cap(&role(r#", "x-kasane-max-weight": 250"#)),
            250
        );
        for bad in ["-1", "\"10\"", "4294967296", "1.5", "null"] {
            let r = role(&format!(r#", "x-kasane-max-weight": {bad}"#));
            assert_eq!(delegation_cap(&r), 0, "{bad}");
        }
        let mut r = role("");
        set_delegation_cap(&mut r, u32::MAX);
        assert_eq!(delegation_cap(&r), u32::MAX);
    }
}
