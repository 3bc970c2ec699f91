//! Connections an unauthenticated client holds are bounded (issue: the host survives abuse,
//! item 4): 1,000 connections that stall at every stage — the TCP connect, the TLS handshake,
//! the request head, the body, an idle HTTP/2 connection — are all closed by the host's
//! `[http]` timeouts, and a real login succeeds while they are held.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Attacking connections, of every kind below in turn.
const ATTACKERS: usize = 1000;
/// The timeouts the test host runs with (`[http]`), seconds.
const SHORT: u64 = 2;
/// The idle timeout: the config requires more than the longest inbox long-poll (30 s).
const IDLE: u64 = 31;
/// A connection still open this long after its stall is a failure (generous: a loaded CI
/// machine is slow, but a missing timeout never closes the connection at all).
const BOUND: Duration = Duration::from_secs(IDLE + 30);

#[derive(Clone, Copy, Debug)]
enum Stall {
    /// TCP only: the TLS handshake never starts.
    Handshake,
    /// TLS, then nothing on HTTP/1.1.
    Silent,
    /// Half a request head.
    HalfHead,
    /// The head, then 10 of the 1,000 body bytes it announced.
    HalfBody,
    /// HTTP/2: the preface and SETTINGS, then nothing.
    IdleH2,
}

const STALLS: [Stall; 5] = [
    Stall::Handshake,
    Stall::Silent,
    Stall::HalfHead,
    Stall::HalfBody,
    Stall::IdleH2,
];

/// The soft limit on open files, from /proc (each attacker is a socket at both ends).
fn open_file_limit() -> u64 {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or(u64::MAX)
}

/// Opens one attacking connection and stalls it as `stall` says; returns the stream to hold.
async fn stall(th: &TestHost, stall: Stall) -> Box<dyn AsyncStream> {
    let tcp = TcpStream::connect(th.addr).await.unwrap();
    if let Stall::Handshake = stall {
        return Box::new(tcp);
    }
    let alpn: &[u8] = if let Stall::IdleH2 = stall {
        b"h2"
    } else {
        b"http/1.1"
    };
    let cfg = client_config(&th.cert_der, &[&rustls::version::TLS13], &[alpn]);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .unwrap();
    let sent: &[u8] = match stall {
        Stall::Handshake | Stall::Silent => b"",
        Stall::HalfHead => b"POST /v1/login/start HTTP/1.1\r\nHost: localhost\r\nContent-Le",
        Stall::HalfBody => {
            b"POST /v1/login/start HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n0123456789"
        }
        // The client preface, then an empty SETTINGS frame (RFC 9113 §3.4, §6.5).
        Stall::IdleH2 => b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    };
    tls.write_all(sent).await.unwrap();
    tls.flush().await.unwrap();
    Box::new(tls)
}

trait AsyncStream: tokio::io::AsyncRead + Unpin + Send {}
impl<T: tokio::io::AsyncRead + Unpin + Send> AsyncStream for T {}

impl Stall {
    /// How long after the stall the host must have closed the connection. Each HTTP/1.1
    /// stall has its own short timeout, so it must close well before the idle rule (which
    /// would close it too) could have: that is what shows its own timeout works.
    fn closed_within(self) -> Duration {
        match self {
            Stall::IdleH2 => BOUND,
            _ => Duration::from_secs(IDLE - 1),
        }
    }
}

