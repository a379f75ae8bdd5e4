//! Reference data: areas, crews (with location and duty), customers, categories. Writes go
//! through `service::reference`.

use super::extract::{page, path_uuid, JsonBody, Page, PageQuery};
use super::views::{AreaView, CrewView, CustomerView, Items};
use crate::auth::AuthUser;
use crate::db::customers::CustomerFilter;
use crate::db::{areas, crews, customers};
use crate::domain::categories::Category;
use crate::domain::values::Phone;
use crate::domain::Role;
use crate::errors::AppError;
use crate::service::reference::{
    self as service, AreaCreate, AreaPatch, CrewCreate, CrewPatch, CustomerCreate, CustomerPatch,
    DutyUpdate, LocationUpdate,
};
use crate::state::AppState;
use actix_web::{http::header, web, HttpResponse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

fn require(user: &AuthUser, roles: &[Role], what: &str) -> Result<(), AppError> {
    if user.is(roles) {
        Ok(())
    } else {
        Err(AppError::forbidden(format!(
            "a {} may not {what}",
            user.role
        )))
    }
}

fn created<T: Serialize>(location: String, body: T) -> HttpResponse {
    HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(body)
}

// ---- areas ----

#[utoipa::path(post, path = "/api/v1/areas", tag = "reference", request_body = AreaCreate,
    responses((status = 201, body = AreaView), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create_area(
    state: web::Data<AppState>,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    require(&user, &[Role::Admin], "create areas")?;
    let a: AreaCreate = body.parse()?;
    let now = state.clock.now();
    let sla = state.sla.clone();
    let row = state
        .db(move |conn| service::create_area(conn, &sla.calendars, a, now))
        .await?;
    // A new child area widens the scopes of users scoped to its ancestors.
    state.actors.clear();
    Ok(created(
        format!("/api/v1/areas/{}", row.code),
        AreaView::from(row),
    ))
}

#[utoipa::path(get, path = "/api/v1/areas", tag = "reference", params(PageQuery),
    responses((status = 200, body = Page<AreaView>)), security(("bearer" = [])))]
pub async fn list_areas(
    state: web::Data<AppState>,
    _user: AuthUser,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let limit = q.limit()?;
    let after: Option<String> = q.cursor()?;
    let rows = state
        .db(move |conn| areas::list(conn, after.as_deref(), limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |a| a.code.clone(), AreaView::from)))
}

#[utoipa::path(get, path = "/api/v1/areas/{code}", tag = "reference", responses((status = 200, body = AreaView), (status = 404)),
    security(("bearer" = [])))]
pub async fn get_area(
    state: web::Data<AppState>,
    _user: AuthUser,
    code: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let code = code.into_inner();
    let row = state
        .db(move |conn| areas::find(conn, &code))
        .await?
        .ok_or(AppError::NotFound { what: "area" })?;
    Ok(HttpResponse::Ok().json(AreaView::from(row)))
}

#[utoipa::path(patch, path = "/api/v1/areas/{code}", tag = "reference", request_body = AreaPatch,
    responses((status = 200, body = AreaView), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn update_area(
    state: web::Data<AppState>,
    user: AuthUser,
    code: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    require(&user, &[Role::Admin], "change areas")?;
    let code = code.into_inner();
    let now = state.clock.now();
    let sla = state.sla.clone();
    let row = state
        .db(move |conn| {
            service::update_area(conn, &sla.calendars, &code, now, || {
                body.parse::<AreaPatch>()
            })
        })
        .await?;
    // A moved area changes the scopes of users scoped to its old and new ancestors.
    state.actors.clear();
    Ok(HttpResponse::Ok().json(AreaView::from(row)))
}

// ---- crews ----

#[utoipa::path(post, path = "/api/v1/crews", tag = "reference", request_body = CrewCreate,
    responses((status = 201, body = CrewView), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create_crew(
    state: web::Data<AppState>,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    require(&user, &[Role::Admin], "create crews")?;
    let c: CrewCreate = body.parse()?;
    let now = state.clock.now();
    let row = state
        .db(move |conn| service::create_crew(conn, c, now))
        .await?;
    Ok(created(
        format!("/api/v1/crews/{}", row.id),
        CrewView::from(row),
    ))
}

#[utoipa::path(get, path = "/api/v1/crews", tag = "reference", params(PageQuery),
    responses((status = 200, body = Page<CrewView>)), security(("bearer" = [])))]
