//! The connection loop: accepts TCP connections up to a cap and serves each with
//! hyper's HTTP/1.1 under the limits a public server needs (warp's own `serve` sets no
//! timer, so a client that never finishes its headers held its connection forever).
//!
//! - at most `max_connections` at once: past the cap, new connections wait in the
//!   listen backlog instead of exhausting file descriptors;
//! - a connection that does not deliver a complete request head within
//!   `header_read_timeout` — a new one, or a kept-alive one between requests — is closed,
//!   so slots held by slow or idle clients come back;
//! - request heads are capped at `max_header_bytes` (431, problem+json);
//! - what hyper refuses before any route sees it (a head past 64 KiB, a malformed
//!   Content-Length, a broken request line) it answers with an empty canned response;
//!   [`ProblemOnParseError`] turns that into a problem+json one.
//! - bodies must keep arriving: see [`crate::http::body`] and `body_read_timeout`;
//! - responses must keep leaving (issue 28, item 5: clients that pipelined requests and
//!   never read held their connections forever): a connection whose peer takes none of
//!   its pending output for `write_timeout` is closed ([`Watched`]). Writes are vectored,
//!   so hyper queues a response body instead of copying it into its write buffer: what a
//!   connection buffers is its read buffer (at most `HYPER_HEAD_CAP` of pipelined
//!   requests, answered one at a time) and the one response being written;
//! - at the cap, a newcomer does not wait behind slow readers: the connection whose
//!   output has waited longest on its peer (at least [`SHED_AFTER`]) is shed to make
//!   room ([`Connections`]). Idle and half-sent connections are bounded by
//!   `header_read_timeout` instead: one of them may be between requests legitimately.
//!
//! On shutdown it stops accepting, lets in-flight requests finish, and returns.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use agentidp_engine::kernel::clock::monotonic_ms;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use warp::http::StatusCode;

use crate::http::problem::Problem;
use crate::http::Peer;
use crate::limits::HttpLimits;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore, TryAcquireError};
use warp::filters::BoxedFilter;
use warp::reply::Response;

/// The largest request head hyper reads at all.
const HYPER_HEAD_CAP: usize = 64 * 1024;

/// How long a connection's output must have waited on its peer before a newcomer at the
/// cap may shed it: a client briefly behind on a large response is not a slow reader.
pub const SHED_AFTER: Duration = Duration::from_millis(250);

/// How often a newcomer at the cap looks again for a connection to shed.
const SHED_POLL: Duration = Duration::from_millis(25);

