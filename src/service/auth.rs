//! Login with throttling, refresh-token rotation with reuse detection, logout, password change.

use crate::auth::password::{self, PasswordCost};
use crate::auth::tokens::{hash_refresh_token, new_refresh_token};
use crate::db::auth::{self as repo, Attempt, RefreshTokenRow};
use crate::db::users::{self, UserRow};
use crate::db::{write_transaction, DbConnection};
use crate::errors::AppError;
use crate::errors::ProblemCode;
use chrono::{DateTime, TimeDelta, Utc};

#[derive(Debug, Clone, Copy)]
pub struct LoginPolicy {
    /// Failures for a username from one client address within the window before 429.
    pub max_failures: i64,
    /// Failures for a username from any addresses within the window: locked everywhere.
    pub max_failures_any_address: i64,
    pub window: TimeDelta,
    pub refresh_lifetime: TimeDelta,
    /// A refresh chain's absolute lifetime from its login.
    pub chain_lifetime: TimeDelta,
}

fn bad_credentials() -> AppError {
    AppError::Unauthorized {
        code: ProblemCode::InvalidCredentials,
        detail: "unknown user or wrong password".into(),
    }
}

fn bad_refresh(detail: &str) -> AppError {
    AppError::Unauthorized {
        code: ProblemCode::InvalidRefreshToken,
        detail: detail.into(),
    }
}

/// A login attempt taken from the throttle, before its password is checked.
#[derive(Debug)]
pub struct LoginAttempt {
    pub username: String,
    pub address: String,
    /// The user, if the name exists (checked against a dummy hash otherwise).
    pub user: Option<UserRow>,
}

/// The first step of a login: takes an attempt on the throttle counters of this username from
/// this address and from every address (API.md: 5 and 20 failures in 15 min by default), in
/// one short transaction whose row locks serialise concurrent attempts. Counted failures at
/// the limit refuse (429 with `Retry-After`); failures and attempts still being checked at the
/// limit answer `Ok(None)`: try again shortly. Either is rolled back, so nothing is counted.
/// The password is then checked with no connection held, and `finish_login` counts it.
pub fn begin_login(
    conn: &mut DbConnection,
    username: &str,
    address: &str,
    now: DateTime<Utc>,
    policy: LoginPolicy,
) -> Result<Option<LoginAttempt>, AppError> {
    let since = (now - policy.window).naive_utc();
    let at = now.naive_utc();
    let throttled = |window_started: chrono::NaiveDateTime, scope: &str| {
        let free_at = window_started.and_utc() + policy.window;
        let retry_after = (free_at - now).num_seconds().max(1) as u64;
        AppError::TooManyRequests {
            code: ProblemCode::LoginThrottled,
            detail: format!(
                "too many failed logins for this user {scope}; try again in {retry_after} s"
            ),
            retry_after_secs: retry_after,
        }
    };
    let limits = [
        (address, policy.max_failures, "from this address"),
        (
            repo::ANY_ADDRESS,
            policy.max_failures_any_address,
            "(locked for every address)",
        ),
    ];
    let taken = write_transaction(conn, |conn| {
        repo::prune_attempts(conn, since)?;
        for (key, limit, scope) in limits {
            let limit = i32::try_from(limit).unwrap_or(i32::MAX);
            match repo::take_attempt(conn, (username, key), limit, since, at)? {
                Attempt::Taken => {}
                Attempt::Refused(w) => return Err(throttled(w, scope).into()),
                Attempt::Busy => return Err(NotTaken::Busy),
            }
        }
        Ok(LoginAttempt {
            username: username.to_owned(),
            address: address.to_owned(),
            user: users::find_by_username(conn, username)?,
        })
    });
    match taken {
        Ok(attempt) => Ok(Some(attempt)),
        Err(NotTaken::Busy) => Ok(None),
        Err(NotTaken::Failed(e)) => Err(e),
    }
}

