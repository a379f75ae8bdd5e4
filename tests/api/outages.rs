//! Mass outages: declared with a master order; new repair calls in its areas link to it
//! (300 at once: one master, 300 linked, no crew dispatched for them); updates reach every
//! linked order; restore resolves them all; cancel sends them back to new.

use crate::helpers::*;
use chrono::TimeDelta;
use futures_util::future::join_all;
use serde_json::json;

async fn declare(app: &TestApp, token: &str) -> serde_json::Value {
    app.post(
        "/api/v1/outages",
        token,
        json!({"area_codes": ["SZ-FT-01"], "cause": "10kV 福华线跳闸", "feeder": "福华线",
               "started_at": start_time().to_rfc3339(), "estimated_restore_at": (start_time() + TimeDelta::hours(2)).to_rfc3339()}),
    )
    .await
    .expect(201)
    .body
}

fn call(phone: &str) -> serde_json::Value {
    json!({"kind": "repair", "channel": "phone", "caller": {"phone": phone}, "area_code": "SZ-FT-01", "description": "家里停电"})
}

#[actix_web::test]
async fn a_surge_of_calls_links_to_one_master_and_restore_resolves_them_all() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    app.post(
        "/api/v1/outages",
        &c.agent,
        json!({"area_codes": ["SZ-FT-01"], "cause": "x", "started_at": start_time().to_rfc3339()}),
    )
    .await
    .expect(403);
    let outage = declare(&app, &c.dispatcher).await;
    let oid = outage["id"].as_str().unwrap().to_owned();
    let master = outage["master_id"].as_str().unwrap().to_owned();
    assert_eq!(outage["status"], "active");
    let phones: Vec<String> = (0..300).map(|i| format!("1390000{i:04}")).collect();
    let results = join_all(
        phones
            .iter()
            .map(|p| app.post("/api/v1/work-orders", &c.agent, call(p))),
    )
    .await;
    for r in &results {
        assert_eq!(r.status, 201, "{}", r.body);
        assert_eq!(r.body["status"], "merged");
        assert_eq!(r.body["master_id"], master.as_str());
        assert_eq!(r.body["outage"]["cause"], "10kV 福华线跳闸");
        assert!(r.body["assigned_crew_id"].is_null());
        assert_eq!(r.body["sla"], json!([]), "no timers of its own");
    }
    let got = app
        .get(&format!("/api/v1/outages/{oid}"), &c.agent)
        .await
        .expect(200)
        .body;
    assert_eq!(got["linked_count"], 300);
    let all = app
        .get("/api/v1/work-orders?limit=500", &c.agent)
        .await
        .body;
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        301,
        "one master and 300 linked"
    );
    let dispatched = app
        .get("/api/v1/work-orders?status=dispatched", &c.agent)
        .await
        .body;
    assert_eq!(dispatched["items"].as_array().unwrap().len(), 0);
    // a complaint, or link_outage false, is not linked
    let mut own = call("13700000000");
    own["link_outage"] = json!(false);
    let r = app
        .post("/api/v1/work-orders", &c.agent, own)
        .await
        .expect(201);
    assert_eq!(r.body["status"], "new");
    assert!(r.body.get("outage").is_none());
    let lookup = app
        .get("/api/v1/outages/lookup?area_code=SZ-FT-01", &c.agent)
        .await
        .expect(200)
        .body;
    assert_eq!(lookup["items"][0]["id"], oid.as_str());
    // the estimated restore time changes: every linked order hears of it
    let r = app
        .patch(
            &format!("/api/v1/outages/{oid}"),
            &c.dispatcher,
            json!({"estimated_restore_at": (start_time() + TimeDelta::hours(3)).to_rfc3339()}),
        )
        .await
        .expect(200);
    assert!(r.body["estimated_restore_at"]
        .as_str()
        .unwrap()
        .starts_with("2026-11-22T05:00:00"));
    let some = results[7].body["id"].as_str().unwrap().to_owned();
    let events = app
        .get(&format!("/api/v1/work-orders/{some}/events"), &c.agent)
        .await
        .body;
    let types: Vec<&str> = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["created", "linked_to_outage", "outage_updated"]);
    // restore: the master and all 300 resolve in one go; each gets its callback timer
    let r = app
        .post(
            &format!("/api/v1/outages/{oid}/restore"),
            &c.dispatcher,
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["status"], "restored");
    let resolved = app
        .get("/api/v1/work-orders?status=resolved&limit=500", &c.agent)
        .await
        .body;
    assert_eq!(resolved["items"].as_array().unwrap().len(), 301);
    let linked = app
        .get(&format!("/api/v1/work-orders/{some}"), &c.agent)
        .await
        .body;
    assert!(linked["sla"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["stage"] == "callback" && t["state"] == "running"));
    app.post(
        &format!("/api/v1/outages/{oid}/restore"),
        &c.dispatcher,
        json!({}),
    )
    .await
    .expect(409);
    // a new call now opens its own order
    let r = app
        .post("/api/v1/work-orders", &c.agent, call("13600000000"))
        .await
        .expect(201);
    assert_eq!(r.body["status"], "new");
}

