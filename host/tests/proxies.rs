//! Forward-auth behind real proxies, configured as docs/GATEWAY.md shows: Debian's nginx
//! (`auth_request`), Debian's Caddy (`forward_auth`) and Traefik (`forwardAuth`), each in
//! front of a real service (an axum app that records what reaches it). Through each: alice's
//! session token reaches the service as alice with an assertion that verifies against the
//! host's JWKS, never with the token or with `X-Kasane-*` headers the client made up; no
//! token and a wrong one are refused and never reach it; a guesser behind the proxy locks
//! only its own address (the proxy passes the client's address in `X-Forwarded-For`, the
//! host trusts the proxy); and after a logout the token is refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests: a failure here is a test failure"
)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

use common::upstream::{Log, upstream, verify};
use common::{Conn, TestHost, login, start};
use hyper::StatusCode;

const AUDIENCE: &str = "https://app.example";

/// A host whose forward-auth answers carry assertions for [`AUDIENCE`], that trusts the
/// proxy on 127.0.0.1 to name the client, and locks a source after a few failures.
async fn host() -> TestHost {
    start(|c| {
        c.gateway.audience = AUDIENCE.into();
        c.http.trusted_proxies = vec!["127.0.0.1/32".into()];
        c.throttle.free_failures = 2;
        c.throttle.ipv4_prefix = 32;
    })
    .await
}

/// What each test starts from: the host, alice logged in (her connection and token), the
/// service behind the proxy and what reached it, a directory for the proxy and the address it
/// listens on: a port of its own loopback address, which no other test's port-0 listener on
/// 127.0.0.1 can take between the pick and the proxy's start.
struct Scene {
    th: TestHost,
    conn: Conn,
    token: [u8; 32],
    up: SocketAddr,
    log: Log,
    dir: tempfile::TempDir,
    proxy: SocketAddr,
}

async fn scene(ip: &str) -> Scene {
    let th = host().await;
    let (up, log) = upstream().await;
    th.add_user("alice").await;
    let mut conn = th.connect().await;
    let (_, token, _) = login(&th, &mut conn, "alice").await;
    let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
    let proxy = listener.local_addr().unwrap();
    Scene {
        th,
        conn,
        token,
        up,
        log,
        dir: tempfile::tempdir().unwrap(),
        proxy,
    }
}

/// `path` if it exists, or `None` (and why) outside CI.
fn binary(path: &'static str, package: &str) -> Option<PathBuf> {
    if Path::new(path).exists() {
        return Some(path.into());
    }
    skip(&format!("{path} is missing (apt-get install {package})"))
}

/// `None`, having said why, outside CI; in CI a missing peer fails the test.
fn skip<T>(why: &str) -> Option<T> {
    assert!(std::env::var_os("CI").is_none(), "{why}");
    eprintln!("skipping: {why}");
    None
}

/// A proxy process, stopped when dropped (also when an assertion fails).
struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits until something listens on `addr`.
async fn listening(addr: SocketAddr) {
    for _ in 0..400 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("nothing listens on {addr}");
}

/// `curl` of `url` with extra `args`: the status and the body.
fn curl(url: &str, args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--max-time", "20"])
        .args(args)
        .arg(url)
        .output()
        .expect("curl");
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_owned())
}

