//! SLA configuration and force-majeure pauses: `/api/v1/sla/policies`, `/api/v1/calendars`,
//! `/api/v1/calendars/{id}/days`, `/api/v1/sla/pauses`.

use super::extract::{path_uuid, JsonBody, Page};
use super::views::{utc, Items};
use crate::auth::AuthUser;
use crate::db::timers::PauseRow;
use crate::domain::calendar::DayKind;
use crate::domain::sla::{CalendarRef, Stage};
use crate::domain::values::limits;
use crate::domain::{Kind, Role};
use crate::errors::{AppError, Problems};
use crate::schema;
use crate::service::pauses::{self, NewPause};
use crate::state::AppState;
use actix_web::{http::header, web, HttpResponse};
use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
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

/// The SLA policy in force (`config/sla.toml`).
#[derive(Debug, Serialize, ToSchema)]
pub struct PolicyView {
    pub version: String,
    /// Warn at this fraction of the target.
    pub warn_at: f64,
    /// Further escalation levels after a breach, each a delay on the timer's calendar.
    pub escalations: Vec<String>,
    /// In file order: the first rule that matches an order wins.
    pub rules: Vec<RuleView>,
}

/// One policy rule; an empty list matches every value.
#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    pub name: String,
    /// 1-based line of the rule in its file.
    pub line: usize,
    pub kinds: Vec<Kind>,
    pub categories: Vec<String>,
    pub priorities: Vec<String>,
    pub region_classes: Vec<String>,
    pub tiers: Vec<String>,
    pub targets: Vec<TargetView>,
}

/// A stage's target under a rule.
#[derive(Debug, Serialize, ToSchema)]
pub struct TargetView {
    pub stage: Stage,
    /// As written: `45m`, `3h`, `5d`.
    pub target: String,
    /// `area` (the order's area's working calendar) or a calendar id.
    pub calendar: String,
}

#[utoipa::path(get, path = "/api/v1/sla/policies", tag = "sla",
    responses((status = 200, body = PolicyView), (status = 403)), security(("bearer" = [])))]
pub async fn policies(
    state: web::Data<AppState>,
    user: AuthUser,
) -> Result<HttpResponse, AppError> {
    require(&user, &[Role::Supervisor], "read SLA policies")?;
    let p = state.sla.policy();
    let rules = p
        .rules
        .iter()
        .map(|r| RuleView {
            name: r.name.clone(),
            line: r.line,
            kinds: r.kinds.clone(),
            categories: r.categories.clone(),
            priorities: r.priorities.clone(),
            region_classes: r.region_classes.clone(),
            tiers: r.tiers.clone(),
            targets: r
                .targets
                .iter()
                .map(|t| TargetView {
                    stage: t.stage,
                    target: t.target.clone(),
                    calendar: match &t.calendar {
                        CalendarRef::Area => "area".to_owned(),
                        CalendarRef::Named(n) => n.clone(),
                    },
                })
                .collect(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(PolicyView {
        version: p.version.clone(),
        warn_at: p.warn_at,
        escalations: p.escalations.clone(),
        rules,
    }))
}

/// A working calendar (`config/calendars/*.toml`).
#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarView {
    pub id: String,
    pub name: String,
    /// IANA time zone of the calendar's local dates, e.g. `Asia/Shanghai`.
    pub time_zone: String,
    /// Working time in one working day.
    pub working_seconds_per_day: i64,
    /// Every day is a working day (`24x7`).
    pub every_day_working: bool,
    /// Years whose holidays the calendar knows.
    pub years: Vec<i32>,
}

#[utoipa::path(get, path = "/api/v1/calendars", tag = "sla",
    responses((status = 200, body = Items<CalendarView>)), security(("bearer" = [])))]
