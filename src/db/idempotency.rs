//! Idempotency keys for order creation: claimed before the work, completed in the same
//! transaction as the order, released if the request fails.

use super::schema::idempotency_keys;
use super::{is_unique_violation, DbConnection};
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = idempotency_keys)]
pub struct IdempotencyRow {
    pub user_id: String,
    pub key: String,
    pub request_hash: String,
    pub state: String,
    pub response_status: Option<i32>,
    pub work_order_id: Option<String>,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// This request owns the key now.
    Claimed,
    /// An earlier request with this key finished.
    Done {
        same_request: bool,
        status: i32,
        work_order_id: String,
    },
    /// An earlier request with this key is still running.
    InFlight,
}

/// Claims `key` for `user_id`. Keys older than `expired_before` are forgotten; an in-flight
/// claim older than `stale_before` belonged to a request that died and is taken over.
pub fn claim(
    conn: &mut DbConnection,
    user_id: &str,
    key: &str,
    request_hash: &str,
    now: NaiveDateTime,
    expired_before: NaiveDateTime,
    stale_before: NaiveDateTime,
) -> Result<Claim, AppError> {
    let this = idempotency_keys::table
        .filter(idempotency_keys::user_id.eq(user_id))
        .filter(idempotency_keys::key.eq(key));
    diesel::delete(this.filter(idempotency_keys::created_at.lt(expired_before))).execute(conn)?;
    let row = IdempotencyRow {
        user_id: user_id.to_owned(),
        key: key.to_owned(),
        request_hash: request_hash.to_owned(),
        state: "in_flight".to_owned(),
        response_status: None,
        work_order_id: None,
        created_at: now,
    };
    match diesel::insert_into(idempotency_keys::table)
        .values(&row)
        .execute(conn)
    {
        Ok(_) => return Ok(Claim::Claimed),
        Err(e) if is_unique_violation(&e) => {}
        Err(e) => return Err(e.into()),
    }
    let existing: Option<IdempotencyRow> = this
        .select(IdempotencyRow::as_select())
        .first(conn)
        .optional()?;
    let Some(existing) = existing else {
        // Released between our insert and read: the caller may simply try again.
        return Ok(Claim::InFlight);
    };
    match (
        existing.state.as_str(),
        existing.response_status,
        existing.work_order_id,
    ) {
        ("done", Some(status), Some(work_order_id)) => Ok(Claim::Done {
            same_request: existing.request_hash == request_hash,
            status,
            work_order_id,
        }),
        _ if existing.created_at < stale_before => {
            let taken = diesel::update(
                this.filter(idempotency_keys::state.eq("in_flight"))
                    .filter(idempotency_keys::created_at.eq(existing.created_at)),
            )
            .set((
                idempotency_keys::created_at.eq(now),
                idempotency_keys::request_hash.eq(request_hash),
            ))
            .execute(conn)?;
            Ok(if taken == 1 {
                Claim::Claimed
            } else {
                Claim::InFlight
            })
        }
        _ => Ok(Claim::InFlight),
    }
}

/// Records the outcome; runs inside the transaction that creates the order.
pub fn complete(
    conn: &mut DbConnection,
    user_id: &str,
    key: &str,
    status: i32,
    work_order_id: &str,
) -> Result<(), AppError> {
    diesel::update(
        idempotency_keys::table
            .filter(idempotency_keys::user_id.eq(user_id))
            .filter(idempotency_keys::key.eq(key)),
    )
    .set((
        idempotency_keys::state.eq("done"),
        idempotency_keys::response_status.eq(status),
        idempotency_keys::work_order_id.eq(work_order_id),
    ))
    .execute(conn)?;
    Ok(())
}

/// Forgets an in-flight claim whose request failed, so the client can retry with the key.
pub fn release(conn: &mut DbConnection, user_id: &str, key: &str) -> Result<(), AppError> {
    diesel::delete(
        idempotency_keys::table
            .filter(idempotency_keys::user_id.eq(user_id))
            .filter(idempotency_keys::key.eq(key))
            .filter(idempotency_keys::state.eq("in_flight")),
    )
    .execute(conn)?;
    Ok(())
}
