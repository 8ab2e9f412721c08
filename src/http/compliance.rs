//! `/api/v1/compliance`: the organization's compliance report (JSON, or CSV with
//! `?format=csv`) and the findings of one agent.

use std::convert::Infallible;

use agentidp_engine::families::compliance::rules::ComplianceReport;
use uuid::Uuid;
use warp::filters::BoxedFilter;
use warp::http::header::{HeaderValue, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::problem::Problem;
use super::{ctx, json_reply, parse_id, parse_query, query, AppState, Ctx, OrgQuery};

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let c = || ctx(state.clone());
    let report = warp::path!("compliance" / "report").and(warp::get()).and(c()).and(query()).and_then(report);
    let agent = warp::path!("compliance" / "agents" / String).and(warp::get()).and(c()).and(query()).and_then(agent);
    report.or(agent).unify().boxed()
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    org_id: Option<Uuid>,
    format: Option<String>,
}

async fn report(ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let q: ReportQuery = parse_query(&q)?;
        let csv = match q.format.as_deref() {
            None | Some("json") => false,
            Some("csv") => true,
            Some(_) => return Err(Problem::invalid_field("format", "json or csv")),
        };
        let call = ctx.call().await?;
        let report = ctx.engine().compliance_report(&call, q.org_id).await?;
        if !csv {
            return Ok(json_reply(StatusCode::OK, &report));
        }
        let mut resp = as_csv(&report).into_response();
        resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/csv; charset=utf-8"));
        resp.headers_mut().insert("x-compliance-score", HeaderValue::from(report.score));
        Ok(resp)
    })
    .await
}

async fn agent(id: String, ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let id = parse_id("id", &id)?;
        let q: OrgQuery = parse_query(&q)?;
        let call = ctx.call().await?;
        let findings = ctx.engine().compliance_agent(&call, q.org_id, id).await?;
        Ok(json_reply(StatusCode::OK, &findings))
    })
    .await
}

/// One row per finding and agent concerned (a finding about no agent: one row naming its
/// resources); RFC 4180 quoting.
fn as_csv(report: &ComplianceReport) -> String {
    let field = |s: &str| {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    };
    let mut out = String::from("finding,severity,title,agent_id,resources,remediation\r\n");
    for f in &report.findings {
        let row = |agent: &str, resources: &str| {
            [f.id.as_str(), f.severity.as_str(), &f.title, agent, resources, &f.remediation]
                .iter()
                .map(|s| field(s))
                .collect::<Vec<_>>()
                .join(",")
                + "\r\n"
        };
        if f.agents.is_empty() {
            out.push_str(&row("", &f.resources.join(" ")));
        }
        for agent in &f.agents {
            out.push_str(&row(&agent.to_string(), ""));
        }
    }
    out
}
