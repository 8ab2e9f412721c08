//! Platform operations: `POST /api/v1/keys/rotate` starts a signing-key rotation, and
//! `POST /api/v1/admin/faults/{actor}` runs a fault drill (the actor fails and is
//! restarted by its supervisor).

use std::convert::Infallible;

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::{ctx, json_reply, AppState, Ctx};

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let rotate = warp::path!("keys" / "rotate").and(warp::post()).and(ctx(state.clone())).and_then(rotate);
    let drill = warp::path!("admin" / "faults" / String).and(warp::post()).and(ctx(state)).and_then(drill);
    rotate.or(drill).unify().boxed()
}

async fn drill(actor: String, ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let call = ctx.call().await?;
        ctx.engine().drill_fault(&call, &actor).await?;
        Ok(json_reply(StatusCode::ACCEPTED, &serde_json::json!({"actor": actor, "fault": "injected"})))
    })
    .await
}

async fn rotate(ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let call = ctx.call().await?;
        let key = ctx.engine().rotate_keys(Some(&call)).await?;
        Ok(json_reply(StatusCode::CREATED, &key))
    })
    .await
}
