//! `/api/v1/outages`: declare, list, get, update, restore, cancel, lookup.

use super::extract::{page, path_uuid, JsonBody, Page, PageQuery};
use super::views::{utc, Items};
use crate::auth::AuthUser;
use crate::db::outages::{self as repo, OutageRow};
use crate::domain::values::limits;
use crate::domain::Role;
use crate::errors::{AppError, Problems};
use crate::schema;
use crate::service::outages::{self as service, NewOutage};
use crate::state::AppState;
use actix_web::{http::header, web, HttpResponse};
use chrono::{DateTime, FixedOffset, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct OutageView {
    pub id: String,
    pub area_codes: Vec<String>,
    pub cause: String,
    pub feeder: Option<String>,
    pub started_at: DateTime<Utc>,
    pub estimated_restore_at: Option<DateTime<Utc>>,
    /// active | restored | cancelled
    pub status: String,
    pub master_id: String,
    pub linked_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub cancel_reason: Option<String>,
}

pub fn outage_view(o: OutageRow, linked_count: i64) -> OutageView {
    OutageView {
        area_codes: o.area_codes.to_vec(),
        id: o.id,
        cause: o.cause,
        feeder: o.feeder,
        started_at: utc(o.started_at),
        estimated_restore_at: o.estimated_restore_at.map(utc),
        status: o.status,
        master_id: o.master_id,
        linked_count,
        created_at: utc(o.created_at),
        updated_at: utc(o.updated_at),
        ended_at: o.ended_at.map(utc),
        cancel_reason: o.cancel_reason,
    }
}

fn dispatcher_only(user: &AuthUser, what: &str) -> Result<(), AppError> {
    if user.is(&[Role::Dispatcher]) {
        Ok(())
    } else {
        Err(AppError::forbidden(format!(
            "a {} may not {what}",
            user.role
        )))
    }
}

fn counted_view(c: service::Counted) -> OutageView {
    outage_view(c.outage, c.linked_count)
}

fn with_count(conn: &mut crate::db::DbConnection, o: OutageRow) -> Result<OutageView, AppError> {
    let n = repo::linked_count(conn, &o.id, &o.master_id)?;
    Ok(outage_view(o, n))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutageInput {
    #[schema(schema_with = schema::some_codes)]
    pub area_codes: Vec<String>,
    #[schema(schema_with = schema::reason)]
    pub cause: String,
    pub started_at: DateTime<FixedOffset>,
    /// Not before `started_at`.
    pub estimated_restore_at: Option<DateTime<FixedOffset>>,
    #[schema(schema_with = schema::any_name_or_null)]
    pub feeder: Option<String>,
}

#[utoipa::path(post, path = "/api/v1/outages", tag = "outages", request_body = OutageInput,
    responses((status = 201, body = OutageView), (status = 403), (status = 422)), security(("bearer" = [])))]
