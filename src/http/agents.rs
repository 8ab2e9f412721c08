//! `/api/v1/agents` and their credentials.

use agentidp_engine::{AgentPatch, NewAgent, NewCredential};
use warp::http::StatusCode;

use super::route::{route, Req, Resource};
use super::{json_reply, no_content, ApiResult, Ctx, ListQuery, OrgQuery};

/// Its endpoints (the contract: see [`super::route`]).
pub const RESOURCE: Resource = Resource {
    routes: &[
        route!(GET "/api/v1/agents", "listAgents", Policy("agents.list") => list),
        route!(POST "/api/v1/agents", "createAgent", Policy("agents.create") => create),
        route!(GET "/api/v1/agents/{id}", "getAgent", Policy("agents.get") => get),
        route!(PATCH "/api/v1/agents/{id}", "updateAgent", Policy("agents.update") => update),
        route!(DELETE "/api/v1/agents/{id}", "deleteAgent", Policy("agents.delete") => delete),
        route!(POST "/api/v1/agents/{id}/suspend", "suspendAgent", Policy("agents.suspend") => suspend),
        route!(POST "/api/v1/agents/{id}/reactivate", "reactivateAgent", Policy("agents.reactivate") => reactivate),
        route!(GET "/api/v1/agents/{id}/credentials", "listCredentials", Policy("credentials.list") => list_credentials),
        route!(POST "/api/v1/agents/{id}/credentials", "createCredential", Policy("credentials.create") => create_credential),
        route!(POST "/api/v1/agents/{id}/credentials/{cid}/rotate", "rotateCredential", Policy("credentials.rotate") => rotate_credential),
        route!(DELETE "/api/v1/agents/{id}/credentials/{cid}", "revokeCredential", Policy("credentials.revoke") => revoke_credential),
    ],
    openapi: include_str!("agents.openapi.json"),
};

async fn list(ctx: Ctx, req: Req) -> ApiResult {
    let q: ListQuery = req.query_as()?;
    let call = ctx.call().await?;
    let page = ctx.engine().list_agents(&call, q.org_id, q.page()).await?;
    Ok(json_reply(StatusCode::OK, &page))
}

async fn create(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let q: OrgQuery = req.query_as()?;
    let call = ctx.call().await?;
    let mut new: NewAgent = body.json()?;
    new.org_id = new.org_id.or(q.org_id);
    let agent = ctx.engine().create_agent(&call, new).await?;
    Ok(json_reply(StatusCode::CREATED, &agent))
}

async fn get(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    let agent = ctx.engine().get_agent(&call, q.org_id, id).await?;
    Ok(json_reply(StatusCode::OK, &agent))
}

async fn update(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    let patch: AgentPatch = body.json()?;
    let agent = ctx.engine().update_agent(&call, q.org_id, id, patch).await?;
    Ok(json_reply(StatusCode::OK, &agent))
}

async fn delete(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    ctx.engine().delete_agent(&call, q.org_id, id).await?;
    Ok(no_content())
}

async fn suspend(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    let agent = ctx.engine().suspend_agent(&call, q.org_id, id).await?;
    Ok(json_reply(StatusCode::OK, &agent))
}

async fn reactivate(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    let agent = ctx.engine().reactivate_agent(&call, q.org_id, id).await?;
    Ok(json_reply(StatusCode::OK, &agent))
}

async fn list_credentials(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    let items = ctx.engine().list_credentials(&call, q.org_id, id).await?;
    Ok(json_reply(StatusCode::OK, &serde_json::json!({"items": items})))
}

async fn create_credential(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    // No body: a client secret. A body chooses the type (e.g. private_key_jwt + jwk).
    let new: NewCredential = if body.is_empty() { NewCredential::default() } else { body.json()? };
    let issued = ctx.engine().create_credential(&call, q.org_id, id, new).await?;
    Ok(json_reply(StatusCode::CREATED, &issued))
}

async fn rotate_credential(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let (id, cid) = (req.id(0, "id")?, req.id(1, "cid")?);
    let call = ctx.call().await?;
    let issued = ctx.engine().rotate_credential(&call, q.org_id, id, cid).await?;
    Ok(json_reply(StatusCode::OK, &issued))
}

async fn revoke_credential(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let (id, cid) = (req.id(0, "id")?, req.id(1, "cid")?);
    let call = ctx.call().await?;
    let credential = ctx.engine().revoke_credential(&call, q.org_id, id, cid).await?;
    Ok(json_reply(StatusCode::OK, &credential))
}
