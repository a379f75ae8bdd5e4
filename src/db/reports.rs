//! Reads for the supervisor reports: stage instances by the period they started in, credited
//! counts, the open backlog and the breach list. Each query is bounded by an index on the
//! period (or on open rows only); none reads a whole table.

use super::schema::{sla_timers, work_orders};
use super::DbConnection;
use crate::domain::sla::TimerState;
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// A stage instance with what the reports group it by.
#[derive(Debug, Clone, Queryable)]
pub struct InstanceRow {
    pub timer_id: String,
    pub work_order_id: String,
    pub stage: String,
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
    pub assigned_crew_id: Option<String>,
}

/// What narrows a report.
#[derive(Debug, Clone, Default)]
pub struct InstanceFilter {
    pub stage: Option<String>,
    pub kind: Option<String>,
    /// `None`: every area.
    pub areas: Option<Vec<String>>,
    /// Only instances not ended (served by the partial index on open instances).
    pub open_only: bool,
}

/// The column tuple of `INSTANCE_COLUMNS`.
pub type InstanceColumns = (
    sla_timers::id,
    sla_timers::work_order_id,
    sla_timers::stage,
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
    work_orders::assigned_crew_id,
);

/// The columns of an `InstanceRow`, in order.
pub const INSTANCE_COLUMNS: InstanceColumns = (
    sla_timers::id,
    sla_timers::work_order_id,
    sla_timers::stage,
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
    work_orders::assigned_crew_id,
);

/// Instances whose stage started in `[from, to)` (a partial day at a report's edge), of one
/// stage if given, or only the open ones. The caller filters kind and area: the query keeps
/// to the period's index (with the stage, or the partial index of open instances) whatever
/// the planner knows, where an `area_code IN (…)` could tempt it onto an area index that
/// walks every instance of those areas.
pub fn instances(
    conn: &mut DbConnection,
    from: NaiveDateTime,
    to: NaiveDateTime,
    filter: &InstanceFilter,
) -> Result<Vec<InstanceRow>, AppError> {
    let mut q = sla_timers::table
        .inner_join(work_orders::table.on(work_orders::id.eq(sla_timers::work_order_id)))
        .filter(sla_timers::started_at.ge(from))
        .filter(sla_timers::started_at.lt(to))
        .select(INSTANCE_COLUMNS)
        .into_boxed();
    if filter.open_only {
        q = q.filter(sla_timers::ended_at.is_null());
    } else if let Some(stage) = &filter.stage {
        q = q.filter(sla_timers::stage.eq(stage.clone()));
    }
    Ok(q.load(conn)?)
}

/// Resolves in `[from, to)` by a crew that had resolved the same order before (rare: a
/// reopen came between), with when it had: `orders` counts an order once.
pub fn repeat_resolves(
    conn: &mut DbConnection,
    from: NaiveDateTime,
    to: NaiveDateTime,
) -> Result<Vec<super::credits::CreditRow>, AppError> {
    use super::schema::crew_credits;
    Ok(crew_credits::table
        .filter(crew_credits::repeat_of_at.is_not_null())
        .filter(crew_credits::at.ge(from))
        .filter(crew_credits::at.lt(to))
        .select(super::credits::CreditRow::as_select())
        .load(conn)?)
}

/// Statuses of orders still being worked or awaiting their callback.
pub const OPEN_STATUSES: [&str; 10] = [
    "new",
    "dispatched",
    "accepted",
    "en_route",
    "on_site",
    "contacted",
    "suspended",
    "resolved",
    "reopened",
    "merged",
];

/// Open orders: id, status, area, created.
pub fn open_orders(
    conn: &mut DbConnection,
    areas: Option<&[String]>,
) -> Result<Vec<(String, String, String, NaiveDateTime)>, AppError> {
    let mut q = work_orders::table
        .filter(work_orders::status.eq_any(OPEN_STATUSES))
        .select((
            work_orders::id,
            work_orders::status,
            work_orders::area_code,
            work_orders::created_at,
        ))
        .into_boxed();
    if let Some(areas) = areas {
        q = q.filter(work_orders::area_code.eq_any(areas.to_vec()));
    }
    Ok(q.load(conn)?)
}

/// Open timers (not ended): order, state, warned.
pub fn open_timers(
    conn: &mut DbConnection,
) -> Result<Vec<(String, String, Option<NaiveDateTime>)>, AppError> {
    Ok(sla_timers::table
        .filter(
            sla_timers::state.eq_any(
                [
                    TimerState::Running,
                    TimerState::Paused,
                    TimerState::Breached,
                ]
                .map(TimerState::as_str),
            ),
        )
        .filter(sla_timers::ended_at.is_null())
        .select((
            sla_timers::work_order_id,
            sla_timers::state,
            sla_timers::warned_at,
        ))
        .load(conn)?)
}

/// A breached instance for the breach list.
#[derive(Debug, Clone, Queryable)]
pub struct BreachRow {
    pub timer_id: String,
    pub work_order_id: String,
    pub number: Option<String>,
    pub kind: String,
    pub area_code: String,
    pub stage: String,
    pub instance: i32,
    #[diesel(deserialize_as = String)]
    pub state: TimerState,
    pub credited_crew_id: Option<String>,
    pub assigned_crew_id: Option<String>,
    pub started_at: NaiveDateTime,
    pub due_at: Option<NaiveDateTime>,
    pub breached_at: Option<NaiveDateTime>,
    pub ended_at: Option<NaiveDateTime>,
}

/// Breached (and later excused) instances that started in `[from, to)`, by start then id,
/// after the keyset `after`; served by the partial index on breached instances.
pub fn breaches(
    conn: &mut DbConnection,
    from: NaiveDateTime,
    to: NaiveDateTime,
    filter: &InstanceFilter,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> Result<Vec<BreachRow>, AppError> {
    let mut q = sla_timers::table
        .inner_join(work_orders::table.on(work_orders::id.eq(sla_timers::work_order_id)))
        .filter(sla_timers::breached_at.is_not_null())
        .filter(sla_timers::started_at.ge(from))
        .filter(sla_timers::started_at.lt(to))
        .order((sla_timers::started_at.asc(), sla_timers::id.asc()))
        .limit(limit)
        .select((
            sla_timers::id,
            sla_timers::work_order_id,
            work_orders::number,
            work_orders::kind,
            sla_timers::area_code,
            sla_timers::stage,
            sla_timers::instance,
            sla_timers::state,
            sla_timers::credited_crew_id,
            work_orders::assigned_crew_id,
            sla_timers::started_at,
            sla_timers::due_at,
            sla_timers::breached_at,
            sla_timers::ended_at,
        ))
        .into_boxed();
    if let Some((at, id)) = after {
        // The bound is implied by the `OR`; stated, it bounds the index range (a deep page
        // starts at the cursor).
        q = q.filter(sla_timers::started_at.ge(at)).filter(
            sla_timers::started_at
                .gt(at)
                .or(sla_timers::started_at.eq(at).and(sla_timers::id.gt(id))),
        );
    }
    if let Some(stage) = &filter.stage {
        q = q.filter(sla_timers::stage.eq(stage.clone()));
    }
    if let Some(areas) = &filter.areas {
        q = q.filter(sla_timers::area_code.eq_any(areas.clone()));
    }
    Ok(q.load(conn)?)
}
