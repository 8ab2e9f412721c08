//! The warp front-end: one module per resource, each declaring its endpoints in one
//! table ([`route::Resource`]) that the dispatch, the 404/405 answers, the metric labels
//! and the OpenAPI document all derive from. Handlers are plain async fns that return
//! `Result<Response, Problem>`; domain errors become replies through [`problem`], and
//! the top-level `recover` renders only what warp itself rejected (unknown path, wrong
//! method, oversized body).

mod agents;
mod analytics;
mod audit;
mod billing;
mod clients;
mod compliance;
mod cors;
mod delegations;
mod dids;
mod discovery;
mod edge;
mod federation;
mod keys;
mod oauth;
mod ops;
mod organizations;
pub mod problem;
mod resource_servers;
pub(crate) mod route;
mod users;
mod webhooks;

pub use oauth::token_request;

use std::convert::Infallible;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use agentidp_engine::{Call, DpopPresentation, Engine, EngineError, PageRequest, QuotaState};
use bytes::Bytes;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
use serde::de::DeserializeOwned;
use tracing::Instrument;
use uuid::Uuid;
use warp::filters::path::FullPath;
use warp::filters::BoxedFilter;
use warp::http::header::{HeaderMap, HeaderValue};
use warp::http::{Method, StatusCode};
use warp::reply::Response;
use warp::{Filter, Rejection, Reply};

use problem::Problem;

/// Largest request body accepted anywhere.
pub const MAX_BODY: u64 = 64 * 1024;

pub type ApiResult = Result<Response, Problem>;

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    metrics: HttpMetrics,
    limits: crate::limits::HttpLimits,
    /// Every endpoint, from the resources' tables.
    routes: Arc<route::Table>,
    /// The OpenAPI document those tables generate (served at `/openapi.json`; cloning it
    /// copies no bytes).
    openapi: Bytes,
}

/// Every resource of the API, in the order its paths appear in the OpenAPI document.
/// A new resource is a module with a `RESOURCE` table and its `<module>.openapi.json`,
/// and one line here.
const RESOURCES: &[&route::Resource] = &[
    &oauth::RESOURCE,
    &discovery::RESOURCE,
    &ops::RESOURCE,
    &organizations::RESOURCE,
    &agents::RESOURCE,
    &audit::RESOURCE,
    &keys::RESOURCE,
    &analytics::RESOURCE,
    &delegations::RESOURCE,
    &webhooks::RESOURCE,
    &federation::RESOURCE,
    &dids::RESOURCE,
    &billing::RESOURCE,
    &compliance::RESOURCE,
    &users::RESOURCE,
    &resource_servers::RESOURCE,
    &clients::RESOURCE,
];

/// The frame of the OpenAPI document (info, shared components).
const OPENAPI_FRAME: &str = include_str!("openapi.json");
/// The engine's policy: which scope each policy operation needs.
const POLICY: &str = include_str!("../../policies/scopes.json");

/// The OpenAPI document of this server, generated from its route tables
/// (`docs/openapi.json` is this, checked by a test).
pub fn openapi_document() -> anyhow::Result<String> {
    let doc = route::document(OPENAPI_FRAME, RESOURCES, POLICY).map_err(anyhow::Error::msg)?;
    Ok(serde_json::to_string_pretty(&doc)? + "\n")
}

#[derive(Clone)]
struct HttpMetrics {
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl AppState {
    pub fn new(engine: Engine, limits: crate::limits::HttpLimits) -> anyhow::Result<AppState> {
        let requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route, method and status"),
            &["route", "method", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency by route")
                .buckets(vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]),
            &["route"],
        )?;
        engine.metrics_registry().register(Box::new(requests.clone()))?;
        engine.metrics_registry().register(Box::new(latency.clone()))?;
        let build = prometheus::IntGaugeVec::new(
            Opts::new("build_info", "The running build: always 1, its version in the label"),
            &["version"],
        )?;
        build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        engine.metrics_registry().register(Box::new(build))?;
        // CPU seconds, resident memory, open and maximum file descriptors, threads, start time.
        #[cfg(target_os = "linux")]
        engine.metrics_registry().register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
        let routes = Arc::new(route::Table::new(RESOURCES).map_err(anyhow::Error::msg)?);
        let openapi = Bytes::from(openapi_document()?);
        Ok(AppState { engine, metrics: HttpMetrics { requests, latency }, limits, routes, openapi })
    }
}