/// Reads (and drops) what the host sends until it closes the connection; when that was, or
/// `None` if it was still open after [`BOUND`].
async fn until_closed(mut s: Box<dyn AsyncStream>) -> Option<Instant> {
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(BOUND, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    closed.ok().map(|()| Instant::now())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connections_are_closed_and_a_login_succeeds_meanwhile() {
    assert!(
        open_file_limit() >= 3 * ATTACKERS as u64,
        "this test holds {ATTACKERS} connections at both ends: raise the open-file limit (ulimit -n)"
    );
    let th = Arc::new(
        start(|c| {
            c.http.handshake_timeout_secs = SHORT;
            c.http.header_timeout_secs = SHORT;
            c.http.body_timeout_secs = SHORT;
            c.http.idle_timeout_secs = IDLE;
            c.http.max_connections = 4 * ATTACKERS;
        })
        .await,
    );
    th.add_user("alice").await;
    let mut held = Vec::with_capacity(ATTACKERS);
    for i in 0..ATTACKERS {
        let kind = STALLS[i % STALLS.len()];
        let stream = stall(&th, kind).await;
        held.push((kind, Instant::now(), stream));
    }
    // Every stall is in place; a real login goes through beside them.
    let mut conn = th.connect().await;
    let (_, token, _) = login(&th, &mut conn, "alice").await;
    let (status, _) = conn.get("/v1/session", Some(token)).await;
    assert_eq!(
        status,
        hyper::StatusCode::OK,
        "the new session is not usable"
    );

    let waits: Vec<_> = held
        .into_iter()
        .map(|(kind, stalled, s)| {
            tokio::spawn(async move { (kind, until_closed(s).await.map(|t| t - stalled)) })
        })
        .collect();
    let mut late = Vec::new();
    for w in waits {
        let (kind, after) = w.await.unwrap();
        if after.is_none_or(|after| after > kind.closed_within()) {
            late.push((kind, after));
        }
    }
    assert!(
        late.is_empty(),
        "{} of {ATTACKERS} stalled connections were closed late or never (None): {:?}",
        late.len(),
        &late[..late.len().min(10)]
    );
}

/// A TLS 1.3 connection to the host offering HTTP/1.1, for requests written by hand.
async fn http1_over_tls(th: &TestHost) -> tokio_rustls::client::TlsStream<TcpStream> {
    let tcp = TcpStream::connect(th.addr).await.unwrap();
    tls_on(th, tcp).await
}

/// TLS 1.3 (HTTP/1.1) to the host over an open TCP connection.
async fn tls_on(th: &TestHost, tcp: TcpStream) -> tokio_rustls::client::TlsStream<TcpStream> {
    let cfg = client_config(&th.cert_der, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .unwrap()
}

/// A body that trickles in (a byte a second, each gap well within `body_timeout_secs`) is
/// still cut off `body_timeout_secs` after it began: the deadline is for the whole body, not
/// for each gap, so a client cannot hold a connection for as long as its `Content-Length`
/// lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trickled_body_is_cut_off_at_one_deadline() {
    let th = start(|c| {
        c.http.body_timeout_secs = SHORT;
        c.http.idle_timeout_secs = IDLE;
    })
    .await;
    let mut tls = http1_over_tls(&th).await;
    let head = "POST /v1/login/start HTTP/1.1\r\nHost: localhost\r\nContent-Length: 60000\r\n\r\n";
    tls.write_all(head.as_bytes()).await.unwrap();
    let began = Instant::now();
    let (mut rd, mut wr) = tokio::io::split(tls);
    let trickle = tokio::spawn(async move {
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            if wr.write_all(b"x").await.is_err() || wr.flush().await.is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(4 * SHORT + 5), async {
        while let Ok(n) = rd.read(&mut buf).await {
            if n == 0 || answer.len() > 12 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    trickle.abort();
    assert!(
        read.is_ok(),
        "no answer {:?} after the body began to trickle",
        began.elapsed()
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert!(
        began.elapsed() < Duration::from_secs(4 * SHORT),
        "{:?}",
        began.elapsed()
    );
}

/// `POST /v1/messages` checks the bearer token before it reads the body (item 4): a client
/// without a live session that announces a 1 MiB body and sends 10 bytes gets its `401` at
/// once, not after the body timeout (30 s by default) with the body buffered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_answer_a_bad_token_before_reading_the_body() {
    let th = start(|_| {}).await;
    let mut tls = http1_over_tls(&th).await;
    let token = "00".repeat(32);
    let head = format!(
        "POST /v1/messages HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer {token}\r\n\
         Content-Length: 1048576\r\n\r\n0123456789"
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.flush().await.unwrap();
    let mut got = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut got))
        .await
        .expect("no answer before the body arrived")
        .unwrap();
    let answer = String::from_utf8_lossy(&got[..n]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
}

/// One `POST /v1/login/start` (a start for an unknown name) over raw HTTP/1.1 with these
/// extra header lines; the status line.
async fn start_with_headers(th: &TestHost, extra: &str) -> String {
    let tls = http1_over_tls(th).await;
    start_on(tls, extra).await
}

/// A login start for an unknown name on `tls`, with `extra` header lines; the status line.
async fn start_on(mut tls: tokio_rustls::client::TlsStream<TcpStream>, extra: &str) -> String {
    let client = kasane_protocol::ClientStart::new(
        &mut rand_core::OsRng,
        "nobody",
        b"guess",
        vec![kasane_protocol::wire::Profile::Pure],
    )
    .unwrap();
    let body = client.request_bytes();
    let head = format!(
        "POST /v1/login/start HTTP/1.1\r\nHost: localhost\r\n{extra}Content-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(body).await.unwrap();
    tls.flush().await.unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    text.lines().next().unwrap_or_default().to_owned()
}

/// The source networks the host has throttle entries for.
async fn throttled_sources(th: &TestHost) -> Vec<String> {
    let entries = th.host.store().list_throttle().await.unwrap();
    let mut keys: Vec<String> = entries
        .into_iter()
        .map(|e| e.key)
        .filter(|k| k.starts_with("a:"))
        .collect();
    keys.sort();
    keys
}

/// `X-Forwarded-For` is believed from `http.trusted_proxies` only, and then its rightmost
/// entry that is not itself a trusted proxy is the client; from anyone else, or malformed
/// where a trusted proxy wrote it, the peer's own address counts. A client's junk left of its
/// address (nginx's `$proxy_add_x_forwarded_for` passes it on) is not read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_believed_from_trusted_proxies_only() {
    let th = start(|c| c.channel_binding = false).await;
    let forwarded = "X-Forwarded-For: 203.0.113.5\r\n";
    assert!(
        start_with_headers(&th, forwarded)
            .await
            .starts_with("HTTP/1.1 200")
    );
    assert_eq!(throttled_sources(&th).await, ["a:127.0.0.1/32"]);

    let th = start(|c| {
        c.channel_binding = false;
        c.http.trusted_proxies = vec!["127.0.0.0/8".into(), "10.0.0.0/8".into()];
    })
    .await;
    start_with_headers(&th, forwarded).await;
    // A chain through another trusted proxy: the client is the rightmost untrusted hop.
    start_with_headers(
        &th,
        "X-Forwarded-For: 198.51.100.1, 192.0.2.9, 10.1.2.3\r\n",
    )
    .await;
    // Malformed where the trusted proxy wrote it: the proxy's own address.
    start_with_headers(&th, "X-Forwarded-For: not-an-address\r\n").await;
    // Junk the client sent, its address appended (on the same line, or on one of its own;
    // not even text): the client's address.
    for junk in [
        "X-Forwarded-For: not-an-address, 198.51.100.7\r\n",
        "X-Forwarded-For: x,,\r\nX-Forwarded-For: 198.51.100.8\r\n",
        "X-Forwarded-For: \u{fc}, 198.51.100.9\r\n",
    ] {
        start_with_headers(&th, junk).await;
    }
    assert_eq!(
        throttled_sources(&th).await,
        [
            "a:127.0.0.1/32",
            "a:192.0.2.9/32",
            "a:198.51.100.7/32",
            "a:198.51.100.8/32",
            "a:198.51.100.9/32",
            "a:203.0.113.5/32"
        ]
    );
}

/// On a dual-stack listener (`[::]`) an IPv4 client's address arrives as IPv4-mapped IPv6
/// (`::ffff:a.b.c.d`). The host takes it as the IPv4 address it is: an IPv4 proxy listed in
/// `trusted_proxies` is trusted, and an IPv4 client is throttled under its IPv4 network, not
/// under the one IPv6 /64 every mapped address shares (where one guesser would lock out every
/// IPv4 client); so is a mapped address in `X-Forwarded-For`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv4_clients_of_a_dual_stack_listener_are_ipv4() {
    let th = start(|c| {
        c.listen = "[::]:0".into();
        c.channel_binding = false;
        c.http.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    let to = std::net::SocketAddr::from(([127, 0, 0, 1], th.addr.port()));
    // A proxy of the same kind names its IPv4 client mapped too.
    let forwarded = "X-Forwarded-For: ::ffff:198.51.100.7\r\n";
    let proxy = ipv4_from(&th, [127, 0, 0, 1], to).await;
    assert!(start_on(proxy, forwarded).await.starts_with("HTTP/1.1 200"));
    start_on(ipv4_from(&th, [127, 0, 0, 2], to).await, "").await;
    assert_eq!(
        throttled_sources(&th).await,
        ["a:127.0.0.2/32", "a:198.51.100.7/32"]
    );
}

/// TLS to the host at `to` over IPv4 from `from`.
async fn ipv4_from(
    th: &TestHost,
    from: [u8; 4],
    to: std::net::SocketAddr,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::from((from, 0))).unwrap();
    tls_on(th, socket.connect(to).await.unwrap()).await
}

/// A TCP connection to the host from `from` (a loopback address), having sent `first`.
async fn connect_from(th: &TestHost, from: [u8; 4], first: &[u8]) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(std::net::SocketAddr::from((from, 0))).unwrap();
    let mut tcp = socket.connect(th.addr).await.unwrap();
    tcp.write_all(first).await.unwrap();
    tcp
}

/// `http.proxy_protocol`: a trusted load balancer's PROXY v2 header names the client (its
/// address is what throttling keys by), with channel binding on (TLS still ends at the
/// host); from the trusted proxy a connection without the header is dropped; anyone else
/// speaks plain TLS and cannot name an address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_v2_from_trusted_proxies_names_the_client() {
    use ppp::v2::{Builder, Command, IPv4, Protocol, Version};
    let th = start(|c| {
        c.http.trusted_proxies = vec!["127.0.0.2/32".into()];
        c.http.proxy_protocol = true;
    })
    .await;
    let header = |ip: [u8; 4]| {
        let addresses = IPv4::new(ip, [127, 0, 0, 1], 40_000, th.addr.port());
        Builder::with_addresses(Version::Two | Command::Proxy, Protocol::Stream, addresses)
            .build()
            .unwrap()
    };
    let via_proxy = connect_from(&th, [127, 0, 0, 2], &header([203, 0, 113, 7])).await;
    let status = start_on(tls_on(&th, via_proxy).await, "").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    // From the proxy without a header: the TLS hello is no PROXY signature; dropped.
    let bare = connect_from(&th, [127, 0, 0, 2], b"").await;
    let cfg = client_config(&th.cert_der, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let refused = tokio::time::timeout(
        Duration::from_secs(15),
        tokio_rustls::TlsConnector::from(cfg).connect(name, bare),
    )
    .await
    .expect("dropped within the handshake timeout");
    assert!(refused.is_err());
    // From anyone else the header is not read: it would be garbage before the TLS hello.
    let direct = connect_from(&th, [127, 0, 0, 1], b"").await;
    let status = start_on(tls_on(&th, direct).await, "").await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let spoof = connect_from(&th, [127, 0, 0, 1], &header([198, 51, 100, 1])).await;
    let cfg = client_config(&th.cert_der, &[&rustls::version::TLS13], &[b"http/1.1"]);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    assert!(
        tokio_rustls::TlsConnector::from(cfg)
            .connect(name, spoof)
            .await
            .is_err()
    );
    assert_eq!(
        throttled_sources(&th).await,
        ["a:127.0.0.1/32", "a:203.0.113.7/32"]
    );
}

/// `proxy_protocol` with no trusted proxy is refused at load.
#[test]
fn proxy_protocol_needs_trusted_proxies() {
    let mut cfg = kasane_host::config::Config::default();
    cfg.http.proxy_protocol = true;
    let err = cfg.check().unwrap_err();
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(text.contains("trusted_proxies"), "{text}");
}

/// A trusted proxy that is not a network stops the host at load, naming the entry.
#[test]
fn a_trusted_proxy_that_is_not_a_network_is_refused() {
    let mut cfg = kasane_host::config::Config::default();
    cfg.http.trusted_proxies = vec!["10.0.0.0/8".into(), "ten dot".into()];
    let err = cfg.check().unwrap_err();
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(text.contains("\"ten dot\""), "{text}");
}
