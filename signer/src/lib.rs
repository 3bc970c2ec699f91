//! Signers: one trait for every signing path (key files, PKCS#11 tokens).
#![forbid(unsafe_code)]