/// The checks every proxy must pass, through `app` (a URL of the proxy in front of the
/// service that recorded `log`), for alice's session `token` on `conn`; `proxy_log` is
/// shown when one fails.
async fn check_proxy(conn: &mut Conn, token: [u8; 32], log: &Log, app: &str, proxy_log: &Path) {
    let bearer = format!("Authorization: Bearer {}", hex::encode(token));
    let cookie = format!("Cookie: kasane_session={}", hex::encode(token));
    let wrong = format!("Authorization: Bearer {}", hex::encode([9u8; 32]));
    let (url, b) = (app.to_owned(), bearer.clone());
    let results = tokio::task::spawn_blocking(move || {
        let from = |ip: &'static str, extra: &[&str]| {
            let mut args = vec!["--interface", ip];
            args.extend_from_slice(extra);
            curl(&url, &args)
        };
        let alice = |extra: &[&str]| from("127.0.0.1", extra);
        let guesser = |extra: &[&str]| from("127.0.0.2", extra);
        let spoofed = ["-H", "X-Kasane-User: mallory", "-H", "X-Kasane-User: root"];
        let forged = ["-H", "X-Kasane-Assertion: forged"];
        let mut r = vec![alice(
            &[&["-H", b.as_str()][..], &spoofed, &forged].concat(),
        )];
        r.push(alice(&["-H", &cookie]));
        r.push(guesser(&[]));
        for _ in 0..4 {
            r.push(guesser(&["-H", &wrong]));
        }
        r.push(guesser(&["-H", &b])); // a live token, from the locked address
        r.push(alice(&["-H", &b])); // … and from alice's own, still served
        r
    })
    .await
    .unwrap();
    let codes: Vec<u16> = results.iter().map(|r| r.0).collect();
    let why = || std::fs::read_to_string(proxy_log).unwrap_or_default();
    let expected = [200, 200, 401, 401, 401, 401, 401, 401, 200];
    assert_eq!(codes, expected, "{results:?}\n{}", why());
    assert_eq!(results[0].1, "page");
    let seen = log.lock().unwrap().clone();
    assert_eq!(
        seen.len(),
        3,
        "only alice's three requests reach the service: {seen:?}"
    );
    for s in &seen {
        assert_eq!(s.users, ["alice"], "{s:?}");
        assert!(
            !s.authorization,
            "the session token reached the service: {s:?}"
        );
        let claims = verify(conn, s.assertion.as_deref().unwrap(), AUDIENCE).await;
        assert_eq!(claims["sub"], "alice");
    }
    let (status, _) = conn
        .request("POST", "/v1/logout", vec![], Some(token))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let url = app.to_owned();
    let after = tokio::task::spawn_blocking(move || curl(&url, &["-H", &bearer]))
        .await
        .unwrap();
    assert_eq!(after.0, 401, "a token after its logout");
    assert_eq!(log.lock().unwrap().len(), 3);
}

