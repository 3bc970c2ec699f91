//! No acknowledged message is lost: the host process is killed (SIGKILL) while eight
//! clients send (so group commits of several messages are in flight), restarted on the same data directory, and every message it acknowledged
//! is in the audit log and in its recipient's queue; the audit log verifies.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::{
    CARD, PASSWORD, card_map, client_config, file_config, host_bin as bin, serve_bin as serve,
    verifiers,
};
use ed25519_dalek::VerifyingKey;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use kasane_protocol::wire::{
    ChallengeBundle, Delivery, Inbox, InboxAck, Message, MessageAccepted, Profile, ResponseAccept,
};
use kasane_protocol::{ClientStart, Session};
use kasane_sandbox::{Allocator, Limits, Sandbox, SandboxConfig, Transform};
use rand_core::OsRng;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

const USERS: [&str; 8] = ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"];

/// One HTTP/1.1 connection over TLS 1.3 whose requests return an error (rather than
/// panic) when the host goes away.
struct Conn {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    exporter: [u8; 32],
}

async fn connect(addr: SocketAddr, cert_der: &[u8]) -> Conn {
    let cfg = client_config(cert_der, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let mut exporter = [0u8; 32];
    tls.get_ref()
        .1
        .export_keying_material(&mut exporter, b"EXPORTER-Channel-Binding", None)
        .unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    Conn { send, exporter }
}

impl Conn {
    async fn try_request(
        &mut self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        bearer: Option<[u8; 32]>,
    ) -> Result<(StatusCode, Vec<u8>), hyper::Error> {
        let mut b = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", "localhost");
        if let Some(t) = bearer {
            b = b.header("authorization", format!("Bearer {}", hex::encode(t)));
        }
        let req = b.body(Full::new(Bytes::from(body))).unwrap();
        self.send.ready().await?;
        let resp = self.send.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes().to_vec();
        Ok((status, body))
    }

    async fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        bearer: Option<[u8; 32]>,
    ) -> (StatusCode, Vec<u8>) {
        self.try_request(method, path, body, bearer).await.unwrap()
    }

    async fn post(&mut self, path: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>) {
        self.request("POST", path, body, None).await
    }

    async fn get(&mut self, path: &str, bearer: Option<[u8; 32]>) -> (StatusCode, Vec<u8>) {
        self.request("GET", path, Vec::new(), bearer).await
    }
}

/// What a client needs to reach the host: its address, pinned certificate, host key and
/// a sandbox with the modules already loaded.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    cert_der: Arc<Vec<u8>>,
    host_key: VerifyingKey,
    sandbox: Sandbox,
    modules: Arc<Mutex<HashMap<[u8; 32], Transform>>>,
}

impl Target {
    async fn transform(&self, conn: &mut Conn, bundle: &ChallengeBundle) -> Transform {
        if let Some(t) = self.modules.lock().unwrap().get(&bundle.module.sha256) {
            return t.clone();
        }
        let (status, bytes) = conn
            .get(
                &format!("/v1/modules/{}.wasm", hex::encode(bundle.module.sha256)),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK);
        let t = common::load_checked(&self.sandbox, &bytes, bundle);
        self.modules
            .lock()
            .unwrap()
            .insert(bundle.module.sha256, t.clone());
        t
    }

    async fn derive(
        &self,
        conn: &mut Conn,
        bundle: &ChallengeBundle,
        input: kasane_abi::DeriveInputBuf,
    ) -> Vec<u8> {
        let transform = self.transform(conn, bundle).await;
        tokio::task::spawn_blocking(move || {
            kasane_protocol::with_derive_input(&input, |v| transform.derive(v))
                .unwrap()
                .unwrap()
                .key
                .as_bytes()
                .to_vec()
        })
        .await
        .unwrap()
    }
}

/// A user logged in: its connection, client session, token and bundle.
struct User {
    conn: Conn,
    session: Session,
    token: [u8; 32],
    bundle: ChallengeBundle,
}

