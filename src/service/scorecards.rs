//! Monthly scorecards (PRODUCT.md, "Metrics and crew performance"): an open month is scored
//! live; closing freezes its rows as they stand, so nothing done later alters it; reopening
//! is an admin's audited act.

use super::reports::{area_set, require_reader, score_period};
use crate::db::scorecards as repo;
use crate::db::{write_transaction, DbConnection};
use crate::domain::reports::Month;
use crate::domain::scoring::{CrewScore, ScoringConfig};
use crate::domain::values::limits;
use crate::domain::{Actor, Role};
use crate::errors::AppError;
use crate::errors::ProblemCode;
use crate::service::sla::SlaContext;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// A month's scorecard.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Scorecard {
    /// `YYYY-MM`, a calendar month in Asia/Shanghai.
    pub period: String,
    /// open (computed live) | closed (the frozen snapshot)
    pub status: String,
    pub closed_at: Option<DateTime<Utc>>,
    pub closed_by: Option<String>,
    pub rows: Vec<CrewScore>,
}

/// A frozen row: the score as it stood, with the crew's home area for scoping reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct FrozenRow {
    home_area: Option<String>,
    row: CrewScore,
}

fn month(period: &str) -> Result<Month, AppError> {
    Month::parse(period).ok_or(AppError::BadRequest {
        code: ProblemCode::InvalidPeriod,
        detail: "the period is a month, YYYY-MM".into(),
    })
}

/// Keeps the rows of crews whose home area the caller sees, ranked 1..n again.
fn scoped(
    conn: &mut DbConnection,
    actor: &Actor,
    rows: Vec<(Option<String>, CrewScore)>,
) -> Result<Vec<CrewScore>, AppError> {
    let areas: Option<HashSet<String>> =
        area_set(conn, actor, None)?.map(|v| v.into_iter().collect());
    Ok(rows
        .into_iter()
        .filter(|(home, _)| match &areas {
            None => true,
            Some(set) => home.as_ref().is_some_and(|h| set.contains(h)),
        })
        .map(|(_, r)| r)
        .enumerate()
        .map(|(i, mut r)| {
            r.rank = i as i64 + 1;
            r
        })
        .collect())
}

fn read(
    conn: &mut DbConnection,
    actor: &Actor,
    m: Month,
    (cfg, ctx): (&ScoringConfig, &SlaContext),
) -> Result<Scorecard, AppError> {
    let stored = repo::find(conn, &m.to_string())?.filter(|r| r.status == "closed");
    let (rows, closed_at, closed_by) = match stored {
        Some(row) => {
            let frozen: Vec<FrozenRow> =
                serde_json::from_str(&row.rows).map_err(|e| AppError::internal(e.to_string()))?;
            (
                frozen.into_iter().map(|f| (f.home_area, f.row)).collect(),
                row.closed_at.map(|t| t.and_utc()),
                row.closed_by,
            )
        }
        None => (
            score_period(conn, (m.start().naive_utc(), m.end().naive_utc()), cfg, ctx)?,
            None,
            None,
        ),
    };
    Ok(Scorecard {
        period: m.to_string(),
        status: if closed_at.is_some() {
            "closed"
        } else {
            "open"
        }
        .to_owned(),
        closed_at,
        closed_by,
        rows: scoped(conn, actor, rows)?,
    })
}

/// `GET /scorecards/{period}`.
pub fn get(
    conn: &mut DbConnection,
    actor: &Actor,
    period: &str,
    (cfg, ctx): (&ScoringConfig, &SlaContext),
) -> Result<Scorecard, AppError> {
    require_reader(actor)?;
    read(conn, actor, month(period)?, (cfg, ctx))
}

/// Closes a month that has ended: admin, or a supervisor without an area scope.
pub fn close(
    conn: &mut DbConnection,
    actor: &Actor,
    period: &str,
    (cfg, ctx): (&ScoringConfig, &SlaContext),
    now: DateTime<Utc>,
) -> Result<Scorecard, AppError> {
    require_reader(actor)?;
    if actor.role != Role::Admin && !actor.area_codes.is_empty() {
        return Err(AppError::forbidden(
            "closing a month is deployment-wide: a supervisor scoped to areas may not",
        ));
    }
    let m = month(period)?;
    if now < m.end() {
        return Err(AppError::Conflict {
            code: ProblemCode::PeriodNotEnded,
            detail: format!("{m} has not ended yet"),
            allowed_actions: None,
        });
    }
    write_transaction(conn, |conn| {
        // the frozen rows are read from one snapshot, as reports are
        crate::db::repeatable_read(conn)?;
        let period = m.to_string();
        let locked = repo::lock_period(conn, &period, now.naive_utc())?;
        if locked.status == "closed" {
            return Err(AppError::Conflict {
                code: ProblemCode::AlreadyClosed,
                detail: format!("{period} is closed already"),
                allowed_actions: None,
            });
        }
        let pending = repo::pending_appeals(conn, &period)?;
        if pending > 0 {
            return Err(AppError::Conflict {
                code: ProblemCode::AppealsPending,
                detail: format!("{pending} appeal(s) on {period} wait for a decision"),
                allowed_actions: None,
            });
        }
        let rows: Vec<FrozenRow> =
            score_period(conn, (m.start().naive_utc(), m.end().naive_utc()), cfg, ctx)?
                .into_iter()
                .map(|(home_area, row)| FrozenRow { home_area, row })
                .collect();
        let text = serde_json::to_string(&rows).map_err(|e| AppError::internal(e.to_string()))?;
        repo::close(conn, &period, &text, &actor.id, now.naive_utc())?;
        repo::audit(conn, &period, "close", &actor.id, None, now.naive_utc())?;
        read(conn, actor, m, (cfg, ctx))
    })
}

/// Reopens a closed month (admin), audited with the reason.
pub fn reopen(
    conn: &mut DbConnection,
    actor: &Actor,
    period: &str,
    reason: Result<String, AppError>,
    (cfg, ctx): (&ScoringConfig, &SlaContext),
    now: DateTime<Utc>,
) -> Result<Scorecard, AppError> {
    if actor.role != Role::Admin {
        return Err(AppError::forbidden(format!(
            "a {} may not reopen a month",
            actor.role
        )));
    }
    let m = month(period)?;
    write_transaction(conn, |conn| {
        let period = m.to_string();
        let locked = repo::lock_period(conn, &period, now.naive_utc())?;
        if locked.status != "closed" {
            return Err(AppError::Conflict {
                code: ProblemCode::NotClosed,
                detail: format!("{period} is not closed"),
                allowed_actions: None,
            });
        }
        let reason = reason?;
        let trimmed = reason.trim();
        if trimmed.is_empty() || trimmed.chars().count() > limits::REASON {
            return Err(AppError::invalid(
                "reason",
                format!("required, at most {} characters", limits::REASON),
            ));
        }
        repo::reopen(conn, &period, now.naive_utc())?;
        repo::audit(
            conn,
            &period,
            "reopen",
            &actor.id,
            Some(trimmed),
            now.naive_utc(),
        )?;
        read(conn, actor, m, (cfg, ctx))
    })
}
