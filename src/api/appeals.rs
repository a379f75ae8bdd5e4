//! Appeals against breached timers (API.md, "Scorecards and appeals"): `/api/v1/appeals`,
//! `/api/v1/appeals/{id}`, `/api/v1/appeals/{id}/approve`, `/api/v1/appeals/{id}/reject`.

use super::extract::{page, path_uuid, JsonBody, Page, PageQuery};
use super::views::utc;
use crate::auth::AuthUser;
use crate::db::appeals::AppealRow;
use crate::domain::sla::Stage;
use crate::domain::values::limits;
use crate::errors::{AppError, Problems};
use crate::schema;
use crate::service::appeals::{self as service, Decision, NewAppeal, ReasonCode, Target};
use crate::state::AppState;
use actix_web::{http::header, web, HttpResponse};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppealInput {
    #[schema(schema_with = schema::uuid)]
    pub work_order_id: String,
    pub stage: Stage,
    #[schema(minimum = 1)]
    #[serde(deserialize_with = "schema::whole")]
    pub instance: i32,
    pub reason_code: ReasonCode,
    #[schema(schema_with = schema::reason)]
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ApproveInput {
    #[schema(schema_with = schema::any_note_or_null)]
    pub note: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectInput {
    #[schema(schema_with = schema::reason)]
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AppealView {
    pub id: String,
    pub work_order_id: String,
    pub stage: String,
    pub instance: i32,
    pub reason_code: String,
    pub reason: String,
    /// pending | approved | rejected
    pub status: String,
    /// The user who filed it.
    pub filed_by: String,
    pub filed_at: DateTime<Utc>,
    /// The timer's area.
    pub area_code: String,
    /// The crew the breach counts against: the timer's credited crew, else the order's.
    pub crew_id: Option<String>,
    /// `YYYY-MM`: the month (Asia/Shanghai) in which the timer's stage started.
    pub period: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    /// The approval's note or the rejection's reason.
    pub decision_note: Option<String>,
}

impl From<AppealRow> for AppealView {
    fn from(a: AppealRow) -> Self {
        AppealView {
            id: a.id,
            work_order_id: a.work_order_id,
            stage: a.stage,
            instance: a.instance,
            reason_code: a.reason_code,
            reason: a.reason,
            status: a.status,
            filed_by: a.filed_by,
            filed_at: utc(a.filed_at),
            area_code: a.area_code,
            crew_id: a.crew_id,
            period: a.period,
            decided_by: a.decided_by,
            decided_at: a.decided_at.map(utc),
            decision_note: a.decision_note,
        }
    }
}

/// The timer a filing names, if the body names one well enough to look it up.
fn target(body: &serde_json::Value) -> Option<Target> {
    Some(Target {
        work_order_id: body.get("work_order_id")?.as_str()?.to_owned(),
        stage: body.get("stage")?.as_str()?.parse().ok()?,
        instance: schema::whole(body.get("instance")?)
            .ok()
            .filter(|n| *n >= 1)?,
    })
}

fn new_appeal(body: &JsonBody) -> Result<NewAppeal, AppError> {
    let input: AppealInput = body.parse()?;
    let mut p = Problems::default();
    if input.instance < 1 {
        p.add("instance", "must be 1 or more");
    }
    p.text("reason", Some(&input.reason), limits::REASON, true);
    p.finish()?;
    Ok(NewAppeal {
        reason_code: input.reason_code,
        reason: input.reason,
    })
}

#[utoipa::path(post, path = "/api/v1/appeals", tag = "appeals", request_body = AppealInput,
    responses((status = 201, body = AppealView, headers(("Location" = String))),
        (status = 400), (status = 401),
        (status = 403, description = "agents and supervisors never file"),
        (status = 404, description = "unknown or out-of-scope order or timer"),
        (status = 409, description = "not_breached, appeal_pending, period_closed"),
        (status = 422)),
    security(("bearer" = [])))]
pub async fn file(
    state: web::Data<AppState>,
    user: AuthUser,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    let target = target(&body.0);
    let input = new_appeal(&body);
    let now = state.clock.now();
    let notifier = state.notifier.clone();
    let actor = user.0.clone();
    let row = state
        .db(move |conn| service::file(conn, &actor, target, input, &notifier, now))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/api/v1/appeals/{}", row.id)))
        .json(AppealView::from(row)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct AppealQuery {
    /// pending | approved | rejected
    #[param(pattern = "^(pending|approved|rejected)$")]
    pub status: Option<String>,
    /// An area; its descendants are included.
    pub area_code: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/appeals", tag = "appeals", params(AppealQuery, PageQuery),
    responses((status = 200, body = Page<AppealView>, description = "newest first"),
        (status = 400), (status = 401), (status = 403), (status = 422)),
    security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<AppealQuery>,
    paging: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let limit = paging.limit()?;
    let after: Option<(NaiveDateTime, String)> = paging.cursor()?;
    let q = q.into_inner();
    let actor = user.0.clone();
    let rows = state
        .db(move |conn| {
            service::list(
                conn,
                &actor,
                q.status.as_deref(),
                q.area_code.as_deref(),
                after,
                limit + 1,
            )
        })
        .await?;
    let body: Page<AppealView> = page(
        rows,
        limit,
        |a| (a.filed_at, a.id.clone()),
        AppealView::from,
    );
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(get, path = "/api/v1/appeals/{id}", tag = "appeals",
    responses((status = 200, body = AppealView), (status = 400), (status = 401), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path_uuid(&id)?;
    let actor = user.0.clone();
    let row = state
        .db(move |conn| service::get(conn, &actor, &id))
        .await?;
    Ok(HttpResponse::Ok().json(AppealView::from(row)))
}

async fn decide(
    state: web::Data<AppState>,
    user: AuthUser,
    id: &str,
    approve: bool,
    body: Result<Decision, AppError>,
) -> Result<HttpResponse, AppError> {
    let id = path_uuid(id)?;
    let now = state.clock.now();
    let actor = user.0.clone();
    let row = state
        .db(move |conn| service::decide(conn, &actor, &id, approve, body, now))
        .await?;
    Ok(HttpResponse::Ok().json(AppealView::from(row)))
}

#[utoipa::path(post, path = "/api/v1/appeals/{id}/approve", tag = "appeals", request_body = ApproveInput,
    responses((status = 200, body = AppealView, description = "the timer is now excused"),
        (status = 400), (status = 401), (status = 403),
        (status = 404, description = "unknown, or outside a scoped supervisor's areas"),
        (status = 409, description = "not_pending; not_breached when the breach was withdrawn since"),
        (status = 422)),
    security(("bearer" = [])))]
pub async fn approve(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    let decision = body.parse::<ApproveInput>().and_then(|b| {
        let mut p = Problems::default();
        p.text("note", b.note.as_deref(), limits::NOTE, false);
        p.finish()?;
        Ok(Decision::Approve { note: b.note })
    });
    decide(state, user, &id, true, decision).await
}

#[utoipa::path(post, path = "/api/v1/appeals/{id}/reject", tag = "appeals", request_body = RejectInput,
    responses((status = 200, body = AppealView),
        (status = 400), (status = 401), (status = 403),
        (status = 404, description = "unknown, or outside a scoped supervisor's areas"),
        (status = 409, description = "not_pending"), (status = 422)),
    security(("bearer" = [])))]
pub async fn reject(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    let decision = body.parse::<RejectInput>().and_then(|b| {
        let mut p = Problems::default();
        p.text("reason", Some(&b.reason), limits::REASON, true);
        p.finish()?;
        Ok(Decision::Reject { reason: b.reason })
    });
    decide(state, user, &id, false, decision).await
}
