//! Facts credited to a crew when they happen (PRODUCT.md, "Metrics and crew performance"):
//! a resolve, a callback, a return, a dispatch to it, a complaint or praise naming it.

use super::schema::crew_credits;
use super::{on_backend, DbConnection};
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// What a credit records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fact {
    Resolve,
    Callback,
    Return,
    Dispatch,
    Complaint,
    Praise,
}

impl Fact {
    pub fn as_str(self) -> &'static str {
        match self {
            Fact::Resolve => "resolve",
            Fact::Callback => "callback",
            Fact::Return => "return",
            Fact::Dispatch => "dispatch",
            Fact::Complaint => "complaint",
            Fact::Praise => "praise",
        }
    }
}

/// None is written as NULL (these columns have no other default), so the insert's text is the
/// same for every credit and the connection prepares it once.
#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = crew_credits, treat_none_as_default_value = false)]
pub struct CreditRow {
    pub id: String,
    pub crew_id: String,
    pub fact: String,
    pub work_order_id: String,
    pub at: NaiveDateTime,
    pub satisfaction: Option<String>,
    pub reopened_at: Option<NaiveDateTime>,
    /// A resolve by a crew that had resolved the order before: when it did last.
    pub repeat_of_at: Option<NaiveDateTime>,
    pub rollup_dirty: bool,
}

/// Records a fact credited to `crew_id`.
pub fn record(
    conn: &mut DbConnection,
    fact: Fact,
    crew_id: &str,
    work_order_id: &str,
    satisfaction: Option<&str>,
    at: NaiveDateTime,
) -> Result<(), AppError> {
    let repeat_of_at = if fact == Fact::Resolve {
        on_backend!(conn, |c| crew_credits::table
            .filter(crew_credits::work_order_id.eq(work_order_id))
            .filter(crew_credits::fact.eq(Fact::Resolve.as_str()))
            .filter(crew_credits::crew_id.eq(crew_id))
            .select(diesel::dsl::max(crew_credits::at))
            .first::<Option<NaiveDateTime>>(c))?
    } else {
        None
    };
    let row = CreditRow::new(fact, crew_id, work_order_id, satisfaction, at, repeat_of_at);
    on_backend!(conn, |c| diesel::insert_into(crew_credits::table)
        .values(&row)
        .execute(c))?;
    Ok(())
}

impl CreditRow {
    /// A new credit; `repeat_of_at` is when this crew last resolved the order, for a resolve
    /// (none for the other facts).
    pub fn new(
        fact: Fact,
        crew_id: &str,
        work_order_id: &str,
        satisfaction: Option<&str>,
        at: NaiveDateTime,
        repeat_of_at: Option<NaiveDateTime>,
    ) -> CreditRow {
        CreditRow {
            id: crate::db::new_row_key(),
            crew_id: crew_id.to_owned(),
            fact: fact.as_str().to_owned(),
            work_order_id: work_order_id.to_owned(),
            at,
            satisfaction: satisfaction.map(str::to_owned),
            reopened_at: None,
            repeat_of_at: repeat_of_at.filter(|_| fact == Fact::Resolve),
            rollup_dirty: true,
        }
    }
}

/// Marks the order's credited resolves not yet reopened as reopened now (a reopen, or an
/// unsatisfied callback): rework counts against the crew that resolved.
pub fn mark_reopened(
    conn: &mut DbConnection,
    work_order_id: &str,
    at: NaiveDateTime,
) -> Result<(), AppError> {
    diesel::update(
        crew_credits::table
            .filter(crew_credits::work_order_id.eq(work_order_id))
            .filter(crew_credits::fact.eq(Fact::Resolve.as_str()))
            .filter(crew_credits::reopened_at.is_null()),
    )
    .set((
        crew_credits::reopened_at.eq(at),
        crew_credits::rollup_dirty.eq(true),
    ))
    .execute(conn)?;
    Ok(())
}

/// Credits in `[from, to)` (a partial day at the edge of a report period).
pub fn between(
    conn: &mut DbConnection,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<Vec<CreditRow>, AppError> {
    Ok(crew_credits::table
        .filter(crew_credits::at.ge(from))
        .filter(crew_credits::at.lt(to))
        .select(CreditRow::as_select())
        .load(conn)?)
}
