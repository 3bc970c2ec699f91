//! The sandbox on arbitrary modules: validation never panics, and whatever loads derives to a
//! value or a typed error within its fuel (a hang or a crash is a finding).
#![no_main]
use std::sync::OnceLock;

use kasane_sandbox::{Limits, Profile, Sandbox, SandboxConfig};

fn sandbox() -> Option<&'static Sandbox> {
    static S: OnceLock<Option<Sandbox>> = OnceLock::new();
    S.get_or_init(|| Sandbox::new(SandboxConfig::default()).ok()).as_ref()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some(sandbox) = sandbox() else { return };
    let limits = Limits { fuel: 100_000, ..Limits::default() };
    for profile in [Profile::Pure, Profile::Wasi] {
        if let Ok(t) = sandbox.load(data, profile, limits) {
            let _ = t.derive(&kasane_abi::DeriveInput::empty());
        }
    }
});
