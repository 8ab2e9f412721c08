//! [`BillingApi`] on Stripe, with async-stripe: its client (authentication, the API
//! version header, timeouts) and its typed request builders; answers are read as untyped
//! JSON and taken apart by `domain::billing`, which tolerates every API version (the
//! generated response types follow only the newest).

use async_trait::async_trait;
use serde_json::Value;
use stripe_client_core::{RequestBuilder, StripeMethod, StripeRequest};
use uuid::Uuid;

use crate::families::billing::provider::{BillingApi, CheckoutRequest, CheckoutSession};
use crate::families::billing::rules::{remote_subscription, RemoteSubscription};
use crate::kernel::error::{EngineError, Result};

pub struct StripeApi {
    client: stripe::Client,
}

impl StripeApi {
    /// A client with `secret_key`, at `api_base` (Stripe's own when `None`; a local fake
    /// such as localstripe in tests).
    pub fn new(secret_key: &str, api_base: Option<&str>) -> Result<StripeApi> {
        let mut builder =
            stripe::ClientBuilder::new(secret_key).app_info("AgentIdP", Some(env!("CARGO_PKG_VERSION").into()), None);
        if let Some(base) = api_base {
            builder = builder.url(base);
        }
        let client = builder.build().map_err(|e| EngineError::internal(format!("the Stripe client: {e}")))?;
        Ok(StripeApi { client })
    }

    async fn send(&self, request: RequestBuilder) -> Result<Value> {
        let answer: miniserde::json::Value =
            request.customize::<miniserde::json::Value>().send(&self.client).await.map_err(|e| match e {
                // Stripe has no such object: nothing to retry.
                stripe::StripeError::Stripe(_, 404) => EngineError::not_found("Stripe object"),
                other => EngineError::Unavailable(format!("Stripe: {other}")),
            })?;
        serde_json::from_str(&miniserde::json::to_string(&answer))
            .map_err(|e| EngineError::Unavailable(format!("Stripe answered something that is not JSON: {e}")))
    }
}

fn id_of(answer: &Value, what: &str) -> Result<String> {
    answer["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| EngineError::Unavailable(format!("Stripe answered a {what} without an id")))
}

#[async_trait]
impl BillingApi for StripeApi {
    async fn create_customer(&self, org_id: Uuid, name: &str) -> Result<String> {
        let metadata = std::collections::HashMap::from([("org_id".to_string(), org_id.to_string())]);
        let request = stripe_core::customer::CreateCustomer::new().name(name).metadata(metadata);
        id_of(&self.send(request.build()).await?, "customer")
    }

    async fn create_checkout_session(&self, r: &CheckoutRequest) -> Result<CheckoutSession> {
        use stripe_checkout::checkout_session::{
            CreateCheckoutSession, CreateCheckoutSessionLineItems, CreateCheckoutSessionSubscriptionData,
        };
        let org = r.org_id.to_string();
        let mut item = CreateCheckoutSessionLineItems::new();
        item.price = Some(r.price_id.clone());
        item.quantity = Some(1);
        let mut subscription = CreateCheckoutSessionSubscriptionData::new();
        subscription.metadata = Some(std::collections::HashMap::from([("org_id".to_string(), org.clone())]));
        let request = CreateCheckoutSession::new()
            .mode(stripe_checkout::CheckoutSessionMode::Subscription)
            .customer(r.customer_id.as_str())
            .client_reference_id(org.as_str())
            .line_items(vec![item])
            .subscription_data(subscription)
            .success_url(r.success_url.as_str())
            .cancel_url(r.cancel_url.as_str());
        let answer = self.send(request.build()).await?;
        let url = answer["url"]
            .as_str()
            .ok_or_else(|| EngineError::Unavailable("Stripe answered a Checkout Session without a url".into()))?;
        Ok(CheckoutSession { id: id_of(&answer, "Checkout Session")?, url: url.to_string() })
    }

    async fn subscription(&self, id: &str) -> Result<RemoteSubscription> {
        let answer = self.send(RequestBuilder::new(StripeMethod::Get, format!("/subscriptions/{id}"))).await?;
        remote_subscription(&answer).map_err(|e| EngineError::Unavailable(format!("Stripe's subscription {id}: {e}")))
    }
}
