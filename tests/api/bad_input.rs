//! Bad input never causes a 500 or changes anything: a table of bodies and the answer each gets.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{json, Value};

fn valid() -> Value {
    json!({"kind": "repair", "channel": "phone", "caller": {"name": "张三", "phone": "13800000000"},
           "area_code": "SZ-FT-01", "address": "福华路 1 号", "lat": 22.54, "lon": 114.05, "description": "整栋楼停电",
           "force_new": true})
}

fn with(field: &str, value: Value) -> Value {
    let mut v = valid();
    match field.split_once('.') {
        Some((a, b)) => v[a][b] = value,
        None => v[field] = value,
    }
    v
}

#[actix_web::test]
async fn table_of_bad_create_bodies() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let cases: Vec<(&str, Value, &str)> = vec![
        ("wrong type", with("lat", json!("north")), "lat"),
        (
            "wrong type nested",
            with("caller.phone", json!(13800000000u64)),
            "caller.phone",
        ),
        ("unknown field", with("colour", json!("red")), "colour"),
        (
            "unknown nested field",
            with("caller.age", json!(3)),
            "caller.age",
        ),
        ("unknown kind", with("kind", json!("teleport")), "kind"),
        (
            "unknown priority",
            with("priority", json!("asap")),
            "priority",
        ),
        (
            "unknown channel",
            with("channel", json!("pigeon")),
            "channel",
        ),
        (
            "category of another kind",
            with("category", json!("service")),
            "category",
        ),
        ("latitude out of range", with("lat", json!(91.5)), "lat"),
        ("longitude out of range", with("lon", json!(-181)), "lon"),
        (
            "invalid phone",
            with("caller.phone", json!("12345")),
            "caller.phone",
        ),
        (
            "phone with SQL",
            with("caller.phone", json!("13800000000' OR '1'='1")),
            "caller.phone",
        ),
        (
            "description too long",
            with("description", json!("电".repeat(4001))),
            "description",
        ),
        (
            "blank description",
            with("description", json!("   ")),
            "description",
        ),
        (
            "address too long",
            with("address", json!("x".repeat(501))),
            "address",
        ),
        (
            "caller name too long",
            with("caller.name", json!("名".repeat(101))),
            "caller.name",
        ),
        (
            "unknown area",
            with("area_code", json!("NOWHERE")),
            "area_code",
        ),
        (
            "customer id not a uuid",
            with("customer_id", json!("42")),
            "customer_id",
        ),
        (
            "unknown customer",
            with("customer_id", json!(uuid::Uuid::new_v4())),
            "customer_id",
        ),
        ("grade on a repair", with("grade", json!("major")), "grade"),
        (
            "no caller and no customer",
            {
                let mut v = valid();
                v.as_object_mut().unwrap().remove("caller");
                v
            },
            "caller",
        ),
        (
            "missing description",
            {
                let mut v = valid();
                v.as_object_mut().unwrap().remove("description");
                v
            },
            "description",
        ),
        ("array body", json!([1, 2, 3]), ""),
    ];
    for (name, body, field) in cases {
        let r = app.post("/api/v1/work-orders", &c.agent, body).await;
        assert_eq!(r.status, 422, "{name}: {}", r.body);
        assert!(r.is_problem(), "{name}");
        let fields: Vec<&str> = r.body["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["field"].as_str().unwrap())
            .collect();
        assert!(
            fields.contains(&field),
            "{name}: expected {field} in {fields:?}"
        );
    }
    let r = app
        .post("/api/v1/work-orders", &c.agent, json!({"kind": "repair"}))
        .await
        .expect(422);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    for f in ["channel", "area_code", "description", "caller"] {
        assert!(
            fields.contains(&f),
            "every missing field is reported: {fields:?}"
        );
    }
    let list = app.get("/api/v1/work-orders", &c.agent).await.body;
    assert_eq!(
        list["items"].as_array().unwrap().len(),
        0,
        "nothing was created"
    );
}

