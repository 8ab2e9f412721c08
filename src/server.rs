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
//! - bodies must keep arriving: see [`crate::http::body`] and `body_read_timeout`.
//!
//! On shutdown it stops accepting, lets in-flight requests finish, and returns.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use warp::http::StatusCode;

use crate::http::problem::Problem;
use crate::http::Peer;
use crate::limits::HttpLimits;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use warp::filters::BoxedFilter;
use warp::reply::Response;

/// The largest request head hyper reads at all.
const HYPER_HEAD_CAP: usize = 64 * 1024;

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
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
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
        let _ = stream.set_nodelay(true);
        let service = WithPeer {
            inner: hyper_util::service::TowerToHyperService::new(warp::service(routes.clone())),
            peer: Peer(peer.ip()),
        };
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        let max_header_bytes = limits.max_header_bytes;
        let handshake_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            let served = match tls {
                None => serve(&builder, watcher, stream, service, max_header_bytes).await,
                // The handshake is bounded like a request head: a client that opens and
                // stalls holds a slot no longer than one that sends half a head.
                Some(acceptor) => match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => serve(&builder, watcher, stream, service, max_header_bytes).await,
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, "TLS handshake failed");
                        Ok(())
                    }
                    Err(_) => Ok(()),
                },
            };
            if let Err(e) = served {
                tracing::debug!(error = %e, "connection ended with an error");
            }
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

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
