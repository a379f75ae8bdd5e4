//! Regression tests for the holes a security and domain review found (issue 10): outage
//! masters, scope over every area, the area tree, unmerge, repeat calls, login floods,
//! refresh chains, paged outages, crew positions, stream resume bounds, the note's own event.

use crate::helpers::*;
use chrono::TimeDelta;
use futures_util::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};

fn call(phone: &str, kind: &str, area: &str) -> Value {
    json!({"kind": kind, "channel": "phone", "caller": {"phone": phone}, "area_code": area, "description": "家里停电"})
}

async fn declare(app: &TestApp, token: &str, areas: &[&str]) -> Resp {
    app.post(
        "/api/v1/outages",
        token,
        json!({"area_codes": areas, "cause": "10kV 福华线跳闸", "started_at": start_time().to_rfc3339()}),
    )
    .await
}

async fn child_area(app: &TestApp, code: &str, parent: &str) {
    app.post(
        "/api/v1/areas",
        &app.admin,
        json!({"code": code, "name": code, "region_class": "urban", "parent_code": parent}),
    )
    .await
    .expect(201);
}

#[actix_web::test]
async fn an_active_outages_master_is_not_cancelled_or_merged_on_its_own() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let outage = declare(&app, &c.dispatcher, &["SZ-FT-01"])
        .await
        .expect(201)
        .body;
    let master = outage["master_id"].as_str().unwrap().to_owned();
    let r = app
        .post(
            &format!("/api/v1/work-orders/{master}/cancel"),
            &c.dispatcher,
            json!({"reason": "重复"}),
        )
        .await
        .expect(409);
    assert_eq!(r.body["code"], "outage_master");
    let other = app
        .order(&c.agent, "repair", "SZ-FT-01", "13900000009")
        .await
        .expect(201)
        .id();
    let r = app
        .post(
            &format!("/api/v1/work-orders/{master}/merge"),
            &c.dispatcher,
            json!({"master_id": other}),
        )
        .await
        .expect(409);
    assert_eq!(r.body["code"], "outage_master");
    // later calls still link to a live master
    let linked = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            call("13900000001", "repair", "SZ-FT-01"),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(linked["status"], "merged");
    assert_eq!(linked["master_id"], master.as_str());
    // once the outage is restored, its master is an ordinary order again
    app.post(
        &format!("/api/v1/outages/{}/restore", outage["id"].as_str().unwrap()),
        &c.dispatcher,
        json!({}),
    )
    .await
    .expect(200);
    app.post(
        &format!("/api/v1/work-orders/{master}/cancel"),
        &c.dispatcher,
        json!({"reason": "误报"}),
    )
    .await
    .expect(200);
}

#[actix_web::test]
async fn outage_changes_need_every_area_in_scope() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    app.area("Z2", "rural").await;
    let scoped = app
        .user("disp-z1", "dispatcher", json!({"area_codes": ["SZ-FT-01"]}))
        .await;
    let r = declare(&app, &scoped, &["SZ-FT-01", "Z2"])
        .await
        .expect(403);
    assert_eq!(r.body["code"], "out_of_scope");
    let outage = declare(&app, &c.dispatcher, &["SZ-FT-01", "Z2"])
        .await
        .expect(201)
        .body;
    let id = outage["id"].as_str().unwrap();
    app.get(&format!("/api/v1/outages/{id}"), &scoped)
        .await
        .expect(200);
    for (path, body) in [
        ("restore", json!({})),
        ("cancel", json!({"reason": "误报"})),
    ] {
        let r = app
            .post(&format!("/api/v1/outages/{id}/{path}"), &scoped, body)
            .await
            .expect(403);
        assert_eq!(r.body["code"], "out_of_scope", "{path}");
    }
    let r = app
        .patch(
            &format!("/api/v1/outages/{id}"),
            &scoped,
            json!({"cause": "改"}),
        )
        .await
        .expect(403);
    assert_eq!(r.body["code"], "out_of_scope");
    let o = app
        .get(&format!("/api/v1/outages/{id}"), &c.dispatcher)
        .await;
    assert_eq!(o.body["status"], "active", "nothing changed");
    assert_eq!(o.body["cause"], "10kV 福华线跳闸");
}

