//! Monthly scorecards: a row per month once it is locked for closing; a closed month keeps
//! its frozen rows. Also the audit of closes and reopens.

use super::schema::{appeals, scorecard_audit, scorecards};
use super::DbConnection;
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = scorecards)]
pub struct ScorecardRow {
    pub period: String,
    /// open | closed
    pub status: String,
    pub closed_at: Option<NaiveDateTime>,
    pub closed_by: Option<String>,
    /// The frozen rows (JSON) of a closed month.
    pub rows: String,
    pub version: i32,
    pub updated_at: NaiveDateTime,
}

pub fn find(conn: &mut DbConnection, period: &str) -> Result<Option<ScorecardRow>, AppError> {
    Ok(scorecards::table
        .find(period)
        .select(ScorecardRow::as_select())
        .first(conn)
        .optional()?)
}

/// Whether the month is closed.
pub fn is_closed(conn: &mut DbConnection, period: &str) -> Result<bool, AppError> {
    Ok(find(conn, period)?.is_some_and(|r| r.status == "closed"))
}

/// Takes the month's row lock for the rest of the transaction (creating the row, open, if
/// need be), so that closing a month and filing an appeal on it are serialised: on
/// PostgreSQL by the row lock of the UPDATE (READ COMMITTED), on SQLite by `BEGIN IMMEDIATE`.
/// Returns the row as locked.
pub fn lock_period(
    conn: &mut DbConnection,
    period: &str,
    now: NaiveDateTime,
) -> Result<ScorecardRow, AppError> {
    match conn {
        DbConnection::Postgresql(pg) => {
            diesel::sql_query(
                "INSERT INTO scorecards (period, status, rows, version, updated_at) \
                 VALUES ($1, 'open', '[]', 1, $2) ON CONFLICT (period) DO NOTHING",
            )
            .bind::<diesel::sql_types::Text, _>(period)
            .bind::<diesel::sql_types::Timestamp, _>(now)
            .execute(pg)?;
        }
        DbConnection::Sqlite(sqlite) => {
            diesel::insert_or_ignore_into(scorecards::table)
                .values((
                    scorecards::period.eq(period),
                    scorecards::status.eq("open"),
                    scorecards::rows.eq("[]"),
                    scorecards::version.eq(1),
                    scorecards::updated_at.eq(now),
                ))
                .execute(sqlite)?;
        }
    }
    diesel::update(scorecards::table.find(period))
        .set(scorecards::version.eq(scorecards::version + 1))
        .execute(conn)?;
    find(conn, period)?.ok_or_else(|| AppError::internal("scorecard row vanished under its lock"))
}

/// Freezes a month: its rows and who closed it.
pub fn close(
    conn: &mut DbConnection,
    period: &str,
    rows: &str,
    by: &str,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    diesel::update(scorecards::table.find(period))
        .set((
            scorecards::status.eq("closed"),
            scorecards::rows.eq(rows),
            scorecards::closed_at.eq(Some(now)),
            scorecards::closed_by.eq(Some(by)),
            scorecards::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Opens a closed month again (its snapshot is dropped: it is computed live until closed).
pub fn reopen(conn: &mut DbConnection, period: &str, now: NaiveDateTime) -> Result<(), AppError> {
    diesel::update(scorecards::table.find(period))
        .set((
            scorecards::status.eq("open"),
            scorecards::rows.eq("[]"),
            scorecards::closed_at.eq(None::<NaiveDateTime>),
            scorecards::closed_by.eq(None::<String>),
            scorecards::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Pending appeals on timers whose stage started in the month.
pub fn pending_appeals(conn: &mut DbConnection, period: &str) -> Result<i64, AppError> {
    Ok(appeals::table
        .filter(appeals::period.eq(period))
        .filter(appeals::status.eq("pending"))
        .count()
        .get_result(conn)?)
}

/// Records a close or reopen.
pub fn audit(
    conn: &mut DbConnection,
    period: &str,
    action: &str,
    actor_id: &str,
    reason: Option<&str>,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    diesel::insert_into(scorecard_audit::table)
        .values((
            scorecard_audit::id.eq(crate::db::new_row_key()),
            scorecard_audit::period.eq(period),
            scorecard_audit::action.eq(action),
            scorecard_audit::actor_id.eq(actor_id),
            scorecard_audit::reason.eq(reason),
            scorecard_audit::at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}
