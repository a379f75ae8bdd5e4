//! gridcall's load tool (a benchmark, not a test): drives a running server over HTTP as the
//! call centre does — agents, dispatchers, crews and a supervisor, each logged in with their
//! own role — checks every answer, and prints throughput and p50/p90/p99 per endpoint.
//!
//!     cargo bench --bench load -- create --url http://127.0.0.1:8080 --connections 16 --duration 30
//!     cargo bench --bench load -- mix    --url http://127.0.0.1:8080 --watch
//!     cargo bench --bench load -- surge  --url http://127.0.0.1:8080 --calls 10000 --seconds 60
//!     cargo bench --bench load -- helpdesk --url http://127.0.0.1:8001 --token T --queue 1
//!
//! Scenarios:
//! - `create`: each connection opens repair orders for new callers, back to back.
//! - `mix`: each connection plays whole calls — 70 % repair (create, dispatch by routing, accept,
//!   depart, arrive, resolve, callback), 15 % inquiry answered on the call (create, resolve,
//!   close), 10 % complaint (create, dispatch, accept, contact, resolve, callback), 5 % the
//!   other kinds (praise, opinion, suggestion, report, service request).
//! - `surge`: a dispatcher declares an outage over four areas, then `--calls` repair calls arrive
//!   from those areas at an even pace over `--seconds` (open loop: a slow server is not given a
//!   break), each answered as linked to the outage; then the outage is restored.
//! - `helpdesk`: the peer (django-helpdesk, `tools/peer-helpdesk.sh`) creating tickets through
//!   `POST /api/tickets/`, with the same connections and measurement as `create`.
//!
//! The server needs an admin (`gridcall user create --role admin`); the tool makes its own areas,
//! crews and users under a fresh prefix, so runs can follow each other on one database.
//! `--watch` follows a supervisor's live stream and reports how long after its request was
//! answered each event arrived, and any that never did. `--acked FILE` writes the id of every
//! order whose create was answered 2xx (the crash drills read it); `--tolerate-errors` counts
//! failed requests instead of failing the run (for drills that break the server on purpose).
//! The last line is `RESULT key=value …` for scripts.

use clap::{Args, Parser, Subcommand};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::rc::Rc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Load tool for gridcall (and its peer)")]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Repair orders for new callers, back to back.
    Create(Common),
    /// Whole calls in the lifecycle mix.
    Mix(Common),
    /// An outage, then a surge of calls from its areas at an even pace.
    Surge {
        #[command(flatten)]
        common: Common,
        /// Calls in the surge.
        #[arg(long, default_value_t = 10_000)]
        calls: usize,
        /// Seconds the surge is spread over.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
    },
    /// After a crash drill: every order in `--acked` is there, whole (its `created` event, the
    /// status its last transition event names, timers unless it needs none).
    Verify(Common),
    /// django-helpdesk ticket creation, for the side-by-side figure.
    Helpdesk {
        #[command(flatten)]
        common: Common,
        /// DRF token of a staff user.
        #[arg(long)]
        token: String,
        /// Queue id the tickets go to.
        #[arg(long)]
        queue: i64,
    },
}

#[derive(Args, Clone)]
struct Common {
    /// Base address of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Concurrent connections (each a client working back to back).
    #[arg(long, default_value_t = 16)]
    connections: usize,
    /// Seconds to run (after a 2 s warm-up that is not counted).
    #[arg(long, default_value_t = 20)]
    duration: u64,
    /// Seconds per progress line (the rate over time, to see decay).
    #[arg(long, default_value_t = 10)]
    window: u64,
    #[arg(long, default_value = "admin")]
    admin_user: String,
    #[arg(
        long,
        env = "GRIDCALL_LOAD_ADMIN_PASSWORD",
        default_value = "Load-admin-pass-1"
    )]
    admin_password: String,
    /// Follow a supervisor's live stream and measure each event's delay.
    #[arg(long)]
    watch: bool,
    /// Write the id of every order whose create was answered 2xx to this file.
    #[arg(long)]
    acked: Option<std::path::PathBuf>,
    /// Count failed requests instead of failing the run.
    #[arg(long)]
    tolerate_errors: bool,
    /// create and mix: start this many calls a second at an even pace (open loop, each on its
    /// own connection as needed) instead of `--connections` clients back to back: latency at
    /// a given rate (e.g. half the maximum).
    #[arg(long)]
    rate: Option<f64>,
}

const PASSWORD: &str = "Load-pass-word-1";

