//! Reading the event table for live streams (with the snapshot that tells which gaps are
//! final), browser tickets, and the registry of open streams.

use super::schema::{event_streams, event_tickets, users, work_order_events, work_orders};
use super::DbConnection;
use crate::db::events::EventRow;
use crate::domain::event_stream::Snapshot;
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::dsl::sql;
use diesel::prelude::*;
use diesel::sql_types::Text;
use std::collections::HashMap;

/// The events after an id, ascending (an expression usable on either backend's connection).
macro_rules! events_after {
    ($conn:expr, $after:expr, $limit:expr) => {
        work_order_events::table
            .select(EventRow::as_select())
            .filter(work_order_events::id.gt($after))
            .order(work_order_events::id.asc())
            .limit($limit)
            .load::<EventRow>($conn)
    };
}

/// The newest event id, or 0.
macro_rules! newest_id {
    ($conn:expr) => {
        work_order_events::table
            .select(diesel::dsl::max(work_order_events::id))
            .first::<Option<i64>>($conn)
            .map(|m| m.unwrap_or(0))
    };
}

fn pg_snapshot(pg: &mut diesel::PgConnection) -> QueryResult<Snapshot> {
    let text: String = diesel::select(sql::<Text>("pg_current_snapshot()::text")).get_result(pg)?;
    Snapshot::parse_pg(&text).ok_or_else(|| {
        diesel::result::Error::DeserializationError(format!("unreadable snapshot {text:?}").into())
    })
}

/// Runs `read` in one PostgreSQL snapshot (a read-only repeatable-read transaction) and
/// returns that snapshot with the result.
fn in_snapshot<T>(
    pg: &mut diesel::PgConnection,
    read: impl FnOnce(&mut diesel::PgConnection) -> QueryResult<T>,
) -> QueryResult<(Snapshot, T)> {
    pg.build_transaction()
        .repeatable_read()
        .read_only()
        .run(|pg| {
            // The first statement fixes the transaction's snapshot; the read shares it.
            let snapshot = pg_snapshot(pg)?;
            Ok((snapshot, read(pg)?))
        })
}

/// The committed events after `after` (ascending, at most `limit`), with the snapshot they
/// were read in.
pub fn read_after(
    conn: &mut DbConnection,
    after: i64,
    limit: i64,
) -> Result<(Snapshot, Vec<EventRow>), AppError> {
    Ok(match conn {
        DbConnection::Postgresql(pg) => in_snapshot(pg, |pg| events_after!(pg, after, limit))?,
        DbConnection::Sqlite(lite) => (Snapshot::Serial, events_after!(lite, after, limit)?),
    })
}

/// The newest event id (0 when there is none), with the snapshot it was read in.
pub fn newest(conn: &mut DbConnection) -> Result<(Snapshot, i64), AppError> {
    Ok(match conn {
        DbConnection::Postgresql(pg) => in_snapshot(pg, |pg| newest_id!(pg))?,
        DbConnection::Sqlite(lite) => (Snapshot::Serial, newest_id!(lite)?),
    })
}

/// A fresh PostgreSQL transaction id, committed: above every transaction id assigned
/// before the call (the bound of a gap, see domain::event_stream). None on SQLite.
pub fn new_transaction_id(conn: &mut DbConnection) -> Result<Option<u64>, AppError> {
    match conn {
        DbConnection::Postgresql(pg) => {
            // A statement outside a transaction block is its own transaction: the id is
            // assigned and committed with it.
            let text: String =
                diesel::select(sql::<Text>("pg_current_xact_id()::text")).get_result(pg)?;
            text.parse()
                .map(Some)
                .map_err(|_| AppError::internal(format!("unreadable transaction id {text:?}")))
        }
        DbConnection::Sqlite(_) => Ok(None),
    }
}

/// The current snapshot (Serial on SQLite).
pub fn current_snapshot(conn: &mut DbConnection) -> Result<Snapshot, AppError> {
    Ok(match conn {
        DbConnection::Postgresql(pg) => pg_snapshot(pg)?,
        DbConnection::Sqlite(_) => Snapshot::Serial,
    })
}

