//! W3C DIDs (did:web): the public documents (`/agents/{id}/did.json`, the IdP's at
//! `/.well-known/did.json`), resolution (`/api/v1/dids/{did}`, public too: a DID is
//! resolved by whoever meets it), and an agent's DID and keys on the management API.

use std::convert::Infallible;

use agentidp_engine::families::dids::rules::DID_JSON;
use agentidp_engine::NewDidKey;
use warp::filters::BoxedFilter;
use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{body, ctx, json_reply, no_content, parse_id, parse_query, query, AppState, Body, Ctx, OrgQuery};

/// Served outside `/api/v1`: where did:web puts documents.
pub fn public(state: AppState) -> BoxedFilter<(Response,)> {
    let agent =
        warp::path!("agents" / String / "did.json").and(warp::get()).and(ctx(state.clone())).and_then(agent_doc);
    let idp = warp::path!(".well-known" / "did.json").and(warp::get()).and(ctx(state)).and_then(idp_doc);
    agent.or(idp).unify().boxed()
}

/// Under `/api/v1`.
pub fn api(state: AppState) -> BoxedFilter<(Response,)> {
    let c = || ctx(state.clone());
    let resolve = warp::path!("dids" / String)
        .and(warp::get())
        .and(c())
        .and(warp::header::optional::<String>("accept"))
        .and_then(resolve);
    let get = warp::path!("agents" / String / "did").and(warp::get()).and(c()).and(query()).and_then(get);
    let add = warp::path!("agents" / String / "did" / "keys")
        .and(warp::post())
        .and(c())
        .and(query())
        .and(body(&state))
        .and_then(add_key);
    let remove = warp::path!("agents" / String / "did" / "keys" / String)
        .and(warp::delete())
        .and(c())
        .and(query())
        .and_then(remove_key);
    resolve.or(get).unify().or(add).unify().or(remove).unify().boxed()
}

fn did_json(body: String) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(DID_JSON));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    resp
}

async fn agent_doc(id: String, ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let id = parse_id("id", &id)?;
        let (body, _) = ctx.engine().did_document(id).await?;
        Ok(did_json(body))
    })
    .await
}

async fn idp_doc(ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move { Ok(did_json(ctx.engine().idp_did_document()?)) }).await
}

/// Whether an `Accept` header admits a JSON representation of a DID document.
fn accepts_json(accept: Option<&str>) -> bool {
    let Some(accept) = accept else { return true };
    accept.split(',').any(|range| {
        let media = range.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        matches!(
            media.as_str(),
            "*/*"
                | "application/*"
                | "application/json"
                | "application/did+json"
                | "application/did-resolution+json"
                | "application/ld+json"
                | "application/did+ld+json"
        )
    })
}

async fn resolve(did: String, ctx: Ctx, accept: Option<String>) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        // The DID is one path segment, percent-encoded as any (its own `%3A` as `%253A`).
        let did = percent_encoding::percent_decode_str(&did).decode_utf8_lossy().into_owned();
        let resolution = ctx.engine().resolve_did(&did, accepts_json(accept.as_deref())).await?;
        let status = StatusCode::from_u16(resolution.status).unwrap_or(StatusCode::OK);
        let mut resp = json_reply(status, &resolution.result);
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/did-resolution+json"));
        Ok(resp)
    })
    .await
}

async fn get(id: String, ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        Ok(json_reply(StatusCode::OK, &ctx.engine().agent_did(&call, q.org_id, id).await?))
    })
    .await
}

async fn add_key(id: String, ctx: Ctx, q: String, body: Body) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let id = parse_id("id", &id)?;
        let new: NewDidKey = body.json()?;
        let call = ctx.call().await?;
        Ok(json_reply(StatusCode::CREATED, &ctx.engine().add_did_key(&call, q.org_id, id, new).await?))
    })
    .await
}

async fn remove_key(id: String, key_id: String, ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        ctx.engine().remove_did_key(&call, q.org_id, id, &key_id).await?;
        Ok(no_content())
    })
    .await
}
