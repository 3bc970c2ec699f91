//! Metadata parsing on arbitrary bytes (envelope, then each role's payload): never panics.
#![no_main]
use kasane_registry::metadata::{parse_unverified, revocations::Revocations, root::Root};
use kasane_registry::metadata::{snapshot::Snapshot, targets::AuthorFile, targets::Targets};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = parse_unverified::<Root>(data, "root");
    let _ = parse_unverified::<Targets>(data, "targets");
    let _ = parse_unverified::<Snapshot>(data, "snapshot");
    let _ = parse_unverified::<Revocations>(data, "revocations");
    let _ = parse_unverified::<AuthorFile>(data, "author file");
});
