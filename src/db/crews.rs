//! Crews: field crews and handling units.

use super::schema::{crews, work_orders};
use super::{is_unique_violation, DbConnection};
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

/// Orders assigned to the crew that are still being worked (its load).
pub fn open_load(conn: &mut DbConnection, crew_id: &str) -> Result<i64, AppError> {
    Ok(work_orders::table
        .filter(work_orders::assigned_crew_id.eq(crew_id))
        .filter(work_orders::status.eq_any([
            "dispatched",
            "accepted",
            "en_route",
            "on_site",
            "contacted",
            "suspended",
        ]))
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

/// Open assigned orders per crew.
pub fn loads(
    conn: &mut DbConnection,
    crew_ids: &[&str],
) -> Result<std::collections::HashMap<String, i64>, AppError> {
    let rows: Vec<(Option<String>, i64)> = work_orders::table
        .filter(work_orders::assigned_crew_id.eq_any(crew_ids))
        // Stated, so that PostgreSQL's generic plan can prove the partial index applies: it
        // cannot from `= ANY($1)` with the array a parameter.
        .filter(work_orders::assigned_crew_id.is_not_null())
        .filter(work_orders::status.eq_any([
            "dispatched",
            "accepted",
            "en_route",
            "on_site",
            "contacted",
            "suspended",
        ]))
        .group_by(work_orders::assigned_crew_id)
        .select((work_orders::assigned_crew_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(c, n)| c.map(|c| (c, n)))
        .collect())
}

/// Per credited crew: instances of `stage` met and timed (met or breached) among those that
/// started in the local days (Asia/Shanghai, as the reports count) from `since`'s day to
/// `until`'s — routing's recent performance (arrivals, or replies for units).
///
/// Read from the day roll-up cells of these crews (`sla_rollups_crew_idx`: a few cells per
/// crew and day, however busy the crew), as of the roll-up job's last pass (it runs every
/// second by default). Instances it has not folded yet are left out: a ranking score can be
/// a second old, and reading them cost more than the rest of a dispatch under load (the
/// partial index over the roll-up flag fills with entries of folded rows until a vacuum:
/// 2.9 ms a dispatch after 30 s of the lifecycle mix).
pub fn on_time_stats(
    conn: &mut DbConnection,
    stage: &str,
    (since, until): (NaiveDateTime, NaiveDateTime),
    crew_ids: &[&str],
) -> Result<std::collections::HashMap<String, (i64, i64)>, AppError> {
    use super::schema::sla_rollups;
    use crate::domain::reports::local_day;
    use crate::domain::rollup::DAY;
    let first_day = local_day(since.and_utc());
    let last_day = local_day(until.and_utc());
    let mut out: std::collections::HashMap<String, (i64, i64)> = std::collections::HashMap::new();
    let cells: Vec<(String, i64, i64)> = sla_rollups::table
        .filter(sla_rollups::crew_id.eq_any(crew_ids))
        .filter(sla_rollups::stage.eq(stage))
        .filter(sla_rollups::grain.eq(DAY))
        .filter(sla_rollups::period.ge(first_day.format("%Y-%m-%d").to_string()))
        .filter(sla_rollups::period.le(last_day.format("%Y-%m-%d").to_string()))
        .select((
            sla_rollups::crew_id,
            sla_rollups::met,
            sla_rollups::breached,
        ))
        .load(conn)?;
    for (crew, met, breached) in cells {
        let e = out.entry(crew).or_default();
        e.0 += met;
        e.1 += met + breached;
    }
    Ok(out)
}
