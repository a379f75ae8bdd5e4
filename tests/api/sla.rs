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
        .order(&c.agent, "repair", "SZ-FT-01", "13800000000")
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
        .order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await
        .expect(201)
        .id();
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
        .order(&c.agent, "repair", "SZ-FT-01", "13800000001")
        .await
        .expect(201)
        .id();
    app.clock.advance(TimeDelta::minutes(10));
    let agent = app.login("agent1", PASSWORD).await;
    let fresh = app
        .order(&agent, "repair", "SZ-FT-01", "13800000002")
        .await
        .expect(201)
        .id();
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
