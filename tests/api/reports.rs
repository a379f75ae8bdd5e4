//! Reports and scorecards over a small history built through the API, with every expected
//! number worked out by hand from that history.

use crate::helpers::{cast, spawn_app, start_time, Cast, TestApp};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

/// The history, minutes after `start_time()` (10:00 Shanghai, 2026-11-22), area SZ-FT-01
/// (urban: dispatch 5 min, accept 5 min, arrival 45 min, restore 3 h, callback 24 h):
/// - A: dispatched to C1 at 2, accepted 4, arrives 30, resolved 90, callback satisfied 120.
/// - B: dispatched to C1 at 3, reassigned to C2 at 10, C2 accepts 12, arrives 60 (late),
///   resolves 100, callback very unsatisfied 110 (reopened); dispatched to C1 at 112,
///   accepted 114, arrives 140, resolved 150; its second callback is still open.
/// - C: opened at 15, dispatched to C2 at 17, returned by C2 at 20 (new again).
/// - a complaint naming C1 as its subject, a praise naming C2 (at 0).
struct History {
    c: Cast,
    c2: String,
    a: String,
    b: String,
}

fn at(minutes: i64) -> DateTime<Utc> {
    start_time() + TimeDelta::minutes(minutes)
}

async fn step(app: &TestApp, minutes: i64, token: &str, id: &str, action: &str, body: Value) {
    app.clock.set(at(minutes));
    app.act(token, id, action, body).await.expect(200);
}

async fn history(app: &TestApp) -> History {
    let c = cast(app).await;
    let c2 = app.crew("FT-C2", "field", &["SZ-FT-01"]).await;
    let member2 = app
        .user("crew2", "crew", json!({"crew_id": c2.clone()}))
        .await;
    app.clock.set(at(0));
    let a = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000001")
        .await;
    let b = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000002")
        .await;
    for (kind, crew) in [("complaint", &c.field_crew), ("praise", &c2)] {
        app.post(
            "/api/v1/work-orders",
            &c.agent,
            json!({"kind": kind, "channel": "phone", "caller": {"name": "李四", "phone": "13900000003"},
                   "area_code": "SZ-FT-01", "description": "关于抢修班组", "subject_crew_id": crew, "force_new": true}),
        )
        .await
        .expect(201);
    }
    let d = &c.dispatcher;
    let (m1, fc) = (&c.field_member, &c.field_crew);
    step(app, 2, d, &a, "dispatch", json!({"crew_id": fc})).await;
    step(app, 3, d, &b, "dispatch", json!({"crew_id": fc})).await;
    step(app, 4, m1, &a, "accept", json!({})).await;
    step(app, 5, m1, &a, "depart", json!({})).await;
    step(
        app,
        10,
        d,
        &b,
        "reassign",
        json!({"crew_id": c2, "reason": "就近"}),
    )
    .await;
    step(app, 12, &member2, &b, "accept", json!({})).await;
    step(app, 13, &member2, &b, "depart", json!({})).await;
    app.clock.set(at(15));
    let c3 = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000004")
        .await;
    step(app, 17, d, &c3, "dispatch", json!({"crew_id": c2})).await;
    step(app, 20, &member2, &c3, "reject", json!({"reason": "太远"})).await;
    step(app, 30, m1, &a, "arrive", json!({})).await;
    step(app, 60, &member2, &b, "arrive", json!({})).await;
    step(
        app,
        90,
        m1,
        &a,
        "resolve",
        json!({"resolution": "更换熔断器"}),
    )
    .await;
    step(
        app,
        100,
        &member2,
        &b,
        "resolve",
        json!({"resolution": "复电"}),
    )
    .await;
    step(
        app,
        110,
        &c.agent,
        &b,
        "callback",
        json!({"satisfaction": "very_unsatisfied"}),
    )
    .await;
    step(app, 112, d, &b, "dispatch", json!({"crew_id": fc})).await;
    step(app, 114, m1, &b, "accept", json!({})).await;
    step(app, 115, m1, &b, "depart", json!({})).await;
    step(
        app,
        120,
        &c.agent,
        &a,
        "callback",
        json!({"satisfaction": "satisfied"}),
    )
    .await;
    step(app, 140, m1, &b, "arrive", json!({})).await;
    step(
        app,
        150,
        m1,
        &b,
        "resolve",
        json!({"resolution": "再次复电"}),
    )
    .await;
    app.clock.set(at(200));
    History { c, c2, a, b }
}