/// Per endpoint: latencies of answers that passed their check, and failures.
#[derive(Default)]
struct Stats {
    ok: BTreeMap<&'static str, Vec<Duration>>,
    failed: BTreeMap<&'static str, usize>,
    first_failures: Vec<String>,
    /// Failed answers by HTTP status ("none" when no answer came: refused, reset, timed out).
    failure_statuses: BTreeMap<String, usize>,
    /// State-changing requests answered as expected, per window.
    windows: Vec<usize>,
    /// Orders created, per window.
    created_windows: Vec<usize>,
}

struct Run {
    http: reqwest::Client,
    base: String,
    stats: RefCell<Stats>,
    started: Cell<Option<Instant>>,
    /// When measuring started, in ms since the Unix epoch (for scripts that break things).
    started_epoch_ms: Cell<u128>,
    window: Duration,
    /// (order id, event type) → when the request that caused it was answered.
    answered: RefCell<HashMap<(String, String), Instant>>,
    watching: bool,
    acked: RefCell<Option<std::io::BufWriter<std::fs::File>>>,
    tolerate_errors: bool,
}

/// A logged-in user; the access token is renewed before it expires.
struct Session {
    username: String,
    token: RefCell<String>,
    since: Cell<Instant>,
}

type Answer = (u16, Value);

impl Run {
    async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: Option<String>,
        body: Option<Value>,
    ) -> Result<Answer, String> {
        // Each request is bounded; the live stream (opened elsewhere) is not.
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .timeout(Duration::from_secs(30));
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let res = req.send().await.map_err(|e| format!("{path}: {e}"))?;
        let status = res.status().as_u16();
        let body = res.json().await.unwrap_or(Value::Null);
        Ok((status, body))
    }

    async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .request(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await
            .unwrap_or_else(|e| panic!("login {username}: {e}"));
        assert_eq!(status, 200, "login {username}: {body}");
        body["access_token"].as_str().unwrap().to_owned()
    }

    async fn session(&self, username: &str) -> Rc<Session> {
        Rc::new(Session {
            username: username.to_owned(),
            token: RefCell::new(self.login(username, PASSWORD).await),
            since: Cell::new(Instant::now()),
        })
    }

    async fn bearer(&self, s: &Session) -> String {
        // Access tokens live 15 minutes by default; renew well before.
        if s.since.get().elapsed() > Duration::from_secs(600) {
            *s.token.borrow_mut() = self.login(&s.username, PASSWORD).await;
            s.since.set(Instant::now());
        }
        format!("Bearer {}", s.token.borrow())
    }

    /// A setup request that must succeed.
    async fn must(&self, path: &str, auth: &str, body: Value) -> Value {
        let (status, body) = self
            .request(
                reqwest::Method::POST,
                path,
                Some(format!("Bearer {auth}")),
                Some(body),
            )
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!((200..300).contains(&status), "{path}: {status} {body}");
        body
    }

    fn start_measuring(&self, at: Instant) {
        self.started.set(Some(at));
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .saturating_sub(at.elapsed());
        self.started_epoch_ms.set(since_epoch.as_millis());
        eprintln!("measuring");
    }

    fn window_index(&self, at: Instant) -> Option<usize> {
        let started = self.started.get()?;
        Some((at.duration_since(started).as_secs_f64() / self.window.as_secs_f64()) as usize)
    }

    /// Records one measured request; `Ok(body)` when its answer passed the check.
    fn record(
        &self,
        endpoint: &'static str,
        latency: Duration,
        outcome: Result<Value, String>,
        writes: bool,
    ) -> Result<Value, ()> {
        let measuring = self.started.get().is_some();
        let mut stats = self.stats.borrow_mut();
        match outcome {
            Ok(body) => {
                if measuring {
                    stats.ok.entry(endpoint).or_default().push(latency);
                    if writes {
                        if let Some(w) = self.window_index(Instant::now()) {
                            bump(&mut stats.windows, w);
                        }
                    }
                }
                Ok(body)
            }
            Err(message) => {
                *stats.failed.entry(endpoint).or_default() += 1;
                let status = match message.split_once(' ') {
                    Some((code, _)) if code.len() == 3 && code.parse::<u16>().is_ok() => {
                        code.to_owned()
                    }
                    _ => "none".to_owned(),
                };
                *stats.failure_statuses.entry(status).or_default() += 1;
                if stats.first_failures.len() < 10 {
                    stats.first_failures.push(format!("{endpoint}: {message}"));
                }
                if !self.tolerate_errors {
                    eprintln!("{endpoint}: {message}");
                    std::process::exit(1);
                }
                Err(())
            }
        }
    }

    /// A state-changing request on the API: checked for `expect` status and, when given, the
    /// order's new status.
    async fn act(
        &self,
        endpoint: &'static str,
        path: &str,
        who: &Session,
        body: Value,
        (expect, order_status): (u16, Option<&str>),
        event: Option<&str>,
    ) -> Result<Value, ()> {
        let auth = self.bearer(who).await;
        let t = Instant::now();
        let outcome = match self
            .request(reqwest::Method::POST, path, Some(auth), Some(body))
            .await
        {
            Err(e) => Err(e),
            Ok((status, body)) if status != expect => Err(format!("{status} {body}")),
            Ok((_, body)) => match order_status {
                Some(want) if body["status"].as_str() != Some(want) => {
                    Err(format!("status {} instead of {want}", body["status"]))
                }
                _ => Ok(body),
            },
        };
        let answered = Instant::now();
        let body = self.record(endpoint, answered - t, outcome, true)?;
        if let (true, Some(kind), Some(id)) = (self.watching, event, body["id"].as_str()) {
            if self.started.get().is_some() {
                self.answered
                    .borrow_mut()
                    .insert((id.to_owned(), kind.to_owned()), answered);
            }
        }
        Ok(body)
    }

    fn created(&self, order: &Value) {
        if let Some(w) = self.window_index(Instant::now()) {
            bump(&mut self.stats.borrow_mut().created_windows, w);
        }
        if let (Some(file), Some(id)) = (self.acked.borrow_mut().as_mut(), order["id"].as_str()) {
            writeln!(file, "{id}").expect("acked file written");
        }
    }
}

