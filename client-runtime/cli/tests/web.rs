//! A browser user and a `kasane` command-line user exchange sealed messages through the real
//! `kasane-host` binary: bob logs in at `/web/` in Debian's Chromium (playwright-core, driven
//! by `web/e2e/drive.mjs`) and writes to alice; alice reads it with `kasane inbox` and answers
//! with `kasane send`; the page shows the answer. Then `kasane-host audit verify` checks the
//! log holding both sessions' records. Fails in CI without Chromium or `web/e2e/node_modules`.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use common::{PASSWORD, Sim, kasane_host_at};
use kasane_host::setup::CodeCard;
use kasane_tests::browser::{self, field};

const TO_ALICE: &str = "hello alice, from a browser";
const TO_BOB: &str = "hello bob, from kasane send";

/// `kasane-host user add NAME` on the simulation's data directory; the card it wrote.
fn add_user(sim: &Sim, name: &str) -> CodeCard {
    kasane_host_at(
        &sim.data(),
        &["user", "add", name],
        &format!("{PASSWORD}\n"),
    );
    let text = std::fs::read_to_string(sim.data().join(format!("cards/{name}.card"))).unwrap();
    CodeCard::from_text(&text).unwrap()
}

/// alice waits (`kasane inbox --wait`) for bob's message, then answers it.
fn alice_answers(sim: &Sim) {
    for _ in 0..12 {
        let out = sim.run_as_alice(&["inbox", "--wait", "10"]);
        assert!(out.status.success(), "{out:?}");
        if String::from_utf8_lossy(&out.stdout).contains(TO_ALICE) {
            let sent = sim.run_as_alice(&["send", "--to", "bob", TO_BOB]);
            assert!(sent.status.success(), "{sent:?}");
            return;
        }
    }
    panic!("alice never received bob's message");
}

#[test]
fn a_browser_user_and_a_kasane_user_exchange_sealed_messages() {
    if !browser::available() {
        return;
    }
    let sim = Sim::start(false);
    let bob = add_user(&sim, "bob");
    let url = format!("https://{}", sim.addr);
    let page = std::thread::spawn(move || {
        let extra = [
            ("KASANE_PEER", "alice"),
            ("KASANE_SEND", TO_ALICE),
            ("KASANE_REPLY", TO_BOB),
        ];
        browser::run(&url, &bob, "exchange", &extra)
    });
    alice_answers(&sim);
    let result = page.join().unwrap();
    assert_eq!(field(&result, "status"), "logged in as bob", "{result}");
    assert!(result.contains(TO_BOB), "{result}");
    let audit = kasane_host_at(&sim.data(), &["audit", "verify"], "");
    let said = String::from_utf8_lossy(&audit.stdout);
    // Bob's message (the browser's session) and alice's answer (the CLI's).
    assert!(said.contains("audit log ok: 2 chains, 2 records"), "{said}");
}
