//! The sealed gateway's throughput: HTTP POSTs (4 KiB and 64 KiB, echoed back) from 1 and 16
//! concurrent clients through `kasane proxy` → host (audit on) → upstream, beside (a) the
//! upstream directly and (b) nginx as a TLS reverse proxy in front of the same upstream, in
//! the same run (BENCHMARKS.md "Gateway").
//!
//! ```text
//! cargo build --release -p kasane-cli      # the `kasane` binary the bench runs as the proxy
//! cargo bench -p kasane-bench --bench gateway
//! ```
//! Needs `/usr/sbin/nginx` (Debian's nginx-light). `KASANE_BENCH_WINDOW_SECS` (default 3)
//! sets each cell's measuring window; `KASANE_BENCH_VARIANTS` (a comma list of `direct`,
//! `nginx`, `kasane`; default all) which columns are measured (for profiling one);
//! `KASANE_BENCH_COMMIT_WAIT_US` the host's `[messages] commit_max_wait_us` (default 0).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::cast_precision_loss,
    reason = "a benchmark: a failure is a failed run, ratios are approximate"
)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use axum::body::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use kasane_bench::load::{Stats, drive};
use kasane_tests::TestHost;

const SIZES: [usize; 2] = [4096, 65536];
const CLIENTS: [usize; 2] = [1, 16];

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where a load generator sends: plain HTTP or TLS (to nginx), at an address.
#[derive(Clone, Copy)]
enum Front {
    Plain(SocketAddr),
    Tls(SocketAddr),
}

fn main() {
    let window = std::env::var("KASANE_BENCH_WINDOW_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(3), Duration::from_secs_f64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(window));
}

async fn run(window: Duration) {
    let upstream = echo_upstream().await;
    let commit_wait = std::env::var("KASANE_BENCH_COMMIT_WAIT_US")
        .ok()
        .and_then(|v| v.parse().ok());
    let th = kasane_tests::start_with(|c| {
        c.gateway.upstream = format!("http://{upstream}");
        c.gateway.max_body_bytes = 1 << 20;
        // The bench's users exchange more than a day's budget (still counted).
        c.messages.max_user_bytes_per_day = u64::MAX;
        if let Some(us) = commit_wait {
            c.messages.commit_max_wait_us = us;
        }
    })
    .await;
    let ca = std::fs::read(&th.cfg.tls_cert).unwrap();
    let work = tempfile::tempdir().unwrap();
    let (_nginx, nginx) = start_nginx(work.path(), &th, upstream);
    let (_proxy, proxy) = start_proxy(work.path(), &th).await;
    println!(
        "# gateway bench: window {:.1} s, commit_max_wait_us {}, loadavg {}",
        window.as_secs_f64(),
        th.host.config().messages.commit_max_wait_us,
        loadavg()
    );
    println!(
        "| body | clients | upstream direct req/s (p50/p99 ms) | nginx TLS proxy | kasane proxy → host → upstream | kasane / nginx |"
    );
    println!("|---|---|---|---|---|---|");
    let variants = std::env::var("KASANE_BENCH_VARIANTS").unwrap_or_default();
    let on = |v: &str| variants.is_empty() || variants.split(',').any(|x| x == v);
    for size in SIZES {
        for clients in CLIENTS {
            let shape = (size, clients, window);
            let direct = measure_if(on("direct"), Front::Plain(upstream), &ca, shape).await;
            let tls = measure_if(on("nginx"), Front::Tls(nginx), &ca, shape).await;
            let kasane = measure_if(on("kasane"), Front::Plain(proxy), &ca, shape).await;
            println!(
                "| {} KiB | {clients} | {} | {} | {} | {:.0} % |",
                size / 1024,
                cell(&direct),
                cell(&tls),
                cell(&kasane),
                100.0 * kasane.rate() / tls.rate()
            );
        }
    }
    let stats = th.host.commit_stats().render();
    let commits = stats
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect::<Vec<_>>()
        .join("; ");
    println!("\nhost group commit: {commits}");
}

fn cell(s: &Stats) -> String {
    let failed = if s.failed > 0 {
        format!(", {} failed", s.failed)
    } else {
        String::new()
    };
    format!(
        "{:.0} ({:.2}/{:.2}){failed}",
        s.rate(),
        s.p50.as_secs_f64() * 1e3,
        s.p99.as_secs_f64() * 1e3
    )
}

/// [`measure`] if `on`, else nothing measured.
async fn measure_if(
    on: bool,
    front: Front,
    ca: &[u8],
    (size, clients, window): (usize, usize, Duration),
) -> Stats {
    if on {
        measure(front, ca, size, clients, window).await
    } else {
        Stats::of(Vec::new(), 0, 1.0)
    }
}

/// `clients` closed-loop clients, each on its own keep-alive connection, POSTing `size`
/// bytes to `/echo` and reading the echo.
async fn measure(front: Front, ca: &[u8], size: usize, clients: usize, window: Duration) -> Stats {
    let body = Bytes::from(vec![0x5a; size]);
    let mut ops = Vec::new();
    for _ in 0..clients {
        let first = connect(front, ca).await;
        let send = std::sync::Arc::new(tokio::sync::Mutex::new(first));
        let (body, ca) = (body.clone(), ca.to_vec());
        ops.push(move || {
            let (send, body, ca) = (send.clone(), body.clone(), ca.clone());
            async move {
                let mut send = send.lock().await;
                // A connection the server closed (keep-alive limits) is replaced.
                if send.is_closed() {
                    *send = connect(front, &ca).await;
                }
                post(&mut send, body).await
            }
        });
    }
    drive(window, ops).await
}

/// POSTs `body` to `/echo`; whether the answer was a 200 echoing as many bytes.
async fn post(send: &mut SendRequest<Full<Bytes>>, body: Bytes) -> bool {
    let len = body.len();
    let req = hyper::Request::builder()
        .method("POST")
        .uri("/echo")
        .header("host", "localhost")
        .body(Full::new(body))
        .unwrap();
    if send.ready().await.is_err() {
        return false;
    }
    let Ok(resp) = send.send_request(req).await else {
        return false;
    };
    let ok = resp.status() == hyper::StatusCode::OK;
    let got = resp.into_body().collect().await.map(|b| b.to_bytes().len());
    ok && got.is_ok_and(|n| n == len)
}

/// One HTTP/1.1 connection to `front`.
async fn connect(front: Front, ca: &[u8]) -> SendRequest<Full<Bytes>> {
    let (addr, tls) = match front {
        Front::Plain(a) => (a, false),
        Front::Tls(a) => (a, true),
    };
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    if !tls {
        let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
        tokio::spawn(conn);
        return send;
    }
    let cfg = kasane_tests::client_tls(ca, &[b"http/1.1"]);
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let stream = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    send
}

/// The upstream: `POST /echo` answers the body it got.
async fn echo_upstream() -> SocketAddr {
    let app = axum::Router::new()
        .route(
            "/echo",
            axum::routing::post(|body: Bytes| async move { body }),
        )
        .fallback(|| async { "ok" })
        .layer(axum::extract::DefaultBodyLimit::disable());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

/// nginx terminating TLS 1.3 with the host's certificate, proxying to `upstream` over
/// keep-alive connections; two worker processes (one per core here).
fn start_nginx(dir: &Path, th: &TestHost, upstream: SocketAddr) -> (Killed, SocketAddr) {
    let port = free_port();
    let d = dir.display();
    let user = if is_root() { "user root;" } else { "" };
    let conf = format!(
        "{user} worker_processes 2; daemon off; pid {d}/nginx.pid; error_log {d}/nginx.err;
events {{ worker_connections 1024; }}
http {{
  access_log off; keepalive_requests 1000000;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  client_max_body_size 2m; client_body_buffer_size 128k;
  proxy_buffer_size 16k; proxy_buffers 16 16k;
  upstream app {{ server {upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port} ssl;
    ssl_protocols TLSv1.3;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection \"\";
    }}
  }}
}}
",
        cert = th.cfg.tls_cert.display(),
        key = th.cfg.tls_key.display(),
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("/usr/sbin/nginx")
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .arg("-e")
        .arg(dir.join("nginx.err"))
        .spawn()
        .expect("/usr/sbin/nginx (apt-get install nginx-light)");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr);
    (Killed(child), addr)
}

