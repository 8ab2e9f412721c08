//! Operations: liveness, readiness, Prometheus metrics and the OpenAPI document. None of
//! these need a token.

use prometheus::Encoder;
use serde_json::json;
use warp::http::header::{HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use warp::http::StatusCode;
use warp::Reply;

use super::problem::Problem;
use super::route::{route, Req, Resource};
use super::{json_reply, ApiResult, Ctx};

/// Its endpoints (the contract: see [`super::route`]).
pub const RESOURCE: Resource = Resource {
    routes: &[
        route!(GET "/health", "health", Documented => health),
        route!(GET "/ready", "ready", Documented => ready),
        route!(GET "/metrics", "metrics", Documented => metrics),
        route!(GET "/openapi.json", "getOpenApi", Documented => openapi),
    ],
    openapi: include_str!("ops.openapi.json"),
};

/// Liveness: 200 unless the node is wedged in a way a process restart could change — the
/// engine's supervisor stopped, or an actor crash-looping (issue 28, item 9). Then 503
/// naming it, so a liveness probe restarts a node the supervisor cannot heal.
async fn health(ctx: Ctx, _: Req) -> ApiResult {
    let live = ctx.engine().liveness();
    let problems = live.problems();
    if problems.is_empty() {
        return Ok(json_reply(StatusCode::OK, &json!({"status": "ok"})));
    }
    let mut problem = Problem::new(StatusCode::SERVICE_UNAVAILABLE, "not-live", "Not live", problems.join("; "))
        .with_header(RETRY_AFTER, "1");
    problem.extra.insert("crash_looping".into(), json!(live.crash_looping));
    Err(problem)
}

async fn ready(ctx: Ctx, _: Req) -> ApiResult {
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
}

async fn metrics(ctx: Ctx, _: Req) -> ApiResult {
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
}

async fn openapi(ctx: Ctx, _: Req) -> ApiResult {
    let mut resp = warp::reply::Response::new(ctx.openapi().into());
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Ok(resp)
}
