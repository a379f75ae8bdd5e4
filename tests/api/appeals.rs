//! Appeals (免责申请) over HTTP: who may file and see them, the 404/403/409/422 order, the
//! supervisors' mail, approval excusing the timer (with its `sla_excused` event), rejection,
//! and the month's closing.

use crate::helpers::*;
use chrono::{DateTime, TimeDelta, Utc};
use futures_util::future::join_all;
use gridcall::clock::Clock;
use serde_json::{json, Value};

fn timer<'a>(order: &'a Value, stage: &str, instance: i64) -> &'a Value {
    order["sla"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["stage"] == stage && t["instance"] == instance)
        .unwrap_or_else(|| panic!("no {stage}#{instance} timer in {}", order["sla"]))
}

fn appeal_body(order_id: &str, stage: &str, instance: i64) -> Value {
    json!({"work_order_id": order_id, "stage": stage, "instance": instance,
           "reason_code": "weather", "reason": "暴雨导致道路积水，无法按时到达"})
}

/// An accepted repair whose crew arrives 50 minutes after the call (urban target: 45):
/// the arrival instance ends breached, credited to the arriving crew.
async fn late_arrival(app: &TestApp, c: &Cast, crew: &str, member: &str, phone: &str) -> String {
    let id = app.new_order(&c.agent, "repair", "SZ-FT-01", phone).await;
    app.act(&c.dispatcher, &id, "dispatch", json!({"crew_id": crew}))
        .await
        .expect(200);
    app.act(member, &id, "accept", json!({})).await.expect(200);
    app.act(member, &id, "depart", json!({})).await.expect(200);
    app.clock.advance(TimeDelta::minutes(50));
    let o = app
        .act(member, &id, "arrive", json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(timer(&o, "arrival", 1)["state"], "breached");
    id
}

async fn user_id(app: &TestApp, token: &str) -> String {
    app.get("/api/v1/auth/me", token).await.expect(200).body["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn ids(list: &Value) -> Vec<String> {
    list["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {list}"))
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

#[actix_web::test]
async fn a_crew_appeals_a_late_arrival_and_a_supervisor_approves_it() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let boss = app
        .user(
            "super-mail",
            "supervisor",
            json!({"email": "boss@example.com", "area_codes": ["SZ-FT-01"]}),
        )
        .await;
    app.area("SZ-ELSE", "urban").await;
    app.user(
        "super-else",
        "supervisor",
        json!({"email": "else@example.com", "area_codes": ["SZ-ELSE"]}),
    )
    .await;
    let id = late_arrival(&app, &c, &c.field_crew, &c.field_member, "13800000001").await;
    let filed_at = app.clock.now();

    let r = app
        .post(
            "/api/v1/appeals",
            &c.field_member,
            appeal_body(&id, "arrival", 1),
        )
        .await
        .expect(201);
    let appeal = r.id();
    assert_eq!(
        r.header("location").as_deref(),
        Some(format!("/api/v1/appeals/{appeal}").as_str())
    );
    assert_eq!(r.body["work_order_id"], id.as_str());
    assert_eq!(r.body["stage"], "arrival");
    assert_eq!(r.body["instance"], 1);
    assert_eq!(r.body["reason_code"], "weather");
    assert_eq!(r.body["status"], "pending");
    assert_eq!(
        r.body["filed_by"],
        user_id(&app, &c.field_member).await.as_str()
    );
    assert_eq!(time(&r.body["filed_at"]), filed_at);
    assert_eq!(r.body["crew_id"], c.field_crew.as_str());
    assert_eq!(r.body["area_code"], "SZ-FT-01");
    assert_eq!(r.body["period"], "2026-11");
    assert!(r.body["decided_at"].is_null());

    // one pending appeal per timer
    let again = app
        .post(
            "/api/v1/appeals",
            &c.field_member,
            appeal_body(&id, "arrival", 1),
        )
        .await
        .expect(409);
    assert!(again.is_problem());
    assert_eq!(again.body["code"], "appeal_pending");

    // the area's supervisor is mailed in the filing's transaction, the other area's is not
    let mails: Vec<_> = app
        .outbox()
        .into_iter()
        .filter(|m| m.kind == "appeal_filed")
        .collect();
    assert_eq!(mails.len(), 1, "{mails:?}");
    assert_eq!(mails[0].recipient, "boss@example.com");
    assert_eq!(mails[0].work_order_id.as_deref(), Some(id.as_str()));
    app.clock.advance(TimeDelta::seconds(60));
    assert_eq!(app.send_mail().sent, 1);
    let files: Vec<_> = std::fs::read_dir(&app.mail_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1);
    let raw = std::fs::read(&files[0]).unwrap();
    let parsed = mail_parser::MessageParser::default().parse(&raw).unwrap();
    let number = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body["number"]
        .as_str()
        .unwrap()
        .to_owned();
    let subject = parsed.subject().unwrap();
    assert!(
        subject.contains("免责申请") && subject.contains(&number),
        "{subject}"
    );
    let body = parsed.body_text(0).unwrap();
    assert!(
        // the link opens the appeal on the supervisor board
        body.contains("恶劣天气")
            && body.contains(&format!("/appeals/{appeal}"))
            && !body.contains("/api/v1/"),
        "{body}"
    );

    // approve: the appeal is decided, the timer excused, the order audited
    let approved = app
        .post(
            &format!("/api/v1/appeals/{appeal}/approve"),
            &boss,
            json!({"note": "气象台发布暴雨预警，属实"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(approved["status"], "approved");
    assert_eq!(approved["decided_by"], user_id(&app, &boss).await.as_str());
    assert_eq!(approved["decision_note"], "气象台发布暴雨预警，属实");
    assert_eq!(time(&approved["decided_at"]), app.clock.now());
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .expect(200)
        .body;
    assert_eq!(timer(&o, "arrival", 1)["state"], "excused");
    assert!(
        !timer(&o, "arrival", 1)["breached_at"].is_null(),
        "the rest of the timer is left as it was"
    );
    let events = app
        .get(&format!("/api/v1/work-orders/{id}/events"), &c.dispatcher)
        .await
        .expect(200)
        .body;
    let excused = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "sla_excused")
        .unwrap_or_else(|| panic!("no sla_excused in {events}"));
    assert_eq!(excused["actor"]["username"], "super-mail");
    assert_eq!(excused["data"]["appeal_id"], appeal.as_str());
    assert_eq!(excused["data"]["stage"], "arrival");
    assert_eq!(excused["data"]["instance"], 1);
    assert_eq!(excused["data"]["reason_code"], "weather");
    let got = app
        .get(&format!("/api/v1/appeals/{appeal}"), &c.field_member)
        .await
        .expect(200);
    assert_eq!(got.body["status"], "approved");

    // decided once
    for (action, body) in [
        ("approve", json!({})),
        ("reject", json!({"reason": "重复"})),
    ] {
        let r = app
            .post(&format!("/api/v1/appeals/{appeal}/{action}"), &boss, body)
            .await
            .expect(409);
        assert_eq!(r.body["code"], "not_pending", "{action}");
    }
    // an excused timer is not breached any more; neither is one that was met
    for stage in ["arrival", "dispatch"] {
        let r = app
            .post(
                "/api/v1/appeals",
                &c.field_member,
                appeal_body(&id, stage, 1),
            )
            .await
            .expect(409);
        assert_eq!(r.body["code"], "not_breached", "{stage}");
    }
}

#[actix_web::test]
async fn who_may_file_see_and_decide_appeals() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let crew2 = app.crew("FT-C2", "field", &["SZ-FT-01"]).await;
    let member2 = app.user("crew2", "crew", json!({"crew_id": crew2})).await;
    app.area("SZ-ELSE", "urban").await;
    let far_boss = app
        .user(
            "super-else",
            "supervisor",
            json!({"area_codes": ["SZ-ELSE"]}),
        )
        .await;
    let far_dispatcher = app
        .user(
            "disp-else",
            "dispatcher",
            json!({"area_codes": ["SZ-ELSE"]}),
        )
        .await;
    let first = late_arrival(&app, &c, &c.field_crew, &c.field_member, "13800000001").await;
    let second = late_arrival(&app, &c, &crew2, &member2, "13800000002").await;
    let third = late_arrival(&app, &c, &c.field_crew, &c.field_member, "13800000003").await;

    // 404 before 403: another crew, an out-of-scope dispatcher, an unknown order or timer
    for (token, order, stage, instance) in [
        (&member2, &first, "arrival", 1),
        (&far_dispatcher, &first, "arrival", 1),
        (
            &c.field_member,
            &uuid::Uuid::new_v4().to_string(),
            "arrival",
            1,
        ),
        (&c.field_member, &first, "arrival", 2),
        (&c.field_member, &first, "callback", 1),
    ] {
        let r = app
            .post(
                "/api/v1/appeals",
                token,
                appeal_body(order, stage, instance),
            )
            .await
            .expect(404);
        assert!(r.is_problem());
    }
    // supervisors decide, they never file; agents neither
    for token in [&c.supervisor, &c.agent] {
        let r = app
            .post("/api/v1/appeals", token, appeal_body(&first, "arrival", 1))
            .await
            .expect(403);
        assert_eq!(r.body["code"], "forbidden");
    }
    // the body is checked last
    let bad = app
        .post(
            "/api/v1/appeals",
            &c.field_member,
            json!({"work_order_id": first, "stage": "arrival", "instance": 1,
                   "reason_code": "bad_luck", "reason": "x"}),
        )
        .await
        .expect(422);
    assert_eq!(bad.body["errors"][0]["field"], "reason_code");
    let bad = app
        .post(
            "/api/v1/appeals",
            &c.field_member,
            json!({"work_order_id": first, "stage": "arrival", "instance": 1,
                   "reason_code": "weather", "reason": "x".repeat(1001)}),
        )
        .await
        .expect(422);
    assert_eq!(bad.body["errors"][0]["field"], "reason");
    let bad = app
        .post(
            "/api/v1/appeals",
            &c.field_member,
            json!({"work_order_id": first, "stage": "arrival", "instance": 1,
                   "reason_code": "weather", "reason": "暴雨", "urgent": true}),
        )
        .await
        .expect(422);
    assert!(bad.is_problem());
    let bad = app
        .post(
            "/api/v1/appeals",
            &c.field_member,
            json!({"work_order_id": first, "stage": "lunch", "instance": 0,
                   "reason_code": "weather", "reason": "暴雨"}),
        )
        .await
        .expect(422);
    assert_eq!(bad.body["errors"][0]["field"], "stage");
    assert!(
        app.outbox().iter().all(|m| m.kind != "appeal_filed"),
        "nothing filed so far"
    );

    let a1 = app
        .post(
            "/api/v1/appeals",
            &c.field_member,
            appeal_body(&first, "arrival", 1),
        )
        .await
        .expect(201)
        .id();
    // a minute apart, so that "newest first" is their filing order
    app.clock.advance(TimeDelta::minutes(1));
    let a2 = app
        .post(
            "/api/v1/appeals",
            &member2,
            appeal_body(&second, "arrival", 1),
        )
        .await
        .expect(201)
        .id();
    // a dispatcher files too
    app.clock.advance(TimeDelta::minutes(1));
    let a3 = app
        .post(
            "/api/v1/appeals",
            &c.dispatcher,
            appeal_body(&third, "arrival", 1),
        )
        .await
        .expect(201);
    assert_eq!(
        a3.body["crew_id"],
        c.field_crew.as_str(),
        "counted against the credited crew"
    );
    let a3 = a3.id();

    // lists: newest first, each crew its own, agents never
    app.get("/api/v1/appeals", &c.agent).await.expect(403);
    let all = app
        .get("/api/v1/appeals", &c.supervisor)
        .await
        .expect(200)
        .body;
    assert_eq!(ids(&all), vec![a3.clone(), a2.clone(), a1.clone()]);
    assert!(all["next_cursor"].is_null());
    assert_eq!(
        ids(&app
            .get("/api/v1/appeals", &c.field_member)
            .await
            .expect(200)
            .body),
        vec![a3.clone(), a1.clone()]
    );
    assert_eq!(
        ids(&app.get("/api/v1/appeals", &member2).await.expect(200).body),
        vec![a2.clone()]
    );
    assert_eq!(
        ids(&app.get("/api/v1/appeals", &far_boss).await.expect(200).body),
        Vec::<String>::new(),
        "a scoped supervisor sees its areas' appeals only"
    );
    let p1 = app
        .get("/api/v1/appeals?limit=2", &c.dispatcher)
        .await
        .expect(200)
        .body;
    assert_eq!(ids(&p1), vec![a3.clone(), a2.clone()]);
    let cursor = p1["next_cursor"].as_str().unwrap().to_owned();
    let p2 = app
        .get(
            &format!("/api/v1/appeals?limit=2&cursor={cursor}"),
            &c.dispatcher,
        )
        .await
        .expect(200)
        .body;
    assert_eq!(ids(&p2), vec![a1.clone()]);
    assert!(p2["next_cursor"].is_null());
    let r = app
        .get("/api/v1/appeals?status=maybe", &c.supervisor)
        .await
        .expect(422);
    assert_eq!(r.body["errors"][0]["field"], "status");
    let r = app
        .get("/api/v1/appeals?area_code=NOWHERE", &c.supervisor)
        .await
        .expect(422);
    assert_eq!(r.body["errors"][0]["field"], "area_code");
    assert_eq!(
        ids(&app
            .get(
                "/api/v1/appeals?area_code=SZ-FT-01&status=pending",
                &c.supervisor
            )
            .await
            .expect(200)
            .body)
        .len(),
        3
    );
    app.get(&format!("/api/v1/appeals/{a2}"), &c.field_member)
        .await
        .expect(404);

    // decisions: supervisors and admins, within their areas
    app.post(
        &format!("/api/v1/appeals/{a2}/reject"),
        &far_boss,
        json!({"reason": "不属实"}),
    )
    .await
    .expect(404);
    for token in [&c.dispatcher, &member2] {
        app.post(
            &format!("/api/v1/appeals/{a2}/reject"),
            token,
            json!({"reason": "不属实"}),
        )
        .await
        .expect(403);
    }
    let r = app
        .post(
            &format!("/api/v1/appeals/{a2}/reject"),
            &c.supervisor,
            json!({}),
        )
        .await
        .expect(422);
    assert_eq!(r.body["errors"][0]["field"], "reason");
    let rejected = app
        .post(
            &format!("/api/v1/appeals/{a2}/reject"),
            &c.supervisor,
            json!({"reason": "当日天气晴好，理由不成立"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(rejected["status"], "rejected");
    assert_eq!(rejected["decision_note"], "当日天气晴好，理由不成立");
    let o = app
        .get(&format!("/api/v1/work-orders/{second}"), &c.agent)
        .await
        .body;
    assert_eq!(
        timer(&o, "arrival", 1)["state"],
        "breached",
        "a rejection leaves the breach"
    );
    assert_eq!(
        ids(&app
            .get("/api/v1/appeals?status=rejected", &c.supervisor)
            .await
            .expect(200)
            .body),
        vec![a2.clone()]
    );
    // after a rejection the crew may appeal again
    app.post(
        "/api/v1/appeals",
        &member2,
        appeal_body(&second, "arrival", 1),
    )
    .await
    .expect(201);
    app.post(
        &format!("/api/v1/appeals/{a1}/approve"),
        &app.admin,
        json!({}),
    )
    .await
    .expect(200);
}

#[actix_web::test]
async fn an_open_breach_is_excused_and_a_closed_month_takes_no_appeals() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    // a child area: the parent's supervisor decides its appeals and is mailed about them
    app.post(
        "/api/v1/areas",
        &app.admin,
        json!({"code": "SZ-FT-01-A", "name": "一区甲", "region_class": "urban", "parent_code": "SZ-FT-01"}),
    )
    .await
    .expect(201);
    let boss = app
        .user(
            "super-parent",
            "supervisor",
            json!({"email": "parent@example.com", "area_codes": ["SZ-FT-01"]}),
        )
        .await;
    let id = app
        .new_order(&c.agent, "repair", "SZ-FT-01-A", "13800000001")
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
    app.clock.advance(TimeDelta::minutes(50));
    app.scan();
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body;
    assert_eq!(timer(&o, "arrival", 1)["state"], "breached");
    assert!(
        timer(&o, "arrival", 1)["stopped_at"].is_null(),
        "still open"
    );

    let appeal = app
        .post(
            "/api/v1/appeals",
            &c.field_member,
            appeal_body(&id, "arrival", 1),
        )
        .await
        .expect(201)
        .id();
    assert!(app
        .outbox()
        .iter()
        .any(|m| m.kind == "appeal_filed" && m.recipient == "parent@example.com"));

    // an instance that started late on 30 November breaches after midnight
    app.clock.set(at("2026-11-30T23:00:00+08:00"));
    let late = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000002")
        .await;
    app.clock.set(at("2026-12-01T00:00:10+08:00"));
    app.scan();

    // a month with a pending appeal cannot be closed
    let r = app
        .post("/api/v1/scorecards/2026-11/close", &app.admin, json!({}))
        .await
        .expect(409);
    assert_eq!(r.body["code"], "appeals_pending");

    app.post(
        &format!("/api/v1/appeals/{appeal}/approve"),
        &boss,
        json!({}),
    )
    .await
    .expect(200);
    app.act(&c.field_member, &id, "depart", json!({}))
        .await
        .expect(200);
    let o = app
        .act(&c.field_member, &id, "arrive", json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(
        timer(&o, "arrival", 1)["state"],
        "excused",
        "an excused instance stays excused when it ends"
    );
    assert!(!timer(&o, "arrival", 1)["stopped_at"].is_null());

    // once November is closed its breaches can no longer be appealed
    app.post("/api/v1/scorecards/2026-11/close", &app.admin, json!({}))
        .await
        .expect(200);
    let o = app
        .get(&format!("/api/v1/work-orders/{late}"), &c.agent)
        .await
        .body;
    assert_eq!(timer(&o, "dispatch", 1)["state"], "breached");
    let r = app
        .post(
            "/api/v1/appeals",
            &c.dispatcher,
            appeal_body(&late, "dispatch", 1),
        )
        .await
        .expect(409);
    assert_eq!(r.body["code"], "period_closed");
}

#[actix_web::test]
async fn racing_filings_and_decisions_have_one_winner_each() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let id = late_arrival(&app, &c, &c.field_crew, &c.field_member, "13800000001").await;
    let filings = (0..8).map(|_| {
        app.post(
            "/api/v1/appeals",
            &c.field_member,
            appeal_body(&id, "arrival", 1),
        )
    });
    let results = join_all(filings).await;
    let won: Vec<_> = results.iter().filter(|r| r.status == 201).collect();
    assert_eq!(won.len(), 1, "one pending appeal per timer");
    for r in results.iter().filter(|r| r.status != 201) {
        assert_eq!(r.status, 409, "{}", r.body);
        assert_eq!(r.body["code"], "appeal_pending");
    }
    let appeal = won[0].id();
    let paths: Vec<(String, serde_json::Value)> = (0..8)
        .map(|i| {
            if i % 2 == 0 {
                (format!("/api/v1/appeals/{appeal}/approve"), json!({}))
            } else {
                (
                    format!("/api/v1/appeals/{appeal}/reject"),
                    json!({"reason": "不属实"}),
                )
            }
        })
        .collect();
    let decisions = paths
        .iter()
        .map(|(path, body)| app.post(path, &c.supervisor, body.clone()));
    let results = join_all(decisions).await;
    let won: Vec<_> = results.iter().filter(|r| r.status == 200).collect();
    assert_eq!(won.len(), 1, "one decision");
    for r in results.iter().filter(|r| r.status != 200) {
        assert_eq!(r.status, 409, "{}", r.body);
        assert_eq!(r.body["code"], "not_pending");
    }
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body;
    let excused = app
        .get(&format!("/api/v1/work-orders/{id}/events"), &c.dispatcher)
        .await
        .body["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "sla_excused")
        .count();
    if won[0].body["status"] == "approved" {
        assert_eq!(timer(&o, "arrival", 1)["state"], "excused");
        assert_eq!(excused, 1);
    } else {
        assert_eq!(timer(&o, "arrival", 1)["state"], "breached");
        assert_eq!(excused, 0);
    }
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn time(v: &Value) -> DateTime<Utc> {
    at(v.as_str().unwrap_or_else(|| panic!("not a time: {v}")))
}

/// A crew may appeal a breach credited to another crew on an order now assigned to it; the
/// appeal stays the credited crew's, and the crew that filed it still sees it.
#[actix_web::test]
async fn a_crew_sees_the_appeal_it_filed_on_another_crews_timer() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let other = app.crew("FT-C9", "field", &["SZ-FT-01"]).await;
    let member9 = app
        .user("crew9", "crew", json!({"crew_id": other.clone()}))
        .await;
    let id = late_arrival(&app, &c, &c.field_crew, &c.field_member, "13800000009").await;
    app.act(
        &c.field_member,
        &id,
        "resolve",
        json!({"resolution": "修复"}),
    )
    .await
    .expect(200);
    app.act(
        &c.agent,
        &id,
        "callback",
        json!({"satisfaction": "unsatisfied"}),
    )
    .await
    .expect(200);
    app.act(&c.dispatcher, &id, "dispatch", json!({"crew_id": other}))
        .await
        .expect(200);
    let appeal = app
        .post("/api/v1/appeals", &member9, appeal_body(&id, "arrival", 1))
        .await
        .expect(201)
        .id();
    app.get(&format!("/api/v1/appeals/{appeal}"), &member9)
        .await
        .expect(200);
    for token in [&member9, &c.field_member] {
        let list = app.get("/api/v1/appeals", token).await.expect(200).body;
        assert!(ids(&list).contains(&appeal), "{list}");
    }
}