#[actix_web::test]
async fn an_area_covers_its_descendants() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    app.area("SZ", "urban").await;
    child_area(&app, "SZ-NS", "SZ").await;
    child_area(&app, "SZ-NS-01", "SZ-NS").await;
    let city = app
        .user("disp-sz", "dispatcher", json!({"area_codes": ["SZ"]}))
        .await;
    let t0 = start_time();
    // a user's scope on the city covers its districts' orders
    let order = app
        .order(&c.agent, "repair", "SZ-NS-01", "13900000002")
        .await
        .expect(201)
        .id();
    app.get(&format!("/api/v1/work-orders/{order}"), &city)
        .await
        .expect(200);
    let list = app
        .get("/api/v1/work-orders?area_code=SZ-NS-01", &city)
        .await
        .expect(200)
        .body;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    let other = app
        .order(&c.agent, "repair", "SZ-FT-01", "13900000003")
        .await
        .expect(201)
        .id();
    app.get(&format!("/api/v1/work-orders/{other}"), &city)
        .await
        .expect(404);
    // a force-majeure pause on the city moves its districts' deadlines
    app.post(
        "/api/v1/sla/pauses",
        &c.supervisor,
        json!({"area_codes": ["SZ"], "starts_at": (t0 + TimeDelta::minutes(10)).to_rfc3339(),
               "ends_at": (t0 + TimeDelta::minutes(30)).to_rfc3339(), "reason": "台风"}),
    )
    .await
    .expect(201);
    let o = app
        .get(&format!("/api/v1/work-orders/{order}"), &c.agent)
        .await
        .body;
    let arrival = o["sla"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["stage"] == "arrival")
        .unwrap()
        .clone();
    assert_eq!(
        arrival["due_at"],
        json!((t0 + TimeDelta::minutes(65))
            .format("%Y-%m-%dT%H:%M:%SZ")
            .to_string())
    );
    // an outage on the city links its districts' calls
    declare(&app, &city, &["SZ"]).await.expect(201);
    let linked = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            call("13900000004", "repair", "SZ-NS-01"),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(linked["status"], "merged");
    let lookup = app
        .get("/api/v1/outages/lookup?area_code=SZ-NS-01", &c.agent)
        .await
        .expect(200)
        .body;
    assert_eq!(lookup["items"].as_array().unwrap().len(), 1);
    // and not calls elsewhere
    let elsewhere = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            call("13900000005", "repair", "SZ-FT-01"),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(elsewhere["status"], "new");
}

