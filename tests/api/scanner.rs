//! The SLA scanner: warnings, breaches and escalations fire exactly once — across passes,
//! across restarts (state lives in the database) and with two scanners racing on one
//! database — and suspended orders resume on their own.

use crate::helpers::*;
use chrono::TimeDelta;
use gridcall::clock::Clock;
use gridcall::jobs::scanner::{ScanReport, Scanner};
use serde_json::{json, Value};

fn event_types(events: &Value) -> Vec<String> {
    events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn warning_breach_and_escalations_fire_once() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let id = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await;
    app.clock.advance(TimeDelta::minutes(3));
    assert_eq!(app.scan(), ScanReport::default(), "nothing is due yet");
    app.clock
        .advance(TimeDelta::minutes(1) + TimeDelta::seconds(30));
    // dispatch (5 min) warns at 4 min
    assert_eq!(
        app.scan(),
        ScanReport {
            warnings: 1,
            ..Default::default()
        }
    );
    assert_eq!(app.scan(), ScanReport::default(), "fires once");
    app.clock.advance(TimeDelta::minutes(32));
    // dispatch breaches at 5 min and escalates 30 min later; arrival (45 min) warns at 36 min
    assert_eq!(
        app.scan(),
        ScanReport {
            warnings: 1,
            breaches: 1,
            escalations: 1,
            resumed: 0
        }
    );
    app.clock.advance(TimeDelta::hours(3));
    // arrival breaches at 45 min and escalates at 1h15; dispatch's second escalation at 2h35
    assert_eq!(
        app.scan(),
        ScanReport {
            warnings: 0,
            breaches: 1,
            escalations: 3,
            resumed: 0
        }
    );
    app.clock.advance(TimeDelta::days(2));
    assert_eq!(app.scan(), ScanReport::default(), "every level has fired");
    assert_eq!(app.scan(), ScanReport::default());
    let events = app
        .get(&format!("/api/v1/work-orders/{id}/events"), &c.agent)
        .await
        .body;
    let types = event_types(&events);
    assert_eq!(types.iter().filter(|t| *t == "sla_warning").count(), 2);
    assert_eq!(types.iter().filter(|t| *t == "sla_breach").count(), 2);
    assert_eq!(types.iter().filter(|t| *t == "sla_escalation").count(), 4);
    let breach = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "sla_breach")
        .unwrap()
        .clone();
    assert!(breach["actor"].is_null());
    assert_eq!(breach["data"]["stage"], "dispatch");
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body;
    let dispatch = o["sla"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["stage"] == "dispatch")
        .unwrap()
        .clone();
    assert_eq!(dispatch["state"], "breached");
    assert_eq!(dispatch["escalation_level"], 2);
    assert!(
        dispatch["stopped_at"].is_null(),
        "breached but still open until dispatched"
    );
    let breached = app
        .get("/api/v1/work-orders?sla_state=breached", &c.agent)
        .await
        .body;
    assert_eq!(breached["items"].as_array().unwrap().len(), 1);
    // the late dispatch ends the timer as breached; nothing more fires for it
    app.act(
        &c.dispatcher,
        &id,
        "dispatch",
        json!({"crew_id": c.field_crew}),
    )
    .await
    .expect(200);
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body;
    let dispatch = o["sla"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["stage"] == "dispatch")
        .unwrap()
        .clone();
    assert_eq!(dispatch["state"], "breached");
    assert!(!dispatch["stopped_at"].is_null());
}

#[actix_web::test]
async fn a_warning_for_a_met_stage_never_fires() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let id = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await;
    app.clock.advance(TimeDelta::minutes(2));
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
    app.clock.advance(TimeDelta::minutes(10));
    assert_eq!(app.scan(), ScanReport::default());
}

#[actix_web::test]
async fn two_scanners_racing_fire_each_timer_once() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let mut ids = Vec::new();
    for i in 0..60 {
        ids.push(
            app.order(&c.agent, "repair", "SZ-FT-01", &format!("1380000{i:04}"))
                .await
                .expect(201)
                .id(),
        );
    }
    // past every dispatch deadline (5 min) and its first escalation (30 min later), before arrival warns
    app.clock
        .advance(TimeDelta::minutes(35) + TimeDelta::seconds(30));
    let now = app.clock.now();
    let run = |batch: i64| {
        let state = app.state.clone();
        std::thread::spawn(move || {
            let mut conn = state.pool.get().unwrap();
            Scanner {
                batch,
                notifier: state.notifier.clone(),
            }
            .run_once(&mut conn, &state.sla, &state.work_order_rules(), now)
            .unwrap()
        })
    };
    let (a, b) = (run(7), run(11));
    let (a, b) = (a.join().unwrap(), b.join().unwrap());
    assert_eq!(a.breaches + b.breaches, 60, "{a:?} {b:?}");
    assert_eq!(a.escalations + b.escalations, 60, "{a:?} {b:?}");
    assert_eq!(a.warnings + b.warnings, 0);
    for id in &ids {
        let events = app
            .get(&format!("/api/v1/work-orders/{id}/events"), &c.agent)
            .await
            .body;
        let types = event_types(&events);
        assert_eq!(
            types.iter().filter(|t| *t == "sla_breach").count(),
            1,
            "{id}: {types:?}"
        );
        assert_eq!(
            types.iter().filter(|t| *t == "sla_escalation").count(),
            1,
            "{id}: {types:?}"
        );
    }
    assert_eq!(app.scan(), ScanReport::default());
}

#[actix_web::test]
async fn suspended_orders_resume_at_until() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let id = app.accepted_repair(&c, "13800000000").await;
    app.act(&c.field_member, &id, "depart", json!({}))
        .await
        .expect(200);
    let until = (app.clock.now() + TimeDelta::hours(1)).to_rfc3339();
    app.act(
        &c.field_member,
        &id,
        "suspend",
        json!({"reason": "道路封闭", "until": until}),
    )
    .await
    .expect(200);
    app.clock.advance(TimeDelta::minutes(59));
    assert_eq!(app.scan().resumed, 0);
    app.clock.advance(TimeDelta::minutes(2));
    assert_eq!(app.scan().resumed, 1);
    assert_eq!(app.scan().resumed, 0, "once");
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body;
    assert_eq!(o["status"], "en_route");
    assert!(o["suspended_until"].is_null());
    let arrival = o["sla"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["stage"] == "arrival")
        .unwrap()
        .clone();
    assert_eq!(arrival["state"], "running");
    assert_eq!(arrival["paused_seconds"], 3600);
    let events = app
        .get(&format!("/api/v1/work-orders/{id}/events"), &c.agent)
        .await
        .body;
    let last = events["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "auto_resumed");
    assert_eq!(last["to_status"], "en_route");
}
