//! `/api/v1/compliance`: the organization's compliance report (JSON, or CSV with
//! `?format=csv`) and the findings of one agent.

use agentidp_engine::families::compliance::rules::ComplianceReport;
use uuid::Uuid;
use warp::http::header::{HeaderValue, CONTENT_TYPE};
use warp::http::StatusCode;
use warp::Reply;

use super::problem::Problem;
use super::route::{route, Req, Resource};
use super::{json_reply, ApiResult, Ctx, OrgQuery};

/// Its endpoints (the contract: see [`super::route`]).
pub const RESOURCE: Resource = Resource {
    routes: &[
        route!(GET "/api/v1/compliance/report", "getComplianceReport", Policy("compliance.read") => report),
        route!(GET "/api/v1/compliance/agents/{id}", "getAgentCompliance", Policy("compliance.read") => agent),
    ],
    openapi: include_str!("compliance.openapi.json"),
};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    org_id: Option<Uuid>,
    format: Option<String>,
}

async fn report(ctx: Ctx, req: Req) -> ApiResult {
    let q: ReportQuery = req.query_as()?;
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
}

async fn agent(ctx: Ctx, req: Req) -> ApiResult {
    let id = req.id(0, "id")?;
    let q: OrgQuery = req.query_as()?;
    let call = ctx.call().await?;
    let findings = ctx.engine().compliance_agent(&call, q.org_id, id).await?;
    Ok(json_reply(StatusCode::OK, &findings))
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
