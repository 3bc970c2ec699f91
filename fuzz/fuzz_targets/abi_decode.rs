//! `DeriveInput::decode` on arbitrary bytes: never panics; anything accepted re-encodes exactly.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(input) = kasane_abi::DeriveInput::decode(data) {
        assert_eq!(input.encode_to_vec().ok().as_deref(), Some(data));
    }
});
