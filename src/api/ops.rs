//! Operations endpoints: liveness, readiness, Prometheus metrics.

use crate::errors::AppError;
use crate::errors::ProblemCode;
use crate::state::AppState;
use actix_web::{http::header, web, HttpRequest, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

/// Liveness and readiness answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (liveness); `ready`, `migrations_pending` or `database_unavailable` (readiness).
    pub status: &'static str,
    /// Stale data that does not fail readiness (a calendar missing next year, autovacuum off).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
}

fn health(status: &'static str, warnings: Option<Vec<String>>) -> Health {
    Health { status, warnings }
}

#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, body = Health)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(health("ok", None))
}

#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let checked = state
        .db(|conn| {
            use diesel::connection::SimpleConnection;
            conn.batch_execute("SELECT 1")?;
            let pending = crate::db::has_pending_migrations(conn).map_err(AppError::internal)?;
            Ok((pending, crate::db::autovacuum_off(conn)?))
        })
        .await;
    match checked {
        Ok((false, autovacuum_off)) => {
            let mut warnings = calendar_warnings(&state);
            if autovacuum_off {
                warnings.push("PostgreSQL runs with autovacuum = off: tables bloat and their statistics go stale as orders grow; turn it on".into());
            }
            HttpResponse::Ok().json(health("ready", Some(warnings)))
        }
        Ok((true, _)) => {
            HttpResponse::ServiceUnavailable().json(health("migrations_pending", Some(Vec::new())))
        }
        Err(e) => {
            log::warn!("readiness check failed: {e}");
            HttpResponse::ServiceUnavailable()
                .json(health("database_unavailable", Some(Vec::new())))
        }
    }
}

/// Stale data that does not fail readiness: a calendar without this year, or (from
/// 1 December) without next year.
fn calendar_warnings(state: &AppState) -> Vec<String> {
    use chrono::Datelike;
    let today = state
        .clock
        .now()
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .date_naive();
    let mut years = vec![today.year()];
    if today.month() == 12 {
        years.push(today.year() + 1);
    }
    let mut warnings = Vec::new();
    for year in years {
        for id in state.sla.calendars.missing_year(year) {
            warnings.push(format!("calendar `{id}` has no holiday data for {year}: add it to config/calendars/{id}.toml"));
        }
    }
    for (id, year) in state.sla.holiday_gaps.list() {
        warnings.push(format!(
            "timers on calendar `{id}` run into {year}, which has no holiday data: their deadlines count every weekday there as working; add {year} to config/calendars/{id}.toml, then run `gridcall sla recalc`"
        ));
    }
    warnings.dedup();
    warnings
}

#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, content_type = "text/plain"), (status = 401)))]
pub async fn metrics(
    state: web::Data<AppState>,
    req: HttpRequest,
) -> Result<HttpResponse, AppError> {
    let token = secrecy::ExposeSecret::expose_secret(&state.settings.metrics.scrape_token);
    if !token.is_empty() && crate::auth::extractor::bearer_token(&req) != Some(token) {
        return Err(AppError::Unauthorized {
            code: ProblemCode::Unauthorized,
            detail: "a scrape token is required".into(),
        });
    }
    let (open_orders, timers, outbox, sqlite_writes) = state
        .db(|conn| {
            Ok((
                crate::db::work_orders::count_open_by_status(conn)?,
                crate::db::timers::count_by_state(conn)?,
                crate::db::outbox::counts(conn)?,
                crate::db::sqlite_write_counts(conn)?,
            ))
        })
        .await
        .unwrap_or_default();
    let (pool_idle, pool_total) = state.pool.usage();
    let body = state.metrics.render(&crate::telemetry::Readings {
        open_orders,
        timers,
        outbox,
        pool_idle,
        pool_total,
        event_position: state.events.position(),
        sqlite_writes,
    });
    Ok(HttpResponse::Ok()
        .insert_header((
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        ))
        .body(body))
}
