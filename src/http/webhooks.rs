//! Webhooks: `/api/v1/webhooks` (subscriptions of the caller's organization), the event
//! catalogue, and each subscription's deliveries, redelivery, test event and secret
//! rotation.

use agentidp_engine::families::webhooks::rules::{NewWebhook, WebhookPatch};
use agentidp_engine::PageRequest;
use warp::http::StatusCode;

use super::route::{route, Req, Resource};
use super::{json_reply, no_content, ApiResult, Ctx};

/// Its endpoints (the contract: see [`super::route`]).
pub const RESOURCE: Resource = Resource {
    routes: &[
        route!(GET "/api/v1/webhooks", "listWebhooks", Policy("webhooks.list") => list),
        route!(POST "/api/v1/webhooks", "createWebhook", Policy("webhooks.create") => create),
        route!(GET "/api/v1/webhooks/event-types", "listWebhookEventTypes", Policy("webhooks.event_types") => event_types),
        route!(GET "/api/v1/webhooks/{id}", "getWebhook", Policy("webhooks.get") => get),
        route!(PATCH "/api/v1/webhooks/{id}", "updateWebhook", Policy("webhooks.update") => update),
        route!(DELETE "/api/v1/webhooks/{id}", "deleteWebhook", Policy("webhooks.delete") => delete),
        route!(GET "/api/v1/webhooks/{id}/deliveries", "listWebhookDeliveries", Policy("webhooks.deliveries") => deliveries),
        route!(POST "/api/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", "redeliverWebhook", Policy("webhooks.redeliver") => redeliver),
        route!(POST "/api/v1/webhooks/{id}/test", "testWebhook", Policy("webhooks.test") => test),
        route!(POST "/api/v1/webhooks/{id}/rotate-secret", "rotateWebhookSecret", Policy("webhooks.rotate_secret") => rotate),
    ],
    openapi: include_str!("webhooks.openapi.json"),
};

/// A listing's page parameters (a subscription is always of the caller's organization).
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct PageParams {
    cursor: Option<String>,
    limit: Option<u32>,
}

impl PageParams {
    fn page(self) -> PageRequest {
        PageRequest { cursor: self.cursor, limit: self.limit }
    }
}

async fn event_types(ctx: Ctx, _: Req) -> ApiResult {
    let call = ctx.call().await?;
    let types: Vec<_> = ctx
        .engine()
        .webhook_event_types(&call)?
        .iter()
        .map(|t| serde_json::json!({"name": t.name, "description": t.description}))
        .collect();
    Ok(json_reply(StatusCode::OK, &serde_json::json!({ "items": types })))
}

async fn create(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let new: NewWebhook = body.json()?;
    let call = ctx.call().await?;
    let created = ctx.engine().create_webhook(&call, new).await?;
    Ok(json_reply(StatusCode::CREATED, &created))
}

async fn list(ctx: Ctx, req: Req) -> ApiResult {
    let p: PageParams = req.query_as()?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().list_webhooks(&call, p.page()).await?))
}

async fn get(ctx: Ctx, req: Req) -> ApiResult {
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().get_webhook(&call, id).await?))
}

async fn update(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let id = req.id(0, "id")?;
    let patch: WebhookPatch = body.json()?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().update_webhook(&call, id, patch).await?))
}

async fn delete(ctx: Ctx, req: Req) -> ApiResult {
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    ctx.engine().delete_webhook(&call, id).await?;
    Ok(no_content())
}

async fn deliveries(ctx: Ctx, req: Req) -> ApiResult {
    let id = req.id(0, "id")?;
    let p: PageParams = req.query_as()?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().list_deliveries(&call, id, p.page()).await?))
}

async fn redeliver(ctx: Ctx, req: Req) -> ApiResult {
    let id = req.id(0, "id")?;
    let delivery_id = req.id(1, "delivery_id")?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::ACCEPTED, &ctx.engine().redeliver(&call, id, delivery_id).await?))
}

async fn test(ctx: Ctx, req: Req) -> ApiResult {
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    let event_id = ctx.engine().test_webhook(&call, id).await?;
    Ok(json_reply(StatusCode::ACCEPTED, &serde_json::json!({ "audit_event_id": event_id })))
}

async fn rotate(ctx: Ctx, req: Req) -> ApiResult {
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().rotate_webhook_secret(&call, id).await?))
}
