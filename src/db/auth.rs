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

/// What taking a login attempt on one counter row found.
#[derive(Debug, PartialEq, Eq)]
pub enum Attempt {
    Taken,
    /// `limit` failures are counted in the window that began then: refuse (429).
    Refused(NaiveDateTime),
    /// Failures and attempts still being checked fill the limit: wait for those to finish.
    Busy,
}

/// Takes one login attempt on the counter row of (`username`, `address`), whose window began
/// after `since`: it becomes pending while the password is checked. The UPDATE's row lock
/// serialises concurrent attempts (under READ COMMITTED the second re-reads the row after the
/// first commits), so failures and pending attempts never exceed `limit` together. Call
/// inside a transaction, which anything but `Taken` must roll back.
pub fn take_attempt(
    conn: &mut DbConnection,
    (username, address): (&str, &str),
    limit: i32,
    since: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<Attempt, AppError> {
    let fresh = diesel::insert_into(login_throttles::table)
        .values((
            login_throttles::username.eq(username),
            login_throttles::address.eq(address),
            login_throttles::failures.eq(0),
            login_throttles::pending.eq(0),
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
    // A window that has passed starts again from this attempt (a pending count left by a
    // crashed check goes with it).
    diesel::update(row.filter(login_throttles::window_started_at.lt(since)))
        .set((
            login_throttles::failures.eq(0),
            login_throttles::pending.eq(0),
            login_throttles::window_started_at.eq(now),
        ))
        .execute(conn)?;
    let taken = diesel::update(
        row.filter((login_throttles::failures + login_throttles::pending).lt(limit)),
    )
    .set(login_throttles::pending.eq(login_throttles::pending + 1))
    .execute(conn)?;
    if taken == 1 {
        return Ok(Attempt::Taken);
    }
    let (failures, started): (i32, NaiveDateTime) = row
        .select((
            login_throttles::failures,
            login_throttles::window_started_at,
        ))
        .first(conn)?;
    Ok(if failures >= limit {
        Attempt::Refused(started)
    } else {
        Attempt::Busy
    })
}

/// The end of a checked attempt on the rows of (`username`, `address`) and (`username`, every
/// address): no longer pending; a failure is counted on both, a success clears this
/// address's failures.
pub fn finish_attempt(
    conn: &mut DbConnection,
    username: &str,
    address: &str,
    failed: bool,
) -> Result<(), AppError> {
    for key in [address, ANY_ADDRESS] {
        let row = login_throttles::table
            .filter(login_throttles::username.eq(username))
            .filter(login_throttles::address.eq(key))
            .filter(login_throttles::pending.gt(0));
        let done = login_throttles::pending.eq(login_throttles::pending - 1);
        if failed {
            diesel::update(row)
                .set((
                    done,
                    login_throttles::failures.eq(login_throttles::failures + 1),
                ))
                .execute(conn)?;
        } else if key == ANY_ADDRESS {
            diesel::update(row).set(done).execute(conn)?;
        } else {
            diesel::update(row)
                .set((done, login_throttles::failures.eq(0)))
                .execute(conn)?;
        }
    }
    Ok(())
}

/// Forgets counter rows whose window ended before `before` (a few per call, by index).
pub fn prune_attempts(conn: &mut DbConnection, before: NaiveDateTime) -> Result<(), AppError> {
    diesel::delete(login_throttles::table.filter(login_throttles::window_started_at.lt(before)))
        .execute(conn)?;
    Ok(())
}
