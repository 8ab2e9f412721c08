//! `/api/v1/audit-events`: listing with filters and cursor pagination, one event,
//! verification of the organization's hash chain, and its signed checkpoints; and each
//! organization's audit retention.

use agentidp_engine::kernel::model::rfc3339;
use agentidp_engine::{AuditQuery, Outcome, PageRequest};
use uuid::Uuid;
use warp::http::StatusCode;

use super::problem::Problem;
use super::route::{route, Req, Resource};
use super::{json_reply, ApiResult, Ctx, ListQuery};

/// Its endpoints (the contract: see [`super::route`]).
pub const RESOURCE: Resource = Resource {
    routes: &[
        route!(GET "/api/v1/audit-events", "listAuditEvents", Policy("audit.read") => list),
        route!(GET "/api/v1/audit-events/verify", "verifyAuditChain", Policy("audit.verify") => verify),
        route!(GET "/api/v1/audit-events/checkpoints", "listAuditCheckpoints", Policy("audit.read") => checkpoints),
        route!(GET "/api/v1/audit-events/{id}", "getAuditEvent", Policy("audit.read") => get),
        route!(GET "/api/v1/organizations/{id}/audit-retention", "getAuditRetention", Policy("audit.read") => retention),
        route!(PUT "/api/v1/organizations/{id}/audit-retention", "setAuditRetention", Policy("audit.retention") => set_retention),
        route!(DELETE "/api/v1/organizations/{id}/audit-retention", "clearAuditRetention", Policy("audit.retention") => clear_retention),
    ],
    openapi: include_str!("audit.openapi.json"),
};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditParams {
    org_id: Option<Uuid>,
    agent_id: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

fn time_param(field: &str, value: Option<String>) -> Result<Option<i64>, Problem> {
    value
        .map(|v| rfc3339::parse(&v).ok_or_else(|| Problem::invalid_field(field, "expected an RFC 3339 timestamp")))
        .transpose()
}

async fn list(ctx: Ctx, req: Req) -> ApiResult {
    let p: AuditParams = req.query_as()?;
    let outcome = p
        .outcome
        .map(|o| Outcome::parse(&o).ok_or_else(|| Problem::invalid_field("outcome", "success or failure")))
        .transpose()?;
    let query = AuditQuery {
        org_id: p.org_id,
        agent_id: p.agent_id,
        action: p.action,
        outcome,
        since: time_param("since", p.since)?,
        until: time_param("until", p.until)?,
        page: PageRequest { cursor: p.cursor, limit: p.limit },
    };
    let call = ctx.call().await?;
    let page = ctx.engine().list_audit(&call, query).await?;
    Ok(json_reply(StatusCode::OK, &page))
}

/// `verify`'s parameters: whose chain, and whether to walk it whole.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct VerifyQuery {
    org_id: Option<Uuid>,
    full: Option<bool>,
}

async fn verify(ctx: Ctx, req: Req) -> ApiResult {
    let q: VerifyQuery = req.query_as()?;
    let call = ctx.call().await?;
    let report = ctx.engine().verify_audit(&call, q.org_id, q.full.unwrap_or(false)).await?;
    Ok(json_reply(StatusCode::OK, &report))
}

async fn checkpoints(ctx: Ctx, req: Req) -> ApiResult {
    let q: ListQuery = req.query_as()?;
    let call = ctx.call().await?;
    let page = ctx.engine().audit_checkpoints(&call, q.org_id, q.page()).await?;
    Ok(json_reply(StatusCode::OK, &page))
}

async fn get(ctx: Ctx, req: Req) -> ApiResult {
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    let event = ctx.engine().get_audit(&call, id).await?;
    Ok(json_reply(StatusCode::OK, &event))
}

async fn retention(ctx: Ctx, req: Req) -> ApiResult {
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    let retention = ctx.engine().audit_retention(&call, id).await?;
    Ok(json_reply(StatusCode::OK, &retention))
}

/// `PUT …/audit-retention`: the seconds events stay in the store, or `null` for good
/// (required: a missing `seconds` is not a `null` one).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RetentionBody {
    #[serde(default, deserialize_with = "present")]
    seconds: Option<Option<u64>>,
}

/// `seconds` as given: a whole number (written `3600` or `3600.0`: JSON does not tell
/// them apart) or `null`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<u64>>, D::Error> {
    let number = <Option<serde_json::Number> as serde::Deserialize>::deserialize(d)?;
    let whole = |n: &serde_json::Number| {
        n.as_u64().or_else(|| n.as_f64().filter(|f| f.fract() == 0.0 && (0.0..1e19).contains(f)).map(|f| f as u64))
    };
    match number {
        None => Ok(Some(None)),
        Some(n) => whole(&n)
            .map(|secs| Some(Some(secs)))
            .ok_or_else(|| serde::de::Error::custom("seconds must be a whole number of seconds, or null")),
    }
}

async fn set_retention(ctx: Ctx, req: Req) -> ApiResult {
    let body = req.body();
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    let RetentionBody { seconds } = body.json()?;
    let seconds = seconds.ok_or_else(|| Problem::invalid_field("seconds", "required: a number of seconds, or null"))?;
    let retention = ctx.engine().set_audit_retention(&call, id, Some(seconds)).await?;
    Ok(json_reply(StatusCode::OK, &retention))
}

async fn clear_retention(ctx: Ctx, req: Req) -> ApiResult {
    let id = req.id(0, "id")?;
    let call = ctx.call().await?;
    let retention = ctx.engine().set_audit_retention(&call, id, None).await?;
    Ok(json_reply(StatusCode::OK, &retention))
}
