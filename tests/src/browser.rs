//! Driving the browser client: `web/e2e/drive.mjs` (playwright-core and Debian's Chromium)
//! runs one scenario against a host's `/web/` and prints a `RESULT <json>` line. Shared by
//! `tests/tests/web.rs` and `kasane-cli`'s browser-to-CLI test.

use std::path::{Path, PathBuf};
use std::process::Command;

use kasane_host::setup::CodeCard;

use crate::PASSWORD;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Whether the browser pieces are here (`/usr/bin/chromium`, `node`,
/// `web/e2e/node_modules/playwright-core`). In CI (`CI` set) their absence panics: the
/// tests fail, not skip; elsewhere this prints why and returns `false`.
pub fn available() -> bool {
    let missing: Vec<&str> = [
        ("/usr/bin/chromium", Path::new("/usr/bin/chromium").exists()),
        (
            "web/e2e/node_modules/playwright-core",
            repo().join("web/e2e/node_modules/playwright-core").exists(),
        ),
        (
            "node",
            Command::new("node").arg("--version").output().is_ok(),
        ),
    ]
    .into_iter()
    .filter(|(_, ok)| !ok)
    .map(|(what, _)| what)
    .collect();
    if missing.is_empty() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "browser test: missing {missing:?} (.ci/run installs them)"
    );
    eprintln!("SKIPPED: browser test needs {missing:?} (apt chromium; npm ci in web/e2e)");
    false
}

/// The driver's command for `scenario` against `url` (`https://addr`) for `card`'s user with
/// the test password (`extra` may override any variable). Run it with [`result`].
pub fn command(url: &str, card: &CodeCard, scenario: &str, extra: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new("node");
    cmd.arg(repo().join("web/e2e/drive.mjs"))
        .env("KASANE_URL", format!("{url}/web/"))
        .env("KASANE_USER", &card.user)
        .env("KASANE_PASSWORD", PASSWORD)
        .env("KASANE_CARD", crate::card_json(card))
        .env("KASANE_SCENARIO", scenario);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd
}

/// Runs a [`command`] (blocking: call it off the async runtime); its RESULT line's JSON.
pub fn result(mut cmd: Command) -> String {
    let scenario = cmd
        .get_envs()
        .find(|(k, _)| *k == "KASANE_SCENARIO")
        .and_then(|(_, v)| v)
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = cmd.output().expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{scenario}: driver failed\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT "))
        .unwrap_or_else(|| panic!("{scenario}: no RESULT line in\n{stdout}"))
        .to_owned()
}

/// [`command`] run to its [`result`]. Blocks: call it off the async runtime.
pub fn run(url: &str, card: &CodeCard, scenario: &str, extra: &[(&str, &str)]) -> String {
    result(command(url, card, scenario, extra))
}

/// The string field `name` of a RESULT's JSON.
pub fn field<'a>(json: &'a str, name: &str) -> &'a str {
    let key = format!("\"{name}\":\"");
    let start = json
        .find(&key)
        .unwrap_or_else(|| panic!("{name} in {json}"))
        + key.len();
    let len = json[start..].find('"').unwrap_or(0);
    &json[start..start + len]
}

/// Where the exchange scenario writes its screenshots.
pub fn screenshots_dir() -> PathBuf {
    repo().join("docs/screenshots")
}