/// One request's context: engine, request id, credentials presented, and what to log.
pub struct Ctx {
    pub state: AppState,
    pub request_id: String,
    headers: HeaderMap,
    method: Method,
    /// The request path, for the `htu` a DPoP proof must name.
    path: String,
    /// The connection's peer address.
    peer: Option<std::net::IpAddr>,
    started: Instant,
    /// The organization's daily quota once this request was counted: its `RateLimit`
    /// headers.
    quota: Arc<OnceLock<QuotaState>>,
    /// The client the request presented itself as (an authenticated caller's, or the
    /// client id a token request names): the access log's `client_id`.
    client: Arc<OnceLock<String>>,
}

impl Ctx {
    /// Where this request came from, for the engine's OAuth endpoints.
    pub fn origin(&self) -> agentidp_engine::Origin {
        agentidp_engine::Origin { request_id: Some(self.request_id.clone()), addr: self.peer }
    }

    pub fn engine(&self) -> &Engine {
        &self.state.engine
    }

    /// Authenticate the access token of this request: `Bearer`, or `DPoP` with its proof.
    /// The error is the engine's: the handler's answer form (a problem, or the OAuth
    /// error form) renders it, so an engine that is unavailable is a 503 in both.
    pub async fn call(&self) -> Result<Call, EngineError> {
        let missing = || EngineError::InvalidToken("an access token is required".into());
        let header = self.authorization().ok_or_else(missing)?;
        let (scheme, token) = header.split_once(' ').ok_or_else(missing)?;
        let token = token.trim();
        if token.is_empty() {
            return Err(missing());
        }
        let caller = if scheme.eq_ignore_ascii_case("bearer") {
            self.engine().authenticate(token).await?
        } else if scheme.eq_ignore_ascii_case("dpop") {
            let proof =
                self.dpop().ok_or_else(|| EngineError::InvalidToken("a DPoP proof header is required".into()))?;
            let htu = format!("{}{}", self.engine().config().issuer, self.path);
            let presentation = DpopPresentation { proof, htm: self.method.as_str(), htu: &htu };
            self.engine().authenticate_dpop(token, presentation).await?
        } else {
            return Err(missing());
        };
        self.presented_as(&caller.client_id);
        let call = Call { caller, request_id: Some(self.request_id.clone()) };
        // An authenticated management call counts against its organization's day.
        self.counted(self.engine().meter(&call).await?);
        Ok(call)
    }

    /// Record the client id this request presented (for its access-log line).
    pub fn presented_as(&self, client_id: &str) {
        let _ = self.client.set(client_id.chars().take(128).collect());
    }

    /// Record the quota state of a counted request, for its `RateLimit` headers.
    pub fn counted(&self, quota: QuotaState) {
        let _ = self.quota.set(quota);
    }

    /// A request header's value, if it is present once and is visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `DPoP` proof header (RFC 9449), if any.
    pub fn dpop(&self) -> Option<&str> {
        self.header("dpop")
    }

    pub fn authorization(&self) -> Option<&str> {
        self.header("authorization")
    }

    /// The OpenAPI document this server publishes.
    pub fn openapi(&self) -> Bytes {
        self.state.openapi.clone()
    }

