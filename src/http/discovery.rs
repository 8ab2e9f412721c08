//! Discovery: `/.well-known/openid-configuration`, the RFC 8414
//! `/.well-known/oauth-authorization-server` document, and the JWKS.

use std::convert::Infallible;

use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{ctx, json_reply, AppState, Ctx};

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let wk = || warp::path(".well-known");
    let oidc = wk()
        .and(warp::path!("openid-configuration"))
        .and(ctx(state.clone()))
        .and_then(metadata);
    let oauth = wk()
        .and(warp::path!("oauth-authorization-server"))
        .and(ctx(state.clone()))
        .and_then(metadata);
    let jwks = wk()
        .and(warp::path!("jwks.json"))
        .and(ctx(state))
        .and_then(jwks);
    oidc.or(oauth).unify().or(jwks).unify().boxed()
}

async fn metadata(ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond("/.well-known/metadata", |ctx| async move {
        let engine = ctx.engine();
        let issuer = engine.config().issuer.trim_end_matches('/').to_string();
        let algs = engine.signing_algorithms()?;
        let scopes: Vec<&str> = engine.scope_catalog().map(|(s, _)| s).collect();
        let doc = json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}/api/v1/oauth2/token"),
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "grant_types_supported": ["client_credentials"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "response_types_supported": [],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": algs,
            "access_token_signing_alg_values_supported": algs,
            "scopes_supported": scopes,
            "service_documentation": format!("{issuer}/openapi.json"),
        });
        let mut resp = json_reply(StatusCode::OK, &doc);
        resp.headers_mut().insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=300"),
        );
        Ok(resp)
    })
    .await
}

async fn jwks(ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond("/.well-known/jwks.json", |ctx| async move {
        let jwks = ctx.engine().jwks()?;
        let mut resp = jwks.to_string().into_response();
        let h = resp.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/jwk-set+json"),
        );
        h.insert(
            CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=60"),
        );
        Ok(resp)
    })
    .await
}