fn bump(v: &mut Vec<usize>, i: usize) {
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    v[i] += 1;
}

/// The people and places of one run.
struct Cast {
    agent: Rc<Session>,
    dispatcher: Rc<Session>,
    supervisor: Rc<Session>,
    /// crew id → a member of that crew (field crews and units).
    crews: HashMap<String, Rc<Session>>,
    field_crews: Vec<String>,
    areas: Vec<String>,
    surge_areas: Vec<String>,
    /// Keeps callers of different runs apart.
    run_id: u64,
}

async fn cast(run: &Run, common: &Common) -> Cast {
    let admin = run.login(&common.admin_user, &common.admin_password).await;
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 1_000_000;
    let prefix = format!("LD{run_id:06}");
    let mut areas = Vec::new();
    let mut surge_areas = Vec::new();
    for (i, class) in ["urban", "urban", "urban", "rural", "rural", "remote"]
        .iter()
        .enumerate()
    {
        let code = format!("{prefix}-A{i}");
        run.must(
            "/api/v1/areas",
            &admin,
            json!({"code": code, "name": code, "region_class": class}),
        )
        .await;
        areas.push(code);
    }
    for i in 0..4 {
        let code = format!("{prefix}-S{i}");
        run.must(
            "/api/v1/areas",
            &admin,
            json!({"code": code, "name": code, "region_class": "urban"}),
        )
        .await;
        surge_areas.push(code);
    }
    let mut crew_ids = Vec::new();
    let mut field_crews = Vec::new();
    for (a, area) in areas.iter().chain(&surge_areas).enumerate() {
        for (c, kind, skills) in [
            (0, "field", json!(["repair", "metering"])),
            (1, "field", json!(["repair", "metering", "charging"])),
            (2, "unit", json!(["complaints", "reply"])),
        ] {
            let crew = run
                .must(
                    "/api/v1/crews",
                    &admin,
                    json!({"code": format!("{prefix}-C{a}-{c}"), "name": format!("班组 {a}-{c}"),
                           "kind": kind, "area_codes": [area], "skills": skills,
                           "capacity": 1000, "lat": 22.5 + a as f64 * 0.01, "lon": 114.0}),
                )
                .await;
            let id = crew["id"].as_str().unwrap().to_owned();
            if kind == "field" {
                field_crews.push(id.clone());
            }
            crew_ids.push(id);
        }
    }
    let user = |name: &str, role: &str, crew: Option<&str>| {
        json!({"username": name, "password": PASSWORD, "role": role,
               "display_name": name, "crew_id": crew})
    };
    for (name, role) in [
        ("agent", "agent"),
        ("disp", "dispatcher"),
        ("sup", "supervisor"),
    ] {
        run.must(
            "/api/v1/users",
            &admin,
            user(&format!("{prefix}-{name}"), role, None),
        )
        .await;
    }
    let mut crews = HashMap::new();
    for (i, id) in crew_ids.iter().enumerate() {
        let name = format!("{prefix}-crew{i}");
        run.must("/api/v1/users", &admin, user(&name, "crew", Some(id)))
            .await;
        crews.insert(id.clone(), run.session(&name).await);
    }
    Cast {
        agent: run.session(&format!("{prefix}-agent")).await,
        dispatcher: run.session(&format!("{prefix}-disp")).await,
        supervisor: run.session(&format!("{prefix}-sup")).await,
        crews,
        field_crews,
        areas,
        surge_areas,
        run_id,
    }
}