    /// Run a handler body in this request's span; record metrics and the access log,
    /// labelled with the endpoint's path template (`route`).
    async fn respond<F>(self, route: &'static str, handler: impl FnOnce(Ctx) -> F) -> Response
    where
        F: Future<Output = ApiResult>,
    {
        let span = tracing::info_span!("request", request_id = %self.request_id, method = %self.method, route);
        let (state, request_id, method, started, quota, client) = (
            self.state.clone(),
            self.request_id.clone(),
            self.method.clone(),
            self.started,
            self.quota.clone(),
            self.client.clone(),
        );
        let mut resp =
            async move { handler(self).await.unwrap_or_else(Problem::into_response) }.instrument(span.clone()).await;
        let status = resp.status();
        let elapsed = started.elapsed();
        state.metrics.requests.with_label_values(&[route, method.as_str(), status.as_str()]).inc();
        state.metrics.latency.with_label_values(&[route]).observe(elapsed.as_secs_f64());
        span.in_scope(|| {
            let (code, micros) = (status.as_u16(), elapsed.as_micros() as u64);
            let client_id = client.get().map(String::as_str).unwrap_or("-");
            match resp.extensions().get::<problem::Refusal>().filter(|_| status.is_client_error()) {
                Some(problem::Refusal(reason)) => {
                    tracing::info!(status = code, micros, client_id = %client_id, reason = %reason, "handled")
                }
                None => tracing::info!(status = code, micros, client_id = %client_id, "handled"),
            }
        });
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        // A refusal carries its own (nothing left, Retry-After at the reset).
        if let Some(quota) = quota.get().filter(|_| status != StatusCode::TOO_MANY_REQUESTS) {
            for (name, value) in problem::ratelimit_headers(quota) {
                resp.headers_mut().insert(name, value);
            }
        }
        resp
    }
}

fn valid_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// The TCP peer of a request's connection, in its extensions (`warp::ext::optional`):
/// what the per-address lockout counts by.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub std::net::IpAddr);

/// Extract a [`Ctx`]; never rejects.
fn ctx(state: AppState) -> BoxedFilter<(Ctx,)> {
    warp::any()
        .map(move || state.clone())
        .and(warp::header::headers_cloned())
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::ext::optional::<Peer>())
        .map(|state, headers: HeaderMap, method, path: FullPath, peer: Option<Peer>| Ctx {
            state,
            request_id: headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .filter(|id| valid_request_id(id))
                .map(str::to_string)
                .unwrap_or_else(|| Uuid::now_v7().to_string()),
            headers,
            method,
            path: path.as_str().to_string(),
            peer: peer.map(|p| p.0),
            started: Instant::now(),
            quota: Arc::default(),
            client: Arc::default(),
        })
        .boxed()
}

/// A request body, limited in size, parsed by the handler so errors become problems.
pub struct Body {
    content_type: Option<String>,
    bytes: Bytes,
}

impl Body {
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The body exactly as received (what a signature is computed over).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Parse JSON; the content type must say JSON, and unknown fields are refused where
    /// the target type says so.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Problem> {
        let is_json = self
            .content_type
            .as_deref()
            .and_then(|ct| ct.split(';').next())
            .map(|ct| {
                let ct = ct.trim().to_ascii_lowercase();
                ct == "application/json" || ct.ends_with("+json")
            })
            .unwrap_or(false);
        if !is_json {
            return Err(Problem::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported-media-type",
                "Unsupported media type",
                "the body must be application/json",
            ));
        }
        // Every body of this API is an object; serde would also read a struct from an array.
        if self.bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Problem::bad_request("the JSON body must be an object"));
        }
        serde_json::from_slice(&self.bytes).map_err(|e| Problem::bad_request(format!("malformed JSON body: {e}")))
    }

    pub fn form(&self) -> Option<&[u8]> {
        let is_form = self
            .content_type
            .as_deref()
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|ct| ct.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        is_form.then_some(&self.bytes[..])
    }
}

/// Refusal of a body over [`MAX_BODY`].
#[derive(Debug)]
struct BodyTooLarge;
impl warp::reject::Reject for BodyTooLarge {}

/// The client stopped sending its body halfway.
#[derive(Debug)]
struct BodyUnreadable;
impl warp::reject::Reject for BodyUnreadable {}

/// The client did not send its body within the body read timeout.
#[derive(Debug)]
struct BodyTimeout;
impl warp::reject::Reject for BodyTimeout {}

