//! Request ids, request logs (phones masked, no secrets), Prometheus metrics, and the
//! middleware that turns every error response — actix's own included — into problem+json.

use crate::domain::values::mask_phones;
use crate::errors::{problem, ProblemCode};
use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::middleware::Next;
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};
use std::time::Instant;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    open_orders: IntGaugeVec,
    timers: IntGaugeVec,
    outbox: IntGaugeVec,
    pool: IntGaugeVec,
    event_streams: IntGauge,
    event_position: IntGauge,
    sqlite_writes: IntCounter,
    sqlite_commits: IntCounter,
    sqlite_registered: std::sync::Arc<std::sync::OnceLock<()>>,
}

/// What a scrape reads from the database and the process before rendering.
#[derive(Debug, Default)]
pub struct Readings {
    pub open_orders: Vec<(String, i64)>,
    pub timers: Vec<(String, i64)>,
    pub outbox: Vec<(String, i64)>,
    pub pool_idle: u32,
    pub pool_total: u32,
    pub event_position: Option<i64>,
    /// SQLite only: write transactions and commits of this process (group commit).
    pub sqlite_writes: Option<crate::db::WriteCounts>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "gridcall_http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "gridcall_http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["route"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let open_orders = IntGaugeVec::new(
            Opts::new("gridcall_open_work_orders", "Open work orders by status"),
            &["status"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let timers = IntGaugeVec::new(
            Opts::new(
                "gridcall_sla_timers",
                "SLA timers by state (breached: breaches so far)",
            ),
            &["state"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let outbox = IntGaugeVec::new(
            Opts::new("gridcall_mail_outbox", "Outbox mails by state: pending (backlog), retrying (failed at least once), sent, dead"),
            &["state"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let pool = IntGaugeVec::new(
            Opts::new(
                "gridcall_db_pool_connections",
                "Database pool connections by state (on PostgreSQL with the write sessions' pool)",
            ),
            &["state"],
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let event_streams = IntGauge::new(
            "gridcall_event_streams",
            "Live event streams open on this instance",
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let event_position = IntGauge::new(
            "gridcall_event_stream_position",
            "The id up to which this instance's event hub has delivered every event (compare with the newest event id for its lag)",
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let sqlite_writes = IntCounter::new(
            "gridcall_sqlite_write_transactions_total",
            "SQLite write transactions of this process",
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        let sqlite_commits = IntCounter::new(
            "gridcall_sqlite_commits_total",
            "SQLite commits of this process: write transactions queued behind each other share one (group commit)",
        )
        .unwrap_or_else(|e| panic!("metric definition: {e}"));
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(event_streams.clone()),
            Box::new(event_position.clone()),
            Box::new(latency.clone()),
            Box::new(open_orders.clone()),
            Box::new(timers.clone()),
            Box::new(outbox.clone()),
            Box::new(pool.clone()),
        ] {
            registry
                .register(c)
                .unwrap_or_else(|e| panic!("metric registration: {e}"));
        }
        Metrics {
            registry,
            requests,
            latency,
            open_orders,
            timers,
            outbox,
            pool,
            event_streams,
            event_position,
            sqlite_writes,
            sqlite_commits,
            sqlite_registered: std::sync::Arc::default(),
        }
    }

    /// Counts a live event stream while the guard lives.
    pub fn event_stream(&self) -> StreamGauge {
        self.event_streams.inc();
        StreamGauge(self.event_streams.clone())
    }

    pub fn observe(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[route, method, &status.to_string()])
            .inc();
        self.latency.with_label_values(&[route]).observe(seconds);
    }

    /// Renders the registry after setting the gauges read at scrape time.
    pub fn render(&self, readings: &Readings) -> String {
        self.event_position
            .set(readings.event_position.unwrap_or(0));
        self.outbox.reset();
        for (state, n) in &readings.outbox {
            self.outbox.with_label_values(&[state]).set(*n);
        }
        self.open_orders.reset();
        for (status, n) in &readings.open_orders {
            self.open_orders.with_label_values(&[status]).set(*n);
        }
        self.timers.reset();
        for (state, n) in &readings.timers {
            self.timers.with_label_values(&[state]).set(*n);
        }
        self.pool
            .with_label_values(&["idle"])
            .set(i64::from(readings.pool_idle));
        self.pool.with_label_values(&["in_use"]).set(i64::from(
            readings.pool_total.saturating_sub(readings.pool_idle),
        ));
        if let Some(writes) = readings.sqlite_writes {
            // Shown from the first scrape that has them (on SQLite only).
            self.sqlite_registered.get_or_init(|| {
                for c in [&self.sqlite_writes, &self.sqlite_commits] {
                    if let Err(e) = self.registry.register(Box::new(c.clone())) {
                        log::warn!("metric registration: {e}");
                    }
                }
            });
            // The process's own counts, carried over as counters.
            for (counter, now) in [
                (&self.sqlite_writes, writes.transactions),
                (&self.sqlite_commits, writes.commits),
            ] {
                counter.inc_by(now.saturating_sub(counter.get()));
            }
        }
        let mut buf = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut buf)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(buf).unwrap_or_default()
    }
}

/// Decrements the open-streams gauge when dropped.
pub struct StreamGauge(IntGauge);

impl Drop for StreamGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// A client's request id if it is short printable ASCII, else a new UUID.
fn request_id(req: &ServiceRequest) -> String {
    req.headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

fn code_for(status: StatusCode) -> ProblemCode {
    match status.as_u16() {
        400 => ProblemCode::BadRequest,
        401 => ProblemCode::Unauthorized,
        403 => ProblemCode::Forbidden,
        404 => ProblemCode::NotFound,
        405 => ProblemCode::MethodNotAllowed,
        406 => ProblemCode::NotAcceptable,
        408 => ProblemCode::RequestTimeout,
        411 => ProblemCode::LengthRequired,
        413 => ProblemCode::PayloadTooLarge,
        415 => ProblemCode::UnsupportedMediaType,
        429 => ProblemCode::TooManyRequests,
        503 => ProblemCode::Unavailable,
        s if s >= 500 => ProblemCode::InternalError,
        _ => ProblemCode::Error,
    }
}

/// Query parameters whose values never reach a log: credentials.
const SECRET_PARAMETERS: [&str; 4] = ["ticket", "token", "access_token", "password"];

/// A request's target as the log shows it: the path and the query decoded (so that
/// `%2B8613812345678` or `%E5%BC%A013812345679` is seen, and masked, as the phone it is),
/// phone numbers masked, credential values (a stream's `?ticket=`) replaced.
pub fn log_target(uri: &actix_web::http::Uri) -> String {
    let path = percent_encoding::percent_decode_str(uri.path()).decode_utf8_lossy();
    let mut out = mask_phones(&path);
    if let Some(query) = uri.query() {
        let pairs: Vec<String> = form_urlencoded::parse(query.as_bytes())
            .map(|(k, v)| {
                if SECRET_PARAMETERS.contains(&k.to_ascii_lowercase().as_str()) {
                    format!("{}=***", mask_phones(&k))
                } else {
                    format!("{}={}", mask_phones(&k), mask_phones(&v))
                }
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    out
}

/// The outer middleware: request id, error normalisation, metrics and the request log.
pub async fn observe(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let started = Instant::now();
    let id = request_id(&req);
    let method = req.method().to_string();
    let target = log_target(req.uri());
    // Registered on its own (startup), so this layer needs nothing of the app's state.
    let metrics = req
        .app_data::<actix_web::web::Data<Metrics>>()
        .map(|m| m.get_ref().clone());

    // Handlers' errors arrive as responses; an Err here is the router's own and passes through.
    let mut res = next.call(req).await?.map_into_boxed_body();
    let status = res.status();
    let is_problem = res
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    if status.is_client_error() || status.is_server_error() {
        if let Some(err) = res.response().error() {
            if status.is_server_error() {
                log::error!("request {id}: {err}");
            }
        }
        if !is_problem {
            let detail = match status.as_u16() {
                404 => "no such resource".to_owned(),
                405 => "this method is not allowed on this resource".to_owned(),
                413 => "the request body is larger than the configured limit".to_owned(),
                s if s >= 500 => "an internal error occurred; it has been logged".to_owned(),
                _ => res
                    .response()
                    .error()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned()),
            };
            let mut replacement =
                problem(status, code_for(status), &detail, serde_json::Map::new());
            for (name, value) in res.headers() {
                if name == header::ALLOW
                    || name == header::RETRY_AFTER
                    || name == header::WWW_AUTHENTICATE
                {
                    replacement
                        .headers_mut()
                        .insert(name.clone(), value.clone());
                }
            }
            res = res.into_response(replacement);
        }
    }
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(REQUEST_ID, value);
    }
    let elapsed = started.elapsed();
    let route = res
        .request()
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    if let Some(metrics) = metrics {
        metrics.observe(&route, &method, status.as_u16(), elapsed.as_secs_f64());
    }
    log::info!(
        "request_id={id} {method} {target} {} {:.1}ms",
        status.as_u16(),
        elapsed.as_secs_f64() * 1000.0
    );
    Ok(res)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logged_targets_hide_phones_however_encoded_and_every_ticket() {
        let t = |u: &str| log_target(&u.parse().unwrap());
        assert_eq!(
            t("/api/v1/work-orders?phone=%2B8613812345678&limit=5"),
            "/api/v1/work-orders?phone=+861******5678&limit=5"
        );
        let q = t("/api/v1/work-orders?q=%E5%BC%A013812345679");
        assert_eq!(q, "/api/v1/work-orders?q=张138****5679");
        assert_eq!(
            t("/api/v1/events/stream?ticket=abc-123_secret"),
            "/api/v1/events/stream?ticket=***"
        );
        assert_eq!(
            t("/api/v1/customers?phone=0755-83451234"),
            "/api/v1/customers?phone=0755-****1234"
        );
        assert_eq!(t("/healthz"), "/healthz");
    }
}
