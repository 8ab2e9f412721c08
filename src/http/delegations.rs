//! Delegation: `POST /api/v1/oauth2/token/delegate` and `…/verify-delegation` (JSON,
//! Bearer- or DPoP-authenticated, answered with problem documents like the rest of the
//! management API), and `/api/v1/delegations` (list, read, revoke with cascade).

use agentidp_engine::families::delegation::rules::{DelegateRequest, DelegationStatus};
use agentidp_engine::{DelegationQuery, PageRequest};
use uuid::Uuid;
use warp::http::StatusCode;

use super::problem::Problem;
use super::route::{route, Req, Resource};
use super::{json_reply, ApiResult, Ctx, OrgQuery};

/// Its endpoints (the contract: see [`super::route`]).
pub const RESOURCE: Resource = Resource {
    routes: &[
        route!(POST "/api/v1/oauth2/token/delegate", "delegate", Documented => delegate),
        route!(POST "/api/v1/oauth2/token/verify-delegation", "verifyDelegation", Policy("delegations.verify") => verify),
        route!(GET "/api/v1/delegations", "listDelegations", Policy("delegations.list") => list),
        route!(GET "/api/v1/delegations/{id}", "getDelegation", Policy("delegations.get") => get),
        route!(DELETE "/api/v1/delegations/{id}", "revokeDelegation", Policy("delegations.revoke") => revoke),
    ],
    openapi: include_str!("delegations.openapi.json"),
};

async fn delegate(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let req: DelegateRequest = body.json()?;
    let call = ctx.call().await?;
    let issued = ctx.engine().delegate(&call, req).await?;
    Ok(json_reply(StatusCode::CREATED, &issued))
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

async fn verify(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let req: VerifyRequest = body.json()?;
    let call = ctx.call().await?;
    let verification = ctx.engine().verify_delegation(&call, &req.token, req.audience.as_deref()).await?;
    Ok(json_reply(StatusCode::OK, &verification))
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

async fn list(ctx: Ctx, req: Req) -> ApiResult {
    let p: ListParams = req.query_as()?;
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
}

async fn get(ctx: Ctx, req: Req) -> ApiResult {
    let id = req.id(0, "id")?;
    let q: OrgQuery = req.query_as()?;
    let call = ctx.call().await?;
    let view = ctx.engine().get_delegation(&call, q.org_id, id).await?;
    Ok(json_reply(StatusCode::OK, &view))
}

async fn revoke(ctx: Ctx, req: Req) -> ApiResult {
    let id = req.id(0, "id")?;
    let q: OrgQuery = req.query_as()?;
    let call = ctx.call().await?;
    let revoked = ctx.engine().revoke_delegation(&call, q.org_id, id).await?;
    Ok(json_reply(StatusCode::OK, &serde_json::json!({ "revoked": revoked })))
}