fn period() -> String {
    "from=2026-11-22T00:00:00%2B08:00&to=2026-11-23T00:00:00%2B08:00".to_owned()
}

fn row<'a>(rows: &'a Value, key: Option<&str>) -> &'a Value {
    rows["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["key"].as_str() == key)
        .unwrap_or_else(|| panic!("no row {key:?} in {rows}"))
}

fn counts(r: &Value) -> [i64; 7] {
    [
        "total",
        "met",
        "breached",
        "stopped",
        "excused",
        "open_running",
        "open_breached",
    ]
    .map(|k| r[k].as_i64().unwrap())
}

fn pcts(r: &Value) -> [Option<i64>; 3] {
    ["p50_minutes", "p90_minutes", "p99_minutes"].map(|k| r[k].as_i64())
}

#[actix_web::test]
async fn sla_report_by_crew_credits_the_crew_that_did_the_work() {
    let app = spawn_app().await;
    let h = history(&app).await;
    let sup = &h.c.supervisor;
    let r = app
        .get(
            &format!("/api/v1/reports/sla?{}&group_by=crew", period()),
            sup,
        )
        .await
        .expect(200);
    // C1: A accept 2, arrival 30, restore 60, callback 30; B accept#1 stopped by the reassign
    // after 7; B (reopened) arrival#2 30, accept#3 2, restore#2 10; B callback#2 open.
    // Ended minutes sorted: 2 2 7 10 30 30 30 60 (n=8): p50 rank 4 → 10, p90 rank 8 → 60.
    let c1 = row(&r.body, Some(&h.c.field_crew));
    assert_eq!(counts(c1), [9, 7, 0, 1, 0, 1, 0]);
    assert_eq!(c1["compliance_rate"], json!(1.0));
    assert_eq!(pcts(c1), [Some(10), Some(60), Some(60)]);
    assert_eq!(c1["label"], "班组 FT-C1");
    // C2 keeps its credit after the reassign and the reopen: accept#2 2, arrival#1 60
    // (breached), restore#1 40, callback#1 10; and C's accept#1, stopped by its return after
    // 3. Sorted 2 3 10 40 60 (n=5): p50 rank 3 → 10, p90 rank 5 → 60.
    let c2 = row(&r.body, Some(&h.c2));
    assert_eq!(counts(c2), [5, 3, 1, 1, 0, 0, 0]);
    assert_eq!(c2["compliance_rate"], json!(0.75));
    assert_eq!(pcts(c2), [Some(10), Some(60), Some(60)]);
    // Credited to no crew: four dispatches (2, 3, 2, 2 minutes), C's second dispatch and its
    // arrival (open, C has no crew now) and the complaint's open contact and reply.
    // Sorted 2 2 2 3: p50 rank 2 → 2, p90 rank 4 → 3.
    let none = row(&r.body, None);
    assert_eq!(counts(none), [8, 4, 0, 0, 0, 4, 0]);
    assert_eq!(pcts(none), [Some(2), Some(3), Some(3)]);
    assert_eq!(
        r.body["rows"].as_array().unwrap().last().unwrap()["key"],
        Value::Null,
        "the uncredited row comes last"
    );

    // by stage: arrival has A 30 (met), B#1 60 (breached), B#2 30 (met), C's still open
    let r = app
        .get(
            &format!("/api/v1/reports/sla?{}&group_by=stage", period()),
            sup,
        )
        .await
        .expect(200);
    let arrival = row(&r.body, Some("arrival"));
    assert_eq!(counts(arrival), [4, 2, 1, 0, 0, 1, 0]);
    assert_eq!(arrival["compliance_rate"], json!(0.6667));
    assert_eq!(pcts(arrival), [Some(30), Some(60), Some(60)]);
    assert_eq!(arrival["label"], "到达现场");

    // by day (local date), one kind, one stage
    let r = app
        .get(
            &format!(
                "/api/v1/reports/sla?{}&group_by=day&kind=repair&stage=restore",
                period()
            ),
            sup,
        )
        .await
        .expect(200);
    let rows = r.body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["key"], "2026-11-22");
    assert_eq!(counts(&rows[0]), [3, 3, 0, 0, 0, 0, 0]);
    // restores 60, 40, 10: sorted 10 40 60 → p50 40
    assert_eq!(pcts(&rows[0]), [Some(40), Some(60), Some(60)]);

    // the area filter: an area outside the data gives no rows; by priority all are normal
    app.area("SZ-NS-01", "rural").await;
    let r = app
        .get(
            &format!(
                "/api/v1/reports/sla?{}&group_by=priority&area_code=SZ-NS-01",
                period()
            ),
            sup,
        )
        .await
        .expect(200);
    assert_eq!(r.body["rows"], json!([]));
    let _ = (&h.a, &h.b);
}