/// A new caller's phone number: unique within the run and apart from other runs' callers.
fn phone(run_id: u64, n: u64) -> String {
    format!("17{:09}", (run_id * 7919 * 1000 + n) % 1_000_000_000)
}

fn order_body(kind: &str, category: &str, area: &str, caller: String) -> Value {
    json!({"kind": kind, "category": category, "channel": "phone",
           "caller": {"name": "用户", "phone": caller}, "area_code": area,
           "address": "福华路 1 号", "lat": 22.54, "lon": 114.05,
           "description": "负荷测试来电"})
}

/// One call of the mix, from the caller's first ring to the archive; stops at the first
/// answer that fails its check.
async fn call(run: &Run, cast: &Cast, rng: &mut SmallRng, n: u64) -> Result<(), ()> {
    let area = &cast.areas[rng.gen_range(0..cast.areas.len())];
    let caller = phone(cast.run_id, n);
    let roll = rng.gen_range(0..100);
    let (kind, category) = match roll {
        0..=69 => ("repair", "no_power"),
        70..=84 => ("inquiry", "general"),
        85..=94 => ("complaint", "service"),
        _ => *[
            ("praise", "general"),
            ("opinion", "general"),
            ("suggestion", "general"),
            ("report", "general"),
            ("service_request", "reconnection"),
        ]
        .get(rng.gen_range(0..5))
        .unwrap(),
    };
    let mut body = order_body(kind, category, area, caller);
    if kind == "praise" {
        body["subject_crew_id"] = json!(cast.field_crews[rng.gen_range(0..cast.field_crews.len())]);
    }
    let order = run
        .act(
            "POST /work-orders",
            "/api/v1/work-orders",
            &cast.agent,
            body,
            (201, Some("new")),
            Some("created"),
        )
        .await?;
    run.created(&order);
    let id = order["id"].as_str().unwrap().to_owned();
    let path = |action: &str| format!("/api/v1/work-orders/{id}/{action}");
    let step = |endpoint: &'static str,
                action: &'static str,
                who: Rc<Session>,
                body: Value,
                to: &'static str| {
        let path = path(action);
        async move {
            run.act(endpoint, &path, &who, body, (200, Some(to)), Some(action))
                .await
        }
    };
    let agent = cast.agent.clone();
    match kind {
        "inquiry" => {
            step(
                "POST …/resolve",
                "resolve",
                agent.clone(),
                json!({"resolution": "已答复"}),
                "resolved",
            )
            .await?;
            step("POST …/close", "close", agent, json!({}), "closed").await?;
            return Ok(());
        }
        "praise" => {
            step("POST …/close", "close", agent, json!({}), "closed").await?;
            return Ok(());
        }
        _ => {}
    }
    let dispatched = step(
        "POST …/dispatch",
        "dispatch",
        cast.dispatcher.clone(),
        json!({}),
        "dispatched",
    )
    .await?;
    let crew_id = dispatched["assigned_crew_id"].as_str().unwrap_or_default();
    let Some(crew) = cast.crews.get(crew_id).cloned() else {
        run.record(
            "POST …/dispatch",
            Duration::ZERO,
            Err(format!("routed to a crew outside the run: {crew_id}")),
            false,
        )?;
        return Err(());
    };
    step(
        "POST …/accept",
        "accept",
        crew.clone(),
        json!({}),
        "accepted",
    )
    .await?;
    match kind {
        "repair" | "service_request" => {
            step(
                "POST …/depart",
                "depart",
                crew.clone(),
                json!({}),
                "en_route",
            )
            .await?;
            step(
                "POST …/arrive",
                "arrive",
                crew.clone(),
                json!({}),
                "on_site",
            )
            .await?;
        }
        "complaint" | "report" => {
            step(
                "POST …/contact",
                "contact",
                crew.clone(),
                json!({"note": "已联系客户"}),
                "contacted",
            )
            .await?;
        }
        _ => {}
    }
    step(
        "POST …/resolve",
        "resolve",
        crew,
        json!({"resolution": "已处理"}),
        "resolved",
    )
    .await?;
    if matches!(kind, "opinion" | "suggestion") {
        step("POST …/close", "close", agent, json!({}), "closed").await?;
    } else {
        step(
            "POST …/callback",
            "callback",
            agent,
            json!({"satisfaction": "satisfied"}),
            "closed",
        )
        .await?;
    }
    Ok(())
}

/// A supervisor's live stream: when each (order, event type) arrived.
type Arrivals = Rc<RefCell<HashMap<(String, String), Instant>>>;

