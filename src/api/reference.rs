//! Reference data: areas, crews (with location and duty), customers, categories.

use super::extract::{page, path_uuid, JsonBody, Page, PageQuery};
use super::views::{AreaView, CrewView, CustomerView};
use crate::auth::AuthUser;
use crate::db::areas::{self, AreaChanges, AreaRow};
use crate::db::crews::{self, CrewChanges, CrewRow};
use crate::db::customers::{self, CustomerChanges, CustomerFilter, CustomerRow};
use crate::db::{to_json_list, write_transaction};
use crate::domain::categories::Category;
use crate::domain::values::{check_code, check_coordinates, limits, Phone};
use crate::domain::{CrewKind, RegionClass, Role, Tier};
use crate::errors::{AppError, Problems};
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

fn check_codes(p: &mut Problems, field: &str, codes: &[String]) {
    for (i, code) in codes.iter().enumerate() {
        if let Err(m) = check_code(code) {
            p.add(format!("{field}[{i}]"), m);
        }
    }
}

fn missing_areas(
    conn: &mut crate::db::DbConnection,
    p: &mut Problems,
    field: &str,
    codes: &[String],
) -> Result<(), AppError> {
    let missing = areas::missing(conn, codes)?;
    if !missing.is_empty() {
        p.add(field, format!("no such areas: {}", missing.join(", ")));
    }
    Ok(())
}

// ---- areas ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AreaCreate {
    pub code: String,
    pub name: String,
    pub region_class: RegionClass,
    pub parent_code: Option<String>,
    #[serde(default)]
    pub backup_area_codes: Vec<String>,
    pub calendar: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AreaPatch {
    pub name: Option<String>,
    pub region_class: Option<RegionClass>,
    pub parent_code: Option<String>,
    pub backup_area_codes: Option<Vec<String>>,
    pub calendar: Option<String>,
}

fn check_calendar(p: &mut Problems, sla: &crate::service::sla::SlaRuntime, calendar: Option<&str>) {
    if let Some(c) = calendar {
        if sla.calendars.get(c).is_none() {
            p.add(
                "calendar",
                format!("no calendar `{c}` (GET /api/v1/calendars lists them)"),
            );
        }
    }
}

