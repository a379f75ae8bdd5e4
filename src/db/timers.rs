//! SLA timers, force-majeure pauses and policy versions.

use super::schema::{sla_pauses, sla_policy_versions, sla_timers};
use super::{on_backend, DbConnection, KeptPrepared};
use crate::domain::sla::TimerState;
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// None is written as NULL by an insert and by an update (no nullable column of `sla_timers`
/// has a default), so an insert's text is fixed and the connection prepares it once.
#[derive(Debug, Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(
    table_name = sla_timers,
    treat_none_as_null = true,
    treat_none_as_default_value = false
)]
pub struct TimerRow {
    pub id: String,
    pub work_order_id: String,
    pub stage: String,
    pub instance: i32,
    pub policy_version: String,
    pub rule_name: String,
    pub target: String,
    pub target_seconds: i64,
    pub calendar: String,
    pub started_at: NaiveDateTime,
    pub due_at: Option<NaiveDateTime>,
    pub warn_at: Option<NaiveDateTime>,
    pub warned_at: Option<NaiveDateTime>,
    pub paused_seconds: i64,
    pub excused_seconds: i64,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub state: TimerState,
    pub ended_at: Option<NaiveDateTime>,
    pub breached_at: Option<NaiveDateTime>,
    pub escalation_level: i32,
    pub next_fire_at: Option<NaiveDateTime>,
    pub holds: String,
    pub area_code: String,
    pub version: i32,
    /// From the policy version the timer started with (or was recalculated to).
    pub warn_fraction: f64,
    /// JSON list of escalation delays, from the same policy version.
    pub escalations: String,
    /// The crew the instance is credited to, fixed when it ends (PRODUCT.md, "Metrics").
    pub credited_crew_id: Option<String>,
    /// Wall time from start to end, set when it ends.
    pub wall_seconds: Option<i64>,
    /// SLA time from start to end (working time less paused and excused), set when it ends.
    pub sla_seconds: Option<i64>,
    /// The order's kind and (while the instance runs) priority, for the reports.
    pub kind: String,
    pub priority: String,
    /// An ended instance written since the roll-up job last folded it in (set on every write
    /// of an ended instance, see `mark`).
    pub rollup_dirty: bool,
    /// The years (JSON list) the timer's span runs into whose holidays its calendar does not
    /// know: computed as if every weekday worked there (`None`: no such year).
    pub holiday_data_missing: Option<String>,
}

/// Marks an ended instance for the roll-up job: any write to it may change what it counts.
pub(super) fn mark(row: &TimerRow) -> std::borrow::Cow<'_, TimerRow> {
    if row.ended_at.is_some() && !row.rollup_dirty {
        let mut r = row.clone();
        r.rollup_dirty = true;
        std::borrow::Cow::Owned(r)
    } else {
        std::borrow::Cow::Borrowed(row)
    }
}

pub fn insert(conn: &mut DbConnection, row: &TimerRow) -> Result<(), AppError> {
    let row = mark(row).into_owned();
    on_backend!(conn, |c| diesel::insert_into(sla_timers::table)
        .values(row)
        .execute(c))?;
    Ok(())
}

/// Inserts new (running) timers: one multi-row statement on PostgreSQL, row by row on
/// SQLite, where a statement costs no round trip (as `events::insert_many`).
pub fn insert_many(conn: &mut DbConnection, rows: &[TimerRow]) -> Result<(), AppError> {
    match conn {
        // Up to three rows (an order's opening timers) go as an array of that length: a
        // statement of fixed text, which the connection prepares once; diesel prepares a
        // statement built from a list of any length every time.
        DbConnection::Postgresql(pg) if rows.iter().all(|r| r.ended_at.is_none()) => {
            let into = || diesel::insert_into(sla_timers::table);
            let rows = match <[TimerRow; 2]>::try_from(rows.to_vec()) {
                Ok(two) => return Ok(into().values(two).execute(pg).map(drop)?),
                Err(rows) => rows,
            };
            let rows = match <[TimerRow; 3]>::try_from(rows) {
                Ok(three) => return Ok(into().values(three).execute(pg).map(drop)?),
                Err(rows) => rows,
            };
            match <[TimerRow; 1]>::try_from(rows) {
                Ok([one]) => into().values(one).execute(pg).map(drop)?,
                // Many (an outage's linked orders resolving): 500 rows a statement, well
                // inside PostgreSQL's 65,535 bound parameters.
                Err(rows) => {
                    for chunk in rows.chunks(500) {
                        into().values(chunk.to_vec()).execute(pg)?;
                    }
                }
            };
        }
        _ => {
            for row in rows {
                insert(conn, row)?;
            }
        }
    }
    Ok(())
}

