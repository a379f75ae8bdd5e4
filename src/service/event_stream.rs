//! Live-event use cases: scoping events to a reader, pages of events below the stream's
//! high-water mark, browser tickets, and the per-user bound on open streams.

use crate::auth::tokens::{hash_refresh_token, new_refresh_token};
use crate::db::event_stream as store;
use crate::db::events::EventRow;
use crate::db::DbConnection;
use crate::domain::event_stream::EventAudience;
use crate::domain::Actor;
use crate::errors::AppError;
use crate::errors::ProblemCode;
use chrono::{DateTime, TimeDelta, Utc};

/// How many rows one page read takes from the database.
const CHUNK: i64 = 500;

/// Attaches to each event who may see it (its order's area and crews).
pub fn with_audience(
    conn: &mut DbConnection,
    rows: Vec<EventRow>,
) -> Result<Vec<(EventRow, EventAudience)>, AppError> {
    let ids: Vec<&str> = rows.iter().map(|r| r.work_order_id.as_str()).collect();
    let scopes = store::order_scopes(conn, &ids)?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let (area, crew) = scopes.get(&row.work_order_id).cloned().unwrap_or_default();
            let data = serde_json::from_str(&row.data).unwrap_or(serde_json::Value::Null);
            let audience = EventAudience::new(area, crew, &data);
            (row, audience)
        })
        .collect())
}

/// A page of the events a reader may see.
#[derive(Debug)]
pub struct EventPage {
    pub items: Vec<EventRow>,
    /// Every id up to here has been looked at: the next page starts after it.
    pub position: i64,
    /// Whether events below the high-water mark remain after `position`.
    pub more: bool,
}

/// The events after `after` up to the high-water mark `upto` that `actor` may see, at most
/// `limit`; looks at no more than `max_scan` rows (a reader who sees few events gets short
/// pages rather than slow ones).
pub fn page(
    conn: &mut DbConnection,
    actor: &Actor,
    after: i64,
    upto: i64,
    limit: usize,
    max_scan: usize,
) -> Result<EventPage, AppError> {
    let mut items = Vec::new();
    let mut position = after;
    let mut scanned = 0;
    'chunks: while items.len() < limit && position < upto && scanned < max_scan {
        let rows = store::between(conn, position, upto, CHUNK)?;
        let exhausted = (rows.len() as i64) < CHUNK;
        for (row, audience) in with_audience(conn, rows)? {
            position = row.id;
            scanned += 1;
            if audience.visible_to(actor) {
                items.push(row);
                if items.len() == limit {
                    break 'chunks;
                }
            }
        }
        if exhausted {
            position = upto;
        }
    }
    Ok(EventPage {
        items,
        position,
        more: position < upto,
    })
}

/// Issues a single-use browser ticket for `user_id`: the ticket and when it expires.
pub fn issue_ticket(
    conn: &mut DbConnection,
    user_id: &str,
    now: DateTime<Utc>,
    lifetime: TimeDelta,
) -> Result<(String, DateTime<Utc>), AppError> {
    let ticket = new_refresh_token();
    let expires = now + lifetime;
    store::insert_ticket(
        conn,
        &hash_refresh_token(&ticket),
        user_id,
        expires.naive_utc(),
        now.naive_utc(),
    )?;
    Ok((ticket, expires))
}

/// The user a ticket was issued to, using the ticket up; None if unknown, used or expired.
pub fn redeem_ticket(
    conn: &mut DbConnection,
    ticket: &str,
    now: DateTime<Utc>,
) -> Result<Option<String>, AppError> {
    store::redeem_ticket(conn, &hash_refresh_token(ticket), now.naive_utc())
}

/// The per-user bound on open streams.
#[derive(Debug, Clone, Copy)]
pub struct StreamLimit {
    pub max_per_user: i64,
    /// A registration whose heartbeat is older than this no longer counts (its instance died).
    pub stale_after: TimeDelta,
}

/// Registers a stream; 429 when the user already has the maximum open.
pub fn open_stream(
    conn: &mut DbConnection,
    stream_id: &str,
    user_id: &str,
    limit: StreamLimit,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let opened = store::open_stream(
        conn,
        stream_id,
        user_id,
        limit.max_per_user,
        now.naive_utc(),
        (now - limit.stale_after).naive_utc(),
    )?;
    if opened {
        Ok(())
    } else {
        Err(AppError::TooManyRequests {
            code: ProblemCode::TooManyStreams,
            detail: format!(
                "this user already has {} event streams open; close one first",
                limit.max_per_user
            ),
            retry_after_secs: 15,
        })
    }
}

/// Records a stream's heartbeat; false when its registration is gone (reclaimed as stale).
pub fn touch_stream(
    conn: &mut DbConnection,
    stream_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, AppError> {
    store::touch_stream(conn, stream_id, now.naive_utc())
}

/// Removes a stream's registration (it ended).
pub fn close_stream(conn: &mut DbConnection, stream_id: &str) -> Result<(), AppError> {
    store::close_stream(conn, stream_id)
}