#[actix_web::test]
async fn crew_scores_from_the_history() {
    let app = spawn_app().await;
    let h = history(&app).await;
    let r = app
        .get(
            &format!("/api/v1/reports/crews?{}", period()),
            &h.c.supervisor,
        )
        .await
        .expect(200);
    let rows = r.body["rows"].as_array().unwrap();
    let by = |id: &str| rows.iter().find(|r| r["crew_id"] == id).unwrap().clone();
    let c1 = by(&h.c.field_crew);
    // C1: arrivals 2 of 2, restores 2 of 2, callbacks 1 of 1 satisfied, orders {A, B} none
    // reopened after its resolve, 1 complaint → 50 per 100, 3 dispatches, no return.
    assert_eq!(
        c1["parts"],
        json!({"on_time_arrival_rate": 1.0, "resolve_in_target_rate": 1.0, "satisfaction_rate": 1.0,
               "reopen_rate": 0.0, "complaints_per_100": 50.0, "reject_rate": 0.0})
    );
    assert_eq!(
        (c1["orders"].as_i64(), c1["praise"].as_i64()),
        (Some(2), Some(0))
    );
    assert_eq!(c1["sample_ok"], false);
    // C2: arrival 0 of 1, restore 1 of 1, its callback very unsatisfied, its one order
    // reopened, no complaint, 2 dispatches (B's reassign, C) and 1 return (C), the praise.
    let c2 = by(&h.c2);
    assert_eq!(
        c2["parts"],
        json!({"on_time_arrival_rate": 0.0, "resolve_in_target_rate": 1.0, "satisfaction_rate": 0.0,
               "reopen_rate": 1.0, "complaints_per_100": 0.0, "reject_rate": 0.5})
    );
    assert_eq!(
        (c2["orders"].as_i64(), c2["praise"].as_i64()),
        (Some(1), Some(1))
    );
    // Scores with the shipped weights (0.30 0.20 0.25 0.10 0.10 0.05, cap 10 per 100,
    // shrinkage 5 toward the order-weighted average of field crews at home in SZ-FT-01):
    // C1 raw = 0.30 + 0.20 + 0.25 + 0.10·1 + 0.10·0 + 0.05 = 0.90;
    // C2 raw = 0 + 0.20 + 0 + 0.10·0 + 0.10·1 + 0.05·0.5 = 0.325;
    // peer = (2·0.90 + 1·0.325) / 3 = 0.708333;
    // C1 = (2·0.90 + 5·0.708333) / 7 = 0.763095; C2 = (0.325 + 5·0.708333) / 6 = 0.644444.
    let score = |r: &Value| r["score"].as_f64().unwrap();
    assert!((score(&c1) - 0.7631).abs() < 1e-4, "{c1}");
    assert!((score(&c2) - 0.6444).abs() < 1e-4, "{c2}");
    assert_eq!(c1["rank"], 1);
    assert_eq!(c2["rank"], 2);
    let unit = by(&h.c.unit);
    assert_eq!(unit["score"], Value::Null, "no data, no score");
    assert_eq!(unit["rank"], 3);
}

