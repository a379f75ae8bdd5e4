//! Roll-up cells (ended stage instances and credited facts per day and per month) and the
//! dirty rows the roll-up job folds into them.

use super::schema::{credit_rollups, crew_credits, rollup_lock, sla_rollups, sla_timers};
use super::DbConnection;
use crate::domain::sla::TimerState;
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = sla_rollups)]
pub struct SlaCellRow {
    pub grain: String,
    pub period: String,
    pub area_code: String,
    pub kind: String,
    pub priority: String,
    pub stage: String,
    pub crew_id: String,
    pub met: i64,
    pub breached: i64,
    pub stopped: i64,
    pub excused: i64,
    pub minutes: String,
}

#[derive(Debug, Clone, PartialEq, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = credit_rollups)]
pub struct CreditCellRow {
    pub grain: String,
    pub period: String,
    pub crew_id: String,
    pub dispatches: i64,
    pub returns: i64,
    pub callbacks: i64,
    pub callbacks_good: i64,
    pub complaints: i64,
    pub praise: i64,
    pub resolves: i64,
    pub resolves_reopened: i64,
}

/// Serialises roll-up jobs across instances for the rest of the transaction.
pub fn lock(conn: &mut DbConnection, now: NaiveDateTime) -> Result<(), AppError> {
    diesel::update(rollup_lock::table.find(1))
        .set(rollup_lock::ran_at.eq(Some(now)))
        .execute(conn)?;
    Ok(())
}

/// A dirty stage instance as the roll-ups see it.
#[derive(Debug, Clone, Queryable)]
pub struct DirtyTimer {
    pub id: String,
    pub version: i32,
    #[diesel(deserialize_as = String)]
    pub state: TimerState,
    pub calendar: String,
    pub started_at: NaiveDateTime,
    pub ended_at: Option<NaiveDateTime>,
    pub paused_seconds: i64,
    pub excused_seconds: i64,
    pub sla_seconds: Option<i64>,
    pub credited_crew_id: Option<String>,
    pub area_code: String,
    pub kind: String,
    pub priority: String,
    pub stage: String,
    pub rollup_applied: Option<String>,
}

/// Dirty instances, oldest first (the partial index holds only them, by start; the job takes
/// their row locks in that order), at most `limit`.
pub fn dirty_timers(conn: &mut DbConnection, limit: i64) -> Result<Vec<DirtyTimer>, AppError> {
    Ok(sla_timers::table
        .filter(sla_timers::rollup_dirty)
        .order(sla_timers::started_at)
        .limit(limit)
        .select((
            sla_timers::id,
            sla_timers::version,
            sla_timers::state,
            sla_timers::calendar,
            sla_timers::started_at,
            sla_timers::ended_at,
            sla_timers::paused_seconds,
            sla_timers::excused_seconds,
            sla_timers::sla_seconds,
            sla_timers::credited_crew_id,
            sla_timers::area_code,
            sla_timers::kind,
            sla_timers::priority,
            sla_timers::stage,
            sla_timers::rollup_applied,
        ))
        .load(conn)?)
}

/// Records what the job applied for an instance, if nobody wrote it since it was read (its
/// version unchanged); the version is not moved, so a writer's guarded update still works.
pub fn clear_timer(
    conn: &mut DbConnection,
    id: &str,
    version: i32,
    applied: Option<&str>,
) -> Result<bool, AppError> {
    let n = diesel::update(
        sla_timers::table
            .filter(sla_timers::id.eq(id))
            .filter(sla_timers::version.eq(version)),
    )
    .set((
        sla_timers::rollup_dirty.eq(false),
        sla_timers::rollup_applied.eq(applied),
    ))
    .execute(conn)?;
    Ok(n == 1)
}

/// A dirty credited fact.
#[derive(Debug, Clone, Queryable)]
pub struct DirtyCredit {
    pub id: String,
    pub crew_id: String,
    pub fact: String,
    pub at: NaiveDateTime,
    pub satisfaction: Option<String>,
    pub reopened_at: Option<NaiveDateTime>,
    pub rollup_applied: Option<String>,
}

type DirtyCreditColumns = (
    crew_credits::id,
    crew_credits::crew_id,
    crew_credits::fact,
    crew_credits::at,
    crew_credits::satisfaction,
    crew_credits::reopened_at,
    crew_credits::rollup_applied,
);

const DIRTY_CREDIT_COLUMNS: DirtyCreditColumns = (
    crew_credits::id,
    crew_credits::crew_id,
    crew_credits::fact,
    crew_credits::at,
    crew_credits::satisfaction,
    crew_credits::reopened_at,
    crew_credits::rollup_applied,
);

/// Dirty credits, oldest first (the job takes their row locks in that order), at most `limit`.
pub fn dirty_credits(conn: &mut DbConnection, limit: i64) -> Result<Vec<DirtyCredit>, AppError> {
    Ok(crew_credits::table
        .filter(crew_credits::rollup_dirty)
        .order(crew_credits::at)
        .limit(limit)
        .select(DIRTY_CREDIT_COLUMNS)
        .load(conn)?)
}

