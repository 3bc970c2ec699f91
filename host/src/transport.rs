//! The transport under every host: TLS 1.3, then HTTP/1.1 or HTTP/2 (by ALPN), with every
//! resource a client can hold before it authenticates bounded (`[http]` in the config):
//!
//! | a client that … | is stopped by |
//! |---|---|
//! | opens connections without end | `max_connections`: beyond it, accepting pauses until one closes |
//! | stalls the TLS handshake | `handshake_timeout_secs` |
//! | sends half a request head, or nothing, on HTTP/1.1 (also between keep-alive requests) | `header_timeout_secs` (hyper's header-read timer) |
//! | stalls or trickles its body | `body_timeout_secs`, one deadline for the whole body: the body read fails, the request gets a 4xx |
//! | holds a connection and sends nothing (HTTP/2 included) | `idle_timeout_secs`, counted from the last byte received |
//! | opens many HTTP/2 streams | `max_streams` per connection |

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::{Extension, Router};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::util::MapRequestLayer;

use crate::HostError;
use crate::config::HttpConfig;

/// The RFC 9266 exporter label.
pub const EXPORTER_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// What a request knows of its connection.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The TLS exporter value of the connection (RFC 9266), if any.
    pub channel_binding: Option<[u8; 32]>,
}

/// The per-connection limits, from `[http]`.
#[derive(Debug, Clone)]
struct Limits {
    handshake: Duration,
    header: Duration,
    idle: Duration,
    streams: u32,
    /// With `http.proxy_protocol`: the networks whose connections begin with a PROXY v2
    /// header.
    proxies: Option<Arc<Vec<ipnet::IpNet>>>,
}

impl From<&HttpConfig> for Limits {
    fn from(h: &HttpConfig) -> Self {
        Self {
            handshake: Duration::from_secs(h.handshake_timeout_secs),
            header: Duration::from_secs(h.header_timeout_secs),
            idle: Duration::from_secs(h.idle_timeout_secs),
            streams: h.max_streams,
            proxies: h.proxy_protocol.then(|| Arc::new(h.trusted_proxy_nets())),
        }
    }
}

/// Serves any router over TLS on `listener` until `shutdown` completes: the transport under
/// [`crate::server::run`] (a host needs `run` or `spawn`: they add housekeeping). Each
/// connection gets a [`ConnInfo`] extension with its peer address and exporter value.
///
/// When `shutdown` completes the listener is closed (no new connections), every open
/// connection is asked to finish (HTTP/1.1: after the request in progress, no keep-alive;
/// HTTP/2: `GOAWAY`), and `serve_tls` returns when they all have, or after `grace`,
/// dropping those still open.
pub async fn serve_tls(
    listener: TcpListener,
    tls: Arc<rustls::ServerConfig>,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
    http: HttpConfig,
) -> Result<(), HostError> {
    let acceptor = TlsAcceptor::from(tls);
    let body_limit = Duration::from_secs(http.body_timeout_secs);
    let app = app.layer(MapRequestLayer::new(move |req| {
        crate::body_deadline::Deadline::wrap(req, body_limit)
    }));
    let limits = Limits::from(&http);
    let slots = Arc::new(Semaphore::new(http.max_connections));
    let (stopping, stop) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        // Forget finished connections (the set stays as large as the open ones).
        while connections.try_join_next().is_some() {}
        let Some((slot, tcp, peer)) = next_connection(&listener, &slots, &mut shutdown).await
        else {
            break;
        };
        let conn = Connection {
            acceptor: acceptor.clone(),
            app: app.clone(),
            limits: limits.clone(),
            peer,
        };
        connections.spawn(conn.serve(tcp, stop.clone(), slot));
    }
    drop(listener);
    let _ = stopping.send(true);
    drain(connections, grace).await;
    Ok(())
}

