//! `/api/v1/billing`: a Stripe Checkout Session for a paid tier, the organization's
//! subscription, and the webhook Stripe calls (no token: its signature is checked on the
//! raw body). 404 "billing is not configured" on a deployment without Stripe.

use agentidp_engine::CheckoutParams;
use warp::http::StatusCode;

use super::route::{route, Req, Resource};
use super::{json_reply, ApiResult, Ctx, OrgQuery};

/// Its endpoints (the contract: see [`super::route`]).
pub const RESOURCE: Resource = Resource {
    routes: &[
        route!(POST "/api/v1/billing/checkout-session", "createCheckoutSession", Policy("billing.checkout") => checkout),
        route!(GET "/api/v1/billing/subscription", "getBillingSubscription", Policy("billing.subscription") => subscription),
        route!(POST "/api/v1/billing/webhook", "receiveStripeWebhook", Documented => webhook),
    ],
    openapi: include_str!("billing.openapi.json"),
};

async fn checkout(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let q: OrgQuery = req.query_as()?;
    let call = ctx.call().await?;
    let params: CheckoutParams = body.json()?;
    let session = ctx.engine().billing_checkout(&call, q.org_id, params).await?;
    Ok(json_reply(StatusCode::CREATED, &session))
}

async fn subscription(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let call = ctx.call().await?;
    let view = ctx.engine().billing_subscription(&call, q.org_id).await?;
    Ok(json_reply(StatusCode::OK, &view))
}

async fn webhook(ctx: Ctx, req: Req) -> ApiResult {
    let signature = ctx.header("stripe-signature");
    let body = req.body();
    ctx.presented_as("stripe");
    let outcome = ctx.engine().stripe_webhook(body.bytes(), signature).await?;
    Ok(json_reply(StatusCode::OK, &serde_json::json!({ "received": true, "outcome": outcome })))
}
