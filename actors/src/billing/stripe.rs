//! [`BillingApi`] on Stripe's REST API: three calls (create a customer, create a
//! Checkout Session, read a subscription), form-encoded as Stripe takes them, with the
//! reqwest client and TLS stack the engine already builds. Answers are read as untyped
//! JSON and taken apart by `domain::billing`, which tolerates every API version.
//!
//! This was async-stripe (1.0 release candidates). Its client reads every error answer
//! into a typed `ApiErrors`, whose `payment_intent`, `setup_intent`, `payment_method`
//! and `source` fields pull in most of Stripe's generated object graph: about 10 MB of
//! the release binary's 30 MB of code for three requests (issue 28, item 17).

use async_trait::async_trait;
use serde_json::Value;
use uuid::Uuid;

use super::{BillingApi, CheckoutRequest, CheckoutSession};
use crate::domain::billing::{remote_subscription, RemoteSubscription};
use crate::error::{EngineError, Result};

/// The API version asked for (the one async-stripe rc.10 pinned); `domain::billing`
/// reads answers of older and newer versions alike.
const API_VERSION: &str = "2026-09-30.endive";

pub struct StripeApi {
    http: reqwest::Client,
    /// `https://api.stripe.com`, or a local fake such as localstripe in tests.
    base: String,
    secret_key: String,
}

impl StripeApi {
    /// A client with `secret_key`, at `api_base` (Stripe's own when `None`).
    pub fn new(secret_key: &str, api_base: Option<&str>) -> Result<StripeApi> {
        let base = api_base.unwrap_or("https://api.stripe.com").trim_end_matches('/').to_string();
        url::Url::parse(&base).map_err(|e| EngineError::internal(format!("the Stripe API base {base:?}: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .user_agent(concat!("AgentIdP/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| EngineError::internal(format!("the Stripe client: {e}")))?;
        Ok(StripeApi { http, base, secret_key: secret_key.to_string() })
    }

    /// A POST of `form` (Stripe's bracket notation: `metadata[org_id]`).
    async fn post(&self, path: &str, form: &[(&str, &str)]) -> Result<Value> {
        let body = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(form).finish();
        let request = self
            .http
            .post(format!("{}/v1{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Value> {
        let response = request
            .bearer_auth(&self.secret_key)
            .header("stripe-version", API_VERSION)
            .send()
            .await
            .map_err(|e| EngineError::Unavailable(format!("Stripe: {e}")))?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(|e| EngineError::Unavailable(format!("Stripe: {e}")))?;
        let answer: Value = serde_json::from_slice(&bytes)
            .map_err(|e| EngineError::Unavailable(format!("Stripe answered something that is not JSON: {e}")))?;
        match status.as_u16() {
            200..=299 => Ok(answer),
            // Stripe has no such object: nothing to retry.
            404 => Err(EngineError::not_found("Stripe object")),
            code => {
                let message = answer["error"]["message"].as_str().unwrap_or("no message");
                Err(EngineError::Unavailable(format!(
                    "Stripe: {code}: {}",
                    message.chars().take(200).collect::<String>()
                )))
            }
        }
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
        let org = org_id.to_string();
        let answer = self.post("/customers", &[("name", name), ("metadata[org_id]", &org)]).await?;
        id_of(&answer, "customer")
    }

    async fn create_checkout_session(&self, r: &CheckoutRequest) -> Result<CheckoutSession> {
        let org = r.org_id.to_string();
        let form = [
            ("mode", "subscription"),
            ("customer", r.customer_id.as_str()),
            ("client_reference_id", org.as_str()),
            ("line_items[0][price]", r.price_id.as_str()),
            ("line_items[0][quantity]", "1"),
            ("subscription_data[metadata][org_id]", org.as_str()),
            ("success_url", r.success_url.as_str()),
            ("cancel_url", r.cancel_url.as_str()),
        ];
        let answer = self.post("/checkout/sessions", &form).await?;
        let url = answer["url"]
            .as_str()
            .ok_or_else(|| EngineError::Unavailable("Stripe answered a Checkout Session without a url".into()))?;
        Ok(CheckoutSession { id: id_of(&answer, "Checkout Session")?, url: url.to_string() })
    }

    async fn subscription(&self, id: &str) -> Result<RemoteSubscription> {
        let path: String = url::form_urlencoded::byte_serialize(id.as_bytes()).collect();
        let answer = self.send(self.http.get(format!("{}/v1/subscriptions/{path}", self.base))).await?;
        remote_subscription(&answer).map_err(|e| EngineError::Unavailable(format!("Stripe's subscription {id}: {e}")))
    }
}