#[actix_web::test]
async fn unmerge_releases_an_order_from_its_outage_and_arrival_counts_from_the_call() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let outage = declare(&app, &c.dispatcher, &["SZ-FT-01"])
        .await
        .expect(201)
        .body;
    let oid = outage["id"].as_str().unwrap();
    let linked = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            call("13900000006", "repair", "SZ-FT-01"),
        )
        .await
        .expect(201)
        .body;
    let id = linked["id"].as_str().unwrap();
    assert_eq!(linked["outage_id"], oid);
    app.clock.advance(TimeDelta::minutes(20));
    let o = app
        .post(
            &format!("/api/v1/work-orders/{id}/unmerge"),
            &c.agent,
            json!({"reason": "不是同一故障"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(o["status"], "new");
    assert!(o["outage_id"].is_null(), "{}", o["outage_id"]);
    let arrival = o["sla"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["stage"] == "arrival")
        .unwrap()
        .clone();
    assert_eq!(
        arrival["started_at"], linked["created_at"],
        "the customer has waited since the call"
    );
    let dispatch = o["sla"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["stage"] == "dispatch")
        .unwrap()
        .clone();
    assert_ne!(dispatch["started_at"], linked["created_at"]);
    let outage = app
        .get(&format!("/api/v1/outages/{oid}"), &c.agent)
        .await
        .body;
    assert_eq!(outage["linked_count"], 0);
    // an update to the outage no longer reaches it
    app.patch(
        &format!("/api/v1/outages/{oid}"),
        &c.dispatcher,
        json!({"cause": "变压器故障"}),
    )
    .await
    .expect(200);
    let events = app
        .get(&format!("/api/v1/work-orders/{id}/events"), &c.agent)
        .await
        .body;
    assert!(!events["items"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["type"] == "outage_updated"));
}

#[actix_web::test]
async fn only_an_order_still_being_worked_and_recent_is_repeated() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    // an inquiry answered on the call: the next call is a new inquiry
    let q = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            call("13700000001", "inquiry", "SZ-FT-01"),
        )
        .await
        .expect(201)
        .id();
    app.post(
        &format!("/api/v1/work-orders/{q}/resolve"),
        &c.agent,
        json!({"resolution": "已答复"}),
    )
    .await
    .expect(200);
    app.post(
        "/api/v1/work-orders",
        &c.agent,
        call("13700000001", "inquiry", "SZ-FT-01"),
    )
    .await
    .expect(201);
    // praise is never a repeat
    for _ in 0..2 {
        app.post(
            "/api/v1/work-orders",
            &c.agent,
            call("13700000002", "praise", "SZ-FT-01"),
        )
        .await
        .expect(201);
    }
    // a repair awaiting its callback: a new fault is a new order
    let id = app.accepted_repair(&c, "13700000003").await;
    for step in ["depart", "arrive"] {
        app.act(&c.field_member, &id, step, json!({}))
            .await
            .expect(200);
    }
    app.act(
        &c.field_member,
        &id,
        "resolve",
        json!({"resolution": "已修复"}),
    )
    .await
    .expect(200);
    app.post(
        "/api/v1/work-orders",
        &c.agent,
        call("13700000003", "repair", "SZ-FT-01"),
    )
    .await
    .expect(201);
    // an open order older than the window (7 days) is not repeated
    app.post(
        "/api/v1/work-orders",
        &c.agent,
        call("13700000004", "complaint", "SZ-FT-01"),
    )
    .await
    .expect(201);
    app.clock
        .advance(TimeDelta::days(7) + TimeDelta::minutes(1));
    app.post(
        "/api/v1/work-orders",
        &c.agent,
        call("13700000004", "complaint", "SZ-FT-01"),
    )
    .await
    .expect(201);
    // …while one inside it is
    app.post(
        "/api/v1/work-orders",
        &c.agent,
        call("13700000004", "complaint", "SZ-FT-01"),
    )
    .await
    .expect(200);
}

async fn login_raw(app: &TestApp, username: &str, password: &str) -> Resp {
    app.call(
        Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"username": username, "password": password})),
        &[],
    )
    .await
}

#[actix_web::test]
async fn a_login_flood_counts_exactly_and_others_still_log_in() {
    let app = spawn_app().await;
    app.user("victim", "agent", json!({})).await;
    app.user("bystander", "agent", json!({})).await;
    let guesses = (0..64).map(|i| {
        let app = &app;
        async move { login_raw(app, "victim", &format!("guess-{i}-wrong")).await }
    });
    let answers = join_all(guesses).await;
    let unauthorized = answers.iter().filter(|r| r.status == 401).count();
    let throttled = answers.iter().filter(|r| r.status == 429).count();
    assert_eq!(
        (unauthorized, throttled),
        (5, 59),
        "exactly the limit is checked; the rest are refused before hashing"
    );
    assert!(answers
        .iter()
        .filter(|r| r.status == 429)
        .all(|r| r.header("retry-after").is_some()));
    login_raw(&app, "victim", PASSWORD).await.expect(429);
    login_raw(&app, "bystander", PASSWORD).await.expect(200);
    // the same user logging in on 16 connections at once is not a flood: attempts still
    // being checked make the others wait, they do not count as failures
    let logins = (0..16).map(|_| login_raw(&app, "bystander", PASSWORD));
    for r in join_all(logins).await {
        r.expect(200);
    }
    // 429 answers were not counted: the window ends 15 min after the first failure
    app.clock
        .advance(TimeDelta::minutes(15) + TimeDelta::seconds(1));
    login_raw(&app, "victim", PASSWORD).await.expect(200);
}