/// Writes `row` if the stored timer still has `expected_version` (the row carries the next).
pub fn update_guarded(
    conn: &mut DbConnection,
    row: &TimerRow,
    expected_version: i32,
) -> Result<bool, AppError> {
    let target = sla_timers::table
        .filter(sla_timers::id.eq(&row.id))
        .filter(sla_timers::version.eq(expected_version));
    let row = mark(row).into_owned();
    let written = on_backend!(conn, |c| KeptPrepared(
        diesel::update(target)
            .set(row)
            .returning(sla_timers::version)
    )
    .get_result::<i32>(c)
    .optional())?;
    Ok(written.is_some())
}

/// An action's timer writes, worked out before any is made, to go with the order's update
/// ([`super::work_orders::guarded_update_with`]): rows to update (each carrying its next
/// version, with the version it must still have) and rows to insert.
#[derive(Debug, Clone, Default)]
pub struct TimerWrites {
    pub updates: Vec<(TimerRow, i32)>,
    pub inserts: Vec<TimerRow>,
}

impl TimerWrites {
    pub fn is_empty(&self) -> bool {
        self.updates.is_empty() && self.inserts.is_empty()
    }

    /// Writes them one statement each; false, after the first, when an updated timer had
    /// moved on (the caller's transaction must not commit what was written before it).
    pub fn write_each(&self, conn: &mut DbConnection) -> Result<bool, AppError> {
        for (row, expected) in &self.updates {
            if !update_guarded(conn, row, *expected)? {
                return Ok(false);
            }
        }
        insert_many(conn, &self.inserts)?;
        Ok(true)
    }
}

/// Timers of an order that have not ended.
pub fn open_for_order(
    conn: &mut DbConnection,
    work_order_id: &str,
) -> Result<Vec<TimerRow>, AppError> {
    Ok(on_backend!(conn, |c| sla_timers::table
        .filter(sla_timers::work_order_id.eq(work_order_id))
        .filter(sla_timers::ended_at.is_null())
        .select(TimerRow::as_select())
        .load(c))?)
}

/// Every timer of these orders, by order, stage and instance.
pub fn for_orders(conn: &mut DbConnection, ids: &[String]) -> Result<Vec<TimerRow>, AppError> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        out.extend(on_backend!(&mut *conn, |c| sla_timers::table
            .filter(sla_timers::work_order_id.eq_any(chunk))
            .select(TimerRow::as_select())
            .order((
                sla_timers::work_order_id,
                sla_timers::started_at,
                sla_timers::stage,
                sla_timers::instance,
            ))
            .load(c))?);
    }
    Ok(out)
}

/// Every timer of one order (as [`for_orders`] reads them) and, in the same statement,
/// whether any force-majeure window ends after `since` or has not ended ([`pauses_since`]
/// would find one): an action reads the windows only then, so it usually makes one round trip
/// here instead of two. `None` when the order has no timers (nothing was learnt of windows).
pub fn of_order_noting_pauses(
    conn: &mut DbConnection,
    work_order_id: &str,
    since: NaiveDateTime,
) -> Result<(Vec<TimerRow>, Option<bool>), AppError> {
    // Two probes of the `ends_at` index: as one `IS NULL OR >` filter the scan would walk
    // every window that ended before.
    let windows = diesel::dsl::exists(sla_pauses::table.filter(sla_pauses::ends_at.is_null())).or(
        diesel::dsl::exists(sla_pauses::table.filter(sla_pauses::ends_at.gt(since))),
    );
    let rows: Vec<(TimerRow, bool)> = on_backend!(conn, |c| sla_timers::table
        .filter(sla_timers::work_order_id.eq(work_order_id))
        .select((TimerRow::as_select(), windows))
        .order((
            sla_timers::started_at,
            sla_timers::stage,
            sla_timers::instance,
        ))
        .load(c))?;
    let any_window = rows.first().map(|(_, w)| *w);
    Ok((rows.into_iter().map(|(t, _)| t).collect(), any_window))
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<TimerRow>, AppError> {
    Ok(sla_timers::table
        .find(id)
        .select(TimerRow::as_select())
        .first(conn)
        .optional()?)
}

/// Timers with something to fire at or before `now`, soonest first.
pub fn due_to_fire(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limit: i64,
) -> Result<Vec<TimerRow>, AppError> {
    Ok(sla_timers::table
        .filter(sla_timers::next_fire_at.le(now))
        .order(sla_timers::next_fire_at.asc())
        .limit(limit)
        .select(TimerRow::as_select())
        .load(conn)?)
}

/// Open timers of orders in any of these areas (for force-majeure changes and recalculation).
pub fn open_in_areas(
    conn: &mut DbConnection,
    area_codes: &[String],
) -> Result<Vec<TimerRow>, AppError> {
    Ok(sla_timers::table
        .filter(sla_timers::area_code.eq_any(area_codes))
        .filter(sla_timers::ended_at.is_null())
        .select(TimerRow::as_select())
        .load(conn)?)
}

/// Timers (open or ended) in these areas that overlap `[from, …)`: a retroactive pause may
/// excuse a breach of an ended timer too.
pub fn in_areas_since(
    conn: &mut DbConnection,
    area_codes: &[String],
    from: NaiveDateTime,
) -> Result<Vec<TimerRow>, AppError> {
    Ok(sla_timers::table
        .filter(sla_timers::area_code.eq_any(area_codes))
        .filter(
            sla_timers::ended_at
                .is_null()
                .or(sla_timers::ended_at.ge(from)),
        )
        .select(TimerRow::as_select())
        .load(conn)?)
}

/// Counts of timers by state (open ones counted by their state, for /metrics).
pub fn count_by_state(conn: &mut DbConnection) -> Result<Vec<(String, i64)>, AppError> {
    Ok(sla_timers::table
        .group_by(sla_timers::state)
        .select((sla_timers::state, diesel::dsl::count_star()))
        .load(conn)?)
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = sla_pauses)]
pub struct PauseRow {
    pub id: String,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub area_codes: super::StoredList,
    pub starts_at: NaiveDateTime,
    pub ends_at: Option<NaiveDateTime>,
    pub reason: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub ended_by: Option<String>,
}

