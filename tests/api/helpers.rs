//! The test harness: one application per test on port 0, against its own database — a
//! fresh SQLite file, or with TEST_DATABASE_URL=postgres://… a fresh schema in that database.

use chrono::{DateTime, TimeZone, Utc};
use diesel::{Connection, PgConnection, RunQueryDsl};
use gridcall::clock::ManualClock;
use gridcall::config::{Environment, Settings};
use gridcall::domain::Role;
use gridcall::startup::Application;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::Arc;

pub const PASSWORD: &str = "Pass-word-123!";

/// Where a test's data lives; removed when the test ends.
enum TestDb {
    Sqlite(
        #[expect(dead_code, reason = "held for its Drop, which removes the folder")]
        tempfile::TempDir,
    ),
    Postgres {
        base_url: String,
        schema: String,
    },
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Sends the stop command now; the workers wind down without being awaited.
        drop(self.server.stop(false));
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let TestDb::Postgres { base_url, schema } = self {
            if let Ok(mut conn) = PgConnection::establish(base_url) {
                let _ = diesel::sql_query(format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                    .execute(&mut conn);
            }
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub admin: String,
    /// Where the file mailer writes .eml files.
    pub mail_dir: std::path::PathBuf,
    _mail_tmp: tempfile::TempDir,
    pub state: actix_web::web::Data<gridcall::state::AppState>,
    server: actix_web::dev::ServerHandle,
    _db: TestDb,
}

/// A response: status, headers and the body as JSON (Null when empty or not JSON).
pub struct Resp {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    }

    pub fn id(&self) -> String {
        self.body["id"]
            .as_str()
            .unwrap_or_else(|| panic!("no id in {}", self.body))
            .to_owned()
    }

    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    pub fn is_problem(&self) -> bool {
        self.header("content-type")
            .is_some_and(|c| c.starts_with("application/problem+json"))
            && self.body["code"].is_string()
            && self.body["status"].as_u64() == Some(u64::from(self.status.as_u16()))
    }
}

pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 2, 0, 0).unwrap()
}

fn test_db() -> (String, TestDb) {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(given) if given.starts_with("postgres") => {
            // No TLS on loopback: libpq's OpenSSL teardown at process exit can crash while
            // other test servers' pool threads still hold connections.
            let sep = if given.contains('?') { '&' } else { '?' };
            let base = format!("{given}{sep}sslmode=disable");
            let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
            let mut conn =
                PgConnection::establish(&base).unwrap_or_else(|e| panic!("TEST_DATABASE_URL: {e}"));
            diesel::sql_query(format!("CREATE SCHEMA {schema}"))
                .execute(&mut conn)
                .unwrap();
            let url = format!("{base}&options=-csearch_path%3D{schema}");
            (
                url,
                TestDb::Postgres {
                    base_url: base,
                    schema,
                },
            )
        }
        _ => {
            let dir = tempfile::tempdir().unwrap();
            let url = dir.path().join("test.db").to_string_lossy().into_owned();
            (url, TestDb::Sqlite(dir))
        }
    }
}

