//! Platform operations: `POST /api/v1/keys/rotate` starts a signing-key rotation, and
//! `POST /api/v1/admin/faults/{actor}` runs a fault drill (the actor fails and is
//! restarted by its supervisor).

use warp::http::StatusCode;

use super::route::{route, Req, Resource};
use super::{json_reply, ApiResult, Ctx};

/// Its endpoints (the contract: see [`super::route`]).
pub const RESOURCE: Resource = Resource {
    routes: &[
        route!(POST "/api/v1/keys/rotate", "rotateSigningKeys", Policy("keys.rotate") => rotate),
        route!(POST "/api/v1/admin/faults/{actor}", "injectFault", Policy("engine.inject_fault") => drill),
    ],
    openapi: include_str!("keys.openapi.json"),
};

async fn drill(ctx: Ctx, req: Req) -> ApiResult {
    let actor = req.param(0);
    let call = ctx.call().await?;
    ctx.engine().drill_fault(&call, actor).await?;
    Ok(json_reply(StatusCode::ACCEPTED, &serde_json::json!({"actor": actor, "fault": "injected"})))
}

async fn rotate(ctx: Ctx, _: Req) -> ApiResult {
    let call = ctx.call().await?;
    let key = ctx.engine().rotate_keys(Some(&call)).await?;
    Ok(json_reply(StatusCode::CREATED, &key))
}
