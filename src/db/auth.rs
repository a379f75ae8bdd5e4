//! Refresh tokens (rotation, reuse detection) and login failures (throttling held in the
//! database, so it holds across instances).

use super::schema::{login_failures, refresh_tokens};
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

/// Failures for `username` at or after `since`, oldest first.
pub fn recent_failures(
    conn: &mut DbConnection,
    username: &str,
    since: NaiveDateTime,
) -> Result<Vec<NaiveDateTime>, AppError> {
    Ok(login_failures::table
        .filter(login_failures::username.eq(username))
        .filter(login_failures::at.ge(since))
        .order(login_failures::at.asc())
        .select(login_failures::at)
        .load(conn)?)
}

pub fn record_failure(
    conn: &mut DbConnection,
    username: &str,
    at: NaiveDateTime,
) -> Result<(), AppError> {
    diesel::insert_into(login_failures::table)
        .values((
            login_failures::id.eq(uuid::Uuid::new_v4().to_string()),
            login_failures::username.eq(username),
            login_failures::at.eq(at),
        ))
        .execute(conn)?;
    Ok(())
}

/// A successful login clears the count; old rows of everybody are pruned on the way.
pub fn clear_failures(
    conn: &mut DbConnection,
    username: &str,
    older_than: NaiveDateTime,
) -> Result<(), AppError> {
    diesel::delete(login_failures::table.filter(login_failures::username.eq(username)))
        .execute(conn)?;
    diesel::delete(login_failures::table.filter(login_failures::at.lt(older_than)))
        .execute(conn)?;
    Ok(())
}
