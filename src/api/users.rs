//! `/api/v1/users` (admin).

use super::extract::{page, path_uuid, JsonBody, Page, PageQuery};
use super::views::UserView;
use crate::auth::AuthUser;
use crate::domain::Role;
use crate::errors::AppError;
use crate::service::users::{self as service, NewUser, UserPatch};
use crate::state::AppState;
use actix_web::{http::header, web, HttpResponse};

fn admin_only(user: &AuthUser) -> Result<(), AppError> {
    if user.is(&[Role::Admin]) {
        Ok(())
    } else {
        Err(AppError::forbidden("only an admin manages users"))
    }
}

#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = UserView), (status = 403), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    admin_only(&user)?;
    let new: NewUser = body.parse()?;
    let now = state.clock.now();
    let cost = state.password_cost();
    let row = state
        .db(move |conn| service::create(conn, new, now, cost))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/users/{}", row.id)))
        .json(UserView::from(row)))
}

#[utoipa::path(get, path = "/api/v1/users", tag = "users", params(PageQuery),
    responses((status = 200, body = Page<UserView>)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    admin_only(&user)?;
    let limit = q.limit()?;
    let after: Option<String> = q.cursor()?;
    let rows = state
        .db(move |conn| crate::db::users::list(conn, after.as_deref(), limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |u| u.username.clone(), UserView::from)))
}

#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", responses((status = 200, body = UserView), (status = 404)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    admin_only(&user)?;
    let id = path_uuid(&id)?;
    let row = state
        .db(move |conn| crate::db::users::find(conn, &id))
        .await?
        .ok_or(AppError::NotFound { what: "user" })?;
    Ok(HttpResponse::Ok().json(UserView::from(row)))
}

#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", request_body = UserPatch,
    responses((status = 200, body = UserView), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn update(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    admin_only(&user)?;
    let id = path_uuid(&id)?;
    let patch: UserPatch = body.parse()?;
    let now = state.clock.now();
    let cost = state.password_cost();
    let row = state
        .db(move |conn| service::update(conn, &id, patch, now, cost))
        .await?;
    // Deactivation, role and scope apply from the next request.
    state.actors.clear();
    Ok(HttpResponse::Ok().json(UserView::from(row)))
}
