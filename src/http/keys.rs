//! `POST /api/v1/keys/rotate`: the platform administrator starts a signing-key rotation.

use std::convert::Infallible;

use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::{ctx, json_reply, AppState, Ctx};

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("keys" / "rotate").and(warp::post()).and(ctx(state)).and_then(rotate).boxed()
}

async fn rotate(ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond("/api/v1/keys/rotate", |ctx| async move {
        let call = ctx.call().await?;
        let key = ctx.engine().rotate_keys(Some(&call)).await?;
        Ok(json_reply(StatusCode::CREATED, &key))
    })
    .await
}
