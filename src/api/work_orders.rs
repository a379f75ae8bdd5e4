//! `/api/v1/work-orders`: create (idempotent), list, get, correct, events, notes, actions.

use super::extract::{cursor_of, if_match, page, path_uuid, JsonBody, Page, PageQuery};
use super::views::{CandidateView, OutageNoticeView, RoutingView, TimerDetailView};
use super::views::{EventView, WorkOrderView};
use crate::auth::tokens::sha256_hex;
use crate::auth::AuthUser;
use crate::db::timers::{self, TimerRow};
use crate::db::work_orders::{OrderFilter, WorkOrderRow};
use crate::errors::ProblemCode;
use crate::schema;

/// An order with its timers, read in the same connection.
fn with_timers(
    conn: &mut crate::db::DbConnection,
    row: WorkOrderRow,
) -> Result<(WorkOrderRow, Vec<TimerRow>), AppError> {
    let timers = timers::for_orders(conn, std::slice::from_ref(&row.id))?;
    Ok((row, timers))
}
use crate::domain::values::{check_coordinates, limits, Phone};
use crate::domain::{Action, Channel, Grade, Kind, Priority, Role, Status};
use crate::errors::{AppError, Problems};
use crate::service::work_orders::{
    self as service, ActRequest, Acted, ActionBody, CorrectRequest, Correction, IdempotentRequest,
    NewOrder, Rules,
};
use crate::state::AppState;
use actix_web::http::{header, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeDelta, Utc};
use serde::Deserialize;
use utoipa::ToSchema;

fn rules(state: &AppState) -> Rules {
    state.work_order_rules()
}

fn order_response(
    state: &AppState,
    user: &AuthUser,
    order: (WorkOrderRow, Vec<TimerRow>),
    status: StatusCode,
    duplicate_of: Option<String>,
) -> Result<HttpResponse, AppError> {
    order_response_with(
        state,
        user,
        order,
        status,
        Extras {
            duplicate_of,
            ..Default::default()
        },
    )
}

/// What some responses add to the order: the order a repeat call repeats, the automatic
/// dispatch's choice, the outage a call was linked to.
#[derive(Default)]
struct Extras {
    duplicate_of: Option<String>,
    routing: Option<RoutingView>,
    outage: Option<OutageNoticeView>,
}

