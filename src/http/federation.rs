//! Federation: `/api/v1/federation/partners` (the identity providers an organization
//! accepts JWTs from; the platform admin names the organization with `org_id`), a
//! partner's forced JWKS refresh, and `POST /federation/verify`.

use std::convert::Infallible;

use agentidp_engine::families::federation::rules::{NewPartner, PartnerPatch};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::{
    body, ctx, json_reply, no_content, parse_id, parse_query, query, AppState, Body, Ctx, ListQuery, OrgQuery,
};

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let c = || ctx(state.clone());
    let list = warp::path!("federation" / "partners").and(warp::get()).and(c()).and(query()).and_then(list);
    let create = warp::path!("federation" / "partners")
        .and(warp::post())
        .and(c())
        .and(query())
        .and(body(&state))
        .and_then(create);
    let get = warp::path!("federation" / "partners" / String).and(warp::get()).and(c()).and(query()).and_then(get);
    let update = warp::path!("federation" / "partners" / String)
        .and(warp::patch())
        .and(c())
        .and(query())
        .and(body(&state))
        .and_then(update);
    let delete =
        warp::path!("federation" / "partners" / String).and(warp::delete()).and(c()).and(query()).and_then(delete);
    let refresh = warp::path!("federation" / "partners" / String / "refresh")
        .and(warp::post())
        .and(c())
        .and(query())
        .and_then(refresh);
    let verify = warp::path!("federation" / "verify").and(warp::post()).and(c()).and(body(&state)).and_then(verify);
    list.or(create)
        .unify()
        .or(get)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(refresh)
        .unify()
        .or(verify)
        .unify()
        .boxed()
}

async fn list(ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: ListQuery = parse_query(&q)?;
        let call = ctx.call().await?;
        Ok(json_reply(StatusCode::OK, &ctx.engine().list_partners(&call, q.org_id, q.page()).await?))
    })
    .await
}

async fn create(ctx: Ctx, q: String, body: Body) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let mut new: NewPartner = body.json()?;
        let call = ctx.call().await?;
        new.org_id = new.org_id.or(q.org_id);
        Ok(json_reply(StatusCode::CREATED, &ctx.engine().create_partner(&call, new).await?))
    })
    .await
}

async fn get(id: String, ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        Ok(json_reply(StatusCode::OK, &ctx.engine().get_partner(&call, q.org_id, id).await?))
    })
    .await
}

async fn update(id: String, ctx: Ctx, q: String, body: Body) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let id = parse_id("id", &id)?;
        let patch: PartnerPatch = body.json()?;
        let call = ctx.call().await?;
        Ok(json_reply(StatusCode::OK, &ctx.engine().update_partner(&call, q.org_id, id, patch).await?))
    })
    .await
}

async fn delete(id: String, ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        ctx.engine().delete_partner(&call, q.org_id, id).await?;
        Ok(no_content())
    })
    .await
}

async fn refresh(id: String, ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        Ok(json_reply(StatusCode::OK, &ctx.engine().refresh_partner(&call, q.org_id, id).await?))
    })
    .await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    token: String,
}

async fn verify(ctx: Ctx, body: Body) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let req: VerifyRequest = body.json()?;
        let call = ctx.call().await?;
        Ok(json_reply(StatusCode::OK, &ctx.engine().verify_federated(&call, &req.token).await?))
    })
    .await
}
