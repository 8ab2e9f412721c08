//! `agentidp`: the HTTP front-end and CLI of AgentIdP. Routes turn requests into typed
//! engine calls; the engine crate (`agentidp-engine`) does the rest. This crate never
//! talks to a database.

pub mod config;
pub mod http;

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
    let state = http::AppState::new(engine.clone())?;
    warp::serve(http::routes(state)).incoming(listener).graceful(shutdown).run().await;
    engine.shutdown().await;
    Ok(())
}