/// Why a login attempt was not taken: another attempt holds its counter row (the caller waits
/// and tries again), or an error to answer.
enum NotTaken {
    Busy,
    Failed(AppError),
}

impl From<AppError> for NotTaken {
    fn from(e: AppError) -> NotTaken {
        NotTaken::Failed(e)
    }
}

impl From<diesel::result::Error> for NotTaken {
    fn from(e: diesel::result::Error) -> NotTaken {
        NotTaken::Failed(e.into())
    }
}

/// The last step of a login, once the password was checked: the attempt is no longer
/// pending; a failure is counted (401); a success clears this address's failures and starts
/// a refresh chain.
pub fn finish_login(
    conn: &mut DbConnection,
    attempt: LoginAttempt,
    password_ok: bool,
    now: DateTime<Utc>,
    policy: LoginPolicy,
) -> Result<(UserRow, String), AppError> {
    let user = attempt
        .user
        .as_ref()
        .filter(|u| password_ok && u.active)
        .cloned();
    write_transaction(conn, |conn| -> Result<_, AppError> {
        repo::finish_attempt(conn, &attempt.username, &attempt.address, user.is_none())?;
        match &user {
            Some(user) => {
                let token = start_refresh_family(conn, &user.id, now, policy)?;
                Ok(Some((user.clone(), token)))
            }
            None => Ok(None),
        }
    })?
    .ok_or_else(bad_credentials)
}

/// Checks a password against the user's hash, or against `dummy_hash` for an unknown user
/// (the same work either way, so timing does not tell which names exist). Pure CPU: call it
/// with no connection held.
pub fn check_password(attempt: &LoginAttempt, password_text: &str, dummy_hash: &str) -> bool {
    match &attempt.user {
        Some(u) => password::verify_password(password_text, &u.password_hash),
        None => {
            password::verify_password(password_text, dummy_hash);
            false
        }
    }
}

fn insert_token(
    conn: &mut DbConnection,
    user_id: &str,
    (family_id, family_started_at): (&str, DateTime<Utc>),
    now: DateTime<Utc>,
    policy: LoginPolicy,
) -> Result<String, AppError> {
    let token = new_refresh_token();
    // never past the chain's absolute end
    let expires_at = (now + policy.refresh_lifetime).min(family_started_at + policy.chain_lifetime);
    repo::insert_refresh_token(
        conn,
        &RefreshTokenRow {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user_id.to_owned(),
            family_id: family_id.to_owned(),
            token_hash: hash_refresh_token(&token),
            created_at: now.naive_utc(),
            expires_at: expires_at.naive_utc(),
            used_at: None,
            revoked_at: None,
            family_started_at: Some(family_started_at.naive_utc()),
        },
    )?;
    Ok(token)
}

fn start_refresh_family(
    conn: &mut DbConnection,
    user_id: &str,
    now: DateTime<Utc>,
    policy: LoginPolicy,
) -> Result<String, AppError> {
    let family = uuid::Uuid::new_v4().to_string();
    insert_token(conn, user_id, (&family, now), now, policy)
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
    policy: LoginPolicy,
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
        // Chains from before the login time was recorded count from this token.
        let started = row.family_started_at.unwrap_or(row.created_at).and_utc();
        if started + policy.chain_lifetime <= now {
            return Ok(RefreshOutcome::Invalid(
                "the login session reached its maximum age; log in again",
            ));
        }
        let Some(user) = users::find(conn, &row.user_id)?.filter(|u| u.active) else {
            return Ok(RefreshOutcome::Invalid("the user is deactivated"));
        };
        let new_token = insert_token(conn, &user.id, (&row.family_id, started), now, policy)?;
        Ok(RefreshOutcome::Rotated(Box::new(user), new_token))
    })?;
    match outcome {
        RefreshOutcome::Rotated(user, token) => Ok((*user, token)),
        RefreshOutcome::Reused => Err(AppError::Unauthorized {
            code: ProblemCode::RefreshTokenReused,
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
