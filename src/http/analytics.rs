//! `/api/v1/analytics`: usage totals, one metric's daily series, one agent's totals.

use std::convert::Infallible;

use agentidp_engine::AnalyticsQuery;
use uuid::Uuid;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::Filter;

use super::{ctx, json_reply, parse_id, parse_query, query, AppState, Ctx};

pub fn routes(state: AppState) -> BoxedFilter<(Response,)> {
    let c = || ctx(state.clone());
    let summary = warp::path!("analytics" / "summary").and(warp::get()).and(c()).and(query()).and_then(summary);
    let series = warp::path!("analytics" / "timeseries").and(warp::get()).and(c()).and(query()).and_then(timeseries);
    let agent = warp::path!("analytics" / "agents" / String).and(warp::get()).and(c()).and(query()).and_then(agent);
    summary.or(series).unify().or(agent).unify().boxed()
}

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

async fn summary(ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let p: RangeParams = parse_query(&q)?;
        let call = ctx.call().await?;
        let summary = ctx.engine().analytics_summary(&call, p.into()).await?;
        Ok(json_reply(StatusCode::OK, &summary))
    })
    .await
}

async fn timeseries(ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let p: SeriesParams = parse_query(&q)?;
        let call = ctx.call().await?;
        let query = AnalyticsQuery { org_id: p.org_id, from: p.from, to: p.to };
        let series = ctx.engine().analytics_timeseries(&call, query, p.metric.as_deref()).await?;
        Ok(json_reply(StatusCode::OK, &series))
    })
    .await
}

async fn agent(id: String, ctx: Ctx, q: String) -> Result<Response, Infallible> {
    ctx.respond(|ctx| async move {
        let id = parse_id("id", &id)?;
        let p: RangeParams = parse_query(&q)?;
        let call = ctx.call().await?;
        let summary = ctx.engine().agent_analytics(&call, p.into(), id).await?;
        Ok(json_reply(StatusCode::OK, &summary))
    })
    .await
}
