//! `/api/v1/events`: the work-order event stream (Server-Sent Events), the same events as
//! pages, and single-use tickets for browsers' EventSource.

use super::extract::{cursor_of, encode_cursor};
use super::views::EventView;
use crate::auth::extractor::{active_user, authenticate, bearer_token};
use crate::auth::AuthUser;
use crate::db::events::EventRow;
use crate::domain::Actor;
use crate::errors::AppError;
use crate::errors::ProblemCode;
use crate::service::event_stream::{self as service, StreamLimit};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpRequest, HttpResponse};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::{broadcast::error::RecvError, mpsc};
use utoipa::{IntoParams, ToSchema};

/// How long a request waits for the instance's hub to find its starting point.
const HUB_READY_WAIT: Duration = Duration::from_secs(10);
/// How long a probe of vanished clients waits for one of them to end, and how many probes a
/// request at the per-user bound makes before it is refused.
const PROBE_WAIT: Duration = Duration::from_millis(250);
const PROBE_ATTEMPTS: usize = 4;
/// Events a stream reads per database page while catching up.
const CATCH_UP_PAGE: usize = 200;

/// One event as a Server-Sent Events frame: `id`, `event` (its type), `data` (its JSON).
pub fn sse_frame(row: &EventRow) -> Bytes {
    let json = serde_json::to_string(&EventView::from(row.clone())).unwrap_or_default();
    Bytes::from(format!(
        "id: {}\nevent: {}\ndata: {json}\n\n",
        row.id, row.event_type
    ))
}

fn bad_position(what: &str) -> AppError {
    AppError::BadRequest {
        code: ProblemCode::InvalidPosition,
        detail: format!("{what} must be a non-negative event id"),
    }
}

fn hub_unavailable() -> AppError {
    AppError::Unavailable("the event stream is not ready yet; retry shortly".into())
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    /// Events with a greater id; default: from the first event.
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// 1–500, default 50.
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the previous page (instead of `after`).
    #[param(pattern = "^[A-Za-z0-9_-]*$")]
    pub cursor: Option<String>,
}

/// A page of events: `position` is the id to pass as `after` next time (every id up to it
/// has been looked at); `next_cursor` is null once the page reaches the newest final event.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPageView {
    pub items: Vec<EventView>,
    pub next_cursor: Option<String>,
    pub position: i64,
}

#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(EventsQuery),
    responses((status = 200, body = EventPageView), (status = 400), (status = 401), (status = 503)),
    security(("bearer" = [])))]
