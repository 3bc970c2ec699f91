//! `kasane demo`: a host in-process on loopback with a temporary data directory, two users
//! with generated code cards, logins answered from the cards, a message relayed from alice
//! to bob, the audit log verified, narrated step by step. Needs no network and no files
//! made beforehand.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use kasane_client::{CardResponder, Client, ClientConfig};
use kasane_host::config::Config;
use kasane_host::setup::{self, CodeCard};
use kasane_host::store::{Clock, SystemClock};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::commands::{print_report, utc};
use crate::fail::{Class, Failure, OrFail};

const MESSAGE: &str = "hello bob, this is alice: sealed by a transform the registry signed";

fn random_password() -> Zeroizing<String> {
    let mut b = Zeroizing::new([0u8; 18]);
    OsRng.fill_bytes(&mut *b);
    Zeroizing::new(hex::encode(*b))
}

/// Runs the demo; every failure is one line and exit code 7.
pub(crate) async fn run() -> Result<(), Failure> {
    let dir = tempfile::Builder::new()
        .prefix("kasane-demo-")
        .tempdir()
        .context("making a temporary data directory")
        .or_fail(Class::Demo)?;
    let outcome = steps(dir.path()).await;
    let path = dir.path().to_owned();
    match dir.close() {
        Ok(()) => println!("removed {}", path.display()),
        Err(e) => eprintln!("kasane: warning: removing {}: {e}", path.display()),
    }
    match outcome {
        Ok(()) => {
            println!("demo finished: all steps succeeded");
            Ok(())
        }
        Err(e) => Err(Failure::new(Class::Demo, e)),
    }
}

async fn steps(data: &std::path::Path) -> anyhow::Result<()> {
    println!("1. host data directory {}", data.display());
    let init = setup::init(data, Some("127.0.0.1:0"), SystemClock.now())
        .await
        .context("initializing the host's data directory")?;
    println!(
        "   self-signed TLS certificate (sha256 {}), registry root (sha256 {})",
        init.cert_sha256, init.root_sha256
    );
    println!("   published transforms: {}", init.published.join(", "));

    let cfg = Config::load(data).context("loading the host's configuration")?;
    let listener = tokio::net::TcpListener::bind(&cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    let addr = listener.local_addr().context("the host's address")?;
    let ca_pem = std::fs::read(&cfg.tls_cert)
        .with_context(|| format!("reading {}", cfg.tls_cert.display()))?;
    let root_path = cfg.registry_dir.join("1.root.json");
    let root_json =
        std::fs::read(&root_path).with_context(|| format!("reading {}", root_path.display()))?;
    let host_key_file = cfg.keys_dir.join("host.key");
    let host = setup::load_host(cfg, Arc::new(SystemClock))
        .await
        .context("loading the host")?;
    let store = host.store().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(kasane_host::server::run(listener, host, async move {
        let _ = stopped.await;
    }));
    println!("2. host serving TLS 1.3 on https://{addr} (in this process)");

    let result = async {
        let alice_card = CodeCard::generate("alice");
        let bob_card = CodeCard::generate("bob");
        let alice_pw = random_password();
        let bob_pw = random_password();
        for (card, pw) in [(&alice_card, &alice_pw), (&bob_card, &bob_pw)] {
            setup::add_user(store.as_ref(), card, pw.as_bytes(), SystemClock.now())
                .await
                .with_context(|| format!("adding {}", card.user))?;
        }
        println!(
            "3. users alice and bob added, each with a random password and a generated code card of {} pairs",
            alice_card.pairs.len()
        );

        let state = tempfile::Builder::new()
            .prefix("kasane-demo-client-")
            .tempdir()
            .context("making the client's state directory")?;
        let mut ccfg = ClientConfig::new(format!("https://{addr}"), ca_pem, root_json);
        ccfg.state_dir = Some(state.path().to_owned());
        ccfg.timeout = Duration::from_secs(60);
        let client = Client::connect(ccfg).await.context("connecting")?;
        println!(
            "4. client connected: trusts only the host's certificate and pins registry/1.root.json"
        );

        let mut alice_r = CardResponder::new(alice_pw, alice_card);
        let (mut alice, report) = client
            .login("alice", &mut alice_r)
            .await
            .context("logging in as alice")?;
        println!("5. alice logged in, answering the challenges from her card:");
        print_report(&report, "   ");

        let mut bob_r = CardResponder::new(bob_pw, bob_card);
        let (mut bob, report) = client
            .login("bob", &mut bob_r)
            .await
            .context("logging in as bob")?;
        println!("6. bob logged in, answering the challenges from his card:");
        print_report(&report, "   ");

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
            anyhow::bail!("bob received different bytes from what alice sent");
        }
        println!(
            "8. bob's inbox, re-sealed by the host for his session: from {} at {}: {}",
            m.from,
            utc(m.sent_at),
            String::from_utf8_lossy(&m.body)
        );

        // The audit chain, verified with the host's public key.
        let host_key = setup::read_signing_key(&host_key_file)
            .context("reading the host key")?
            .verifying_key();
        let summary = kasane_host::audit::verify(store.as_ref(), &host_key)
            .await
            .context("verifying the audit log")?;
        println!(
            "9. audit log verified: {} hash chain(s), {} record(s), {} signed checkpoint(s); nothing changed, removed or reordered",
            summary.chains, summary.records, summary.checkpoints
        );
        if summary.records == 0 {
            anyhow::bail!("the audit log holds no record of alice's message");
        }

        alice.close().await.context("closing alice's session")?;
        bob.close().await.context("closing bob's session")?;
        println!("10. both sessions closed (logged out)");
        Ok::<_, anyhow::Error>(())
    }
    .await;

    let _ = stop.send(());
    let served = serving.await;
    println!("11. host stopped");
    result?;
    served
        .context("the host's task")?
        .context("the host while serving")?;
    Ok(())
}
