//! Metadata and Kasane document parsing on arbitrary bytes (every TUF role, the documents,
//! tickets): never panics.
#![no_main]
use kasane_registry::documents::{HostKeys, RevocationList};
use kasane_registry::ticket::Ticket;
use kasane_tuf::metadata::{Metadata, Root, Snapshot, Targets, Timestamp};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = Metadata::<Root>::from_bytes_with_signed(data);
    let _ = Metadata::<Timestamp>::from_bytes_with_signed(data);
    let _ = Metadata::<Snapshot>::from_bytes_with_signed(data);
    let _ = Metadata::<Targets>::from_bytes_with_signed(data);
    let _ = HostKeys::from_bytes(data);
    let _ = RevocationList::from_bytes(data);
    let _ = Ticket::verify(data, &[]);
});
