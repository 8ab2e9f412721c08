//! Operations: liveness, readiness, Prometheus metrics and the OpenAPI document. None of
//! these need a token.

use std::convert::Infallible;

use prometheus::Encoder;
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::problem::Problem;
use super::{ctx, json_reply, AppState, Ctx};

pub(super) const OPENAPI: &str = include_str!("../../docs/openapi.json");

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let health = warp::path!("health").and(warp::get()).and(ctx(state.clone())).and_then(health);
    let ready = warp::path!("ready").and(warp::get()).and(ctx(state.clone())).and_then(ready);
    let metrics = warp::path!("metrics").and(warp::get()).and(ctx(state.clone())).and_then(metrics);
    let openapi = warp::path!("openapi.json").and(warp::get()).and(ctx(state)).and_then(openapi);
    health.or(ready).unify().or(metrics).unify().or(openapi).unify().boxed()
}

/// Liveness: 200 unless the node is wedged in a way a process restart could change — the
/// engine's supervisor stopped, or an actor crash-looping (issue 28, item 9). Then 503
/// naming it, so a liveness probe restarts a node the supervisor cannot heal.
async fn health(ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let live = ctx.engine().liveness();
        let problems = live.problems();
        if problems.is_empty() {
            return Ok(json_reply(StatusCode::OK, &json!({"status": "ok"})));
        }
        let mut problem = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-live", "Not live", problems.join("; "))
            .with_header(RETRY_AFTER, "1");
        problem.extra.insert("crash_looping".into(), json!(live.crash_looping));
        Err(problem)
    })
    .await
}

async fn ready(ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let report = ctx.engine().readiness().await;
        let checks = json!({
            "store": {"kind": report.store_kind, "up": report.store},
            "coordinator": {"kind": report.coordinator_kind, "up": report.coordinator},
            "restarting_actors": report.restarting,
        });
        let problems = report.problems();
        if problems.is_empty() {
            return Ok(json_reply(StatusCode::OK, &json!({"status": "ready", "checks": checks})));
        }
        let mut problem = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-ready", "Not ready", problems.join("; "))
            .with_header(RETRY_AFTER, "1");
        problem.extra.insert("checks".into(), checks);
        Err(problem)
    })
    .await
}

async fn metrics(ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let mut buf = Vec::new();
        let encoder = prometheus::TextEncoder::new();
        encoder
            .encode(&ctx.engine().metrics_registry().gather(), &mut buf)
            .map_err(|e| Problem::from(agentidp_engine::EngineError::internal(e)))?;
        let mut resp = String::from_utf8_lossy(&buf).into_owned().into_response();
        if let Ok(v) = HeaderValue::from_str(encoder.format_type()) {
            resp.headers_mut().insert(CONTENT_TYPE, v);
        }
        Ok(resp)
    })
    .await
}

async fn openapi(ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|_| async {
        let mut resp = OPENAPI.into_response();
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(resp)
    })
    .await
}
