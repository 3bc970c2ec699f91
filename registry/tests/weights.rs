//! Per-delegation rollout weight caps (issue 14 item 7): an author that signs weight
//! 2^32-1 gets the cap of its delegation, the same on the publisher's side (what the host
//! picks by) and in a client's trust store.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

use kasane_registry::entry::Profile;
use kasane_registry::entry::TargetEntry;
use kasane_registry::repo::{RoleSetup, choose_weighted};
use kasane_registry::simulator::{RepositorySimulator, refs};
use kasane_registry::weights::{DEFAULT_MAX_WEIGHT, MAX_WEIGHT_FIELD};
use kasane_tuf::metadata::Signer as _;

const FIRST: &[u8] = b"\0asm\x01\0\0\0first-party";
const GREEDY: &[u8] = b"\0asm\x01\0\0\0greedy author";

/// A simulator with a first-party module of weight 90 and author `acme`, delegated with
/// `cap` (None: `delegate`'s default), listing `acme/greedy` at weight 2^32-1.
fn registry(cap: Option<u32>) -> RepositorySimulator {
    let mut sim = RepositorySimulator::new();
    sim.publish_entry(RepositorySimulator::entry("first", FIRST, 90))
        .unwrap();
    let key = sim.add_author("acme").unwrap();
    if let Some(cap) = cap {
        let a = refs(&sim.keys.authors);
        let setup = RoleSetup::single(key.key());
        let now = sim.now();
        sim.repo
            .delegate_capped("acme", &setup, cap, &a, now, &sim.life)
            .unwrap();
        sim.snapshot().unwrap();
    }
    let greedy = RepositorySimulator::entry("acme/greedy", GREEDY, u32::MAX);
    sim.modules.insert(greedy.name.clone(), GREEDY.to_vec());
    sim.edit_author("acme", |t| {
        t.targets
            .insert(greedy.name.clone(), greedy.to_target_file());
    })
    .unwrap();
    sim
}

fn weight_of(active: &[(TargetEntry, String)], name: &str) -> u32 {
    active
        .iter()
        .find(|(e, _)| e.name == name)
        .map(|(e, _)| e.rollout_weight)
        .unwrap()
}

/// What a client's trust store resolves for `name`, through a ticket.
fn client_weight(sim: &RepositorySimulator, name: &str, module: &[u8]) -> u32 {
    let dir = tempfile::tempdir().unwrap();
    let mut store = sim.client(dir.path()).unwrap();
    store.update(sim).unwrap();
    let nonce = [3u8; 32];
    let ticket = sim.ticket(nonce, name).unwrap();
    let admitted = store.admit(&ticket, &nonce, module, sim).unwrap();
    admitted.entry.rollout_weight
}

#[test]
fn an_author_weight_of_2_pow_32_minus_1_is_capped_by_its_delegation() {
    let sim = registry(Some(10));
    let active = sim.repo.active(sim.now()).unwrap();
    assert_eq!(weight_of(&active, "acme/greedy"), 10);
    assert_eq!(weight_of(&active, "first"), 90, "first-party is uncapped");
    assert_eq!(
        sim.repo
            .find_entry("acme/greedy", sim.now())
            .unwrap()
            .rollout_weight,
        10
    );
    assert_eq!(client_weight(&sim, "acme/greedy", GREEDY), 10);
    assert_eq!(client_weight(&sim, "first", FIRST), 90);

    // The host's choice: the author gets 10 logins in 100, not almost all of them.
    let profiles = [Profile::Pure];
    let picked = (0..100u64)
        .filter(|&roll| {
            choose_weighted(&active, &profiles, roll).map(|e| e.name.as_str())
                == Some("acme/greedy")
        })
        .count();
    assert_eq!(picked, 10);
}

#[test]
fn the_cap_is_a_signed_extra_field_of_the_standard_delegation() {
    let sim = registry(Some(3));
    let authors = sim.repo.delegated("authors").unwrap();
    let d = authors.delegations.as_ref().unwrap();
    let acme = d.roles.iter().find(|r| r.name == "acme").unwrap();
    assert_eq!(acme.unrecognized[MAX_WEIGHT_FIELD], serde_json::json!(3));
    let json = serde_json::to_value(acme).unwrap();
    assert_eq!(json["x-kasane-max-weight"], 3);
    assert_eq!(json["paths"], serde_json::json!(["acme/*"]));
    let active = sim.repo.active(sim.now()).unwrap();
    assert_eq!(weight_of(&active, "acme/greedy"), 3);
    assert_eq!(client_weight(&sim, "acme/greedy", GREEDY), 3);
}

#[test]
fn a_weight_under_the_cap_is_kept_and_delegate_defaults_to_the_default_cap() {
    // `delegate` without a cap writes the default.
    let sim = registry(None);
    let active = sim.repo.active(sim.now()).unwrap();
    assert_eq!(weight_of(&active, "acme/greedy"), DEFAULT_MAX_WEIGHT);
    // A generous cap leaves the author's own weight.
    let mut sim = registry(Some(1_000));
    let e = RepositorySimulator::entry("acme/greedy", GREEDY, 7);
    sim.edit_author("acme", |t| {
        t.targets.insert(e.name.clone(), e.to_target_file());
    })
    .unwrap();
    let active = sim.repo.active(sim.now()).unwrap();
    assert_eq!(weight_of(&active, "acme/greedy"), 7);
    assert_eq!(client_weight(&sim, "acme/greedy", GREEDY), 7);
}

#[test]
fn an_author_s_modules_share_its_cap() {
    let mut sim = registry(Some(10));
    let many: Vec<TargetEntry> = (0..20)
        .map(|i| {
            let bytes = format!("\0asm\x01\0\0\0author module {i}").into_bytes();
            let e = RepositorySimulator::entry(&format!("acme/m{i:02}"), &bytes, 10);
            sim.modules.insert(e.name.clone(), bytes);
            e
        })
        .collect();
    sim.edit_author("acme", |t| {
        for e in &many {
            t.targets.insert(e.name.clone(), e.to_target_file());
        }
    })
    .unwrap();
    let active = sim.repo.active(sim.now()).unwrap();
    let author: u64 = active
        .iter()
        .filter(|(_, role)| role == "acme")
        .map(|(e, _)| u64::from(e.rollout_weight))
        .sum();
    assert_eq!(author, 10, "the author's modules weigh {author} together");
    assert_eq!(weight_of(&active, "first"), 90, "first-party is untouched");
    // The pick follows: over many rolls the author's share stays within 10 / (10 + 90).
    let picked_author = (0..10_000u64)
        .filter(|roll| {
            let roll = roll.wrapping_mul(0x9E37_79B9_7F4A_7C15);
            choose_weighted(&active, &[Profile::Pure], roll)
                .is_some_and(|e| e.name.starts_with("acme/"))
        })
        .count();
    assert!(picked_author <= 1_150, "{picked_author} of 10000 logins");
}
