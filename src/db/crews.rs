//! Crews: field crews and handling units.

use super::schema::{crews, work_orders};
use super::{is_unique_violation, DbConnection, KeptPrepared};
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = crews)]
pub struct CrewRow {
    pub id: String,
    pub code: String,
    pub name: String,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub kind: crate::domain::CrewKind,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub area_codes: super::StoredList,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub skills: super::StoredList,
    pub capacity: i32,
    pub on_duty: bool,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub located_at: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = crews)]
pub struct CrewChanges {
    pub name: Option<String>,
    pub kind: Option<String>,
    pub area_codes: Option<String>,
    pub skills: Option<String>,
    pub capacity: Option<i32>,
    pub on_duty: Option<bool>,
    pub lat: Option<Option<f64>>,
    pub lon: Option<Option<f64>>,
    pub located_at: Option<Option<NaiveDateTime>>,
    pub updated_at: Option<NaiveDateTime>,
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<CrewRow>, AppError> {
    Ok(crews::table
        .find(id)
        .select(CrewRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert(conn: &mut DbConnection, row: &CrewRow) -> Result<(), AppError> {
    diesel::insert_into(crews::table)
        .values(row.clone())
        .execute(conn)
        .map_err(|e| {
            if is_unique_violation(&e) {
                AppError::AlreadyExists {
                    detail: format!("crew code `{}` exists", row.code),
                }
            } else {
                e.into()
            }
        })?;
    Ok(())
}

pub fn update(conn: &mut DbConnection, id: &str, changes: &CrewChanges) -> Result<(), AppError> {
    diesel::update(crews::table.find(id))
        .set(changes)
        .execute(conn)?;
    Ok(())
}

pub fn list(
    conn: &mut DbConnection,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<CrewRow>, AppError> {
    let mut q = crews::table
        .select(CrewRow::as_select())
        .order(crews::code.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(crews::code.gt(after.to_owned()));
    }
    Ok(q.load(conn)?)
}

/// The statuses of an order that count toward its crew's load: assigned and still being
/// worked.
pub const LOAD_STATUSES: [&str; 6] = [
    "dispatched",
    "accepted",
    "en_route",
    "on_site",
    "contacted",
    "suspended",
];

/// Orders assigned to the crew that are still being worked (its load).
pub fn open_load(conn: &mut DbConnection, crew_id: &str) -> Result<i64, AppError> {
    Ok(work_orders::table
        .filter(work_orders::assigned_crew_id.eq(crew_id))
        .filter(work_orders::status.eq_any(LOAD_STATUSES))
        .count()
        .get_result(conn)?)
}

/// Every crew (routing considers them all; a province has hundreds, not millions).
pub fn all(conn: &mut DbConnection) -> Result<Vec<CrewRow>, AppError> {
    Ok(crews::table
        .select(CrewRow::as_select())
        .order(crews::code.asc())
        .load(conn)?)
}

/// A crew's standing for routing: its load and its recent on-time record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Standing {
    /// Orders assigned to it that are still being worked.
    pub load: i64,
    /// Instances of the stage it was credited with that met their target.
    pub met: i64,
    /// Instances of the stage it was credited with that were timed (met or breached).
    pub timed: i64,
}

/// Per crew of `crew_ids`: its load, and the instances of `stage` it was credited with that
/// met and that were timed (met or breached) among those that started in the local days
/// (Asia/Shanghai, as the reports count) from `since`'s day to `until`'s — routing's recent
/// performance (arrivals, or replies for units). One statement, so a dispatch reads both in
/// one round trip: the loads grouped by crew, `UNION ALL` each crew's record.
///
/// The loads are counted through `work_orders_crew_idx` (crew, status), both columns index
/// conditions (`assigned_crew_id IS NOT NULL` is stated so that PostgreSQL's generic plan can
/// prove the partial index applies: it cannot from `= ANY($1)` with the array a parameter):
/// only orders still being worked are read, however many a crew has closed. (A count per crew
/// as a correlated subquery was tried: its plan took the status as a filter and read every
/// order the crew ever had.) The record is read from the day roll-up cells of each crew, a
/// correlated subquery per crew (`sla_rollups_crew_idx`: a few cells per crew and day,
/// however busy the crew), as of the roll-up job's last pass (it runs every second by
/// default). Instances it has not folded yet are left out: a ranking score can be a second
/// old, and reading them cost more than the rest of a dispatch under load (the partial index
/// over the roll-up flag fills with entries of folded rows until a vacuum: 2.9 ms a dispatch
/// after 30 s of the lifecycle mix).
pub fn standings(
    conn: &mut DbConnection,
    stage: &str,
    (since, until): (NaiveDateTime, NaiveDateTime),
    crew_ids: &[&str],
) -> Result<std::collections::HashMap<String, Standing>, AppError> {
    use crate::domain::reports::local_day;
    use crate::domain::rollup::DAY;
    use diesel::dsl::sql;
    use diesel::sql_types::{BigInt, Text};
    if crew_ids.is_empty() {
        return Ok(std::collections::HashMap::new());
    }
    let first_day = local_day(since.and_utc()).format("%Y-%m-%d").to_string();
    let last_day = local_day(until.and_utc()).format("%Y-%m-%d").to_string();
    let loads = work_orders::table
        .filter(work_orders::assigned_crew_id.eq_any(crew_ids))
        .filter(work_orders::assigned_crew_id.is_not_null())
        .filter(work_orders::status.eq_any(LOAD_STATUSES))
        .group_by(work_orders::assigned_crew_id)
        .select((
            work_orders::assigned_crew_id,
            diesel::dsl::count_star(),
            sql::<BigInt>("0"),
            sql::<BigInt>("0"),
        ));
    // Per crew, one range of `sla_rollups_crew_idx` (crew, stage, grain, period), every
    // condition an index condition. Grouped over `crew_id = ANY(…)` instead, the plan depended
    // on the statistics: without them the primary key (grain, period, …) looked cheaper, and
    // it reads the window's cells of every crew.
    let cells = |sum: &str| {
        sql::<BigInt>(&format!(
            "(SELECT CAST(COALESCE(SUM({sum}), 0) AS BIGINT) FROM sla_rollups r \
             WHERE r.crew_id = crews.id AND r.stage = "
        ))
        .bind::<Text, _>(stage.to_owned())
        .sql(" AND r.grain = ")
        .bind::<Text, _>(DAY)
        .sql(" AND r.period >= ")
        .bind::<Text, _>(first_day.clone())
        .sql(" AND r.period <= ")
        .bind::<Text, _>(last_day.clone())
        .sql(")")
    };
    let records = crews::table.filter(crews::id.eq_any(crew_ids)).select((
        crews::id.nullable(),
        sql::<BigInt>("0"),
        cells("r.met"),
        cells("r.met + r.breached"),
    ));
    let standings = loads.union_all(records);
    let rows: Vec<(Option<String>, i64, i64, i64)> = match conn {
        // Its text is one on PostgreSQL (`= ANY($1)`), kept prepared as the two queries were
        // (diesel would prepare it anew each time: it holds SQL literals).
        DbConnection::Postgresql(c) => KeptPrepared(standings).load(c)?,
        // On SQLite the text varies with the number of crews (`IN (?, ?, …)`).
        DbConnection::Sqlite(c) => standings.load(c)?,
    };
    let mut out: std::collections::HashMap<String, Standing> = std::collections::HashMap::new();
    for (crew, load, met, timed) in rows {
        if let Some(crew) = crew {
            let s = out.entry(crew).or_default();
            s.load += load;
            s.met += met;
            s.timed += timed;
        }
    }
    Ok(out)
}
