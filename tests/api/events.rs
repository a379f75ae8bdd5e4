//! Live events: the SSE stream and its pages — resume without gap or repeat while writers
//! commit concurrently (and one commits late, out of id order), scoping, tickets, the
//! per-user bound, heartbeats and the drain.

use crate::helpers::*;
use diesel::RunQueryDsl;
use gridcall::db::events::NewEvent;
use gridcall::domain::event_stream::Snapshot;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::time::Duration;

/// One Server-Sent Events frame.
#[derive(Debug, Default)]
struct Frame {
    id: Option<i64>,
    event: Option<String>,
    data: Option<Value>,
    comment: Option<String>,
}

/// A client reading an event stream frame by frame.
struct Sse {
    response: reqwest::Response,
    buffer: String,
}

impl Sse {
    async fn open(app: &TestApp, token: &str, last_event_id: Option<i64>) -> Sse {
        let mut req = app
            .client
            .get(format!("{}/api/v1/events/stream", app.base))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id.to_string());
        }
        let response = req.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-type"].to_str().unwrap(),
            "text/event-stream"
        );
        Sse {
            response,
            buffer: String::new(),
        }
    }

    /// The next frame, or None when the stream ended or nothing came within `wait`.
    async fn frame(&mut self, wait: Duration) -> Option<Frame> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let text: String = self.buffer.drain(..end + 2).collect();
                let mut frame = Frame::default();
                for line in text.lines() {
                    if let Some(c) = line.strip_prefix(':') {
                        frame.comment = Some(c.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("id: ") {
                        frame.id = Some(v.parse().unwrap());
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        frame.event = Some(v.to_owned());
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        frame.data = Some(serde_json::from_str(v).unwrap());
                    }
                }
                return Some(frame);
            }
            match tokio::time::timeout(wait, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(std::str::from_utf8(&bytes).unwrap()),
                _ => return None,
            }
        }
    }

    /// The next event frame, skipping comments and the retry hint.
    async fn event(&mut self, wait: Duration) -> Option<Frame> {
        loop {
            let f = self.frame(wait).await?;
            if f.id.is_some() {
                return Some(f);
            }
        }
    }
}

const WAIT: Duration = Duration::from_secs(10);

/// Every event id in the database, ascending.
fn all_event_ids(app: &TestApp) -> Vec<i64> {
    let mut conn = app.state.pool.get().unwrap();
    let mut ids = Vec::new();
    let mut after = 0;
    loop {
        let rows = gridcall::db::event_stream::between(&mut conn, after, i64::MAX, 1000).unwrap();
        if rows.is_empty() {
            return ids;
        }
        after = rows.last().unwrap().id;
        ids.extend(rows.iter().map(|r| r.id));
    }
}

/// Takes an event id, says so on `took`, and commits only when `release` says so: on
/// PostgreSQL the writers that commit meanwhile get higher ids that become visible first.
fn late_writer(
    app: &TestApp,
    order_id: String,
    took: std::sync::mpsc::Sender<()>,
    release: std::sync::mpsc::Receiver<()>,
) -> std::thread::JoinHandle<()> {
    let pool = app.state.pool.clone();
    std::thread::spawn(move || {
        let mut conn = pool.get().unwrap();
        gridcall::db::write_transaction(&mut conn, |c| {
            gridcall::db::events::insert(c, &note(&order_id, "late"))?;
            took.send(()).unwrap();
            release.recv().unwrap();
            Ok::<_, gridcall::errors::AppError>(())
        })
        .unwrap();
    })
}

/// Makes the instance's event hub read what is committed now (the loop does the same every
/// poll interval).
async fn hub_reads(app: &TestApp) {
    app.state.events.ready(WAIT).await.expect("the hub started");
    use gridcall::clock::Clock;
    app.state
        .events
        .run_once(&app.state.pool, app.clock.now())
        .await
        .unwrap();
}

