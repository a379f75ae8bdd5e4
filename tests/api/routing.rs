//! Automatic dispatch: the ranked candidates a dispatcher sees, the choice, re-routing
//! without a crew that returned the order, and the alert when nobody is eligible.

use crate::helpers::*;
use serde_json::json;

async fn crew(
    app: &TestApp,
    code: &str,
    kind: &str,
    skills: &[&str],
    on_duty: bool,
    pos: (f64, f64),
) -> String {
    app.post(
        "/api/v1/crews",
        &app.admin,
        json!({"code": code, "name": format!("班组 {code}"), "kind": kind, "area_codes": ["SZ-FT-01"], "skills": skills,
               "capacity": 3, "on_duty": on_duty, "lat": pos.0, "lon": pos.1}),
    )
    .await
    .expect(201)
    .id()
}

/// The candidate `code` in a candidates answer.
fn candidate(body: &serde_json::Value, code: &str) -> serde_json::Value {
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["code"] == code)
        .unwrap()
        .clone()
}

#[actix_web::test]
async fn dispatch_without_a_crew_routes_to_the_best_and_skips_returned_crews() {
    let app = spawn_app().await;
    app.area("SZ-FT-01", "urban").await;
    let agent = app.user("agent1", "agent", json!({})).await;
    let disp = app
        .user("disp1", "dispatcher", json!({"email": "disp@example.com"}))
        .await;
    let near = crew(&app, "NEAR", "field", &["repair"], true, (22.541, 114.051)).await;
    let far = crew(&app, "FAR", "field", &["repair"], true, (22.70, 114.30)).await;
    crew(&app, "OFF", "field", &["repair"], false, (22.54, 114.05)).await;
    crew(&app, "METER", "field", &["metering"], true, (22.54, 114.05)).await;
    crew(&app, "UNIT", "unit", &["complaints"], true, (22.54, 114.05)).await;
    let member = app.user("near1", "crew", json!({"crew_id": near})).await;
    let id = app
        .post(
            "/api/v1/work-orders",
            &agent,
            json!({"kind": "repair", "channel": "phone", "caller": {"phone": "13800000000"},
            "area_code": "SZ-FT-01", "lat": 22.54, "lon": 114.05, "description": "停电"}),
        )
        .await
        .expect(201)
        .id();
    let cands = app
        .get(&format!("/api/v1/work-orders/{id}/candidates"), &disp)
        .await
        .expect(200)
        .body;
    let items = cands["items"].as_array().unwrap();
    assert_eq!(items.len(), 5, "every crew considered");
    assert_eq!(items[0]["code"], "NEAR");
    assert_eq!(items[1]["code"], "FAR");
    assert!(items[0]["score"].as_f64().unwrap() > items[1]["score"].as_f64().unwrap());
    assert!(items[0]["distance_km"].as_f64().unwrap() < 1.0);
    assert_eq!(items[0]["parts"]["home_area"], true);
    let why = |code: &str| candidate(&cands, code)["why_not"].clone();
    assert_eq!(why("OFF"), json!(["on_duty"]));
    assert_eq!(why("METER"), json!(["skill"]));
    assert_eq!(why("UNIT"), json!(["kind", "skill"]));
    app.get(&format!("/api/v1/work-orders/{id}/candidates"), &agent)
        .await
        .expect(403);
    app.get(&format!("/api/v1/work-orders/{id}/candidates"), &member)
        .await
        .expect(404);

    let r = app
        .act(&disp, &id, "dispatch", json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(r["assigned_crew_id"], near.as_str());
    assert_eq!(r["routing"]["code"], "NEAR");
    assert!(r["routing"]["parts"]["distance"].as_f64().unwrap() > 0.9);
    let events = app
        .get(&format!("/api/v1/work-orders/{id}/events"), &disp)
        .await
        .body;
    let dispatch = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "dispatch")
        .unwrap()
        .clone();
    assert_eq!(dispatch["data"]["routed"], true);
    // the crew returns it: routed again, without that crew
    app.act(&member, &id, "reject", json!({"reason": "车辆故障"}))
        .await
        .expect(200);
    let r = app
        .act(&disp, &id, "dispatch", json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(r["assigned_crew_id"], far.as_str());
    let cands = app
        .get(&format!("/api/v1/work-orders/{id}/candidates"), &disp)
        .await
        .body;
    assert!(candidate(&cands, "NEAR")["why_not"]
        .as_array()
        .unwrap()
        .contains(&json!("returned_before")));
}

#[actix_web::test]
async fn no_eligible_crew_keeps_the_order_new_and_alerts_dispatchers() {
    let app = spawn_app().await;
    app.area("SZ-FT-01", "urban").await;
    let agent = app.user("agent1", "agent", json!({})).await;
    let disp = app
        .user("disp1", "dispatcher", json!({"email": "disp@example.com"}))
        .await;
    crew(&app, "OFF", "field", &["repair"], false, (22.54, 114.05)).await;
    let id = app
        .new_order(&agent, "repair", "SZ-FT-01", "13800000000")
        .await;
    let r = app.act(&disp, &id, "dispatch", json!({})).await.expect(409);
    assert_eq!(r.body["code"], "no_eligible_crew");
    assert!(r.is_problem());
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &disp)
        .await
        .body;
    assert_eq!(o["status"], "new");
    assert_eq!(o["version"], 1);
    let events = app
        .get(&format!("/api/v1/work-orders/{id}/events"), &disp)
        .await
        .body;
    let last = events["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "no_eligible_crew");
    assert_eq!(last["data"]["considered"], 1);
    let mails: Vec<_> = app
        .outbox()
        .into_iter()
        .filter(|m| m.kind == "no_eligible_crew")
        .collect();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].recipient, "disp@example.com");
    assert!(mails[0].subject.contains("没有可派的班组"));
}