#[actix_web::test]
async fn backlog_and_breaches() {
    let app = spawn_app().await;
    let h = history(&app).await;
    let sup = &h.c.supervisor;
    // at 200 minutes: B resolved (callback running, 200 min old → 1-4h), the complaint and
    // C new (timers running), the praise new (no timers); A is closed.
    let r = app.get("/api/v1/reports/backlog", sup).await.expect(200);
    // orders without a timer ("none") sort before those with one
    assert_eq!(
        r.body["rows"],
        json!([
            {"status": "new", "age_bucket": "1-4h", "sla_state": "none", "count": 1},
            {"status": "new", "age_bucket": "1-4h", "sla_state": "running", "count": 2},
            {"status": "resolved", "age_bucket": "1-4h", "sla_state": "running", "count": 1},
        ])
    );
    let r = app
        .get(&format!("/api/v1/reports/breaches?{}", period()), sup)
        .await
        .expect(200);
    let items = r.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{}", r.body);
    assert_eq!(items[0]["work_order_id"], h.b);
    assert_eq!(items[0]["stage"], "arrival");
    assert_eq!(items[0]["crew_id"], h.c2);
    // due at 45, arrived at 60
    assert_eq!(items[0]["overdue_minutes"], 15);
    assert_eq!(items[0]["excused"], false);
    assert_eq!(r.body["next_cursor"], Value::Null);
}

