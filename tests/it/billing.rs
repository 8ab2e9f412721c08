//! Billing with Stripe (issue 16): Checkout Sessions, the signed webhook, the
//! subscription, and the tier that follows — against localstripe (a local Stripe fake
//! from PyPI) for customers and subscriptions, with a small stand-in in front of it for
//! Checkout Sessions, which localstripe lacks (tests/conformance/stripe_standin.py).
//! Every webhook fixture is signed the way Stripe signs, and the official `stripe`
//! library's verifier judges it before AgentIdP does: they must agree.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use agentidp_engine::{BillingSettings, Clock};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::support::{backends, spawn_app, spawn_app_with, App};

const KEY: &str = "sk_test_agentidp";
const SECRET: &str = "whsec_agentidp_test";

fn conformance(script: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance").join(script)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// localstripe and the Checkout stand-in in front of it; both killed when dropped.
struct FakeStripe {
    localstripe: Child,
    standin: Child,
    /// localstripe itself.
    pub direct: String,
    /// What AgentIdP is pointed at.
    pub base: String,
    record: PathBuf,
    _dir: tempfile::TempDir,
}

impl FakeStripe {
    async fn start() -> FakeStripe {
        let dir = tempfile::tempdir().unwrap();
        let (port, standin_port) = (free_port(), free_port());
        let localstripe = Command::new("localstripe")
            .args(["--port", &port.to_string(), "--from-scratch"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("localstripe must be installed (scripts/test installs it)");
        let direct = format!("http://127.0.0.1:{port}");
        let record = dir.path().join("checkout.ndjson");
        let mut standin = Command::new("python3")
            .arg(conformance("stripe_standin.py"))
            .args([&standin_port.to_string(), &direct])
            .arg(&record)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = String::new();
        std::io::BufReader::new(standin.stdout.take().unwrap()).read_line(&mut ready).unwrap();
        assert_eq!(ready.trim(), "ready");
        let fake = FakeStripe {
            localstripe,
            standin,
            direct,
            base: format!("http://127.0.0.1:{standin_port}"),
            record,
            _dir: dir,
        };
        let http = reqwest::Client::new();
        for _ in 0..200 {
            let up = http.get(format!("{}/v1/customers", fake.direct)).basic_auth(KEY, Some("")).send().await;
            if up.is_ok_and(|r| r.status().is_success()) {
                return fake;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("localstripe did not start");
    }

    /// A call to localstripe, as Stripe's own systems would make changes.
    async fn call(&self, method: Method, path: &str, form: &[(&str, &str)]) -> Value {
        let resp = reqwest::Client::new()
            .request(method, format!("{}/v1{path}", self.direct))
            .basic_auth(KEY, Some(""))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "localstripe {path}: {body}");
        body
    }

    /// What checkout sessions were asked of the stand-in.
    fn checkouts(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.record)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// The subscription Stripe makes when a checkout is paid: a card, then the
    /// subscription to `price` with the organization in its metadata.
    async fn subscribe(&self, customer: &str, price: &str, org_id: &str) -> String {
        let card = self
            .call(
                Method::POST,
                "/tokens",
                &[
                    ("card[number]", "4242424242424242"),
                    ("card[exp_month]", "12"),
                    ("card[exp_year]", "2040"),
                    ("card[cvc]", "123"),
                ],
            )
            .await;
        self.call(Method::POST, &format!("/customers/{customer}/sources"), &[("source", card["id"].as_str().unwrap())])
            .await;
        let sub = self
            .call(
                Method::POST,
                "/subscriptions",
                &[("customer", customer), ("items[0][plan]", price), ("metadata[org_id]", org_id)],
            )
            .await;
        sub["id"].as_str().unwrap().to_string()
    }
}

impl Drop for FakeStripe {
    fn drop(&mut self) {
        for child in [&mut self.localstripe, &mut self.standin] {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A Stripe event, signed by `signers` at `t`; also judged by the `stripe` library with
/// the endpoint's secret.
fn sign(payload: &str, signers: &[&str], t: i64) -> (String, bool) {
    let mut child = Command::new("python3")
        .arg(conformance("stripe_sign.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let input = json!({"payload": payload, "secret": SECRET, "signers": signers, "timestamp": t});
    child.stdin.take().unwrap().write_all(input.to_string().as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "stripe_sign.py failed");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (v["header"].as_str().unwrap().to_string(), v["stripe_accepts"].as_bool().unwrap())
}

fn event(id: &str, kind: &str, object: Value) -> String {
    json!({"id": id, "object": "event", "type": kind, "created": 1, "data": {"object": object}}).to_string()
}

async fn post_webhook(app: &App, payload: &str, header: Option<&str>) -> (StatusCode, Value) {
    let mut req = app.http.post(app.url("/api/v1/billing/webhook")).header("content-type", "application/json");
    if let Some(h) = header {
        req = req.header("Stripe-Signature", h);
    }
    let resp = req.body(payload.to_string()).send().await.unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// Sign with the endpoint's secret at the app's time, check the `stripe` library agrees
/// it is valid, and send.
async fn deliver(app: &App, payload: &str) -> (StatusCode, Value) {
    let now = app.storage.clock.now_ms() / 1000;
    let (header, stripe_accepts) = sign(payload, &[SECRET], now);
    assert!(stripe_accepts, "the stripe library refuses a fixture meant to be valid");
    post_webhook(app, payload, Some(&header)).await
}

async fn tier(app: &App, token: &str, org: &str) -> String {
    let (status, org) = app.call(Method::GET, &format!("/api/v1/organizations/{org}"), token, None).await;
    assert_eq!(status, StatusCode::OK, "{org}");
    org["tier"].as_str().unwrap().to_string()
}

async fn audited(app: &App, token: &str, action: &str) -> Vec<Value> {
    let (_, page) =
        app.call(Method::GET, &format!("/api/v1/audit-events?action={action}&limit=200"), token, None).await;
    page["items"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripe_checkout_webhooks_and_the_tier_they_set() {
    let stripe = FakeStripe::start().await;
    for (product, price) in [("prod_pro", "price_pro"), ("prod_ent", "price_ent")] {
        stripe.call(Method::POST, "/products", &[("id", product), ("name", product)]).await;
        stripe
            .call(
                Method::POST,
                "/plans",
                &[("id", price), ("product", product), ("amount", "1000"), ("currency", "eur"), ("interval", "month")],
            )
            .await;
    }
    for backend in backends() {
        let base = stripe.base.clone();
        let app = spawn_app_with(&backend, move |config| {
            let prices = vec![
                (agentidp_engine::kernel::model::Tier::Pro, "price_pro".into()),
                (agentidp_engine::kernel::model::Tier::Enterprise, "price_ent".into()),
            ];
            let mut settings = BillingSettings::new(KEY.into(), SECRET.into(), prices);
            settings.api_base = Some(base);
            settings.grace = Duration::from_secs(3 * 86_400);
            settings.sweep_every = Duration::from_millis(50);
            config.billing = Some(settings);
        })
        .await;
        let admin = app.admin_token().await;
        let org = app.boot.org_id.to_string();
        let checkouts_before = stripe.checkouts().len();

        // Checkout: a session for the pro price, the organization as reference, one
        // customer created (with the organization in its metadata) and then reused.
        let body =
            json!({"tier": "pro", "success_url": "https://app.example/ok", "cancel_url": "https://app.example/no"});
        let (status, session) =
            app.call(Method::POST, "/api/v1/billing/checkout-session", &admin, Some(body.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "{session}");
        assert!(session["id"].as_str().unwrap().starts_with("cs_test_"));
        assert!(session["url"].as_str().unwrap().starts_with("https://checkout.stripe.test/"));
        let (status, _) = app.call(Method::POST, "/api/v1/billing/checkout-session", &admin, Some(body)).await;
        assert_eq!(status, StatusCode::CREATED);
        let asked = &stripe.checkouts()[checkouts_before..];
        assert_eq!(asked.len(), 2);
        assert_eq!(
            (asked[0]["client_reference_id"].as_str(), asked[0]["line_items[0][price]"].as_str()),
            (Some(org.as_str()), Some("price_pro"))
        );
        assert_eq!(asked[0]["mode"], "subscription");
        assert_eq!(asked[0]["customer"], asked[1]["customer"], "the customer is reused");
        let customer = asked[0]["customer"].as_str().unwrap().to_string();
        let remote = stripe.call(Method::GET, &format!("/customers/{customer}"), &[]).await;
        assert_eq!(remote["metadata"]["org_id"], org.as_str());
        for (bad, field) in [
            (json!({"tier": "free", "success_url": "https://a.example/", "cancel_url": "https://a.example/"}), "tier"),
            (json!({"tier": "pro", "success_url": "/relative", "cancel_url": "https://a.example/"}), "success_url"),
            (json!({"tier": "pro", "success_url": "https://a.example/"}), ""),
        ] {
            let (status, problem) = app.call(Method::POST, "/api/v1/billing/checkout-session", &admin, Some(bad)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
            assert!(problem["field"].as_str().unwrap_or_default().contains(field) || field.is_empty(), "{problem}");
        }
        let (status, view) = app.call(Method::GET, "/api/v1/billing/subscription", &admin, None).await;
        assert_eq!(
            (status, view["tier"].as_str(), view["status"].as_str()),
            (StatusCode::OK, Some("free"), Some("none"))
        );

        // Paid: Stripe subscribes the customer and says so.
        let sub = stripe.subscribe(&customer, "price_pro", &org).await;
        let completed = event(
            &format!("evt_done_{}", app.storage.namespace),
            "checkout.session.completed",
            json!({"id": "cs_test_x", "object": "checkout.session", "client_reference_id": org, "customer": customer,
                   "subscription": sub, "payment_status": "paid", "mode": "subscription"}),
        );
        let (status, ack) = deliver(&app, &completed).await;
        assert_eq!((status, ack["outcome"].as_str()), (StatusCode::OK, Some("processed")), "{ack}");
        assert_eq!(tier(&app, &admin, &org).await, "pro");
        let (_, view) = app.call(Method::GET, "/api/v1/billing/subscription", &admin, None).await;
        assert_eq!(
            (view["status"].as_str(), view["cancel_at_period_end"].as_bool()),
            (Some("active"), Some(false)),
            "{view}"
        );
        assert!(view["current_period_end"].as_str().is_some(), "{view}");
        let changes = audited(&app, &admin, "billing.tier_change").await;
        assert_eq!(changes.len(), 1);
        assert_eq!(
            (changes[0]["detail"]["from"].as_str(), changes[0]["detail"]["to"].as_str()),
            (Some("free"), Some("pro"))
        );

        // The same event again: acknowledged, nothing changes, nothing audited.
        let (status, ack) = deliver(&app, &completed).await;
        assert_eq!((status, ack["outcome"].as_str()), (StatusCode::OK, Some("replayed")));
        assert_eq!(audited(&app, &admin, "billing.tier_change").await.len(), 1);

        // The subscription, recorded for this organization, reported for another (issue
        // 28, item 15): acknowledged and ignored — never a 409 with the database's words.
        let elsewhere = event(
            &format!("evt_elsewhere_{}", app.storage.namespace),
            "checkout.session.completed",
            json!({"id": "cs_test_y", "object": "checkout.session", "client_reference_id": app.boot.platform_org_id,
                   "customer": customer, "subscription": sub, "payment_status": "paid", "mode": "subscription"}),
        );
        let (status, ack) = deliver(&app, &elsewhere).await;
        assert_eq!((status, ack["outcome"].as_str()), (StatusCode::OK, Some("ignored")), "{ack}");
        assert_eq!(tier(&app, &admin, &org).await, "pro");

        // Refused: each a 4xx, never a 5xx, and the tier stays. The stripe library agrees.
        let now = app.storage.clock.now_ms() / 1000;
        let downgrade =
            event("evt_refused", "customer.subscription.deleted", json!({"id": sub, "object": "subscription"}));
        let (wrong, lib_wrong) = sign(&downgrade, &["whsec_not_ours"], now);
        let (stale, lib_stale) = sign(&downgrade, &[SECRET], now - 301);
        assert!(!lib_wrong && !lib_stale, "the stripe library refuses them too");
        for (header, why) in [(Some(wrong.as_str()), "matches"), (Some(stale.as_str()), "tolerance"), (None, "missing")]
        {
            let (status, problem) = post_webhook(&app, &downgrade, header).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
            assert!(problem["detail"].as_str().unwrap().contains(why), "{problem}");
        }
        let (status, _) = deliver(&app, "{not json").await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let (status, problem) =
            deliver(&app, &event("evt_bad", "checkout.session.completed", json!({"customer": customer}))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
        assert!(problem["detail"].as_str().unwrap().contains("client_reference_id"), "{problem}");
        let (status, ack) = deliver(&app, &event("evt_other", "charge.succeeded", json!({"id": "ch_1"}))).await;
        assert_eq!((status, ack["outcome"].as_str()), (StatusCode::OK, Some("ignored")));
        let (status, ack) =
            deliver(&app, &event("evt_ghost", "customer.subscription.updated", json!({"id": "sub_nope"}))).await;
        assert_eq!(
            (status, ack["outcome"].as_str()),
            (StatusCode::OK, Some("ignored")),
            "a subscription Stripe does not know"
        );
        assert_eq!(tier(&app, &admin, &org).await, "pro", "no refused event changed the tier");

        // Two v1 signatures (Stripe rotating the secret), in either order: accepted.
        for (n, signers) in [[SECRET, "whsec_old"], ["whsec_old", SECRET]].iter().enumerate() {
            let payload = event(
                &format!("evt_two_{n}_{}", app.storage.namespace),
                "customer.subscription.updated",
                json!({"id": sub}),
            );
            let (header, lib) = sign(&payload, signers, now);
            assert!(lib && header.matches("v1=").count() == 2);
            let (status, ack) = post_webhook(&app, &payload, Some(&header)).await;
            assert_eq!((status, ack["outcome"].as_str()), (StatusCode::OK, Some("processed")), "{ack}");
        }

        // Cancellation at period end: the tier stays until Stripe ends the subscription.
        stripe.call(Method::POST, &format!("/subscriptions/{sub}"), &[("cancel_at_period_end", "true")]).await;
        let updated = event(
            &format!("evt_cancel_{}", app.storage.namespace),
            "customer.subscription.updated",
            json!({"id": sub}),
        );
        assert_eq!(deliver(&app, &updated).await.0, StatusCode::OK);
        let (_, view) = app.call(Method::GET, "/api/v1/billing/subscription", &admin, None).await;
        assert_eq!(
            (view["tier"].as_str(), view["cancel_at_period_end"].as_bool()),
            (Some("pro"), Some(true)),
            "{view}"
        );
        stripe.call(Method::DELETE, &format!("/subscriptions/{sub}"), &[]).await;
        let deleted =
            event(&format!("evt_end_{}", app.storage.namespace), "customer.subscription.deleted", json!({"id": sub}));
        assert_eq!(deliver(&app, &deleted).await.0, StatusCode::OK);
        assert_eq!(tier(&app, &admin, &org).await, "free");

        // Another organization: `updated` arrives before `created`. Each is applied as
        // Stripe has the subscription now, so the older event changes nothing back.
        let platform = app.platform_token().await;
        let (_, other) =
            app.call(Method::POST, "/api/v1/organizations", &platform, Some(json!({"name": "Second"}))).await;
        let other_id = other["id"].as_str().unwrap().to_string();
        let cus = stripe.call(Method::POST, "/customers", &[("name", "Second"), ("metadata[org_id]", &other_id)]).await;
        let other_sub = stripe.subscribe(cus["id"].as_str().unwrap(), "price_ent", &other_id).await;
        let ns = &app.storage.namespace;
        let (status, _) =
            deliver(&app, &event(&format!("evt_u_{ns}"), "customer.subscription.updated", json!({"id": other_sub})))
                .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(tier(&app, &platform, &other_id).await, "enterprise");
        let (status, _) =
            deliver(&app, &event(&format!("evt_c_{ns}"), "customer.subscription.created", json!({"id": other_sub})))
                .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(tier(&app, &platform, &other_id).await, "enterprise");

        // A failed payment: the tier holds through the grace period, then the sweeper
        // moves the organization to free (the engine's clock is advanced past it).
        let failed = event(
            &format!("evt_fail_{ns}"),
            "invoice.payment_failed",
            json!({"id": "in_1", "object": "invoice", "subscription": other_sub, "customer": cus["id"]}),
        );
        assert_eq!(deliver(&app, &failed).await.0, StatusCode::OK);
        let (_, view) =
            app.call(Method::GET, &format!("/api/v1/billing/subscription?org_id={other_id}"), &platform, None).await;
        assert_eq!((view["status"].as_str(), view["tier"].as_str()), (Some("past_due"), Some("enterprise")), "{view}");
        assert!(view["grace_until"].as_str().is_some());
        app.storage.clock.advance(Duration::from_secs(3 * 86_400 + 1));
        let platform = app.platform_token().await; // the old one expired meanwhile
        let mut lapsed = false;
        for _ in 0..100 {
            if tier(&app, &platform, &other_id).await == "free" {
                lapsed = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(lapsed, "the grace period ended: free");
        let (_, page) = app
            .call(
                Method::GET,
                &format!("/api/v1/audit-events?org_id={other_id}&action=billing.tier_change"),
                &platform,
                None,
            )
            .await;
        let last = &page["items"][0];
        assert_eq!((last["actor"].as_str(), last["detail"]["to"].as_str()), (Some("agentidp"), Some("free")), "{page}");
        app.stop().await;
    }

    // Without Stripe configured: 404 "billing is not configured", whatever is sent.
    let app = spawn_app(&backends()[0]).await;
    let admin = app.admin_token().await;
    let (status, problem) = app.call(Method::GET, "/api/v1/billing/subscription", &admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["detail"], "billing is not configured");
    let (status, _) = post_webhook(&app, "{}", Some("t=1,v1=00")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    app.stop().await;
}
