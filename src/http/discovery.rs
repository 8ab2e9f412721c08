//! Discovery: the RFC 8414 `/.well-known/oauth-authorization-server` document (also at
//! `/.well-known/oauth-authorization-server/<issuer path>` for an issuer with a path,
//! RFC 8414 §3), the JWKS, and the biscuit keys.
//!
//! AgentIdP is an OAuth 2.0 authorization server, not an OpenID Provider: it has no end
//! users, no authorization endpoint and issues no ID tokens, so it cannot truthfully
//! publish what OpenID Discovery requires (`authorization_endpoint`,
//! `id_token_signing_alg_values_supported`). `/.well-known/openid-configuration` is a 404
//! that says where the metadata is.

use agentidp_engine::{
    GRANT_CLIENT_CREDENTIALS, GRANT_JWT_BEARER, GRANT_TOKEN_EXCHANGE, INTROSPECT_PATH, REVOKE_PATH, TOKEN_PATH,
};
use serde_json::json;
use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::Reply;

use super::problem::Problem;
use super::route::{route, Req, Resource};
use super::{json_reply, ApiResult, Ctx};

/// Where the metadata document is, relative to the host.
pub const METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// Its endpoints (the contract: see [`super::route`]).
pub const RESOURCE: Resource = Resource {
    routes: &[
        route!(GET "/.well-known/openid-configuration", "getOpenIdConfiguration", Documented => not_an_openid_provider),
        route!(GET "/.well-known/oauth-authorization-server", "getAuthorizationServerMetadata", Documented => metadata),
        route!(tail GET "/.well-known/oauth-authorization-server/{issuer_path}", "getAuthorizationServerMetadataForPath", Documented => metadata_at_path),
        route!(GET "/.well-known/jwks.json", "getJwks", Documented => jwks),
        route!(GET "/.well-known/biscuit-public-key", "getBiscuitPublicKey", Documented => biscuit_key),
        route!(GET "/.well-known/biscuit-revocations", "getBiscuitRevocations", Documented => biscuit_revocations),
    ],
    openapi: include_str!("discovery.openapi.json"),
};

/// RFC 8414 §3: the issuer's path follows the well-known segment. Served without it too,
/// for a proxy that strips the issuer's path from every request.
async fn metadata_at_path(ctx: Ctx, req: Req) -> ApiResult {
    let issuer_path = ctx.engine().config().issuer_path();
    if req.param(0) == issuer_path {
        return metadata(ctx, req).await;
    }
    let at = if issuer_path.is_empty() { String::new() } else { format!(" (or {METADATA_PATH}/{issuer_path})") };
    let detail = format!("no metadata here: this issuer's is at {METADATA_PATH}{at}");
    Err(Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", detail))
}

async fn metadata(ctx: Ctx, _: Req) -> ApiResult {
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
}

async fn not_an_openid_provider(_: Ctx, _: Req) -> ApiResult {
    Err(Problem::new(
        StatusCode::NOT_FOUND,
        "not-an-openid-provider",
        "Not an OpenID Provider",
        format!(
            "AgentIdP is an OAuth 2.0 authorization server, not an OpenID Provider (no end users, no ID \
             tokens): its metadata is at {METADATA_PATH} (RFC 8414)"
        ),
    ))
}

async fn jwks(ctx: Ctx, _: Req) -> ApiResult {
    let jwks = ctx.engine().jwks()?;
    let mut resp = jwks.to_string().into_response();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    Ok(resp)
}

/// The biscuit root public key: what verifies biscuit delegations offline.
async fn biscuit_key(ctx: Ctx, _: Req) -> ApiResult {
    let public_key = ctx.engine().biscuit_public_key();
    let doc = json!({"algorithm": "ed25519", "public_key": public_key});
    let mut resp = json_reply(StatusCode::OK, &doc);
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    Ok(resp)
}

/// Revoked biscuit delegations, for services that verify biscuits offline: refuse a
/// token any of whose revocation ids is listed (every attenuation of a revoked link
/// carries its authority block's id).
async fn biscuit_revocations(ctx: Ctx, _: Req) -> ApiResult {
    let ids = ctx.engine().revoked_biscuits().await?;
    let mut resp = json_reply(StatusCode::OK, &json!({ "revocation_ids": ids }));
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=5"));
    Ok(resp)
}