/// Serve `routes` on `listener` until `shutdown` completes, then drain.
pub async fn run(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let tls = limits.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper's own cap (it answers a bare 431 past it); heads between
        // `max_header_bytes` and this get a problem+json 431 from the routes.
        .max_buf_size(HYPER_HEAD_CAP.max(limits.max_header_bytes))
        .max_headers(100)
        .keep_alive(true);
    let conns = Arc::new(Connections::default());
    let mut shutdown = std::pin::pin!(shutdown);
    'accept: loop {
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(TryAcquireError::NoPermits) => None,
            Err(TryAcquireError::Closed) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // At the cap: this newcomer (the only connection held outside it) gets the first
        // slot freed, and sheds a slow reader to free one as soon as there is one.
        let permit = match permit {
            Some(permit) => permit,
            None => loop {
                if let Some(victim) = conns.take_longest_waiting(SHED_AFTER) {
                    tracing::debug!("at max_connections: shedding the connection waiting longest on its reader");
                    victim.shed.notify_one();
                }
                tokio::select! {
                    permit = slots.clone().acquire_owned() => match permit {
                        Ok(permit) => break permit,
                        Err(_) => break 'accept,
                    },
                    () = tokio::time::sleep(SHED_POLL) => {}
                    () = &mut shutdown => break 'accept,
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service = WithPeer {
            inner: hyper_util::service::TowerToHyperService::new(warp::service(routes.clone())),
            peer: Peer(peer.ip()),
        };
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        let max_header_bytes = limits.max_header_bytes;
        let handshake_timeout = limits.header_read_timeout;
        let write_timeout = limits.write_timeout;
        let (id, conn) = conns.insert();
        let conns = conns.clone();
        tokio::spawn(async move {
            let serving = async {
                match tls {
                    None => {
                        let stream = Watched::new(stream, conn.clone(), write_timeout);
                        serve(&builder, watcher, stream, service, max_header_bytes).await
                    }
                    // The handshake is bounded like a request head: a client that opens and
                    // stalls holds a slot no longer than one that sends half a head.
                    Some(acceptor) => match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let stream = Watched::new(stream, conn.clone(), write_timeout);
                            serve(&builder, watcher, stream, service, max_header_bytes).await
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, "TLS handshake failed");
                            Ok(())
                        }
                        Err(_) => Ok(()),
                    },
                }
            };
            let served = tokio::select! {
                served = serving => served,
                () = conn.shed.notified() => Ok(()),
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            conns.remove(id);
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Serve one connection's HTTP/1.1 over `stream` (TCP, or TLS over it) until it ends or
/// the shutdown's grace is over.
async fn serve<S, Svc>(
    builder: &hyper::server::conn::http1::Builder,
    watcher: hyper_util::server::graceful::Watcher,
    stream: S,
    service: Svc,
    max_header_bytes: usize,
) -> hyper::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    Svc: hyper::service::HttpService<hyper::body::Incoming>,
    Svc::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    Svc::ResBody: 'static,
    <Svc::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let io = TokioIo::new(ProblemOnParseError::new(stream, max_header_bytes));
    watcher.watch(builder.serve_connection(io, service)).await
}

/// A connection's service, tagging each request with the connection's peer.
struct WithPeer<S> {
    inner: S,
    peer: Peer,
}

impl<S, B> hyper::service::Service<warp::http::Request<B>> for WithPeer<S>
where
    S: hyper::service::Service<warp::http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut req: warp::http::Request<B>) -> Self::Future {
        req.extensions_mut().insert(self.peer);
        // HEAD is GET without the body (RFC 9110 §9.3.2): every GET route answers it.
        // hyper remembers the request was HEAD and sends the head only, Content-Length kept.
        if req.method() == warp::http::Method::HEAD {
            *req.method_mut() = warp::http::Method::GET;
        }
        self.inner.call(req)
    }
}

/// A connection's bytes, passed through — except the empty error response hyper writes
/// when it cannot parse a request head, which becomes the same status with a problem
/// document. Hyper's canned errors are the only 4xx heads written with `content-length:
/// 0` and no content type (every route answers a 4xx with a problem body), and they end
/// the connection, so recognising them is exact.
struct ProblemOnParseError<S> {
    inner: S,
    max_header_bytes: usize,
    /// A rewritten response being written, and how much of it is out.
    rewritten: Option<(Vec<u8>, usize)>,
}

impl<S> ProblemOnParseError<S> {
    fn new(inner: S, max_header_bytes: usize) -> Self {
        ProblemOnParseError { inner, max_header_bytes, rewritten: None }
    }

    /// The problem response for hyper's canned error head `buf`, if it is one.
    fn rewrite(&self, buf: &[u8]) -> Option<Vec<u8>> {
        // Cheap tests first: this runs on every write of every response.
        if !buf.starts_with(b"HTTP/1.1 4") || !buf.ends_with(b"\r\n\r\n") {
            return None;
        }
        let head = std::str::from_utf8(buf).ok()?;
        let status = head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse::<u16>().ok()?;
        let lower = head.to_ascii_lowercase();
        if !(400..500).contains(&status)
            || !lower.contains("\r\ncontent-length: 0\r\n")
            || lower.contains("\r\ncontent-type:")
        {
            return None;
        }
        let status = StatusCode::from_u16(status).ok()?;
        let problem = match status {
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Problem::new(
                status,
                "headers-too-large",
                "Request header fields too large",
                format!("request headers are limited to {} bytes", self.max_header_bytes),
            ),
            StatusCode::URI_TOO_LONG => {
                Problem::new(status, "uri-too-long", "URI too long", "the request target is too long")
            }
            _ => Problem::new(
                status,
                "malformed-request",
                "Malformed request",
                "the request is not valid HTTP/1.1: its request line, a header, or its Content-Length",
            ),
        };
        let body = problem.body();
        // Keep hyper's Date header (RFC 9110 §6.6.1), as it wrote it.
        let date = head.split("\r\n").find(|l| l.get(..5).is_some_and(|name| name.eq_ignore_ascii_case("date:")));
        let mut out = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: application/problem+json\r\nconnection: close\r\ncontent-length: {}\r\n",
            status.as_str(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        );
        if let Some(date) = date {
            out.push_str(date);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        out.push_str(&body);
        Some(out.into_bytes())
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for ProblemOnParseError<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for ProblemOnParseError<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        if self.rewritten.is_none() {
            match self.rewrite(buf) {
                Some(bytes) => self.rewritten = Some((bytes, 0)),
                None => return Pin::new(&mut self.inner).poll_write(cx, buf),
            }
        }
        // Write the whole rewritten response, then report hyper's bytes as written. Hyper
        // closes the connection after its error; anything it might write later is dropped.
        let this = &mut *self;
        if let Some((bytes, sent)) = this.rewritten.as_mut() {
            while *sent < bytes.len() {
                let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &bytes[*sent..]))?;
                if n == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *sent += n;
            }
        }
        Poll::Ready(Ok(buf.len()))
    }

    /// Vectored, so that hyper queues response bodies rather than copying them into its
    /// write buffer. Hyper's canned error is a head alone: one non-empty slice.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.rewritten.is_none() {
            let mut filled = bufs.iter().filter(|b| !b.is_empty());
            if let (Some(only), None) = (filled.next(), filled.next()) {
                if only.starts_with(b"HTTP/1.1 4") {
                    return self.poll_write(cx, only);
                }
            }
        }
        if self.rewritten.is_some() {
            let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &b[..]);
            return self.poll_write(cx, first);
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What the accept loop knows of one live connection.
#[derive(Default)]
struct Conn {
    /// Since when ([`monotonic_ms`]) its output has waited on a peer that does not take
    /// it; 0 while it does not wait.
    waiting_since: AtomicU64,
    /// Told to close to make room for a newcomer.
    shed: Notify,
}

