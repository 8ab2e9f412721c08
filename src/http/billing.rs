//! `/api/v1/billing`: a Stripe Checkout Session for a paid tier, the organization's
//! subscription, and the webhook Stripe calls (no token: its signature is checked on the
//! raw body). 404 "billing is not configured" on a deployment without Stripe.

use std::convert::Infallible;

use agentidp_engine::CheckoutParams;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::{body, ctx, json_reply, parse_query, query, AppState, Body, Ctx, OrgQuery};

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let c = || ctx(state.clone());
    let checkout = warp::path!("billing" / "checkout-session")
        .and(warp::post())
        .and(c())
        .and(query())
        .and(body(&state))
        .and_then(checkout);
    let subscription =
        warp::path!("billing" / "subscription").and(warp::get()).and(c()).and(query()).and_then(subscription);
    let webhook = warp::path!("billing" / "webhook")
        .and(warp::post())
        .and(c())
        .and(warp::header::optional::<String>("stripe-signature"))
        .and(body(&state))
        .and_then(webhook);
    checkout.or(subscription).unify().or(webhook).unify().boxed()
}

async fn checkout(ctx: Ctx, q: String, body: Body) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let call = ctx.call().await?;
        let params: CheckoutParams = body.json()?;
        let session = ctx.engine().billing_checkout(&call, q.org_id, params).await?;
        Ok(json_reply(StatusCode::CREATED, &session))
    })
    .await
}

async fn subscription(ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let call = ctx.call().await?;
        let view = ctx.engine().billing_subscription(&call, q.org_id).await?;
        Ok(json_reply(StatusCode::OK, &view))
    })
    .await
}

async fn webhook(ctx: Ctx, signature: Option<String>, body: Body) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        ctx.presented_as("stripe");
        let outcome = ctx.engine().stripe_webhook(body.bytes(), signature.as_deref()).await?;
        Ok(json_reply(StatusCode::OK, &serde_json::json!({ "received": true, "outcome": outcome })))
    })
    .await
}
