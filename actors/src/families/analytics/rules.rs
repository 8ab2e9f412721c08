//! What the analytics count, and the day ranges they are read over.
//!
//! Every count is kept per (organization, agent, UTC day, metric). The agent is the one
//! the event is about: the agent a token was issued to (or refused), the agent that made a
//! management call, the agent created or deleted, the agent whose credential changed.

use std::collections::BTreeMap;

use serde::Serialize;
use time::{Date, Month};
use uuid::Uuid;

use crate::kernel::error::{EngineError, Result};

/// A UTC day: days since 1970-01-01.
pub type Day = i64;

const MS_PER_DAY: i64 = 86_400_000;

/// The longest range one query may span, in days (both ends included).
pub const MAX_RANGE_DAYS: i64 = 366;
/// The range a query without `from` spans, ending at `to`.
pub const DEFAULT_RANGE_DAYS: i64 = 30;

/// The UTC day of a unix-millisecond instant.
pub fn day_of(ms: i64) -> Day {
    ms.div_euclid(MS_PER_DAY)
}

/// One counted metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Access tokens issued (client credentials and token exchange).
    TokensIssued,
    /// Token requests of an authenticated client that got no token (any reason,
    /// quota and rate limits included).
    TokenRequestsRefused,
    /// Management API calls admitted (counted against the daily quota).
    ApiCalls,
    /// Token requests and management calls refused by the daily quota.
    QuotaRejections,
    /// Token requests refused by the client's token rate.
    RateLimitRejections,
    AgentsCreated,
    AgentsDeleted,
    CredentialsCreated,
    CredentialsRotated,
    CredentialsRevoked,
    /// Delegation links made (counted for the delegator).
    DelegationsCreated,
    /// Delegation tokens found valid by `verify-delegation` (counted for the delegatee).
    DelegationsVerified,
    /// Delegation links revoked, cascades included (counted for each link's delegator).
    DelegationsRevoked,
    /// Users created (counted for the creating agent).
    UsersCreated,
    /// Successful sign-ins of people (counted for the user).
    SignIns,
    /// Failed sign-ins to a known user (counted for the user).
    SignInsFailed,
}

impl Metric {
    /// Every metric, in the order summaries list them.
    pub const ALL: [Metric; 16] = [
        Metric::TokensIssued,
        Metric::TokenRequestsRefused,
        Metric::ApiCalls,
        Metric::QuotaRejections,
        Metric::RateLimitRejections,
        Metric::AgentsCreated,
        Metric::AgentsDeleted,
        Metric::CredentialsCreated,
        Metric::CredentialsRotated,
        Metric::CredentialsRevoked,
        Metric::DelegationsCreated,
        Metric::DelegationsVerified,
        Metric::DelegationsRevoked,
        Metric::UsersCreated,
        Metric::SignIns,
        Metric::SignInsFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Metric::TokensIssued => "tokens_issued",
            Metric::TokenRequestsRefused => "token_requests_refused",
            Metric::ApiCalls => "api_calls",
            Metric::QuotaRejections => "quota_rejections",
            Metric::RateLimitRejections => "rate_limit_rejections",
            Metric::AgentsCreated => "agents_created",
            Metric::AgentsDeleted => "agents_deleted",
            Metric::CredentialsCreated => "credentials_created",
            Metric::CredentialsRotated => "credentials_rotated",
            Metric::CredentialsRevoked => "credentials_revoked",
            Metric::DelegationsCreated => "delegations_created",
            Metric::DelegationsVerified => "delegations_verified",
            Metric::DelegationsRevoked => "delegations_revoked",
            Metric::UsersCreated => "users_created",
            Metric::SignIns => "sign_ins",
            Metric::SignInsFailed => "sign_ins_failed",
        }
    }

    pub fn parse(s: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The names, comma-separated, for error messages and docs.
    pub fn names() -> String {
        Metric::ALL.map(Metric::as_str).join(", ")
    }
}

/// An inclusive range of UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayRange {
    pub from: Day,
    pub to: Day,
}