pub fn insert_pause(conn: &mut DbConnection, row: &PauseRow) -> Result<(), AppError> {
    diesel::insert_into(sla_pauses::table)
        .values(row.clone())
        .execute(conn)?;
    Ok(())
}

pub fn find_pause(conn: &mut DbConnection, id: &str) -> Result<Option<PauseRow>, AppError> {
    Ok(sla_pauses::table
        .find(id)
        .select(PauseRow::as_select())
        .first(conn)
        .optional()?)
}

/// Ends a pause now.
pub fn end_pause(
    conn: &mut DbConnection,
    id: &str,
    at: NaiveDateTime,
    by: &str,
) -> Result<bool, AppError> {
    // An open pause, or one whose planned end is still ahead, ends now.
    let n = diesel::update(
        sla_pauses::table
            .find(id)
            .filter(sla_pauses::ends_at.is_null().or(sla_pauses::ends_at.gt(at))),
    )
    .set((sla_pauses::ends_at.eq(at), sla_pauses::ended_by.eq(by)))
    .execute(conn)?;
    Ok(n == 1)
}

/// Every pause, newest first.
pub fn pauses(conn: &mut DbConnection) -> Result<Vec<PauseRow>, AppError> {
    Ok(sla_pauses::table
        .select(PauseRow::as_select())
        .order(sla_pauses::starts_at.desc())
        .load(conn)?)
}

/// Pauses that end after `since` or have not ended, newest first: all that can overlap a
/// timer started at or after `since` (the windows of past years are never read again).
pub fn pauses_since(
    conn: &mut DbConnection,
    since: NaiveDateTime,
) -> Result<Vec<PauseRow>, AppError> {
    Ok(sla_pauses::table
        .filter(
            sla_pauses::ends_at
                .is_null()
                .or(sla_pauses::ends_at.gt(since)),
        )
        .select(PauseRow::as_select())
        .order(sla_pauses::starts_at.desc())
        .load(conn)?)
}

/// The policy version the instances should use: the newest stored.
pub fn latest_policy(conn: &mut DbConnection) -> Result<Option<(String, String)>, AppError> {
    Ok(sla_policy_versions::table
        .order(sla_policy_versions::seq.desc())
        .select((sla_policy_versions::version, sla_policy_versions::body))
        .first(conn)
        .optional()?)
}

pub fn policy_body(conn: &mut DbConnection, version: &str) -> Result<Option<String>, AppError> {
    Ok(sla_policy_versions::table
        .filter(sla_policy_versions::version.eq(version))
        .select(sla_policy_versions::body)
        .first(conn)
        .optional()?)
}

pub fn store_policy(
    conn: &mut DbConnection,
    version: &str,
    body: &str,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    diesel::insert_into(sla_policy_versions::table)
        .values((
            sla_policy_versions::version.eq(version),
            sla_policy_versions::body.eq(body),
            sla_policy_versions::created_at.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

/// Orders that have open timers, optionally only in one area or with timers started since.
pub fn orders_with_open_timers(
    conn: &mut DbConnection,
    area_code: Option<&str>,
    since: Option<NaiveDateTime>,
) -> Result<Vec<String>, AppError> {
    let mut q = sla_timers::table
        .filter(sla_timers::ended_at.is_null())
        .select(sla_timers::work_order_id)
        .distinct()
        .into_boxed();
    if let Some(area) = area_code {
        q = q.filter(sla_timers::area_code.eq(area.to_owned()));
    }
    if let Some(since) = since {
        q = q.filter(sla_timers::started_at.ge(since));
    }
    Ok(q.load(conn)?)
}