#[actix_web::test]
async fn twenty_failures_from_any_addresses_lock_the_username_everywhere() {
    use gridcall::service::auth::{begin_login, finish_login, LoginPolicy};
    let app = spawn_app().await;
    let policy = LoginPolicy {
        max_failures: 5,
        max_failures_any_address: 20,
        window: TimeDelta::minutes(15),
        refresh_lifetime: TimeDelta::hours(12),
        chain_lifetime: TimeDelta::hours(24),
    };
    let now = start_time();
    let mut conn = app.state.pool.get().unwrap();
    for i in 0..20 {
        let address = format!("10.0.0.{}", i / 4);
        let attempt = begin_login(&mut conn, "root", &address, now, policy)
            .unwrap_or_else(|e| panic!("attempt {i} from {address}: {e}"))
            .expect("nothing else is being checked");
        assert!(finish_login(&mut conn, attempt, false, now, policy).is_err());
    }
    let e = begin_login(&mut conn, "root", "10.9.9.9", now, policy).unwrap_err();
    assert!(e.to_string().contains("every address"), "{e}");
    // another user from one of those addresses is not affected
    let other = begin_login(&mut conn, "other", "10.0.0.1", now, policy);
    assert!(matches!(other, Ok(Some(_))));
    // while an attempt is being checked, one past the limit waits instead of failing
    let policy = LoginPolicy {
        max_failures: 1,
        ..policy
    };
    let first = begin_login(&mut conn, "third", "10.0.0.7", now, policy)
        .unwrap()
        .unwrap();
    assert!(begin_login(&mut conn, "third", "10.0.0.7", now, policy)
        .unwrap()
        .is_none());
    assert!(finish_login(&mut conn, first, false, now, policy).is_err());
    assert!(begin_login(&mut conn, "third", "10.0.0.7", now, policy).is_err());
}

#[actix_web::test]
async fn a_refresh_chain_ends_a_day_after_its_login() {
    let app = spawn_app().await;
    let mut token = login_raw(&app, "root", PASSWORD).await.expect(200).body["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let refresh = |t: String| {
        let app = &app;
        async move {
            app.call(
                Method::POST,
                "/api/v1/auth/refresh",
                None,
                Some(json!({"refresh_token": t})),
                &[],
            )
            .await
        }
    };
    for _ in 0..2 {
        app.clock.advance(TimeDelta::hours(11));
        token = refresh(token).await.expect(200).body["refresh_token"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    // 22 h after the login: the newest token expires with the chain, at 24 h
    app.clock
        .advance(TimeDelta::hours(2) + TimeDelta::seconds(1));
    let r = refresh(token).await.expect(401);
    assert!(r.is_problem());
}

#[actix_web::test]
async fn outages_are_listed_a_page_at_a_time() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    for code in ["A1", "A2", "A3"] {
        app.area(code, "urban").await;
        declare(&app, &c.dispatcher, &[code]).await.expect(201);
        app.clock.advance(TimeDelta::minutes(1));
    }
    let first = app
        .get("/api/v1/outages?limit=2", &c.agent)
        .await
        .expect(200)
        .body;
    assert_eq!(first["items"].as_array().unwrap().len(), 2);
    let cursor = first["next_cursor"].as_str().unwrap();
    let second = app
        .get(
            &format!("/api/v1/outages?limit=2&cursor={cursor}"),
            &c.agent,
        )
        .await
        .expect(200)
        .body;
    assert_eq!(second["items"].as_array().unwrap().len(), 1);
    assert!(second["next_cursor"].is_null());
    let scoped = app
        .user("disp-a3", "dispatcher", json!({"area_codes": ["A3"]}))
        .await;
    let mine = app
        .get("/api/v1/outages?limit=1", &scoped)
        .await
        .expect(200)
        .body;
    assert_eq!(mine["items"][0]["area_codes"], json!(["A3"]));
    app.get("/api/v1/outages?cursor=nonsense", &c.agent)
        .await
        .expect(400);
    app.get("/api/v1/outages?limit=0", &c.agent)
        .await
        .expect(422);
}

#[actix_web::test]
async fn crew_users_see_their_own_crews_position_only() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let other = app.crew("FT-C2", "field", &["SZ-FT-01"]).await;
    let own = app
        .get(&format!("/api/v1/crews/{}", c.field_crew), &c.field_member)
        .await
        .expect(200)
        .body;
    assert!(own["lat"].is_number());
    let theirs = app
        .get(&format!("/api/v1/crews/{other}"), &c.field_member)
        .await
        .expect(200)
        .body;
    assert!(theirs["lat"].is_null() && theirs["lon"].is_null());
    let list = app.get("/api/v1/crews", &c.field_member).await.body;
    for crew in list["items"].as_array().unwrap() {
        assert_eq!(crew["lat"].is_number(), crew["id"] == c.field_crew.as_str());
    }
    let seen = app
        .get(&format!("/api/v1/crews/{other}"), &c.dispatcher)
        .await
        .body;
    assert!(seen["lat"].is_number(), "dispatchers route by position");
}