fn order_response_with(
    state: &AppState,
    user: &AuthUser,
    (row, timers): (WorkOrderRow, Vec<TimerRow>),
    status: StatusCode,
    extras: Extras,
) -> Result<HttpResponse, AppError> {
    let allowed = service::allowed_actions(&row, user, state.clock.now(), &rules(state));
    let etag = format!("\"{}\"", row.version);
    let location = format!("/api/v1/work-orders/{}", row.id);
    let mut view = WorkOrderView::new(row, allowed, timers);
    view.duplicate_of = extras.duplicate_of;
    view.routing = extras.routing;
    view.outage = extras.outage;
    let mut builder = HttpResponse::build(status);
    builder.insert_header((header::ETAG, etag));
    if status == StatusCode::CREATED {
        builder.insert_header((header::LOCATION, location));
    }
    Ok(builder.json(view))
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CallerInput {
    #[schema(schema_with = schema::any_name_or_null)]
    pub name: Option<String>,
    /// Required without a `customer_id`.
    #[schema(schema_with = schema::phone_or_null)]
    pub phone: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrder {
    #[schema(required = true, value_type = Kind)]
    pub kind: Option<Kind>,
    /// A category of the kind (`GET /api/v1/categories`); default: the kind's first.
    pub category: Option<String>,
    pub priority: Option<Priority>,
    #[schema(required = true, value_type = Channel)]
    pub channel: Option<Channel>,
    /// This or `caller` is required.
    #[schema(schema_with = schema::uuid_or_null)]
    pub customer_id: Option<String>,
    pub caller: Option<CallerInput>,
    #[schema(required = true, schema_with = schema::code)]
    pub area_code: Option<String>,
    #[schema(schema_with = schema::any_address_or_null)]
    pub address: Option<String>,
    /// Sent together with `lon`.
    #[schema(schema_with = schema::lat_or_null)]
    pub lat: Option<f64>,
    #[schema(schema_with = schema::lon_or_null)]
    pub lon: Option<f64>,
    #[schema(required = true, schema_with = schema::description)]
    pub description: Option<String>,
    #[schema(schema_with = schema::uuid_or_null)]
    pub subject_crew_id: Option<String>,
    /// Complaints only (default general).
    pub grade: Option<Grade>,
    /// Skip the repeat-call check.
    pub force_new: Option<bool>,
    /// Link a repair call to an active outage in its area (default true).
    pub link_outage: Option<bool>,
}

fn check_uuid(p: &mut Problems, field: &str, value: Option<&str>) {
    if let Some(v) = value {
        if uuid::Uuid::parse_str(v).is_err() {
            p.add(field, "must be a UUID");
        }
    }
}

/// Turns a create body into a validated command, reporting every invalid field.
fn new_order(
    c: CreateOrder,
    categories: &crate::domain::categories::Categories,
) -> Result<NewOrder, AppError> {
    let mut p = Problems::default();
    if c.kind.is_none() {
        p.add("kind", "is required");
    }
    if c.channel.is_none() {
        p.add("channel", "is required");
    }
    match &c.area_code {
        None => p.add("area_code", "is required"),
        Some(a) if a.trim().is_empty() || a.chars().count() > limits::CODE => {
            p.add("area_code", "must be an area code")
        }
        _ => {}
    }
    p.text(
        "description",
        c.description.as_deref(),
        limits::DESCRIPTION,
        true,
    );
    p.text("address", c.address.as_deref(), limits::ADDRESS, false);
    check_uuid(&mut p, "customer_id", c.customer_id.as_deref());
    check_uuid(&mut p, "subject_crew_id", c.subject_crew_id.as_deref());
    for (f, m) in check_coordinates(c.lat, c.lon) {
        p.add(f, m);
    }
    let mut caller_phone = None;
    match (&c.customer_id, &c.caller) {
        (None, None) => p.add("caller", "either customer_id or caller is required"),
        (_, Some(caller)) => {
            p.text("caller.name", caller.name.as_deref(), limits::NAME, false);
            match caller.phone.as_deref().map(Phone::parse) {
                Some(Ok(phone)) => caller_phone = Some(phone.as_str().to_owned()),
                Some(Err(m)) => p.add("caller.phone", m),
                None if c.customer_id.is_none() => {
                    p.add("caller.phone", "is required without a customer_id")
                }
                None => {}
            }
        }
        _ => {}
    }
    let mut category = None;
    if let Some(kind) = c.kind {
        match &c.category {
            Some(code) => match categories.find(kind, code) {
                Some(cat) => category = Some(cat.code.clone()),
                None => p.add("category", format!("not a category of {kind}")),
            },
            None => category = Some(categories.default_for(kind).code.clone()),
        }
        if c.grade.is_some() && kind != Kind::Complaint {
            p.add("grade", "only complaints have a grade");
        }
    }
    p.finish()?;
    let kind = c.kind.unwrap_or(Kind::Repair);
    Ok(NewOrder {
        kind,
        category: category.unwrap_or_default(),
        grade: match kind {
            Kind::Complaint => Some(c.grade.unwrap_or(Grade::General).as_str().to_owned()),
            _ => None,
        },
        priority: c.priority.unwrap_or(Priority::Normal).as_str().to_owned(),
        channel: c.channel.unwrap_or(Channel::Phone).as_str().to_owned(),
        customer_id: c.customer_id,
        caller_name: c.caller.as_ref().and_then(|x| x.name.clone()),
        caller_phone,
        area_code: c.area_code.unwrap_or_default(),
        address: c.address,
        lat: c.lat,
        lon: c.lon,
        description: c.description.unwrap_or_default(),
        subject_crew_id: c.subject_crew_id,
        force_new: c.force_new.unwrap_or(false),
        link_outage: c.link_outage.unwrap_or(true),
    })
}

fn idempotency_key(req: &HttpRequest) -> Result<Option<String>, AppError> {
    let Some(value) = req.headers().get("idempotency-key") else {
        return Ok(None);
    };
    let key = value.to_str().unwrap_or("").trim();
    if key.is_empty() || key.len() > 200 {
        return Err(AppError::BadRequest {
            code: ProblemCode::InvalidIdempotencyKey,
            detail: "Idempotency-Key must be 1 to 200 visible characters".into(),
        });
    }
    Ok(Some(key.to_owned()))
}

#[utoipa::path(post, path = "/api/v1/work-orders", tag = "work orders", request_body = CreateOrder,
    params(("Idempotency-Key" = Option<String>, Header, description = "repeat-safe creation, kept 24 h per user")),
    responses((status = 201, body = WorkOrderView), (status = 200, body = WorkOrderView, description = "idempotent repeat"),
        (status = 403), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    if !user.is(&[Role::Agent, Role::Dispatcher]) {
        return Err(AppError::forbidden(format!(
            "a {} may not open work orders",
            user.role
        )));
    }
    let key = idempotency_key(&req)?;
    let input: CreateOrder = body.parse()?;
    let order = new_order(input, &state.settings.categories)?;
    let now = state.clock.now();
    let actor = user.0.clone();
    let settings = &state.settings.work_orders;
    let request = key.map(|key| IdempotentRequest {
        key,
        request_hash: sha256_hex(body.0.to_string().as_bytes()),
        kept: TimeDelta::hours(settings.idempotency_key_hours),
        stale_after: TimeDelta::seconds(settings.idempotency_stale_secs),
    });
    let r = rules(&state);
    let answer = state
        .db_write(move |conn| service::create_once(conn, &actor, order, now, request, &r))
        .await?;
    // 200 is a repeat call: the open order it repeats, with an urge recorded
    let status = if answer.repeat_call {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let extras = Extras {
        duplicate_of: answer.repeat_call.then(|| answer.order.id.clone()),
        outage: answer.outage.map(OutageNoticeView::from),
        ..Default::default()
    };
    order_response_with(&state, &user, (answer.order, answer.timers), status, extras)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct OrderQuery {
    /// One status or several, comma-separated (no spaces).
    #[param(
        pattern = "^(new|dispatched|accepted|en_route|on_site|contacted|suspended|resolved|closed|reopened|merged|cancelled)(,(new|dispatched|accepted|en_route|on_site|contacted|suspended|resolved|closed|reopened|merged|cancelled))*$"
    )]
    pub status: Option<String>,
    #[param(
        pattern = "^(repair|service_request|complaint|report|inquiry|opinion|suggestion|praise)(,(repair|service_request|complaint|report|inquiry|opinion|suggestion|praise))*$"
    )]
    pub kind: Option<String>,
    #[param(pattern = "^(urgent|high|normal|low)(,(urgent|high|normal|low))*$")]
    pub priority: Option<String>,
    pub area_code: Option<String>,
    #[param(format = Uuid)]
    pub crew_id: Option<String>,
    #[param(format = Uuid)]
    pub customer_id: Option<String>,
    #[param(
        pattern = "^[\\t\\n\\x0B\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*(\\+86[ -]*)?(1[3-9][0-9]{9}|0[0-9]{9,11}|0[0-9]{2,3}-[0-9]{7,8})[\\t\\n\\x0B\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000]*$"
    )]
    pub phone: Option<String>,
    /// running | warning | breached: orders with an open timer in that state.
    #[param(pattern = "^(running|warning|breached)$")]
    pub sla_state: Option<String>,
    #[param(format = DateTime)]
    pub created_from: Option<String>,
    #[param(format = DateTime)]
    pub created_to: Option<String>,
    pub q: Option<String>,
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    #[param(pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