#[actix_web::test]
async fn malformed_oversized_and_mistyped_requests() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    for body in [
        &b"{\"kind\": "[..],
        b"{'kind': 'repair'}",
        b"\xff\xfe",
        b"nul\x00l",
    ] {
        let r = app
            .raw(
                Method::POST,
                "/api/v1/work-orders",
                Some(&c.agent),
                "application/json",
                body.to_vec(),
            )
            .await;
        assert_eq!(r.status, 400, "{body:?}");
        assert!(r.is_problem());
        assert_eq!(r.body["code"], "malformed_json");
    }
    let big = serde_json::to_vec(&with("description", json!("x".repeat(200 * 1024)))).unwrap();
    let r = app
        .raw(
            Method::POST,
            "/api/v1/work-orders",
            Some(&c.agent),
            "application/json",
            big,
        )
        .await;
    assert_eq!(r.status, 413);
    assert!(r.is_problem());
    let r = app
        .raw(
            Method::POST,
            "/api/v1/work-orders",
            Some(&c.agent),
            "text/plain",
            b"hello".to_vec(),
        )
        .await;
    assert_eq!(r.status, 415);
    assert!(r.is_problem());
    let r = app
        .get("/api/v1/work-orders/not-a-uuid", &c.agent)
        .await
        .expect(400);
    assert!(r.is_problem());
    let r = app
        .get(
            &format!("/api/v1/work-orders/{}", uuid::Uuid::new_v4()),
            &c.agent,
        )
        .await
        .expect(404);
    assert!(r.is_problem());
}

#[actix_web::test]
async fn text_round_trips_exactly() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let texts = [
        "整栋楼停电，电梯困人 🚨⚡️",
        "Robert'); DROP TABLE work_orders;--",
        "100% _underscore_ \\backslash\\ \"quotes\"",
        "换行\n制表\t结束",
        "𠮷野家 — 罕用字",
    ];
    for text in texts {
        let o = app
            .post(
                "/api/v1/work-orders",
                &c.agent,
                with("description", json!(text)),
            )
            .await
            .expect(201)
            .body;
        assert_eq!(o["description"], text);
        let id = o["id"].as_str().unwrap();
        let back = app
            .get(&format!("/api/v1/work-orders/{id}"), &c.agent)
            .await
            .expect(200)
            .body;
        assert_eq!(back["description"], text);
    }
    // LIKE wildcards in a search match literally
    let r = app
        .get("/api/v1/work-orders?q=100%25%20_under", &c.agent)
        .await
        .expect(200)
        .body;
    assert_eq!(r["items"].as_array().unwrap().len(), 1);
    let r = app
        .get("/api/v1/work-orders?q=%25", &c.agent)
        .await
        .expect(200)
        .body;
    assert_eq!(r["items"].as_array().unwrap().len(), 1);
    let r = app
        .get("/api/v1/work-orders?q=DROP%20TABLE", &c.agent)
        .await
        .expect(200)
        .body;
    assert_eq!(r["items"].as_array().unwrap().len(), 1);
    let all = app
        .get("/api/v1/work-orders?limit=500", &c.agent)
        .await
        .body;
    assert_eq!(all["items"].as_array().unwrap().len(), texts.len());
}

