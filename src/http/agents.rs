//! `/api/v1/agents` and their credentials.

use std::convert::Infallible;

use agentidp_engine::{AgentPatch, NewAgent, NewCredential};
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::{
    body, ctx, json_reply, no_content, parse_id, parse_query, query, AppState, Body, Ctx, ListQuery, OrgQuery,
};

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let c = || ctx(state.clone());
    let list = warp::path!("agents").and(warp::get()).and(c()).and(query()).and_then(list);
    let create = warp::path!("agents").and(warp::post()).and(c()).and(query()).and(body(&state)).and_then(create);
    let get = warp::path!("agents" / String).and(warp::get()).and(c()).and(query()).and_then(get);
    let update =
        warp::path!("agents" / String).and(warp::patch()).and(c()).and(query()).and(body(&state)).and_then(update);
    let delete = warp::path!("agents" / String).and(warp::delete()).and(c()).and(query()).and_then(delete);
    let suspend = warp::path!("agents" / String / "suspend").and(warp::post()).and(c()).and(query()).and_then(suspend);
    let reactivate =
        warp::path!("agents" / String / "reactivate").and(warp::post()).and(c()).and(query()).and_then(reactivate);
    let creds_list = warp::path!("agents" / String / "credentials")
        .and(warp::get())
        .and(c())
        .and(query())
        .and_then(list_credentials);
    let creds_create = warp::path!("agents" / String / "credentials")
        .and(warp::post())
        .and(c())
        .and(query())
        .and(body(&state))
        .and_then(create_credential);
    let creds_rotate = warp::path!("agents" / String / "credentials" / String / "rotate")
        .and(warp::post())
        .and(c())
        .and(query())
        .and_then(rotate_credential);
    let creds_revoke = warp::path!("agents" / String / "credentials" / String)
        .and(warp::delete())
        .and(c())
        .and(query())
        .and_then(revoke_credential);
    list.or(create)
        .unify()
        .or(get)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(suspend)
        .unify()
        .or(reactivate)
        .unify()
        .or(creds_list)
        .unify()
        .or(creds_create)
        .unify()
        .or(creds_rotate)
        .unify()
        .or(creds_revoke)
        .unify()
        .boxed()
}

async fn list(ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: ListQuery = parse_query(&q)?;
        let call = ctx.call().await?;
        let page = ctx.engine().list_agents(&call, q.org_id, q.page()).await?;
        Ok(json_reply(StatusCode::OK, &page))
    })
    .await
}

async fn create(ctx: Ctx, q: String, body: Body) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let call = ctx.call().await?;
        let mut new: NewAgent = body.json()?;
        new.org_id = new.org_id.or(q.org_id);
        let agent = ctx.engine().create_agent(&call, new).await?;
        Ok(json_reply(StatusCode::CREATED, &agent))
    })
    .await
}

async fn get(id: String, ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        let agent = ctx.engine().get_agent(&call, q.org_id, id).await?;
        Ok(json_reply(StatusCode::OK, &agent))
    })
    .await
}

async fn update(id: String, ctx: Ctx, q: String, body: Body) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        let patch: AgentPatch = body.json()?;
        let agent = ctx.engine().update_agent(&call, q.org_id, id, patch).await?;
        Ok(json_reply(StatusCode::OK, &agent))
    })
    .await
}

async fn delete(id: String, ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        ctx.engine().delete_agent(&call, q.org_id, id).await?;
        Ok(no_content())
    })
    .await
}

async fn suspend(id: String, ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        let agent = ctx.engine().suspend_agent(&call, q.org_id, id).await?;
        Ok(json_reply(StatusCode::OK, &agent))
    })
    .await
}

async fn reactivate(id: String, ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        let agent = ctx.engine().reactivate_agent(&call, q.org_id, id).await?;
        Ok(json_reply(StatusCode::OK, &agent))
    })
    .await
}

async fn list_credentials(id: String, ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        let items = ctx.engine().list_credentials(&call, q.org_id, id).await?;
        Ok(json_reply(StatusCode::OK, &serde_json::json!({"items": items})))
    })
    .await
}

async fn create_credential(id: String, ctx: Ctx, q: String, body: Body) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        // No body: a client secret. A body chooses the type (e.g. private_key_jwt + jwk).
        let new: NewCredential = if body.is_empty() { NewCredential::default() } else { body.json()? };
        let issued = ctx.engine().create_credential(&call, q.org_id, id, new).await?;
        Ok(json_reply(StatusCode::CREATED, &issued))
    })
    .await
}

async fn rotate_credential(id: String, cid: String, ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let (id, cid) = (parse_id("id", &id)?, parse_id("cid", &cid)?);
        let call = ctx.call().await?;
        let issued = ctx.engine().rotate_credential(&call, q.org_id, id, cid).await?;
        Ok(json_reply(StatusCode::OK, &issued))
    })
    .await
}

async fn revoke_credential(id: String, cid: String, ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let (id, cid) = (parse_id("id", &id)?, parse_id("cid", &cid)?);
        let call = ctx.call().await?;
        let credential = ctx.engine().revoke_credential(&call, q.org_id, id, cid).await?;
        Ok(json_reply(StatusCode::OK, &credential))
    })
    .await
}
