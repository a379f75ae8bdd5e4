//! The life of work orders: creation, numbering, every kind of transition's effects, events,
//! lists with filters and keyset pages, scoping, corrections, idempotency.

use crate::helpers::*;
use chrono::TimeDelta;
use gridcall::clock::Clock;
use reqwest::Method;
use serde_json::json;

#[actix_web::test]
async fn repair_order_full_life_with_events() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let created = app
        .order(&c.agent, "repair", "SZ-FT-01", "+8613800000000")
        .await
        .expect(201);
    let location = created.header("location").unwrap();
    let o = created.body;
    assert_eq!(o["status"], "new");
    assert_eq!(o["category"], "no_power");
    assert_eq!(o["priority"], "normal");
    assert_eq!(
        o["caller"]["phone"], "13800000000",
        "phone stored normalised"
    );
    assert!(
        o["number"].as_str().unwrap().starts_with("R20261122"),
        "{}",
        o["number"]
    );
    assert_eq!(
        location,
        format!("/api/v1/work-orders/{}", o["id"].as_str().unwrap())
    );
    let stages: Vec<&str> = o["sla"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages.len(), 2);
    assert!(
        stages.contains(&"dispatch") && stages.contains(&"arrival"),
        "{stages:?}"
    );
    let id = o["id"].as_str().unwrap();
    app.act(
        &c.dispatcher,
        id,
        "dispatch",
        json!({"crew_id": c.field_crew}),
    )
    .await
    .expect(200);
    for (action, status) in [
        ("accept", "accepted"),
        ("depart", "en_route"),
        ("arrive", "on_site"),
    ] {
        let r = app
            .act(&c.field_member, id, action, json!({"note": "ok"}))
            .await
            .expect(200);
        assert_eq!(r.body["status"], status);
    }
    let r = app
        .act(
            &c.field_member,
            id,
            "resolve",
            json!({"resolution": "更换熔断器"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["resolution"], "更换熔断器");
    assert!(r.body["resolved_at"].is_string());
    let r = app
        .act(
            &c.agent,
            id,
            "callback",
            json!({"satisfaction": "very_satisfied"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["status"], "closed");
    assert_eq!(r.body["satisfaction"], "very_satisfied");
    assert!(r.body["closed_at"].as_str().unwrap().ends_with('Z'));
    let events = app
        .get(&format!("/api/v1/work-orders/{id}/events"), &c.dispatcher)
        .await
        .expect(200)
        .body;
    let items = events["items"].as_array().unwrap();
    let types: Vec<&str> = items.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        ["created", "dispatch", "accept", "depart", "arrive", "resolve", "callback"]
    );
    let ids: Vec<i64> = items.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "event ids grow: {ids:?}"
    );
    assert_eq!(items[1]["actor"]["username"], "disp1");
    assert_eq!(items[1]["from_status"], "new");
    assert_eq!(items[1]["to_status"], "dispatched");
    assert_eq!(items[1]["data"]["crew_id"], c.field_crew.as_str());
    assert_eq!(items[1]["data"]["overridden"], json!([]));
    assert_eq!(items[2]["data"]["note"], "ok");
}

#[actix_web::test]
async fn numbers_are_unique_increasing_and_use_the_local_date() {
    let app = spawn_app().await;
    cast(&app).await;
    // 2026-11-22 18:30 UTC is already 11-23 in Asia/Shanghai.
    app.clock
        .set(start_time() + TimeDelta::hours(16) + TimeDelta::minutes(30));
    let agent = app.login("agent1", PASSWORD).await;
    let mut numbers = Vec::new();
    for (kind, letter) in [
        ("repair", "R"),
        ("service_request", "A"),
        ("complaint", "C"),
        ("report", "J"),
        ("inquiry", "Q"),
        ("opinion", "Y"),
        ("suggestion", "S"),
        ("praise", "P"),
    ] {
        let o = app
            .order(&agent, kind, "SZ-FT-01", "13800000000")
            .await
            .expect(201)
            .body;
        let n = o["number"].as_str().unwrap().to_owned();
        assert!(n.starts_with(&format!("{letter}20261123")), "{n}");
        numbers.push(n[9..].parse::<u64>().unwrap());
    }
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "{numbers:?}");
}

