//! Benchmark of a call surge (not a test): the service runs in-process on a real port with
//! its production settings, and BENCH_CALLS agents' calls arrive at the same instant over
//! HTTP — into the area of an active outage (each call becomes a linked order), and, for
//! comparison, into an area without one (each call a new order with its timers). Prints
//! orders/s and latency percentiles per scenario.
//!
//!     cargo bench --bench surge                                         # SQLite file in a temp dir
//!     BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres cargo bench --bench surge
//!     BENCH_CALLS=300 BENCH_ROUNDS=5 cargo bench --bench surge
//!
//! On PostgreSQL the run uses a fresh schema in the given database and drops it afterwards.
//! Target (issue 4): 300 concurrent surge calls, every one answered, on both databases.

use diesel::{Connection, PgConnection, RunQueryDsl};
use gridcall::clock::SystemClock;
use gridcall::config::Settings;
use gridcall::domain::Role;
use gridcall::startup::Application;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn send(&self, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn must(&self, path: &str, token: &str, body: Value) -> Value {
        let (status, body) = self.send(path, Some(token), body).await;
        assert!((200..300).contains(&status), "{path}: {status} {body}");
        body
    }

    async fn login(&self, username: &str) -> String {
        let (status, body) = self
            .send(
                "/api/v1/auth/login",
                None,
                json!({"username": username, "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, 200, "login {username}: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }
}

const PASSWORD: &str = "Bench-pass-123!";

/// One round: `calls` calls at once; each call's latency, and the round's wall time.
async fn round(
    client: &Arc<Client>,
    token: &str,
    area: &str,
    calls: usize,
    tag: usize,
    expect_status: &str,
) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let tasks: Vec<_> = (0..calls)
        .map(|i| {
            let (client, token, area) = (client.clone(), token.to_owned(), area.to_owned());
            actix_web::rt::spawn(async move {
                let t = Instant::now();
                let (status, body) = client
                    .send(
                        "/api/v1/work-orders",
                        Some(&token),
                        json!({"kind": "repair", "channel": "phone",
                               "caller": {"name": "用户", "phone": format!("139{tag:03}{i:05}")},
                               "area_code": area, "address": "福华路 1 号", "description": "整片停电"}),
                    )
                    .await;
                (t.elapsed(), status, body["status"].as_str().map(str::to_owned))
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(calls);
    for task in tasks {
        let (latency, status, order_status) = task.await.unwrap();
        assert_eq!(status, 201, "every call is answered with its order");
        assert_eq!(order_status.as_deref(), Some(expect_status));
        latencies.push(latency);
    }
    (latencies, started.elapsed())
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// A supervisor's live event stream, counting the events it receives.
struct Watcher {
    received: Arc<AtomicUsize>,
    expected: usize,
}

impl Watcher {
    async fn open(client: &Client, token: &str, after: i64) -> Watcher {
        let mut response = client
            .http
            .get(format!("{}/api/v1/events/stream", client.base))
            .bearer_auth(token)
            .header("Last-Event-ID", after.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let received = Arc::new(AtomicUsize::new(0));
        let counter = received.clone();
        actix_web::rt::spawn(async move {
            let mut buffer = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                buffer.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = buffer.find("\n\n") {
                    if buffer.starts_with("id: ") {
                        counter.fetch_add(1, Ordering::SeqCst);
                    }
                    buffer.drain(..end + 2);
                }
            }
        });
        Watcher {
            received,
            expected: 0,
        }
    }

    /// Waits until the stream has delivered `more` further events; how long that took.
    async fn caught_up(&mut self, more: usize) -> Duration {
        self.expected += more;
        let started = Instant::now();
        while self.received.load(Ordering::SeqCst) < self.expected {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the live stream fell behind: {} of {} events",
                self.received.load(Ordering::SeqCst),
                self.expected
            );
            actix_web::rt::time::sleep(Duration::from_millis(1)).await;
        }
        started.elapsed()
    }
}

async fn scenario(
    name: &str,
    client: &Arc<Client>,
    (token, area, expect_status, events_per_call): (&str, &str, &str, usize),
    (calls, rounds, tag): (usize, usize, &mut usize),
    watcher: &mut Watcher,
) {
    // One unmeasured round opens the agents' connections, as their desktops hold them.
    *tag += 1;
    round(client, token, area, calls, *tag, expect_status).await;
    watcher.caught_up(calls * events_per_call).await;
    let mut all = Vec::new();
    let mut rates = Vec::new();
    let mut lags = Vec::new();
    for _ in 0..rounds {
        *tag += 1;
        let (lat, wall) = round(client, token, area, calls, *tag, expect_status).await;
        lags.push(watcher.caught_up(calls * events_per_call).await);
        rates.push(calls as f64 / wall.as_secs_f64());
        all.extend(lat);
    }
    all.sort();
    lags.sort();
    rates.sort_by(f64::total_cmp);
    println!(
        "{name:<24} {calls} calls x {rounds}: {:>4.0} orders/s (median round; {:.0}..{:.0}), latency p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms; live stream done {:.0} ms (median; max {:.0}) after the last answer",
        rates[rates.len() / 2],
        rates[0],
        rates[rates.len() - 1],
        percentile(&all, 0.50),
        percentile(&all, 0.99),
        percentile(&all, 1.0),
        percentile(&lags, 0.5),
        percentile(&lags, 1.0),
    );
}

async fn run(url: String, dir: &std::path::Path) {
    let calls = env_num("BENCH_CALLS", 300);
    let rounds = env_num("BENCH_ROUNDS", 5);
    // GRIDCALL__SECTION__KEY variables apply, as for the service (e.g. the pool size).
    let mut settings =
        Settings::load_from(dir, gridcall::config::Environment::Bench, std::env::vars()).unwrap();
    settings.server.bind = "127.0.0.1:0".into();
    settings.database.url = url;
    settings.mail.dir = dir.join("mail").to_string_lossy().into_owned();
    let backend = if settings.database.url.starts_with("postgres") {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    let app = Application::build(settings, Arc::new(SystemClock)).expect("application builds");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let handle = app.handle();
    {
        let mut conn = state.pool.get().unwrap();
        let cost = state.password_cost();
        for (username, role) in [
            ("admin", Role::Admin),
            ("agent", Role::Agent),
            ("disp", Role::Dispatcher),
        ] {
            let user = gridcall::service::users::NewUser {
                username: username.into(),
                password: PASSWORD.into(),
                role,
                display_name: None,
                email: None,
                crew_id: None,
                area_codes: vec![],
            };
            gridcall::service::users::create(&mut conn, user, chrono::Utc::now(), cost).unwrap();
        }
    }
    actix_web::rt::spawn(app.run_until_stopped());
    let client = Arc::new(Client {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(calls * 2)
            .build()
            .unwrap(),
        base,
    });
    let admin = client.login("admin").await;
    let agent = client.login("agent").await;
    let disp = client.login("disp").await;
    for (code, class) in [("OUT-1", "urban"), ("CALM-1", "urban")] {
        client
            .must(
                "/api/v1/areas",
                &admin,
                json!({"code": code, "name": code, "region_class": class}),
            )
            .await;
    }
    client
        .must(
            "/api/v1/crews",
            &admin,
            json!({"code": "C1", "name": "抢修一班", "kind": "field", "area_codes": ["OUT-1", "CALM-1"],
                   "skills": ["repair"], "capacity": 1000, "lat": 22.54, "lon": 114.05}),
        )
        .await;
    let outage = client
        .must(
            "/api/v1/outages",
            &disp,
            json!({"area_codes": ["OUT-1"], "cause": "10kV 线路跳闸",
                   "started_at": chrono::Utc::now().to_rfc3339()}),
        )
        .await;
    println!(
        "{backend}: {} cores, {} HTTP workers, pool of {}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        if state.settings.server.workers == 0 {
            "per-core".to_owned()
        } else {
            state.settings.server.workers.to_string()
        },
        state.settings.database.pool_size
    );
    // A supervisor follows the live stream from the newest event on.
    let newest = loop {
        let page: Value = client
            .http
            .get(format!("{}/api/v1/events?limit=500", client.base))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page["items"].as_array().is_some_and(|i| !i.is_empty()) {
            break page["position"].as_i64().unwrap();
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
    };
    let mut watcher = Watcher::open(&client, &admin, newest).await;
    let mut tag = 0;
    // a linked call records `created` and `linked_to_outage`; a new order `created`
    scenario(
        "outage area (linked)",
        &client,
        (&agent, "OUT-1", "merged", 2),
        (calls, rounds, &mut tag),
        &mut watcher,
    )
    .await;
    scenario(
        "no outage (new orders)",
        &client,
        (&agent, "CALM-1", "new", 1),
        (calls, rounds, &mut tag),
        &mut watcher,
    )
    .await;
    let o: Value = client
        .http
        .get(format!(
            "{}/api/v1/outages/{}",
            client.base,
            outage["id"].as_str().unwrap()
        ))
        .bearer_auth(&disp)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        o["linked_count"].as_u64(),
        Some(((rounds + 1) * calls) as u64),
        "every surge call linked to the one outage"
    );
    handle.stop(true).await;
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let (url, cleanup) = match std::env::var("BENCH_DATABASE_URL") {
        Ok(given) if given.starts_with("postgres") => {
            let schema = format!("surge_{}", uuid::Uuid::new_v4().simple());
            let mut conn = PgConnection::establish(&given).expect("BENCH_DATABASE_URL");
            diesel::sql_query(format!("CREATE SCHEMA {schema}"))
                .execute(&mut conn)
                .unwrap();
            let sep = if given.contains('?') { '&' } else { '?' };
            (
                format!("{given}{sep}options=-csearch_path%3D{schema}"),
                Some((given, schema)),
            )
        }
        _ => (
            dir.path().join("surge.db").to_string_lossy().into_owned(),
            None,
        ),
    };
    actix_web::rt::System::new().block_on(run(url, dir.path()));
    if let Some((given, schema)) = cleanup {
        let mut conn = PgConnection::establish(&given).unwrap();
        diesel::sql_query(format!("DROP SCHEMA {schema} CASCADE"))
            .execute(&mut conn)
            .unwrap();
    }
}