async fn login(t: &Target, name: &str) -> User {
    let mut conn = connect(t.addr, &t.cert_der).await;
    let profiles = vec![Profile::Pure, Profile::Wasi];
    let client = ClientStart::new(&mut OsRng, name, PASSWORD.as_bytes(), profiles).unwrap();
    let (status, body) = conn
        .post("/v1/login/start", client.request_bytes().to_vec())
        .await;
    assert_eq!(status, StatusCode::OK);
    let (awaiting, bytes) = client
        .receive(&mut OsRng, &body, &[t.host_key], Some(&conn.exporter))
        .unwrap();
    let (status, body) = conn.post("/v1/login/finish", bytes).await;
    assert_eq!(status, StatusCode::OK);
    let ch = awaiting.receive(&body).unwrap();
    let bundle = ch.bundle().clone();
    let transform = t.transform(&mut conn, &bundle).await;
    let input = ch.auth_input(&verifiers(&ch, &card_map())).unwrap();
    let out = tokio::task::spawn_blocking(move || {
        kasane_protocol::with_derive_input(&input, |v| transform.derive(v))
            .unwrap()
            .unwrap()
    })
    .await
    .unwrap();
    let (awaiting, bytes) = ch.respond(out.key.as_bytes()).unwrap();
    let (status, body) = conn.post("/v1/login/response", bytes).await;
    assert_eq!(status, StatusCode::OK, "login of {name} failed");
    let token = ResponseAccept::decode(&body).unwrap().session_token;
    User {
        conn,
        session: awaiting.receive(&body).unwrap(),
        token,
        bundle,
    }
}

impl User {
    /// Seals and posts one message: `Ok(true)` when the host acknowledged it, `Err` on a
    /// connection error (the host was killed).
    async fn send(
        &mut self,
        t: &Target,
        recipient: &str,
        body: &[u8],
    ) -> Result<bool, hyper::Error> {
        let (seq, input) = self.session.prepare_seal().unwrap();
        let tm = t.derive(&mut self.conn, &self.bundle, input).await;
        let sealed = self.session.seal(seq, &tm, recipient, body).unwrap();
        let (status, answer) = self
            .conn
            .try_request(
                "POST",
                "/v1/messages",
                sealed.encode().unwrap(),
                Some(self.token),
            )
            .await?;
        Ok(status == StatusCode::OK && MessageAccepted::decode(&answer).unwrap().seq == seq)
    }

    /// Reads the whole inbox, acking as it goes.
    async fn drain(&mut self, t: &Target) -> Vec<Delivery> {
        let mut all = Vec::new();
        loop {
            let (status, body) = self.conn.get("/v1/inbox?wait=0", Some(self.token)).await;
            assert_eq!(status, StatusCode::OK);
            let inbox = Inbox::decode(&body).unwrap();
            let mut ids = Vec::new();
            for m in &inbox.messages {
                let input = self.session.prepare_open(m).unwrap();
                let tm = t.derive(&mut self.conn, &self.bundle, input).await;
                let plain = self.session.open(m, &tm).unwrap();
                let d = Delivery::decode(&plain).unwrap();
                ids.push(d.id);
                all.push(d);
            }
            if ids.is_empty() && !inbox.more {
                return all;
            }
            let (status, _) = self
                .conn
                .request(
                    "POST",
                    "/v1/inbox/ack",
                    InboxAck { ids }.encode().unwrap(),
                    Some(self.token),
                )
                .await;
            assert_eq!(status, StatusCode::NO_CONTENT);
        }
    }
}

