//! Supervisor reports and monthly scorecards: `/api/v1/reports/{sla,crews,backlog,breaches}`,
//! `/api/v1/scorecards/{period}` (+ close, reopen). JSON, or CSV with `Accept: text/csv`.

use super::extract::{encode_cursor, JsonBody, PageQuery};
use crate::auth::AuthUser;
use crate::domain::reports::{check_period, safe_cell};
use crate::domain::scoring::CrewScore;
use crate::domain::sla::Stage;
use crate::domain::Kind;
use crate::errors::{AppError, Problems};
use crate::schema;
use crate::service::reports::{
    self as service, BacklogRow, BreachCursor, BreachItem, BreachQuery, GroupBy, SlaQuery, SlaRow,
};
use crate::service::scorecards::{self, Scorecard};
use crate::state::AppState;
use actix_web::{http::header, web, HttpRequest, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The longest report period, in days.
pub const MAX_REPORT_DAYS: i64 = 400;

/// The report filters as sent; each is checked here so a bad one is a 422 naming it.
#[derive(Debug, Deserialize)]
pub struct ReportQuery {
    /// RFC 3339; required except for the backlog.
    pub from: Option<String>,
    /// RFC 3339, after `from`, at most 400 days later.
    pub to: Option<String>,
    /// crew | area | kind | priority | stage | day (`/reports/sla`, required there).
    pub group_by: Option<String>,
    /// A work-order kind.
    pub kind: Option<String>,
    /// An area; its descendants are included.
    pub area_code: Option<String>,
    /// dispatch | accept | arrival | restore | contact | reply | callback
    pub stage: Option<String>,
}

struct Checked {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    group_by: Option<GroupBy>,
    kind: Option<Kind>,
    stage: Option<Stage>,
}

fn check(q: &ReportQuery, needs_period: bool, needs_group: bool) -> Result<Checked, AppError> {
    let mut p = Problems::default();
    let time = |p: &mut Problems, field: &str, v: &Option<String>| match v {
        None if needs_period => {
            p.add(field, "required (RFC 3339)");
            None
        }
        None => None,
        Some(v) => match DateTime::parse_from_rfc3339(v) {
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(_) => {
                p.add(field, "must be an RFC 3339 time with offset");
                None
            }
        },
    };
    let from = time(&mut p, "from", &q.from);
    let to = time(&mut p, "to", &q.to);
    if let (Some(f), Some(t)) = (from, to) {
        if let Err((field, message)) = check_period(f, t, MAX_REPORT_DAYS) {
            p.add(field, message);
        }
    }
    let group_by = match (&q.group_by, needs_group) {
        (None, true) => {
            p.add(
                "group_by",
                "required: crew, area, kind, priority, stage or day",
            );
            None
        }
        (None, false) => None,
        (Some(g), _) => match serde_json::from_value(serde_json::Value::String(g.clone())) {
            Ok(g) => Some(g),
            Err(_) => {
                p.add("group_by", "one of crew, area, kind, priority, stage, day");
                None
            }
        },
    };
    let kind = q.kind.as_deref().and_then(|k| match k.parse::<Kind>() {
        Ok(k) => Some(k),
        Err(_) => {
            p.add("kind", "not a work-order kind");
            None
        }
    });
    let stage = q.stage.as_deref().and_then(|s| match s.parse::<Stage>() {
        Ok(s) => Some(s),
        Err(_) => {
            p.add("stage", "not a stage");
            None
        }
    });
    p.finish()?;
    Ok(Checked {
        from,
        to,
        group_by,
        kind,
        stage,
    })
}

fn period(c: &Checked) -> Result<(DateTime<Utc>, DateTime<Utc>), AppError> {
    c.from
        .zip(c.to)
        .ok_or_else(|| AppError::internal("the period was checked as required"))
}

/// Whether the client asked for CSV.
fn wants_csv(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains("text/csv"))
}

/// The same rows as CSV: a header of the JSON field names (nested ones flattened as
/// `parts.satisfaction_rate`), formula cells escaped.
fn csv<T: Serialize>(columns: &[&str], rows: &[T]) -> Result<HttpResponse, AppError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| AppError::internal(e.to_string());
    w.write_record(columns).map_err(fail)?;
    for row in rows {
        let value = serde_json::to_value(row).map_err(|e| AppError::internal(e.to_string()))?;
        let cells = columns.iter().map(|c| {
            let cell = c
                .split('.')
                .try_fold(&value, |v, key| v.get(key))
                .unwrap_or(&serde_json::Value::Null);
            safe_cell(match cell {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            })
        });
        w.write_record(cells).map_err(fail)?;
    }
    let body = w
        .into_inner()
        .map_err(|e| AppError::internal(e.to_string()))?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .body(body))
}

/// A report's JSON body: `{rows}` (typed per report in the OpenAPI document).
#[derive(Serialize)]
struct Rows<'a, T> {
    rows: &'a [T],
}

