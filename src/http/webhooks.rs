//! Webhooks: `/api/v1/webhooks` (subscriptions of the caller's organization), the event
//! catalogue, and each subscription's deliveries, redelivery, test event and secret
//! rotation.

use std::convert::Infallible;

use agentidp_engine::families::webhooks::rules::{NewWebhook, WebhookPatch};
use agentidp_engine::PageRequest;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::{body, ctx, json_reply, no_content, parse_id, parse_query, query, AppState, Body, Ctx};

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let c = || ctx(state.clone());
    let types = warp::path!("webhooks" / "event-types").and(warp::get()).and(c()).and_then(event_types);
    let create = warp::path!("webhooks").and(warp::post()).and(c()).and(body(&state)).and_then(create);
    let list = warp::path!("webhooks").and(warp::get()).and(c()).and(query()).and_then(list);
    let get = warp::path!("webhooks" / String).and(warp::get()).and(c()).and_then(get);
    let one = || warp::path("webhooks").and(subscription()).and(warp::path::end());
    let update = one().and(warp::patch()).and(c()).and(body(&state)).and_then(update);
    let delete = one().and(warp::delete()).and(c()).and_then(delete);
    let deliveries =
        warp::path!("webhooks" / String / "deliveries").and(warp::get()).and(c()).and(query()).and_then(deliveries);
    let redeliver = warp::path!("webhooks" / String / "deliveries" / String / "redeliver")
        .and(warp::post())
        .and(c())
        .and_then(redeliver);
    let test = warp::path!("webhooks" / String / "test").and(warp::post()).and(c()).and_then(test);
    let rotate = warp::path!("webhooks" / String / "rotate-secret").and(warp::post()).and(c()).and_then(rotate);
    types
        .or(create)
        .unify()
        .or(list)
        .unify()
        .or(get)
        .unify()
        .or(update)
        .unify()
        .or(delete)
        .unify()
        .or(deliveries)
        .unify()
        .or(redeliver)
        .unify()
        .or(test)
        .unify()
        .or(rotate)
        .unify()
        .boxed()
}

/// A subscription's id segment: anything but `event-types` (a path of its own, whose
/// other methods are answered 405 by the route table, not taken for an id).
fn subscription() -> impl Filter<Extract = (String,), Error = warp::Rejection> + Clone {
    warp::path::param::<String>().and_then(|id: String| async move {
        if id == "event-types" {
            Err(warp::reject::not_found())
        } else {
            Ok(id)
        }
    })
}

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

async fn event_types(ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let call = ctx.call().await?;
        let types: Vec<_> = ctx
            .engine()
            .webhook_event_types(&call)?
            .iter()
            .map(|t| serde_json::json!({"name": t.name, "description": t.description}))
            .collect();
        Ok(json_reply(StatusCode::OK, &serde_json::json!({ "items": types })))
    })
    .await
}

async fn create(ctx: Ctx, body: Body) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let new: NewWebhook = body.json()?;
        let call = ctx.call().await?;
        let created = ctx.engine().create_webhook(&call, new).await?;
        Ok(json_reply(StatusCode::CREATED, &created))
    })
    .await
}

async fn list(ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let p: PageParams = parse_query(&q)?;
        let call = ctx.call().await?;
        Ok(json_reply(StatusCode::OK, &ctx.engine().list_webhooks(&call, p.page()).await?))
    })
    .await
}

async fn get(id: String, ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        Ok(json_reply(StatusCode::OK, &ctx.engine().get_webhook(&call, id).await?))
    })
    .await
}

async fn update(id: String, ctx: Ctx, body: Body) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let id = parse_id("id", &id)?;
        let patch: WebhookPatch = body.json()?;
        let call = ctx.call().await?;
        Ok(json_reply(StatusCode::OK, &ctx.engine().update_webhook(&call, id, patch).await?))
    })
    .await
}

async fn delete(id: String, ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        ctx.engine().delete_webhook(&call, id).await?;
        Ok(no_content())
    })
    .await
}

async fn deliveries(id: String, ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let id = parse_id("id", &id)?;
        let p: PageParams = parse_query(&q)?;
        let call = ctx.call().await?;
        Ok(json_reply(StatusCode::OK, &ctx.engine().list_deliveries(&call, id, p.page()).await?))
    })
    .await
}

async fn redeliver(id: String, delivery_id: String, ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let id = parse_id("id", &id)?;
        let delivery_id = parse_id("delivery_id", &delivery_id)?;
        let call = ctx.call().await?;
        Ok(json_reply(StatusCode::ACCEPTED, &ctx.engine().redeliver(&call, id, delivery_id).await?))
    })
    .await
}

async fn test(id: String, ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        let event_id = ctx.engine().test_webhook(&call, id).await?;
        Ok(json_reply(StatusCode::ACCEPTED, &serde_json::json!({ "audit_event_id": event_id })))
    })
    .await
}

async fn rotate(id: String, ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        Ok(json_reply(StatusCode::OK, &ctx.engine().rotate_webhook_secret(&call, id).await?))
    })
    .await
}
