//! The self-contained Kasane demo: a host in this process on loopback with a temporary data
//! directory, two users with generated code cards, logins answered from the cards, a message
//! relayed from alice to bob, the audit log verified, narrated step by step.
//!
//! This crate is the only place outside tests where the host and the client meet; the
//! `kasane` client binary links no server code.
//!
//! # Module map
//! Everything is here: [`run`] makes and removes the temporary directories; the private step
//! functions each do one numbered step of the narration.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use kasane_client::{CardResponder, Client, ClientConfig, LoginReport, Session, utc};
use kasane_host::config::Config;
use kasane_host::server;
use kasane_host::setup::{self, CodeCard};
use kasane_host::store::Store;
use kasane_os::{Clock, SystemClock};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

const MESSAGE: &str = "hello bob, this is alice: sealed by a transform the registry signed";

/// Runs the demo in a fresh temporary directory, which is removed afterwards whatever the
/// outcome. Prints each step to stdout.
pub async fn run() -> anyhow::Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("kasane-demo-")
        .tempdir()
        .context("making a temporary data directory")?;
    let outcome = steps(dir.path()).await;
    let path = dir.path().to_owned();
    match dir.close() {
        Ok(()) => println!("removed {}", path.display()),
        Err(e) => eprintln!("kasane-demo: warning: removing {}: {e}", path.display()),
    }
    outcome?;
    println!("demo finished: all steps succeeded");
    Ok(())
}

/// A host serving in this process, and what a client needs to trust it.
struct RunningHost {
    addr: SocketAddr,
    ca_pem: Vec<u8>,
    root_json: Vec<u8>,
    host_key_file: PathBuf,
    store: Arc<dyn Store>,
    opaque_keys: setup::ServerKeys,
    running: server::Running,
}

async fn steps(data: &Path) -> anyhow::Result<()> {
    let host = start_host(data).await?;
    let result = with_clients(&host).await;
    let served = host.running.shutdown().await;
    println!("11. host stopped");
    result?;
    served.context("the host while serving")?;
    Ok(())
}

