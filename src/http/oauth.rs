//! The OAuth 2.0 endpoints: token (RFC 6749 client credentials, RFC 8693 token
//! exchange, RFC 9449 DPoP), introspection (RFC 7662) and revocation (RFC 7009).
//! Clients authenticate with client_secret_basic, client_secret_post or
//! private_key_jwt (RFC 7523) — exactly one of them. Errors use the RFC 6749 §5.2 form,
//! never problem+json.

use std::collections::HashMap;

use agentidp_engine::{
    Call, ClientAuth, EngineError, Introspector, OAuthError, TokenRequest, ASSERTION_TYPE_JWT_BEARER,
};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use warp::http::header::{HeaderValue, CACHE_CONTROL, PRAGMA};
use warp::http::StatusCode;
use warp::reply::Response;

use super::problem::{oauth_error, oauth_invalid_request};
use super::route::{route, Req, Resource};
use super::{json_reply, ApiResult, Body, Ctx};

/// Its endpoints (the contract: see [`super::route`]).
pub const RESOURCE: Resource = Resource {
    routes: &[
        route!(POST "/api/v1/oauth2/token", "issueToken", Documented => token),
        route!(POST "/api/v1/oauth2/introspect", "introspectToken", Documented => introspect),
        route!(POST "/api/v1/oauth2/revoke", "revokeToken", Documented => revoke),
    ],
    openapi: include_str!("oauth.openapi.json"),
};

fn no_store(mut resp: Response) -> Response {
    resp.headers_mut().insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut().insert(PRAGMA, HeaderValue::from_static("no-cache"));
    resp
}

async fn token(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    Ok(issue(&ctx, body).await.unwrap_or_else(oauth_error))
}

async fn introspect(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    Ok(introspection(&ctx, body).await.unwrap_or_else(oauth_error))
}

async fn revoke(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    Ok(revocation(&ctx, body).await.unwrap_or_else(oauth_error))
}

/// The form body, or an `invalid_request` when the body is not a form.
fn form_of(body: &Body) -> Result<&[u8], EngineError> {
    body.form().ok_or_else(|| oauth_invalid_request("the body must be application/x-www-form-urlencoded"))
}

/// The client authentication parameters every OAuth endpoint reads.
const CLIENT_PARAMS: [&str; 4] = ["client_id", "client_secret", "client_assertion_type", "client_assertion"];
/// The token endpoint's own parameters.
const GRANT_PARAMS: [&str; 10] = [
    "grant_type",
    "scope",
    "subject_token",
    "subject_token_type",
    "actor_token",
    "actor_token_type",
    "may_act",
    "audience",
    "resource",
    "assertion",
];
/// Introspection's and revocation's own parameters.
const TOKEN_PARAMS: [&str; 2] = ["token", "token_type_hint"];

/// The form parameters this endpoint knows (`own`, and client authentication), each at
/// most once (RFC 6749 §3.1); unknown ones are ignored, repeated or not (§3.2).
fn form_params(form: &[u8], own: &[&str]) -> Result<HashMap<String, String>, EngineError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(form).map_err(|_| oauth_invalid_request("malformed form body"))?;
    let mut params = HashMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        if !own.contains(&k.as_str()) && !CLIENT_PARAMS.contains(&k.as_str()) {
            continue;
        }
        if params.insert(k.clone(), v).is_some() {
            return Err(oauth_invalid_request(format!("parameter {k:?} is repeated")));
        }
    }
    Ok(params)
}

/// `application/x-www-form-urlencoded` decoding of one Basic credential part
/// (RFC 6749 §2.3.1).
fn form_decode(part: &str) -> Option<String> {
    let plus_decoded = part.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_decoded).decode_utf8().ok().map(|s| s.into_owned())
}

fn invalid_client(description: &str) -> EngineError {
    EngineError::OAuth { error: OAuthError::InvalidClient, description: description.into() }
}

fn basic_credentials(header: &str) -> Result<(String, String), EngineError> {
    let invalid = || invalid_client("malformed HTTP Basic credentials");
    let encoded = header.get(6..).ok_or_else(invalid)?.trim();
    let decoded = STANDARD.decode(encoded).map_err(|_| invalid())?;
    let text = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (id, secret) = text.split_once(':').ok_or_else(invalid)?;
    Ok((form_decode(id).ok_or_else(invalid)?, form_decode(secret).ok_or_else(invalid)?))
}

/// The one client authentication method the request uses.
fn client_auth(authorization: Option<&str>, params: &mut HashMap<String, String>) -> Result<ClientAuth, EngineError> {
    let basic = match authorization {
        Some(h) if h.get(..6).is_some_and(|scheme| scheme.eq_ignore_ascii_case("basic ")) => {
            Some(basic_credentials(h)?)
        }
        _ => None,
    };
    let body_id = params.remove("client_id");
    let body_secret = params.remove("client_secret");
    let assertion_type = params.remove("client_assertion_type");
    let assertion = params.remove("client_assertion");
    let methods = [basic.is_some(), body_secret.is_some(), assertion.is_some() || assertion_type.is_some()];
    if methods.iter().filter(|m| **m).count() > 1 {
        return Err(oauth_invalid_request("use one client authentication method, not several"));
    }
    if let Some((id, secret)) = basic {
        if body_id.as_deref().is_some_and(|b| b != id) {
            return Err(oauth_invalid_request("client_id does not match the HTTP Basic credentials"));
        }
        return Ok(ClientAuth::Secret { client_id: id, client_secret: secret });
    }
    if let Some(secret) = body_secret {
        let client_id = body_id.ok_or_else(|| oauth_invalid_request("client_secret needs client_id"))?;
        return Ok(ClientAuth::Secret { client_id, client_secret: secret });
    }
    match (assertion_type.as_deref(), assertion) {
        (Some(ASSERTION_TYPE_JWT_BEARER), Some(assertion)) => {
            Ok(ClientAuth::Assertion { client_id: body_id, assertion })
        }
        (Some(ASSERTION_TYPE_JWT_BEARER), None) => Err(oauth_invalid_request("client_assertion is required")),
        (Some(_), _) => {
            Err(oauth_invalid_request(format!("client_assertion_type must be {ASSERTION_TYPE_JWT_BEARER}")))
        }
        (None, Some(_)) => Err(oauth_invalid_request("client_assertion_type is required")),
        // Refused by the engine wherever a client must authenticate (all but jwt-bearer).
        (None, None) => Ok(ClientAuth::None),
    }
}

