//! CORS (the Fetch standard's protocol) for what browser clients call: the discovery
//! documents, the JWKS, DID documents and resolution, and the OAuth endpoints. Off unless
//! origins are configured (`--cors-origin`); the management API never answers it (its
//! callers are servers, and a token in a browser is not a place to keep one).

use std::sync::Arc;

use warp::filters::path::FullPath;
use warp::http::header::{
    HeaderMap, HeaderValue, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN,
    ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE, VARY,
};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

/// The allowed origins (exact, as browsers send them: scheme, host and port), or any.
pub struct Cors {
    origins: Vec<String>,
    any: bool,
}

impl Cors {
    pub fn new(origins: &[String]) -> Arc<Cors> {
        let any = origins.iter().any(|o| o == "*");
        Arc::new(Cors { origins: origins.iter().map(|o| o.trim_end_matches('/').to_string()).collect(), any })
    }

    fn on(&self) -> bool {
        self.any || !self.origins.is_empty()
    }

    /// The `Access-Control-Allow-Origin` for `origin`, if it is allowed.
    fn allow(&self, origin: &str) -> Option<HeaderValue> {
        if self.any {
            Some(HeaderValue::from_static("*"))
        } else if self.origins.iter().any(|o| o == origin) {
            HeaderValue::from_str(origin).ok()
        } else {
            None
        }
    }

    /// Add the CORS headers to an answer of a path browsers may call.
    pub fn decorate(&self, origin: Option<&str>, path: &str, mut resp: Response) -> Response {
        if !self.on() || methods(path).is_none() {
            return resp;
        }
        let h = resp.headers_mut();
        if !self.any {
            h.append(VARY, HeaderValue::from_static("Origin"));
        }
        if let Some(allow) = origin.and_then(|o| self.allow(o)) {
            h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow);
            h.insert(
                ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static("x-request-id, www-authenticate, retry-after, ratelimit, ratelimit-policy"),
            );
        }
        resp
    }
}

/// The methods a browser may use on `path`, if it may call it at all.
fn methods(path: &str) -> Option<&'static str> {
    let get = Some("GET, HEAD");
    match path {
        "/api/v1/oauth2/token" | "/api/v1/oauth2/introspect" | "/api/v1/oauth2/revoke" => Some("POST"),
        p if p.starts_with("/.well-known/") => get,
        p if p.starts_with("/api/v1/dids/") => get,
        p if p.starts_with("/agents/") && p.ends_with("/did.json") => get,
        _ => None,
    }
}

/// A preflight (OPTIONS with `Origin` and `Access-Control-Request-Method`) of a path
/// browsers may call, from an allowed origin: 204 with what may follow. Anything else
/// goes on to the routes (where OPTIONS is a 405).
pub fn preflight(cors: Arc<Cors>) -> warp::filters::BoxedFilter<(Response,)> {
    warp::options()
        .and(warp::header::headers_cloned())
        .and(warp::path::full())
        .and_then(move |headers: HeaderMap, path: FullPath| {
            let cors = cors.clone();
            async move {
                let origin = headers.get("origin").and_then(|v| v.to_str().ok());
                let asks = headers.contains_key("access-control-request-method");
                let allow = origin.filter(|_| asks).and_then(|o| cors.allow(o));
                let (Some(methods), Some(allow)) = (methods(path.as_str()), allow) else {
                    return Err(warp::reject::not_found());
                };
                let mut resp = StatusCode::NO_CONTENT.into_response();
                let h = resp.headers_mut();
                h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow);
                h.insert(ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static(methods));
                h.insert(ACCESS_CONTROL_ALLOW_HEADERS, HeaderValue::from_static("authorization, content-type, dpop"));
                h.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
                if !cors.any {
                    h.insert(VARY, HeaderValue::from_static("Origin"));
                }
                Ok::<_, warp::Rejection>(resp)
            }
        })
        .boxed()
}