fn list_of<T: std::str::FromStr>(p: &mut Problems, field: &str, raw: Option<&str>) -> Vec<String> {
    let Some(raw) = raw else { return Vec::new() };
    let mut out = Vec::new();
    for part in raw.split(',') {
        if part.parse::<T>().is_err() {
            p.add(field, format!("unknown value `{part}`"));
        } else {
            out.push(part.to_owned());
        }
    }
    out
}

fn time_of(p: &mut Problems, field: &str, raw: Option<&str>) -> Option<NaiveDateTime> {
    let raw = raw?;
    match DateTime::<FixedOffset>::parse_from_rfc3339(raw) {
        Ok(t) => Some(t.with_timezone(&Utc).naive_utc()),
        Err(_) => {
            p.add(field, "must be an RFC 3339 time with offset");
            None
        }
    }
}

#[utoipa::path(get, path = "/api/v1/work-orders", tag = "work orders", params(OrderQuery),
    responses((status = 200, body = Page<WorkOrderView>)), security(("bearer" = [])))]
pub async fn list(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<OrderQuery>,
) -> Result<HttpResponse, AppError> {
    let q = q.into_inner();
    let paging = PageQuery {
        limit: q.limit,
        cursor: None,
    };
    let limit = paging.limit()?;
    let after: Option<(NaiveDateTime, String)> = cursor_of(q.cursor.as_deref())?;
    let mut p = Problems::default();
    let phone = match q.phone.as_deref().map(Phone::parse) {
        Some(Ok(x)) => Some(x.as_str().to_owned()),
        Some(Err(m)) => {
            p.add("phone", m);
            None
        }
        None => None,
    };
    if let Some(state) = q.sla_state.as_deref() {
        if !matches!(state, "running" | "warning" | "breached") {
            p.add("sla_state", "must be running, warning or breached");
        }
    }
    check_uuid(&mut p, "crew_id", q.crew_id.as_deref());
    check_uuid(&mut p, "customer_id", q.customer_id.as_deref());
    let filter = OrderFilter {
        statuses: list_of::<Status>(&mut p, "status", q.status.as_deref()),
        kinds: list_of::<Kind>(&mut p, "kind", q.kind.as_deref()),
        priorities: list_of::<Priority>(&mut p, "priority", q.priority.as_deref()),
        area_codes: q
            .area_code
            .as_deref()
            .map(|a| {
                a.split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        crew_id: q.crew_id,
        customer_id: q.customer_id,
        phone,
        created_from: time_of(&mut p, "created_from", q.created_from.as_deref()),
        created_to: time_of(&mut p, "created_to", q.created_to.as_deref()),
        q: q.q.filter(|s| !s.trim().is_empty()),
        sla_state: q.sla_state,
        scope_areas: match user.role {
            Role::Dispatcher | Role::Supervisor => user.area_codes.clone(),
            _ => Vec::new(),
        },
        scope_crew: (user.role == Role::Crew).then(|| user.crew_id.clone().unwrap_or_default()),
    };
    p.finish()?;
    let (rows, mut timers_by_order) = state
        .db(move |conn| {
            let rows = crate::db::work_orders::list(conn, &filter, after, limit + 1)?;
            let ids: Vec<String> = rows.iter().map(|o| o.id.clone()).collect();
            let mut by_order: std::collections::HashMap<String, Vec<TimerRow>> =
                std::collections::HashMap::new();
            for t in timers::for_orders(conn, &ids)? {
                by_order.entry(t.work_order_id.clone()).or_default().push(t);
            }
            Ok((rows, by_order))
        })
        .await?;
    let now = state.clock.now();
    let r = rules(&state);
    let mut allowed_by_order = rows
        .iter()
        .map(|o| (o.id.clone(), service::allowed_actions(o, &user, now, &r)))
        .collect::<std::collections::HashMap<_, _>>();
    let body: Page<WorkOrderView> = page(
        rows,
        limit,
        |o| (o.created_at, o.id.clone()),
        |o| {
            let allowed = allowed_by_order.remove(&o.id).unwrap_or_default();
            let timers = timers_by_order.remove(&o.id).unwrap_or_default();
            WorkOrderView::new(o, allowed, timers)
        },
    );
    Ok(HttpResponse::Ok().json(body))
}

#[utoipa::path(get, path = "/api/v1/work-orders/{id}", tag = "work orders",
    responses((status = 200, body = WorkOrderView), (status = 404)), security(("bearer" = [])))]
