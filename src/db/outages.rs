//! Declared mass outages.

use super::schema::{outages, work_orders};
use super::{from_json_list, DbConnection};
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = outages)]
pub struct OutageRow {
    pub id: String,
    pub area_codes: String,
    pub cause: String,
    pub feeder: Option<String>,
    pub started_at: NaiveDateTime,
    pub estimated_restore_at: Option<NaiveDateTime>,
    pub master_id: String,
    pub status: String,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub ended_at: Option<NaiveDateTime>,
    pub cancel_reason: Option<String>,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = outages)]
pub struct OutageChanges {
    pub cause: Option<String>,
    pub estimated_restore_at: Option<Option<NaiveDateTime>>,
    pub status: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
    pub ended_at: Option<Option<NaiveDateTime>>,
    pub cancel_reason: Option<Option<String>>,
}

pub fn insert(conn: &mut DbConnection, row: &OutageRow) -> Result<(), AppError> {
    diesel::insert_into(outages::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<OutageRow>, AppError> {
    Ok(outages::table
        .find(id)
        .select(OutageRow::as_select())
        .first(conn)
        .optional()?)
}

/// Changes an outage if it is still active; false if it ended meanwhile.
pub fn update_active(
    conn: &mut DbConnection,
    id: &str,
    changes: &OutageChanges,
) -> Result<bool, AppError> {
    let n = diesel::update(outages::table.find(id).filter(outages::status.eq("active")))
        .set(changes)
        .execute(conn)?;
    Ok(n == 1)
}

/// Outages, newest first; only active ones if asked.
pub fn list(conn: &mut DbConnection, active_only: bool) -> Result<Vec<OutageRow>, AppError> {
    let mut q = outages::table
        .select(OutageRow::as_select())
        .order(outages::started_at.desc())
        .into_boxed();
    if active_only {
        q = q.filter(outages::status.eq("active"));
    }
    Ok(q.load(conn)?)
}

/// The active outage covering an area, the most recent if several.
pub fn active_in_area(
    conn: &mut DbConnection,
    area_code: &str,
) -> Result<Option<OutageRow>, AppError> {
    Ok(list(conn, true)?
        .into_iter()
        .find(|o| from_json_list(&o.area_codes).iter().any(|a| a == area_code)))
}

/// Orders linked to an outage (its master excluded).
pub fn linked_count(
    conn: &mut DbConnection,
    outage_id: &str,
    master_id: &str,
) -> Result<i64, AppError> {
    Ok(work_orders::table
        .filter(work_orders::outage_id.eq(outage_id))
        .filter(work_orders::id.ne(master_id))
        .count()
        .get_result(conn)?)
}

/// Ids of the orders linked to an outage (its master excluded), oldest first.
pub fn linked_ids(
    conn: &mut DbConnection,
    outage_id: &str,
    master_id: &str,
) -> Result<Vec<String>, AppError> {
    Ok(work_orders::table
        .filter(work_orders::outage_id.eq(outage_id))
        .filter(work_orders::id.ne(master_id))
        .order(work_orders::seq.asc())
        .select(work_orders::id)
        .load(conn)?)
}

/// Sets the outage of an order (the master at declaration, a linked call at creation).
pub fn set_order_outage(
    conn: &mut DbConnection,
    order_id: &str,
    outage_id: &str,
) -> Result<(), AppError> {
    diesel::update(work_orders::table.filter(work_orders::id.eq(order_id)))
        .set(work_orders::outage_id.eq(outage_id))
        .execute(conn)?;
    Ok(())
}
