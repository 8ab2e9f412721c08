//! Discovery: the RFC 8414 `/.well-known/oauth-authorization-server` document (also at
//! `/.well-known/oauth-authorization-server/<issuer path>` for an issuer with a path,
//! RFC 8414 §3), the JWKS, and the biscuit keys.
//!
//! AgentIdP is an OAuth 2.0 authorization server, not an OpenID Provider: it has no end
//! users, no authorization endpoint and issues no ID tokens, so it cannot truthfully
//! publish what OpenID Discovery requires (`authorization_endpoint`,
//! `id_token_signing_alg_values_supported`). `/.well-known/openid-configuration` is a 404
//! that says where the metadata is.

use std::convert::Infallible;

use agentidp_engine::{
    GRANT_CLIENT_CREDENTIALS, GRANT_JWT_BEARER, GRANT_TOKEN_EXCHANGE, INTROSPECT_PATH, REVOKE_PATH, TOKEN_PATH,
};
use serde_json::json;
use warp::filters::BoxedFilter;
use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::problem::Problem;
use super::{ctx, json_reply, AppState, Ctx};

/// Where the metadata document is, relative to the host.
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let wk = || warp::path(".well-known").and(warp::get());
    let oidc = wk().and(warp::path!("openid-configuration")).map(not_an_openid_provider);
    // RFC 8414 §3: the issuer's path follows the well-known segment. Served without it too,
    // for a proxy that strips the issuer's path from every request.
    let oauth = wk()
        .and(warp::path("oauth-authorization-server"))
        .and(warp::path::tail())
        .and(ctx(state.clone()))
        .and_then(|tail: warp::path::Tail, ctx: Ctx| async move {
            let issuer_path = ctx.engine().config().issuer_path();
            if tail.as_str().is_empty() || tail.as_str() == issuer_path {
                metadata(ctx).await
            } else {
                let at =
                    if issuer_path.is_empty() { String::new() } else { format!(" (or {METADATA_PATH}/{issuer_path})") };
                let detail = format!("no metadata here: this issuer's is at {METADATA_PATH}{at}");
                Ok(Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail).into_response())
            }
        });
    let jwks = wk().and(warp::path!("jwks.json")).and(ctx(state.clone())).and_then(jwks);
    let biscuit = wk().and(warp::path!("biscuit-public-key")).and(ctx(state.clone())).and_then(biscuit_key);
    let revoked = wk().and(warp::path!("biscuit-revocations")).and(ctx(state)).and_then(biscuit_revocations);
    oidc.or(oauth).unify().or(jwks).unify().or(biscuit).unify().or(revoked).unify().boxed()
}

async fn metadata(ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let engine = ctx.engine();
        let issuer = engine.config().issuer.trim_end_matches('/').to_string();
        let algs = engine.signing_algorithms()?;
        let scopes: Vec<&str> = engine.scope_catalog().map(|(s, _)| s).collect();
        let auth_methods = ["client_secret_basic", "client_secret_post", "private_key_jwt"];
        let assertion_algs = ["ES256", "ES384", "RS256", "PS256", "EdDSA"];
        let doc = json!({
            "issuer": issuer,
            "token_endpoint": format!("{issuer}{TOKEN_PATH}"),
            "introspection_endpoint": format!("{issuer}{INTROSPECT_PATH}"),
            "revocation_endpoint": format!("{issuer}{REVOKE_PATH}"),
            "jwks_uri": format!("{issuer}/.well-known/jwks.json"),
            "grant_types_supported": [GRANT_CLIENT_CREDENTIALS, GRANT_TOKEN_EXCHANGE, GRANT_JWT_BEARER],
            "token_endpoint_auth_methods_supported": auth_methods,
            "token_endpoint_auth_signing_alg_values_supported": assertion_algs,
            "introspection_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint_auth_signing_alg_values_supported": assertion_algs,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_signing_alg_values_supported": assertion_algs,
            "dpop_signing_alg_values_supported": assertion_algs,
            // REQUIRED by RFC 8414, and strict validators refuse an empty list; with no
            // authorization endpoint, the one true value is the registered "none".
            "response_types_supported": ["none"],
            "subject_types_supported": ["public"],
            "access_token_signing_alg_values_supported": algs,
            "scopes_supported": scopes,
            "service_documentation": format!("{issuer}/openapi.json"),
            "biscuit_public_key": engine.biscuit_public_key(),
            "biscuit_public_key_uri": format!("{issuer}/.well-known/biscuit-public-key"),
            "biscuit_revocations_uri": format!("{issuer}/.well-known/biscuit-revocations"),
        });
        let mut resp = json_reply(StatusCode::OK, &doc);
        resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
        Ok(resp)
    })
    .await
}

fn not_an_openid_provider() -> Response {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-an-openid-provider",
        "Not an OpenID Provider",
        format!(
            "AgentIdP is an OAuth 2.0 authorization server, not an OpenID Provider (no end users, no ID \
             tokens): its metadata is at {METADATA_PATH} (RFC 8414)"
        ),
    )
    .into_response()
}

async fn jwks(ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let jwks = ctx.engine().jwks()?;
        let mut resp = jwks.to_string().into_response();
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json"));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
        Ok(resp)
    })
    .await
}

/// The biscuit root public key: what verifies biscuit delegations offline.
async fn biscuit_key(ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let public_key = ctx.engine().biscuit_public_key();
        let doc = json!({"algorithm": "ed25519", "public_key": public_key});
        let mut resp = json_reply(StatusCode::OK, &doc);
        resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
        Ok(resp)
    })
    .await
}

/// Revoked biscuit delegations, for services that verify biscuits offline: refuse a
/// token any of whose revocation ids is listed (every attenuation of a revoked link
/// carries its authority block's id).
async fn biscuit_revocations(ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let ids = ctx.engine().revoked_biscuits().await?;
        let mut resp = json_reply(StatusCode::OK, &json!({ "revocation_ids": ids }));
        resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=5"));
        Ok(resp)
    })
    .await
}
