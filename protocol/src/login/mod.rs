//! The login as two state machines over wire bytes, and the resulting [`Session`].
//!
//! Each state consumes itself and returns the next, so a step cannot run twice (a second use
//! of one bundle, a replayed KE3 or response) on one state. The machines never do I/O, never
//! read a clock and never run a transform: the caller moves bytes, checks expiries and
//! tickets, and runs the sandbox on the [`DeriveInputBuf`](kasane_abi::DeriveInputBuf)s they
//! build.
//!
//! ```text
//! client                                       host
//! ClientStart::new ───── StartRequest ───────▶ HostStart::respond (OPAQUE KE2, signed)
//! .receive (KE3)  ◀───── StartResponse ──────
//!                 ────── FinishRequest ──────▶ HostAwaitFinish::finish (KE3 checked)
//! ClientAwaitBundle::receive ◀ SealedBundle ── HostAwaitBundle::send
//! ClientChallenge::respond ─ ResponseRequest ▶ HostChallenge::accept (receipt checked)
//! ClientAwaitAccept::receive ◀ ResponseAccept ─ → Session on both sides
//! ```

mod client;
mod host;
mod session;

pub use client::{
    ClientAwaitAccept, ClientAwaitBundle, ClientChallenge, ClientStart, decoy_finish,
};
pub use host::{
    HostAwaitBundle, HostAwaitFinish, HostChallenge, HostLoginParts, HostStart, HostStartParams,
};
pub use session::{Expect, Session, SessionParts};