pub async fn page(
    state: web::Data<AppState>,
    user: AuthUser,
    q: web::Query<EventsQuery>,
) -> Result<HttpResponse, AppError> {
    let limit = match q.limit {
        None => 50,
        Some(n) if (1..=500).contains(&n) => n as usize,
        Some(_) => return Err(AppError::invalid("limit", "must be between 1 and 500")),
    };
    let after = match (cursor_of::<i64>(q.cursor.as_deref())?, q.after) {
        (Some(c), _) => c,
        (None, Some(a)) => a,
        (None, None) => 0,
    };
    if after < 0 {
        return Err(bad_position("after"));
    }
    let upto = state
        .events
        .ready(HUB_READY_WAIT)
        .await
        .ok_or_else(hub_unavailable)?;
    let actor = user.0.clone();
    let page = state
        .db(move |conn| service::page(conn, &actor, after, upto, limit, limit.max(100) * 20))
        .await?;
    Ok(HttpResponse::Ok().json(EventPageView {
        next_cursor: page.more.then(|| encode_cursor(&page.position)),
        position: page.position,
        items: page.items.into_iter().map(EventView::from).collect(),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TicketView {
    /// Pass as `?ticket=` to `/api/v1/events/stream`, once, before `expires_at`.
    pub ticket: String,
    pub expires_at: DateTime<Utc>,
}

#[utoipa::path(post, path = "/api/v1/events/ticket", tag = "events",
    responses((status = 201, body = TicketView), (status = 401)), security(("bearer" = [])))]
pub async fn ticket(state: web::Data<AppState>, user: AuthUser) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let lifetime = TimeDelta::seconds(state.settings.events.ticket_secs);
    let user_id = user.id.clone();
    let (ticket, expires_at) = state
        .db(move |conn| service::issue_ticket(conn, &user_id, now, lifetime))
        .await?;
    Ok(HttpResponse::Created()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(TicketView { ticket, expires_at }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Resume after this event id (the `Last-Event-ID` header wins when both are sent).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// A ticket from `POST /api/v1/events/ticket`, for clients that cannot send headers.
    pub ticket: Option<String>,
}

/// Who is reading and until when: a bearer token's stream ends when the token expires, a
/// ticket's after one access-token lifetime; the client reconnects with `Last-Event-ID`.
async fn stream_reader(
    state: &AppState,
    req: &HttpRequest,
    ticket: Option<&str>,
) -> Result<(Actor, DateTime<Utc>), AppError> {
    let now = state.clock.now();
    if let Some(ticket) = ticket {
        let ticket = ticket.to_owned();
        let user_id = state
            .db(move |conn| service::redeem_ticket(conn, &ticket, now))
            .await?
            .ok_or_else(|| AppError::Unauthorized {
                code: ProblemCode::InvalidTicket,
                detail: "the ticket is unknown, used or expired".into(),
            })?;
        let lifetime = TimeDelta::minutes(state.settings.auth.access_token_minutes);
        return Ok((active_user(state, user_id).await?, now + lifetime));
    }
    let token = bearer_token(req).ok_or_else(|| AppError::Unauthorized {
        code: ProblemCode::Unauthorized,
        detail: "missing bearer token or ticket".into(),
    })?;
    authenticate(state, token).await
}

fn resume_position(req: &HttpRequest, after: Option<i64>) -> Result<Option<i64>, AppError> {
    let header = match req.headers().get("last-event-id") {
        Some(value) => Some(
            value
                .to_str()
                .ok()
                .and_then(|v| v.trim().parse::<i64>().ok())
                .filter(|v| *v >= 0)
                .ok_or_else(|| bad_position("Last-Event-ID"))?,
        ),
        None => None,
    };
    if after.is_some_and(|a| a < 0) {
        return Err(bad_position("after"));
    }
    Ok(header.or(after))
}

#[utoipa::path(get, path = "/api/v1/events/stream", tag = "events", params(StreamQuery,
        ("Last-Event-ID" = Option<i64>, Header, minimum = 0, description = "Resume after this event id")),
    responses((status = 200, description = "text/event-stream: `id`, `event` (type), `data` (event JSON); heartbeat comments. A draining or starting instance answers `retry:` and ends the stream at once"),
        (status = 400), (status = 401), (status = 410, description = "resume_too_old: a crew or scoped reader asked to resume more than `events.resume_max_events` (default 100,000) events back; re-read the work-order list, then resume from `newest_event_id`"), (status = 429)),
    security(("bearer" = [])))]
pub async fn stream(
    state: web::Data<AppState>,
    req: HttpRequest,
    q: web::Query<StreamQuery>,
) -> Result<HttpResponse, AppError> {
    // A bearer token is checked first (401 before 400, API.md); a ticket only after the
    // request's own checks, so that a bad request does not spend it.
    let bearer = match q.ticket {
        None => Some(stream_reader(&state, &req, None).await?),
        Some(_) => None,
    };
    let resume = resume_position(&req, q.after)?;
    let ready = if state.events.is_closing() {
        None
    } else {
        state.events.ready(HUB_READY_WAIT).await
    };
    let Some(position) = ready else {
        // EventSource gives up for good on an error status, so a draining or starting
        // instance answers with a stream that ends at once and asks for a retry.
        return Ok(event_stream_response().body(RETRY_LATER));
    };
    let (actor, expires) = match bearer {
        Some(reader) => reader,
        None => stream_reader(&state, &req, q.ticket.as_deref()).await?,
    };
    let start = resume.unwrap_or(position);
    let settings = &state.settings.events;
    // A scoped reader's catch-up looks at every event to find its own: bounded.
    if actor.is_scoped() && position - start > settings.resume_max_events {
        return Err(AppError::ResumeTooOld {
            from: start,
            bound: settings.resume_max_events,
            newest_event_id: position,
        });
    }
    let limit = StreamLimit {
        max_per_user: settings.max_streams_per_user,
        stale_after: TimeDelta::seconds(3 * settings.heartbeat_secs as i64),
    };
    let stream_id = uuid::Uuid::new_v4().to_string();
    let now = state.clock.now();
    let mut attempt = 0;
    loop {
        let mut ended = state.events.ended_streams();
        let (id, user_id) = (stream_id.clone(), actor.id.clone());
        match state
            .db(move |conn| service::open_stream(conn, &id, &user_id, limit, now))
            .await
        {
            Err(AppError::TooManyRequests { .. }) if attempt < PROBE_ATTEMPTS => {
                // Streams whose clients vanished count until a write to them fails: make
                // every stream of this instance write (the first write to a closed socket
                // succeeds, the next fails) and count again as soon as one has ended.
                attempt += 1;
                state.events.probe();
                let _ = actix_web::rt::time::timeout(PROBE_WAIT, ended.changed()).await;
            }
            result => break result?,
        }
    }
    let lifetime = (expires - now).to_std().unwrap_or_default();
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    actix_web::rt::spawn(pump(state.clone(), actor, start, stream_id, lifetime, tx));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|frame| (Ok::<_, std::convert::Infallible>(frame), rx))
    });
    Ok(event_stream_response().streaming(body))
}