/// Settings for tests: port 0, cheap password hashing, a small pool.
pub fn test_settings(url: &str) -> Settings {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Settings::load_from(dir.path(), Environment::Test, std::iter::empty()).unwrap();
    s.server.bind = "127.0.0.1:0".into();
    s.server.workers = 2;
    s.server.shutdown_timeout_secs = 1;
    s.database.url = url.to_owned();
    s.database.pool_size = 8;
    s.database.sqlite_synchronous = gridcall::db::SqliteSynchronous::Normal;
    s.auth.argon2_memory_kib = 1024;
    s.auth.argon2_iterations = 1;
    // Tests drive the scanner and the sender themselves with run_once and a manual clock.
    s.sla.scanner_enabled = false;
    // ... and the roll-up job (`roll_up`): a background pass racing a test's own pass made
    // the seed test fail once in a parallel run.
    s.sla.rollup_enabled = false;
    s.mail.sender_enabled = false;
    s.events.poll_interval_ms = 50;
    // Tests move the clock by hours and days; the token-expiry tests set 15 minutes back.
    s.auth.access_token_minutes = 60 * 24 * 90;
    s
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let (url, db) = test_db();
    let mut settings = test_settings(&url);
    let mail_tmp = tempfile::tempdir().unwrap();
    let mail_dir = mail_tmp.path().join("mail");
    settings.mail.dir = mail_dir.to_string_lossy().into_owned();
    tweak(&mut settings);
    let clock = Arc::new(ManualClock::new(start_time()));
    let app = Application::build(settings.clone(), clock.clone()).expect("application builds");
    let port = app.port();
    let state = app.state();
    let server = app.handle();
    {
        let mut conn = state.pool.get().unwrap();
        let cost = gridcall::auth::password::PasswordCost {
            memory_kib: 1024,
            iterations: 1,
        };
        let new = gridcall::service::users::NewUser {
            username: "root".into(),
            password: PASSWORD.into(),
            role: Role::Admin,
            display_name: None,
            email: None,
            crew_id: None,
            area_codes: vec![],
        };
        gridcall::service::users::create(&mut conn, new, start_time(), cost).unwrap();
    }
    actix_web::rt::spawn(app.run_until_stopped());
    let mut t = TestApp {
        base: format!("http://127.0.0.1:{port}"),
        // Idle connections are dropped before the server's keep-alive (5 s) closes them, so
        // a request after a long pause in a test never lands on a connection being closed.
        client: reqwest::Client::builder()
            .pool_idle_timeout(std::time::Duration::from_secs(2))
            .build()
            .unwrap(),
        clock,
        admin: String::new(),
        mail_dir,
        _mail_tmp: mail_tmp,
        server,
        state,
        _db: db,
    };
    t.admin = t.login("root", PASSWORD).await;
    t
}

impl TestApp {
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap_or_default();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: &str,
        body: Vec<u8>,
    ) -> Resp {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let res = req.send().await.expect("request sent");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.bytes().await.unwrap_or_default();
        Resp {
            status,
            headers,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None, &[]).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(token), Some(body), &[])
            .await
    }

    pub async fn patch(&self, path: &str, token: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(token), Some(body), &[])
            .await
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let r = self
            .call(
                Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
                &[],
            )
            .await;
        assert_eq!(r.status, 200, "login {username}: {}", r.body);
        r.body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn area(&self, code: &str, region_class: &str) {
        self.post(
            "/api/v1/areas",
            &self.admin,
            json!({"code": code, "name": format!("区域 {code}"), "region_class": region_class}),
        )
        .await
        .expect(201);
    }

    /// A crew covering `areas` with every skill.
    pub async fn crew(&self, code: &str, kind: &str, areas: &[&str]) -> String {
        self.post(
            "/api/v1/crews",
            &self.admin,
            json!({"code": code, "name": format!("班组 {code}"), "kind": kind, "area_codes": areas,
                   "skills": ["repair", "metering", "charging", "complaints", "reply"], "capacity": 50, "lat": 22.54, "lon": 114.05}),
        )
        .await
        .expect(201)
        .id()
    }

    /// Creates a user and returns their access token.
    pub async fn user(&self, username: &str, role: &str, extra: Value) -> String {
        let mut body = json!({"username": username, "password": PASSWORD, "role": role, "display_name": username});
        if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
            b.extend(e.clone());
        }
        self.post("/api/v1/users", &self.admin, body)
            .await
            .expect(201);
        self.login(username, PASSWORD).await
    }

    pub async fn order(&self, token: &str, kind: &str, area: &str, phone: &str) -> Resp {
        self.post(
            "/api/v1/work-orders",
            token,
                        // force_new: fixtures open independent orders; tests/api/repeat_calls.rs covers repeats
            json!({"kind": kind, "channel": "phone", "caller": {"name": "张三", "phone": phone},
                   "area_code": area, "address": "福华路 1 号", "description": "整栋楼停电", "force_new": true}),
        )
        .await
    }

    pub async fn act(&self, token: &str, id: &str, action: &str, body: Value) -> Resp {
        self.post(&format!("/api/v1/work-orders/{id}/{action}"), token, body)
            .await
    }
}

