//! Benchmark of the supervisor reports (not a test): the service runs in-process on a real
//! port against a database seeded with `gridcall seed` (a province's year) — or, without
//! one, against a fresh empty database — and every report, over a month, a quarter, a year
//! and 400 days, is asked 10 times over HTTP through a pool of two connections (so PostgreSQL's
//! generic plans, which it picks after five runs of a prepared statement, are measured too).
//! Prints the median and the slowest answer per report; the target is under 1 s (issue 8).
//!
//!     gridcall seed --orders 1000000 --until 2026-11-30T12:00:00Z   # with DATABASE_URL set
//!     BENCH_DATABASE_URL=/path/year.db BENCH_UNTIL=2026-11-30T12:00:00Z cargo bench --bench reports
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/year1 … cargo bench --bench reports
//!     cargo bench --bench reports                                   # an empty SQLite database
//!
//! The roll-up job is left off while measuring; reports fold in whatever it has not.

use chrono::{DateTime, TimeDelta, Utc};
use gridcall::clock::SystemClock;
use gridcall::config::Settings;
use gridcall::domain::reports::Month;
use gridcall::domain::Role;
use gridcall::startup::Application;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

const PASSWORD: &str = "Bench-pass-123!";
const RUNS: usize = 10;

fn q(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

async fn run(url: String, dir: &std::path::Path, until: DateTime<Utc>) {
    let mut settings =
        Settings::load_from(dir, gridcall::config::Environment::Bench, std::env::vars()).unwrap();
    settings.server.bind = "127.0.0.1:0".into();
    settings.database.url = url;
    settings.mail.dir = dir.join("mail").to_string_lossy().into_owned();
    settings.sla.rollup_enabled = false;
    settings.sla.scanner_enabled = false;
    // two pooled connections see every statement at least five times: PostgreSQL's generic
    // plans are measured, not only the custom plans of the first runs
    settings.database.pool_size = 2;
    let backend = if settings.database.url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let app = Application::build(settings, Arc::new(SystemClock)).expect("application builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let handle = app.handle();
    let username = format!("bench-sup-{}", uuid::Uuid::new_v4().simple());
    let orders: i64 = {
        use diesel::prelude::*;
        let mut conn = state.pool.get().unwrap();
        let user = gridcall::service::users::NewUser {
            username: username.clone(),
            password: PASSWORD.into(),
            role: Role::Supervisor,
            display_name: None,
            email: None,
            crew_id: None,
            area_codes: vec![],
        };
        gridcall::service::users::create(&mut conn, user, Utc::now(), state.password_cost())
            .unwrap();
        // an empty database gets the one area the filtered report names
        if gridcall::db::areas::find(&mut conn, "C01")
            .unwrap()
            .is_none()
        {
            let now = Utc::now().naive_utc();
            gridcall::db::areas::insert(
                &mut conn,
                &gridcall::db::areas::AreaRow {
                    code: "C01".into(),
                    name: "C01".into(),
                    region_class: "urban".into(),
                    parent_code: None,
                    backup_area_codes: gridcall::db::StoredList::default(),
                    calendar: "cn".into(),
                    created_at: now,
                    updated_at: now,
                },
            )
            .unwrap();
        }
        gridcall::db::schema::work_orders::table
            .count()
            .get_result(&mut conn)
            .unwrap()
    };
    actix_web::rt::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let login: Value = http
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_owned();
    println!("\n{backend}: {orders} orders; each report {RUNS} times (median / slowest)");
    let month = Month::of(until);
    let periods = [
        ("month", month.start(), until),
        ("quarter", until - TimeDelta::days(91), until),
        ("year", until - TimeDelta::days(365), until),
        ("400 days", until - TimeDelta::days(400), until),
    ];
    let mut paths: Vec<(String, String)> = Vec::new();
    for (label, from, to) in periods {
        let p = format!("from={}&to={}", q(from), q(to));
        for g in ["crew", "area", "kind", "priority", "stage", "day"] {
            paths.push((
                format!("sla by {g}, {label}"),
                format!("/api/v1/reports/sla?group_by={g}&{p}"),
            ));
        }
        paths.push((
            format!("sla by crew, arrival, city C01, {label}"),
            format!("/api/v1/reports/sla?group_by=crew&stage=arrival&area_code=C01&{p}"),
        ));
        paths.push((
            format!("crews, {label}"),
            format!("/api/v1/reports/crews?{p}"),
        ));
        paths.push((
            format!("breaches (first page), {label}"),
            format!("/api/v1/reports/breaches?{p}"),
        ));
    }
    paths.push(("backlog".into(), "/api/v1/reports/backlog".into()));
    paths.push((
        format!("scorecard {month} (open)"),
        format!("/api/v1/scorecards/{month}"),
    ));
    let mut worst = Duration::ZERO;
    for (label, path) in &paths {
        let mut times = Vec::with_capacity(RUNS);
        let mut rows = 0;
        for _ in 0..RUNS {
            let started = Instant::now();
            let res = http
                .get(format!("{base}{path}"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            let status = res.status();
            let body: Value = res.json().await.unwrap_or(Value::Null);
            times.push(started.elapsed());
            assert!(status.is_success(), "{path}: {status} {body}");
            rows = body["rows"]
                .as_array()
                .or(body["items"].as_array())
                .map_or(0, Vec::len);
        }
        times.sort();
        let (median, slowest) = (times[RUNS / 2], times[RUNS - 1]);
        worst = worst.max(slowest);
        println!(
            "  {label:<44} {:>7.1} ms {:>7.1} ms  {rows:>4} rows{}",
            median.as_secs_f64() * 1e3,
            slowest.as_secs_f64() * 1e3,
            if slowest > Duration::from_secs(1) {
                "  OVER 1 s"
            } else {
                ""
            }
        );
    }
    println!(
        "{backend}: slowest answer of all {:.1} ms (target < 1000 ms)",
        worst.as_secs_f64() * 1e3
    );
    handle.stop(true).await;
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = std::env::var("BENCH_DATABASE_URL")
        .unwrap_or_else(|_| dir.path().join("empty.db").to_string_lossy().into_owned());
    let until = std::env::var("BENCH_UNTIL")
        .ok()
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_else(Utc::now);
    actix_web::rt::System::new().block_on(run(url, dir.path(), until));
}