#[actix_web::test]
async fn auto_dispatch_on_creation_routes_field_orders_when_configured() {
    let app = spawn_app_with(|s| s.work_orders.auto_dispatch = true).await;
    app.area("SZ-FT-01", "urban").await;
    app.area("SZ-LG-02", "rural").await;
    let agent = app.user("agent1", "agent", json!({})).await;
    let disp = app
        .user("disp1", "dispatcher", json!({"email": "disp@example.com"}))
        .await;
    let near = crew(
        &app,
        "NEAR",
        "field",
        &["repair", "complaints"],
        true,
        (22.541, 114.051),
    )
    .await;
    crew(&app, "UNIT", "unit", &["complaints"], true, (22.54, 114.05)).await;

    let o = app
        .order(&agent, "repair", "SZ-FT-01", "13800000000")
        .await
        .expect(201)
        .body;
    assert_eq!(o["status"], "dispatched");
    assert_eq!(o["assigned_crew_id"], near.as_str());
    let id = o["id"].as_str().unwrap();
    let events = app
        .get(&format!("/api/v1/work-orders/{id}/events"), &disp)
        .await
        .body;
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[1]["type"], "dispatch");
    assert!(items[1]["actor"].is_null(), "dispatched by the system");
    assert_eq!(items[1]["data"]["routed"], true);
    assert_eq!(items[1]["data"]["crew_id"], near.as_str());
    // Its arrival clock runs from creation as for any dispatched order.
    let sla = app
        .get(&format!("/api/v1/work-orders/{id}/sla"), &disp)
        .await
        .expect(200);
    assert!(sla.body.to_string().contains("arrival"));

    // A complaint is not a field order: it waits for a dispatcher.
    let complaint = app
        .order(&agent, "complaint", "SZ-FT-01", "13800000001")
        .await
        .expect(201)
        .body;
    assert_eq!(complaint["status"], "new");

    // Nobody eligible in LG: created new, the dispatchers alerted.
    let o = app
        .order(&agent, "repair", "SZ-LG-02", "13800000002")
        .await
        .expect(201)
        .body;
    assert_eq!(o["status"], "new");
    let id = o["id"].as_str().unwrap();
    let events = app
        .get(&format!("/api/v1/work-orders/{id}/events"), &disp)
        .await
        .body;
    let types: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["created", "no_eligible_crew"]);
    assert!(app
        .outbox()
        .iter()
        .any(|m| m.recipient == "disp@example.com" && m.work_order_id.as_deref() == Some(id)));
}

#[actix_web::test]
async fn auto_dispatch_is_off_by_default() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let o = app
        .order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await
        .expect(201)
        .body;
    assert_eq!(o["status"], "new");
}

