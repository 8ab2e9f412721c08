//! W3C DIDs (did:web): the public documents (`/agents/{id}/did.json`, the IdP's at
//! `/.well-known/did.json`), resolution (`/api/v1/dids/{did}`, public too: a DID is
//! resolved by whoever meets it), and an agent's DID and keys on the management API.

use agentidp_engine::families::dids::rules::DID_JSON;
use agentidp_engine::NewDidKey;
use warp::http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Reply;

use super::route::{route, Req, Resource};
use super::{json_reply, no_content, ApiResult, Ctx, OrgQuery};

/// Its endpoints (the contract: see [`super::route`]).
pub const RESOURCE: Resource = Resource {
    routes: &[
        route!(GET "/agents/{id}/did.json", "getAgentDidDocument", Documented => agent_doc),
        route!(GET "/.well-known/did.json", "getIdpDidDocument", Documented => idp_doc),
        route!(GET "/api/v1/dids/{did}", "resolveDid", Documented => resolve),
        route!(GET "/api/v1/agents/{id}/did", "getAgentDid", Policy("agents.get") => get),
        route!(POST "/api/v1/agents/{id}/did/keys", "addDidKey", Policy("credentials.create") => add_key),
        route!(DELETE "/api/v1/agents/{id}/did/keys/{key_id}", "removeDidKey", Policy("credentials.revoke") => remove_key),
    ],
    openapi: include_str!("dids.openapi.json"),
};

fn did_json(body: String) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(DID_JSON));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("public, max-age=60"));
    resp
}

async fn agent_doc(ctx: Ctx, req: Req) -> ApiResult {
    let id = req.id(0, "id")?;
    let (body, _) = ctx.engine().did_document(id).await?;
    Ok(did_json(body))
}

async fn idp_doc(ctx: Ctx, _: Req) -> ApiResult {
    Ok(did_json(ctx.engine().idp_did_document()?))
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

async fn resolve(ctx: Ctx, req: Req) -> ApiResult {
    let did = req.param(0);
    let accept = ctx.header("accept");
    // The DID is one path segment, percent-encoded as any (its own `%3A` as `%253A`).
    let did = percent_encoding::percent_decode_str(did).decode_utf8_lossy().into_owned();
    let resolution = ctx.engine().resolve_did(&did, accepts_json(accept)).await?;
    let status = StatusCode::from_u16(resolution.status).unwrap_or(StatusCode::OK);
    let mut resp = json_reply(status, &resolution.result);
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/did-resolution+json"));
    Ok(resp)
}

async fn get(ctx: Ctx, req: Req) -> ApiResult {
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::OK, &ctx.engine().agent_did(&call, q.org_id, id).await?))
}

async fn add_key(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let new: NewDidKey = body.json()?;
    let call = ctx.call().await?;
    Ok(json_reply(StatusCode::CREATED, &ctx.engine().add_did_key(&call, q.org_id, id, new).await?))
}

async fn remove_key(ctx: Ctx, req: Req) -> ApiResult {
    let key_id = req.param(1);
    let q: OrgQuery = req.query_as()?;
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    ctx.engine().remove_did_key(&call, q.org_id, id, key_id).await?;
    Ok(no_content())
}