#[actix_web::test]
async fn a_stream_resumes_without_gap_or_repeat_while_writers_commit() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let first = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await;
    let mut stream = Sse::open(&app, &c.supervisor, Some(0)).await;

    // One writer takes an id first and commits it late: on PostgreSQL once the others have
    // committed several orders above it (on SQLite, with one writer at a time, at once).
    let postgres = app.state.settings.database.url.starts_with("postgres");
    let (took, took_rx) = std::sync::mpsc::channel();
    let (release, release_rx) = std::sync::mpsc::channel();
    let late = late_writer(&app, first.clone(), took, release_rx);
    actix_web::rt::task::spawn_blocking(move || took_rx.recv().unwrap())
        .await
        .unwrap();
    if !postgres {
        release.send(()).unwrap();
    }

    // Four writers open orders and add notes while the reader reads.
    let (committed, mut committed_rx) = tokio::sync::watch::channel(0usize);
    let committed = std::sync::Arc::new(committed);
    let mut writers = Vec::new();
    for w in 0..4 {
        let (base, client, token) = (app.base.clone(), app.client.clone(), c.agent.clone());
        let committed = committed.clone();
        writers.push(actix_web::rt::spawn(async move {
            for i in 0..15 {
                let r = client
                    .post(format!("{base}/api/v1/work-orders"))
                    .bearer_auth(&token)
                    .json(
                        &json!({"kind": "repair", "channel": "phone", "force_new": true,
                        "caller": {"name": "李四", "phone": format!("1390000{w}{i:03}")},
                        "area_code": "SZ-FT-01", "description": "停电"}),
                    )
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                let id = r.json::<Value>().await.unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let r = client
                    .post(format!("{base}/api/v1/work-orders/{id}/notes"))
                    .bearer_auth(&token)
                    .json(&json!({"text": format!("第 {i} 次")}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                committed.send_modify(|n| *n += 1);
            }
        }));
    }
    if postgres {
        committed_rx.wait_for(|n| *n >= 8).await.unwrap();
        release.send(()).unwrap();
    }

    let mut seen: Vec<i64> = Vec::new();
    let mut data_ids = BTreeSet::new();
    for _ in 0..25 {
        let f = stream.event(WAIT).await.expect("an event");
        assert_eq!(f.data.as_ref().unwrap()["id"].as_i64(), f.id);
        assert_eq!(
            f.event.as_deref(),
            f.data.as_ref().unwrap()["type"].as_str()
        );
        data_ids.insert(f.id.unwrap());
        seen.push(f.id.unwrap());
    }
    // Disconnect mid-stream, and resume from the last event read.
    drop(stream);
    let mut stream = Sse::open(&app, &c.supervisor, seen.last().copied()).await;

    for w in writers {
        w.await.unwrap();
    }
    actix_web::rt::task::spawn_blocking(move || late.join().unwrap())
        .await
        .unwrap();
    let expected = all_event_ids(&app);
    // 1 + 60 orders with created + note, and the late note
    assert_eq!(expected.len(), 1 + 60 * 2 + 1);
    while seen.len() < expected.len() {
        let f = stream
            .event(WAIT)
            .await
            .unwrap_or_else(|| panic!("stream stalled after {} of {}", seen.len(), expected.len()));
        seen.push(f.id.unwrap());
    }
    assert!(
        seen.windows(2).all(|w| w[0] < w[1]),
        "ids in order, none repeated: {seen:?}"
    );
    assert_eq!(
        seen, expected,
        "every committed event, the late one included"
    );
    // Nothing more arrives.
    assert!(
        stream.event(Duration::from_millis(500)).await.is_none(),
        "no extra events"
    );

    // The same events as pages.
    let mut paged = Vec::new();
    let mut path = "/api/v1/events?after=0&limit=50".to_owned();
    loop {
        let p = app.get(&path, &c.supervisor).await.expect(200);
        paged.extend(
            p.body["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].as_i64().unwrap()),
        );
        match p.body["next_cursor"].as_str() {
            Some(cur) => path = format!("/api/v1/events?cursor={cur}&limit=50"),
            None => {
                assert_eq!(p.body["position"].as_i64(), expected.last().copied());
                break;
            }
        }
    }
    assert_eq!(paged, expected);
}

fn note(order_id: &str, text: &str) -> NewEvent {
    NewEvent {
        work_order_id: order_id.to_owned(),
        event_type: "note".into(),
        actor_id: None,
        actor_username: None,
        actor_role: None,
        from_status: None,
        to_status: None,
        reason: None,
        data: json!({"note": text}).to_string(),
        at: start_time().naive_utc(),
    }
}

#[actix_web::test]
async fn a_late_commit_by_a_writer_younger_than_the_last_commit_is_not_lost() {
    let app = spawn_app().await;
    if !app.state.settings.database.url.starts_with("postgres") {
        // SQLite admits one writer at a time: this interleaving cannot happen there.
        return;
    }
    let c = cast(&app).await;
    let order = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await;
    let created = app
        .get(
            &format!("/api/v1/work-orders/{order}/events"),
            &c.supervisor,
        )
        .await
        .expect(200)
        .body["items"][0]["id"]
        .as_i64();
    let mut stream = Sse::open(&app, &c.supervisor, created).await;
    // Tests running in parallel share the server's transaction ids, and their commits can
    // hide the hazard; repeat until one round had it (each round must lose nothing).
    let mut hazard_seen = false;
    for round in 0..5 {
        hazard_seen |= interleave_late_writer(&app, &order).await;
        for (n, writer) in [(0, "t2"), (1, "t1")] {
            let f = stream
                .event(WAIT)
                .await
                .unwrap_or_else(|| panic!("round {round}: event {n} missing"));
            assert_eq!(f.data.unwrap()["data"]["note"], writer, "round {round}");
        }
        if hazard_seen {
            break;
        }
    }
    if !hazard_seen {
        eprintln!("note: concurrent tests hid the snapshot hazard in every round");
    }
}

/// T1 gets its transaction id first, T2 second; T2 takes the lower event id, T1 the higher
/// one and commits; T2 commits later. True when, after T1's commit, a snapshot's `xmax` was
/// at or below T2's transaction id — T2 then is missing from its running list, and only the
/// gap's bound makes the stream wait for it.
async fn interleave_late_writer(app: &TestApp, order: &str) -> bool {
    let (t1_began, t1_began_rx) = std::sync::mpsc::channel::<()>();
    let (t2_took, t2_took_rx) = std::sync::mpsc::channel::<u64>();
    let (go, go_rx) = std::sync::mpsc::channel::<()>();
    let (pool1, pool2) = (app.state.pool.clone(), app.state.pool.clone());
    let (o1, o2) = (order.to_owned(), order.to_owned());
    let t1 = std::thread::spawn(move || {
        let mut conn = pool1.get().unwrap();
        let mut t2_xid = 0;
        gridcall::db::write_transaction(&mut conn, |c| {
            diesel::sql_query("SELECT pg_current_xact_id()").execute(c)?;
            t1_began.send(()).unwrap();
            t2_xid = t2_took_rx.recv().unwrap();
            gridcall::db::events::insert(c, &note(&o1, "t1"))
        })
        .unwrap();
        t2_xid
    });
    let t2 = std::thread::spawn(move || {
        t1_began_rx.recv().unwrap();
        let mut conn = pool2.get().unwrap();
        gridcall::db::write_transaction(&mut conn, |c| {
            gridcall::db::events::insert(c, &note(&o2, "t2"))?;
            let xid = gridcall::db::event_stream::new_transaction_id(c)?.unwrap();
            t2_took.send(xid).unwrap();
            go_rx.recv().unwrap();
            Ok::<_, gridcall::errors::AppError>(())
        })
        .unwrap();
    });
    let t2_xid = actix_web::rt::task::spawn_blocking(move || t1.join().unwrap())
        .await
        .unwrap();
    let pool = app.state.pool.clone();
    let snapshot = actix_web::rt::task::spawn_blocking(move || {
        gridcall::db::event_stream::current_snapshot(&mut pool.get().unwrap()).unwrap()
    })
    .await
    .unwrap();
    let hazard = matches!(snapshot, Snapshot::Concurrent { xmax, .. } if xmax <= t2_xid);
    // The hub reads several times while T2 is open: it sees the gap, takes its bound, and
    // must keep waiting.
    for _ in 0..3 {
        hub_reads(app).await;
    }
    go.send(()).unwrap();
    actix_web::rt::task::spawn_blocking(move || t2.join().unwrap())
        .await
        .unwrap();
    hazard
}

#[actix_web::test]
async fn a_new_stream_starts_at_the_newest_event_and_follows() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    app.new_order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await;
    // The hub passes the first order's event, so the stream starts after it.
    hub_reads(&app).await;
    let page = app.get("/api/v1/events", &c.supervisor).await.expect(200);
    assert_eq!(page.body["items"].as_array().unwrap().len(), 1);
    let mut stream = Sse::open(&app, &c.supervisor, None).await;
    let retry = stream.frame(WAIT).await.unwrap();
    assert!(retry.id.is_none());
    let second = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000001")
        .await;
    let f = stream.event(WAIT).await.unwrap();
    assert_eq!(f.event.as_deref(), Some("created"));
    assert_eq!(f.data.unwrap()["work_order_id"], second.as_str());
}

#[actix_web::test]
async fn streams_and_pages_are_scoped_to_crew_and_area() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    app.area("SZ-LG-02", "rural").await;
    let other_crew = app.crew("LG-C1", "field", &["SZ-LG-02"]).await;
    let other_member = app
        .user("crew2", "crew", json!({"crew_id": other_crew}))
        .await;
    let scoped = app
        .user("disp2", "dispatcher", json!({"area_codes": ["SZ-LG-02"]}))
        .await;
    // An order in FT dispatched to FT-C1, then reassigned to LG-C1.
    let ft = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await;
    app.act(
        &c.dispatcher,
        &ft,
        "dispatch",
        json!({"crew_id": c.field_crew}),
    )
    .await
    .expect(200);
    app.act(
        &c.dispatcher,
        &ft,
        "reassign",
        json!({"crew_id": other_crew, "reason": "距离更近"}),
    )
    .await
    .expect(200);
    // An order in LG.
    let lg = app
        .new_order(&c.agent, "repair", "SZ-LG-02", "13800000001")
        .await;
    // Scopes are the orders' as the events are read (plus the crews an event names).
    let mut crew_stream = Sse::open(&app, &c.field_member, Some(0)).await;
    let mut other_stream = Sse::open(&app, &other_member, Some(0)).await;
    let mut scoped_stream = Sse::open(&app, &scoped, Some(0)).await;

    // The first crew sees the dispatch to it and the reassignment away; not the creation
    // (the order was nobody's then and is another crew's now) nor the LG order.
    let types: Vec<String> = [
        crew_stream.event(WAIT).await.unwrap(),
        crew_stream.event(WAIT).await.unwrap(),
    ]
    .into_iter()
    .map(|f| f.event.unwrap())
    .collect();
    assert_eq!(types, ["dispatch", "reassign"]);
    assert!(crew_stream
        .event(Duration::from_millis(600))
        .await
        .is_none());

    // The second crew: the FT order is now theirs, so all its events, but not the LG
    // order, which no crew has yet.
    let mut theirs = Vec::new();
    while let Some(f) = other_stream.event(Duration::from_millis(800)).await {
        let d = f.data.unwrap();
        theirs.push((
            d["work_order_id"].as_str().unwrap().to_owned(),
            f.event.unwrap(),
        ));
    }
    assert_eq!(
        theirs,
        [
            (ft.clone(), "created".to_owned()),
            (ft.clone(), "dispatch".to_owned()),
            (ft.clone(), "reassign".to_owned())
        ]
    );

    // The LG dispatcher sees only LG's order.
    let f = scoped_stream.event(WAIT).await.unwrap();
    assert_eq!(f.data.unwrap()["work_order_id"], lg.as_str());
    assert!(scoped_stream
        .event(Duration::from_millis(600))
        .await
        .is_none());

    // Pages agree.
    let page = app.get("/api/v1/events?after=0", &scoped).await.expect(200);
    let items = page.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["work_order_id"], lg.as_str());
    let page = app
        .get("/api/v1/events?after=0", &c.field_member)
        .await
        .expect(200);
    assert_eq!(page.body["items"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn browser_tickets_are_single_use_and_expire() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let stream_url = |ticket: &str| format!("{}/api/v1/events/stream?ticket={ticket}", app.base);

    let t = app
        .post("/api/v1/events/ticket", &c.dispatcher, json!({}))
        .await
        .expect(201);
    let ticket = t.body["ticket"].as_str().unwrap().to_owned();
    assert!(t.body["expires_at"].is_string());
    // No Authorization header: the ticket is the credential.
    let mut first = app.client.get(stream_url(&ticket)).send().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.chunk().await.unwrap().is_some());
    let again = app.client.get(stream_url(&ticket)).send().await.unwrap();
    assert_eq!(again.status(), 401);
    let body: Value = again.json().await.unwrap();
    assert_eq!(body["code"], "invalid_ticket");

    let t = app
        .post("/api/v1/events/ticket", &c.dispatcher, json!({}))
        .await
        .expect(201);
    app.clock.advance(chrono::TimeDelta::seconds(61));
    let late = app
        .client
        .get(stream_url(t.body["ticket"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 401);

    // Never a JWT in a URL; no credentials at all is 401.
    let r = app
        .client
        .get(format!(
            "{}/api/v1/events/stream?access_token={}",
            app.base, c.dispatcher
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = app
        .call(
            reqwest::Method::GET,
            "/api/v1/events/stream",
            None,
            None,
            &[],
        )
        .await
        .expect(401);
    assert!(r.is_problem());
    let r = app
        .call(
            reqwest::Method::POST,
            "/api/v1/events/ticket",
            None,
            None,
            &[],
        )
        .await
        .expect(401);
    assert!(r.is_problem());
}

#[actix_web::test]
async fn streams_per_user_are_bounded() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(Sse::open(&app, &c.dispatcher, None).await);
    }
    let refused = app
        .get("/api/v1/events/stream", &c.dispatcher)
        .await
        .expect(429);
    assert!(refused.is_problem());
    assert_eq!(refused.body["code"], "too_many_streams");
    assert!(refused.header("retry-after").is_some());
    // Another user is not affected.
    let _other = Sse::open(&app, &c.supervisor, None).await;
    // Closing one frees a place: the next request makes the streams write, which ends the
    // closed one.
    drop(open.pop());
    Sse::open(&app, &c.dispatcher, None).await;
}

#[actix_web::test]
async fn idle_streams_get_heartbeats_and_end_on_drain() {
    let app = spawn_app_with(|s| s.events.heartbeat_secs = 1).await;
    let c = cast(&app).await;
    let mut stream = Sse::open(&app, &c.dispatcher, None).await;
    let mut heartbeat = false;
    while let Some(f) = stream.frame(Duration::from_secs(3)).await {
        if f.comment.as_deref() == Some("heartbeat") {
            heartbeat = true;
            break;
        }
    }
    assert!(heartbeat, "a heartbeat comment within 3 s");
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("gridcall_event_streams 1"), "{metrics}");
    assert!(
        metrics.contains("gridcall_event_stream_position 0"),
        "{metrics}"
    );
    // The instance drains: the stream says so and ends.
    app.state.events.close();
    let mut last_comment = None;
    while let Some(f) = stream.frame(Duration::from_secs(5)).await {
        last_comment = f.comment.or(last_comment);
    }
    assert!(
        last_comment.is_some_and(|c| c.contains("Last-Event-ID")),
        "the stream ends with a reconnect hint"
    );
    // A new stream while draining ends at once and asks the browser to retry (an error
    // status would make EventSource give up for good).
    let r = app
        .client
        .get(format!("{}/api/v1/events/stream", app.base))
        .bearer_auth(&c.dispatcher)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body = r.text().await.unwrap();
    assert!(body.starts_with("retry: "), "{body}");
    assert!(body.contains("reconnect with Last-Event-ID"), "{body}");
}

#[actix_web::test]
async fn bad_positions_are_rejected() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    for path in [
        "/api/v1/events?after=-1",
        "/api/v1/events?after=abc",
        "/api/v1/events?cursor=nonsense",
        "/api/v1/events?nope=1",
        "/api/v1/events/stream?after=-5",
    ] {
        let r = app.get(path, &c.supervisor).await;
        assert_eq!(r.status, 400, "{path}: {}", r.body);
        assert!(r.is_problem(), "{path}");
    }
    app.get("/api/v1/events?limit=501", &c.supervisor)
        .await
        .expect(422);
    let r = app
        .call(
            reqwest::Method::GET,
            "/api/v1/events/stream",
            Some(&c.supervisor),
            None,
            &[("Last-Event-ID", "x1")],
        )
        .await
        .expect(400);
    assert!(r.is_problem());
}