pub async fn get(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path_uuid(&id)?;
    let actor = user.0.clone();
    let row = state
        .db(move |conn| {
            let row = service::load_visible(conn, &actor, &id)?;
            with_timers(conn, row)
        })
        .await?;
    order_response(&state, &user, row, StatusCode::OK, None)
}

#[utoipa::path(patch, path = "/api/v1/work-orders/{id}", tag = "work orders", request_body = Correction,
    params(("If-Match" = Option<String>, Header)),
    responses((status = 200, body = WorkOrderView), (status = 404), (status = 403), (status = 412), (status = 409), (status = 422)),
    security(("bearer" = [])))]
pub async fn update(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    let id = path_uuid(&id)?;
    let request = CorrectRequest {
        correction: body.parse::<Correction>(),
        if_match: if_match(&req)?,
    };
    let actor = user.0.clone();
    let now = state.clock.now();
    let r = rules(&state);
    let row = state
        .db(move |conn| {
            let row = service::correct(conn, &actor, &id, request, now, &r)?;
            with_timers(conn, row)
        })
        .await?;
    order_response(&state, &user, row, StatusCode::OK, None)
}

#[utoipa::path(get, path = "/api/v1/work-orders/{id}/events", tag = "work orders", params(PageQuery),
    responses((status = 200, body = Page<EventView>), (status = 404)), security(("bearer" = [])))]
