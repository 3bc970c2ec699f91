//! `kasane-demo`: parses its (absent) arguments and runs [`kasane_demo::run`].
#![forbid(unsafe_code)]

use clap::Parser;

/// Runs a Kasane host in this process on loopback with a temporary data directory (SQLite, a
/// self-made certificate and dev keys, the built-in transforms published), adds two users
/// with code cards, logs both in over TLS 1.3 (each login downloads the transform the host
/// chose, checks its signatures, runs it in the sandbox and answers the challenges from the
/// user's card), relays a sealed message from alice to bob, verifies the host's audit log and
/// narrates every step. Needs no network and no files; removes what it made.
///
/// Exit status: 0 when every step succeeded, 1 otherwise (one line on stderr says why).
#[derive(Parser, Debug)]
#[command(name = "kasane-demo", version, about, long_about)]
struct Args {}

fn main() -> std::process::ExitCode {
    Args::parse();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)
        .and_then(|rt| rt.block_on(kasane_demo::run()));
    match outcome {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!(
                "kasane-demo: error: {}",
                kasane_os::report::Chain(&*e).one_line()
            );
            std::process::ExitCode::FAILURE
        }
    }
}
