//! Discovery: `/.well-known/openid-configuration`, the RFC 8414
//! `/.well-known/oauth-authorization-server` document, and the JWKS.

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

use super::{ctx, json_reply, AppState, Ctx};

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let wk = || warp::path(".well-known").and(warp::get());
    let oidc = wk().and(warp::path!("openid-configuration")).and(ctx(state.clone())).and_then(metadata);
    let oauth = wk().and(warp::path!("oauth-authorization-server")).and(ctx(state.clone())).and_then(metadata);
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
            "response_types_supported": [],
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
