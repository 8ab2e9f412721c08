//! `/api/v1/users`: the people of an organization.

use agentidp_engine::{NewUser, UserPatch, UserQuery};
use uuid::Uuid;
use warp::http::StatusCode;

use super::route::{route, Req, Resource};
use super::{json_reply, no_content, ApiResult, Ctx, OrgQuery};
use agentidp_engine::PageRequest;

/// Its endpoints (the contract: see [`super::route`]).
pub const RESOURCE: Resource = Resource {
    routes: &[
        route!(GET "/api/v1/users", "listUsers", Policy("users.list") => list),
        route!(POST "/api/v1/users", "createUser", Policy("users.create") => create),
        route!(GET "/api/v1/users/{id}", "getUser", Policy("users.get") => get),
        route!(PATCH "/api/v1/users/{id}", "updateUser", Policy("users.update") => update),
        route!(DELETE "/api/v1/users/{id}", "deleteUser", Policy("users.delete") => delete),
        route!(POST "/api/v1/users/{id}/suspend", "suspendUser", Policy("users.suspend") => suspend),
        route!(POST "/api/v1/users/{id}/reactivate", "reactivateUser", Policy("users.reactivate") => reactivate),
        route!(PUT "/api/v1/users/{id}/password", "setUserPassword", Policy("users.password") => set_password),
    ],
    openapi: include_str!("users.openapi.json"),
};

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct UserListQuery {
    cursor: Option<String>,
    limit: Option<u32>,
    org_id: Option<Uuid>,
    email: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewPassword {
    password: String,
}

async fn list(ctx: Ctx, req: Req) -> ApiResult {
    let q: UserListQuery = req.query_as()?;
    let call = ctx.call().await?;
    let query = UserQuery { org_id: q.org_id, email: q.email, page: PageRequest { cursor: q.cursor, limit: q.limit } };
    let page = ctx.engine().list_users(&call, query).await?;
    Ok(json_reply(StatusCode::OK, &page))
}

async fn create(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let q: OrgQuery = req.query_as()?;
    let call = ctx.call().await?;
    let mut new: NewUser = body.json()?;
    new.org_id = new.org_id.or(q.org_id);
    let user = ctx.engine().create_user(&call, new).await?;
    Ok(json_reply(StatusCode::CREATED, &user))
}

async fn get(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().get_user(&call, q.org_id, id).await?))
}

async fn update(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    let patch: UserPatch = body.json()?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().update_user(&call, q.org_id, id, patch).await?))
}

async fn delete(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    ctx.engine().delete_user(&call, q.org_id, id).await?;
    Ok(no_content())
}

async fn suspend(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().suspend_user(&call, q.org_id, id).await?))
}

async fn reactivate(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().reactivate_user(&call, q.org_id, id).await?))
}

async fn set_password(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    let new: NewPassword = body.json()?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().set_user_password(&call, q.org_id, id, &new.password).await?))
}