pub async fn events(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    q: web::Query<PageQuery>,
) -> Result<HttpResponse, AppError> {
    let id = path_uuid(&id)?;
    let limit = q.limit()?;
    let after: Option<i64> = q.cursor()?;
    let actor = user.0.clone();
    let rows = state
        .db(move |conn| {
            service::load_visible(conn, &actor, &id)?;
            crate::db::events::for_order(conn, &id, after, limit + 1)
        })
        .await?;
    Ok(HttpResponse::Ok().json(page(rows, limit, |e| e.id, EventView::from)))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteInput {
    #[schema(schema_with = schema::note)]
    pub text: String,
}

#[utoipa::path(post, path = "/api/v1/work-orders/{id}/notes", tag = "work orders", request_body = NoteInput,
    responses((status = 201, body = EventView), (status = 404), (status = 403), (status = 409), (status = 422)), security(("bearer" = [])))]
pub async fn add_note(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    let id = path_uuid(&id)?;
    let text = body.parse::<NoteInput>().and_then(|n| {
        let mut p = Problems::default();
        p.text("text", Some(&n.text), limits::NOTE, true);
        p.finish().map(|_| n.text)
    });
    let actor = user.0.clone();
    let now = state.clock.now();
    let r = rules(&state);
    let event = state
        .db(move |conn| service::add_note(conn, &actor, &id, text, now, &r))
        .await?;
    Ok(HttpResponse::Created().json(EventView::from(event)))
}

/// The body of each action, as the OpenAPI document states it: `ApiDoc` gives every action its
/// own path with one of these (the server reads them all as `service::ActionBody` and accepts
/// only each action's own fields).
pub mod action_bodies {
    use crate::domain::Satisfaction;
    use crate::schema;
    use chrono::{DateTime, FixedOffset};
    use serde::Deserialize;
    use utoipa::ToSchema;

    /// `dispatch`: no crew means automatic routing.
    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct DispatchBody {
        /// An explicit crew (skips eligibility; the event records what it overrides).
        #[schema(schema_with = schema::uuid_or_null)]
        pub crew_id: Option<String>,
        #[schema(schema_with = schema::any_note_or_null)]
        pub note: Option<String>,
    }

    /// `reassign`.
    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ReassignBody {
        #[schema(schema_with = schema::uuid)]
        pub crew_id: String,
        #[schema(schema_with = schema::reason)]
        pub reason: String,
    }

    /// `accept`, `depart`, `arrive`, `resume`, `urge`.
    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct NoteBody {
        #[schema(schema_with = schema::any_note_or_null)]
        pub note: Option<String>,
    }

    /// `reject`, `reopen`, `cancel`, `unmerge`.
    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ReasonBody {
        #[schema(schema_with = schema::reason)]
        pub reason: String,
    }

    /// `close`: the reason is required for the field and case families (it waives their
    /// callback), optional for the reply family and praise.
    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CloseBody {
        #[schema(schema_with = schema::any_reason_or_null)]
        pub reason: Option<String>,
    }

    /// `suspend`.
    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct SuspendBody {
        #[schema(schema_with = schema::reason)]
        pub reason: String,
        /// In the future: the order resumes by itself then.
        pub until: Option<DateTime<FixedOffset>>,
    }

    /// `contact`.
    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ContactBody {
        #[schema(schema_with = schema::note)]
        pub note: String,
    }

    /// `resolve`.
    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ResolveBody {
        #[schema(schema_with = schema::description)]
        pub resolution: String,
        #[schema(schema_with = schema::any_note_or_null)]
        pub note: Option<String>,
    }

    /// `callback`.
    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct CallbackBody {
        pub satisfaction: Satisfaction,
        #[schema(schema_with = schema::any_note_or_null)]
        pub note: Option<String>,
    }

    /// `merge`.
    #[derive(Deserialize, ToSchema)]
    #[serde(deny_unknown_fields)]
    pub struct MergeBody {
        #[schema(schema_with = schema::uuid)]
        pub master_id: String,
    }