#[actix_web::test]
async fn cancelling_an_outage_sends_linked_orders_back_to_new() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let outage = declare(&app, &c.dispatcher).await;
    let oid = outage["id"].as_str().unwrap().to_owned();
    let linked = app
        .post("/api/v1/work-orders", &c.agent, call("13900000001"))
        .await
        .expect(201)
        .id();
    app.post(
        &format!("/api/v1/outages/{oid}/cancel"),
        &c.dispatcher,
        json!({}),
    )
    .await
    .expect(422);
    let r = app
        .post(
            &format!("/api/v1/outages/{oid}/cancel"),
            &c.dispatcher,
            json!({"reason": "误报"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["status"], "cancelled");
    let o = app
        .get(&format!("/api/v1/work-orders/{linked}"), &c.agent)
        .await
        .body;
    assert_eq!(o["status"], "new");
    assert!(o["master_id"].is_null());
    assert!(
        o["sla"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["stage"] == "arrival" && t["state"] == "running"),
        "its own timers start"
    );
    let master = app
        .get(
            &format!(
                "/api/v1/work-orders/{}",
                outage["master_id"].as_str().unwrap()
            ),
            &c.agent,
        )
        .await
        .body;
    assert_eq!(master["status"], "cancelled");
    let events = app
        .get(&format!("/api/v1/work-orders/{linked}/events"), &c.agent)
        .await
        .body;
    assert_eq!(
        events["items"].as_array().unwrap().last().unwrap()["type"],
        "outage_cancelled"
    );
    let active = app.get("/api/v1/outages?active=true", &c.agent).await.body;
    assert_eq!(active["items"].as_array().unwrap().len(), 0);
}

#[actix_web::test]
async fn agents_look_up_active_outages_by_area_or_customer() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    app.area("SZ-NS-01", "urban").await;
    let customer = app
        .post("/api/v1/customers", &c.agent, json!({"account_no": "A-9", "name": "赵六", "phone": "13500000000", "address": "x", "area_code": "SZ-FT-01"}))
        .await
        .expect(201)
        .id();
    let none = app
        .get(
            &format!("/api/v1/outages/lookup?customer_id={customer}"),
            &c.agent,
        )
        .await
        .expect(200)
        .body;
    assert_eq!(none["items"], json!([]));
    let outage = declare(&app, &c.dispatcher).await;
    let found = app
        .get(
            &format!("/api/v1/outages/lookup?customer_id={customer}"),
            &c.agent,
        )
        .await
        .expect(200)
        .body;
    assert_eq!(found["items"][0]["id"], outage["id"]);
    assert_eq!(found["items"][0]["cause"], "10kV 福华线跳闸");
    let elsewhere = app
        .get("/api/v1/outages/lookup?area_code=SZ-NS-01", &c.agent)
        .await
        .expect(200)
        .body;
    assert_eq!(elsewhere["items"], json!([]));
    app.get("/api/v1/outages/lookup", &c.agent)
        .await
        .expect(422);
    app.get(
        &format!(
            "/api/v1/outages/lookup?customer_id={}",
            uuid::Uuid::new_v4()
        ),
        &c.agent,
    )
    .await
    .expect(404);
}

#[actix_web::test]
async fn a_patch_keeps_the_restore_estimate_after_the_start() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let outage = declare(&app, &c.dispatcher).await;
    let path = format!("/api/v1/outages/{}", outage["id"].as_str().unwrap());
    let before = (start_time() - TimeDelta::minutes(1)).to_rfc3339();
    let r = app
        .patch(
            &path,
            &c.dispatcher,
            json!({"estimated_restore_at": before}),
        )
        .await
        .expect(422);
    assert_eq!(r.body["errors"][0]["field"], "estimated_restore_at");
    let later = (start_time() + TimeDelta::hours(3)).to_rfc3339();
    app.patch(&path, &c.dispatcher, json!({"estimated_restore_at": later}))
        .await
        .expect(200);
    // An empty body changes nothing and is not an error.
    app.patch(&path, &c.dispatcher, json!({})).await.expect(200);
}

