//! Login with throttling, refresh-token rotation with reuse detection, logout, password change.

use crate::auth::password::{self, PasswordCost};
use crate::auth::tokens::{hash_refresh_token, new_refresh_token};
use crate::db::auth::{self as repo, RefreshTokenRow};
use crate::db::users::{self, UserRow};
use crate::db::{write_transaction, DbConnection};
use crate::errors::AppError;
use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, Clone, Copy)]
pub struct LoginPolicy {
    pub max_failures: i64,
    pub window: TimeDelta,
    pub refresh_lifetime: TimeDelta,
}

fn bad_credentials() -> AppError {
    AppError::Unauthorized {
        code: "invalid_credentials",
        detail: "unknown user or wrong password".into(),
    }
}

fn bad_refresh(detail: &str) -> AppError {
    AppError::Unauthorized {
        code: "invalid_refresh_token",
        detail: detail.into(),
    }
}

/// Checks the throttle, then the password. Returns the user and a new refresh token.
pub fn login(
    conn: &mut DbConnection,
    username: &str,
    password_text: &str,
    now: DateTime<Utc>,
    policy: LoginPolicy,
    dummy_hash: &str,
) -> Result<(UserRow, String), AppError> {
    let since = (now - policy.window).naive_utc();
    let failures = repo::recent_failures(conn, username, since)?;
    if failures.len() as i64 >= policy.max_failures {
        let oldest_counted = failures[failures.len() - policy.max_failures as usize];
        let free_at = oldest_counted.and_utc() + policy.window;
        let retry_after = (free_at - now).num_seconds().max(1) as u64;
        return Err(AppError::TooManyRequests {
            code: "login_throttled",
            detail: format!("too many failed logins for this user; try again in {retry_after} s"),
            retry_after_secs: retry_after,
        });
    }
    let user = users::find_by_username(conn, username)?;
    let ok = match &user {
        Some(u) => password::verify_password(password_text, &u.password_hash) && u.active,
        None => {
            password::verify_password(password_text, dummy_hash);
            false
        }
    };
    match (ok, user) {
        (true, Some(user)) => write_transaction(conn, |conn| {
            repo::clear_failures(conn, username, since)?;
            let token = start_refresh_family(conn, &user.id, now, policy.refresh_lifetime)?;
            Ok((user, token))
        }),
        _ => {
            repo::record_failure(conn, username, now.naive_utc())?;
            Err(bad_credentials())
        }
    }
}

fn insert_token(
    conn: &mut DbConnection,
    user_id: &str,
    family_id: &str,
    now: DateTime<Utc>,
    lifetime: TimeDelta,
) -> Result<String, AppError> {
    let token = new_refresh_token();
    repo::insert_refresh_token(
        conn,
        &RefreshTokenRow {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user_id.to_owned(),
            family_id: family_id.to_owned(),
            token_hash: hash_refresh_token(&token),
            created_at: now.naive_utc(),
            expires_at: (now + lifetime).naive_utc(),
            used_at: None,
            revoked_at: None,
        },
    )?;
    Ok(token)
}

fn start_refresh_family(
    conn: &mut DbConnection,
    user_id: &str,
    now: DateTime<Utc>,
    lifetime: TimeDelta,
) -> Result<String, AppError> {
    insert_token(
        conn,
        user_id,
        &uuid::Uuid::new_v4().to_string(),
        now,
        lifetime,
    )
}

enum RefreshOutcome {
    Rotated(Box<UserRow>, String),
    Reused,
    Invalid(&'static str),
}

/// Rotates a refresh token. Presenting a token that was already used revokes its whole chain
/// (somebody else has a copy), and that revocation is committed even though the call fails.
pub fn refresh(
    conn: &mut DbConnection,
    token: &str,
    now: DateTime<Utc>,
    lifetime: TimeDelta,
) -> Result<(UserRow, String), AppError> {
    let outcome = write_transaction(conn, |conn| -> Result<RefreshOutcome, AppError> {
        let Some(row) = repo::find_refresh_token(conn, &hash_refresh_token(token))? else {
            return Ok(RefreshOutcome::Invalid("unknown refresh token"));
        };
        if row.revoked_at.is_some() {
            return Ok(RefreshOutcome::Invalid("the refresh token was revoked"));
        }
        if row.used_at.is_some() || !repo::mark_used(conn, &row.id, now.naive_utc())? {
            repo::revoke_family(conn, &row.family_id, now.naive_utc())?;
            return Ok(RefreshOutcome::Reused);
        }
        if row.expires_at <= now.naive_utc() {
            return Ok(RefreshOutcome::Invalid("the refresh token expired"));
        }
        let Some(user) = users::find(conn, &row.user_id)?.filter(|u| u.active) else {
            return Ok(RefreshOutcome::Invalid("the user is deactivated"));
        };
        let new_token = insert_token(conn, &user.id, &row.family_id, now, lifetime)?;
        Ok(RefreshOutcome::Rotated(Box::new(user), new_token))
    })?;
    match outcome {
        RefreshOutcome::Rotated(user, token) => Ok((*user, token)),
        RefreshOutcome::Reused => Err(AppError::Unauthorized {
            code: "refresh_token_reused",
            detail: "this refresh token was already used; its whole chain is revoked".into(),
        }),
        RefreshOutcome::Invalid(why) => Err(bad_refresh(why)),
    }
}

/// Revokes the chain of `token` (if it is the user's), or all the user's chains without one.
pub fn logout(
    conn: &mut DbConnection,
    user_id: &str,
    token: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    write_transaction(conn, |conn| match token {
        Some(token) => match repo::find_refresh_token(conn, &hash_refresh_token(token))? {
            Some(row) if row.user_id == user_id => {
                repo::revoke_family(conn, &row.family_id, now.naive_utc())
            }
            _ => Err(bad_refresh("unknown refresh token")),
        },
        None => repo::revoke_user(conn, user_id, now.naive_utc()),
    })
}

/// Changes a password after checking the current one; every refresh chain is revoked.
pub fn change_password(
    conn: &mut DbConnection,
    user_id: &str,
    current: &str,
    new: &str,
    now: DateTime<Utc>,
    cost: PasswordCost,
) -> Result<(), AppError> {
    let user = users::find(conn, user_id)?.ok_or(AppError::NotFound { what: "user" })?;
    if !password::verify_password(current, &user.password_hash) {
        return Err(AppError::invalid(
            "current_password",
            "is not the current password",
        ));
    }
    let hash = password::hash_password(new, cost).map_err(AppError::internal)?;
    write_transaction(conn, |conn| {
        users::update(
            conn,
            user_id,
            &users::UserChanges {
                password_hash: Some(hash),
                updated_at: Some(now.naive_utc()),
                ..Default::default()
            },
        )?;
        repo::revoke_user(conn, user_id, now.naive_utc())
    })
}