async fn watch(run: &Run, who: &Session) -> Arrivals {
    // Without Last-Event-ID the stream starts at the newest event, as a supervisor's board
    // does when it opens; the load starts once the stream has answered.
    let mut response = run
        .http
        .get(format!("{}/api/v1/events/stream", run.base))
        .header("authorization", run.bearer(who).await)
        .send()
        .await
        .expect("stream opened");
    assert_eq!(response.status(), 200, "stream");
    let arrivals: Arrivals = Rc::default();
    let sink = arrivals.clone();
    actix_web::rt::spawn(async move {
        let mut buffer = String::new();
        while let Ok(Some(chunk)) = response.chunk().await {
            let now = Instant::now();
            buffer.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buffer.find("\n\n") {
                let frame: String = buffer.drain(..end + 2).collect();
                let Some(data) = frame.lines().find_map(|l| l.strip_prefix("data: ")) else {
                    continue;
                };
                if let Ok(event) = serde_json::from_str::<Value>(data) {
                    if let (Some(order), Some(kind)) =
                        (event["work_order_id"].as_str(), event["type"].as_str())
                    {
                        sink.borrow_mut()
                            .insert((order.to_owned(), kind.to_owned()), now);
                    }
                }
            }
        }
    });
    arrivals
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // nearest rank
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    ms(sorted[rank - 1])
}

fn report(run: &Run, name: &str, measured: Duration, arrivals: Option<Arrivals>, extra: &str) {
    let mut stats = run.stats.borrow_mut();
    println!(
        "\n{:<22} {:>8} {:>6} {:>8} {:>8} {:>8} {:>8}",
        "endpoint", "ok", "failed", "p50 ms", "p90 ms", "p99 ms", "max ms"
    );
    let mut writes = 0;
    let mut endpoints: Vec<&'static str> = stats
        .ok
        .keys()
        .chain(stats.failed.keys())
        .copied()
        .collect();
    endpoints.sort();
    endpoints.dedup();
    let mut all = Vec::new();
    for e in endpoints {
        let failed = stats.failed.get(e).copied().unwrap_or(0);
        let lat = stats.ok.entry(e).or_default();
        lat.sort();
        if e.starts_with("POST") {
            writes += lat.len();
        }
        all.extend_from_slice(lat);
        println!(
            "{:<22} {:>8} {:>6} {:>8.1} {:>8.1} {:>8.1} {:>8.1}",
            e,
            lat.len(),
            failed,
            pct(lat, 0.5),
            pct(lat, 0.9),
            pct(lat, 0.99),
            pct(lat, 1.0)
        );
    }
    all.sort();
    let failed: usize = stats.failed.values().sum();
    for f in &stats.first_failures {
        println!("failure: {f}");
    }
    let by_status: Vec<String> = stats
        .failure_statuses
        .iter()
        .map(|(s, n)| format!("{s}:{n}"))
        .collect();
    let secs = measured.as_secs_f64();
    let created: usize = stats.created_windows.iter().sum();
    let window = run.window.as_secs();
    // The last window may be cut short by the end of the run; one shorter than half a window
    // (the calls in flight at the deadline, answered after it) is left out of the list, where
    // its few answers over a few milliseconds would read as a rate. The totals count them.
    let windows: Vec<String> = stats
        .windows
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let length = (secs - (i as u64 * window) as f64).min(window as f64);
            (length >= window as f64 / 2.0).then(|| format!("{:.0}", *n as f64 / length))
        })
        .collect();
    println!(
        "{name}: {:.1} state-changing requests/s, {:.1} orders created/s over {secs:.0} s; p50 {:.1} ms, p90 {:.1} ms, p99 {:.1} ms; {failed} failed",
        writes as f64 / secs,
        created as f64 / secs,
        pct(&all, 0.5),
        pct(&all, 0.9),
        pct(&all, 0.99),
    );
    println!("writes/s per {window} s window: {}", windows.join(" "));
    let mut result = format!(
        "RESULT scenario={name} writes_per_s={:.1} creates_per_s={:.1} p50_ms={:.1} p99_ms={:.1} failed={failed} failed_by_status={} t0_ms={} windows={}",
        writes as f64 / secs,
        created as f64 / secs,
        pct(&all, 0.5),
        pct(&all, 0.99),
        if by_status.is_empty() { "-".to_owned() } else { by_status.join(",") },
        run.started_epoch_ms.get(),
        windows.join(",")
    );
    if let Some(arrivals) = arrivals {
        let arrivals = arrivals.borrow();
        let answered = run.answered.borrow();
        let mut lags = Vec::with_capacity(answered.len());
        let mut missing = 0;
        for (key, at) in answered.iter() {
            match arrivals.get(key) {
                Some(seen) => lags.push(seen.saturating_duration_since(*at)),
                None => {
                    missing += 1;
                    if missing <= 5 {
                        let since = at.duration_since(run.started.get().unwrap());
                        println!(
                            "never arrived: {} {} (answered {:.3} s into the run)",
                            key.0,
                            key.1,
                            since.as_secs_f64()
                        );
                    }
                }
            }
        }
        lags.sort();
        println!(
            "live stream: {} events followed, {missing} never arrived; delay after the answer p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            lags.len(),
            pct(&lags, 0.5),
            pct(&lags, 0.99),
            pct(&lags, 1.0)
        );
        result.push_str(&format!(
            " stream_missing={missing} stream_p99_ms={:.1} stream_max_ms={:.1}",
            pct(&lags, 0.99),
            pct(&lags, 1.0)
        ));
    }
    println!("{result}{extra}");
}