/// Steps 1–2: `init` a data directory and serve it on an ephemeral loopback port.
async fn start_host(data: &Path) -> anyhow::Result<RunningHost> {
    println!("1. host data directory {}", data.display());
    let init = setup::init(data, Some("127.0.0.1:0"), SystemClock.now())
        .await
        .context("initializing the host's data directory")?;
    println!(
        "   self-signed TLS certificate (sha256 {}), registry root (sha256 {})",
        init.cert_sha256, init.root_sha256
    );
    println!("   published transforms: {}", init.published.join(", "));
    // The file alone: an operator's KASANE_* variables must not move the demo's host.
    let cfg = Config::load_file(data).context("loading the host's configuration")?;
    let ca_pem = read(&cfg.tls_cert)?;
    let root_json = read(&cfg.registry_dir.join("metadata/1.root.json"))?;
    let host_key_file = cfg.keys_dir.join("host.key");
    let host = setup::load_host(cfg, Arc::new(SystemClock))
        .await
        .context("loading the host")?;
    let store = host.store().clone();
    let opaque_keys = host.opaque_keys().clone();
    let running = server::spawn(host).await.context("serving the host")?;
    let addr = running.addr();
    println!("2. host serving TLS 1.3 on https://{addr} (in this process)");
    Ok(RunningHost {
        addr,
        ca_pem,
        root_json,
        host_key_file,
        store,
        opaque_keys,
        running,
    })
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Steps 3–10, against a serving host.
async fn with_clients(host: &RunningHost) -> anyhow::Result<()> {
    let (alice_r, bob_r) = add_users(host.store.as_ref(), &host.opaque_keys).await?;
    let state = tempfile::Builder::new()
        .prefix("kasane-demo-client-")
        .tempdir()
        .context("making the client's state directory")?;
    let client = connect(host, state.path()).await?;
    let mut alice = login(
        &client,
        "alice",
        alice_r,
        "5. alice logged in, answering the challenges from her card:",
    )
    .await?;
    let mut bob = login(
        &client,
        "bob",
        bob_r,
        "6. bob logged in, answering the challenges from his card:",
    )
    .await?;
    relay(&mut alice, &mut bob).await?;
    verify_audit(host).await?;
    alice.close().await.context("closing alice's session")?;
    bob.close().await.context("closing bob's session")?;
    println!("10. both sessions closed (logged out)");
    Ok(())
}

/// Step 3: alice and bob, each with a random password and a generated code card.
async fn add_users(
    store: &dyn Store,
    keys: &setup::ServerKeys,
) -> anyhow::Result<(CardResponder, CardResponder)> {
    let mut responders = Vec::new();
    for user in ["alice", "bob"] {
        let card = CodeCard::generate(user);
        let password = random_password();
        setup::add_user(store, keys, &card, password.as_bytes(), SystemClock.now())
            .await
            .with_context(|| format!("adding {user}"))?;
        responders.push((card.pairs.len(), CardResponder::new(password, card)));
    }
    let (Some((_, bob)), Some((pairs, alice))) = (responders.pop(), responders.pop()) else {
        bail!("two users were made");
    };
    println!(
        "3. users alice and bob added, each with a random password and a generated code card of {pairs} pairs"
    );
    Ok((alice, bob))
}

fn random_password() -> Zeroizing<String> {
    let mut b = Zeroizing::new([0u8; 18]);
    OsRng.fill_bytes(&mut *b);
    Zeroizing::new(hex::encode(*b))
}

/// Step 4: a client that trusts only the host's certificate and pins the registry root.
async fn connect(host: &RunningHost, state: &Path) -> anyhow::Result<Client> {
    let mut cfg = ClientConfig::new(
        format!("https://{}", host.addr),
        host.ca_pem.clone(),
        host.root_json.clone(),
    );
    cfg.state_dir = Some(state.to_owned());
    cfg.timeout = Duration::from_secs(60);
    let client = Client::connect(cfg).await.context("connecting")?;
    println!(
        "4. client connected: trusts only the host's certificate and pins registry/metadata/1.root.json"
    );
    Ok(client)
}

/// Steps 5 and 6: one login, and what it ran.
async fn login(
    client: &Client,
    user: &str,
    mut responder: CardResponder,
    headline: &str,
) -> anyhow::Result<Session> {
    let (session, report) = client
        .login(user, &mut responder)
        .await
        .with_context(|| format!("logging in as {user}"))?;
    println!("{headline}");
    print_report(&report);
    Ok(session)
}

fn print_report(report: &LoginReport) {
    for line in report.lines("   ") {
        println!("{line}");
    }
}

/// Steps 7 and 8: alice sends, bob reads the message re-sealed for his session.
async fn relay(alice: &mut Session, bob: &mut Session) -> anyhow::Result<()> {
    let accepted = alice
        .send("bob", MESSAGE.as_bytes())
        .await
        .context("alice sending to bob")?;
    println!(
        "7. alice sent {} bytes to bob, sealed for her session (seq {}, accepted at {})",
        MESSAGE.len(),
        accepted.seq,
        utc(accepted.received_at)
    );
    let got = bob.inbox(5).await.context("bob reading his inbox")?;
    let m = got
        .iter()
        .find(|m| m.from == "alice")
        .ok_or_else(|| anyhow!("bob's inbox has no message from alice"))?;
    if m.body.as_slice() != MESSAGE.as_bytes() {
        bail!("bob received different bytes from what alice sent");
    }
    println!(
        "8. bob's inbox, re-sealed by the host for his session: from {} at {}: {}",
        m.from,
        utc(m.sent_at),
        String::from_utf8_lossy(&m.body)
    );
    Ok(())
}

/// Step 9: the audit chain, verified with the host's public key.
async fn verify_audit(host: &RunningHost) -> anyhow::Result<()> {
    let host_key = setup::read_signing_key(&host.host_key_file)
        .context("reading the host key")?
        .verifying_key();
    let summary = kasane_host::audit::verify(host.store.as_ref(), &host_key)
        .await
        .context("verifying the audit log")?;
    println!(
        "9. audit log verified: {} hash chain(s), {} record(s), {} signed checkpoint(s); nothing changed, removed or reordered",
        summary.chains, summary.records, summary.checkpoints
    );
    if summary.records == 0 {
        bail!("the audit log holds no record of alice's message");
    }
    Ok(())
}