/// A body of at most [`MAX_BODY`] bytes, with or without Content-Length (a declared
/// length over the limit is refused before anything is read), that arrives whole within
/// the body read timeout: a client trickling its body does not hold a connection.
fn body(state: &AppState) -> BoxedFilter<(Body,)> {
    let timeout = state.limits.body_read_timeout;
    warp::header::optional::<String>("content-type")
        .and(warp::header::optional::<u64>("content-length"))
        .and(warp::body::stream())
        .and_then(move |content_type, length: Option<u64>, stream| async move {
            if length.is_some_and(|l| l > MAX_BODY) {
                return Err(warp::reject::custom(BodyTooLarge));
            }
            let deadline = tokio::time::Instant::now() + timeout;
            let mut stream = std::pin::pin!(stream);
            let mut bytes = bytes::BytesMut::new();
            loop {
                let next = tokio::time::timeout_at(deadline, futures_util::StreamExt::next(&mut stream));
                let Some(chunk) = next.await.map_err(|_| warp::reject::custom(BodyTimeout))? else {
                    break;
                };
                let chunk: Result<_, warp::Error> = chunk;
                let mut chunk = chunk.map_err(|_| warp::reject::custom(BodyUnreadable))?;
                if bytes.len() + bytes::Buf::remaining(&chunk) > MAX_BODY as usize {
                    return Err(warp::reject::custom(BodyTooLarge));
                }
                while bytes::Buf::has_remaining(&chunk) {
                    let part = bytes::Buf::chunk(&chunk);
                    let n = part.len();
                    bytes.extend_from_slice(part);
                    bytes::Buf::advance(&mut chunk, n);
                }
            }
            Ok::<_, Rejection>(Body { content_type, bytes: bytes.freeze() })
        })
        .boxed()
}

/// The raw query string (empty when absent), parsed by handlers.
fn query() -> BoxedFilter<(String,)> {
    warp::query::raw().or(warp::any().map(String::new)).unify().boxed()
}

/// Parse a query string; a refusal names the parameter at fault (`field`) when one is.
pub fn parse_query<T: DeserializeOwned>(raw: &str) -> Result<T, Problem> {
    serde_urlencoded::from_str(raw).map_err(|e| {
        // Every query type's parameters are optional: the one that fails on its own is the
        // one at fault (an unknown parameter's error names it already).
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw).unwrap_or_default();
        let alone = |k: &String, v: &String| {
            serde_urlencoded::to_string([(k, v)]).ok().and_then(|one| serde_urlencoded::from_str::<T>(&one).err())
        };
        match pairs.iter().find_map(|(k, v)| alone(k, v).map(|e| (k, e))) {
            Some((name, e)) => Problem::invalid_field(name, format!("query parameter {name:?}: {e}")),
            None => Problem::bad_request(format!("invalid query: {e}")),
        }
    })
}

pub fn parse_id(field: &str, raw: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(raw).map_err(|_| Problem::invalid_field(field, format!("{raw:?} is not a valid id")))
}

/// Query parameters shared by listings.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    pub cursor: Option<String>,
    pub limit: Option<u32>,
    pub org_id: Option<Uuid>,
}

impl ListQuery {
    pub fn page(&self) -> PageRequest {
        PageRequest { cursor: self.cursor.clone(), limit: self.limit }
    }
}

/// Only `org_id`, for routes that act on one resource.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OrgQuery {
    pub org_id: Option<Uuid>,
}

pub fn json_reply<T: serde::Serialize>(status: StatusCode, value: &T) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// Every route of the server: the edge's guard, then the one dispatch over the route
/// table (a path no route has is a 404, another verb of a known path a 405).
pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let table = state.routes.clone();
    let found = warp::method().and(warp::path::full()).and_then(move |method: Method, path: FullPath| {
        let found = table.find(&method, path.as_str());
        async move {
            found.map_err(|miss| match miss {
                route::Miss::Path => warp::reject::custom(edge::NoSuchPath),
                route::Miss::Verb(allow) => warp::reject::custom(edge::WrongMethod(allow)),
            })
        }
    });
    let dispatch = found.and(ctx(state.clone())).and(query()).and(body(&state)).then(
        |found: route::Found, ctx: Ctx, query: String, body: Body| async move {
            let route::Found { route, label, params } = found;
            let req = route::Req::new(params, query, body);
            ctx.respond(label, move |ctx| (route.handler)(ctx, req)).await
        },
    );
    let cors = cors::Cors::new(&state.limits.cors_origins);
    let preflight = cors::preflight(cors.clone());
    let routed = edge::guard(state.limits.max_header_bytes).and(dispatch).recover(recover).unify();
    // What no handler answered (rejected at the edge, or no such route) is counted, logged
    // and given its `x-request-id` here, labelled `unmatched` when the contract has no
    // such path; handlers do their own in `Ctx::respond`.
    let answered = warp::any()
        .map(Instant::now)
        .and(warp::path::full())
        .and(warp::method())
        .and(warp::header::headers_cloned())
        .and(warp::ext::optional::<Peer>())
        .and(routed)
        .map(
            move |started: Instant,
                  path: warp::filters::path::FullPath,
                  method: Method,
                  headers: HeaderMap,
                  peer: Option<Peer>,
                  mut resp: Response| {
                let origin = headers.get("origin").and_then(|v| v.to_str().ok());
                if resp.extensions().get::<Recovered>().is_some() {
                    let route = state.routes.label(path.as_str());
                    let status = resp.status();
                    state.metrics.requests.with_label_values(&[route, method.as_str(), status.as_str()]).inc();
                    let request_id = headers
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .filter(|id| valid_request_id(id))
                        .map(str::to_string)
                        .unwrap_or_else(|| Uuid::now_v7().to_string());
                    let reason = resp.extensions().get::<problem::Refusal>().map(|r| r.0.to_string());
                    let micros = started.elapsed().as_micros() as u64;
                    let peer = peer.map(|p| p.0.to_string());
                    tracing::info_span!("request", request_id = %request_id, method = %method, route).in_scope(|| {
                        tracing::info!(
                            status = status.as_u16(),
                            micros,
                            path = %path.as_str().chars().take(256).collect::<String>(),
                            peer = peer.as_deref().unwrap_or("-"),
                            reason = reason.as_deref().unwrap_or("-"),
                            "handled"
                        )
                    });
                    if let Ok(v) = HeaderValue::from_str(&request_id) {
                        resp.headers_mut().insert("x-request-id", v);
                    }
                }
                cors.decorate(origin, path.as_str(), resp)
            },
        );
    preflight.or(answered).unify().boxed()
}

