//! The append-only work-order events. Ids come from the database's sequence and only grow.

use super::schema::work_order_events;
use super::{on_backend, DbConnection};
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = work_order_events)]
pub struct EventRow {
    pub id: i64,
    pub work_order_id: String,
    pub event_type: String,
    pub actor_id: Option<String>,
    pub actor_username: Option<String>,
    pub actor_role: Option<String>,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub reason: Option<String>,
    pub data: String,
    pub at: NaiveDateTime,
}

/// None is written as NULL (none of these columns has a default), so the statement's text is
/// the same for every event and the connection prepares it once.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = work_order_events, treat_none_as_default_value = false)]
pub struct NewEvent {
    pub work_order_id: String,
    pub event_type: String,
    pub actor_id: Option<String>,
    pub actor_username: Option<String>,
    pub actor_role: Option<String>,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub reason: Option<String>,
    pub data: String,
    pub at: NaiveDateTime,
}

pub fn insert(conn: &mut DbConnection, event: &NewEvent) -> Result<(), AppError> {
    on_backend!(conn, |c| diesel::insert_into(work_order_events::table)
        .values(event)
        .execute(c))?;
    Ok(())
}

/// Inserts an event and returns it as stored (its id: the writer's own row, never a
/// concurrent writer's newer one).
pub fn insert_returning(conn: &mut DbConnection, event: &NewEvent) -> Result<EventRow, AppError> {
    // `as_returning` is typed per backend: one statement for each.
    let table = work_order_events::table;
    Ok(match conn {
        DbConnection::Postgresql(pg) => diesel::insert_into(table)
            .values(event)
            .returning(EventRow::as_returning())
            .get_result(pg)?,
        DbConnection::Sqlite(sqlite) => diesel::insert_into(table)
            .values(event)
            .returning(EventRow::as_returning())
            .get_result(sqlite)?,
    })
}

/// Events of one order, oldest first, after the given id.
pub fn for_order(
    conn: &mut DbConnection,
    work_order_id: &str,
    after: Option<i64>,
    limit: i64,
) -> Result<Vec<EventRow>, AppError> {
    let mut q = work_order_events::table
        .filter(work_order_events::work_order_id.eq(work_order_id))
        .select(EventRow::as_select())
        .order(work_order_events::id.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(work_order_events::id.gt(after));
    }
    Ok(q.load(conn)?)
}

/// Appends many events: multi-row statements on PostgreSQL (one round trip per 200 rows);
/// row by row on SQLite, where a statement costs no round trip. The shared query builder
/// cannot express a multi-row insert for both backends.
pub fn insert_many(conn: &mut DbConnection, list: &[NewEvent]) -> Result<(), AppError> {
    match conn {
        DbConnection::Postgresql(pg) => {
            for chunk in list.chunks(200) {
                diesel::insert_into(work_order_events::table)
                    .values(chunk)
                    .execute(pg)?;
            }
        }
        DbConnection::Sqlite(_) => {
            for e in list {
                insert(conn, e)?;
            }
        }
    }
    Ok(())
}