/// Events in `(after, upto]`, ascending, at most `limit`: below the stream's position every
/// id is final, so plain id order is complete.
pub fn between(
    conn: &mut DbConnection,
    after: i64,
    upto: i64,
    limit: i64,
) -> Result<Vec<EventRow>, AppError> {
    Ok(work_order_events::table
        .select(EventRow::as_select())
        .filter(work_order_events::id.gt(after))
        .filter(work_order_events::id.le(upto))
        .order(work_order_events::id.asc())
        .limit(limit)
        .load(conn)?)
}

/// Area and assigned crew of each order, for scoping its events.
pub fn order_scopes(
    conn: &mut DbConnection,
    order_ids: &[&str],
) -> Result<HashMap<String, (String, Option<String>)>, AppError> {
    let mut out = HashMap::new();
    for chunk in order_ids.chunks(500) {
        let rows: Vec<(String, String, Option<String>)> = work_orders::table
            .filter(work_orders::id.eq_any(chunk))
            .select((
                work_orders::id,
                work_orders::area_code,
                work_orders::assigned_crew_id,
            ))
            .load(conn)?;
        for (id, area, crew) in rows {
            out.insert(id, (area, crew));
        }
    }
    Ok(out)
}

pub fn insert_ticket(
    conn: &mut DbConnection,
    token_hash: &str,
    user_id: &str,
    expires_at: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    diesel::delete(event_tickets::table.filter(event_tickets::expires_at.le(now))).execute(conn)?;
    diesel::insert_into(event_tickets::table)
        .values((
            event_tickets::token_hash.eq(token_hash),
            event_tickets::user_id.eq(user_id),
            event_tickets::expires_at.eq(expires_at),
        ))
        .execute(conn)?;
    Ok(())
}

/// Uses a ticket up: its user, if it existed and had not expired. A second use finds nothing.
pub fn redeem_ticket(
    conn: &mut DbConnection,
    token_hash: &str,
    now: NaiveDateTime,
) -> Result<Option<String>, AppError> {
    super::write_transaction(conn, |conn| {
        let user: Option<(String, NaiveDateTime)> = event_tickets::table
            .find(token_hash)
            .select((event_tickets::user_id, event_tickets::expires_at))
            .first(conn)
            .optional()?;
        let deleted = diesel::delete(event_tickets::table.find(token_hash)).execute(conn)?;
        Ok(user
            .filter(|(_, expires)| deleted == 1 && *expires > now)
            .map(|(u, _)| u))
    })
}

/// Registers a stream unless the user already has `max` live ones (a row counts while its
/// heartbeat is newer than `stale_before`). Serialised per user across instances.
pub fn open_stream(
    conn: &mut DbConnection,
    stream_id: &str,
    user_id: &str,
    max: i64,
    now: NaiveDateTime,
    stale_before: NaiveDateTime,
) -> Result<bool, AppError> {
    super::write_transaction(conn, |conn| {
        if let DbConnection::Postgresql(pg) = conn {
            users::table
                .find(user_id)
                .select(users::id)
                .for_update()
                .first::<String>(pg)
                .optional()?;
        }
        diesel::delete(
            event_streams::table
                .filter(event_streams::user_id.eq(user_id))
                .filter(event_streams::seen_at.lt(stale_before)),
        )
        .execute(conn)?;
        let open: i64 = event_streams::table
            .filter(event_streams::user_id.eq(user_id))
            .count()
            .get_result(conn)?;
        if open >= max {
            return Ok(false);
        }
        diesel::insert_into(event_streams::table)
            .values((
                event_streams::id.eq(stream_id),
                event_streams::user_id.eq(user_id),
                event_streams::opened_at.eq(now),
                event_streams::seen_at.eq(now),
            ))
            .execute(conn)?;
        Ok(true)
    })
}

/// Records a stream's heartbeat; false if its registration is gone (reclaimed as stale).
pub fn touch_stream(
    conn: &mut DbConnection,
    stream_id: &str,
    now: NaiveDateTime,
) -> Result<bool, AppError> {
    let n = diesel::update(event_streams::table.find(stream_id))
        .set(event_streams::seen_at.eq(now))
        .execute(conn)?;
    Ok(n == 1)
}

pub fn close_stream(conn: &mut DbConnection, stream_id: &str) -> Result<(), AppError> {
    diesel::delete(event_streams::table.find(stream_id)).execute(conn)?;
    Ok(())
}
