//! `agentidp`: the HTTP front-end and CLI of AgentIdP. Routes turn requests into typed
//! engine calls; the engine crate (`agentidp-engine`) does the rest. This crate never
//! talks to a database.

pub mod config;
pub mod ctl;
pub mod http;
pub mod limits;
pub mod server;

pub use limits::HttpLimits;

use std::future::Future;

use agentidp_engine::Engine;
use tokio::net::TcpListener;

/// Serve the HTTP API on `listener` until `shutdown` completes, then stop accepting,
/// let in-flight requests finish, and shut the engine down (flushing its audit queue).
/// Tests and embedders bind their own listener (e.g. `127.0.0.1:0`).
pub async fn serve(
    listener: TcpListener,
    engine: Engine,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(listener, engine, HttpLimits::default(), shutdown).await
}

/// [`serve`] with the given connection limits.
pub async fn serve_with(
    listener: TcpListener,
    engine: Engine,
    limits: HttpLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let state = http::AppState::new(engine.clone(), limits.clone())?;
    server::run(listener, http::routes(state), limits, shutdown).await;
    engine.shutdown().await;
    Ok(())
}
