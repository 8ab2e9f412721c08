//! The connection loop: accepts TCP connections up to a cap and serves each with
//! hyper's HTTP/1.1 under the limits a public server needs (warp's own `serve` sets no
//! timer, so a client that never finishes its headers held its connection forever).
//!
//! - at most `max_connections` at once: past the cap, new connections wait in the
//!   listen backlog instead of exhausting file descriptors;
//! - a connection that does not deliver a complete request head within
//!   `header_read_timeout` — a new one, or a kept-alive one between requests — is closed,
//!   so slots held by slow or idle clients come back;
//! - request heads are capped at `max_header_bytes` (431, problem+json; hyper itself
//!   answers a bare 431 past 64 KiB, having no way to render a body);
//! - bodies must keep arriving: see [`crate::http::body`] and `body_read_timeout`.
//!
//! On shutdown it stops accepting, lets in-flight requests finish, and returns.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use warp::filters::BoxedFilter;
use warp::reply::Response;

/// The largest request head hyper reads at all.
const HYPER_HEAD_CAP: usize = 64 * 1024;

/// Limits of the HTTP server; every one is a setting (README, configuration table).
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_header_bytes: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            max_connections: 10_000,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            max_header_bytes: 16 * 1024,
        }
    }
}

/// Raise the soft open-files limit to the hard one and lower `max_connections` to fit
/// under it (with room for the store's and the coordinator's sockets and files).
pub fn fit_connection_cap(limits: &mut HttpLimits) {
    if let Ok(files) = rlimit::increase_nofile_limit(u64::MAX) {
        let room = files.saturating_sub(256).max(64) as usize;
        if limits.max_connections > room {
            tracing::warn!(
                max_connections = limits.max_connections,
                open_files_limit = files,
                "max_connections lowered to fit the open-files limit"
            );
            limits.max_connections = room;
        }
    }
}

/// Serve `routes` on `listener` until `shutdown` completes, then drain.
pub async fn run(
    listener: TcpListener,
    routes: BoxedFilter<(Response,)>,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
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
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
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
        let service = hyper_util::service::TowerToHyperService::new(warp::service(routes.clone()));
        let connection = graceful.watch(builder.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}
