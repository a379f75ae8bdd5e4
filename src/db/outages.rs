//! Declared mass outages.

use super::schema::{outages, work_orders};
use super::DbConnection;
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = outages)]
pub struct OutageRow {
    pub id: String,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub area_codes: super::StoredList,
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
        .values(row.clone())
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

/// The active outages, newest first (a handful at any time: they end when restored).
pub fn active(conn: &mut DbConnection) -> Result<Vec<OutageRow>, AppError> {
    Ok(outages::table
        .filter(outages::status.eq("active"))
        .select(OutageRow::as_select())
        .order((outages::started_at.desc(), outages::id.desc()))
        .load(conn)?)
}

/// A page of outages, newest first, after the keyset `(started_at, id)`; only active ones if
/// asked. Served by `outages_started_idx` / `outages_status_started_idx`.
pub fn page(
    conn: &mut DbConnection,
    active_only: bool,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> Result<Vec<OutageRow>, AppError> {
    let mut q = outages::table
        .select(OutageRow::as_select())
        .order((outages::started_at.desc(), outages::id.desc()))
        .limit(limit)
        .into_boxed();
    if active_only {
        q = q.filter(outages::status.eq("active"));
    }
    if let Some((at, id)) = after {
        // The bound is implied by the `OR`; stated, it bounds the index range (a deep page
        // starts at the cursor).
        q = q.filter(outages::started_at.le(at)).filter(
            outages::started_at
                .lt(at)
                .or(outages::started_at.eq(at).and(outages::id.lt(id))),
        );
    }
    Ok(q.load(conn)?)
}

/// Locks an active outage's row for the rest of the transaction (a call being linked to it):
/// a restore or cancel committed meanwhile makes this false, and one that comes later waits
/// for the linked call and then resolves or releases it too.
pub fn lock_active(conn: &mut DbConnection, id: &str) -> Result<bool, AppError> {
    let n = diesel::update(outages::table.find(id).filter(outages::status.eq("active")))
        .set(outages::status.eq(outages::status))
        .execute(conn)?;
    Ok(n == 1)
}

/// How many orders are linked to each of these outages (their masters excluded): one
/// grouped query over `work_orders_outage_idx` for a whole page.
pub fn linked_counts(
    conn: &mut DbConnection,
    outages: &[(String, String)],
) -> Result<std::collections::HashMap<String, i64>, AppError> {
    if outages.is_empty() {
        return Ok(Default::default());
    }
    let ids: Vec<&str> = outages.iter().map(|(id, _)| id.as_str()).collect();
    let masters: Vec<&str> = outages.iter().map(|(_, m)| m.as_str()).collect();
    let rows: Vec<(Option<String>, i64)> = work_orders::table
        .filter(work_orders::outage_id.eq_any(ids))
        // Stated, so that PostgreSQL's generic plan can prove the partial index applies: it
        // cannot from `= ANY($1)` with the array a parameter.
        .filter(work_orders::outage_id.is_not_null())
        .filter(work_orders::id.ne_all(masters))
        .group_by(work_orders::outage_id)
        .select((work_orders::outage_id, diesel::dsl::count_star()))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, n)| id.map(|id| (id, n)))
        .collect())
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