/// The field crew's on-time arrival rate as the candidates of a new order show it.
async fn on_time_rate(app: &TestApp, c: &Cast, phone: &str) -> serde_json::Value {
    let id = app.new_order(&c.agent, "repair", "SZ-FT-01", phone).await;
    let cands = app
        .get(
            &format!("/api/v1/work-orders/{id}/candidates"),
            &c.dispatcher,
        )
        .await
        .expect(200)
        .body;
    cands["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["crew_id"] == c.field_crew.as_str())
        .unwrap()["parts"]["on_time_rate"]
        .clone()
}

/// Arrives on an accepted order, `late` after its 45-minute arrival target or on time.
async fn arrive(app: &TestApp, c: &Cast, phone: &str, late: bool) {
    let id = app.accepted_repair(c, phone).await;
    if late {
        app.clock.advance(chrono::TimeDelta::minutes(50));
    }
    app.act(&c.field_member, &id, "depart", json!({}))
        .await
        .expect(200);
    app.act(&c.field_member, &id, "arrive", json!({}))
        .await
        .expect(200);
}

#[actix_web::test]
async fn recent_performance_is_read_from_what_the_roll_up_has_folded() {
    // Routing reads a crew's 30 days of arrivals from the day roll-up cells: an arrival counts
    // once the job (every second in a deployment) has folded it.
    let app = spawn_app().await;
    let c = cast(&app).await;
    assert_eq!(on_time_rate(&app, &c, "13800000001").await, json!(null));
    arrive(&app, &c, "13800000002", false).await;
    arrive(&app, &c, "13800000003", true).await;
    assert_eq!(
        on_time_rate(&app, &c, "13800000004").await,
        json!(null),
        "not folded yet"
    );
    assert_ne!(
        app.roll_up(),
        Default::default(),
        "the job folded the arrivals"
    );
    assert_eq!(on_time_rate(&app, &c, "13800000005").await, json!(0.5));
    arrive(&app, &c, "13800000006", false).await;
    app.roll_up();
    let rate = on_time_rate(&app, &c, "13800000007").await;
    assert!((rate.as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-9, "{rate}");
}

#[actix_web::test]
async fn a_crews_load_counts_its_orders_still_being_worked_and_a_full_crew_is_passed_over() {
    let app = spawn_app().await;
    app.area("SZ-FT-01", "urban").await;
    let agent = app.user("agent1", "agent", json!({})).await;
    let disp = app.user("disp1", "dispatcher", json!({})).await;
    let near = crew(&app, "NEAR", "field", &["repair"], true, (22.541, 114.051)).await;
    let far = crew(&app, "FAR", "field", &["repair"], true, (22.70, 114.30)).await;
    let member = app.user("near1", "crew", json!({"crew_id": near})).await;
    let mut orders = Vec::new();
    for phone in ["13800000001", "13800000002", "13800000003", "13800000004"] {
        orders.push(app.new_order(&agent, "repair", "SZ-FT-01", phone).await);
    }
    // three of them assigned to NEAR (its capacity): dispatched, accepted, and on its way
    for id in &orders[..3] {
        app.act(&disp, id, "dispatch", json!({"crew_id": near}))
            .await
            .expect(200);
    }
    app.act(&member, &orders[1], "accept", json!({}))
        .await
        .expect(200);
    app.act(&member, &orders[2], "accept", json!({}))
        .await
        .expect(200);
    app.act(&member, &orders[2], "depart", json!({}))
        .await
        .expect(200);
    let last = &orders[3];
    let cands = app
        .get(&format!("/api/v1/work-orders/{last}/candidates"), &disp)
        .await
        .expect(200)
        .body;
    let near_now = candidate(&cands, "NEAR");
    assert_eq!(near_now["load"], 3);
    assert_eq!(near_now["capacity"], 3);
    assert_eq!(near_now["why_not"], json!(["capacity"]));
    assert_eq!(candidate(&cands, "FAR")["load"], 0);
    assert_eq!(candidate(&cands, "FAR")["eligible"], true);
    let r = app
        .act(&disp, last, "dispatch", json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(
        r["assigned_crew_id"],
        far.as_str(),
        "the full crew passed over"
    );

    // a cancelled order is no longer NEAR's load: it is eligible again
    app.act(&agent, &orders[0], "cancel", json!({"reason": "误报"}))
        .await
        .expect(200);
    let another = app
        .new_order(&agent, "repair", "SZ-FT-01", "13800000005")
        .await;
    let cands = app
        .get(&format!("/api/v1/work-orders/{another}/candidates"), &disp)
        .await
        .expect(200)
        .body;
    assert_eq!(candidate(&cands, "NEAR")["load"], 2);
    assert_eq!(candidate(&cands, "NEAR")["eligible"], true);
    assert_eq!(candidate(&cands, "FAR")["load"], 1);
}
