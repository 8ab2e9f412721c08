//! What every request passes before any route, and what answers when no route does:
//! one `Authorization` (and `DPoP`) header at most, a head and a URI of bounded size, and
//! for an unmatched request a 404 — or a 405 with `Allow` when the path exists with other
//! methods. Which paths take which methods is read from the OpenAPI document the server
//! publishes, so the two cannot disagree.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use warp::filters::path::FullPath;
use warp::http::header::{HeaderMap, AUTHORIZATION};
use warp::http::Method;
use warp::{Filter, Rejection};

/// Longest request target (path and query) accepted.
pub const MAX_URI: usize = 8 * 1024;

#[derive(Debug)]
pub(super) struct RepeatedHeader(pub &'static str);
impl warp::reject::Reject for RepeatedHeader {}

#[derive(Debug)]
pub(super) struct HeadTooLarge(pub usize);
impl warp::reject::Reject for HeadTooLarge {}

#[derive(Debug)]
pub(super) struct UriTooLong;
impl warp::reject::Reject for UriTooLong {}

/// The request's path exists, but not with its method.
#[derive(Debug)]
pub(super) struct WrongMethod(pub String);
impl warp::reject::Reject for WrongMethod {}

/// No route has the request's path.
#[derive(Debug)]
pub(super) struct NoSuchPath;
impl warp::reject::Reject for NoSuchPath {}

/// The path ends in a slash: no endpoint's does (the canonical path is without it).
#[derive(Debug)]
pub(super) struct TrailingSlash(pub String);
impl warp::reject::Reject for TrailingSlash {}

/// Refuse requests that no route should see.
pub(super) fn guard(max_head: usize) -> warp::filters::BoxedFilter<()> {
    warp::header::headers_cloned()
        .and(warp::path::full())
        .and(super::query())
        .and_then(move |headers: HeaderMap, path: FullPath, query: String| async move {
            for (name, label) in [(AUTHORIZATION.as_str(), "Authorization"), ("dpop", "DPoP")] {
                if headers.get_all(name).iter().nth(1).is_some() {
                    return Err(warp::reject::custom(RepeatedHeader(label)));
                }
            }
            let head: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
            if head > max_head {
                return Err(warp::reject::custom(HeadTooLarge(max_head)));
            }
            if path.as_str().len() + query.len() > MAX_URI {
                return Err(warp::reject::custom(UriTooLong));
            }
            // One rule for every path, rather than whatever each route's matcher does:
            // a trailing slash is a 404 that names the path without it.
            if path.as_str().len() > 1 && path.as_str().ends_with('/') {
                return Err(warp::reject::custom(TrailingSlash(path.as_str().trim_end_matches('/').to_string())));
            }
            Ok::<_, Rejection>(())
        })
        .untuple_one()
        .boxed()
}

/// Path templates and their methods, from the OpenAPI document: the one declaration of
/// every endpoint's path, which also names it in metrics and logs.
pub(crate) struct RouteTable {
    /// Templates without parameters, by path.
    literal: HashMap<String, usize>,
    routes: Vec<Route>,
}

struct Route {
    template: String,
    segments: Vec<String>,
    methods: BTreeSet<String>,
}

/// The label of a request that no route has.
pub const UNMATCHED: &str = "unmatched";

impl RouteTable {
    pub fn from_openapi(doc: &str) -> anyhow::Result<RouteTable> {
        let doc: serde_json::Value = serde_json::from_str(doc)?;
        let paths = doc["paths"].as_object().ok_or_else(|| anyhow::anyhow!("openapi.json has no paths"))?;
        let routes: Vec<Route> = paths
            .iter()
            .map(|(path, item)| Route {
                template: path.clone(),
                segments: path.trim_start_matches('/').split('/').map(String::from).collect(),
                // HEAD wherever GET is (the server answers it as a GET without the body).
                methods: ["get", "post", "put", "patch", "delete"]
                    .iter()
                    .filter(|m| item.get(**m).is_some())
                    .flat_map(|m| if *m == "get" { vec!["GET", "HEAD"] } else { vec![*m] })
                    .map(|m| m.to_ascii_uppercase())
                    .collect(),
            })
            .collect();
        let literal = routes
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.template.contains('{'))
            .map(|(i, r)| (r.template.clone(), i))
            .collect();
        Ok(RouteTable { literal, routes })
    }

    /// The templates `path` fits, most literal first (`/audit-events/verify` before
    /// `/audit-events/{id}`).
    fn fitting<'a>(&'a self, path: &str) -> Vec<&'a Route> {
        if let Some(&i) = self.literal.get(path) {
            return vec![&self.routes[i]];
        }
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let mut fitting: Vec<&Route> = self
            .routes
            .iter()
            .filter(|r| {
                r.segments.len() == parts.len()
                    && r.segments.iter().zip(&parts).all(|(t, p)| t == p || (t.starts_with('{') && !p.is_empty()))
            })
            .collect();
        fitting.sort_by_key(|r| std::cmp::Reverse(r.segments.iter().filter(|s| !s.starts_with('{')).count()));
        fitting
    }

    /// The endpoint's name for metrics and logs: the contract's path template.
    pub fn label(&self, path: &str) -> &str {
        // Most requests (the token endpoint above all) hit a literal path: one hash lookup.
        if let Some(&i) = self.literal.get(path) {
            return &self.routes[i].template;
        }
        self.fitting(path).first().map(|r| r.template.as_str()).unwrap_or(UNMATCHED)
    }

    /// The methods `path` takes, or `None` if no route has it.
    fn methods(&self, path: &str) -> Option<BTreeSet<String>> {
        let fitting = self.fitting(path);
        (!fitting.is_empty()).then(|| fitting.iter().flat_map(|r| r.methods.iter().cloned()).collect())
    }
}

/// After every route: reject as [`NoSuchPath`] or [`WrongMethod`] what no route has;
/// a known path and method rejects as not found, so the route's own rejection (a body too
/// large, say) is the one rendered.
pub(super) fn fallback(table: Arc<RouteTable>) -> warp::filters::BoxedFilter<(warp::reply::Response,)> {
    warp::path::full()
        .and(warp::method())
        .and_then(move |path: FullPath, method: Method| {
            let table = table.clone();
            async move {
                let rejection = match table.methods(path.as_str()) {
                    None => warp::reject::custom(NoSuchPath),
                    Some(methods) if !methods.contains(method.as_str()) => {
                        warp::reject::custom(WrongMethod(methods.into_iter().collect::<Vec<_>>().join(", ")))
                    }
                    Some(_) => warp::reject::not_found(),
                };
                Err::<warp::reply::Response, _>(rejection)
            }
        })
        .boxed()
}
