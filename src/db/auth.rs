//! Refresh tokens (rotation, reuse detection) and login attempt counters (throttling held in
//! the database, so it holds across instances).

use super::schema::{login_throttles, refresh_tokens};
use super::DbConnection;
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = refresh_tokens)]
pub struct RefreshTokenRow {
    pub id: String,
    pub user_id: String,
    pub family_id: String,
    pub token_hash: String,
    pub created_at: NaiveDateTime,
    pub expires_at: NaiveDateTime,
    pub used_at: Option<NaiveDateTime>,
    pub revoked_at: Option<NaiveDateTime>,
    /// When the chain's login happened (null on tokens issued before it was recorded).
    pub family_started_at: Option<NaiveDateTime>,
}

pub fn insert_refresh_token(
    conn: &mut DbConnection,
    row: &RefreshTokenRow,
) -> Result<(), AppError> {
    diesel::insert_into(refresh_tokens::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

pub fn find_refresh_token(
    conn: &mut DbConnection,
    token_hash: &str,
) -> Result<Option<RefreshTokenRow>, AppError> {
    Ok(refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select(RefreshTokenRow::as_select())
        .first(conn)
        .optional()?)
}

/// Marks a token used; false if it was already used (a concurrent refresh won).
pub fn mark_used(conn: &mut DbConnection, id: &str, now: NaiveDateTime) -> Result<bool, AppError> {
    let n = diesel::update(
        refresh_tokens::table
            .find(id)
            .filter(refresh_tokens::used_at.is_null()),
    )
    .set(refresh_tokens::used_at.eq(now))
    .execute(conn)?;
    Ok(n == 1)
}

pub fn revoke_family(
    conn: &mut DbConnection,
    family_id: &str,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::family_id.eq(family_id))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(now))
    .execute(conn)?;
    Ok(())
}

pub fn revoke_user(
    conn: &mut DbConnection,
    user_id: &str,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::user_id.eq(user_id))
            .filter(refresh_tokens::revoked_at.is_null()),
    )
    .set(refresh_tokens::revoked_at.eq(now))
    .execute(conn)?;
    Ok(())
}

/// The counter row of a username over every client address.
pub const ANY_ADDRESS: &str = "*";

/// Takes one login attempt on the counter row of (`username`, `address`), whose window began
/// after `since`: `Ok(None)` if taken, `Ok(Some(window start))` if `limit` failures are
/// already counted in the window. The UPDATE's row lock serialises concurrent attempts
/// (under READ COMMITTED the second re-reads the row after the first commits). Call inside
/// a transaction, which a refusal must roll back.
pub fn take_attempt(
    conn: &mut DbConnection,
    (username, address): (&str, &str),
    limit: i32,
    since: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<Option<NaiveDateTime>, AppError> {
    let fresh = diesel::insert_into(login_throttles::table)
        .values((
            login_throttles::username.eq(username),
            login_throttles::address.eq(address),
            login_throttles::failures.eq(0),
            login_throttles::window_started_at.eq(now),
        ))
        .on_conflict_do_nothing();
    match conn {
        DbConnection::Postgresql(pg) => fresh.execute(pg)?,
        DbConnection::Sqlite(sqlite) => fresh.execute(sqlite)?,
    };
    let row = login_throttles::table
        .filter(login_throttles::username.eq(username))
        .filter(login_throttles::address.eq(address));
    // A window that has passed starts again from this attempt.
    diesel::update(row.filter(login_throttles::window_started_at.lt(since)))
        .set((
            login_throttles::failures.eq(0),
            login_throttles::window_started_at.eq(now),
        ))
        .execute(conn)?;
    let taken = diesel::update(row.filter(login_throttles::failures.lt(limit)))
        .set(login_throttles::failures.eq(login_throttles::failures + 1))
        .execute(conn)?;
    if taken == 1 {
        return Ok(None);
    }
    Ok(Some(
        row.select(login_throttles::window_started_at).first(conn)?,
    ))
}

/// A successful login: this address's failures are cleared, and the attempt it took from the
/// username's count over every address is given back.
pub fn give_back_attempt(
    conn: &mut DbConnection,
    username: &str,
    address: &str,
) -> Result<(), AppError> {
    diesel::update(
        login_throttles::table
            .filter(login_throttles::username.eq(username))
            .filter(login_throttles::address.eq(address)),
    )
    .set(login_throttles::failures.eq(0))
    .execute(conn)?;
    diesel::update(
        login_throttles::table
            .filter(login_throttles::username.eq(username))
            .filter(login_throttles::address.eq(ANY_ADDRESS))
            .filter(login_throttles::failures.gt(0)),
    )
    .set(login_throttles::failures.eq(login_throttles::failures - 1))
    .execute(conn)?;
    Ok(())
}

/// Forgets counter rows whose window ended before `before` (a few per call, by index).
pub fn prune_attempts(conn: &mut DbConnection, before: NaiveDateTime) -> Result<(), AppError> {
    diesel::delete(login_throttles::table.filter(login_throttles::window_started_at.lt(before)))
        .execute(conn)?;
    Ok(())
}
