//! Reference data an admin (areas, crews) or an agent (customers) writes, and what crews
//! report about themselves (location, duty). Each function is one use case in one write
//! transaction; the checks that need the database (areas that must exist) run inside it.
//!
//! Changes to an existing record take the request body as a function (`edit`), called after
//! the record was found: an unknown id answers 404 before a bad body answers 422, the order
//! API.md fixes.

use crate::db::areas::{self, AreaChanges, AreaRow};
use crate::db::crews::{self, CrewChanges, CrewRow};
use crate::db::customers::{self, CustomerChanges, CustomerRow};
use crate::db::StoredList;
use crate::db::{to_json_list, write_transaction, DbConnection};
use crate::domain::calendar::Calendars;
use crate::domain::values::{check_code, check_coordinates, limits, Phone};
use crate::domain::{CrewKind, RegionClass, Tier};
use crate::errors::{AppError, Problems};
use crate::schema;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

fn check_codes(p: &mut Problems, field: &str, codes: &[String]) {
    for (i, code) in codes.iter().enumerate() {
        if let Err(m) = check_code(code) {
            p.add(format!("{field}[{i}]"), m);
        }
    }
}

fn missing_areas(
    conn: &mut DbConnection,
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

fn check_calendar(p: &mut Problems, calendars: &Calendars, calendar: Option<&str>) {
    if let Some(c) = calendar {
        if calendars.get(c).is_none() {
            p.add(
                "calendar",
                format!("no calendar `{c}` (GET /api/v1/calendars lists them)"),
            );
        }
    }
}

// ---- areas ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AreaCreate {
    #[schema(schema_with = schema::code)]
    pub code: String,
    #[schema(schema_with = schema::name)]
    pub name: String,
    pub region_class: RegionClass,
    #[schema(schema_with = schema::code_or_null)]
    pub parent_code: Option<String>,
    #[serde(default)]
    #[schema(schema_with = schema::codes)]
    pub backup_area_codes: Vec<String>,
    /// A calendar id of `GET /api/v1/calendars` (default `cn`).
    pub calendar: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AreaPatch {
    #[schema(schema_with = schema::name_or_null)]
    pub name: Option<String>,
    pub region_class: Option<RegionClass>,
    #[schema(schema_with = schema::code_or_null)]
    pub parent_code: Option<String>,
    #[schema(schema_with = schema::codes_or_null)]
    pub backup_area_codes: Option<Vec<String>>,
    pub calendar: Option<String>,
}

/// A new area; its parent and backup areas must exist.
pub fn create_area(
    conn: &mut DbConnection,
    calendars: &Calendars,
    a: AreaCreate,
    now: DateTime<Utc>,
) -> Result<AreaRow, AppError> {
    let mut p = Problems::default();
    if let Err(m) = check_code(&a.code) {
        p.add("code", m);
    }
    p.text("name", Some(&a.name), limits::NAME, true);
    check_codes(&mut p, "backup_area_codes", &a.backup_area_codes);
    check_calendar(&mut p, calendars, a.calendar.as_deref());
    p.finish()?;
    let now = now.naive_utc();
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
            backup_area_codes: StoredList(a.backup_area_codes.clone()),
            calendar: a.calendar.unwrap_or_else(|| "cn".to_owned()),
            created_at: now,
            updated_at: now,
        };
        areas::insert(conn, &row)?;
        Ok(row)
    })
}

/// Changes an area; `edit` gives the change once the area is known to exist.
pub fn update_area(
    conn: &mut DbConnection,
    calendars: &Calendars,
    code: &str,
    now: DateTime<Utc>,
    edit: impl FnOnce() -> Result<AreaPatch, AppError>,
) -> Result<AreaRow, AppError> {
    write_transaction(conn, |conn| {
        areas::find(conn, code)?.ok_or(AppError::NotFound { what: "area" })?;
        let a = edit()?;
        let mut p = Problems::default();
        p.text("name", a.name.as_deref(), limits::NAME, a.name.is_some());
        check_calendar(&mut p, calendars, a.calendar.as_deref());
        if a.parent_code.as_deref() == Some(code) {
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
            updated_at: Some(now.naive_utc()),
        };
        areas::update(conn, code, &changes)?;
        areas::find(conn, code)?.ok_or(AppError::NotFound { what: "area" })
    })
}

