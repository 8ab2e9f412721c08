//! `POST /api/v1/oauth2/token`: RFC 6749 client credentials, with client_secret_basic
//! or client_secret_post. Errors use the RFC 6749 §5.2 form, never problem+json.

use std::convert::Infallible;

use agentidp_engine::{EngineError, OAuthError, TokenRequest};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use warp::filters::BoxedFilter;
use warp::http::header::{HeaderValue, CACHE_CONTROL, PRAGMA};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::problem::{oauth_error, oauth_invalid_request};
use super::{body, ctx, json_reply, AppState, Body, Ctx};

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    warp::path!("oauth2" / "token")
        .and(warp::post())
        .and(ctx(state))
        .and(body())
        .and_then(token)
        .boxed()
}

async fn token(ctx: Ctx, body: Body) -> Result<Response, Infallible> {
    ctx.respond("/api/v1/oauth2/token", |ctx| async move {
        Ok(match issue(&ctx, &body).await {
            Ok(resp) => resp,
            Err(e) => oauth_error(e),
        })
    })
    .await
}

/// `application/x-www-form-urlencoded` decoding of one Basic credential part
/// (RFC 6749 §2.3.1).
fn form_decode(part: &str) -> Option<String> {
    let plus_decoded = part.replace('+', " ");
    percent_encoding::percent_decode_str(&plus_decoded)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

fn basic_credentials(header: &str) -> Result<(String, String), EngineError> {
    let invalid = || EngineError::OAuth {
        error: OAuthError::InvalidClient,
        description: "malformed HTTP Basic credentials".into(),
    };
    let encoded = header.get(6..).ok_or_else(invalid)?.trim();
    let decoded = STANDARD.decode(encoded).map_err(|_| invalid())?;
    let text = String::from_utf8(decoded).map_err(|_| invalid())?;
    let (id, secret) = text.split_once(':').ok_or_else(invalid)?;
    Ok((
        form_decode(id).ok_or_else(invalid)?,
        form_decode(secret).ok_or_else(invalid)?,
    ))
}

async fn issue(ctx: &Ctx, body: &Body) -> Result<Response, EngineError> {
    let form = body.form().ok_or_else(|| {
        oauth_invalid_request("the body must be application/x-www-form-urlencoded")
    })?;
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(form)
        .map_err(|_| oauth_invalid_request("malformed form body"))?;
    let mut params = std::collections::HashMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        if params.insert(k.clone(), v).is_some() {
            return Err(oauth_invalid_request(format!(
                "parameter {k:?} is repeated"
            )));
        }
    }
    let grant_type = params
        .remove("grant_type")
        .ok_or_else(|| oauth_invalid_request("grant_type is required"))?;
    let basic = match ctx.authorization() {
        Some(h) if h.len() >= 6 && h[..6].eq_ignore_ascii_case("basic ") => {
            Some(basic_credentials(h)?)
        }
        _ => None,
    };
    let body_id = params.remove("client_id");
    let body_secret = params.remove("client_secret");
    let (client_id, client_secret) = match (basic, body_id, body_secret) {
        (Some(_), _, Some(_)) => {
            return Err(oauth_invalid_request(
                "use one client authentication method, not two",
            ));
        }
        (Some((id, _)), Some(body_id), None) if body_id != id => {
            return Err(oauth_invalid_request(
                "client_id does not match the HTTP Basic credentials",
            ));
        }
        (Some((id, secret)), _, None) => (id, secret),
        (None, Some(id), Some(secret)) => (id, secret),
        (None, _, _) => {
            return Err(EngineError::OAuth {
                error: OAuthError::InvalidClient,
                description: "client authentication is required".into(),
            })
        }
    };
    let request = TokenRequest {
        grant_type,
        client_id,
        client_secret,
        scope: params.remove("scope"),
    };
    let token = ctx
        .engine()
        .issue_token(request, Some(ctx.request_id.clone()))
        .await?;
    let mut resp = json_reply(StatusCode::OK, &token);
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp.headers_mut()
        .insert(PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(resp)
}
