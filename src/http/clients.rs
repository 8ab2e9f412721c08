//! `/api/v1/clients`: the applications people authorize.

use agentidp_engine::{ClientPatch, NewClient};
use warp::http::StatusCode;

use super::route::{route, Req, Resource};
use super::{json_reply, no_content, ApiResult, Ctx, ListQuery, OrgQuery};

/// Its endpoints (the contract: see [`super::route`]).
pub const RESOURCE: Resource = Resource {
    routes: &[
        route!(GET "/api/v1/clients", "listClients", Policy("clients.list") => list),
        route!(POST "/api/v1/clients", "createClient", Policy("clients.create") => create),
        route!(GET "/api/v1/clients/{id}", "getClient", Policy("clients.get") => get),
        route!(PATCH "/api/v1/clients/{id}", "updateClient", Policy("clients.update") => update),
        route!(DELETE "/api/v1/clients/{id}", "deleteClient", Policy("clients.delete") => delete),
        route!(POST "/api/v1/clients/{id}/suspend", "suspendClient", Policy("clients.update") => suspend),
        route!(POST "/api/v1/clients/{id}/reactivate", "reactivateClient", Policy("clients.update") => reactivate),
        route!(POST "/api/v1/clients/{id}/rotate-secret", "rotateClientSecret", Policy("clients.update") => rotate_secret),
    ],
    openapi: include_str!("clients.openapi.json"),
};

async fn list(ctx: Ctx, req: Req) -> ApiResult {
    let q: ListQuery = req.query_as()?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().list_clients(&call, q.org_id, q.page()).await?))
}

async fn create(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let q: OrgQuery = req.query_as()?;
    let call = ctx.call().await?;
    let mut new: NewClient = body.json()?;
    new.org_id = new.org_id.or(q.org_id);
    Ok(json_reply(StatusCode::CREATED, &ctx.engine().create_client(&call, new).await?))
}

async fn get(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().get_client(&call, q.org_id, id).await?))
}

async fn update(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    let patch: ClientPatch = body.json()?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().update_client(&call, q.org_id, id, patch).await?))
}

async fn delete(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    ctx.engine().delete_client(&call, q.org_id, id).await?;
    Ok(no_content())
}

async fn suspend(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().suspend_client(&call, q.org_id, id).await?))
}

async fn reactivate(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().reactivate_client(&call, q.org_id, id).await?))
}

async fn rotate_secret(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().rotate_client_secret(&call, q.org_id, id).await?))
}
