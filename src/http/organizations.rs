//! `/api/v1/organizations` (the platform administrator's; an organization may read itself)
//! and `/api/v1/tiers`, the tiers an organization can be on.

use agentidp_engine::{DelegationSettings, NewOrganization, OrganizationPatch};
use warp::http::StatusCode;

use super::route::{route, Req, Resource};
use super::{json_reply, no_content, ApiResult, Ctx, ListQuery};

/// Its endpoints (the contract: see [`super::route`]).
pub const RESOURCE: Resource = Resource {
    routes: &[
        route!(GET "/api/v1/organizations", "listOrganizations", Policy("organizations.list") => list),
        route!(POST "/api/v1/organizations", "createOrganization", Policy("organizations.create") => create),
        route!(GET "/api/v1/organizations/{id}", "getOrganization", Policy("organizations.get") => get),
        route!(PATCH "/api/v1/organizations/{id}", "updateOrganization", Policy("organizations.update") => update),
        route!(DELETE "/api/v1/organizations/{id}", "deleteOrganization", Policy("organizations.delete") => delete),
        route!(GET "/api/v1/organizations/{id}/usage", "getOrganizationUsage", Policy("organizations.usage") => usage),
        route!(PUT "/api/v1/organizations/{id}/delegation", "setOrganizationDelegation", Policy("organizations.delegation") => set_delegation),
        route!(GET "/api/v1/tiers", "listTiers", Policy("tiers.list") => tiers),
    ],
    openapi: include_str!("organizations.openapi.json"),
};

async fn usage(ctx: Ctx, req: Req) -> ApiResult {
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    let usage = ctx.engine().usage(&call, id).await?;
    Ok(json_reply(StatusCode::OK, &usage))
}

async fn tiers(ctx: Ctx, _: Req) -> ApiResult {
    let call = ctx.call().await?;
    let items = ctx.engine().tiers(&call)?;
    Ok(json_reply(StatusCode::OK, &serde_json::json!({ "items": items })))
}

async fn list(ctx: Ctx, req: Req) -> ApiResult {
    let q: ListQuery = req.query_as()?;
    let call = ctx.call().await?;
    let page = ctx.engine().list_orgs(&call, q.page()).await?;
    Ok(json_reply(StatusCode::OK, &page))
}

async fn create(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let call = ctx.call().await?;
    let new: NewOrganization = body.json()?;
    let org = ctx.engine().create_org(&call, new).await?;
    Ok(json_reply(StatusCode::CREATED, &org))
}

async fn get(ctx: Ctx, req: Req) -> ApiResult {
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    let org = ctx.engine().get_org(&call, id).await?;
    Ok(json_reply(StatusCode::OK, &org))
}

async fn update(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    let patch: OrganizationPatch = body.json()?;
    let org = ctx.engine().update_org(&call, id, patch).await?;
    Ok(json_reply(StatusCode::OK, &org))
}

async fn set_delegation(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    let settings: DelegationSettings = body.json()?;
    let org = ctx.engine().set_org_delegation(&call, id, settings).await?;
    Ok(json_reply(StatusCode::OK, &org))
}

async fn delete(ctx: Ctx, req: Req) -> ApiResult {
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    ctx.engine().delete_org(&call, id).await?;
    Ok(no_content())
}
