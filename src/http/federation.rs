//! Federation: `/api/v1/federation/partners` (the identity providers an organization
//! accepts JWTs from; the platform admin names the organization with `org_id`), a
//! partner's forced JWKS refresh, and `POST /federation/verify`.

use agentidp_engine::families::federation::rules::{NewPartner, PartnerPatch};
use warp::http::StatusCode;

use super::route::{route, Req, Resource};
use super::{json_reply, no_content, ApiResult, Ctx, ListQuery, OrgQuery};

/// Its endpoints (the contract: see [`super::route`]).
pub const RESOURCE: Resource = Resource {
    routes: &[
        route!(GET "/api/v1/federation/partners", "listFederationPartners", Policy("federation.list") => list),
        route!(POST "/api/v1/federation/partners", "createFederationPartner", Policy("federation.create") => create),
        route!(GET "/api/v1/federation/partners/{id}", "getFederationPartner", Policy("federation.get") => get),
        route!(PATCH "/api/v1/federation/partners/{id}", "updateFederationPartner", Policy("federation.update") => update),
        route!(DELETE "/api/v1/federation/partners/{id}", "deleteFederationPartner", Policy("federation.delete") => delete),
        route!(POST "/api/v1/federation/partners/{id}/refresh", "refreshFederationPartner", Policy("federation.refresh") => refresh),
        route!(POST "/api/v1/federation/verify", "verifyFederatedJwt", Policy("federation.verify") => verify),
    ],
    openapi: include_str!("federation.openapi.json"),
};

async fn list(ctx: Ctx, req: Req) -> ApiResult {
    let q: ListQuery = req.query_as()?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().list_partners(&call, q.org_id, q.page()).await?))
}

async fn create(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let q: OrgQuery = req.query_as()?;
    let mut new: NewPartner = body.json()?;
    let call = ctx.call().await?;
    new.org_id = new.org_id.or(q.org_id);
    Ok(json_reply(StatusCode::CREATED, &ctx.engine().create_partner(&call, new).await?))
}

async fn get(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().get_partner(&call, q.org_id, id).await?))
}

async fn update(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let patch: PartnerPatch = body.json()?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().update_partner(&call, q.org_id, id, patch).await?))
}

async fn delete(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    ctx.engine().delete_partner(&call, q.org_id, id).await?;
    Ok(no_content())
}

async fn refresh(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().refresh_partner(&call, q.org_id, id).await?))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifyRequest {
    token: String,
}

async fn verify(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let req: VerifyRequest = body.json()?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().verify_federated(&call, &req.token).await?))
}