#[actix_web::test]
async fn reject_reassign_suspend_resume_and_unhappy_callback() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let other = app.crew("FT-C2", "field", &["SZ-FT-01"]).await;
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
    // reject needs a reason
    let r = app
        .act(&c.field_member, &id, "reject", json!({}))
        .await
        .expect(422);
    assert_eq!(r.body["errors"][0]["field"], "reason");
    let r = app
        .act(
            &c.field_member,
            &id,
            "reject",
            json!({"reason": "不在辖区"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["status"], "new");
    assert!(r.body["assigned_crew_id"].is_null());
    // the crew no longer sees it
    app.get(&format!("/api/v1/work-orders/{id}"), &c.field_member)
        .await
        .expect(404);
    // dispatching the same crew again is an override the event records
    let r = app
        .act(
            &c.dispatcher,
            &id,
            "dispatch",
            json!({"crew_id": c.field_crew}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["assigned_crew_id"], c.field_crew.as_str());
    let ev = app
        .get(&format!("/api/v1/work-orders/{id}/events"), &c.dispatcher)
        .await
        .body;
    let last = ev["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["data"]["overridden"], json!(["returned_before"]));
    let r = app
        .act(
            &c.dispatcher,
            &id,
            "reassign",
            json!({"crew_id": other, "reason": "就近"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["assigned_crew_id"], other.as_str());
    app.act(
        &c.dispatcher,
        &id,
        "reassign",
        json!({"crew_id": other, "reason": "x"}),
    )
    .await
    .expect(422);
    app.act(&c.dispatcher, &id, "accept", json!({}))
        .await
        .expect(200);
    app.act(&c.dispatcher, &id, "depart", json!({}))
        .await
        .expect(200);
    let until = (start_time() + TimeDelta::hours(3)).to_rfc3339();
    let r = app
        .act(
            &c.dispatcher,
            &id,
            "suspend",
            json!({"reason": "等待停电计划", "until": until}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["status"], "suspended");
    assert!(r.body["suspended_until"].is_string());
    let past = (start_time() - TimeDelta::hours(1)).to_rfc3339();
    let r = app
        .act(&c.dispatcher, &id, "resume", json!({"until": past}))
        .await
        .expect(422);
    assert_eq!(r.body["errors"][0]["field"], "until");
    let r = app
        .act(&c.dispatcher, &id, "resume", json!({}))
        .await
        .expect(200);
    assert_eq!(
        r.body["status"], "en_route",
        "resume returns to the status suspended from"
    );
    app.act(&c.dispatcher, &id, "arrive", json!({}))
        .await
        .expect(200);
    app.act(
        &c.dispatcher,
        &id,
        "resolve",
        json!({"resolution": "已修复"}),
    )
    .await
    .expect(200);
    let r = app
        .act(
            &c.agent,
            &id,
            "callback",
            json!({"satisfaction": "unsatisfied", "note": "还是停电"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["status"], "reopened");
    assert_eq!(r.body["reopen_count"], 1);
    assert!(r.body["assigned_crew_id"].is_null());
    assert_eq!(
        r.body["allowed_actions"],
        json!(["cancel", "urge", "note", "update"])
    );
    let r = app
        .act(
            &c.dispatcher,
            &id,
            "dispatch",
            json!({"crew_id": c.field_crew}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["status"], "dispatched");
}

#[actix_web::test]
async fn merge_unmerge_and_master_resolution_cascade() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let master = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000001")
        .await;
    let a = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000002")
        .await;
    let b = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000003")
        .await;
    let complaint = app
        .new_order(&c.agent, "complaint", "SZ-FT-01", "13800000004")
        .await;
    let r = app
        .act(&c.agent, &a, "merge", json!({"master_id": a}))
        .await
        .expect(422);
    assert_eq!(r.body["errors"][0]["field"], "master_id");
    app.act(&c.agent, &complaint, "merge", json!({"master_id": master}))
        .await
        .expect(422);
    app.act(
        &c.agent,
        &a,
        "merge",
        json!({"master_id": uuid::Uuid::new_v4()}),
    )
    .await
    .expect(422);
    let r = app
        .act(&c.agent, &a, "merge", json!({"master_id": master}))
        .await
        .expect(200);
    assert_eq!(r.body["status"], "merged");
    assert_eq!(r.body["master_id"], master.as_str());
    app.act(&c.agent, &b, "merge", json!({"master_id": a}))
        .await
        .expect(422);
    app.act(&c.dispatcher, &b, "merge", json!({"master_id": master}))
        .await
        .expect(200);
    let r = app
        .act(&c.agent, &b, "unmerge", json!({"reason": "不同故障"}))
        .await
        .expect(200);
    assert_eq!(r.body["status"], "new");
    assert!(r.body["master_id"].is_null());
    app.act(
        &c.dispatcher,
        &master,
        "dispatch",
        json!({"crew_id": c.field_crew}),
    )
    .await
    .expect(200);
    for action in ["accept", "depart", "arrive"] {
        app.act(&c.field_member, &master, action, json!({}))
            .await
            .expect(200);
    }
    app.act(
        &c.field_member,
        &master,
        "resolve",
        json!({"resolution": "变压器更换"}),
    )
    .await
    .expect(200);
    let child = app
        .get(&format!("/api/v1/work-orders/{a}"), &c.agent)
        .await
        .expect(200)
        .body;
    assert_eq!(child["status"], "resolved");
    let ev = app
        .get(&format!("/api/v1/work-orders/{a}/events"), &c.agent)
        .await
        .body;
    let last = ev["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "master_resolved");
    assert!(last["actor"].is_null(), "system event");
    let other = app
        .get(&format!("/api/v1/work-orders/{b}"), &c.agent)
        .await
        .body;
    assert_eq!(other["status"], "new", "an unmerged order stays on its own");
}

#[actix_web::test]
async fn inquiry_answered_on_the_call_praise_close_and_reopen_window() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let q = app
        .new_order(&c.agent, "inquiry", "SZ-FT-01", "13800000000")
        .await;
    let r = app
        .act(&c.agent, &q, "resolve", json!({"resolution": "已告知电价"}))
        .await
        .expect(200);
    assert_eq!(r.body["status"], "resolved");
    let r = app.act(&c.agent, &q, "close", json!({})).await.expect(200);
    assert_eq!(r.body["status"], "closed");
    let p = app
        .new_order(&c.agent, "praise", "SZ-FT-01", "13800000000")
        .await;
    app.act(&c.agent, &p, "close", json!({})).await.expect(200);
    // a field order needs a reason to waive its callback
    let id = app
        .new_order(&c.agent, "service_request", "SZ-FT-01", "13800000000")
        .await;
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
    app.act(
        &c.field_member,
        &id,
        "resolve",
        json!({"resolution": "已复电"}),
    )
    .await
    .expect(200);
    app.act(&c.supervisor, &id, "close", json!({}))
        .await
        .expect(422);
    app.act(
        &c.supervisor,
        &id,
        "close",
        json!({"reason": "客户无法联系"}),
    )
    .await
    .expect(200);
    // reopen within 30 days, not after
    app.clock.advance(TimeDelta::days(29));
    let agent = app.login("agent1", PASSWORD).await;
    let r = app
        .act(&agent, &id, "reopen", json!({"reason": "再次报修"}))
        .await
        .expect(200);
    assert_eq!(r.body["status"], "reopened");
    app.clock.advance(TimeDelta::days(2));
    let agent = app.login("agent1", PASSWORD).await;
    app.act(&agent, &q, "reopen", json!({"reason": "late"}))
        .await
        .expect(409);
}

#[actix_web::test]
async fn cancel_urge_note_and_cancelled_is_final() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let id = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await;
    let r = app
        .act(&c.agent, &id, "urge", json!({"note": "客户再次来电"}))
        .await
        .expect(200);
    assert_eq!(r.body["urge_count"], 1);
    let note = app
        .post(
            &format!("/api/v1/work-orders/{id}/notes"),
            &c.agent,
            json!({"text": "客户家中有老人"}),
        )
        .await
        .expect(201);
    assert_eq!(note.body["type"], "note");
    assert_eq!(note.body["data"]["text"], "客户家中有老人");
    app.post(
        &format!("/api/v1/work-orders/{id}/notes"),
        &c.agent,
        json!({"text": ""}),
    )
    .await
    .expect(422);
    app.act(&c.agent, &id, "cancel", json!({}))
        .await
        .expect(422);
    let r = app
        .act(&c.agent, &id, "cancel", json!({"reason": "重复受理"}))
        .await
        .expect(200);
    assert_eq!(r.body["status"], "cancelled");
    assert_eq!(r.body["allowed_actions"], json!([]));
    let r = app.act(&c.agent, &id, "urge", json!({})).await.expect(409);
    assert_eq!(r.body["allowed_actions"], json!([]));
    app.post(
        &format!("/api/v1/work-orders/{id}/notes"),
        &c.agent,
        json!({"text": "x"}),
    )
    .await
    .expect(409);
    app.act(&c.agent, &id, "fly", json!({})).await.expect(404);
}

#[actix_web::test]
async fn if_match_and_etag() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let created = app
        .order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await
        .expect(201);
    assert_eq!(created.header("etag").unwrap(), "\"1\"");
    let id = created.id();
    let path = format!("/api/v1/work-orders/{id}/dispatch");
    let body = json!({"crew_id": c.field_crew});
    // A stale version is 412; a header that names no version is malformed (400).
    let stale = ["\"2\"", "W/\"0\"", "0"].map(|v| (v, 412, "precondition_failed"));
    let malformed = ["\"abc\"", "W/1", "\"1", "+1", "1,2"].map(|v| (v, 400, "invalid_if_match"));
    for (value, status, code) in stale.into_iter().chain(malformed) {
        let r = app
            .call(
                Method::POST,
                &path,
                Some(&c.dispatcher),
                Some(body.clone()),
                &[("If-Match", value)],
            )
            .await
            .expect(status);
        assert_eq!(r.body["code"], code, "If-Match: {value}");
    }
    // 403 comes before 412
    app.call(
        Method::POST,
        &path,
        Some(&c.agent),
        Some(body.clone()),
        &[("If-Match", "\"9\"")],
    )
    .await
    .expect(403);
    let r = app
        .call(
            Method::POST,
            &path,
            Some(&c.dispatcher),
            Some(body.clone()),
            &[("If-Match", "W/\"1\"")],
        )
        .await
        .expect(200);
    assert_eq!(r.header("etag").unwrap(), "\"2\"");
    // 412 comes before 409
    app.call(
        Method::POST,
        &path,
        Some(&c.dispatcher),
        Some(body.clone()),
        &[("If-Match", "\"1\"")],
    )
    .await
    .expect(412);
    app.call(
        Method::POST,
        &path,
        Some(&c.dispatcher),
        Some(body),
        &[("If-Match", "\"2\"")],
    )
    .await
    .expect(409);
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/work-orders/{id}"),
            Some(&c.agent),
            Some(json!({"priority": "high"})),
            &[("If-Match", "\"1\"")],
        )
        .await;
    assert_eq!(r.status, 412);
}

#[actix_web::test]
async fn corrections_are_audited_with_old_and_new_values() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    app.area("SZ-FT-02", "rural").await;
    let id = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await;
    let path = format!("/api/v1/work-orders/{id}");
    let r = app.patch(&path, &c.agent, json!({"priority": "urgent", "area_code": "SZ-FT-02", "category": "line_fault", "description": "线路断落"})).await.expect(200);
    assert_eq!(r.body["priority"], "urgent");
    assert_eq!(r.body["version"], 2);
    let ev = app.get(&format!("{path}/events"), &c.agent).await.body;
    let last = ev["items"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["type"], "update");
    assert_eq!(
        last["data"]["changes"]["priority"],
        json!({"old": "normal", "new": "urgent"})
    );
    assert_eq!(
        last["data"]["changes"]["area_code"],
        json!({"old": "SZ-FT-01", "new": "SZ-FT-02"})
    );
    // no change, no event, no new version
    let r = app
        .patch(&path, &c.agent, json!({"priority": "urgent"}))
        .await
        .expect(200);
    assert_eq!(r.body["version"], 2);
    let r = app
        .patch(
            &path,
            &c.agent,
            json!({"category": "nonsense", "grade": "major", "area_code": "NOPE", "lat": 100.0}),
        )
        .await
        .expect(422);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in ["category", "grade", "area_code", "lat"] {
        assert!(fields.contains(&f), "{f} in {fields:?}");
    }
    app.patch(&path, &c.field_member, json!({"priority": "low"}))
        .await
        .expect(404);
    app.patch(&path, &c.supervisor, json!({"priority": "low"}))
        .await
        .expect(403);
}

#[actix_web::test]
async fn lists_filter_scope_and_page() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    app.area("SZ-NS-01", "urban").await;
    let scoped = app
        .user("disp-ns", "dispatcher", json!({"area_codes": ["SZ-NS-01"]}))
        .await;
    let mut ids = Vec::new();
    for i in 0..5 {
        app.clock.advance(TimeDelta::seconds(1));
        let area = if i % 2 == 0 { "SZ-FT-01" } else { "SZ-NS-01" };
        let kind = if i < 3 { "repair" } else { "complaint" };
        ids.push(
            app.order(&c.agent, kind, area, &format!("1390000000{i}"))
                .await
                .expect(201)
                .id(),
        );
    }
    app.act(
        &c.dispatcher,
        &ids[0],
        "dispatch",
        json!({"crew_id": c.field_crew}),
    )
    .await
    .expect(200);
    // pages of two, newest first, no repeats
    let mut seen = Vec::new();
    let mut path = "/api/v1/work-orders?limit=2".to_owned();
    loop {
        let page = app.get(&path, &c.agent).await.expect(200).body;
        for o in page["items"].as_array().unwrap() {
            seen.push(o["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/api/v1/work-orders?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first);
    let count = |b: serde_json::Value| b["items"].as_array().unwrap().len();
    assert_eq!(
        count(
            app.get("/api/v1/work-orders?kind=complaint", &c.agent)
                .await
                .body
        ),
        2
    );
    assert_eq!(
        count(
            app.get("/api/v1/work-orders?status=dispatched", &c.agent)
                .await
                .body
        ),
        1
    );
    assert_eq!(
        count(
            app.get("/api/v1/work-orders?status=new,dispatched", &c.agent)
                .await
                .body
        ),
        5
    );
    assert_eq!(
        count(
            app.get("/api/v1/work-orders?area_code=SZ-NS-01", &c.agent)
                .await
                .body
        ),
        2
    );
    assert_eq!(
        count(
            app.get("/api/v1/work-orders?phone=13900000003", &c.agent)
                .await
                .body
        ),
        1
    );
    assert_eq!(
        count(
            app.get(
                &format!("/api/v1/work-orders?crew_id={}", c.field_crew),
                &c.agent
            )
            .await
            .body
        ),
        1
    );
    assert_eq!(
        count(
            app.get("/api/v1/work-orders?q=%E7%A6%8F%E5%8D%8E", &c.agent)
                .await
                .body
        ),
        5
    );
    let from = (start_time() + TimeDelta::seconds(3))
        .to_rfc3339()
        .replace('+', "%2B");
    assert_eq!(
        count(
            app.get(
                &format!("/api/v1/work-orders?created_from={from}"),
                &c.agent
            )
            .await
            .body
        ),
        3
    );
    // scoping: a scoped dispatcher sees only their area, a crew only their crew's
    assert_eq!(count(app.get("/api/v1/work-orders", &scoped).await.body), 2);
    app.get(&format!("/api/v1/work-orders/{}", ids[0]), &scoped)
        .await
        .expect(404);
    assert_eq!(
        count(app.get("/api/v1/work-orders", &c.field_member).await.body),
        1
    );
    assert_eq!(
        count(app.get("/api/v1/work-orders", &c.unit_member).await.body),
        0
    );
    // bad filters
    app.get("/api/v1/work-orders?status=flying", &c.agent)
        .await
        .expect(422);
    app.get("/api/v1/work-orders?limit=0", &c.agent)
        .await
        .expect(422);
    app.get("/api/v1/work-orders?limit=abc", &c.agent)
        .await
        .expect(400);
    app.get("/api/v1/work-orders?cursor=!!", &c.agent)
        .await
        .expect(400);
    app.get("/api/v1/work-orders?created_from=yesterday", &c.agent)
        .await
        .expect(422);
}

#[actix_web::test]
async fn idempotent_creation() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let body = json!({"kind": "repair", "channel": "phone", "caller": {"phone": "13800000000"}, "area_code": "SZ-FT-01", "description": "停电", "force_new": true});
    let key = [("Idempotency-Key", "call-42")];
    let first = app
        .call(
            Method::POST,
            "/api/v1/work-orders",
            Some(&c.agent),
            Some(body.clone()),
            &key,
        )
        .await
        .expect(201);
    let again = app
        .call(
            Method::POST,
            "/api/v1/work-orders",
            Some(&c.agent),
            Some(body.clone()),
            &key,
        )
        .await
        .expect(201);
    assert_eq!(first.id(), again.id());
    let mut other = body.clone();
    other["description"] = json!("另一件事");
    let r = app
        .call(
            Method::POST,
            "/api/v1/work-orders",
            Some(&c.agent),
            Some(other),
            &key,
        )
        .await
        .expect(422);
    assert!(r.is_problem());
    // keys are per user
    app.call(
        Method::POST,
        "/api/v1/work-orders",
        Some(&c.dispatcher),
        Some(body.clone()),
        &key,
    )
    .await
    .expect(201);
    // a failed create releases its key
    let mut bad = body.clone();
    bad["area_code"] = json!("NOWHERE");
    let k2 = [("Idempotency-Key", "call-43")];
    app.call(
        Method::POST,
        "/api/v1/work-orders",
        Some(&c.agent),
        Some(bad),
        &k2,
    )
    .await
    .expect(422);
    app.call(
        Method::POST,
        "/api/v1/work-orders",
        Some(&c.agent),
        Some(body.clone()),
        &k2,
    )
    .await
    .expect(201);
    // forgotten after 24 h
    app.clock.advance(TimeDelta::hours(25));
    let agent = app.login("agent1", PASSWORD).await;
    let later = app
        .call(
            Method::POST,
            "/api/v1/work-orders",
            Some(&agent),
            Some(body),
            &key,
        )
        .await
        .expect(201);
    assert_ne!(later.id(), first.id());
    let all = app.get("/api/v1/work-orders", &agent).await.body;
    assert_eq!(all["items"].as_array().unwrap().len(), 4);
}

#[actix_web::test]
async fn customer_defaults_fill_the_order() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let customer = app
        .post("/api/v1/customers", &c.agent, json!({"account_no": "0100012345", "name": "李四", "phone": "13912345678", "address": "深南大道 100 号",
            "area_code": "SZ-FT-01", "lat": 22.53, "lon": 114.06, "tier": "important", "email": "li@example.com"}))
        .await
        .expect(201)
        .id();
    let o = app
        .post("/api/v1/work-orders", &c.agent, json!({"kind": "complaint", "channel": "wechat", "customer_id": customer, "area_code": "SZ-FT-01", "description": "服务态度差"}))
        .await
        .expect(201)
        .body;
    assert_eq!(o["address"], "深南大道 100 号");
    assert_eq!(o["lat"], 22.53);
    assert_eq!(o["caller"]["phone"], "13912345678");
    assert_eq!(o["grade"], "general");
    assert_eq!(o["category"], "service");
    let list = app
        .get(
            &format!("/api/v1/work-orders?customer_id={customer}"),
            &c.agent,
        )
        .await
        .body;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn a_repeat_while_the_first_is_in_flight_is_a_conflict() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let me = app.get("/api/v1/auth/me", &c.agent).await.body;
    let user_id = me["id"].as_str().unwrap().to_owned();
    // a request with this key is being processed (claimed, not yet done)
    {
        let mut conn = app.state.pool.get().unwrap();
        let now = app.clock.now().naive_utc();
        let claim = gridcall::db::idempotency::claim(
            &mut conn,
            &user_id,
            "slow-1",
            "h",
            now,
            now - TimeDelta::hours(24),
            now - TimeDelta::seconds(60),
        )
        .unwrap();
        assert_eq!(claim, gridcall::db::idempotency::Claim::Claimed);
    }
    let body = json!({"kind": "repair", "channel": "phone", "caller": {"phone": "13800000000"}, "area_code": "SZ-FT-01", "description": "停电", "force_new": true});
    let key = [("Idempotency-Key", "slow-1")];
    let r = app
        .call(
            Method::POST,
            "/api/v1/work-orders",
            Some(&c.agent),
            Some(body.clone()),
            &key,
        )
        .await
        .expect(409);
    assert_eq!(r.body["code"], "idempotency_in_flight");
    // the first request died: after the stale interval its claim is taken over
    app.clock.advance(TimeDelta::seconds(61));
    app.call(
        Method::POST,
        "/api/v1/work-orders",
        Some(&c.agent),
        Some(body),
        &key,
    )
    .await
    .expect(201);
}

#[actix_web::test]
async fn a_master_cannot_be_merged_and_cancelling_it_releases_its_merged_orders() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let master = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000001")
        .await;
    let child = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000002")
        .await;
    let other = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000003")
        .await;
    app.act(&c.agent, &child, "merge", json!({"master_id": master}))
        .await
        .expect(200);
    let r = app
        .act(&c.agent, &master, "merge", json!({"master_id": other}))
        .await
        .expect(422);
    assert_eq!(r.body["errors"][0]["field"], "master_id");
    app.act(&c.agent, &master, "cancel", json!({"reason": "误报"}))
        .await
        .expect(200);
    let o = app
        .get(&format!("/api/v1/work-orders/{child}"), &c.agent)
        .await
        .body;
    assert_eq!(o["status"], "new");
    assert!(o["master_id"].is_null());
    assert!(o["sla"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["stage"] == "dispatch" && t["instance"] == 2 && t["state"] == "running"));
}

/// The answer to a create or an action is built from what the transaction wrote (the row
/// back from its INSERT or UPDATE, the timers it changed), not read again: it must be exactly
/// what a later read shows, timers included.
#[actix_web::test]
async fn every_answer_is_the_order_as_a_later_read_shows_it() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let same_as_read = |answer: serde_json::Value, token: String| {
        let app = &app;
        async move {
            let id = answer["id"].as_str().unwrap().to_owned();
            let read = app
                .get(&format!("/api/v1/work-orders/{id}"), &token)
                .await
                .expect(200)
                .body;
            let mut answer = answer;
            // what only an answer carries: routing's reasons, a repeat call's or outage's note
            for extra in ["routing", "duplicate_of", "outage"] {
                answer.as_object_mut().unwrap().remove(extra);
            }
            assert_eq!(answer, read, "answer and later read differ");
            id
        }
    };
    let step = TimeDelta::minutes(2);
    // a repair through its whole life, with an unhappy callback that reopens it
    let created = app
        .order(&c.agent, "repair", "SZ-FT-01", "13800000001")
        .await
        .expect(201)
        .body;
    let id = same_as_read(created, c.agent.clone()).await;
    for (who, action, body) in [
        (&c.dispatcher, "dispatch", json!({})),
        (&c.field_member, "accept", json!({})),
        (&c.field_member, "depart", json!({})),
        (&c.field_member, "suspend", json!({"reason": "等待物资"})),
        (&c.field_member, "resume", json!({})),
        (&c.field_member, "arrive", json!({})),
        (
            &c.field_member,
            "resolve",
            json!({"resolution": "更换熔断器"}),
        ),
        (&c.agent, "callback", json!({"satisfaction": "unsatisfied"})),
        (&c.dispatcher, "dispatch", json!({"crew_id": c.field_crew})),
        (&c.dispatcher, "reject", json!({"reason": "人手不足"})),
        (&c.dispatcher, "dispatch", json!({"crew_id": c.field_crew})),
        (&c.dispatcher, "cancel", json!({"reason": "客户撤回"})),
    ] {
        app.clock.advance(step);
        let answer = app.act(who, &id, action, body).await.expect(200).body;
        same_as_read(answer, who.clone()).await;
    }
    // a complaint (contact and reply on the working calendar) and an inquiry answered at once
    let complaint = app
        .order(&c.agent, "complaint", "SZ-FT-01", "13800000002")
        .await
        .expect(201)
        .body;
    let complaint = same_as_read(complaint, c.agent.clone()).await;
    for (who, action, body) in [
        (&c.dispatcher, "dispatch", json!({"crew_id": c.unit})),
        (&c.unit_member, "accept", json!({})),
        (&c.unit_member, "contact", json!({"note": "已联系客户"})),
        (&c.unit_member, "resolve", json!({"resolution": "已答复"})),
        (&c.agent, "close", json!({"reason": "客户无法联系"})),
    ] {
        app.clock.advance(step);
        let answer = app
            .act(who, &complaint, action, body)
            .await
            .expect(200)
            .body;
        same_as_read(answer, who.clone()).await;
    }
    let inquiry = app
        .order(&c.agent, "inquiry", "SZ-FT-01", "13800000003")
        .await
        .expect(201)
        .body;
    let inquiry = same_as_read(inquiry, c.agent.clone()).await;
    let answer = app
        .act(
            &c.agent,
            &inquiry,
            "resolve",
            json!({"resolution": "已解答"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(answer["status"], "resolved");
    same_as_read(answer, c.agent.clone()).await;
}