fn add_user(data: &str, pairs: &Path, name: &str) {
    common::user_add_bin(data, name, pairs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_acknowledged_message_is_lost_on_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let out = bin()
        .args(["--data", data_s, "init", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pairs = dir.path().join("pairs.txt");
    std::fs::write(&pairs, CARD).unwrap();
    for u in USERS {
        add_user(data_s, &pairs, u);
    }
    let cert_der = {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(
            &std::fs::read(data.join("tls/cert.pem")).unwrap(),
        )
        .unwrap()
        .to_vec()
    };
    let host_key = kasane_host::setup::read_signing_key(&data.join("keys/host.key"))
        .unwrap()
        .verifying_key();
    let sandbox = Sandbox::new(SandboxConfig {
        allocator: Allocator::OnDemand,
        max_limits: Limits {
            fuel: 2_000_000_000,
            ..Limits::default()
        },
        ..SandboxConfig::default()
    })
    .unwrap();

    let (mut first, addr) = serve(data_s);
    let target = Target {
        addr,
        cert_der: Arc::new(cert_der),
        host_key,
        sandbox,
        modules: Arc::new(Mutex::new(HashMap::new())),
    };

    // Eight sessions, each sending to the next user until the host dies.
    let acked: Arc<Mutex<Vec<(String, String)>>> = Arc::new(Mutex::new(Vec::new()));
    // Each acknowledgement also names its sender here, so the kill waits for traffic.
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
    let mut tasks = Vec::new();
    for (i, name) in USERS.iter().enumerate() {
        let mut user = login(&target, name).await;
        let to = USERS[(i + 1) % USERS.len()];
        let t = target.clone();
        let acked = acked.clone();
        let ack_tx = ack_tx.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0u64.. {
                let body = format!("from {name} #{n}");
                match user.send(&t, to, body.as_bytes()).await {
                    Ok(true) => {
                        acked.lock().unwrap().push((to.to_owned(), body));
                        let _ = ack_tx.send(i);
                    }
                    Ok(false) => {}
                    Err(_) => return n,
                }
            }
            unreachable!()
        }));
    }
    // Kill while all eight are sending: once each has had a few messages acknowledged.
    let mut per_sender = [0u32; USERS.len()];
    tokio::time::timeout(Duration::from_secs(120), async {
        while per_sender.iter().any(|&n| n < 3) {
            per_sender[ack_rx.recv().await.unwrap()] += 1;
        }
    })
    .await
    .expect("the senders got no acknowledgements");
    first.0.kill().unwrap();
    first.0.wait().unwrap();
    for task in tasks {
        // Each sender ends on a connection error: the host is gone.
        let sent = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("a sender did not notice the host was killed")
            .unwrap();
        assert!(sent > 0);
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    assert!(
        !acked.is_empty(),
        "no message was acknowledged before the kill"
    );

    // Restart on the same data directory; every acknowledged message is queued.
    let (_second, addr) = serve(data_s);
    let target = Target { addr, ..target };
    let mut delivered: HashMap<String, HashSet<String>> = HashMap::new();
    for name in USERS {
        let mut user = login(&target, name).await;
        let got = user.drain(&target).await;
        let set = delivered.entry(name.to_owned()).or_default();
        for d in got {
            set.insert(String::from_utf8(d.body).unwrap());
        }
    }
    for (to, body) in &acked {
        assert!(
            delivered.get(to).is_some_and(|s| s.contains(body)),
            "acknowledged message {body:?} to {to} was lost"
        );
    }

    // The audit log holds at least every acknowledged message, and verifies.
    let cfg = file_config(&data);
    let store = kasane_host::store::open(&cfg.database_url).await.unwrap();
    let records = store.audit_page(None, 1_000_000).await.unwrap();
    assert!(
        records.len() >= acked.len(),
        "{} audit records for {} acknowledged messages",
        records.len(),
        acked.len()
    );
    let bodies: HashSet<(String, String)> = acked.iter().cloned().collect();
    assert_eq!(bodies.len(), acked.len());
    kasane_host::audit::verify(store.as_ref(), &host_key)
        .await
        .unwrap();
    let out = bin()
        .args(["--data", data_s, "audit", "verify"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "{} acknowledged before SIGKILL, {} audit records: all delivered after restart",
        acked.len(),
        records.len()
    );
}
