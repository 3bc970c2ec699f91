//! Kasane wire protocol: messages, transcript, key schedule and sealing. No I/O.
//!
//! # Module map
//! (being written: see issue 4)
#![forbid(unsafe_code)]