/// As `clear_timer`: guarded on the only thing that changes on a credit, its reopen.
pub fn clear_credit(
    conn: &mut DbConnection,
    c: &DirtyCredit,
    applied: &str,
) -> Result<bool, AppError> {
    let target = crew_credits::table.filter(crew_credits::id.eq(&c.id));
    let set = (
        crew_credits::rollup_dirty.eq(false),
        crew_credits::rollup_applied.eq(Some(applied)),
    );
    let n = match c.reopened_at {
        Some(at) => diesel::update(target.filter(crew_credits::reopened_at.eq(at)))
            .set(set)
            .execute(conn)?,
        None => diesel::update(target.filter(crew_credits::reopened_at.is_null()))
            .set(set)
            .execute(conn)?,
    };
    Ok(n == 1)
}

pub fn find_sla_cell(
    conn: &mut DbConnection,
    key: &SlaCellRow,
) -> Result<Option<SlaCellRow>, AppError> {
    Ok(sla_rollups::table
        .find((
            &key.grain,
            &key.period,
            &key.area_code,
            &key.kind,
            &key.priority,
            &key.stage,
            &key.crew_id,
        ))
        .select(SlaCellRow::as_select())
        .first(conn)
        .optional()?)
}

/// Writes a cell the job (holding the lock) has computed.
pub fn save_sla_cell(
    conn: &mut DbConnection,
    row: &SlaCellRow,
    exists: bool,
) -> Result<(), AppError> {
    if exists {
        diesel::update(sla_rollups::table.find((
            &row.grain,
            &row.period,
            &row.area_code,
            &row.kind,
            &row.priority,
            &row.stage,
            &row.crew_id,
        )))
        .set(row)
        .execute(conn)?;
    } else {
        diesel::insert_into(sla_rollups::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

pub fn find_credit_cell(
    conn: &mut DbConnection,
    key: &CreditCellRow,
) -> Result<Option<CreditCellRow>, AppError> {
    Ok(credit_rollups::table
        .find((&key.grain, &key.period, &key.crew_id))
        .select(CreditCellRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn save_credit_cell(
    conn: &mut DbConnection,
    row: &CreditCellRow,
    exists: bool,
) -> Result<(), AppError> {
    if exists {
        diesel::update(credit_rollups::table.find((&row.grain, &row.period, &row.crew_id)))
            .set(row)
            .execute(conn)?;
    } else {
        diesel::insert_into(credit_rollups::table)
            .values(row)
            .execute(conn)?;
    }
    Ok(())
}

/// What narrows a read of SLA cells.
#[derive(Debug, Clone, Default)]
pub struct CellFilter {
    pub stages: Option<Vec<String>>,
    pub kind: Option<String>,
    pub areas: Option<Vec<String>>,
}

/// SLA cells of one grain with periods in `[from, to)` (periods sort as text).
pub fn sla_cells(
    conn: &mut DbConnection,
    grain: &str,
    (from, to): (&str, &str),
    filter: &CellFilter,
) -> Result<Vec<SlaCellRow>, AppError> {
    let mut q = sla_rollups::table
        .filter(sla_rollups::grain.eq(grain.to_owned()))
        .filter(sla_rollups::period.ge(from.to_owned()))
        .filter(sla_rollups::period.lt(to.to_owned()))
        .select(SlaCellRow::as_select())
        .into_boxed();
    if let Some(stages) = &filter.stages {
        q = q.filter(sla_rollups::stage.eq_any(stages.clone()));
    }
    if let Some(kind) = &filter.kind {
        q = q.filter(sla_rollups::kind.eq(kind.clone()));
    }
    if let Some(areas) = &filter.areas {
        q = q.filter(sla_rollups::area_code.eq_any(areas.clone()));
    }
    Ok(q.load(conn)?)
}

pub fn credit_cells(
    conn: &mut DbConnection,
    grain: &str,
    (from, to): (&str, &str),
) -> Result<Vec<CreditCellRow>, AppError> {
    Ok(credit_rollups::table
        .filter(credit_rollups::grain.eq(grain.to_owned()))
        .filter(credit_rollups::period.ge(from.to_owned()))
        .filter(credit_rollups::period.lt(to.to_owned()))
        .select(CreditCellRow::as_select())
        .load(conn)?)
}

/// Dirty instances that started in `[from, to)`, with what they count as now and what the
/// roll-ups hold for them (the partial index on dirty instances, by start).
pub fn dirty_instances(
    conn: &mut DbConnection,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<Vec<(super::reports::InstanceRow, Option<String>)>, AppError> {
    use super::schema::work_orders;
    Ok(sla_timers::table
        .inner_join(work_orders::table.on(work_orders::id.eq(sla_timers::work_order_id)))
        .filter(sla_timers::rollup_dirty)
        .filter(sla_timers::started_at.ge(from))
        .filter(sla_timers::started_at.lt(to))
        .select((super::reports::INSTANCE_COLUMNS, sla_timers::rollup_applied))
        .load(conn)?)
}

/// Dirty credits of `[from, to)`: reports add what the job has not folded.
pub fn dirty_credits_between(
    conn: &mut DbConnection,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<Vec<DirtyCredit>, AppError> {
    Ok(crew_credits::table
        .filter(crew_credits::rollup_dirty)
        .filter(crew_credits::at.ge(from))
        .filter(crew_credits::at.lt(to))
        .select(DIRTY_CREDIT_COLUMNS)
        .load(conn)?)
}