#[actix_web::test]
async fn csv_has_the_json_rows_and_escapes_formulas() {
    let app = spawn_app().await;
    let h = history(&app).await;
    app.patch(
        "/api/v1/areas/SZ-FT-01",
        &app.admin,
        json!({"name": "=HYPERLINK(\"x\")"}),
    )
    .await
    .expect(200);
    for (path, field) in [
        (
            format!("/api/v1/reports/sla?{}&group_by=area", period()),
            "rows",
        ),
        (
            format!("/api/v1/reports/sla?{}&group_by=crew", period()),
            "rows",
        ),
        (format!("/api/v1/reports/crews?{}", period()), "rows"),
        ("/api/v1/reports/backlog".to_owned(), "rows"),
        (format!("/api/v1/reports/breaches?{}", period()), "items"),
    ] {
        let json = app.get(&path, &h.c.supervisor).await.expect(200);
        let csv = app
            .client
            .get(format!("{}{path}", app.base))
            .bearer_auth(&h.c.supervisor)
            .header("accept", "text/csv")
            .send()
            .await
            .unwrap();
        assert_eq!(csv.status(), 200);
        assert!(csv.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv"));
        let text = csv.text().await.unwrap();
        let mut reader = csv_reader(&text);
        let header: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
        let rows: Vec<Vec<String>> = reader
            .records()
            .map(|r| r.unwrap().iter().map(String::from).collect())
            .collect();
        let expected = json.body[field].as_array().unwrap();
        assert_eq!(rows.len(), expected.len(), "{path}");
        for (cells, obj) in rows.iter().zip(expected) {
            for (name, cell) in header.iter().zip(cells) {
                let v = name
                    .split('.')
                    .try_fold(obj, |v, k| v.get(k))
                    .unwrap_or(&Value::Null);
                let want = match v {
                    Value::Null => String::new(),
                    Value::String(s) if s.starts_with(['=', '+', '-', '@']) => format!("'{s}"),
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                assert_eq!(cell, &want, "{path} column {name}");
            }
        }
        if path.contains("group_by=area") {
            assert_eq!(rows[0][1], "'=HYPERLINK(\"x\")");
        }
        if path.contains("reports/crews") {
            assert!(header.contains(&"parts.satisfaction_rate".to_owned()));
        }
    }
}

fn csv_reader(text: &str) -> csv::Reader<&[u8]> {
    csv::Reader::from_reader(text.as_bytes())
}

#[actix_web::test]
async fn report_filters_are_checked_and_roles_kept_out() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let sup = &c.supervisor;
    for (query, field) in [
        ("group_by=crew&to=2026-11-23T00:00:00Z", "from"),
        (
            "from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00Z&group_by=team",
            "group_by",
        ),
        (
            "from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00Z",
            "group_by",
        ),
        (
            "from=2026-11-23T00:00:00Z&to=2026-11-22T00:00:00Z&group_by=day",
            "to",
        ),
        (
            "from=2025-01-01T00:00:00Z&to=2026-11-22T00:00:00Z&group_by=day",
            "to",
        ),
        (
            "from=yesterday&to=2026-11-22T00:00:00Z&group_by=day",
            "from",
        ),
        (
            "from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00Z&group_by=day&kind=fault",
            "kind",
        ),
        (
            "from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00Z&group_by=day&stage=arrive",
            "stage",
        ),
        (
            "from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00Z&group_by=day&area_code=NOPE",
            "area_code",
        ),
    ] {
        let r = app
            .get(&format!("/api/v1/reports/sla?{query}"), sup)
            .await
            .expect(422);
        assert!(r.is_problem());
        assert_eq!(r.body["errors"][0]["field"], field, "{query}: {}", r.body);
    }
    let q = "from=2026-11-22T00:00:00Z&to=2026-11-23T00:00:00Z";
    let routes = [
        format!("/api/v1/reports/sla?{q}&group_by=crew"),
        format!("/api/v1/reports/crews?{q}"),
        "/api/v1/reports/backlog".to_owned(),
        format!("/api/v1/reports/breaches?{q}"),
        "/api/v1/scorecards/2026-11".to_owned(),
    ];
    for route in &routes {
        for token in [&c.agent, &c.dispatcher, &c.field_member] {
            app.get(route, token).await.expect(403);
        }
        app.get(route, sup).await.expect(200);
        app.get(route, &app.admin).await.expect(200);
        app.get(route, "not-a-token").await.expect(401);
    }
    // closing and reopening months: never agents, dispatchers or crews
    for token in [&c.agent, &c.dispatcher, &c.field_member] {
        app.post("/api/v1/scorecards/2026-10/close", token, json!({}))
            .await
            .expect(403);
        app.post(
            "/api/v1/scorecards/2026-10/reopen",
            token,
            json!({"reason": "x"}),
        )
        .await
        .expect(403);
    }
    app.post("/api/v1/scorecards/2026-10/close", "not-a-token", json!({}))
        .await
        .expect(401);
    // a supervisor scoped to another area sees none of SZ-FT-01 and may not ask for it
    app.area("SZ-NS-01", "rural").await;
    let scoped = app
        .user("super2", "supervisor", json!({"area_codes": ["SZ-NS-01"]}))
        .await;
    let r = app
        .get(&format!("/api/v1/reports/crews?{q}"), &scoped)
        .await
        .expect(200);
    assert_eq!(r.body["rows"], json!([]));
    app.get(
        &format!("/api/v1/reports/sla?{q}&group_by=area&area_code=SZ-FT-01"),
        &scoped,
    )
    .await
    .expect(403);
    let r = app
        .get("/api/v1/scorecards/2026-11", &scoped)
        .await
        .expect(200);
    assert_eq!(r.body["rows"], json!([]));
    app.post("/api/v1/scorecards/2026-10/close", &scoped, json!({}))
        .await
        .expect(403);
    app.get("/api/v1/scorecards/2026-13", sup).await.expect(400);
}

#[actix_web::test]
async fn a_closed_month_is_frozen_until_an_admin_reopens_it() {
    let app = spawn_app().await;
    let h = history(&app).await;
    let sup = &h.c.supervisor;
    app.post("/api/v1/scorecards/2026-11/close", sup, json!({}))
        .await
        .expect(409);
    let open = app.get("/api/v1/scorecards/2026-11", sup).await.expect(200);
    assert_eq!(open.body["status"], "open");
    // December 1st, 00:00 in Shanghai
    app.clock
        .set("2026-11-30T16:00:00Z".parse::<DateTime<Utc>>().unwrap());
    let closed = app
        .post("/api/v1/scorecards/2026-11/close", sup, json!({}))
        .await
        .expect(200);
    assert_eq!(closed.body["status"], "closed");
    assert_eq!(closed.body["rows"], open.body["rows"]);
    let r = app
        .post("/api/v1/scorecards/2026-11/close", sup, json!({}))
        .await
        .expect(409);
    assert_eq!(r.body["code"], "already_closed");

    // A force-majeure window declared afterwards over B's late arrival changes the live
    // numbers, not the closed month.
    app.post(
        "/api/v1/sla/pauses",
        sup,
        json!({"area_codes": ["SZ-FT-01"], "starts_at": at(30).to_rfc3339(), "ends_at": at(55).to_rfc3339(), "reason": "台风"}),
    )
    .await
    .expect(201);
    let live = app
        .get(
            "/api/v1/reports/crews?from=2026-11-01T00:00:00%2B08:00&to=2026-12-01T00:00:00%2B08:00",
            sup,
        )
        .await
        .expect(200);
    let c2_live = live.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["crew_id"] == h.c2)
        .unwrap()
        .clone();
    assert_ne!(c2_live["parts"]["on_time_arrival_rate"], json!(0.0));
    let frozen = app.get("/api/v1/scorecards/2026-11", sup).await.expect(200);
    assert_eq!(frozen.body["rows"], closed.body["rows"]);
    assert_eq!(frozen.body["closed_at"], closed.body["closed_at"]);

    // only an admin reopens, with a reason; the month is then live again
    app.post(
        "/api/v1/scorecards/2026-11/reopen",
        sup,
        json!({"reason": "复核"}),
    )
    .await
    .expect(403);
    app.post("/api/v1/scorecards/2026-11/reopen", &app.admin, json!({}))
        .await
        .expect(422);
    let reopened = app
        .post(
            "/api/v1/scorecards/2026-11/reopen",
            &app.admin,
            json!({"reason": "复核台风期间考核"}),
        )
        .await
        .expect(200);
    assert_eq!(reopened.body["status"], "open");
    let c2_reopened = reopened.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["crew_id"] == h.c2)
        .unwrap()
        .clone();
    assert_eq!(c2_reopened["parts"], c2_live["parts"]);
    app.post(
        "/api/v1/scorecards/2026-11/reopen",
        &app.admin,
        json!({"reason": "again"}),
    )
    .await
    .expect(409);
}

