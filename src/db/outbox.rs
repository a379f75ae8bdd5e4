//! The mail outbox: rows written in the same transaction as the event that causes a mail,
//! claimed with a lease by one sender at a time, marked sent, retried or dead.

use super::schema::mail_outbox;
use super::DbConnection;
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = mail_outbox)]
pub struct OutboxRow {
    pub id: String,
    pub message_id: String,
    pub kind: String,
    pub recipient: String,
    pub subject: String,
    pub body: String,
    pub work_order_id: Option<String>,
    pub digest_key: Option<String>,
    pub state: String,
    pub attempts: i32,
    pub last_error: Option<String>,
    pub next_attempt_at: NaiveDateTime,
    pub lease_until: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub sent_at: Option<NaiveDateTime>,
}

pub fn insert(conn: &mut DbConnection, row: &OutboxRow) -> Result<(), AppError> {
    diesel::insert_into(mail_outbox::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Claims up to `limit` due mails for this sender until `lease_until` (guarded, so two
/// senders never hold the same mail). Digest members come together, in key order.
pub fn claim(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> Result<Vec<OutboxRow>, AppError> {
    let free = mail_outbox::lease_until
        .is_null()
        .or(mail_outbox::lease_until.lt(now));
    let candidates: Vec<OutboxRow> = mail_outbox::table
        .filter(mail_outbox::state.eq("pending"))
        .filter(mail_outbox::next_attempt_at.le(now))
        .filter(free)
        .order((
            mail_outbox::digest_key.asc(),
            mail_outbox::next_attempt_at.asc(),
            mail_outbox::id.asc(),
        ))
        .limit(limit)
        .select(OutboxRow::as_select())
        .load(conn)?;
    let mut claimed = Vec::with_capacity(candidates.len());
    for mut row in candidates {
        let n = diesel::update(
            mail_outbox::table
                .filter(mail_outbox::id.eq(&row.id))
                .filter(mail_outbox::state.eq("pending"))
                .filter(
                    mail_outbox::lease_until
                        .is_null()
                        .or(mail_outbox::lease_until.lt(now)),
                ),
        )
        .set(mail_outbox::lease_until.eq(lease_until))
        .execute(conn)?;
        if n == 1 {
            row.lease_until = Some(lease_until);
            claimed.push(row);
        }
    }
    Ok(claimed)
}

/// Marks mails sent — only those this sender still holds (`lease` is its claim's token).
pub fn mark_sent(
    conn: &mut DbConnection,
    ids: &[String],
    lease: NaiveDateTime,
    now: NaiveDateTime,
) -> Result<(), AppError> {
    diesel::update(
        mail_outbox::table
            .filter(mail_outbox::id.eq_any(ids))
            .filter(mail_outbox::state.eq("pending"))
            .filter(mail_outbox::lease_until.eq(lease)),
    )
    .set((
        mail_outbox::state.eq("sent"),
        mail_outbox::sent_at.eq(now),
        mail_outbox::lease_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    Ok(())
}

/// Records a failed attempt: retried at `next_attempt_at`, or kept as dead.
pub fn mark_failed(
    conn: &mut DbConnection,
    ids: &[String],
    lease: NaiveDateTime,
    attempts: i32,
    next_attempt_at: NaiveDateTime,
    error: &str,
    dead: bool,
) -> Result<(), AppError> {
    diesel::update(
        mail_outbox::table
            .filter(mail_outbox::id.eq_any(ids))
            .filter(mail_outbox::state.eq("pending"))
            .filter(mail_outbox::lease_until.eq(lease)),
    )
    .set((
        mail_outbox::state.eq(if dead { "dead" } else { "pending" }),
        mail_outbox::attempts.eq(attempts),
        mail_outbox::last_error.eq(error.chars().take(1000).collect::<String>()),
        mail_outbox::next_attempt_at.eq(next_attempt_at),
        mail_outbox::lease_until.eq(None::<NaiveDateTime>),
    ))
    .execute(conn)?;
    Ok(())
}

/// Mails by state, and pending ones that have failed at least once (for /metrics).
pub fn counts(conn: &mut DbConnection) -> Result<Vec<(String, i64)>, AppError> {
    let mut out: Vec<(String, i64)> = mail_outbox::table
        .group_by(mail_outbox::state)
        .select((mail_outbox::state, diesel::dsl::count_star()))
        .load(conn)?;
    let retrying: i64 = mail_outbox::table
        .filter(mail_outbox::state.eq("pending"))
        .filter(mail_outbox::attempts.gt(0))
        .count()
        .get_result(conn)?;
    out.push(("retrying".into(), retrying));
    Ok(out)
}

/// Every row, oldest first (tests and operators' inspection).
pub fn all(conn: &mut DbConnection) -> Result<Vec<OutboxRow>, AppError> {
    Ok(mail_outbox::table
        .order(mail_outbox::created_at.asc())
        .select(OutboxRow::as_select())
        .load(conn)?)
}

/// Writes many outbox rows (multi-row statements on PostgreSQL, as `events::insert_many`).
pub fn insert_many(conn: &mut DbConnection, rows: &[OutboxRow]) -> Result<(), AppError> {
    match conn {
        DbConnection::Postgresql(pg) => {
            for chunk in rows.chunks(200) {
                diesel::insert_into(mail_outbox::table)
                    .values(chunk)
                    .execute(pg)?;
            }
        }
        DbConnection::Sqlite(_) => {
            for r in rows {
                insert(conn, r)?;
            }
        }
    }
    Ok(())
}

/// Hands back claimed mails not yet tried.
pub fn release(
    conn: &mut DbConnection,
    ids: &[String],
    lease: NaiveDateTime,
) -> Result<(), AppError> {
    diesel::update(
        mail_outbox::table
            .filter(mail_outbox::id.eq_any(ids))
            .filter(mail_outbox::lease_until.eq(lease)),
    )
    .set(mail_outbox::lease_until.eq(None::<NaiveDateTime>))
    .execute(conn)?;
    Ok(())
}
