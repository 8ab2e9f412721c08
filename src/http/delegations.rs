//! Delegation: `POST /api/v1/oauth2/token/delegate` and `…/verify-delegation` (JSON,
//! Bearer- or DPoP-authenticated, answered with problem documents like the rest of the
//! management API), and `/api/v1/delegations` (list, read, revoke with cascade).

use std::convert::Infallible;

use agentidp_engine::families::delegation::rules::{DelegateRequest, DelegationStatus};
use agentidp_engine::{DelegationQuery, PageRequest};
use uuid::Uuid;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::problem::Problem;
use super::{body, ctx, json_reply, parse_id, parse_query, query, AppState, Body, Ctx, OrgQuery};

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let c = || ctx(state.clone());
    let delegate =
        warp::path!("oauth2" / "token" / "delegate").and(warp::post()).and(c()).and(body(&state)).and_then(delegate);
    let verify = warp::path!("oauth2" / "token" / "verify-delegation")
        .and(warp::post())
        .and(c())
        .and(body(&state))
        .and_then(verify);
    let list = warp::path!("delegations").and(warp::get()).and(c()).and(query()).and_then(list);
    let get = warp::path!("delegations" / String).and(warp::get()).and(c()).and(query()).and_then(get);
    let revoke = warp::path!("delegations" / String).and(warp::delete()).and(c()).and(query()).and_then(revoke);
    delegate.or(verify).unify().or(list).unify().or(get).unify().or(revoke).unify().boxed()
}

async fn delegate(ctx: Ctx, body: Body) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let req: DelegateRequest = body.json()?;
        let call = ctx.call().await?;
        let issued = ctx.engine().delegate(&call, req).await?;
        Ok(json_reply(StatusCode::CREATED, &issued))
    })
    .await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    token: String,
    /// The audience the verifying service stands for (a biscuit's holder may have
    /// narrowed it to one).
    #[serde(default, deserialize_with = "agentidp_engine::kernel::model::present")]
    audience: Option<String>,
}

async fn verify(ctx: Ctx, body: Body) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let req: VerifyRequest = body.json()?;
        let call = ctx.call().await?;
        let verification = ctx.engine().verify_delegation(&call, &req.token, req.audience.as_deref()).await?;
        Ok(json_reply(StatusCode::OK, &verification))
    })
    .await
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    org_id: Option<Uuid>,
    delegator_id: Option<Uuid>,
    delegatee_id: Option<Uuid>,
    status: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

async fn list(ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let p: ListParams = parse_query(&q)?;
        let status = p
            .status
            .map(|s| {
                DelegationStatus::parse(&s)
                    .ok_or_else(|| Problem::invalid_field("status", "one of active, revoked, expired"))
            })
            .transpose()?;
        let query = DelegationQuery {
            delegator_id: p.delegator_id,
            delegatee_id: p.delegatee_id,
            status,
            page: PageRequest { cursor: p.cursor, limit: p.limit },
        };
        let call = ctx.call().await?;
        let page = ctx.engine().list_delegations(&call, p.org_id, query).await?;
        Ok(json_reply(StatusCode::OK, &page))
    })
    .await
}

async fn get(id: String, ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let id = parse_id("id", &id)?;
        let q: OrgQuery = parse_query(&q)?;
        let call = ctx.call().await?;
        let view = ctx.engine().get_delegation(&call, q.org_id, id).await?;
        Ok(json_reply(StatusCode::OK, &view))
    })
    .await
}

async fn revoke(id: String, ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let id = parse_id("id", &id)?;
        let q: OrgQuery = parse_query(&q)?;
        let call = ctx.call().await?;
        let revoked = ctx.engine().revoke_delegation(&call, q.org_id, id).await?;
        Ok(json_reply(StatusCode::OK, &serde_json::json!({ "revoked": revoked })))
    })
    .await
}