const RETRY_LATER: &str =
    "retry: 1000\n\n: the server is restarting; reconnect with Last-Event-ID\n\n";

fn event_stream_response() -> actix_web::HttpResponseBuilder {
    let mut builder = HttpResponse::Ok();
    builder
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"));
    builder
}

/// Why a stream ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    ClientGone,
    Draining,
    TokenExpired,
    /// Its registration was reclaimed as stale (it could not write for three heartbeats).
    Unregistered,
    /// The user was deactivated (or deleted) while the stream was open.
    Revoked,
    Failed,
}

/// What a heartbeat's bookkeeping found.
enum Refreshed {
    /// The stream's registration is gone (reclaimed as stale).
    Unregistered,
    /// The user was deactivated or deleted.
    Revoked,
    /// The user's rights as they are now: a changed role or scope applies from here on.
    Rights(Actor),
    /// The rights could not be read (a database error, logged); the old ones stay.
    RightsUnread,
}

/// A heartbeat's bookkeeping: records it, then reads the user's rights again.
async fn refresh_stream(
    state: web::Data<AppState>,
    stream_id: String,
    user_id: String,
) -> Refreshed {
    if !touch(&state, &stream_id).await {
        return Refreshed::Unregistered;
    }
    match active_user(&state, user_id).await {
        Ok(fresh) => Refreshed::Rights(fresh),
        Err(AppError::Unauthorized { .. }) => Refreshed::Revoked,
        Err(e) => {
            log::warn!("event stream {stream_id}: rights not re-read: {e}");
            Refreshed::RightsUnread
        }
    }
}

/// Records a stream's heartbeat; false when its registration is gone. A database error
/// keeps the stream (the registration then expires and is reclaimed, and this says so).
async fn touch(state: &AppState, stream_id: &str) -> bool {
    let (id, now) = (stream_id.to_owned(), state.clock.now());
    match state.db(move |c| service::touch_stream(c, &id, now)).await {
        Ok(registered) => registered,
        Err(e) => {
            log::warn!("event stream {stream_id}: heartbeat not recorded: {e}");
            true
        }
    }
}