/// Waits for a free connection slot, then for a connection; `None` once `shutdown` is done.
async fn next_connection(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
    shutdown: &mut Pin<&mut impl Future<Output = ()>>,
) -> Option<(OwnedSemaphorePermit, TcpStream, SocketAddr)> {
    let slot = tokio::select! {
        () = shutdown.as_mut() => return None,
        // The semaphore is never closed.
        slot = slots.clone().acquire_owned() => slot.ok()?,
    };
    loop {
        tokio::select! {
            () = shutdown.as_mut() => return None,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => return Some((slot, tcp, canonical(peer))),
                Err(e) => {
                    // Out of file descriptors, or a connection reset before accept: wait a
                    // moment rather than spin.
                    tracing::warn!(error = %e, "accept");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// `addr` with an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, how a dual-stack `[::]`
/// listener sees an IPv4 client) as the IPv4 address it is: `trusted_proxies` lists IPv4
/// proxies as IPv4, and an IPv4 client's throttle key must be its IPv4 network, not the one
/// IPv6 /64 that every mapped address falls in.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// One accepted connection and what serving it needs.
struct Connection {
    acceptor: TlsAcceptor,
    app: Router,
    limits: Limits,
    peer: SocketAddr,
}

impl Connection {
    /// With `http.proxy_protocol`, reads a trusted proxy's PROXY v2 header (within the
    /// handshake timeout) and returns the client's address it names; `None` drops the
    /// connection (no header, a malformed one, or too slow). Anyone else: the peer as is.
    async fn behind_proxy(&self, mut tcp: TcpStream) -> Option<(TcpStream, SocketAddr)> {
        let peer = self.peer;
        let Some(nets) = &self.limits.proxies else {
            return Some((tcp, peer));
        };
        if !nets.iter().any(|n| n.contains(&peer.ip())) {
            return Some((tcp, peer));
        }
        let read = crate::proxy_protocol::read_header(&mut tcp);
        match tokio::time::timeout(self.limits.handshake, read).await {
            Ok(Ok(client)) => Some((tcp, client.map_or(peer, canonical))),
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "PROXY header refused");
                None
            }
            Err(_) => {
                tracing::debug!(%peer, "PROXY header timed out");
                None
            }
        }
    }

    /// The TLS handshake, then HTTP until the client is done, the connection idles out, or
    /// `stop` turns true (then it finishes gracefully). Holds its slot until it ends.
    async fn serve(
        self,
        tcp: TcpStream,
        mut stop: watch::Receiver<bool>,
        _slot: OwnedSemaphorePermit,
    ) {
        let Some((tcp, peer)) = self.behind_proxy(tcp).await else {
            return;
        };
        let tls = match tokio::time::timeout(self.limits.handshake, self.acceptor.accept(tcp)).await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
        let info = ConnInfo {
            peer,
            channel_binding: exporter(&tls),
        };
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let svc = TowerToHyperService::new(self.app.layer(Extension(info)));
        let (io, last_read) = Idle::new(tls);
        let builder = builder(&self.limits, h2);
        let conn = builder.serve_connection(TokioIo::new(io), svc);
        tokio::pin!(conn);
        let ended = tokio::select! {
            ended = conn.as_mut() => ended,
            () = idle_for(&last_read, self.limits.idle) => {
                tracing::debug!(%peer, "connection idle: closed");
                return;
            }
            // Also when the signal came during the handshake: `wait_for` sees the value.
            () = async {
                // The guard it returns is not `Send`: drop it here.
                let _ = stop.wait_for(|s| *s).await;
            } => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(e) = ended {
            tracing::debug!(%peer, error = %e, "connection ended");
        }
    }
}

/// The RFC 9266 exporter value of a server connection, if rustls can give it.
fn exporter(tls: &tokio_rustls::server::TlsStream<TcpStream>) -> Option<[u8; 32]> {
    let mut ekm = [0u8; 32];
    let exported = tls
        .get_ref()
        .1
        .export_keying_material(&mut ekm, EXPORTER_LABEL, None)
        .is_ok();
    exported.then_some(ekm)
}

/// HTTP/1.1 or HTTP/2 as ALPN chose (no sniffing of the first bytes, which would wait on a
/// silent client with no timer), each with its limits.
fn builder(limits: &Limits, h2: bool) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header);
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.streams);
    if h2 { b.http2_only() } else { b.http1_only() }
}

/// Completes once nothing has been read for `idle`.
async fn idle_for(last_read: &LastRead, idle: Duration) {
    loop {
        let quiet = last_read.quiet_for();
        if quiet >= idle {
            return;
        }
        tokio::time::sleep(idle - quiet).await;
    }
}

/// When a connection last received bytes.
#[derive(Debug, Clone)]
struct LastRead {
    start: Instant,
    millis: Arc<AtomicU64>,
}

impl LastRead {
    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.millis.store(now, Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.millis.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A stream that notes when it last read bytes. Written by hand: the idle rule is "nothing
/// received", which no timeout in hyper expresses for HTTP/2.
struct Idle<S> {
    inner: S,
    last_read: LastRead,
}

impl<S> Idle<S> {
    fn new(inner: S) -> (Self, LastRead) {
        let last_read = LastRead {
            start: Instant::now(),
            millis: Arc::new(AtomicU64::new(0)),
        };
        (
            Self {
                inner,
                last_read: last_read.clone(),
            },
            last_read,
        )
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Idle<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.last_read.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Idle<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Waits for `connections` to end, at most `grace`; then drops those still open.
async fn drain(mut connections: JoinSet<()>, grace: Duration) {
    let open = connections.len();
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            still_open = connections.len(),
            "shutdown grace period over: dropping open connections"
        );
        connections.abort_all();
    } else {
        tracing::info!(connections = open, "all connections finished");
    }
}