/// A token request from its parts as they came over HTTP: the form body, the
/// `Authorization` header and the `DPoP` header. Pure — it reads nothing but its input —
/// so it is also the token-form fuzz target's entry (`fuzz/`).
pub fn token_request(
    form: &[u8],
    authorization: Option<&str>,
    dpop: Option<&str>,
) -> Result<TokenRequest, EngineError> {
    let mut params = form_params(form, &GRANT_PARAMS)?;
    let grant_type = params.remove("grant_type").ok_or_else(|| oauth_invalid_request("grant_type is required"))?;
    let client = client_auth(authorization, &mut params)?;
    let (audience, resource) = match (params.remove("audience"), params.remove("resource")) {
        (Some(_), Some(_)) => return Err(oauth_invalid_request("give audience or resource, not both")),
        pair => pair,
    };
    Ok(TokenRequest {
        grant_type,
        client,
        scope: params.remove("scope"),
        subject_token: params.remove("subject_token"),
        subject_token_type: params.remove("subject_token_type"),
        actor_token: params.remove("actor_token"),
        actor_token_type: params.remove("actor_token_type"),
        may_act: params.remove("may_act"),
        audience,
        resource,
        dpop: dpop.map(String::from),
        assertion: params.remove("assertion"),
    })
}

/// The client id a request names (never its secret), for the access log.
fn named_client(auth: &ClientAuth) -> Option<String> {
    match auth {
        ClientAuth::Secret { client_id, .. } | ClientAuth::Assertion { client_id: Some(client_id), .. } => {
            Some(client_id.clone())
        }
        ClientAuth::Assertion { client_id: None, assertion } => {
            let payload = assertion.split('.').nth(1)?;
            let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?;
            let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
            claims.get("iss")?.as_str().map(String::from)
        }
        ClientAuth::None => None,
    }
}

async fn issue(ctx: &Ctx, body: &Body) -> Result<Response, EngineError> {
    let request = token_request(form_of(body)?, ctx.authorization(), ctx.dpop())?;
    if let Some(client_id) = named_client(&request.client) {
        ctx.presented_as(&client_id);
    }
    let token = ctx.engine().issue_token(request, &ctx.origin()).await?;
    if let Some(quota) = token.quota {
        ctx.counted(quota);
    }
    Ok(no_store(json_reply(StatusCode::OK, &token)))
}

async fn introspection(ctx: &Ctx, body: &Body) -> Result<Response, EngineError> {
    let mut params = form_params(form_of(body)?, &TOKEN_PARAMS)?;
    let token = params.remove("token").ok_or_else(|| oauth_invalid_request("token is required"))?;
    // A protected resource authenticates as a client, or presents an access token with
    // the tokens:introspect scope.
    let bearer = ctx.authorization().is_some_and(|h| {
        let scheme = h.split(' ').next().unwrap_or_default();
        scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("dpop")
    });
    let who = if bearer {
        if CLIENT_PARAMS.iter().any(|p| params.contains_key(*p)) {
            return Err(oauth_invalid_request("use one client authentication method, not several"));
        }
        let call: Call = ctx.call().await?;
        Introspector::Caller(call)
    } else {
        let client = client_auth(ctx.authorization(), &mut params)?;
        if let Some(client_id) = named_client(&client) {
            ctx.presented_as(&client_id);
        }
        Introspector::Client(client)
    };
    let answer = ctx.engine().introspect(who, &token, &ctx.origin()).await?;
    Ok(no_store(json_reply(StatusCode::OK, &answer)))
}

async fn revocation(ctx: &Ctx, body: &Body) -> Result<Response, EngineError> {
    let mut params = form_params(form_of(body)?, &TOKEN_PARAMS)?;
    let token = params.remove("token").ok_or_else(|| oauth_invalid_request("token is required"))?;
    let client = client_auth(ctx.authorization(), &mut params)?;
    if let Some(client_id) = named_client(&client) {
        ctx.presented_as(&client_id);
    }
    ctx.engine().revoke_token(client, &token, &ctx.origin()).await?;
    Ok(no_store(StatusCode::OK.into_response()))
}

use warp::Reply as _;

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the token_form fuzz target: an Authorization header whose sixth byte falls
    /// inside a multi-byte character panicked on the scheme slice.
    #[test]
    fn a_non_ascii_authorization_header_is_an_oauth_error_not_a_panic() {
        let form = b"grant_type=client_credentials";
        for header in ["Bcll\u{fffd}ient", "\u{e9}\u{e9}\u{e9}\u{e9}", "Basic\u{e9}x"] {
            // Not Basic: no client authentication, which the engine refuses (invalid_client).
            match token_request(form, Some(header), None) {
                Err(EngineError::OAuth { .. }) | Ok(TokenRequest { client: ClientAuth::None, .. }) => {}
                other => panic!("{header:?}: {other:?}"),
            }
        }
    }
}