pub async fn calendars(state: web::Data<AppState>, _user: AuthUser) -> HttpResponse {
    let items = state
        .sla
        .calendars
        .iter()
        .map(|c| CalendarView {
            id: c.id.clone(),
            name: c.name.clone(),
            time_zone: c.tz.name().to_owned(),
            working_seconds_per_day: c.seconds_per_day(),
            every_day_working: c.always,
            years: c.years.iter().copied().collect(),
        })
        .collect();
    HttpResponse::Ok().json(Items { items })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct DaysQuery {
    /// Local date, YYYY-MM-DD.
    #[param(format = Date)]
    pub from: String,
    /// Local date, YYYY-MM-DD (inclusive; at most 400 days after `from`).
    #[param(format = Date)]
    pub to: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct DayView {
    pub date: NaiveDate,
    pub working: bool,
    pub kind: DayKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// A calendar's days between two local dates.
#[derive(Debug, Serialize, ToSchema)]
pub struct DaysView {
    pub calendar: String,
    pub days: Vec<DayView>,
}

#[utoipa::path(get, path = "/api/v1/calendars/{id}/days", tag = "sla", params(DaysQuery),
    responses((status = 200, body = DaysView), (status = 404), (status = 422)), security(("bearer" = [])))]
pub async fn days(
    state: web::Data<AppState>,
    _user: AuthUser,
    id: web::Path<String>,
    q: web::Query<DaysQuery>,
) -> Result<HttpResponse, AppError> {
    let cal = state
        .sla
        .calendars
        .get(&id)
        .ok_or(AppError::NotFound { what: "calendar" })?;
    let mut p = Problems::default();
    let parse =
        |p: &mut Problems, field: &str, v: &str| match NaiveDate::parse_from_str(v, "%Y-%m-%d") {
            Ok(d) => Some(d),
            Err(_) => {
                p.add(field, "must be a date YYYY-MM-DD");
                None
            }
        };
    let from = parse(&mut p, "from", &q.from);
    let to = parse(&mut p, "to", &q.to);
    if let (Some(f), Some(t)) = (from, to) {
        if t < f || (t - f).num_days() > 400 {
            p.add(
                "to",
                "must be on or after `from` and at most 400 days later",
            );
        }
    }
    p.finish()?;
    let (Some(from), Some(to)) = (from, to) else {
        return Err(AppError::internal("dates checked above"));
    };
    let days: Vec<DayView> = from
        .iter_days()
        .take_while(|d| *d <= to)
        .map(|d| DayView {
            date: d,
            working: cal.is_working_day(d),
            kind: cal.day_kind(d),
            name: cal.holiday_name(d).map(str::to_owned),
        })
        .collect();
    Ok(HttpResponse::Ok().json(DaysView {
        calendar: cal.id.clone(),
        days,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PauseInput {
    #[schema(schema_with = schema::some_codes)]
    pub area_codes: Vec<String>,
    pub starts_at: DateTime<FixedOffset>,
    /// After `starts_at`; none: open until ended.
    pub ends_at: Option<DateTime<FixedOffset>>,
    #[schema(schema_with = schema::reason)]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PauseView {
    pub id: String,
    pub area_codes: Vec<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub reason: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub ended_by: Option<String>,
    pub active: bool,
}

fn pause_view(p: PauseRow, now: DateTime<Utc>) -> PauseView {
    PauseView {
        active: p.starts_at.and_utc() <= now && p.ends_at.is_none_or(|e| e.and_utc() > now),
        area_codes: p.area_codes.to_vec(),
        id: p.id,
        starts_at: utc(p.starts_at),
        ends_at: p.ends_at.map(utc),
        reason: p.reason,
        created_by: p.created_by,
        created_at: utc(p.created_at),
        ended_by: p.ended_by,
    }
}

#[utoipa::path(post, path = "/api/v1/sla/pauses", tag = "sla", request_body = PauseInput,
    responses((status = 201, body = PauseView), (status = 403), (status = 422)), security(("bearer" = [])))]
pub async fn create_pause(
    state: web::Data<AppState>,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    require(&user, &[Role::Supervisor], "declare force-majeure pauses")?;
    let input: PauseInput = body.parse()?;
    let mut p = Problems::default();
    if input.area_codes.is_empty() {
        p.add("area_codes", "name at least one area");
    }
    if let Some(out) = input.area_codes.iter().find(|a| !user.sees_area(a)) {
        return Err(AppError::out_of_scope(format!(
            "area {out} is outside your scope"
        )));
    }
    p.text("reason", Some(&input.reason), limits::REASON, true);
    if input.ends_at.is_some_and(|e| e <= input.starts_at) {
        p.add("ends_at", "must be after starts_at");
    }
    p.finish()?;
    let now = state.clock.now();
    let ctx = state.sla.context();
    let actor = user.0.clone();
    let new = NewPause {
        area_codes: input.area_codes,
        starts_at: input.starts_at.with_timezone(&Utc),
        ends_at: input.ends_at.map(|e| e.with_timezone(&Utc)),
        reason: input.reason,
    };
    let row = state
        .db(move |conn| pauses::create(conn, &actor, new, &ctx, now))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/sla/pauses/{}", row.id)))
        .json(pause_view(row, now)))
}

#[utoipa::path(get, path = "/api/v1/sla/pauses", tag = "sla",
    responses((status = 200, body = Page<PauseView>), (status = 403)), security(("bearer" = [])))]
pub async fn list_pauses(
    state: web::Data<AppState>,
    user: AuthUser,
) -> Result<HttpResponse, AppError> {
    require(
        &user,
        &[Role::Supervisor, Role::Dispatcher],
        "read force-majeure pauses",
    )?;
    let now = state.clock.now();
    let rows = state.db(crate::db::timers::pauses).await?;
    let items: Vec<PauseView> = rows
        .into_iter()
        .filter(|p| p.area_codes.to_vec().iter().any(|a| user.sees_area(a)))
        .map(|p| pause_view(p, now))
        .collect();
    // Every window is listed (they are few: declared by supervisors for storms), as one page.
    Ok(HttpResponse::Ok().json(Page {
        items,
        next_cursor: None,
    }))
}

#[utoipa::path(post, path = "/api/v1/sla/pauses/{id}/end", tag = "sla",
    responses((status = 200, body = PauseView), (status = 404), (status = 409)), security(("bearer" = [])))]
pub async fn end_pause(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path_uuid(&id)?;
    let now = state.clock.now();
    let ctx = state.sla.context();
    let actor = user.0.clone();
    let row = state
        .db(move |conn| pauses::end(conn, &actor, &id, &ctx, now))
        .await?;
    Ok(HttpResponse::Ok().json(pause_view(row, now)))
}
