//! Repeat calls (API.md, create check 1): the same phone or account with an open order of the
//! same kind becomes an urge on that order, not a new order; urges raise the priority.

use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

fn call(phone: &str, kind: &str) -> serde_json::Value {
    json!({"kind": kind, "channel": "phone", "caller": {"phone": phone}, "area_code": "SZ-FT-01", "description": "又停电了"})
}

#[actix_web::test]
async fn a_repeat_call_urges_the_open_order_and_creates_nothing() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let first = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            call("13800000000", "repair"),
        )
        .await
        .expect(201)
        .id();
    let again = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            call("+8613800000000", "repair"),
        )
        .await
        .expect(200);
    assert_eq!(again.body["id"], first.as_str());
    assert_eq!(again.body["duplicate_of"], first.as_str());
    assert_eq!(again.body["urge_count"], 1);
    let events = app
        .get(&format!("/api/v1/work-orders/{first}/events"), &c.agent)
        .await
        .body;
    let urge = events["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(urge["type"], "urge");
    // another kind, or force_new, opens a new order
    app.post(
        "/api/v1/work-orders",
        &c.agent,
        call("13800000000", "complaint"),
    )
    .await
    .expect(201);
    let mut forced = call("13800000000", "repair");
    forced["force_new"] = json!(true);
    app.post("/api/v1/work-orders", &c.agent, forced)
        .await
        .expect(201);
    let all = app.get("/api/v1/work-orders", &c.agent).await.body;
    assert_eq!(all["items"].as_array().unwrap().len(), 3);
    // an idempotent retry of the repeat call answers the same
    let key = [("Idempotency-Key", "repeat-1")];
    let r = app
        .call(
            Method::POST,
            "/api/v1/work-orders",
            Some(&c.agent),
            Some(call("13900000000", "inquiry")),
            &key,
        )
        .await
        .expect(201);
    let r2 = app
        .call(
            Method::POST,
            "/api/v1/work-orders",
            Some(&c.agent),
            Some(call("13900000000", "inquiry")),
            &[("Idempotency-Key", "repeat-2")],
        )
        .await
        .expect(200);
    assert_eq!(r2.body["duplicate_of"], r.body["id"]);
    let r3 = app
        .call(
            Method::POST,
            "/api/v1/work-orders",
            Some(&c.agent),
            Some(call("13900000000", "inquiry")),
            &[("Idempotency-Key", "repeat-2")],
        )
        .await
        .expect(200);
    assert_eq!(
        r3.body["urge_count"], 1,
        "the retry recorded no second urge"
    );
}

#[actix_web::test]
async fn every_third_urge_raises_the_priority_and_retargets_timers() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let id = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            call("13800000000", "repair"),
        )
        .await
        .expect(201)
        .id();
    for _ in 0..2 {
        app.post(
            "/api/v1/work-orders",
            &c.agent,
            call("13800000000", "repair"),
        )
        .await
        .expect(200);
    }
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body;
    assert_eq!(o["urge_count"], 2);
    assert_eq!(o["priority"], "normal");
    let o = app
        .act(&c.agent, &id, "urge", json!({"note": "第三次来电"}))
        .await
        .expect(200)
        .body;
    assert_eq!(o["priority"], "high");
    let events = app
        .get(&format!("/api/v1/work-orders/{id}/events"), &c.agent)
        .await
        .body;
    let urge = events["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        urge["data"]["priority"],
        json!({"old": "normal", "new": "high"})
    );
    assert!(
        urge["data"]["sla_recalculated"].is_array(),
        "audited in the same event"
    );
}

#[actix_web::test]
async fn urging_a_merged_order_notifies_the_masters_crew() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let master = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            call("13800000001", "repair"),
        )
        .await
        .expect(201)
        .id();
    let child = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            call("13800000002", "repair"),
        )
        .await
        .expect(201)
        .id();
    app.act(
        &c.dispatcher,
        &master,
        "dispatch",
        json!({"crew_id": c.field_crew}),
    )
    .await
    .expect(200);
    app.act(&c.agent, &child, "merge", json!({"master_id": master}))
        .await
        .expect(200);
    let r = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            call("13800000002", "repair"),
        )
        .await
        .expect(200);
    assert_eq!(r.body["id"], child.as_str());
    let events = app
        .get(&format!("/api/v1/work-orders/{child}/events"), &c.agent)
        .await
        .body;
    let urge = events["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(urge["data"]["notify_crew_id"], c.field_crew.as_str());
}

#[actix_web::test]
async fn a_call_matching_one_order_by_phone_and_another_by_account_urges_the_newer() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let customer = app
        .post(
            "/api/v1/customers",
            &c.agent,
            json!({"account_no": "0100077777", "name": "王五", "phone": "13600000001",
            "address": "福华路 9 号", "area_code": "SZ-FT-01"}),
        )
        .await
        .expect(201)
        .id();
    // the account holder, calling from another phone
    let by_account = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            json!({"kind": "repair", "channel": "phone", "customer_id": customer,
            "caller": {"phone": "13600000009"}, "area_code": "SZ-FT-01", "description": "停电"}),
        )
        .await
        .expect(201)
        .id();
    app.clock.advance(chrono::TimeDelta::minutes(1));
    // later, someone calling from the account's phone without naming the account
    let by_phone = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            call("13600000001", "repair"),
        )
        .await
        .expect(201)
        .id();
    assert_ne!(by_account, by_phone);
    app.clock.advance(chrono::TimeDelta::minutes(1));
    // the account holder from the account's phone matches both: the newer is urged
    let again = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            json!({"kind": "repair", "channel": "phone", "customer_id": customer,
            "area_code": "SZ-FT-01", "description": "还是停电"}),
        )
        .await
        .expect(200);
    assert_eq!(again.body["duplicate_of"], by_phone.as_str());
    // a new order by the account makes it the newer one
    app.clock.advance(chrono::TimeDelta::minutes(1));
    app.act(&c.agent, &by_phone, "cancel", json!({"reason": "误报"}))
        .await
        .expect(200);
    let again = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            json!({"kind": "repair", "channel": "phone", "customer_id": customer,
            "area_code": "SZ-FT-01", "description": "还是停电"}),
        )
        .await
        .expect(200);
    assert_eq!(
        again.body["duplicate_of"],
        by_account.as_str(),
        "the cancelled one is no longer worked"
    );
    // a repeat call with an area that does not exist is still a repeat call
    let mut elsewhere = call("13600000009", "repair");
    elsewhere["area_code"] = json!("NO-SUCH-AREA");
    let again = app
        .post("/api/v1/work-orders", &c.agent, elsewhere)
        .await
        .expect(200);
    assert_eq!(again.body["duplicate_of"], by_account.as_str());
    // and a new call there is refused, naming the area
    let mut new_caller = call("13600000555", "repair");
    new_caller["area_code"] = json!("NO-SUCH-AREA");
    let refused = app
        .post("/api/v1/work-orders", &c.agent, new_caller)
        .await
        .expect(422);
    assert_eq!(refused.body["errors"][0]["field"], "area_code");
    let all = app.get("/api/v1/work-orders", &c.agent).await.body;
    assert_eq!(all["items"].as_array().unwrap().len(), 2);
}
