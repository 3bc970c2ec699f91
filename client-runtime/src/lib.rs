//! The Kasane thin client runtime (in progress: see issue 5).
#![forbid(unsafe_code)]