/// JSON `{rows}` or CSV, as the client asked.
fn respond<T: Serialize>(
    req: &HttpRequest,
    columns: &[&str],
    rows: &[T],
) -> Result<HttpResponse, AppError> {
    if wants_csv(req) {
        csv(columns, rows)
    } else {
        Ok(HttpResponse::Ok().json(Rows { rows }))
    }
}

const SLA_COLUMNS: [&str; 13] = [
    "key",
    "label",
    "total",
    "met",
    "breached",
    "stopped",
    "excused",
    "open_running",
    "open_breached",
    "compliance_rate",
    "p50_minutes",
    "p90_minutes",
    "p99_minutes",
];

const CREW_COLUMNS: [&str; 15] = [
    "crew_id",
    "code",
    "name",
    "kind",
    "rank",
    "score",
    "orders",
    "praise",
    "parts.on_time_arrival_rate",
    "parts.resolve_in_target_rate",
    "parts.satisfaction_rate",
    "parts.reopen_rate",
    "parts.complaints_per_100",
    "parts.reject_rate",
    "sample_ok",
];

const BACKLOG_COLUMNS: [&str; 4] = ["status", "age_bucket", "sla_state", "count"];

const BREACH_COLUMNS: [&str; 11] = [
    "work_order_id",
    "number",
    "kind",
    "area_code",
    "stage",
    "instance",
    "crew_id",
    "due_at",
    "breached_at",
    "overdue_minutes",
    "excused",
];

#[derive(Serialize, utoipa::ToSchema)]
pub struct SlaReport {
    pub rows: Vec<SlaRow>,
}

#[utoipa::path(get, path = "/api/v1/reports/sla", tag = "reports", params(("from" = String, Query, format = DateTime, description = "RFC 3339 with offset; before `to`, at most 400 days earlier"), ("to" = String, Query, format = DateTime, description = "RFC 3339 with offset"), ("group_by" = crate::service::reports::GroupBy, Query), ("kind" = Option<crate::domain::Kind>, Query), ("area_code" = Option<String>, Query, description = "An area; its descendants are included"), ("stage" = Option<crate::domain::sla::Stage>, Query)),
    responses((status = 200, body = SlaReport, description = "JSON, or CSV with Accept: text/csv"),
        (status = 401), (status = 403), (status = 422)), security(("bearer" = [])))]
pub async fn sla(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<ReportQuery>,
) -> Result<HttpResponse, AppError> {
    let actor = user.0.clone();
    service::require_reader(&actor)?;
    let c = check(&q, true, true)?;
    let (from, to) = period(&c)?;
    let query = SlaQuery {
        from,
        to,
        group_by: c.group_by.unwrap_or(GroupBy::Stage),
        kind: c.kind,
        area_code: q.area_code.clone(),
        stage: c.stage,
    };
    let ctx = state.sla.context();
    let rows = state
        .db(move |conn| service::sla(conn, &actor, &query, &ctx))
        .await?;
    respond(&req, &SLA_COLUMNS, &rows)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct CrewReport {
    pub rows: Vec<CrewScore>,
}

#[utoipa::path(get, path = "/api/v1/reports/crews", tag = "reports", params(("from" = String, Query, format = DateTime, description = "RFC 3339 with offset; before `to`, at most 400 days earlier"), ("to" = String, Query, format = DateTime, description = "RFC 3339 with offset"), ("area_code" = Option<String>, Query, description = "An area; its descendants are included")),
    responses((status = 200, body = CrewReport, description = "JSON, or CSV with Accept: text/csv"),
        (status = 401), (status = 403), (status = 422)), security(("bearer" = [])))]
pub async fn crews(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<ReportQuery>,
) -> Result<HttpResponse, AppError> {
    let actor = user.0.clone();
    service::require_reader(&actor)?;
    let c = check(&q, true, false)?;
    let range = period(&c)?;
    let area = q.area_code.clone();
    let cfg = state.settings.scoring.clone();
    let ctx = state.sla.context();
    let rows = state
        .db(move |conn| service::crews(conn, &actor, range, area.as_deref(), (&cfg, &ctx)))
        .await?;
    respond(&req, &CREW_COLUMNS, &rows)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BacklogReport {
    pub rows: Vec<BacklogRow>,
}

#[utoipa::path(get, path = "/api/v1/reports/backlog", tag = "reports", params(("area_code" = Option<String>, Query, description = "An area; its descendants are included")),
    responses((status = 200, body = BacklogReport, description = "JSON, or CSV with Accept: text/csv"),
        (status = 401), (status = 403), (status = 422)), security(("bearer" = [])))]