#[actix_web::test]
async fn a_scoped_stream_does_not_resume_from_too_far_back() {
    let app = spawn_app_with(|s| s.events.resume_max_events = 2).await;
    let c = cast(&app).await;
    for i in 0..4 {
        app.order(&c.agent, "repair", "SZ-FT-01", &format!("1360000000{i}"))
            .await
            .expect(201);
    }
    // the hub publishes a position once the events are final: wait for the four
    for _ in 0..100 {
        let page = app
            .get("/api/v1/events?limit=500", &c.supervisor)
            .await
            .body;
        if page["position"].as_i64().unwrap_or(0) >= 4 {
            break;
        }
        actix_web::rt::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let stream = |token: String| {
        let app = &app;
        async move {
            app.call(
                Method::GET,
                "/api/v1/events/stream",
                Some(&token),
                None,
                &[("Last-Event-ID", "0")],
            )
            .await
        }
    };
    // a stream that opened would never end: bounded, so a regression fails instead of hanging
    let r = actix_web::rt::time::timeout(
        std::time::Duration::from_secs(10),
        stream(c.field_member.clone()),
    )
    .await
    .expect("refused at once, not streamed")
    .expect(410);
    assert_eq!(r.body["code"], "resume_too_old");
    let newest = r.body["newest_event_id"].as_i64().unwrap();
    assert!(newest >= 4, "{newest}");
    // resuming from near the newest event is served
    let near = (newest - 1).to_string();
    let token = c.field_member.clone();
    let open = app
        .client
        .get(format!("{}/api/v1/events/stream", app.base))
        .bearer_auth(&token)
        .header("Last-Event-ID", near)
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 200);
    // an unscoped reader may resume from the start
    let open = app
        .client
        .get(format!("{}/api/v1/events/stream", app.base))
        .bearer_auth(&c.supervisor)
        .header("Last-Event-ID", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 200);
}

#[actix_web::test]
async fn a_note_answers_with_its_own_event() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let id = app
        .order(&c.agent, "repair", "SZ-FT-01", "13500000000")
        .await
        .expect(201)
        .id();
    let notes = (0..8).map(|i| {
        let (app, id, token) = (&app, id.clone(), c.agent.clone());
        async move {
            app.post(
                &format!("/api/v1/work-orders/{id}/notes"),
                &token,
                json!({"text": format!("备注 {i}")}),
            )
            .await
        }
    });
    for (i, r) in join_all(notes).await.into_iter().enumerate() {
        let r = r.expect(201);
        assert_eq!(r.body["type"], "note");
        assert_eq!(r.body["data"]["text"], format!("备注 {i}"));
    }
}

