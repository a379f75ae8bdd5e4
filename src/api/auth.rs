//! `/api/v1/auth/*`: login, refresh, logout, password change, me.

use super::extract::JsonBody;
use super::views::UserView;
use crate::auth::password::check_new_password;
use crate::auth::AuthUser;
use crate::errors::ProblemCode;
use crate::errors::{AppError, Problems};
use crate::schema;
use crate::service::auth::{self as service, LoginPolicy};
use crate::state::AppState;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::TimeDelta;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    pub refresh_token: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordRequest {
    #[schema(max_length = 256)]
    pub current_password: String,
    #[schema(schema_with = schema::password)]
    pub new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub refresh_token: String,
    pub user: UserView,
}

fn tokens(
    state: &AppState,
    user: crate::db::users::UserRow,
    refresh_token: String,
) -> Result<HttpResponse, AppError> {
    let minutes = state.settings.auth.access_token_minutes;
    let access = state
        .keys
        .issue(&user.id, user.role.as_str(), state.clock.now(), minutes)
        .map_err(AppError::internal)?;
    Ok(HttpResponse::Ok().json(TokenResponse {
        access_token: access,
        token_type: "Bearer",
        expires_in: minutes * 60,
        refresh_token,
        user: user.into(),
    }))
}

#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = TokenResponse), (status = 401), (status = 429)))]
pub async fn login(
    state: web::Data<AppState>,
    http: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    let req: LoginRequest = body.parse()?;
    if req.username.chars().count() > 100 || req.password.chars().count() > 256 {
        return Err(AppError::Unauthorized {
            code: ProblemCode::InvalidCredentials,
            detail: "unknown user or wrong password".into(),
        });
    }
    let policy = login_policy(&state);
    let now = state.clock.now();
    // The client's own address (a proxy in front counts as one client: API.md's per-address
    // rule then applies to the proxy, and the per-username rule to everybody).
    let address = http
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    // Attempts still being checked may fill the limit for a moment (several logins of one
    // user at once): wait for them rather than refuse, within a bound.
    let mut waited = 0;
    let attempt = loop {
        let (username, address) = (req.username.clone(), address.clone());
        let now = state.clock.now();
        match state
            .db(move |conn| service::begin_login(conn, &username, &address, now, policy))
            .await?
        {
            Some(attempt) => break attempt,
            None if waited < LOGIN_BUSY_WAITS => {
                waited += 1;
                actix_web::rt::time::sleep(LOGIN_BUSY_PAUSE).await;
            }
            None => {
                return Err(AppError::TooManyRequests {
                    code: ProblemCode::LoginThrottled,
                    detail: "too many logins for this user are being checked at once".into(),
                    retry_after_secs: 1,
                })
            }
        }
    };
    // argon2 takes ~19 MiB and tens of milliseconds of a core: at most a few at once, and no
    // pooled connection held meanwhile, so a flood of guesses cannot starve other requests.
    let permit = state
        .password_checks
        .clone()
        .acquire_owned()
        .await
        .map_err(|e| AppError::internal(e.to_string()))?;
    let dummy = state.dummy_hash.clone();
    let (attempt, ok) = web::block(move || {
        let ok = service::check_password(&attempt, &req.password, &dummy);
        drop(permit);
        (attempt, ok)
    })
    .await
    .map_err(|e| AppError::internal(e.to_string()))?;
    let (user, refresh) = state
        .db(move |conn| service::finish_login(conn, attempt, ok, now, policy))
        .await?;
    tokens(&state, user, refresh)
}

const LOGIN_BUSY_PAUSE: std::time::Duration = std::time::Duration::from_millis(20);
const LOGIN_BUSY_WAITS: u32 = 250;

fn login_policy(state: &AppState) -> LoginPolicy {
    let auth = &state.settings.auth;
    LoginPolicy {
        max_failures: auth.login_max_failures,
        max_failures_any_address: auth.login_max_failures_any_address,
        window: TimeDelta::minutes(auth.login_window_minutes),
        refresh_lifetime: TimeDelta::hours(auth.refresh_token_hours),
        chain_lifetime: TimeDelta::hours(auth.refresh_chain_max_hours),
    }
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401)))]
pub async fn refresh(state: web::Data<AppState>, body: JsonBody) -> Result<HttpResponse, AppError> {
    let req: RefreshRequest = body.parse()?;
    let now = state.clock.now();
    let policy = login_policy(&state);
    let (user, token) = state
        .db(move |conn| service::refresh(conn, &req.refresh_token, now, policy))
        .await?;
    tokens(&state, user, token)
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body(content = LogoutRequest, description = "optional: without a refresh token, every refresh chain of the user is revoked"),
    responses((status = 204), (status = 401)), security(("bearer" = [])))]
pub async fn logout(
    state: web::Data<AppState>,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    let req: LogoutRequest = body.parse()?;
    let now = state.clock.now();
    state
        .db(move |conn| service::logout(conn, &user.id, req.refresh_token.as_deref(), now))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(post, path = "/api/v1/auth/password", tag = "auth", request_body = PasswordRequest,
    responses((status = 204), (status = 401), (status = 422)), security(("bearer" = [])))]
pub async fn change_password(
    state: web::Data<AppState>,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    let req: PasswordRequest = body.parse()?;
    let mut problems = Problems::default();
    if let Err(m) = check_new_password(&req.new_password) {
        problems.add("new_password", m);
    }
    if req.current_password.chars().count() > 256 {
        problems.add("current_password", "is not the current password");
    }
    problems.finish()?;
    let now = state.clock.now();
    let cost = state.password_cost();
    state
        .db(move |conn| {
            service::change_password(
                conn,
                &user.id,
                &req.current_password,
                &req.new_password,
                now,
                cost,
            )
        })
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", responses((status = 200, body = UserView), (status = 401)),
    security(("bearer" = [])))]
pub async fn me(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, AppError> {
    let row = state
        .db(move |conn| crate::db::users::find(conn, &user.id))
        .await?
        .ok_or(AppError::NotFound { what: "user" })?;
    Ok(HttpResponse::Ok().json(UserView::from(row)))
}