// ---- crews ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrewCreate {
    #[schema(schema_with = schema::code)]
    pub code: String,
    #[schema(schema_with = schema::name)]
    pub name: String,
    pub kind: Option<CrewKind>,
    /// The first is the crew's home area.
    #[schema(schema_with = schema::some_codes)]
    pub area_codes: Vec<String>,
    #[serde(default)]
    #[schema(schema_with = schema::codes)]
    pub skills: Vec<String>,
    #[schema(minimum = 0, maximum = 1000)]
    #[serde(deserialize_with = "schema::whole")]
    pub capacity: i32,
    pub on_duty: Option<bool>,
    /// Sent together with `lon`.
    #[schema(schema_with = schema::lat_or_null)]
    pub lat: Option<f64>,
    #[schema(schema_with = schema::lon_or_null)]
    pub lon: Option<f64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CrewPatch {
    #[schema(schema_with = schema::name_or_null)]
    pub name: Option<String>,
    pub kind: Option<CrewKind>,
    #[schema(schema_with = schema::some_codes_or_null)]
    pub area_codes: Option<Vec<String>>,
    #[schema(schema_with = schema::codes_or_null)]
    pub skills: Option<Vec<String>>,
    #[schema(minimum = 0, maximum = 1000)]
    #[serde(default, deserialize_with = "schema::whole_or_null")]
    pub capacity: Option<i32>,
    pub on_duty: Option<bool>,
    /// Sent together with `lon`.
    #[schema(schema_with = schema::lat_or_null)]
    pub lat: Option<f64>,
    #[schema(schema_with = schema::lon_or_null)]
    pub lon: Option<f64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationUpdate {
    #[schema(schema_with = schema::lat)]
    pub lat: f64,
    #[schema(schema_with = schema::lon)]
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

/// A new crew; the areas it covers must exist.
pub fn create_crew(
    conn: &mut DbConnection,
    c: CrewCreate,
    now: DateTime<Utc>,
) -> Result<CrewRow, AppError> {
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
    let now = now.naive_utc();
    write_transaction(conn, |conn| {
        let mut p = Problems::default();
        missing_areas(conn, &mut p, "area_codes", &c.area_codes)?;
        p.finish()?;
        let row = CrewRow {
            id: uuid::Uuid::new_v4().to_string(),
            code: c.code,
            name: c.name,
            kind: c.kind.unwrap_or(CrewKind::Field),
            area_codes: StoredList(c.area_codes.clone()),
            skills: StoredList(c.skills.clone()),
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
}

/// Changes to a crew, and the areas among them that must exist.
struct CrewEdit {
    changes: CrewChanges,
    areas_to_check: Option<Vec<String>>,
}

fn change_crew(
    conn: &mut DbConnection,
    id: &str,
    now: NaiveDateTime,
    edit: impl FnOnce(NaiveDateTime) -> Result<CrewEdit, AppError>,
) -> Result<CrewRow, AppError> {
    write_transaction(conn, |conn| {
        crews::find(conn, id)?.ok_or(AppError::NotFound { what: "crew" })?;
        let CrewEdit {
            changes,
            areas_to_check,
        } = edit(now)?;
        if let Some(codes) = areas_to_check {
            let mut p = Problems::default();
            missing_areas(conn, &mut p, "area_codes", &codes)?;
            p.finish()?;
        }
        crews::update(conn, id, &changes)?;
        crews::find(conn, id)?.ok_or(AppError::NotFound { what: "crew" })
    })
}

/// An admin's change to a crew; `edit` gives it once the crew is known to exist.
pub fn update_crew(
    conn: &mut DbConnection,
    id: &str,
    now: DateTime<Utc>,
    edit: impl FnOnce() -> Result<CrewPatch, AppError>,
) -> Result<CrewRow, AppError> {
    change_crew(conn, id, now.naive_utc(), |now| {
        let c = edit()?;
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
        Ok(CrewEdit {
            changes: CrewChanges {
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
            areas_to_check: c.area_codes,
        })
    })
}

/// A crew's reported position (the routing score's distance starts from it).
pub fn report_location(
    conn: &mut DbConnection,
    id: &str,
    now: DateTime<Utc>,
    edit: impl FnOnce() -> Result<LocationUpdate, AppError>,
) -> Result<CrewRow, AppError> {
    change_crew(conn, id, now.naive_utc(), |now| {
        let l = edit()?;
        let mut p = Problems::default();
        for (f, m) in check_coordinates(Some(l.lat), Some(l.lon)) {
            p.add(f, m);
        }
        p.finish()?;
        Ok(CrewEdit {
            changes: CrewChanges {
                lat: Some(Some(l.lat)),
                lon: Some(Some(l.lon)),
                located_at: Some(Some(now)),
                updated_at: Some(now),
                ..Default::default()
            },
            areas_to_check: None,
        })
    })
}

/// A crew going on or off duty (off duty: routing passes it by).
pub fn report_duty(
    conn: &mut DbConnection,
    id: &str,
    now: DateTime<Utc>,
    edit: impl FnOnce() -> Result<DutyUpdate, AppError>,
) -> Result<CrewRow, AppError> {
    change_crew(conn, id, now.naive_utc(), |now| {
        let d = edit()?;
        Ok(CrewEdit {
            changes: CrewChanges {
                on_duty: Some(d.on_duty),
                updated_at: Some(now),
                ..Default::default()
            },
            areas_to_check: None,
        })
    })
}

// ---- customers ----

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerCreate {
    #[schema(schema_with = schema::code)]
    pub account_no: String,
    #[schema(schema_with = schema::name)]
    pub name: String,
    #[schema(schema_with = schema::phone)]
    pub phone: String,
    #[schema(schema_with = schema::email_or_null)]
    pub email: Option<String>,
    #[schema(schema_with = schema::address)]
    pub address: String,
    #[schema(schema_with = schema::code)]
    pub area_code: String,
    /// Sent together with `lon`.
    #[schema(schema_with = schema::lat_or_null)]
    pub lat: Option<f64>,
    #[schema(schema_with = schema::lon_or_null)]
    pub lon: Option<f64>,
    pub tier: Option<Tier>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomerPatch {
    #[schema(schema_with = schema::code_or_null)]
    pub account_no: Option<String>,
    #[schema(schema_with = schema::name_or_null)]
    pub name: Option<String>,
    #[schema(schema_with = schema::phone_or_null)]
    pub phone: Option<String>,
    #[schema(schema_with = schema::email_or_null)]
    pub email: Option<String>,
    #[schema(schema_with = schema::address_or_null)]
    pub address: Option<String>,
    #[schema(schema_with = schema::code_or_null)]
    pub area_code: Option<String>,
    /// Sent together with `lon`.
    #[schema(schema_with = schema::lat_or_null)]
    pub lat: Option<f64>,
    #[schema(schema_with = schema::lon_or_null)]
    pub lon: Option<f64>,
    pub tier: Option<Tier>,
}

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

fn check_area_exists(
    conn: &mut DbConnection,
    p: &mut Problems,
    area: &str,
) -> Result<(), AppError> {
    if areas::find(conn, area)?.is_none() {
        p.add("area_code", "no such area");
    }
    Ok(())
}

/// A new customer; its area must exist, its account number be new.
pub fn create_customer(
    conn: &mut DbConnection,
    c: CustomerCreate,
    now: DateTime<Utc>,
) -> Result<CustomerRow, AppError> {
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
    let now = now.naive_utc();
    write_transaction(conn, |conn| {
        let mut p = Problems::default();
        check_area_exists(conn, &mut p, &c.area_code)?;
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
}

/// Changes a customer. `allowed` is the caller's role check, answered after the 404 (a
/// customer's existence is not secret from staff, but the order of answers is API.md's).
pub fn update_customer(
    conn: &mut DbConnection,
    id: &str,
    now: DateTime<Utc>,
    allowed: Result<(), AppError>,
    edit: impl FnOnce() -> Result<CustomerPatch, AppError>,
) -> Result<CustomerRow, AppError> {
    write_transaction(conn, |conn| {
        customers::find(conn, id)?.ok_or(AppError::NotFound { what: "customer" })?;
        allowed?;
        let c = edit()?;
        let mut p = Problems::default();
        let phone = check_customer(&mut p, &c);
        if let Some(area) = &c.area_code {
            check_area_exists(conn, &mut p, area)?;
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
            updated_at: Some(now.naive_utc()),
        };
        customers::update(conn, id, &changes)?;
        customers::find(conn, id)?.ok_or(AppError::NotFound { what: "customer" })
    })
}
