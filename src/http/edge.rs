//! What every request passes before any route, and what answers when no route does:
//! one `Authorization` (and `DPoP`) header at most, a head and a URI of bounded size, and
//! for an unmatched request a 404 — or a 405 with `Allow` when the path exists with other
//! methods (which paths take which methods is the route table's: [`super::route`]).

use warp::filters::path::FullPath;
use warp::http::header::{HeaderMap, AUTHORIZATION};
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