pub async fn list_crews(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let limit = q.limit()?;
    let after: Option<String> = q.cursor()?;
    let rows = state
        .db(move |conn| crews::list(conn, after.as_deref(), limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(page(
        rows,
        limit,
        |c| c.code.clone(),
        |c| CrewView::for_reader(c, &user),
    )))
}

#[utoipa::path(get, path = "/api/v1/crews/{id}", tag = "reference", responses((status = 200, body = CrewView), (status = 404)),
    security(("bearer" = [])))]
pub async fn get_crew(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path_uuid(&id)?;
    let row = state
        .db(move |conn| crews::find(conn, &id))
        .await?
        .ok_or(AppError::NotFound { what: "crew" })?;
    Ok(HttpResponse::Ok().json(CrewView::for_reader(row, &user)))
}

#[utoipa::path(patch, path = "/api/v1/crews/{id}", tag = "reference", request_body = CrewPatch,
    responses((status = 200, body = CrewView), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn update_crew(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    require(&user, &[Role::Admin], "change crews")?;
    let id = path_uuid(&id)?;
    let now = state.clock.now();
    let row = state
        .db(move |conn| service::update_crew(conn, &id, now, || body.parse::<CrewPatch>()))
        .await?;
    Ok(HttpResponse::Ok().json(CrewView::from(row)))
}

/// Crew members report for their own crew; dispatchers (and admins) for any.
fn crew_member_or_dispatcher(user: &AuthUser, crew_id: &str) -> Result<(), AppError> {
    if user.is(&[Role::Dispatcher])
        || (user.role == Role::Crew && user.crew_id.as_deref() == Some(crew_id))
    {
        Ok(())
    } else if user.role == Role::Crew {
        Err(AppError::NotFound { what: "crew" })
    } else {
        Err(AppError::forbidden(format!(
            "a {} may not report for a crew",
            user.role
        )))
    }
}

#[utoipa::path(post, path = "/api/v1/crews/{id}/location", tag = "reference", request_body = LocationUpdate,
    responses((status = 200, body = CrewView), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn crew_location(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    let id = path_uuid(&id)?;
    crew_member_or_dispatcher(&user, &id)?;
    let now = state.clock.now();
    let row = state
        .db(move |conn| service::report_location(conn, &id, now, || body.parse::<LocationUpdate>()))
        .await?;
    Ok(HttpResponse::Ok().json(CrewView::from(row)))
}

#[utoipa::path(post, path = "/api/v1/crews/{id}/duty", tag = "reference", request_body = DutyUpdate,
    responses((status = 200, body = CrewView), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn crew_duty(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    let id = path_uuid(&id)?;
    crew_member_or_dispatcher(&user, &id)?;
    let now = state.clock.now();
    let row = state
        .db(move |conn| service::report_duty(conn, &id, now, || body.parse::<DutyUpdate>()))
        .await?;
    Ok(HttpResponse::Ok().json(CrewView::from(row)))
}

// ---- customers ----

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CustomerQuery {
    #[param(
        pattern = "^[\\t\\n\\x0B\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*(\\+86[ -]*)?(1[3-9][0-9]{9}|0[0-9]{9,11}|0[0-9]{2,3}-[0-9]{7,8})[\\t\\n\\x0B\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*$"
    )]
    pub phone: Option<String>,
    pub account_no: Option<String>,
    pub q: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    #[param(pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

const CUSTOMER_WRITERS: &[Role] = &[Role::Agent, Role::Dispatcher];
const CUSTOMER_READERS: &[Role] = &[Role::Agent, Role::Dispatcher, Role::Supervisor];

#[utoipa::path(post, path = "/api/v1/customers", tag = "reference", request_body = CustomerCreate,
    responses((status = 201, body = CustomerView), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create_customer(
    state: web::Data<AppState>,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    require(&user, CUSTOMER_WRITERS, "create customers")?;
    let c: CustomerCreate = body.parse()?;
    let now = state.clock.now();
    let row = state
        .db(move |conn| service::create_customer(conn, c, now))
        .await?;
    Ok(created(
        format!("/api/v1/customers/{}", row.id),
        CustomerView::from(row),
    ))
}

#[utoipa::path(get, path = "/api/v1/customers", tag = "reference", params(CustomerQuery),
    responses((status = 200, body = Page<CustomerView>)), security(("bearer" = [])))]
pub async fn list_customers(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<CustomerQuery>,
) -> Result<HttpResponse, AppError> {
    require(&user, CUSTOMER_READERS, "look up customers")?;
    let q = q.into_inner();
    let paging = PageQuery {
        limit: q.limit,
        cursor: q.cursor.clone(),
    };
    let limit = paging.limit()?;
    let after: Option<String> = paging.cursor()?;
    let phone = match q.phone.as_deref().map(Phone::parse) {
        Some(Ok(p)) => Some(p.as_str().to_owned()),
        Some(Err(m)) => return Err(AppError::invalid("phone", m)),
        None => None,
    };
    let filter = CustomerFilter {
        phone,
        account_no: q.account_no,
        q: q.q.filter(|s| !s.is_empty()),
    };
    let rows = state
        .db(move |conn| customers::list(conn, &filter, after.as_deref(), limit + 1))
        .await?;
    Ok(HttpResponse::Ok().json(page(
        rows,
        limit,
        |c| c.account_no.clone(),
        CustomerView::from,
    )))
}

#[utoipa::path(get, path = "/api/v1/customers/{id}", tag = "reference", responses((status = 200, body = CustomerView), (status = 404)),
    security(("bearer" = [])))]