impl DayRange {
    /// The range a query names: `to` defaults to `today`, `from` to the
    /// [`DEFAULT_RANGE_DAYS`] ending at `to`. Malformed dates, `from` after `to` and
    /// ranges over [`MAX_RANGE_DAYS`] are `Invalid`, naming the field.
    pub fn parse(from: Option<&str>, to: Option<&str>, today: Day) -> Result<DayRange> {
        let to = to.map(|t| parse_date("to", t)).transpose()?.unwrap_or(today);
        let from = from.map(|f| parse_date("from", f)).transpose()?.unwrap_or(to - (DEFAULT_RANGE_DAYS - 1));
        if from > to {
            return Err(EngineError::invalid("from", "must not be after to"));
        }
        if to - from + 1 > MAX_RANGE_DAYS {
            return Err(EngineError::invalid("to", format!("a range spans at most {MAX_RANGE_DAYS} days")));
        }
        Ok(DayRange { from, to })
    }

    /// Every day of the range, in order.
    pub fn days(self) -> impl Iterator<Item = Day> {
        self.from..=self.to
    }
}

/// Totals per metric over a range, of an organization or one of its agents.
#[derive(Debug, Clone, Serialize)]
pub struct AnalyticsSummary {
    pub org_id: Uuid,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_id: Option<Uuid>,
    /// First day, `YYYY-MM-DD` (UTC).
    pub from: String,
    /// Last day, included.
    pub to: String,
    /// Every metric, zero when nothing was counted.
    pub totals: BTreeMap<&'static str, u64>,
}

/// One metric's daily counts over a range, every day present.
#[derive(Debug, Clone, Serialize)]
pub struct AnalyticsSeries {
    pub org_id: Uuid,
    pub metric: &'static str,
    pub from: String,
    pub to: String,
    pub points: Vec<DayCount>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DayCount {
    /// `YYYY-MM-DD` (UTC).
    pub day: String,
    pub count: u64,
}

/// A `YYYY-MM-DD` date as a [`Day`].
fn parse_date(field: &'static str, text: &str) -> Result<Day> {
    let bad = || EngineError::invalid(field, format!("{text:?} is not a date (YYYY-MM-DD)"));
    let mut parts = text.split('-');
    let (Some(y), Some(m), Some(d), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if y.len() != 4 || m.len() != 2 || d.len() != 2 || !text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return Err(bad());
    }
    let (y, m, d): (i32, u8, u8) =
        (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    let month = Month::try_from(m).map_err(|_| bad())?;
    let date = Date::from_calendar_date(y, month, d).map_err(|_| bad())?;
    Ok(i64::from(date.to_julian_day() - EPOCH_JULIAN_DAY))
}

/// Julian day number of 1970-01-01.
const EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// A [`Day`] as `YYYY-MM-DD`.
pub fn format_day(day: Day) -> String {
    match i32::try_from(day + i64::from(EPOCH_JULIAN_DAY)).ok().and_then(|j| Date::from_julian_day(j).ok()) {
        Some(date) => format!("{:04}-{:02}-{:02}", date.year(), u8::from(date.month()), date.day()),
        None => day.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_and_bad_ranges_name_their_field() {
        assert_eq!(parse_date("from", "1970-01-01").unwrap(), 0);
        assert_eq!(parse_date("from", "2026-12-02").unwrap(), day_of(1_796_169_600_000));
        assert_eq!(format_day(parse_date("from", "2024-02-29").unwrap()), "2024-02-29");
        for bad in ["2026-02-30", "2026-13-01", "26-01-01", "2026-1-01", "2026-01-01T00:00:00Z", "", "+026-01-01"] {
            assert!(parse_date("from", bad).is_err(), "{bad}");
        }
        let today = parse_date("to", "2026-12-02").unwrap();
        assert_eq!(DayRange::parse(None, None, today).unwrap(), DayRange { from: today - 29, to: today });
        let field = |r: Result<DayRange>| match r {
            Err(EngineError::Invalid { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(DayRange::parse(Some("2026-12-03"), Some("2026-12-02"), today)), Some("from"));
        assert_eq!(field(DayRange::parse(Some("2025-01-01"), Some("2026-01-02"), today)), Some("to"));
        assert_eq!(field(DayRange::parse(Some("nope"), None, today)), Some("from"));
        assert!(DayRange::parse(Some("2025-01-01"), Some("2026-01-01"), today).is_ok(), "366 days");
    }

    #[test]
    fn metric_names_parse_back() {
        for m in Metric::ALL {
            assert_eq!(Metric::parse(m.as_str()), Some(m));
        }
        assert_eq!(Metric::parse("tokens"), None);
    }
}