async fn closed_loop(run: Rc<Run>, common: &Common, mix: bool) {
    let cast = Rc::new(cast(&run, common).await);
    let arrivals = if common.watch {
        Some(watch(&run, &cast.supervisor).await)
    } else {
        None
    };
    let warmup = Instant::now() + Duration::from_secs(2);
    let deadline = warmup + Duration::from_secs(common.duration);
    if let Some(rate) = common.rate {
        let measured = open_loop(&run, &cast, mix, rate, (warmup, deadline)).await;
        if arrivals.is_some() {
            actix_web::rt::time::sleep(Duration::from_secs(2)).await;
        }
        let label = if mix { "mix" } else { "create" };
        report(
            &run,
            label,
            measured,
            arrivals,
            &format!(" at {rate}/s open loop"),
        );
        return;
    }
    let workers: Vec<_> = (0..common.connections)
        .map(|w| {
            let (run, cast) = (run.clone(), cast.clone());
            actix_web::rt::spawn(async move {
                let mut rng = SmallRng::seed_from_u64(cast.run_id * 1000 + w as u64);
                let mut n = w as u64 * 10_000_000;
                while Instant::now() < deadline {
                    if run.started.get().is_none() && Instant::now() >= warmup {
                        run.start_measuring(warmup);
                    }
                    n += 1;
                    one_call(&run, &cast, mix, &mut rng, n).await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let measured = Instant::now() - warmup;
    if arrivals.is_some() {
        actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    }
    report(
        &run,
        if mix { "mix" } else { "create" },
        measured,
        arrivals,
        "",
    );
}

/// The `n`th call of a run: a whole call of the mix, or one repair order for a new caller.
async fn one_call(run: &Run, cast: &Cast, mix: bool, rng: &mut SmallRng, n: u64) {
    if mix {
        let _ = call(run, cast, rng, n).await;
        return;
    }
    let area = &cast.areas[(n % 3) as usize];
    let body = order_body("repair", "no_power", area, phone(cast.run_id, n));
    if let Ok(order) = run
        .act(
            "POST /work-orders",
            "/api/v1/work-orders",
            &cast.agent,
            body,
            (201, Some("new")),
            Some("created"),
        )
        .await
    {
        run.created(&order);
    }
}

/// One call (a create, or a whole call of the mix) started every 1/`rate` s until the
/// deadline, each as its own task: a slow answer does not hold back the next start.
async fn open_loop(
    run: &Rc<Run>,
    cast: &Rc<Cast>,
    mix: bool,
    rate: f64,
    (warmup, deadline): (Instant, Instant),
) -> Duration {
    let pace = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let mut tasks = Vec::new();
    let mut due = Instant::now();
    let mut n: u64 = 0;
    while due < deadline {
        let now = Instant::now();
        if due > now {
            actix_web::rt::time::sleep(due - now).await;
        }
        if run.started.get().is_none() && Instant::now() >= warmup {
            run.start_measuring(warmup);
        }
        n += 1;
        let (run, cast) = (run.clone(), cast.clone());
        tasks.push(actix_web::rt::spawn(async move {
            let mut rng = SmallRng::seed_from_u64(cast.run_id * 1000 + n);
            one_call(&run, &cast, mix, &mut rng, n).await;
        }));
        due += pace;
    }
    for t in tasks {
        t.await.unwrap();
    }
    Instant::now() - warmup
}

async fn surge(run: Rc<Run>, common: &Common, calls: usize, seconds: u64) {
    let cast = Rc::new(cast(&run, common).await);
    let arrivals = if common.watch {
        Some(watch(&run, &cast.supervisor).await)
    } else {
        None
    };
    let outage = run
        .must(
            "/api/v1/outages",
            &run.bearer(&cast.dispatcher).await["Bearer ".len()..],
            json!({"area_codes": cast.surge_areas, "cause": "10kV 线路跳闸",
                   "started_at": chrono::Utc::now().to_rfc3339()}),
        )
        .await;
    let outage_id = outage["id"].as_str().unwrap().to_owned();
    let started = Instant::now();
    run.start_measuring(started);
    let pace = Duration::from_secs_f64(seconds as f64 / calls as f64);
    let late = Rc::new(Cell::new(Duration::ZERO));
    let in_flight = Rc::new(Cell::new(0usize));
    let most_in_flight = Rc::new(Cell::new(0usize));
    let mut tasks = Vec::with_capacity(calls);
    for i in 0..calls {
        let due = started + pace * i as u32;
        let now = Instant::now();
        if due > now {
            actix_web::rt::time::sleep(due - now).await;
        } else {
            late.set(late.get().max(now - due));
        }
        let (run, cast, in_flight, most) = (
            run.clone(),
            cast.clone(),
            in_flight.clone(),
            most_in_flight.clone(),
        );
        tasks.push(actix_web::rt::spawn(async move {
            in_flight.set(in_flight.get() + 1);
            most.set(most.get().max(in_flight.get()));
            let area = &cast.surge_areas[i % cast.surge_areas.len()];
            let body = order_body("repair", "no_power", area, phone(cast.run_id, i as u64));
            if let Ok(order) = run
                .act(
                    "POST /work-orders",
                    "/api/v1/work-orders",
                    &cast.agent,
                    body,
                    (201, Some("merged")),
                    Some("linked_to_outage"),
                )
                .await
            {
                run.created(&order);
            }
            in_flight.set(in_flight.get() - 1);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let measured = started.elapsed();
    let auth = run.bearer(&cast.dispatcher).await;
    let (_, o) = run
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/outages/{outage_id}"),
            Some(auth.clone()),
            None,
        )
        .await
        .unwrap();
    let linked = o["linked_count"].as_u64().unwrap_or(0);
    let t = Instant::now();
    let (status, body) = run
        .request(
            reqwest::Method::POST,
            &format!("/api/v1/outages/{outage_id}/restore"),
            Some(auth),
            Some(json!({})),
        )
        .await
        .unwrap();
    let restore = t.elapsed();
    assert_eq!(status, 200, "restore: {body}");
    if arrivals.is_some() {
        actix_web::rt::time::sleep(Duration::from_secs(2)).await;
    }
    println!(
        "surge: {calls} calls over {seconds} s (pace {:.1} ms); most in flight {}, the pacer ran at most {:.0} ms late; {linked} orders linked to the outage; restoring it (every linked order resolved) took {:.0} ms",
        ms(pace),
        most_in_flight.get(),
        ms(late.get()),
        ms(restore)
    );
    if linked as usize != calls && !run.tolerate_errors {
        eprintln!("expected {calls} linked orders, found {linked}");
        std::process::exit(1);
    }
    report(
        &run,
        "surge",
        measured,
        arrivals,
        &format!(" linked={linked} restore_ms={:.0}", ms(restore)),
    );
}

/// Checks one acknowledged order; a description of what is wrong, if anything.
async fn check_order(run: &Run, auth: &str, id: &str) -> Result<(), String> {
    let (status, order) = run
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/work-orders/{id}"),
            Some(auth.to_owned()),
            None,
        )
        .await?;
    if status != 200 {
        return Err(format!("{id}: GET answered {status} {order}"));
    }
    let (status, page) = run
        .request(
            reqwest::Method::GET,
            &format!("/api/v1/work-orders/{id}/events?limit=500"),
            Some(auth.to_owned()),
            None,
        )
        .await?;
    let events = page["items"].as_array().cloned().unwrap_or_default();
    if status != 200 || events.is_empty() {
        return Err(format!("{id}: no events ({status})"));
    }
    if events[0]["type"] != "created" {
        return Err(format!("{id}: first event is {}", events[0]["type"]));
    }
    let last_status = events
        .iter()
        .rev()
        .find_map(|e| e["to_status"].as_str())
        .unwrap_or_default();
    if order["status"].as_str() != Some(last_status) {
        return Err(format!(
            "{id}: status {} but the last transition event says {last_status}",
            order["status"]
        ));
    }
    let needs_timers = order["kind"] != "praise" && order["status"] != "merged";
    let timers = order["sla"].as_array().map_or(0, Vec::len);
    if needs_timers && timers == 0 {
        return Err(format!(
            "{id}: {} {} without timers",
            order["kind"], order["status"]
        ));
    }
    Ok(())
}

async fn verify(run: Rc<Run>, common: &Common, path: &std::path::Path) {
    let ids: Vec<String> = std::fs::read_to_string(path)
        .expect("acked file read")
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let auth = format!(
        "Bearer {}",
        run.login(&common.admin_user, &common.admin_password).await
    );
    let ids = Rc::new(ids);
    let next = Rc::new(Cell::new(0usize));
    let problems: Rc<RefCell<Vec<String>>> = Rc::default();
    let workers: Vec<_> = (0..common.connections)
        .map(|_| {
            let (run, ids, next, problems, auth) = (
                run.clone(),
                ids.clone(),
                next.clone(),
                problems.clone(),
                auth.clone(),
            );
            actix_web::rt::spawn(async move {
                loop {
                    let i = next.get();
                    if i >= ids.len() {
                        break;
                    }
                    next.set(i + 1);
                    if let Err(p) = check_order(&run, &auth, &ids[i]).await {
                        problems.borrow_mut().push(p);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    let problems = problems.borrow();
    for p in problems.iter().take(20) {
        println!("problem: {p}");
    }
    println!(
        "verify: {} acknowledged orders checked, {} lost or incomplete",
        ids.len(),
        problems.len()
    );
    println!(
        "RESULT scenario=verify checked={} bad={}",
        ids.len(),
        problems.len()
    );
    if !problems.is_empty() {
        std::process::exit(1);
    }
}

async fn helpdesk(run: Rc<Run>, common: &Common, token: String, queue: i64) {
    let warmup = Instant::now() + Duration::from_secs(2);
    let deadline = warmup + Duration::from_secs(common.duration);
    let auth = format!("Token {token}");
    let workers: Vec<_> = (0..common.connections)
        .map(|w| {
            let (run, auth) = (run.clone(), auth.clone());
            actix_web::rt::spawn(async move {
                let mut n = 0;
                while Instant::now() < deadline {
                    if run.started.get().is_none() && Instant::now() >= warmup {
                        run.start_measuring(warmup);
                    }
                    n += 1;
                    let body = json!({"queue": queue, "title": format!("停电 {w}-{n}"), "priority": 3,
                                      "description": "负荷测试来电", "submitter_email": "caller@example.com"});
                    let t = Instant::now();
                    let outcome = match run
                        .request(reqwest::Method::POST, "/api/tickets/", Some(auth.clone()), Some(body))
                        .await
                    {
                        Ok((201, body)) => Ok(body),
                        Ok((status, body)) => Err(format!("{status} {body}")),
                        Err(e) => Err(e),
                    };
                    if let Ok(ticket) = run.record("POST /api/tickets/", t.elapsed(), outcome, true) {
                        run.created(&ticket);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    report(&run, "helpdesk", Instant::now() - warmup, None, "");
}

fn main() {
    // `cargo bench` passes `--bench` to every bench binary.
    let args = std::env::args().filter(|a| a != "--bench");
    let cli = Cli::parse_from(args);
    let common = match &cli.scenario {
        Scenario::Create(c) | Scenario::Mix(c) | Scenario::Verify(c) => c,
        Scenario::Surge { common, .. } | Scenario::Helpdesk { common, .. } => common,
    }
    .clone();
    let acked_path = common.acked.clone();
    let verifying = matches!(cli.scenario, Scenario::Verify(_));
    let run = Rc::new(Run {
        http: reqwest::Client::builder()
            .pool_max_idle_per_host(1024)
            .build()
            .unwrap(),
        base: common.url.trim_end_matches('/').to_owned(),
        stats: RefCell::default(),
        started: Cell::new(None),
        started_epoch_ms: Cell::new(0),
        window: Duration::from_secs(common.window.max(1)),
        answered: RefCell::default(),
        watching: common.watch,
        acked: RefCell::new(common.acked.as_ref().filter(|_| !verifying).map(|p| {
            std::io::BufWriter::new(std::fs::File::create(p).expect("acked file created"))
        })),
        tolerate_errors: common.tolerate_errors,
    });
    actix_web::rt::System::new().block_on(async {
        match cli.scenario {
            Scenario::Create(_) => closed_loop(run.clone(), &common, false).await,
            Scenario::Verify(_) => {
                let path = acked_path.expect("verify needs --acked FILE");
                verify(run.clone(), &common, &path).await
            }
            Scenario::Mix(_) => closed_loop(run.clone(), &common, true).await,
            Scenario::Surge { calls, seconds, .. } => {
                surge(run.clone(), &common, calls, seconds).await
            }
            Scenario::Helpdesk { token, queue, .. } => {
                helpdesk(run.clone(), &common, token, queue).await
            }
        }
    });
    if let Some(file) = run.acked.borrow_mut().as_mut() {
        file.flush().expect("acked file flushed");
    };
}
