//! `/api/v1/organizations` (the platform administrator's; an organization may read itself)
//! and `/api/v1/tiers`, the tiers an organization can be on.

use std::convert::Infallible;

use agentidp_engine::{DelegationSettings, NewOrganization, OrganizationPatch};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::{body, ctx, json_reply, no_content, parse_id, parse_query, query, AppState, Body, Ctx, ListQuery};

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let c = || ctx(state.clone());
    let list = warp::path!("organizations").and(warp::get()).and(c()).and(query()).and_then(list);
    let create = warp::path!("organizations").and(warp::post()).and(c()).and(body(&state)).and_then(create);
    let get = warp::path!("organizations" / String).and(warp::get()).and(c()).and_then(get);
    let update = warp::path!("organizations" / String).and(warp::patch()).and(c()).and(body(&state)).and_then(update);
    let delete = warp::path!("organizations" / String).and(warp::delete()).and(c()).and_then(delete);
    let tiers = warp::path!("tiers").and(warp::get()).and(c()).and_then(tiers);
    let usage = warp::path!("organizations" / String / "usage").and(warp::get()).and(c()).and_then(usage);
    let delegation = warp::path!("organizations" / String / "delegation")
        .and(warp::put())
        .and(c())
        .and(body(&state))
        .and_then(set_delegation);
    list.or(create)
        .unify()
        .or(get)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(tiers)
        .unify()
        .or(usage)
        .unify()
        .or(delegation)
        .unify()
        .boxed()
}

async fn usage(id: String, ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        let usage = ctx.engine().usage(&call, id).await?;
        Ok(json_reply(StatusCode::OK, &usage))
    })
    .await
}

async fn tiers(ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let call = ctx.call().await?;
        let items = ctx.engine().tiers(&call)?;
        Ok(json_reply(StatusCode::OK, &serde_json::json!({ "items": items })))
    })
    .await
}

async fn list(ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: ListQuery = parse_query(&q)?;
        let call = ctx.call().await?;
        let page = ctx.engine().list_orgs(&call, q.page()).await?;
        Ok(json_reply(StatusCode::OK, &page))
    })
    .await
}

async fn create(ctx: Ctx, body: Body) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let call = ctx.call().await?;
        let new: NewOrganization = body.json()?;
        let org = ctx.engine().create_org(&call, new).await?;
        Ok(json_reply(StatusCode::CREATED, &org))
    })
    .await
}

async fn get(id: String, ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        let org = ctx.engine().get_org(&call, id).await?;
        Ok(json_reply(StatusCode::OK, &org))
    })
    .await
}

async fn update(id: String, ctx: Ctx, body: Body) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        let patch: OrganizationPatch = body.json()?;
        let org = ctx.engine().update_org(&call, id, patch).await?;
        Ok(json_reply(StatusCode::OK, &org))
    })
    .await
}

async fn set_delegation(id: String, ctx: Ctx, body: Body) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        let settings: DelegationSettings = body.json()?;
        let org = ctx.engine().set_org_delegation(&call, id, settings).await?;
        Ok(json_reply(StatusCode::OK, &org))
    })
    .await
}

async fn delete(id: String, ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        ctx.engine().delete_org(&call, id).await?;
        Ok(no_content())
    })
    .await
}