#[actix_web::test]
async fn empty_cursors_whole_numbers_and_the_stream_status_order() {
    let app = spawn_app().await;
    cast(&app).await;
    // An empty cursor is the first page; one this service did not issue is 400.
    let first = app
        .get("/api/v1/crews?cursor=", &app.admin)
        .await
        .expect(200);
    assert!(first.body["items"]
        .as_array()
        .is_some_and(|i| !i.is_empty()));
    let r = app
        .get("/api/v1/crews?cursor=abc", &app.admin)
        .await
        .expect(400);
    assert_eq!(r.body["code"], "invalid_cursor");
    // JSON Schema's `integer` admits 5.0: so does the server; 5.5 is refused.
    let crew = |code: &str, capacity: serde_json::Value| json!({"code": code, "name": "抢修三班", "area_codes": ["SZ-FT-01"], "skills": ["repair"], "capacity": capacity});
    let r = app
        .post("/api/v1/crews", &app.admin, crew("F-WHOLE", json!(5.0)))
        .await
        .expect(201);
    assert_eq!(r.body["capacity"], 5);
    let r = app
        .post("/api/v1/crews", &app.admin, crew("F-HALF", json!(5.5)))
        .await
        .expect(422);
    assert_eq!(r.body["errors"][0]["field"], "capacity");
    // The stream checks the token before the resume position (401 before 400).
    let r = app
        .client
        .get(format!("{}/api/v1/events/stream", app.base))
        .header("Last-Event-ID", "-1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[actix_web::test]
async fn a_stored_value_this_version_cannot_read_is_an_error_not_a_default() {
    use diesel::RunQueryDsl;
    let app = spawn_app().await;
    let c = cast(&app).await;
    let path = format!("/api/v1/crews/{}", c.field_crew);
    app.get(&path, &app.admin).await.expect(200);
    for (column, value) in [("kind", "drone"), ("area_codes", "SZ-FT-01")] {
        let mut conn = app.state.pool.get().unwrap();
        diesel::sql_query(format!(
            "UPDATE crews SET {column} = '{value}' WHERE id = '{}'",
            c.field_crew
        ))
        .execute(&mut *conn)
        .unwrap();
        drop(conn);
        // Never read as a field crew or an empty list: 500, with nothing internal shown.
        let r = app.get(&path, &app.admin).await.expect(500);
        assert_eq!(r.body["code"], "internal_error", "{column}");
        assert!(!r.body["detail"].as_str().unwrap_or("").contains(value));
        let mut conn = app.state.pool.get().unwrap();
        let good = if column == "kind" {
            "field"
        } else {
            "[\"SZ-FT-01\"]"
        };
        diesel::sql_query(format!(
            "UPDATE crews SET {column} = '{good}' WHERE id = '{}'",
            c.field_crew
        ))
        .execute(&mut *conn)
        .unwrap();
    }
}

#[actix_web::test]
async fn an_order_or_timer_whose_stored_enum_this_version_cannot_read_is_an_error_not_a_default() {
    use diesel::RunQueryDsl;
    let app = spawn_app().await;
    let c = cast(&app).await;
    let id = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800138000")
        .await;
    let path = format!("/api/v1/work-orders/{id}");
    let before = app.get(&path, &app.admin).await.expect(200).body;
    let run = |sql: String| {
        let mut conn = app.state.pool.get().unwrap();
        diesel::sql_query(sql).execute(&mut *conn).unwrap();
    };
    let set = |column: &str, value: &str| {
        run(format!(
            "UPDATE work_orders SET {column} = {value} WHERE id = '{id}'"
        ))
    };
    let set_timer = |state: &str| {
        run(format!(
            "UPDATE sla_timers SET state = '{state}' WHERE work_order_id = '{id}' AND stage = 'arrival'"
        ))
    };
    for (column, bad, good) in [
        ("status", "'archived'", "'new'"),
        ("kind", "'drone'", "'repair'"),
        ("priority", "'asap'", "'normal'"),
        ("channel", "'fax'", "'phone'"),
        ("grade", "'minor'", "NULL"),
        ("satisfaction", "'meh'", "NULL"),
        ("suspended_from", "'paused'", "NULL"),
    ] {
        set(column, bad);
        // Never read as new, repair or "not suspended": 500, with nothing internal shown,
        // for the order itself and for a list that holds it.
        let r = app.get(&path, &app.admin).await.expect(500);
        assert_eq!(r.body["code"], "internal_error", "{column}");
        assert!(!r.body["detail"]
            .as_str()
            .unwrap_or("")
            .contains(bad.trim_matches('\'')));
        app.get("/api/v1/work-orders", &app.admin).await.expect(500);
        // an action on it is refused too
        app.post(&format!("{path}/urge"), &c.agent, json!({}))
            .await
            .expect(500);
        set(column, good);
    }
    // A timer's state likewise: never read as running or stopped.
    set_timer("lapsed");
    app.get(&path, &app.admin).await.expect(500);
    app.get("/api/v1/work-orders", &app.admin).await.expect(500);
    set_timer("running");
    let after = app.get(&path, &app.admin).await.expect(200).body;
    assert_eq!(after["status"], before["status"]);
    assert_eq!(
        after["urge_count"], before["urge_count"],
        "no urge was recorded"
    );
}