pub async fn backlog(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<ReportQuery>,
) -> Result<HttpResponse, AppError> {
    let actor = user.0.clone();
    service::require_reader(&actor)?;
    check(&q, false, false)?;
    let area = q.area_code.clone();
    let now = state.clock.now();
    let rows = state
        .db(move |conn| service::backlog(conn, &actor, area.as_deref(), now))
        .await?;
    respond(&req, &BACKLOG_COLUMNS, &rows)
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BreachPage {
    pub items: Vec<BreachItem>,
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/reports/breaches", tag = "reports", params(("from" = String, Query, format = DateTime, description = "RFC 3339 with offset; before `to`, at most 400 days earlier"), ("to" = String, Query, format = DateTime, description = "RFC 3339 with offset"), ("stage" = Option<crate::domain::sla::Stage>, Query), ("area_code" = Option<String>, Query, description = "An area; its descendants are included"), PageQuery),
    responses((status = 200, body = BreachPage, description = "JSON, or CSV with Accept: text/csv (one page)"),
        (status = 400), (status = 401), (status = 403), (status = 422)), security(("bearer" = [])))]
pub async fn breaches(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<ReportQuery>,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let actor = user.0.clone();
    service::require_reader(&actor)?;
    let c = check(&q, true, false)?;
    let (from, to) = period(&c)?;
    let limit = page.limit()?;
    let after: Option<BreachCursor> = page.cursor()?;
    let query = BreachQuery {
        from,
        to,
        stage: c.stage,
        area_code: q.area_code.clone(),
    };
    let now = state.clock.now();
    let (items, next) = state
        .db(move |conn| service::breaches(conn, &actor, &query, (after, limit), now))
        .await?;
    let next_cursor = next.map(|c| encode_cursor(&c));
    if wants_csv(&req) {
        let mut resp = csv(&BREACH_COLUMNS, &items)?;
        if let Some(next) = &next_cursor {
            if let Ok(v) = header::HeaderValue::from_str(next) {
                resp.headers_mut()
                    .insert(header::HeaderName::from_static("x-next-cursor"), v);
            }
        }
        return Ok(resp);
    }
    Ok(HttpResponse::Ok().json(BreachPage { items, next_cursor }))
}

fn scorecard_response(req: &HttpRequest, card: &Scorecard) -> Result<HttpResponse, AppError> {
    if wants_csv(req) {
        csv(&CREW_COLUMNS, &card.rows)
    } else {
        Ok(HttpResponse::Ok().json(card))
    }
}

#[utoipa::path(get, path = "/api/v1/scorecards/{period}", tag = "reports",
    params(("period" = String, Path, pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$", description = "A month, YYYY-MM")),
    responses((status = 200, body = Scorecard, description = "JSON, or CSV of its rows with Accept: text/csv"),
        (status = 400), (status = 401), (status = 403)), security(("bearer" = [])))]
pub async fn scorecard(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    period: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let actor = user.0.clone();
    let cfg = state.settings.scoring.clone();
    let ctx = state.sla.context();
    let period = period.into_inner();
    let card = state
        .db(move |conn| scorecards::get(conn, &actor, &period, (&cfg, &ctx)))
        .await?;
    scorecard_response(&req, &card)
}

#[utoipa::path(post, path = "/api/v1/scorecards/{period}/close", tag = "reports",
    params(("period" = String, Path, pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$", description = "A month, YYYY-MM")),
    responses((status = 200, body = Scorecard), (status = 400), (status = 401), (status = 403),
        (status = 409, description = "period_not_ended, already_closed, appeals_pending")),
    security(("bearer" = [])))]
pub async fn close(
    req: HttpRequest,
    state: web::Data<AppState>,
    user: AuthUser,
    period: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let actor = user.0.clone();
    let cfg = state.settings.scoring.clone();
    let ctx = state.sla.context();
    let now = state.clock.now();
    let period = period.into_inner();
    let card = state
        .db(move |conn| scorecards::close(conn, &actor, &period, (&cfg, &ctx), now))
        .await?;
    scorecard_response(&req, &card)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReopenBody {
    #[schema(schema_with = schema::reason)]
    pub reason: String,
}

#[utoipa::path(post, path = "/api/v1/scorecards/{period}/reopen", tag = "reports",
    params(("period" = String, Path, pattern = "^[0-9]{4}-(0[1-9]|1[0-2])$", description = "A month, YYYY-MM")), request_body = ReopenBody,
    responses((status = 200, body = Scorecard), (status = 400), (status = 401), (status = 403),
        (status = 409, description = "not_closed"), (status = 422)),
    security(("bearer" = [])))]
pub async fn reopen(
    state: web::Data<AppState>,
    user: AuthUser,
    period: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    let actor = user.0.clone();
    let cfg = state.settings.scoring.clone();
    let ctx = state.sla.context();
    let now = state.clock.now();
    let period = period.into_inner();
    let reason = body.parse::<ReopenBody>().map(|b| b.reason);
    let card = state
        .db(move |conn| scorecards::reopen(conn, &actor, &period, reason, (&cfg, &ctx), now))
        .await?;
    Ok(HttpResponse::Ok().json(card))
}
