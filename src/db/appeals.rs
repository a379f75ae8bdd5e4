//! Appeals (免责申请) against breached timers: filing, the paged list, and the guarded
//! decision that lets exactly one of two concurrent decisions through.

use super::schema::{appeals, sla_timers};
use super::timers::TimerRow;
use super::{is_unique_violation, DbConnection};
use crate::errors::AppError;
use crate::errors::ProblemCode;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = appeals)]
pub struct AppealRow {
    pub id: String,
    pub work_order_id: String,
    pub timer_id: String,
    pub stage: String,
    pub instance: i32,
    /// The timer's area, for scoping reads and decisions.
    pub area_code: String,
    /// The timer's credited crew, else the crew the order was assigned to when filed.
    pub crew_id: Option<String>,
    /// `YYYY-MM`: the local month (Asia/Shanghai) in which the timer's stage started.
    pub period: String,
    pub reason_code: String,
    pub reason: String,
    /// pending | approved | rejected
    pub status: String,
    pub filed_by: String,
    pub filed_at: NaiveDateTime,
    pub decided_by: Option<String>,
    pub decided_at: Option<NaiveDateTime>,
    pub decision_note: Option<String>,
}

fn appeal_pending() -> AppError {
    AppError::Conflict {
        code: ProblemCode::AppealPending,
        detail: "an appeal on this timer is waiting for a decision".into(),
        allowed_actions: None,
    }
}

/// Files an appeal. The partial unique index allows one pending appeal per timer; a filing
/// that lost a race for it is `appeal_pending` (on PostgreSQL the transaction is then
/// aborted, which is fine: the caller rolls it back).
pub fn insert(conn: &mut DbConnection, row: &AppealRow) -> Result<(), AppError> {
    diesel::insert_into(appeals::table)
        .values(row)
        .execute(conn)
        .map_err(|e| {
            if is_unique_violation(&e) {
                appeal_pending()
            } else {
                e.into()
            }
        })?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<AppealRow>, AppError> {
    Ok(appeals::table
        .find(id)
        .select(AppealRow::as_select())
        .first(conn)
        .optional()?)
}

/// Whether the timer has an appeal waiting for a decision.
pub fn has_pending(conn: &mut DbConnection, timer_id: &str) -> Result<bool, AppError> {
    let n: i64 = appeals::table
        .filter(appeals::timer_id.eq(timer_id))
        .filter(appeals::status.eq("pending"))
        .count()
        .get_result(conn)?;
    Ok(n > 0)
}

/// The timer an appeal names: an order's instance of a stage.
pub fn timer_of(
    conn: &mut DbConnection,
    work_order_id: &str,
    stage: &str,
    instance: i32,
) -> Result<Option<TimerRow>, AppError> {
    Ok(sla_timers::table
        .filter(sla_timers::work_order_id.eq(work_order_id))
        .filter(sla_timers::stage.eq(stage))
        .filter(sla_timers::instance.eq(instance))
        .select(TimerRow::as_select())
        .first(conn)
        .optional()?)
}

/// What a list of appeals is narrowed to.
#[derive(Debug, Clone, Default)]
pub struct AppealFilter {
    pub status: Option<String>,
    /// `None`: every area.
    pub area_codes: Option<Vec<String>>,
    /// Only this crew's appeals and those this user filed (crew users): (crew, user).
    pub crew_id: Option<(String, String)>,
}

/// Newest first; the cursor is the (filed_at, id) of the last row of the previous page.
pub fn list(
    conn: &mut DbConnection,
    f: &AppealFilter,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> Result<Vec<AppealRow>, AppError> {
    let mut q = appeals::table
        .select(AppealRow::as_select())
        .order((appeals::filed_at.desc(), appeals::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some((at, id)) = after {
        // The bound is implied by the `OR`; stated, it bounds the index range (a deep page
        // starts at the cursor).
        q = q.filter(appeals::filed_at.le(at)).filter(
            appeals::filed_at
                .lt(at)
                .or(appeals::filed_at.eq(at).and(appeals::id.lt(id))),
        );
    }
    if let Some(status) = &f.status {
        q = q.filter(appeals::status.eq(status.clone()));
    }
    if let Some(areas) = &f.area_codes {
        q = q.filter(appeals::area_code.eq_any(areas.clone()));
    }
    if let Some((crew, user)) = &f.crew_id {
        q = q.filter(
            appeals::crew_id
                .eq(crew.clone())
                .or(appeals::filed_by.eq(user.clone())),
        );
    }
    Ok(q.load(conn)?)
}

/// Decides a pending appeal; false if it was not pending any more (another decision won).
/// The guard on `status` makes two concurrent decisions exclusive: on PostgreSQL the second
/// UPDATE waits on the row lock and then no longer matches.
pub fn decide(
    conn: &mut DbConnection,
    id: &str,
    status: &str,
    by: &str,
    at: NaiveDateTime,
    note: Option<&str>,
) -> Result<bool, AppError> {
    let n = diesel::update(
        appeals::table
            .filter(appeals::id.eq(id))
            .filter(appeals::status.eq("pending")),
    )
    .set((
        appeals::status.eq(status),
        appeals::decided_by.eq(Some(by)),
        appeals::decided_at.eq(Some(at)),
        appeals::decision_note.eq(note),
    ))
    .execute(conn)?;
    Ok(n == 1)
}