/// An outage over `areas`; new repair calls from each link to it.
async fn declare_over(app: &TestApp, token: &str, areas: &[&str]) -> String {
    let outage = app
        .post(
            "/api/v1/outages",
            token,
            json!({"area_codes": areas, "cause": "110kV 变电站失压", "started_at": start_time().to_rfc3339()}),
        )
        .await
        .expect(201)
        .body;
    outage["id"].as_str().unwrap().to_owned()
}

/// A repair call from each (area, phone), each answered as linked to an outage; their ids.
async fn linked_calls(app: &TestApp, agent: &str, calls: &[(&str, &str)]) -> Vec<String> {
    let mut ids = Vec::new();
    for (area, phone) in calls {
        let body = json!({"kind": "repair", "channel": "phone", "caller": {"phone": phone},
                          "area_code": area, "description": "停电"});
        let r = app
            .post("/api/v1/work-orders", agent, body)
            .await
            .expect(201);
        assert_eq!(r.body["status"], "merged");
        ids.push(r.id());
    }
    ids
}

fn stage<'a>(order: &'a serde_json::Value, stage: &str) -> &'a serde_json::Value {
    order["sla"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["stage"] == stage)
        .unwrap_or_else(|| panic!("no {stage} timer in {order}"))
}

/// Restore and cancel move all linked orders together, yet each one's timers start under its
/// own area's rule and force-majeure windows.
#[actix_web::test]
async fn linked_orders_of_several_areas_move_together_each_under_its_own_areas_rules() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    app.area("SZ-RU-01", "rural").await;
    app.area("SZ-NS-01", "urban").await;
    // cancel: each order's arrival target is its own area's (urban 45 min, rural 90 min)
    let oid = declare_over(&app, &c.dispatcher, &["SZ-FT-01", "SZ-RU-01"]).await;
    let ids = linked_calls(
        &app,
        &c.agent,
        &[("SZ-FT-01", "13900000011"), ("SZ-RU-01", "13900000012")],
    )
    .await;
    app.post(
        &format!("/api/v1/outages/{oid}/cancel"),
        &c.dispatcher,
        json!({"reason": "误报"}),
    )
    .await
    .expect(200);
    let mut due = Vec::new();
    for id in &ids {
        let o = app
            .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
            .await
            .body;
        assert_eq!(o["status"], "new");
        let arrival = stage(&o, "arrival");
        assert_eq!(arrival["state"], "running");
        due.push(
            chrono::DateTime::parse_from_rfc3339(arrival["due_at"].as_str().unwrap()).unwrap(),
        );
    }
    assert_eq!(
        due[1] - due[0],
        TimeDelta::minutes(45),
        "rural 90 − urban 45"
    );
    // restore: a window open over one area holds that order's callback, not the other's
    let oid = declare_over(&app, &c.dispatcher, &["SZ-FT-01", "SZ-NS-01"]).await;
    let ids = linked_calls(
        &app,
        &c.agent,
        &[("SZ-FT-01", "13900000021"), ("SZ-NS-01", "13900000022")],
    )
    .await;
    app.post(
        "/api/v1/sla/pauses",
        &c.supervisor,
        json!({"area_codes": ["SZ-FT-01"], "starts_at": start_time().to_rfc3339(), "reason": "台风"}),
    )
    .await
    .expect(201);
    app.post(
        &format!("/api/v1/outages/{oid}/restore"),
        &c.dispatcher,
        json!({}),
    )
    .await
    .expect(200);
    let held = app
        .get(&format!("/api/v1/work-orders/{}", ids[0]), &c.agent)
        .await
        .body;
    let free = app
        .get(&format!("/api/v1/work-orders/{}", ids[1]), &c.agent)
        .await
        .body;
    assert_eq!(held["status"], "resolved");
    assert_eq!(free["status"], "resolved");
    assert!(
        stage(&held, "callback")["due_at"].is_null(),
        "held while the window over its area is open"
    );
    assert!(stage(&free, "callback")["due_at"].is_string());
}