/// Every report over a period read from the rows themselves (a partial day) equals the same
/// report over a period served by day and month roll-ups — before the roll-up job ran, after
/// it, after changes it has not folded yet (a reopen, an approved appeal), and after again.
#[actix_web::test]
async fn roll_ups_give_the_same_reports_as_the_rows() {
    let app = spawn_app().await;
    let h = history(&app).await;
    let sup = h.c.supervisor.clone();
    let raw = "from=2026-11-22T01:30:00Z&to=2026-11-22T07:00:00Z";
    let wide = "from=2026-10-15T03:00:00Z&to=2026-12-02T05:00:00Z";
    let compare = |label: &'static str| {
        let (app, sup) = (&app, &sup);
        async move {
            for q in [
                "reports/sla?group_by=crew",
                "reports/sla?group_by=area",
                "reports/sla?group_by=kind",
                "reports/sla?group_by=priority",
                "reports/sla?group_by=stage",
                "reports/sla?group_by=day",
                "reports/sla?group_by=crew&stage=arrival",
                "reports/sla?group_by=stage&kind=repair&area_code=SZ-FT-01",
                "reports/crews?area_code=SZ-FT-01",
            ] {
                let a = app
                    .get(&format!("/api/v1/{q}&{raw}"), sup)
                    .await
                    .expect(200);
                let b = app
                    .get(&format!("/api/v1/{q}&{wide}"), sup)
                    .await
                    .expect(200);
                assert_eq!(a.body, b.body, "{label}: {q}");
                assert!(!a.body["rows"].as_array().unwrap().is_empty(), "{q}");
            }
        }
    };
    compare("before the job").await;
    let folded = app.roll_up();
    assert!(folded.instances > 0 && folded.credits > 0, "{folded:?}");
    compare("after the job").await;
    assert_eq!(app.roll_up(), Default::default(), "nothing left to fold");

    // changes the job has not seen: a reopened order and an excused breach
    app.clock.set(at(210));
    app.act(&h.c.agent, &h.a, "reopen", json!({"reason": "又停电了"}))
        .await
        .expect(200);
    // C1 resolves A a second time: still one order for C1, and a reworked one
    let (d, m1, fc) = (&h.c.dispatcher, &h.c.field_member, &h.c.field_crew);
    step(&app, 212, d, &h.a, "dispatch", json!({"crew_id": fc})).await;
    step(&app, 213, m1, &h.a, "accept", json!({})).await;
    step(&app, 214, m1, &h.a, "depart", json!({})).await;
    step(&app, 230, m1, &h.a, "arrive", json!({})).await;
    step(
        &app,
        240,
        m1,
        &h.a,
        "resolve",
        json!({"resolution": "更换电缆"}),
    )
    .await;
    let member2 = app.login("crew2", crate::helpers::PASSWORD).await;
    let appeal = app
        .post(
            "/api/v1/appeals",
            &member2,
            json!({"work_order_id": h.b, "stage": "arrival", "instance": 1,
                   "reason_code": "access_denied", "reason": "小区门禁无法进入"}),
        )
        .await
        .expect(201)
        .id();
    app.post(
        &format!("/api/v1/appeals/{appeal}/approve"),
        &sup,
        json!({}),
    )
    .await
    .expect(200);
    compare("with unfolded changes").await;
    app.roll_up();
    compare("after folding them").await;
    // the excused breach left compliance and the reopen counts as rework
    let r = app
        .get(
            &format!("/api/v1/reports/sla?group_by=stage&stage=arrival&{wide}"),
            &sup,
        )
        .await
        .expect(200);
    let arrival = row(&r.body, Some("arrival"));
    assert_eq!(
        (arrival["breached"].as_i64(), arrival["excused"].as_i64()),
        (Some(0), Some(1))
    );
    let r = app
        .get(&format!("/api/v1/reports/crews?{wide}"), &sup)
        .await
        .expect(200);
    let c1 = r.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["crew_id"] == h.c.field_crew)
        .unwrap();
    // C1 resolved A twice (the first reopened) and B once: 2 orders, 1 reworked
    assert_eq!(c1["parts"]["reopen_rate"], json!(0.5));
    assert_eq!(c1["orders"], 2);
}