/// Feeds one stream: history from the database in short pages up to the hub's position,
/// then the hub's events; back to the database whenever it falls behind the hub.
async fn pump(
    state: web::Data<AppState>,
    mut actor: Actor,
    mut last: i64,
    stream_id: String,
    lifetime: Duration,
    tx: mpsc::Sender<Bytes>,
) {
    let _counted = state.metrics.event_stream();
    let hub = state.events.clone();
    let heartbeat = Duration::from_secs(state.settings.events.heartbeat_secs);
    let mut closing = hub.closing();
    let mut probes = hub.probes();
    let end = actix_web::rt::time::sleep(lifetime);
    tokio::pin!(end);
    let mut beat = actix_web::rt::time::interval_at(
        actix_web::rt::time::Instant::now() + heartbeat,
        heartbeat,
    );
    let mut last_touch = actix_web::rt::time::Instant::now();
    let mut refresh: Option<actix_web::rt::task::JoinHandle<Refreshed>> = None;
    let ended = 'stream: {
        if tx
            .send(Bytes::from_static(b"retry: 3000\n\n"))
            .await
            .is_err()
        {
            break 'stream Ended::ClientGone;
        }
        loop {
            let mut events = hub.subscribe();
            let Some(upto) = hub.ready(HUB_READY_WAIT).await else {
                break 'stream Ended::Failed;
            };
            while last < upto {
                if *closing.borrow() {
                    break 'stream Ended::Draining;
                }
                let (reader, from) = (actor.clone(), last);
                let page = state
                    .db(move |c| service::page(c, &reader, from, upto, CATCH_UP_PAGE, 5000))
                    .await;
                let page = match page {
                    Ok(p) => p,
                    Err(e) => {
                        log::error!("event stream {stream_id}: {e}");
                        break 'stream Ended::Failed;
                    }
                };
                for row in &page.items {
                    if tx.send(sse_frame(row)).await.is_err() {
                        break 'stream Ended::ClientGone;
                    }
                }
                last = page.position;
                if last_touch.elapsed() >= heartbeat {
                    last_touch = actix_web::rt::time::Instant::now();
                    if !touch(&state, &stream_id).await {
                        break 'stream Ended::Unregistered;
                    }
                }
            }
            if *closing.borrow() {
                break 'stream Ended::Draining;
            }
            loop {
                tokio::select! {
                    _ = tx.closed() => break 'stream Ended::ClientGone,
                    _ = closing.changed() => break 'stream Ended::Draining,
                    _ = &mut end => break 'stream Ended::TokenExpired,
                    _ = probes.changed() => {
                        if tx.send(Bytes::from_static(b":\n\n")).await.is_err() {
                            break 'stream Ended::ClientGone;
                        }
                    }
                    _ = beat.tick() => {
                        if tx.send(Bytes::from_static(b": heartbeat\n\n")).await.is_err() {
                            break 'stream Ended::ClientGone;
                        }
                        last_touch = actix_web::rt::time::Instant::now();
                        // The heartbeat's bookkeeping waits for a pooled connection (and, for
                        // the touch, the writer's turn), up to hundreds of milliseconds at the
                        // maximum rate: it runs beside the delivery of events, never in front.
                        if refresh.is_none() {
                            refresh = Some(actix_web::rt::spawn(refresh_stream(
                                state.clone(),
                                stream_id.clone(),
                                actor.id.clone(),
                            )));
                        }
                    }
                    done = async { refresh.as_mut().expect("branch enabled only while running").await },
                        if refresh.is_some() =>
                    {
                        refresh = None;
                        match done {
                            Ok(Refreshed::Unregistered) => break 'stream Ended::Unregistered,
                            Ok(Refreshed::Revoked) => break 'stream Ended::Revoked,
                            Ok(Refreshed::Rights(fresh)) => actor = fresh,
                            Ok(Refreshed::RightsUnread) => {}
                            Err(e) => log::warn!("event stream {stream_id}: heartbeat task failed: {e}"),
                        }
                    }
                    received = events.recv() => match received {
                        Ok(event) if event.id > last => {
                            last = event.id;
                            if event.audience.visible_to(&actor)
                                && tx.send(event.frame.clone()).await.is_err()
                            {
                                break 'stream Ended::ClientGone;
                            }
                        }
                        Ok(_) => {}
                        // Fell behind the hub: read the missed part from the database.
                        Err(RecvError::Lagged(_)) => break,
                        Err(RecvError::Closed) => break 'stream Ended::Draining,
                    }
                }
            }
        }
    };
    if let Some(bookkeeping) = refresh.take() {
        bookkeeping.abort();
    }
    match ended {
        Ended::Draining => {
            let _ = tx
                .send(Bytes::from_static(
                    b": the server is restarting; reconnect with Last-Event-ID\n\n",
                ))
                .await;
        }
        Ended::Unregistered => {
            let _ = tx
                .send(Bytes::from_static(
                    b": this stream fell too far behind; reconnect with Last-Event-ID\n\n",
                ))
                .await;
        }
        Ended::TokenExpired => {
            let _ = tx
                .send(Bytes::from_static(
                    b": the access token expired; reconnect with a fresh one\n\n",
                ))
                .await;
        }
        Ended::Revoked => {
            let _ = tx.send(Bytes::from_static(b": access withdrawn\n\n")).await;
        }
        Ended::ClientGone | Ended::Failed => {}
    }
    drop(tx);
    let id = stream_id.clone();
    if let Err(e) = state.db(move |c| service::close_stream(c, &id)).await {
        log::warn!("event stream {stream_id}: registration not removed ({e}); it expires");
    }
    state.events.stream_ended();
    log::debug!("event stream {stream_id} ended: {ended:?}");
}
