//! `/api/v1/audit-events`: listing with filters and cursor pagination, one event, and
//! verification of the organization's hash chain.

use std::convert::Infallible;

use agentidp_engine::kernel::model::rfc3339;
use agentidp_engine::{AuditQuery, Outcome, PageRequest};
use uuid::Uuid;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::problem::Problem;
use super::{ctx, json_reply, parse_id, parse_query, query, AppState, Ctx, OrgQuery};

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let c = || ctx(state.clone());
    let list = warp::path!("audit-events").and(warp::get()).and(c()).and(query()).and_then(list);
    let verify = warp::path!("audit-events" / "verify").and(warp::get()).and(c()).and(query()).and_then(verify);
    let get = warp::path!("audit-events" / String).and(warp::get()).and(c()).and_then(get);
    list.or(verify).unify().or(get).unify().boxed()
}

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

async fn list(ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let p: AuditParams = parse_query(&q)?;
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
    })
    .await
}

async fn verify(ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: OrgQuery = parse_query(&q)?;
        let call = ctx.call().await?;
        let report = ctx.engine().verify_audit(&call, q.org_id).await?;
        Ok(json_reply(StatusCode::OK, &report))
    })
    .await
}

async fn get(id: String, ctx: Ctx) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let id = parse_id("id", &id)?;
        let call = ctx.call().await?;
        let event = ctx.engine().get_audit(&call, id).await?;
        Ok(json_reply(StatusCode::OK, &event))
    })
    .await
}