/// The live connections. Touched once when a connection opens and once when it closes,
/// and scanned only by a newcomer at the cap — never per request.
#[derive(Default)]
struct Connections {
    live: Mutex<(u64, HashMap<u64, Arc<Conn>>)>,
}

impl Connections {
    fn insert(&self) -> (u64, Arc<Conn>) {
        let conn = Arc::new(Conn::default());
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        live.0 += 1;
        let id = live.0;
        live.1.insert(id, conn.clone());
        (id, conn)
    }

    fn remove(&self, id: u64) {
        self.live.lock().unwrap_or_else(|e| e.into_inner()).1.remove(&id);
    }

    /// Take out of the set the connection whose output has waited longest on its peer,
    /// if that has been at least `at_least`.
    fn take_longest_waiting(&self, at_least: Duration) -> Option<Arc<Conn>> {
        let latest = monotonic_ms().saturating_sub(at_least.as_millis() as u64);
        let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
        let (id, _) = live
            .1
            .iter()
            .map(|(id, c)| (*id, c.waiting_since.load(Ordering::Relaxed)))
            .filter(|(_, since)| *since != 0 && *since <= latest)
            .min_by_key(|(_, since)| *since)?;
        live.1.remove(&id)
    }
}

/// A connection's stream, watched on the way out: while its peer takes none of the
/// pending output, a timer runs, and at `write_timeout` the write fails (hyper then
/// closes the connection). The timer restarts whenever the peer takes some (as nginx's
/// `send_timeout`: between two successive writes, not for a whole response). How long
/// the output has waited without ever being all taken is published for shedding.
/// Nothing here runs while writes go through: a timer exists only once one has waited.
struct Watched<S> {
    inner: S,
    conn: Arc<Conn>,
    write_timeout: Duration,
    /// The write timeout's timer, made the first time a write waits and reused after.
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
    /// The timer runs (a write waited, and none went through since).
    armed: bool,
}

impl<S> Watched<S> {
    fn new(inner: S, conn: Arc<Conn>, write_timeout: Duration) -> Self {
        Watched { inner, conn, write_timeout, deadline: None, armed: false }
    }

    /// A write or flush is pending on the peer: start the clocks if they do not run, and
    /// fail once the write timeout is out.
    fn wait<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        if !self.armed {
            self.armed = true;
            let at = tokio::time::Instant::now() + self.write_timeout;
            match self.deadline.as_mut() {
                Some(deadline) => deadline.as_mut().reset(at),
                None => self.deadline = Some(Box::pin(tokio::time::sleep_until(at))),
            }
            if self.conn.waiting_since.load(Ordering::Relaxed) == 0 {
                self.conn.waiting_since.store(monotonic_ms(), Ordering::Relaxed);
            }
        }
        match self.deadline.as_mut().map(|d| d.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took none of the response within write_timeout",
            ))),
            _ => Poll::Pending,
        }
    }

    /// What a write returned: a wait, or progress (which restarts the write timeout).
    fn wrote(&mut self, cx: &mut Context<'_>, polled: Poll<io::Result<usize>>) -> Poll<io::Result<usize>> {
        match polled {
            Poll::Pending => self.wait(cx),
            Poll::Ready(Ok(n)) if n > 0 => {
                self.armed = false;
                Poll::Ready(Ok(n))
            }
            other => other,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.wrote(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.wrote(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    /// Hyper flushes once its write buffer is empty: then nothing waits any more.
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                self.armed = false;
                if self.conn.waiting_since.load(Ordering::Relaxed) != 0 {
                    self.conn.waiting_since.store(0, Ordering::Relaxed);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => self.wait(cx),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.inner).poll_shutdown(cx) {
            Poll::Pending => self.wait(cx),
            other => other,
        }
    }
}