fn all_cells(
    app: &TestApp,
) -> (
    Vec<gridcall::db::rollups::SlaCellRow>,
    Vec<gridcall::db::rollups::CreditCellRow>,
) {
    use diesel::prelude::*;
    use gridcall::db::rollups::{CreditCellRow, SlaCellRow};
    use gridcall::db::schema::{credit_rollups, sla_rollups};
    let mut conn = app.state.pool.get().unwrap();
    let sla: Vec<SlaCellRow> = sla_rollups::table
        .select(SlaCellRow::as_select())
        .order((
            sla_rollups::grain,
            sla_rollups::period,
            sla_rollups::area_code,
            sla_rollups::kind,
            sla_rollups::priority,
            sla_rollups::stage,
            sla_rollups::crew_id,
        ))
        .load(&mut conn)
        .unwrap();
    let credits: Vec<CreditCellRow> = credit_rollups::table
        .select(CreditCellRow::as_select())
        .order((
            credit_rollups::grain,
            credit_rollups::period,
            credit_rollups::crew_id,
        ))
        .load(&mut conn)
        .unwrap();
    (sla, credits)
}

/// `gridcall seed` writes the roll-up cells the job would fold from its rows, and reports
/// read the same whether the rows are folded or all still dirty.
#[actix_web::test]
async fn the_seed_writes_the_roll_ups_the_job_would() {
    use diesel::prelude::*;
    use gridcall::db::schema::{credit_rollups, crew_credits, sla_rollups, sla_timers};
    let app = spawn_app().await;
    {
        let mut conn = app.state.pool.get().unwrap();
        let opts = gridcall::service::seed::SeedOptions {
            orders: 3000,
            until: start_time(),
            seed: 7,
        };
        let report =
            gridcall::service::seed::seed(&mut conn, &app.state.sla.context(), &opts, &mut |_| {})
                .unwrap();
        assert_eq!((report.orders, report.crews, report.areas), (3000, 200, 50));
        assert!(report.timers > 6000 && report.credits > 3000, "{report:?}");
    }
    let year = "from=2025-11-22T00:00:00%2B08:00&to=2026-11-22T10:00:00%2B08:00";
    let queries = [
        format!("/api/v1/reports/sla?group_by=stage&{year}"),
        format!("/api/v1/reports/sla?group_by=crew&area_code=C01&{year}"),
        format!("/api/v1/reports/sla?group_by=day&stage=arrival&{year}"),
        format!("/api/v1/reports/crews?{year}"),
        "/api/v1/scorecards/2026-10".to_owned(),
    ];
    let mut before = Vec::new();
    for q in &queries {
        before.push(app.get(q, &app.admin).await.expect(200).body);
    }
    let seeded = all_cells(&app);
    assert!(!seeded.0.is_empty() && !seeded.1.is_empty());
    {
        let mut conn = app.state.pool.get().unwrap();
        diesel::delete(sla_rollups::table)
            .execute(&mut conn)
            .unwrap();
        diesel::delete(credit_rollups::table)
            .execute(&mut conn)
            .unwrap();
        diesel::update(sla_timers::table.filter(sla_timers::ended_at.is_not_null()))
            .set((
                sla_timers::rollup_dirty.eq(true),
                sla_timers::rollup_applied.eq(None::<String>),
            ))
            .execute(&mut conn)
            .unwrap();
        diesel::update(crew_credits::table)
            .set((
                crew_credits::rollup_dirty.eq(true),
                crew_credits::rollup_applied.eq(None::<String>),
            ))
            .execute(&mut conn)
            .unwrap();
    }
    for (q, b) in queries.iter().zip(&before) {
        let all_dirty = app.get(q, &app.admin).await.expect(200).body;
        assert_eq!(&all_dirty, b, "{q} with nothing folded");
    }
    app.roll_up();
    assert!(
        all_cells(&app) == seeded,
        "the job folds what the seed wrote"
    );
    for (q, b) in queries.iter().zip(&before) {
        assert_eq!(&app.get(q, &app.admin).await.expect(200).body, b, "{q}");
    }
}