/// `kasane proxy` (the release binary beside this bench) logged in as alice.
async fn start_proxy(dir: &Path, th: &TestHost) -> (Killed, SocketAddr) {
    let card = th.add_user("alice").await;
    let card_file = dir.join("alice.card");
    std::fs::write(&card_file, card.to_text()).unwrap();
    let mut child = Command::new(kasane_binary())
        .args(["--server", &th.url(), "--ca"])
        .arg(&th.cfg.tls_cert)
        .arg("--root")
        .arg(th.cfg.registry_dir.join("metadata/1.root.json"))
        .arg("--card")
        .arg(&card_file)
        .args([
            "--no-cache",
            "--password-stdin",
            "proxy",
            "--listen",
            "127.0.0.1:0",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(format!("{}\n", kasane_tests::PASSWORD).as_bytes())
        .unwrap();
    drop(stdin);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let addr = loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "kasane proxy exited");
        if let Some(rest) = line.trim().strip_prefix("serving http://") {
            break rest.split('/').next().unwrap().parse().unwrap();
        }
    };
    std::thread::spawn(move || for _ in out.lines() {});
    (Killed(child), addr)
}

/// `target/<profile>/kasane`, next to this bench's own directory.
fn kasane_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe.parent().unwrap().parent().unwrap().join("kasane");
    assert!(
        p.exists(),
        "{} is missing: run `cargo build --release -p kasane-cli` first",
        p.display()
    );
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_listening(addr: SocketAddr) {
    for _ in 0..400 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listening on {addr}");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}