#[actix_web::test]
async fn a_deactivated_users_stream_ends_at_the_next_heartbeat() {
    let app = spawn_app_with(|s| s.events.heartbeat_secs = 1).await;
    let c = cast(&app).await;
    let me = app.get("/api/v1/auth/me", &c.supervisor).await.body;
    let mut stream = Sse::open(&app, &c.supervisor, None).await;
    app.patch(
        &format!("/api/v1/users/{}", me["id"].as_str().unwrap()),
        &app.admin,
        json!({"active": false}),
    )
    .await
    .expect(200);
    let mut last_comment = None;
    let mut ended = false;
    for _ in 0..10 {
        match stream.frame(Duration::from_secs(3)).await {
            Some(f) => last_comment = f.comment.or(last_comment),
            None => {
                ended = true;
                break;
            }
        }
    }
    assert!(ended, "the stream ended");
    assert_eq!(last_comment.as_deref(), Some("access withdrawn"));
}

/// At the maximum rate every pooled connection is taken most of the time. A stream's
/// heartbeat bookkeeping (recording it, re-reading the user's rights) then waits for one, and
/// so would the hub's read: neither may hold up the events (a supervisor's stream lagged up to
/// 1.3 s behind SQLite's mix while its touch waited).
#[actix_web::test]
async fn events_flow_while_every_pooled_connection_is_taken() {
    let app = spawn_app_with(|s| {
        s.events.heartbeat_secs = 1;
        s.database.pool_size = 4;
        s.database.pool_timeout_secs = 20;
    })
    .await;
    let c = cast(&app).await;
    let order = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await;
    hub_reads(&app).await;
    let mut stream = Sse::open(&app, &c.supervisor, None).await;
    // Every connection of the pool, held by the test.
    let mut held = Vec::new();
    while let Ok(conn) = app.state.pool.get_timeout(Duration::from_millis(200)) {
        held.push(conn);
    }
    assert_eq!(held.len(), 4, "the whole pool is held");
    // The heartbeat comes first; its bookkeeping now waits for a connection.
    let mut heartbeat = false;
    for _ in 0..5 {
        let Some(f) = stream.frame(Duration::from_secs(3)).await else {
            break;
        };
        if f.comment.as_deref() == Some("heartbeat") {
            heartbeat = true;
            break;
        }
    }
    assert!(heartbeat, "a heartbeat within 3 s");
    gridcall::db::write_transaction(&mut held[0], |c| {
        gridcall::db::events::insert(c, &note(&order, "while the pool is taken"))
    })
    .unwrap();
    // The hub reads on its own connection and the stream delivers at once, long before the
    // bookkeeping's wait for a connection (20 s) ends.
    let f = stream
        .event(Duration::from_secs(5))
        .await
        .expect("the event arrives while the pool is taken");
    assert_eq!(f.event.as_deref(), Some("note"));
    assert_eq!(f.data.unwrap()["work_order_id"], order.as_str());
    drop(held);
}
