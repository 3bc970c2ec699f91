//! `kasane`: the thin client's command line (in progress: see issue 5).
#![forbid(unsafe_code)]

fn main() {}
