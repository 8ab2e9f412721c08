//! `/api/v1/resource-servers`: the APIs and MCP servers tokens are for (RFC 8707).

use agentidp_engine::{NewResourceServer, ResourceServerPatch};
use warp::http::StatusCode;

use super::route::{route, Req, Resource};
use super::{json_reply, no_content, ApiResult, Ctx, ListQuery, OrgQuery};

/// Its endpoints (the contract: see [`super::route`]).
pub const RESOURCE: Resource = Resource {
    routes: &[
        route!(GET "/api/v1/resource-servers", "listResourceServers", Policy("resource_servers.list") => list),
        route!(POST "/api/v1/resource-servers", "createResourceServer", Policy("resource_servers.create") => create),
        route!(GET "/api/v1/resource-servers/{id}", "getResourceServer", Policy("resource_servers.get") => get),
        route!(PATCH "/api/v1/resource-servers/{id}", "updateResourceServer", Policy("resource_servers.update") => update),
        route!(DELETE "/api/v1/resource-servers/{id}", "deleteResourceServer", Policy("resource_servers.delete") => delete),
    ],
    openapi: include_str!("resource_servers.openapi.json"),
};

async fn list(ctx: Ctx, req: Req) -> ApiResult {
    let q: ListQuery = req.query_as()?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().list_resource_servers(&call, q.org_id, q.page()).await?))
}

async fn create(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let q: OrgQuery = req.query_as()?;
    let call = ctx.call().await?;
    let mut new: NewResourceServer = body.json()?;
    new.org_id = new.org_id.or(q.org_id);
    Ok(json_reply(StatusCode::CREATED, &ctx.engine().create_resource_server(&call, new).await?))
}

async fn get(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().get_resource_server(&call, q.org_id, id).await?))
}

async fn update(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    let patch: ResourceServerPatch = body.json()?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().update_resource_server(&call, q.org_id, id, patch).await?))
}

async fn delete(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    ctx.engine().delete_resource_server(&call, q.org_id, id).await?;
    Ok(no_content())
}
