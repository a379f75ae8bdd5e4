//! Roll-up cells (ended stage instances and credited facts per day and per month) and the
//! dirty rows the roll-up job folds into them.

use super::schema::{credit_rollups, crew_credits, rollup_lock, sla_rollups, sla_timers};
use super::DbConnection;
use crate::domain::sla::TimerState;
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::prelude::*;
use std::collections::HashSet;

#[derive(Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable, Insertable)]
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

#[derive(Debug, Clone, PartialEq, Queryable, QueryableByName, Selectable, Insertable)]
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

/// A roll-up cell's key: grain, period, area, kind, priority, stage, crew.
pub type SlaCellKey = (String, String, String, String, String, String, String);

/// A credit cell's key: grain, period, crew.
pub type CreditCellKey = (String, String, String);

impl SlaCellRow {
    /// The cell of `key` before anything is counted in it.
    pub fn empty(key: SlaCellKey) -> Self {
        let (grain, period, area_code, kind, priority, stage, crew_id) = key;
        SlaCellRow {
            grain,
            period,
            area_code,
            kind,
            priority,
            stage,
            crew_id,
            met: 0,
            breached: 0,
            stopped: 0,
            excused: 0,
            minutes: String::new(),
        }
    }

    pub fn key(&self) -> SlaCellKey {
        (
            self.grain.clone(),
            self.period.clone(),
            self.area_code.clone(),
            self.kind.clone(),
            self.priority.clone(),
            self.stage.clone(),
            self.crew_id.clone(),
        )
    }

    /// Adds met, breached, stopped and excused counts, in that order.
    pub fn add_counts(&mut self, counts: [i64; 4]) {
        self.met += counts[0];
        self.breached += counts[1];
        self.stopped += counts[2];
        self.excused += counts[3];
    }
}

impl CreditCellRow {
    /// The cell of `key` before anything is counted in it.
    pub fn empty(key: CreditCellKey) -> Self {
        let (grain, period, crew_id) = key;
        CreditCellRow {
            grain,
            period,
            crew_id,
            dispatches: 0,
            returns: 0,
            callbacks: 0,
            callbacks_good: 0,
            complaints: 0,
            praise: 0,
            resolves: 0,
            resolves_reopened: 0,
        }
    }

    pub fn key(&self) -> CreditCellKey {
        (
            self.grain.clone(),
            self.period.clone(),
            self.crew_id.clone(),
        )
    }