pub async fn declare(
    state: web::Data<AppState>,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    dispatcher_only(&user, "declare outages")?;
    let input: OutageInput = body.parse()?;
    let mut p = Problems::default();
    if input.area_codes.is_empty() {
        p.add("area_codes", "name at least one area");
    }
    if let Some(out) = input.area_codes.iter().find(|a| !user.sees_area(a)) {
        return Err(AppError::out_of_scope(format!(
            "area {out} is outside your scope"
        )));
    }
    p.text("cause", Some(&input.cause), limits::REASON, true);
    p.text("feeder", input.feeder.as_deref(), limits::NAME, false);
    if input
        .estimated_restore_at
        .is_some_and(|e| e < input.started_at)
    {
        p.add("estimated_restore_at", "must not be before started_at");
    }
    p.finish()?;
    let new = NewOutage {
        area_codes: input.area_codes,
        cause: input.cause,
        feeder: input.feeder,
        started_at: input.started_at.with_timezone(&Utc),
        estimated_restore_at: input.estimated_restore_at.map(|e| e.with_timezone(&Utc)),
    };
    let now = state.clock.now();
    let rules = state.work_order_rules();
    let actor = user.0.clone();
    let view = state
        .db(move |conn| {
            let o = service::declare(conn, &actor, new, now, &rules)?;
            with_count(conn, o)
        })
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/outages/{}", view.id)))
        .json(view))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct OutageQuery {
    /// Only active outages.
    pub active: Option<bool>,
    /// 1–500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// Opaque; the `next_cursor` of the previous page.
    #[param(pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/outages", tag = "outages", params(OutageQuery), responses((status = 200, body = Page<OutageView>), (status = 400)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<OutageQuery>,
) -> Result<HttpResponse, AppError> {
    let q = q.into_inner();
    let active = q.active.unwrap_or(false);
    let paging = PageQuery {
        limit: q.limit,
        cursor: q.cursor,
    };
    let limit = paging.limit()?;
    let after: Option<(DateTime<Utc>, String)> = paging.cursor()?;
    let actor = user.0.clone();
    let rows = state
        .db(move |conn| {
            service::list(
                conn,
                &actor,
                active,
                after.map(|(at, id)| (at.naive_utc(), id)),
                limit + 1,
            )
        })
        .await?;
    let body: Page<OutageView> = page(
        rows,
        limit,
        |c| (utc(c.outage.started_at), c.outage.id.clone()),
        counted_view,
    );
    Ok(HttpResponse::Ok().json(body))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct LookupQuery {
    pub area_code: Option<String>,
    pub customer_id: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/outages/lookup", tag = "outages", params(LookupQuery),
    responses((status = 200, body = Items<OutageView>), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn lookup(
    state: web::Data<AppState>,
    _user: AuthUser,
    q: web::Query<LookupQuery>,
) -> Result<HttpResponse, AppError> {
    let q = q.into_inner();
    let (area_code, customer_id) = (q.area_code, q.customer_id);
    if area_code.is_none() && customer_id.is_none() {
        return Err(AppError::invalid(
            "area_code",
            "give area_code or customer_id",
        ));
    }
    let items = state
        .db(move |conn| {
            let area = match area_code {
                Some(a) => a,
                None => {
                    let id = customer_id.unwrap_or_default();
                    crate::db::customers::find(conn, &id)?
                        .map(|c| c.area_code)
                        .ok_or(AppError::NotFound { what: "customer" })?
                }
            };
            service::lookup(conn, &area)
        })
        .await?;
    let items: Vec<OutageView> = items.into_iter().map(counted_view).collect();
    Ok(HttpResponse::Ok().json(Items { items }))
}

#[utoipa::path(get, path = "/api/v1/outages/{id}", tag = "outages", responses((status = 200, body = OutageView), (status = 404)), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path_uuid(&id)?;
    let actor = user.0.clone();
    let view = state
        .db(move |conn| service::get(conn, &actor, &id))
        .await?;
    Ok(HttpResponse::Ok().json(counted_view(view)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OutagePatch {
    #[schema(schema_with = schema::reason_or_null)]
    pub cause: Option<String>,
    pub estimated_restore_at: Option<DateTime<FixedOffset>>,
}

#[utoipa::path(patch, path = "/api/v1/outages/{id}", tag = "outages", request_body = OutagePatch,
    responses((status = 200, body = OutageView), (status = 404), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn update(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    let id = path_uuid(&id)?;
    dispatcher_only(&user, "change outages")?;
    let patch: OutagePatch = body.parse()?;
    let mut p = Problems::default();
    p.text(
        "cause",
        patch.cause.as_deref(),
        limits::REASON,
        patch.cause.is_some(),
    );
    p.finish()?;
    let now = state.clock.now();
    let actor = user.0.clone();
    let view = state
        .db(move |conn| {
            let o = service::update(
                conn,
                &actor,
                &id,
                patch.cause,
                patch.estimated_restore_at.map(|e| e.with_timezone(&Utc)),
                now,
            )?;
            with_count(conn, o)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[utoipa::path(post, path = "/api/v1/outages/{id}/restore", tag = "outages",
    responses((status = 200, body = OutageView), (status = 404), (status = 409)), security(("bearer" = [])))]
pub async fn restore(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path_uuid(&id)?;
    dispatcher_only(&user, "restore outages")?;
    let now = state.clock.now();
    let rules = state.work_order_rules();
    let actor = user.0.clone();
    let view = state
        .db(move |conn| {
            let o = service::restore(conn, &actor, &id, now, &rules)?;
            with_count(conn, o)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelInput {
    #[schema(schema_with = schema::reason)]
    pub reason: String,
}

#[utoipa::path(post, path = "/api/v1/outages/{id}/cancel", tag = "outages", request_body = CancelInput,
    responses((status = 200, body = OutageView), (status = 404), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn cancel(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    let id = path_uuid(&id)?;
    dispatcher_only(&user, "cancel outages")?;
    let input: CancelInput = body.parse()?;
    let mut p = Problems::default();
    p.text("reason", Some(&input.reason), limits::REASON, true);
    p.finish()?;
    let now = state.clock.now();
    let rules = state.work_order_rules();
    let actor = user.0.clone();
    let view = state
        .db(move |conn| {
            let o = service::cancel(conn, &actor, &id, input.reason, now, &rules)?;
            with_count(conn, o)
        })
        .await?;
    Ok(HttpResponse::Ok().json(view))
}