/// The usual cast: one area, a field crew and a unit, and a user of each role.
pub struct Cast {
    pub agent: String,
    pub dispatcher: String,
    pub supervisor: String,
    pub field_crew: String,
    pub unit: String,
    pub field_member: String,
    pub unit_member: String,
}

pub async fn cast(app: &TestApp) -> Cast {
    app.area("SZ-FT-01", "urban").await;
    let field_crew = app.crew("FT-C1", "field", &["SZ-FT-01"]).await;
    let unit = app.crew("FT-U1", "unit", &["SZ-FT-01"]).await;
    Cast {
        agent: app.user("agent1", "agent", json!({})).await,
        dispatcher: app.user("disp1", "dispatcher", json!({})).await,
        supervisor: app.user("super1", "supervisor", json!({})).await,
        field_member: app
            .user("crew1", "crew", json!({"crew_id": field_crew}))
            .await,
        unit_member: app.user("unit1", "crew", json!({"crew_id": unit})).await,
        field_crew,
        unit,
    }
}

impl TestApp {
    /// One scanner pass at the app's clock, as an instance's loop would run it.
    pub fn scan(&self) -> gridcall::jobs::scanner::ScanReport {
        self.scan_with_batch(1000)
    }

    pub fn scan_with_batch(&self, batch: i64) -> gridcall::jobs::scanner::ScanReport {
        use gridcall::clock::Clock;
        let mut conn = self.state.pool.get().unwrap();
        gridcall::jobs::scanner::Scanner {
            batch,
            notifier: self.state.notifier.clone(),
        }
        .run_once(
            &mut conn,
            &self.state.sla,
            &self.state.work_order_rules(),
            self.clock.now(),
        )
        .unwrap()
    }
}

impl TestApp {
    /// One outbox-sender pass at the app's clock.
    pub fn send_mail(&self) -> gridcall::jobs::sender::SendReport {
        use gridcall::clock::Clock;
        let m = &self.state.settings.mail;
        let mut conn = self.state.pool.get().unwrap();
        gridcall::jobs::sender::Sender {
            batch: m.sender_batch,
            max_attempts: m.max_attempts,
            backoff_base_secs: m.backoff_base_secs,
            backoff_max_secs: m.backoff_max_secs,
            digest_interval_secs: m.digest_interval_secs,
            templates: self.state.notifier.templates.clone(),
        }
        .run_once(&mut conn, &self.state.mailer, self.clock.now())
        .unwrap()
    }

    pub fn outbox(&self) -> Vec<gridcall::db::outbox::OutboxRow> {
        let mut conn = self.state.pool.get().unwrap();
        gridcall::db::outbox::all(&mut conn).unwrap()
    }
}

impl TestApp {
    /// A repair order in SZ-FT-01, dispatched to the cast's field crew and accepted by it.
    pub async fn accepted_repair(&self, c: &Cast, phone: &str) -> String {
        let id = self
            .order(&c.agent, "repair", "SZ-FT-01", phone)
            .await
            .expect(201)
            .id();
        self.act(
            &c.dispatcher,
            &id,
            "dispatch",
            json!({"crew_id": c.field_crew}),
        )
        .await
        .expect(200);
        self.act(&c.field_member, &id, "accept", json!({}))
            .await
            .expect(200);
        id
    }
}

impl TestApp {
    /// Opens an order (see `order`) and returns its id.
    pub async fn new_order(&self, token: &str, kind: &str, area: &str, phone: &str) -> String {
        self.order(token, kind, area, phone).await.expect(201).id()
    }
}

impl TestApp {
    /// One roll-up pass at the app's clock, as an instance's loop would run it.
    pub fn roll_up(&self) -> gridcall::service::rollups::Folded {
        use gridcall::clock::Clock;
        let mut conn = self.state.pool.get().unwrap();
        gridcall::jobs::rollup::Rollup { batch: 7 }
            .run_once(&mut conn, &self.state.sla.context(), self.clock.now())
            .unwrap()
    }
}