/// The job records what it applied only on rows unchanged since it read them: an instance
/// or a credit written in between stays dirty, for the next pass to fold as it is then.
#[actix_web::test]
async fn rows_written_after_the_job_read_them_wait_for_the_next_pass() {
    use diesel::prelude::*;
    use gridcall::db::rollups as repo;
    use gridcall::db::schema::{crew_credits, sla_timers};
    use gridcall::domain::rollup::applied_credit;
    let app = spawn_app().await;
    history(&app).await;
    let mut conn = app.state.pool.get().unwrap();
    let timers = repo::dirty_timers(&mut conn, 1000).unwrap();
    let credits = repo::dirty_credits(&mut conn, 1000).unwrap();
    assert!(timers.len() >= 2 && credits.len() >= 2);
    // a writer moves the first instance on, and reopens the first credit's fact
    diesel::update(sla_timers::table.filter(sla_timers::id.eq(&timers[0].id)))
        .set(sla_timers::version.eq(timers[0].version + 1))
        .execute(&mut conn)
        .unwrap();
    diesel::update(crew_credits::table.filter(crew_credits::id.eq(&credits[0].id)))
        .set(crew_credits::reopened_at.eq(Some(at(300).naive_utc())))
        .execute(&mut conn)
        .unwrap();
    let marks: Vec<repo::TimerMark> = timers
        .iter()
        .map(|t| repo::TimerMark {
            id: t.id.clone(),
            version: t.version,
            applied: None,
        })
        .collect();
    let cleared = repo::clear_timers(&mut conn, &marks).unwrap();
    assert_eq!(cleared.len(), timers.len() - 1);
    assert!(!cleared.contains(&timers[0].id));
    let marks: Vec<_> = credits
        .iter()
        .map(|c| (c, applied_credit(false, c.reopened_at.is_some())))
        .collect();
    let cleared = repo::clear_credits(&mut conn, &marks).unwrap();
    assert_eq!(cleared.len(), credits.len() - 1);
    assert!(!cleared.contains(&credits[0].id));
    let left: Vec<String> = repo::dirty_timers(&mut conn, 1000)
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(left, vec![timers[0].id.clone()]);
    let left: Vec<String> = repo::dirty_credits(&mut conn, 1000)
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(left, vec![credits[0].id.clone()]);
}