    /// Each action and its body schema.
    pub const ACTIONS: &[(&str, &str)] = &[
        ("dispatch", "DispatchBody"),
        ("reassign", "ReassignBody"),
        ("accept", "NoteBody"),
        ("reject", "ReasonBody"),
        ("depart", "NoteBody"),
        ("arrive", "NoteBody"),
        ("contact", "ContactBody"),
        ("resolve", "ResolveBody"),
        ("suspend", "SuspendBody"),
        ("resume", "NoteBody"),
        ("callback", "CallbackBody"),
        ("close", "CloseBody"),
        ("reopen", "ReasonBody"),
        ("merge", "MergeBody"),
        ("unmerge", "ReasonBody"),
        ("cancel", "ReasonBody"),
        ("urge", "NoteBody"),
    ];
}

#[utoipa::path(post, path = "/api/v1/work-orders/{id}/{action}", tag = "work orders",
    params(("action" = String, Path, description = "replaced in the document by one path per action (`ApiDoc`)"),
        ("If-Match" = Option<String>, Header)),
    request_body = inline(Object),
    responses((status = 200, body = WorkOrderView), (status = 404), (status = 403), (status = 412), (status = 409), (status = 422)),
    security(("bearer" = [])))]
pub async fn act(
    state: web::Data<AppState>,
    user: AuthUser,
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: JsonBody,
) -> Result<HttpResponse, AppError> {
    let (id, action_name) = path.into_inner();
    let action = match action_name.parse::<Action>() {
        Ok(a) if !matches!(a, Action::Note | Action::Update) => a,
        _ if matches!(action_name.as_str(), "events" | "candidates" | "sla") => {
            return Ok(crate::errors::problem(
                StatusCode::METHOD_NOT_ALLOWED,
                ProblemCode::MethodNotAllowed,
                "this method is not allowed on this resource",
                Default::default(),
            ))
        }
        _ => return Err(AppError::NotFound { what: "action" }),
    };
    let id = path_uuid(&id)?;
    let request = ActRequest {
        action,
        body: body.parse::<ActionBody>(),
        if_match: if_match(&req)?,
    };
    let actor = user.0.clone();
    let now = state.clock.now();
    let r = rules(&state);
    let acted = state
        .db_write(
            move |conn| match service::act(conn, &actor, &id, request, now, &r)? {
                Acted::Done(row, routing, Some(timers)) => Ok(Some(((*row, timers), routing))),
                Acted::Done(row, routing, None) => Ok(Some((with_timers(conn, *row)?, routing))),
                Acted::NoEligibleCrew { .. } => Ok(None),
            },
        )
        .await?;
    let Some((row, routing)) = acted else {
        return Err(AppError::Conflict {
            code: ProblemCode::NoEligibleCrew,
            detail: "no crew is eligible for this order; it stays new and the area's dispatchers have been alerted".into(),
            allowed_actions: None,
        });
    };
    order_response_with(
        &state,
        &user,
        row,
        StatusCode::OK,
        Extras {
            routing: routing.map(|r| RoutingView::from(*r)),
            ..Default::default()
        },
    )
}

/// `GET /work-orders/{id}/sla`: every timer of the order with its clock segments.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct TimerDetails {
    pub items: Vec<TimerDetailView>,
}

#[utoipa::path(get, path = "/api/v1/work-orders/{id}/sla", tag = "work orders",
    responses((status = 200, body = TimerDetails), (status = 404)),
    security(("bearer" = [])))]
pub async fn sla(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path_uuid(&id)?;
    let actor = user.0.clone();
    let now = state.clock.now();
    let ctx = state.sla.context();
    let details = state
        .db(move |conn| service::timer_details(conn, &actor, &id, &ctx, now))
        .await?;
    Ok(HttpResponse::Ok().json(TimerDetails {
        items: details.into_iter().map(TimerDetailView::from).collect(),
    }))
}

/// `GET /work-orders/{id}/candidates`: the crews ranked for the order, best first.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct Candidates {
    pub items: Vec<CandidateView>,
}

#[utoipa::path(get, path = "/api/v1/work-orders/{id}/candidates", tag = "work orders",
    responses((status = 200, body = Candidates), (status = 403), (status = 404)),
    security(("bearer" = [])))]
pub async fn candidates(
    state: web::Data<AppState>,
    user: AuthUser,
    id: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let id = path_uuid(&id)?;
    let actor = user.0.clone();
    let now = state.clock.now();
    let r = rules(&state);
    let ranked = state
        .db(move |conn| service::dispatch_candidates(conn, &actor, &id, &r, now))
        .await?;
    Ok(HttpResponse::Ok().json(Candidates {
        items: ranked.into_iter().map(CandidateView::from).collect(),
    }))
}