#[actix_web::test]
async fn an_important_customer_is_known_by_phone_and_restore_follows_the_region() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    app.area("RM-01", "remote").await;
    app.crew("RM-C1", "field", &["RM-01"]).await;
    app.post(
        "/api/v1/customers",
        &c.agent,
        json!({"account_no": "9000000001", "name": "医院", "phone": "13311112222", "address": "山区路 1 号",
               "area_code": "RM-01", "tier": "important"}),
    )
    .await
    .expect(201);
    let target = |o: &Value, stage: &str| -> Value {
        o["sla"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["stage"] == stage)
            .map(|t| t["target"].clone())
            .unwrap_or(Value::Null)
    };
    // the caller gives only a phone (written another way): still the important customer
    let o = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            call("+8613311112222", "repair", "RM-01"),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(
        target(&o, "arrival"),
        "45m",
        "urban arrival target everywhere"
    );
    let id = o["id"].as_str().unwrap().to_owned();
    let crew = app.get("/api/v1/crews", &c.dispatcher).await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["code"] == "RM-C1")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.act(&c.dispatcher, &id, "dispatch", json!({"crew_id": crew}))
        .await
        .expect(200);
    for step in ["accept", "depart", "arrive"] {
        app.act(&c.dispatcher, &id, step, json!({}))
            .await
            .expect(200);
    }
    let o = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
        .await
        .body;
    assert_eq!(
        target(&o, "restore"),
        "6h",
        "restore follows the remote region"
    );
    // every stage started later (accept at dispatch, restore on arrival) is under the
    // important customer's rule too, found by the caller's phone
    let rules = |detail: &Value| -> Vec<(String, String)> {
        detail["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["stage"].as_str().unwrap().to_owned(),
                    t["rule"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let detail = app
        .get(&format!("/api/v1/work-orders/{id}/sla"), &c.dispatcher)
        .await
        .expect(200)
        .body;
    let started = rules(&detail);
    assert!(started.iter().any(|(s, _)| s == "restore"));
    for (stage, rule) in &started {
        assert_eq!(rule, "repair, important customer, remote", "{stage}");
    }
    // and by the customer's id, when the order names the account
    let customer = app
        .get("/api/v1/customers?account_no=9000000001", &c.agent)
        .await
        .body["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_account = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            json!({"kind": "repair", "channel": "phone", "customer_id": customer,
            "caller": {"phone": "13900000000"}, "area_code": "RM-01", "description": "又停电了"}),
        )
        .await
        .expect(201)
        .id();
    app.act(
        &c.dispatcher,
        &by_account,
        "dispatch",
        json!({"crew_id": crew}),
    )
    .await
    .expect(200);
    let detail = app
        .get(
            &format!("/api/v1/work-orders/{by_account}/sla"),
            &c.dispatcher,
        )
        .await
        .expect(200)
        .body;
    let started = rules(&detail);
    assert!(started.iter().any(|(s, _)| s == "accept"));
    for (stage, rule) in &started {
        assert_eq!(rule, "repair, important customer, remote", "{stage}");
    }
    // an ordinary caller in a remote area: the remote rule, not a rule meant elsewhere
    let o = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            call("13344445555", "repair", "RM-01"),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(target(&o, "arrival"), "120m");
}

#[actix_web::test]
async fn a_timer_running_into_a_year_without_holiday_data_says_so() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    // 2026-12-28: a complaint's 5-working-day reply runs into 2027, which cn.toml lacks
    let late_december = chrono::DateTime::parse_from_rfc3339("2026-12-28T10:00:00+08:00")
        .unwrap()
        .with_timezone(&chrono::Utc);
    app.clock.advance(late_december - start_time());
    let o = app
        .post(
            "/api/v1/work-orders",
            &c.agent,
            call("13600000009", "complaint", "SZ-FT-01"),
        )
        .await
        .expect(201)
        .body;
    let reply = o["sla"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["stage"] == "reply")
        .unwrap()
        .clone();
    assert_eq!(reply["holiday_data_missing"], json!([2027]));
    let contact = o["sla"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["stage"] == "contact")
        .unwrap()
        .clone();
    assert_eq!(
        contact["holiday_data_missing"],
        json!([]),
        "24x7 misses nothing"
    );
    let ready = app
        .call(Method::GET, "/readyz", None, None, &[])
        .await
        .expect(200)
        .body;
    let warnings = ready["warnings"].to_string();
    assert!(warnings.contains("run into 2027"), "{warnings}");
}

#[actix_web::test]
async fn no_call_is_linked_to_an_outage_that_ended_meanwhile() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let outage = declare(&app, &c.dispatcher, &["SZ-FT-01"])
        .await
        .expect(201)
        .body;
    let oid = outage["id"].as_str().unwrap().to_owned();
    let calls = (0..40).map(|i| {
        let (app, token) = (&app, c.agent.clone());
        async move {
            app.post(
                "/api/v1/work-orders",
                &token,
                call(&format!("1380000{i:04}"), "repair", "SZ-FT-01"),
            )
            .await
        }
    });
    let restore = async {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(20)).await;
        app.post(
            &format!("/api/v1/outages/{oid}/restore"),
            &c.dispatcher,
            json!({}),
        )
        .await
        .expect(200)
    };
    let (answers, _) = tokio::join!(join_all(calls), restore);
    for r in answers {
        let id = r.expect(201).id();
        let o = app
            .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
            .await
            .body;
        // linked before the restore committed: resolved with it; after: a new order of its own
        match o["status"].as_str().unwrap() {
            "resolved" => assert_eq!(o["outage_id"], oid.as_str()),
            "new" => assert!(o["master_id"].is_null()),
            other => panic!("order {id} left {other} behind the ended outage: {o}"),
        }
    }
}