/// The nginx configuration of docs/GATEWAY.md: `/` a page (the user in a response header),
/// `/app/` the service, both under `auth_request` to the host over TLS 1.3.
fn nginx_conf(s: &Scene) -> String {
    let (d, proxy, up) = (s.dir.path().display(), s.proxy, s.up);
    let (cert, host) = (s.th.cfg.tls_cert.display(), s.th.addr);
    format!(
        "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;
events {{}}
http {{
  access_log off;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{
    listen {proxy};
    location / {{
      auth_request /_kasane;
      auth_request_set $kasane_user $upstream_http_x_kasane_user;
      add_header X-User $kasane_user;
      root {d}/www;
    }}
    location /app/ {{
      auth_request /_kasane;
      auth_request_set $kasane_user $upstream_http_x_kasane_user;
      auth_request_set $kasane_assertion $upstream_http_x_kasane_assertion;
      proxy_set_header X-Kasane-User $kasane_user;
      proxy_set_header X-Kasane-Assertion $kasane_assertion;
      proxy_set_header Authorization \"\";
      proxy_pass http://{up};
    }}
    location = /_kasane {{
      internal;
      proxy_pass https://{host}/v1/auth/check;
      proxy_pass_request_body off;
      proxy_set_header Content-Length \"\";
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate {cert};
      proxy_ssl_name localhost;
      proxy_ssl_server_name on;
      proxy_ssl_protocols TLSv1.3;
    }}
  }}
}}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nginx_auth_request_passes_only_live_sessions_as_their_user() {
    let Some(nginx) = binary("/usr/sbin/nginx", "nginx-light") else {
        return;
    };
    let mut s = scene("127.0.0.3").await;
    std::fs::create_dir(s.dir.path().join("www")).unwrap();
    std::fs::write(s.dir.path().join("www/index.html"), "the page\n").unwrap();
    let conf = s.dir.path().join("nginx.conf");
    std::fs::write(&conf, nginx_conf(&s)).unwrap();
    let _nginx = Proxy(
        Command::new(nginx)
            .arg("-p")
            .arg(s.dir.path())
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(s.dir.path().join("error.log"))
            .spawn()
            .unwrap(),
    );
    listening(s.proxy).await;
    let page = format!("http://{}/", s.proxy);
    let bearer = format!("Authorization: Bearer {}", hex::encode(s.token));
    let r = tokio::task::spawn_blocking(move || curl(&page, &["-H", &bearer, "-D", "-"]))
        .await
        .unwrap();
    let log_text = std::fs::read_to_string(s.dir.path().join("error.log")).unwrap_or_default();
    assert_eq!(r.0, 200, "{log_text}");
    assert!(r.1.ends_with("the page\n"), "{}", r.1);
    assert!(
        r.1.to_ascii_lowercase().contains("x-user: alice"),
        "{}",
        r.1
    );
    let app = format!("http://{}/app/x", s.proxy);
    let proxy_log = s.dir.path().join("error.log");
    check_proxy(&mut s.conn, s.token, &s.log, &app, &proxy_log).await;
}

/// The Caddy configuration of docs/GATEWAY.md: the client's `X-Kasane-*` removed,
/// `forward_auth` to the host over TLS, the token removed, the service behind.
fn caddyfile(s: &Scene) -> String {
    let (d, proxy, up) = (s.dir.path().display(), s.proxy, s.up);
    let ip = proxy.ip();
    let (cert, host) = (s.th.cfg.tls_cert.display(), s.th.addr);
    format!(
        "{{
	admin off
	auto_https off
	storage file_system {d}/data
}}
http://{proxy} {{
	bind {ip}
	route {{
		request_header -X-Kasane-User
		request_header -X-Kasane-Assertion
		forward_auth https://{host} {{
			uri /v1/auth/check
			copy_headers X-Kasane-User X-Kasane-Assertion
			transport http {{
				tls_trusted_ca_certs {cert}
				tls_server_name localhost
			}}
		}}
		request_header -Authorization
		reverse_proxy {up}
	}}
}}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn caddy_forward_auth_passes_only_live_sessions_as_their_user() {
    let Some(caddy) = binary("/usr/bin/caddy", "caddy") else {
        return;
    };
    let mut s = scene("127.0.0.4").await;
    let conf = s.dir.path().join("Caddyfile");
    std::fs::write(&conf, caddyfile(&s)).unwrap();
    let _caddy = Proxy(
        Command::new(caddy)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&conf)
            .env("HOME", s.dir.path())
            .env("XDG_CONFIG_HOME", s.dir.path())
            .env("XDG_DATA_HOME", s.dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(s.dir.path().join("caddy.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    listening(s.proxy).await;
    let app = format!("http://{}/app/x", s.proxy);
    let proxy_log = s.dir.path().join("caddy.log");
    check_proxy(&mut s.conn, s.token, &s.log, &app, &proxy_log).await;
}

/// The Traefik configuration of docs/GATEWAY.md (file provider): `forwardAuth` to the host
/// over TLS, its answer's `X-Kasane-*` copied over the client's, the token removed, the
/// service behind.
fn traefik_dynamic(s: &Scene) -> String {
    let (cert, host, up) = (s.th.cfg.tls_cert.display(), s.th.addr, s.up);
    format!(
        "http:
  routers:
    app:
      entryPoints: [web]
      rule: PathPrefix(`/`)
      middlewares: [kasane, no-token]
      service: app
  middlewares:
    kasane:
      forwardAuth:
        address: https://{host}/v1/auth/check
        authResponseHeaders:
          - X-Kasane-User
          - X-Kasane-Assertion
        tls:
          ca: {cert}
    no-token:
      headers:
        customRequestHeaders:
          Authorization: \"\"
  services:
    app:
      loadBalancer:
        servers:
          - url: http://{up}
"
    )
}

/// Waits until Traefik has loaded its routes (its entry point listens before the file
/// provider's configuration is in): a request without a token gets the host's `401`, not
/// Traefik's `404`. Asked from an address of its own, so nothing counts against alice's.
async fn routed(url: String) {
    for _ in 0..400 {
        let u = url.clone();
        let (code, _) =
            tokio::task::spawn_blocking(move || curl(&u, &["--interface", "127.0.0.6"]))
                .await
                .unwrap();
        if code == 401 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("Traefik never routed {url}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn traefik_forward_auth_passes_only_live_sessions_as_their_user() {
    let why = "KASANE_TEST_TRAEFIK is not set (pip install --require-hashes -r \
               host/tests/traefik/requirements.txt; .ci/run does)";
    let Some(traefik) = std::env::var_os("KASANE_TEST_TRAEFIK")
        .map(PathBuf::from)
        .or_else(|| skip(why))
    else {
        return;
    };
    let mut s = scene("127.0.0.5").await;
    let d = s.dir.path();
    std::fs::write(d.join("dynamic.yml"), traefik_dynamic(&s)).unwrap();
    let log = d.join("traefik.log");
    let _traefik = Proxy(
        Command::new(traefik)
            .arg(format!("--entryPoints.web.address={}", s.proxy))
            .arg(format!(
                "--providers.file.filename={}",
                d.join("dynamic.yml").display()
            ))
            .args([
                "--global.checkNewVersion=false",
                "--global.sendAnonymousUsage=false",
            ])
            .args(["--log.level=INFO"])
            .env("HOME", d)
            .current_dir(d)
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(d.join("traefik.err")).unwrap())
            .spawn()
            .unwrap(),
    );
    listening(s.proxy).await;
    let app = format!("http://{}/app/x", s.proxy);
    routed(app.clone()).await;
    check_proxy(&mut s.conn, s.token, &s.log, &app, &log).await;
}