#[utoipa::path(post, path = "/api/v1/areas", tag = "reference", request_body = AreaCreate,
    responses((status = 201, body = AreaView), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create_area(
    state: web::Data<AppState>,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    require(&user, &[Role::Admin], "create areas")?;
    let a: AreaCreate = body.parse()?;
    let mut p = Problems::default();
    if let Err(m) = check_code(&a.code) {
        p.add("code", m);
    }
    p.text("name", Some(&a.name), limits::NAME, true);
    check_codes(&mut p, "backup_area_codes", &a.backup_area_codes);
    check_calendar(&mut p, &state.sla, a.calendar.as_deref());
    p.finish()?;
    let now = state.clock.now().naive_utc();
    let row = state
        .db(move |conn| {
            write_transaction(conn, |conn| {
                let mut p = Problems::default();
                missing_areas(conn, &mut p, "parent_code", a.parent_code.as_slice())?;
                missing_areas(conn, &mut p, "backup_area_codes", &a.backup_area_codes)?;
                p.finish()?;
                let row = AreaRow {
                    code: a.code,
                    name: a.name,
                    region_class: a.region_class.as_str().to_owned(),
                    parent_code: a.parent_code,
                    backup_area_codes: to_json_list(&a.backup_area_codes),
                    calendar: a.calendar.unwrap_or_else(|| "cn".to_owned()),
                    created_at: now,
                    updated_at: now,
                };
                areas::insert(conn, &row)?;
                Ok(row)
            })
        })
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
    let now = state.clock.now().naive_utc();
    let sla = state.sla.clone();
    let row = state
        .db(move |conn| {
            write_transaction(conn, |conn| {
                areas::find(conn, &code)?.ok_or(AppError::NotFound { what: "area" })?;
                let a: AreaPatch = body.parse()?;
                let mut p = Problems::default();
                p.text("name", a.name.as_deref(), limits::NAME, a.name.is_some());
                check_calendar(&mut p, &sla, a.calendar.as_deref());
                if a.parent_code.as_deref() == Some(code.as_str()) {
                    p.add("parent_code", "an area cannot be its own parent");
                }
                missing_areas(conn, &mut p, "parent_code", a.parent_code.as_slice())?;
                if let Some(backup) = &a.backup_area_codes {
                    missing_areas(conn, &mut p, "backup_area_codes", backup)?;
                }
                p.finish()?;
                let changes = AreaChanges {
                    name: a.name,
                    region_class: a.region_class.map(|r| r.as_str().to_owned()),
                    parent_code: a.parent_code.map(Some),
                    backup_area_codes: a.backup_area_codes.as_deref().map(to_json_list),
                    calendar: a.calendar,
                    updated_at: Some(now),
                };
                areas::update(conn, &code, &changes)?;
                areas::find(conn, &code)?.ok_or(AppError::NotFound { what: "area" })
            })
        })
        .await?;
    // A moved area changes the scopes of users scoped to its old and new ancestors.
    state.actors.clear();
    Ok(HttpResponse::Ok().json(AreaView::from(row)))
}

// ---- crews ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrewCreate {
    pub code: String,
    pub name: String,
    pub kind: Option<CrewKind>,
    pub area_codes: Vec<String>,
    #[serde(default)]
    pub skills: Vec<String>,
    pub capacity: i32,
    pub on_duty: Option<bool>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrewPatch {
    pub name: Option<String>,
    pub kind: Option<CrewKind>,
    pub area_codes: Option<Vec<String>>,
    pub skills: Option<Vec<String>>,
    pub capacity: Option<i32>,
    pub on_duty: Option<bool>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationUpdate {
    pub lat: f64,
    pub lon: f64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DutyUpdate {
    pub on_duty: bool,
}

fn check_crew_fields(
    p: &mut Problems,
    name: Option<&str>,
    skills: Option<&[String]>,
    capacity: Option<i32>,
    lat: Option<f64>,
    lon: Option<f64>,
) {
    p.text("name", name, limits::NAME, name.is_some());
    if let Some(skills) = skills {
        check_codes(p, "skills", skills);
    }
    if let Some(c) = capacity {
        if !(0..=1000).contains(&c) {
            p.add("capacity", "must be between 0 and 1000");
        }
    }
    for (f, m) in check_coordinates(lat, lon) {
        p.add(f, m);
    }
}

#[utoipa::path(post, path = "/api/v1/crews", tag = "reference", request_body = CrewCreate,
    responses((status = 201, body = CrewView), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create_crew(
    state: web::Data<AppState>,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    require(&user, &[Role::Admin], "create crews")?;
    let c: CrewCreate = body.parse()?;
    let mut p = Problems::default();
    if let Err(m) = check_code(&c.code) {
        p.add("code", m);
    }
    check_crew_fields(
        &mut p,
        Some(&c.name),
        Some(&c.skills),
        Some(c.capacity),
        c.lat,
        c.lon,
    );
    if c.area_codes.is_empty() {
        p.add("area_codes", "a crew covers at least one area");
    }
    p.finish()?;
    let now = state.clock.now().naive_utc();
    let row = state
        .db(move |conn| {
            write_transaction(conn, |conn| {
                let mut p = Problems::default();
                missing_areas(conn, &mut p, "area_codes", &c.area_codes)?;
                p.finish()?;
                let row = CrewRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    code: c.code,
                    name: c.name,
                    kind: c.kind.unwrap_or(CrewKind::Field).as_str().to_owned(),
                    area_codes: to_json_list(&c.area_codes),
                    skills: to_json_list(&c.skills),
                    capacity: c.capacity,
                    on_duty: c.on_duty.unwrap_or(true),
                    lat: c.lat,
                    lon: c.lon,
                    located_at: c.lat.map(|_| now),
                    created_at: now,
                    updated_at: now,
                };
                crews::insert(conn, &row)?;
                Ok(row)
            })
        })
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

/// Applies crew changes after the 404 and role checks; the body is typed last.
async fn change_crew(
    state: web::Data<AppState>,
    id: String,
    make: impl FnOnce(chrono::NaiveDateTime) -> Result<(CrewChanges, Option<Vec<String>>), AppError>
        + Send
        + 'static,
) -> Result<HttpResponse, AppError> {
    let now = state.clock.now().naive_utc();
    let row = state
        .db(move |conn| {
            write_transaction(conn, |conn| {
                crews::find(conn, &id)?.ok_or(AppError::NotFound { what: "crew" })?;
                let (changes, areas_to_check) = make(now)?;
                if let Some(codes) = areas_to_check {
                    let mut p = Problems::default();
                    missing_areas(conn, &mut p, "area_codes", &codes)?;
                    p.finish()?;
                }
                crews::update(conn, &id, &changes)?;
                crews::find(conn, &id)?.ok_or(AppError::NotFound { what: "crew" })
            })
        })
        .await?;
    Ok(HttpResponse::Ok().json(CrewView::from(row)))
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
    change_crew(state, id, move |now| {
        let c: CrewPatch = body.parse()?;
        let mut p = Problems::default();
        check_crew_fields(
            &mut p,
            c.name.as_deref(),
            c.skills.as_deref(),
            c.capacity,
            c.lat,
            c.lon,
        );
        if c.area_codes.as_ref().is_some_and(Vec::is_empty) {
            p.add("area_codes", "a crew covers at least one area");
        }
        p.finish()?;
        let located = c.lat.is_some();
        Ok((
            CrewChanges {
                name: c.name,
                kind: c.kind.map(|k| k.as_str().to_owned()),
                area_codes: c.area_codes.as_deref().map(to_json_list),
                skills: c.skills.as_deref().map(to_json_list),
                capacity: c.capacity,
                on_duty: c.on_duty,
                lat: c.lat.map(Some),
                lon: c.lon.map(Some),
                located_at: located.then_some(Some(now)),
                updated_at: Some(now),
            },
            c.area_codes,
        ))
    })
    .await
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
    change_crew(state, id, move |now| {
        let l: LocationUpdate = body.parse()?;
        let mut p = Problems::default();
        for (f, m) in check_coordinates(Some(l.lat), Some(l.lon)) {
            p.add(f, m);
        }
        p.finish()?;
        Ok((
            CrewChanges {
                lat: Some(Some(l.lat)),
                lon: Some(Some(l.lon)),
                located_at: Some(Some(now)),
                updated_at: Some(now),
                ..Default::default()
            },
            None,
        ))
    })
    .await
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
    change_crew(state, id, move |now| {
        let d: DutyUpdate = body.parse()?;
        Ok((
            CrewChanges {
                on_duty: Some(d.on_duty),
                updated_at: Some(now),
                ..Default::default()
            },
            None,
        ))
    })
    .await
}

// ---- customers ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerCreate {
    pub account_no: String,
    pub name: String,
    pub phone: String,
    pub email: Option<String>,
    pub address: String,
    pub area_code: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub tier: Option<Tier>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerPatch {
    pub account_no: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<String>,
    pub address: Option<String>,
    pub area_code: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub tier: Option<Tier>,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct CustomerQuery {
    pub phone: Option<String>,
    pub account_no: Option<String>,
    pub q: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

const CUSTOMER_WRITERS: &[Role] = &[Role::Agent, Role::Dispatcher];
const CUSTOMER_READERS: &[Role] = &[Role::Agent, Role::Dispatcher, Role::Supervisor];

/// Validates customer fields; returns the normalised phone.
fn check_customer(p: &mut Problems, c: &CustomerPatch) -> Option<String> {
    if let Some(a) = &c.account_no {
        if let Err(m) = check_code(a) {
            p.add("account_no", m);
        }
    }
    p.text("name", c.name.as_deref(), limits::NAME, c.name.is_some());
    p.text(
        "address",
        c.address.as_deref(),
        limits::ADDRESS,
        c.address.is_some(),
    );
    if let Some(e) = &c.email {
        if e.chars().count() > 254 || !e.contains('@') || e.contains(char::is_whitespace) {
            p.add("email", "must be an email address");
        }
    }
    for (f, m) in check_coordinates(c.lat, c.lon) {
        p.add(f, m);
    }
    match c.phone.as_deref().map(Phone::parse) {
        Some(Ok(phone)) => Some(phone.as_str().to_owned()),
        Some(Err(m)) => {
            p.add("phone", m);
            None
        }
        None => None,
    }
}

#[utoipa::path(post, path = "/api/v1/customers", tag = "reference", request_body = CustomerCreate,
    responses((status = 201, body = CustomerView), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create_customer(
    state: web::Data<AppState>,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    require(&user, CUSTOMER_WRITERS, "create customers")?;
    let c: CustomerCreate = body.parse()?;
    let as_patch = CustomerPatch {
        account_no: Some(c.account_no.clone()),
        name: Some(c.name.clone()),
        phone: Some(c.phone.clone()),
        email: c.email.clone(),
        address: Some(c.address.clone()),
        area_code: Some(c.area_code.clone()),
        lat: c.lat,
        lon: c.lon,
        tier: c.tier,
    };
    let mut p = Problems::default();
    let phone = check_customer(&mut p, &as_patch);
    p.finish()?;
    let now = state.clock.now().naive_utc();
    let row = state
        .db(move |conn| {
            write_transaction(conn, |conn| {
                let mut p = Problems::default();
                if areas::find(conn, &c.area_code)?.is_none() {
                    p.add("area_code", "no such area");
                }
                p.finish()?;
                let row = CustomerRow {
                    id: uuid::Uuid::new_v4().to_string(),
                    account_no: c.account_no,
                    name: c.name,
                    phone: phone.unwrap_or_default(),
                    email: c.email,
                    address: c.address,
                    area_code: c.area_code,
                    lat: c.lat,
                    lon: c.lon,
                    tier: c.tier.unwrap_or(Tier::Normal).as_str().to_owned(),
                    created_at: now,
                    updated_at: now,
                };
                customers::insert(conn, &row)?;
                Ok(row)
            })
        })
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
    let role_ok = require(&user, CUSTOMER_WRITERS, "change customers");
    let now = state.clock.now().naive_utc();
    let row = state
        .db(move |conn| {
            write_transaction(conn, |conn| {
                customers::find(conn, &id)?.ok_or(AppError::NotFound { what: "customer" })?;
                role_ok?;
                let c: CustomerPatch = body.parse()?;
                let mut p = Problems::default();
                let phone = check_customer(&mut p, &c);
                if let Some(area) = &c.area_code {
                    if areas::find(conn, area)?.is_none() {
                        p.add("area_code", "no such area");
                    }
                }
                p.finish()?;
                let changes = CustomerChanges {
                    account_no: c.account_no,
                    name: c.name,
                    phone,
                    email: c.email.map(Some),
                    address: c.address,
                    area_code: c.area_code,
                    lat: c.lat.map(Some),
                    lon: c.lon.map(Some),
                    tier: c.tier.map(|t| t.as_str().to_owned()),
                    updated_at: Some(now),
                };
                customers::update(conn, &id, &changes)?;
                customers::find(conn, &id)?.ok_or(AppError::NotFound { what: "customer" })
            })
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
    responses((status = 200, body = inline(Object))), security(("bearer" = [])))]
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
    HttpResponse::Ok().json(serde_json::json!({ "items": items }))
}
