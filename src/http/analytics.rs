//! `/api/v1/analytics`: usage totals, one metric's daily series, one agent's totals.

use agentidp_engine::AnalyticsQuery;
use uuid::Uuid;
use warp::http::StatusCode;

use super::route::{route, Req, Resource};
use super::{json_reply, ApiResult, Ctx};

/// Its endpoints (the contract: see [`super::route`]).
pub const RESOURCE: Resource = Resource {
    routes: &[
        route!(GET "/api/v1/analytics/summary", "getAnalyticsSummary", Policy("analytics.read") => summary),
        route!(GET "/api/v1/analytics/timeseries", "getAnalyticsTimeseries", Policy("analytics.read") => timeseries),
        route!(GET "/api/v1/analytics/agents/{id}", "getAgentAnalytics", Policy("analytics.read") => agent),
    ],
    openapi: include_str!("analytics.openapi.json"),
};

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeParams {
    org_id: Option<Uuid>,
    from: Option<String>,
    to: Option<String>,
}

impl From<RangeParams> for AnalyticsQuery {
    fn from(p: RangeParams) -> Self {
        AnalyticsQuery { org_id: p.org_id, from: p.from, to: p.to }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesParams {
    org_id: Option<Uuid>,
    metric: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

async fn summary(ctx: Ctx, req: Req) -> ApiResult {
    let p: RangeParams = req.query_as()?;
    let call = ctx.call().await?;
    let summary = ctx.engine().analytics_summary(&call, p.into()).await?;
    Ok(json_reply(StatusCode::OK, &summary))
}

async fn timeseries(ctx: Ctx, req: Req) -> ApiResult {
    let p: SeriesParams = req.query_as()?;
    let call = ctx.call().await?;
    let query = AnalyticsQuery { org_id: p.org_id, from: p.from, to: p.to };
    let series = ctx.engine().analytics_timeseries(&call, query, p.metric.as_deref()).await?;
    Ok(json_reply(StatusCode::OK, &series))
}

async fn agent(ctx: Ctx, req: Req) -> ApiResult {
    let id = req.id(0, "id")?;
    let p: RangeParams = req.query_as()?;
    let call = ctx.call().await?;
    let summary = ctx.engine().agent_analytics(&call, p.into(), id).await?;
    Ok(json_reply(StatusCode::OK, &summary))
}
