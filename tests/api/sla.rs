//! Stage timers over HTTP: started, ended, stopped, paused and resumed in the same
//! transaction as the action; working-day targets on the cn calendar; recalculation.

use crate::helpers::*;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{json, Value};

fn timer<'a>(order: &'a Value, stage: &str, instance: i64) -> &'a Value {
    order["sla"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["stage"] == stage && t["instance"] == instance)
        .unwrap_or_else(|| panic!("no {stage}#{instance} timer in {}", order["sla"]))
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn time(v: &Value) -> DateTime<Utc> {
    at(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
}

#[actix_web::test]
async fn a_repair_runs_every_stage_timer() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let t0 = start_time();
    let o = app
        .order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await
        .expect(201)
        .body;
    let id = o["id"].as_str().unwrap().to_owned();
    assert_eq!(
        time(&timer(&o, "dispatch", 1)["due_at"]),
        t0 + TimeDelta::minutes(5)
    );
    assert_eq!(
        time(&timer(&o, "arrival", 1)["due_at"]),
        t0 + TimeDelta::minutes(45),
        "urban arrival: 45 min from the call"
    );
    assert_eq!(
        time(&timer(&o, "arrival", 1)["warn_at"]),
        t0 + TimeDelta::minutes(36),
        "warning at 80%"
    );
    assert_eq!(timer(&o, "arrival", 1)["policy_version"], "2026-11-22.1");
    app.scan();
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body;
    assert_eq!(
        time(&timer(&o, "arrival", 1)["warn_at"]),
        t0 + TimeDelta::minutes(36),
        "a running timer keeps its version's 80%"
    );
    app.clock.advance(TimeDelta::minutes(3));
    let o = app
        .act(
            &c.dispatcher,
            &id,
            "dispatch",
            json!({"crew_id": c.field_crew}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(timer(&o, "dispatch", 1)["state"], "met");
    assert_eq!(
        time(&timer(&o, "accept", 1)["due_at"]),
        t0 + TimeDelta::minutes(8)
    );
    app.clock.advance(TimeDelta::minutes(7));
    let o = app
        .act(&c.field_member, &id, "accept", json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(
        timer(&o, "accept", 1)["state"],
        "breached",
        "accepted 7 min after dispatch"
    );
    assert_eq!(
        time(&timer(&o, "accept", 1)["breached_at"]),
        t0 + TimeDelta::minutes(8)
    );
    app.act(&c.field_member, &id, "depart", json!({}))
        .await
        .expect(200);
    app.clock.advance(TimeDelta::minutes(30));
    let o = app
        .act(&c.field_member, &id, "arrive", json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(timer(&o, "arrival", 1)["state"], "met");
    assert_eq!(
        time(&timer(&o, "restore", 1)["due_at"]),
        t0 + TimeDelta::minutes(40) + TimeDelta::hours(3)
    );
    app.clock.advance(TimeDelta::hours(1));
    let crew = app.login("crew1", PASSWORD).await;
    let o = app
        .act(&crew, &id, "resolve", json!({"resolution": "ok"}))
        .await
        .expect(200)
        .body;
    assert_eq!(timer(&o, "restore", 1)["state"], "met");
    assert_eq!(timer(&o, "callback", 1)["state"], "running");
    let agent = app.login("agent1", PASSWORD).await;
    let o = app
        .act(
            &agent,
            &id,
            "callback",
            json!({"satisfaction": "satisfied"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(timer(&o, "callback", 1)["state"], "met");
    assert!(
        o["sla"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| !t["stopped_at"].is_null()),
        "every timer ended"
    );
}

#[actix_web::test]
async fn complaint_reply_counts_working_days_over_national_day() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    app.clock.set(at("2026-09-30T10:00:00+08:00"));
    let agent = app.login("agent1", PASSWORD).await;
    let o = app
        .order(&agent, "complaint", "SZ-FT-01", "13800000000")
        .await
        .expect(201)
        .body;
    assert_eq!(
        time(&timer(&o, "reply", 1)["due_at"]),
        at("2026-10-13T10:00:00+08:00")
    );
    assert_eq!(timer(&o, "reply", 1)["calendar"], "cn");
    assert_eq!(
        time(&timer(&o, "contact", 1)["due_at"]),
        at("2026-10-01T10:00:00+08:00"),
        "contact: 24 h round the clock"
    );
    let _ = c;
}

#[actix_web::test]
async fn suspension_pauses_and_reject_starts_a_new_dispatch_instance() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let t0 = start_time();
    let id = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await;
    app.act(
        &c.dispatcher,
        &id,
        "dispatch",
        json!({"crew_id": c.field_crew}),
    )
    .await
    .expect(200);
    let o = app
        .act(
            &c.field_member,
            &id,
            "reject",
            json!({"reason": "不在辖区"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(timer(&o, "accept", 1)["state"], "stopped");
    assert_eq!(timer(&o, "dispatch", 2)["state"], "running");
    assert_eq!(
        timer(&o, "arrival", 1)["state"],
        "running",
        "arrival keeps running through a reject"
    );
    app.act(
        &c.dispatcher,
        &id,
        "dispatch",
        json!({"crew_id": c.field_crew}),
    )
    .await
    .expect(200);
    let o = app
        .act(&c.field_member, &id, "accept", json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(timer(&o, "accept", 2)["state"], "met");
    app.clock.advance(TimeDelta::minutes(10));
    let o = app
        .act(
            &c.field_member,
            &id,
            "suspend",
            json!({"reason": "等待停电"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(timer(&o, "arrival", 1)["state"], "paused");
    assert!(
        timer(&o, "arrival", 1)["due_at"].is_null(),
        "no deadline while suspended"
    );
    app.clock.advance(TimeDelta::minutes(60));
    let crew = app.login("crew1", PASSWORD).await;
    let o = app
        .act(&crew, &id, "resume", json!({}))
        .await
        .expect(200)
        .body;
    let arrival = timer(&o, "arrival", 1);
    assert_eq!(arrival["state"], "running");
    assert_eq!(arrival["paused_seconds"], 3600);
    assert_eq!(time(&arrival["due_at"]), t0 + TimeDelta::minutes(45 + 60));
    app.clock.advance(TimeDelta::minutes(5));
    let detail = app
        .get(&format!("/api/v1/work-orders/{id}/sla"), &crew)
        .await
        .expect(200)
        .body;
    let arrival = detail["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["stage"] == "arrival")
        .unwrap()
        .clone();
    let kinds: Vec<&str> = arrival["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["running", "paused", "running"]);
    assert_eq!(arrival["rule"], "repair, urban");
}

#[actix_web::test]
async fn corrections_recalculate_running_timers_and_cancel_stops_them() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    app.area("SZ-RURAL", "rural").await;
    let t0 = start_time();
    let id = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await;
    let o = app
        .patch(
            &format!("/api/v1/work-orders/{id}"),
            &c.agent,
            json!({"area_code": "SZ-RURAL"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        time(&timer(&o, "arrival", 1)["due_at"]),
        t0 + TimeDelta::minutes(90),
        "rural: 90 min"
    );
    let events = app
        .get(&format!("/api/v1/work-orders/{id}/events"), &c.agent)
        .await
        .body;
    let update = events["items"].as_array().unwrap().last().unwrap().clone();
    let recalculated = update["data"]["sla_recalculated"].as_array().unwrap();
    let arrival = recalculated
        .iter()
        .find(|r| r["stage"] == "arrival")
        .unwrap();
    assert_eq!(
        (
            arrival["old_target"].as_str(),
            arrival["new_target"].as_str()
        ),
        (Some("45m"), Some("90m"))
    );
    let o = app
        .act(&c.agent, &id, "cancel", json!({"reason": "重复"}))
        .await
        .expect(200)
        .body;
    assert!(o["sla"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["state"] == "stopped"));
}

#[actix_web::test]
async fn sla_state_filter() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let late = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000001")
        .await;
    app.clock.advance(TimeDelta::minutes(10));
    let agent = app.login("agent1", PASSWORD).await;
    let fresh = app
        .new_order(&agent, "repair", "SZ-FT-01", "13800000002")
        .await;
    let disp = app.login("disp1", PASSWORD).await;
    // dispatching 10 minutes late breaches the dispatch stage; its accept timer runs
    let o = app
        .act(&disp, &late, "dispatch", json!({"crew_id": c.field_crew}))
        .await
        .expect(200)
        .body;
    assert_eq!(timer(&o, "dispatch", 1)["state"], "breached");
    let ids = |b: Value| -> Vec<String> {
        b["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let running = ids(app
        .get("/api/v1/work-orders?sla_state=running", &agent)
        .await
        .expect(200)
        .body);
    assert!(running.contains(&late) && running.contains(&fresh));
    app.get("/api/v1/work-orders?sla_state=late", &agent)
        .await
        .expect(422);
}

#[actix_web::test]
async fn a_retroactive_force_majeure_pause_moves_the_deadline_and_withdraws_a_breach() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let t0 = start_time();
    let id = app.accepted_repair(&c, "13800000000").await;
    app.clock.advance(TimeDelta::minutes(50));
    app.scan();
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body;
    assert_eq!(timer(&o, "arrival", 1)["state"], "breached");
    // typhoon: declared afterwards for 30–50 minutes after the call
    let body = json!({"area_codes": ["SZ-FT-01"], "starts_at": (t0 + TimeDelta::minutes(30)).to_rfc3339(),
                      "ends_at": (t0 + TimeDelta::minutes(50)).to_rfc3339(), "reason": "台风“海葵”过境"});
    app.post("/api/v1/sla/pauses", &c.agent, body.clone())
        .await
        .expect(403);
    app.post("/api/v1/sla/pauses", &c.dispatcher, body.clone())
        .await
        .expect(403);
    let pause = app
        .post("/api/v1/sla/pauses", &c.supervisor, body)
        .await
        .expect(201)
        .body;
    assert_eq!(pause["area_codes"], json!(["SZ-FT-01"]));
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body;
    let arrival = timer(&o, "arrival", 1);
    assert_eq!(
        arrival["state"], "running",
        "the moved deadline (65 min) is still ahead: the breach is withdrawn"
    );
    assert_eq!(arrival["breached_at"], Value::Null);
    assert_eq!(time(&arrival["due_at"]), t0 + TimeDelta::minutes(65));
    assert_eq!(arrival["excused_seconds"], 20 * 60);
    let events = app
        .get(&format!("/api/v1/work-orders/{id}/events"), &c.agent)
        .await
        .body;
    let recalculated = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "sla_recalculated")
        .expect("the recalculation is an event");
    assert_eq!(
        recalculated["data"]["breach_withdrawn"],
        json!(["arrival#1"])
    );
    assert!(!events["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "sla_excused"));
    // not excused forever: the crew still has not arrived when the moved deadline passes
    app.clock.advance(TimeDelta::minutes(16));
    app.scan();
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body;
    let arrival = timer(&o, "arrival", 1);
    assert_eq!(arrival["state"], "breached", "breached again at 65 min");
    assert_eq!(time(&arrival["breached_at"]), t0 + TimeDelta::minutes(65));
    // a window too short to save it: the breach stands, the deadline still moves
    let body = json!({"area_codes": ["SZ-FT-01"], "starts_at": (t0 + TimeDelta::minutes(10)).to_rfc3339(),
                      "ends_at": (t0 + TimeDelta::minutes(11)).to_rfc3339(), "reason": "雷暴"});
    app.post("/api/v1/sla/pauses", &c.supervisor, body)
        .await
        .expect(201);
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body;
    let arrival = timer(&o, "arrival", 1);
    assert_eq!(
        arrival["state"], "breached",
        "66 min is past the moved 66 min"
    );
    assert_eq!(time(&arrival["due_at"]), t0 + TimeDelta::minutes(66));
    assert_eq!(arrival["excused_seconds"], 21 * 60);
    let list = app
        .get("/api/v1/sla/pauses", &c.supervisor)
        .await
        .expect(200)
        .body;
    assert_eq!(list["items"].as_array().unwrap().len(), 2);
    let bad = json!({"area_codes": ["NOPE"], "starts_at": t0.to_rfc3339(), "reason": "x"});
    app.post("/api/v1/sla/pauses", &c.supervisor, bad)
        .await
        .expect(422);
    let bad = json!({"area_codes": ["SZ-FT-01"], "starts_at": t0.to_rfc3339(), "ends_at": t0.to_rfc3339(), "reason": "x"});
    app.post("/api/v1/sla/pauses", &c.supervisor, bad)
        .await
        .expect(422);
}

#[actix_web::test]
async fn an_open_pause_holds_timers_until_it_ends() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let t0 = start_time();
    let id = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await;
    app.clock.advance(TimeDelta::minutes(10));
    let pause = app
        .post("/api/v1/sla/pauses", &c.supervisor, json!({"area_codes": ["SZ-FT-01"], "starts_at": (t0 + TimeDelta::minutes(10)).to_rfc3339(), "reason": "暴雪"}))
        .await
        .expect(201)
        .body;
    assert_eq!(pause["active"], true);
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body;
    assert!(
        timer(&o, "arrival", 1)["due_at"].is_null(),
        "held while the window is open"
    );
    app.clock.advance(TimeDelta::hours(2));
    assert_eq!(
        app.scan().breaches,
        1,
        "the dispatch stage breached before the window opened"
    );
    let pid = pause["id"].as_str().unwrap();
    let ended = app
        .post(
            &format!("/api/v1/sla/pauses/{pid}/end"),
            &c.supervisor,
            json!({}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(ended["active"], false);
    app.post(
        &format!("/api/v1/sla/pauses/{pid}/end"),
        &c.supervisor,
        json!({}),
    )
    .await
    .expect(409);
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body;
    let arrival = timer(&o, "arrival", 1);
    assert_eq!(arrival["state"], "running");
    assert_eq!(time(&arrival["due_at"]), t0 + TimeDelta::minutes(45 + 120));
}

#[actix_web::test]
async fn an_order_opened_in_a_force_majeure_window_starts_with_it_and_one_elsewhere_does_not() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    app.area("SZ-NS-01", "urban").await;
    let t0 = start_time();
    // a window over SZ-FT-01 from now for 30 minutes, and one still to come
    app.post(
        "/api/v1/sla/pauses",
        &c.supervisor,
        json!({"area_codes": ["SZ-FT-01"], "starts_at": t0.to_rfc3339(),
            "ends_at": (t0 + TimeDelta::minutes(30)).to_rfc3339(), "reason": "暴雨"}),
    )
    .await
    .expect(201);
    app.post(
        "/api/v1/sla/pauses",
        &c.supervisor,
        json!({"area_codes": ["SZ-FT-01"], "starts_at": (t0 + TimeDelta::hours(1)).to_rfc3339(),
            "ends_at": (t0 + TimeDelta::hours(2)).to_rfc3339(), "reason": "台风预警"}),
    )
    .await
    .expect(201);
    let inside = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            json!({"kind": "repair", "channel": "phone", "caller": {"phone": "13800000001"}, "area_code": "SZ-FT-01", "description": "停电"}),
        )
        .await
        .expect(201)
        .body;
    // 45 minutes of arrival time, counted after the first window: due at 1h15, which the
    // second window (1h–2h) moves out by another hour
    assert_eq!(
        time(&timer(&inside, "arrival", 1)["due_at"]),
        t0 + TimeDelta::minutes(30 + 45 + 60)
    );
    let elsewhere = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            json!({"kind": "repair", "channel": "phone", "caller": {"phone": "13800000002"}, "area_code": "SZ-NS-01", "description": "停电"}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(
        time(&timer(&elsewhere, "arrival", 1)["due_at"]),
        t0 + TimeDelta::minutes(45)
    );
    // the answers are what a later read gives
    for o in [&inside, &elsewhere] {
        let read = app
            .get(
                &format!("/api/v1/work-orders/{}", o["id"].as_str().unwrap()),
                &c.agent,
            )
            .await
            .body;
        assert_eq!(read["sla"], o["sla"]);
    }
}

#[actix_web::test]
async fn calendars_policies_and_readiness_warnings() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let cals = app
        .get("/api/v1/calendars", &c.agent)
        .await
        .expect(200)
        .body;
    let ids: Vec<&str> = cals["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"cn") && ids.contains(&"24x7"));
    let days = app
        .get(
            "/api/v1/calendars/cn/days?from=2026-09-30&to=2026-10-12",
            &c.agent,
        )
        .await
        .expect(200)
        .body;
    let days = days["days"].as_array().unwrap();
    assert_eq!(days.len(), 13);
    assert_eq!(days[1]["kind"], "holiday");
    assert_eq!(days[1]["name"], "国庆节");
    assert_eq!(
        days[10],
        json!({"date": "2026-10-10", "working": true, "kind": "adjusted_workday"})
    );
    assert_eq!(days[11]["kind"], "weekend");
    app.get(
        "/api/v1/calendars/cn/days?from=2026-01-01&to=2027-12-31",
        &c.agent,
    )
    .await
    .expect(422);
    app.get(
        "/api/v1/calendars/cn/days?from=yesterday&to=2026-01-01",
        &c.agent,
    )
    .await
    .expect(422);
    app.get(
        "/api/v1/calendars/mars/days?from=2026-01-01&to=2026-01-02",
        &c.agent,
    )
    .await
    .expect(404);
    let policy = app
        .get("/api/v1/sla/policies", &c.supervisor)
        .await
        .expect(200)
        .body;
    assert_eq!(policy["version"], "2026-11-22.1");
    assert_eq!(
        policy["rules"].as_array().unwrap().last().unwrap()["name"],
        "catch-all"
    );
    app.get("/api/v1/sla/policies", &c.agent).await.expect(403);
    app.post(
        "/api/v1/areas",
        &app.admin,
        json!({"code": "X1", "name": "x", "region_class": "urban", "calendar": "mars"}),
    )
    .await
    .expect(422);
    app.post(
        "/api/v1/areas",
        &app.admin,
        json!({"code": "X2", "name": "x", "region_class": "urban", "calendar": "24x7"}),
    )
    .await
    .expect(201);
    let ready = app
        .call(reqwest::Method::GET, "/readyz", None, None, &[])
        .await
        .expect(200)
        .body;
    let calendar_warnings = |ready: &Value| -> Vec<String> {
        ready["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|w| w.as_str().unwrap().to_owned())
            // a PostgreSQL without autovacuum is warned about too (this machine's)
            .filter(|w| !w.contains("autovacuum"))
            .collect()
    };
    assert_eq!(calendar_warnings(&ready), Vec::<String>::new());
    app.clock.set(at("2026-12-01T08:00:00+08:00"));
    let ready = app
        .call(reqwest::Method::GET, "/readyz", None, None, &[])
        .await
        .expect(200)
        .body;
    let warnings = ready["warnings"].as_array().unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.as_str().unwrap().contains("2027")),
        "{warnings:?}"
    );
    app.order(&app.admin, "repair", "SZ-FT-01", "13800000000")
        .await
        .expect(201);
    let metrics = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("gridcall_sla_timers{state=\"running\"}"),
        "{metrics}"
    );
}

#[actix_web::test]
async fn a_published_policy_reaches_running_instances_and_recalc_retargets_audited() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let t0 = start_time();
    let id = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await;
    let text = include_str!("../../config/sla.toml")
        .replace("version = \"2026-11-22.1\"", "version = \"2026-12.1\"")
        .replace("warn_at = 0.8", "warn_at = 0.5")
        .replace("arrival = { target = \"45m\" }   # State Grid and China Southern Grid commitments: urban 45 min", "arrival = { target = \"30m\" }");
    {
        use gridcall::clock::Clock;
        let mut conn = app.state.pool.get().unwrap();
        gridcall::service::sla::publish_policy(&mut conn, &text, "2026-12.1", app.clock.now())
            .unwrap();
    }
    // the next scanner tick picks it up; the running timer keeps its version
    app.scan();
    assert_eq!(app.state.sla.policy().version, "2026-12.1");
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body;
    assert_eq!(timer(&o, "arrival", 1)["policy_version"], "2026-11-22.1");
    app.scan();
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body;
    assert_eq!(
        time(&timer(&o, "arrival", 1)["warn_at"]),
        t0 + TimeDelta::minutes(36),
        "a running timer keeps its version's 80%"
    );
    let (orders, changed) = {
        use gridcall::clock::Clock;
        let mut conn = app.state.pool.get().unwrap();
        gridcall::service::sla::recalculate_all(
            &mut conn,
            &app.state.sla.context(),
            Some("SZ-FT-01"),
            None,
            app.clock.now(),
        )
        .unwrap()
    };
    assert_eq!((orders, changed), (1, 1));
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body;
    let arrival = timer(&o, "arrival", 1);
    assert_eq!(arrival["policy_version"], "2026-12.1");
    assert_eq!(time(&arrival["due_at"]), t0 + TimeDelta::minutes(30));
    assert_eq!(
        time(&arrival["warn_at"]),
        t0 + TimeDelta::minutes(15),
        "recalculated: 50% of 30 minutes"
    );
    let events = app
        .get(&format!("/api/v1/work-orders/{id}/events"), &c.agent)
        .await
        .body;
    let last = events["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "sla_recalculated");
    assert_eq!(last["data"]["policy_version"], "2026-12.1");
}

#[actix_web::test]
async fn an_arrival_during_an_open_storm_window_is_met() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let t0 = start_time();
    let id = app.accepted_repair(&c, "13800000000").await;
    app.act(&c.field_member, &id, "depart", json!({}))
        .await
        .expect(200);
    // a storm window declared for later, with no end yet: the clock runs until it begins
    app.post("/api/v1/sla/pauses", &c.supervisor, json!({"area_codes": ["SZ-FT-01"], "starts_at": (t0 + TimeDelta::minutes(20)).to_rfc3339(), "reason": "台风"}))
        .await
        .expect(201);
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body;
    assert_eq!(
        timer(&o, "arrival", 1)["state"],
        "running",
        "the window has not begun"
    );
    app.clock.advance(TimeDelta::minutes(60));
    assert_eq!(
        app.scan().breaches,
        0,
        "the arrival clock stopped at 20 minutes"
    );
    let o = app
        .act(&c.field_member, &id, "arrive", json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(
        timer(&o, "arrival", 1)["state"],
        "met",
        "20 of 45 minutes used"
    );
}

#[actix_web::test]
async fn an_unhappy_callback_is_measured_and_early_resolution_stops_arrival() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let id = app
        .post("/api/v1/work-orders", &c.agent, json!({"kind": "service_request", "category": "appliance_damage", "channel": "phone",
            "caller": {"phone": "13800000000"}, "area_code": "SZ-FT-01", "description": "电器损坏"}))
        .await
        .expect(201)
        .id();
    app.act(
        &c.dispatcher,
        &id,
        "dispatch",
        json!({"crew_id": c.field_crew}),
    )
    .await
    .expect(200);
    app.act(&c.field_member, &id, "accept", json!({}))
        .await
        .expect(200);
    let o = app
        .act(
            &c.field_member,
            &id,
            "resolve",
            json!({"resolution": "电话指导恢复"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        timer(&o, "arrival", 1)["state"],
        "stopped",
        "resolved without going on site"
    );
    assert_eq!(timer(&o, "reply", 1)["state"], "met");
    let o = app
        .act(
            &c.agent,
            &id,
            "callback",
            json!({"satisfaction": "very_unsatisfied"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(o["status"], "reopened");
    assert_eq!(
        timer(&o, "callback", 1)["state"],
        "met",
        "an unhappy customer still counts in callback compliance"
    );
    assert_eq!(
        timer(&o, "dispatch", 2)["state"],
        "running",
        "the reopen starts new instances"
    );
}