pub async fn get_customer(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path_uuid(&id)?;
    let row = state
        .db(move |conn| customers::find(conn, &id))
        .await?
        .ok_or(AppError::NotFound { what: "customer" })?;
    require(&user, CUSTOMER_READERS, "look up customers")?;
    Ok(HttpResponse::Ok().json(CustomerView::from(row)))
}

#[utoipa::path(patch, path = "/api/v1/customers/{id}", tag = "reference", request_body = CustomerPatch,
    responses((status = 200, body = CustomerView), (status = 404), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn update_customer(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    let id = path_uuid(&id)?;
    let allowed = require(&user, CUSTOMER_WRITERS, "change customers");
    let now = state.clock.now();
    let row = state
        .db(move |conn| {
            service::update_customer(conn, &id, now, allowed, || body.parse::<CustomerPatch>())
        })
        .await?;
    Ok(HttpResponse::Ok().json(CustomerView::from(row)))
}

// ---- categories ----

#[derive(Debug, Serialize, ToSchema)]
pub struct KindCategories {
    pub kind: String,
    pub categories: Vec<Category>,
}

#[utoipa::path(get, path = "/api/v1/categories", tag = "reference",
    responses((status = 200, body = Items<KindCategories>)), security(("bearer" = [])))]
pub async fn categories(state: web::Data<AppState>, _user: AuthUser) -> HttpResponse {
    let items: Vec<KindCategories> = state
        .settings
        .categories
        .iter()
        .map(|(kind, cats)| KindCategories {
            kind: kind.as_str().to_owned(),
            categories: cats.to_vec(),
        })
        .collect();
    HttpResponse::Ok().json(Items { items })
}
