//! TUF 1.0 (The Update Framework): metadata, canonical JSON, signature thresholds and the
//! client workflow. Nothing here is specific to Kasane; `kasane-registry` builds on it.
#![forbid(unsafe_code)]