/// Marks a response [`recover`] rendered (no handler counted it).
#[derive(Clone, Copy)]
struct Recovered;

/// Render what warp rejected before any handler ran.
async fn recover(rejection: Rejection) -> Result<Response, Infallible> {
    let problem = if let Some(edge::RepeatedHeader(name)) = rejection.find() {
        Problem::bad_request(format!("the {name} header may be sent once"))
    } else if let Some(edge::HeadTooLarge(max)) = rejection.find() {
        Problem::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers-too-large",
            "Request header fields too large",
            format!("request headers are limited to {max} bytes"),
        )
    } else if rejection.find::<edge::UriTooLong>().is_some() {
        Problem::new(
            StatusCode::URI_TOO_LONG,
            "uri-too-long",
            "URI too long",
            format!("the request target is limited to {} bytes", edge::MAX_URI),
        )
    } else if let Some(edge::WrongMethod(allow)) = rejection.find() {
        let mut p = Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            format!("this endpoint takes {allow}"),
        );
        if let Ok(v) = HeaderValue::from_str(allow) {
            p = p.with_header_value(warp::http::header::ALLOW, v);
        }
        p
    } else if let Some(edge::TrailingSlash(canonical)) = rejection.find() {
        let detail = format!("no such endpoint: paths take no trailing slash (did you mean {canonical}?)");
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail)
    } else if rejection.is_not_found() || rejection.find::<edge::NoSuchPath>().is_some() {
        Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", "no such endpoint")
    } else if rejection.find::<BodyTimeout>().is_some() {
        Problem::new(
            StatusCode::REQUEST_TIMEOUT,
            "request-timeout",
            "Request timeout",
            "the request body did not arrive in time",
        )
        .with_header(warp::http::header::CONNECTION, "close")
    } else if rejection.find::<BodyUnreadable>().is_some() {
        Problem::bad_request("the request body could not be read")
    } else if rejection.find::<BodyTooLarge>().is_some() {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload too large",
            format!("bodies are limited to {MAX_BODY} bytes"),
        )
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        Problem::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method not allowed",
            "wrong method for this endpoint",
        )
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        Problem::bad_request(e.to_string())
    } else {
        Problem::bad_request(format!("{rejection:?}"))
    };
    let mut resp = problem.into_response();
    resp.extensions_mut().insert(Recovered);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    /// `docs/openapi.json` is generated from the route tables: CI fails when the checked-in
    /// file differs (`scripts/gen-openapi` rewrites it).
    #[test]
    fn docs_openapi_json_is_what_the_route_tables_generate() {
        let generated = super::openapi_document().unwrap();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
        if std::env::var_os("AGENTIDP_WRITE_OPENAPI").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(path).unwrap();
        assert!(
            generated == checked_in,
            "docs/openapi.json is not what the route tables generate: run scripts/gen-openapi"
        );
    }
}
