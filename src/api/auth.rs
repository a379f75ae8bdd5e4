//! `/api/v1/auth/*`: login, refresh, logout, password change, me.

use super::extract::JsonBody;
use super::views::UserView;
use crate::auth::password::check_new_password;
use crate::auth::AuthUser;
use crate::errors::{AppError, Problems};
use crate::service::auth::{self as service, LoginPolicy};
use crate::state::AppState;
use actix_web::{web, HttpResponse};
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
    pub current_password: String,
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
        .issue(&user.id, &user.role, state.clock.now(), minutes)
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
pub async fn login(state: web::Data<AppState>, body: JsonBody) -> Result<HttpResponse, AppError> {
    let req: LoginRequest = body.parse()?;
    if req.username.chars().count() > 100 || req.password.chars().count() > 256 {
        return Err(AppError::Unauthorized {
            code: "invalid_credentials",
            detail: "unknown user or wrong password".into(),
        });
    }
    let auth = &state.settings.auth;
    let policy = LoginPolicy {
        max_failures: auth.login_max_failures,
        window: TimeDelta::minutes(auth.login_window_minutes),
        refresh_lifetime: TimeDelta::hours(auth.refresh_token_hours),
    };
    let now = state.clock.now();
    let dummy = state.dummy_hash.clone();
    let (user, refresh) = state
        .db(move |conn| service::login(conn, &req.username, &req.password, now, policy, &dummy))
        .await?;
    tokens(&state, user, refresh)
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenResponse), (status = 401)))]
pub async fn refresh(state: web::Data<AppState>, body: JsonBody) -> Result<HttpResponse, AppError> {
    let req: RefreshRequest = body.parse()?;
    let now = state.clock.now();
    let lifetime = TimeDelta::hours(state.settings.auth.refresh_token_hours);
    let (user, token) = state
        .db(move |conn| service::refresh(conn, &req.refresh_token, now, lifetime))
        .await?;
    tokens(&state, user, token)
}

#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", request_body = LogoutRequest,
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