    /// Adds counts in the order of `service::rollups::credit_slots`.
    pub fn add(&mut self, slots: [i64; 8]) {
        self.dispatches += slots[0];
        self.returns += slots[1];
        self.callbacks += slots[2];
        self.callbacks_good += slots[3];
        self.complaints += slots[4];
        self.praise += slots[5];
        self.resolves += slots[6];
        self.resolves_reopened += slots[7];
    }
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

/// What the job applied for an instance, recorded if nobody wrote the instance since it
/// was read (its version unchanged).
#[derive(Debug, Clone)]
pub struct TimerMark {
    pub id: String,
    pub version: i32,
    pub applied: Option<String>,
}

#[derive(QueryableByName)]
struct MarkedId {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id: String,
}

/// Records the marks and clears the instances' dirty flag, each only if its version is
/// unchanged (the version is not moved, so a writer's guarded update still works). Returns
/// the ids it cleared: an instance written since it was read waits for the next pass. On
/// PostgreSQL one statement for the batch (the marks as arrays); on SQLite, where a
/// statement is a function call, one update each.
pub fn clear_timers(
    conn: &mut DbConnection,
    marks: &[TimerMark],
) -> Result<HashSet<String>, AppError> {
    use diesel::sql_types::{Array, Integer, Nullable, Text};
    if marks.is_empty() {
        return Ok(HashSet::new());
    }
    match conn {
        DbConnection::Postgresql(pg) => {
            let cleared: Vec<MarkedId> = diesel::sql_query(
                "UPDATE sla_timers AS t SET rollup_dirty = false, rollup_applied = m.applied \
                 FROM unnest($1::text[], $2::int4[], $3::text[]) AS m(id, version, applied) \
                 WHERE t.id = m.id AND t.version = m.version RETURNING t.id",
            )
            .bind::<Array<Text>, _>(marks.iter().map(|m| m.id.as_str()).collect::<Vec<_>>())
            .bind::<Array<Integer>, _>(marks.iter().map(|m| m.version).collect::<Vec<_>>())
            .bind::<Array<Nullable<Text>>, _>(
                marks
                    .iter()
                    .map(|m| m.applied.as_deref())
                    .collect::<Vec<_>>(),
            )
            .load(pg)?;
            Ok(cleared.into_iter().map(|c| c.id).collect())
        }
        DbConnection::Sqlite(lite) => {
            let mut cleared = HashSet::new();
            for m in marks {
                let n = diesel::update(
                    sla_timers::table
                        .filter(sla_timers::id.eq(&m.id))
                        .filter(sla_timers::version.eq(m.version)),
                )
                .set((
                    sla_timers::rollup_dirty.eq(false),
                    sla_timers::rollup_applied.eq(m.applied.as_deref()),
                ))
                .execute(lite)?;
                if n == 1 {
                    cleared.insert(m.id.clone());
                }
            }
            Ok(cleared)
        }
    }
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

/// As [`clear_timers`], for credits: each guarded on the only thing that changes on a
/// credit, its reopen. `marks` pairs each credit read with what the job applied for it.
pub fn clear_credits(
    conn: &mut DbConnection,
    marks: &[(&DirtyCredit, String)],
) -> Result<HashSet<String>, AppError> {
    use diesel::sql_types::{Array, Nullable, Text, Timestamp};
    if marks.is_empty() {
        return Ok(HashSet::new());
    }
    match conn {
        DbConnection::Postgresql(pg) => {
            let cleared: Vec<MarkedId> = diesel::sql_query(
                "UPDATE crew_credits AS c SET rollup_dirty = false, rollup_applied = m.applied \
                 FROM unnest($1::text[], $2::timestamp[], $3::text[]) \
                 AS m(id, reopened_at, applied) \
                 WHERE c.id = m.id AND c.reopened_at IS NOT DISTINCT FROM m.reopened_at \
                 RETURNING c.id",
            )
            .bind::<Array<Text>, _>(marks.iter().map(|(c, _)| c.id.as_str()).collect::<Vec<_>>())
            .bind::<Array<Nullable<Timestamp>>, _>(
                marks.iter().map(|(c, _)| c.reopened_at).collect::<Vec<_>>(),
            )
            .bind::<Array<Text>, _>(marks.iter().map(|(_, a)| a.as_str()).collect::<Vec<_>>())
            .load(pg)?;
            Ok(cleared.into_iter().map(|c| c.id).collect())
        }
        DbConnection::Sqlite(lite) => {
            let mut cleared = HashSet::new();
            for (c, applied) in marks {
                let target = crew_credits::table.filter(crew_credits::id.eq(&c.id));
                let set = (
                    crew_credits::rollup_dirty.eq(false),
                    crew_credits::rollup_applied.eq(Some(applied.as_str())),
                );
                let n = match c.reopened_at {
                    Some(at) => diesel::update(target.filter(crew_credits::reopened_at.eq(at)))
                        .set(set)
                        .execute(lite)?,
                    None => diesel::update(target.filter(crew_credits::reopened_at.is_null()))
                        .set(set)
                        .execute(lite)?,
                };
                if n == 1 {
                    cleared.insert(c.id.clone());
                }
            }
            Ok(cleared)
        }
    }
}

/// The stored SLA cells among `keys` (only their key fields are read): on PostgreSQL one
/// statement that joins the keys, as arrays, to the primary key; on SQLite one lookup each.
pub fn sla_cells_at(
    conn: &mut DbConnection,
    keys: &[SlaCellRow],
) -> Result<Vec<SlaCellRow>, AppError> {
    use diesel::sql_types::{Array, Text};
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    match conn {
        DbConnection::Postgresql(pg) => {
            let column = |f: fn(&SlaCellRow) -> &str| keys.iter().map(f).collect::<Vec<_>>();
            Ok(diesel::sql_query(
                "SELECT r.grain, r.period, r.area_code, r.kind, r.priority, r.stage, r.crew_id, \
                 r.met, r.breached, r.stopped, r.excused, r.minutes \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], \
                 $6::text[], $7::text[]) AS k(grain, period, area_code, kind, priority, stage, crew_id) \
                 JOIN sla_rollups AS r ON r.grain = k.grain AND r.period = k.period \
                 AND r.area_code = k.area_code AND r.kind = k.kind AND r.priority = k.priority \
                 AND r.stage = k.stage AND r.crew_id = k.crew_id",
            )
            .bind::<Array<Text>, _>(column(|k| &k.grain))
            .bind::<Array<Text>, _>(column(|k| &k.period))
            .bind::<Array<Text>, _>(column(|k| &k.area_code))
            .bind::<Array<Text>, _>(column(|k| &k.kind))
            .bind::<Array<Text>, _>(column(|k| &k.priority))
            .bind::<Array<Text>, _>(column(|k| &k.stage))
            .bind::<Array<Text>, _>(column(|k| &k.crew_id))
            .load(pg)?)
        }
        DbConnection::Sqlite(lite) => {
            let mut found = Vec::new();
            for key in keys {
                let stored = sla_rollups::table
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
                    .first(lite)
                    .optional()?;
                found.extend(stored);
            }
            Ok(found)
        }
    }
}

/// Writes cells the job (holding the lock) has computed, inserting or replacing each: on
/// PostgreSQL one statement for the batch (the cells as arrays); on SQLite one each.
pub fn save_sla_cells(conn: &mut DbConnection, cells: &[SlaCellRow]) -> Result<(), AppError> {
    use diesel::sql_types::{Array, BigInt, Text};
    use diesel::upsert::excluded;
    if cells.is_empty() {
        return Ok(());
    }
    match conn {
        DbConnection::Postgresql(pg) => {
            let text = |f: fn(&SlaCellRow) -> &str| cells.iter().map(f).collect::<Vec<_>>();
            let count = |f: fn(&SlaCellRow) -> i64| cells.iter().map(f).collect::<Vec<_>>();
            diesel::sql_query(
                "INSERT INTO sla_rollups (grain, period, area_code, kind, priority, stage, \
                 crew_id, met, breached, stopped, excused, minutes) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
                 $5::text[], $6::text[], $7::text[], $8::int8[], $9::int8[], $10::int8[], \
                 $11::int8[], $12::text[]) \
                 ON CONFLICT (grain, period, area_code, kind, priority, stage, crew_id) \
                 DO UPDATE SET met = excluded.met, breached = excluded.breached, \
                 stopped = excluded.stopped, excused = excluded.excused, \
                 minutes = excluded.minutes",
            )
            .bind::<Array<Text>, _>(text(|c| &c.grain))
            .bind::<Array<Text>, _>(text(|c| &c.period))
            .bind::<Array<Text>, _>(text(|c| &c.area_code))
            .bind::<Array<Text>, _>(text(|c| &c.kind))
            .bind::<Array<Text>, _>(text(|c| &c.priority))
            .bind::<Array<Text>, _>(text(|c| &c.stage))
            .bind::<Array<Text>, _>(text(|c| &c.crew_id))
            .bind::<Array<BigInt>, _>(count(|c| c.met))
            .bind::<Array<BigInt>, _>(count(|c| c.breached))
            .bind::<Array<BigInt>, _>(count(|c| c.stopped))
            .bind::<Array<BigInt>, _>(count(|c| c.excused))
            .bind::<Array<Text>, _>(text(|c| &c.minutes))
            .execute(pg)?;
        }
        DbConnection::Sqlite(lite) => {
            for cell in cells {
                diesel::insert_into(sla_rollups::table)
                    .values(cell)
                    .on_conflict((
                        sla_rollups::grain,
                        sla_rollups::period,
                        sla_rollups::area_code,
                        sla_rollups::kind,
                        sla_rollups::priority,
                        sla_rollups::stage,
                        sla_rollups::crew_id,
                    ))
                    .do_update()
                    .set((
                        sla_rollups::met.eq(excluded(sla_rollups::met)),
                        sla_rollups::breached.eq(excluded(sla_rollups::breached)),
                        sla_rollups::stopped.eq(excluded(sla_rollups::stopped)),
                        sla_rollups::excused.eq(excluded(sla_rollups::excused)),
                        sla_rollups::minutes.eq(excluded(sla_rollups::minutes)),
                    ))
                    .execute(lite)?;
            }
        }
    }
    Ok(())
}

/// As [`sla_cells_at`], for credit cells.
pub fn credit_cells_at(
    conn: &mut DbConnection,
    keys: &[CreditCellRow],
) -> Result<Vec<CreditCellRow>, AppError> {
    use diesel::sql_types::{Array, Text};
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    match conn {
        DbConnection::Postgresql(pg) => {
            let column = |f: fn(&CreditCellRow) -> &str| keys.iter().map(f).collect::<Vec<_>>();
            Ok(diesel::sql_query(
                "SELECT r.grain, r.period, r.crew_id, r.dispatches, r.returns, r.callbacks, \
                 r.callbacks_good, r.complaints, r.praise, r.resolves, r.resolves_reopened \
                 FROM unnest($1::text[], $2::text[], $3::text[]) AS k(grain, period, crew_id) \
                 JOIN credit_rollups AS r ON r.grain = k.grain AND r.period = k.period \
                 AND r.crew_id = k.crew_id",
            )
            .bind::<Array<Text>, _>(column(|k| &k.grain))
            .bind::<Array<Text>, _>(column(|k| &k.period))
            .bind::<Array<Text>, _>(column(|k| &k.crew_id))
            .load(pg)?)
        }
        DbConnection::Sqlite(lite) => {
            let mut found = Vec::new();
            for key in keys {
                let stored = credit_rollups::table
                    .find((&key.grain, &key.period, &key.crew_id))
                    .select(CreditCellRow::as_select())
                    .first(lite)
                    .optional()?;
                found.extend(stored);
            }
            Ok(found)
        }
    }
}

/// As [`save_sla_cells`], for credit cells.
pub fn save_credit_cells(conn: &mut DbConnection, cells: &[CreditCellRow]) -> Result<(), AppError> {
    use diesel::sql_types::{Array, BigInt, Text};
    use diesel::upsert::excluded;
    if cells.is_empty() {
        return Ok(());
    }
    match conn {
        DbConnection::Postgresql(pg) => {
            let text = |f: fn(&CreditCellRow) -> &str| cells.iter().map(f).collect::<Vec<_>>();
            let count = |f: fn(&CreditCellRow) -> i64| cells.iter().map(f).collect::<Vec<_>>();
            diesel::sql_query(
                "INSERT INTO credit_rollups (grain, period, crew_id, dispatches, returns, \
                 callbacks, callbacks_good, complaints, praise, resolves, resolves_reopened) \
                 SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], \
                 $5::int8[], $6::int8[], $7::int8[], $8::int8[], $9::int8[], $10::int8[], \
                 $11::int8[]) \
                 ON CONFLICT (grain, period, crew_id) DO UPDATE SET \
                 dispatches = excluded.dispatches, returns = excluded.returns, \
                 callbacks = excluded.callbacks, callbacks_good = excluded.callbacks_good, \
                 complaints = excluded.complaints, praise = excluded.praise, \
                 resolves = excluded.resolves, resolves_reopened = excluded.resolves_reopened",
            )
            .bind::<Array<Text>, _>(text(|c| &c.grain))
            .bind::<Array<Text>, _>(text(|c| &c.period))
            .bind::<Array<Text>, _>(text(|c| &c.crew_id))
            .bind::<Array<BigInt>, _>(count(|c| c.dispatches))
            .bind::<Array<BigInt>, _>(count(|c| c.returns))
            .bind::<Array<BigInt>, _>(count(|c| c.callbacks))
            .bind::<Array<BigInt>, _>(count(|c| c.callbacks_good))
            .bind::<Array<BigInt>, _>(count(|c| c.complaints))
            .bind::<Array<BigInt>, _>(count(|c| c.praise))
            .bind::<Array<BigInt>, _>(count(|c| c.resolves))
            .bind::<Array<BigInt>, _>(count(|c| c.resolves_reopened))
            .execute(pg)?;
        }
        DbConnection::Sqlite(lite) => {
            for cell in cells {
                diesel::insert_into(credit_rollups::table)
                    .values(cell)
                    .on_conflict((
                        credit_rollups::grain,
                        credit_rollups::period,
                        credit_rollups::crew_id,
                    ))
                    .do_update()
                    .set((
                        credit_rollups::dispatches.eq(excluded(credit_rollups::dispatches)),
                        credit_rollups::returns.eq(excluded(credit_rollups::returns)),
                        credit_rollups::callbacks.eq(excluded(credit_rollups::callbacks)),
                        credit_rollups::callbacks_good.eq(excluded(credit_rollups::callbacks_good)),
                        credit_rollups::complaints.eq(excluded(credit_rollups::complaints)),
                        credit_rollups::praise.eq(excluded(credit_rollups::praise)),
                        credit_rollups::resolves.eq(excluded(credit_rollups::resolves)),
                        credit_rollups::resolves_reopened
                            .eq(excluded(credit_rollups::resolves_reopened)),
                    ))
                    .execute(lite)?;
            }
        }
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
