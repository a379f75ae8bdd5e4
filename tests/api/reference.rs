//! Users, areas, crews and customers: create, read, change, duplicates, validation.

use crate::helpers::*;
use serde_json::json;

#[actix_web::test]
async fn areas_crews_and_duplicates() {
    let app = spawn_app().await;
    app.area("SZ-FT-01", "urban").await;
    let r = app
        .post(
            "/api/v1/areas",
            &app.admin,
            json!({"code": "SZ-FT-01", "name": "again", "region_class": "urban"}),
        )
        .await
        .expect(409);
    assert_eq!(r.body["code"], "already_exists");
    let r = app
        .post("/api/v1/areas", &app.admin, json!({"code": "SZ-FT-02", "name": "二区", "region_class": "rural", "parent_code": "SZ-FT-01", "backup_area_codes": ["SZ-FT-01"]}))
        .await
        .expect(201);
    assert_eq!(r.body["calendar"], "cn");
    assert_eq!(r.body["backup_area_codes"], json!(["SZ-FT-01"]));
    app.post(
        "/api/v1/areas",
        &app.admin,
        json!({"code": "X", "name": "x", "region_class": "suburb"}),
    )
    .await
    .expect(422);
    app.post(
        "/api/v1/areas",
        &app.admin,
        json!({"code": "bad code!", "name": "x", "region_class": "urban"}),
    )
    .await
    .expect(422);
    app.post("/api/v1/areas", &app.admin, json!({"code": "SZ-3", "name": "x", "region_class": "urban", "backup_area_codes": ["NOPE"]})).await.expect(422);
    let r = app
        .patch(
            "/api/v1/areas/SZ-FT-02",
            &app.admin,
            json!({"region_class": "remote", "calendar": "24x7"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["region_class"], "remote");
    app.patch("/api/v1/areas/NOPE", &app.admin, json!({"name": "x"}))
        .await
        .expect(404);
    app.get("/api/v1/areas/NOPE", &app.admin).await.expect(404);
    let page = app
        .get("/api/v1/areas?limit=1", &app.admin)
        .await
        .expect(200)
        .body;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    let next = app
        .get(
            &format!(
                "/api/v1/areas?limit=1&cursor={}",
                page["next_cursor"].as_str().unwrap()
            ),
            &app.admin,
        )
        .await
        .body;
    assert_eq!(next["items"][0]["code"], "SZ-FT-02");
    assert!(next["next_cursor"].is_null());

    let crew = app.crew("C1", "field", &["SZ-FT-01"]).await;
    let r = app
        .post(
            "/api/v1/crews",
            &app.admin,
            json!({"code": "C1", "name": "x", "area_codes": ["SZ-FT-01"], "capacity": 1}),
        )
        .await
        .expect(409);
    assert_eq!(r.body["code"], "already_exists");
    let r = app
        .post(
            "/api/v1/crews",
            &app.admin,
            json!({"code": "C2", "name": "x", "area_codes": ["NOPE"], "capacity": -1, "lat": 95}),
        )
        .await
        .expect(422);
    assert!(r.body["errors"].as_array().unwrap().len() >= 2);
    let r = app.post("/api/v1/crews", &app.admin, json!({"code": "U1", "name": "投诉处理组", "kind": "unit", "area_codes": ["SZ-FT-01"], "skills": ["complaints"], "capacity": 10})).await.expect(201);
    assert_eq!(r.body["kind"], "unit");
    assert_eq!(r.body["on_duty"], true);
    let member = app.user("crew1", "crew", json!({"crew_id": crew})).await;
    let disp = app.user("disp1", "dispatcher", json!({})).await;
    let r = app
        .post(
            &format!("/api/v1/crews/{crew}/location"),
            &member,
            json!({"lat": 22.6, "lon": 114.1}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["lat"], 22.6);
    assert!(r.body["located_at"].is_string());
    app.post(
        &format!("/api/v1/crews/{crew}/location"),
        &member,
        json!({"lat": 122.6, "lon": 114.1}),
    )
    .await
    .expect(422);
    let r = app
        .post(
            &format!("/api/v1/crews/{crew}/duty"),
            &disp,
            json!({"on_duty": false}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["on_duty"], false);
    let r = app
        .patch(
            &format!("/api/v1/crews/{crew}"),
            &app.admin,
            json!({"capacity": 7, "skills": ["repair"]}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["capacity"], 7);
    assert_eq!(r.body["skills"], json!(["repair"]));
}

#[actix_web::test]
async fn users_and_customers() {
    let app = spawn_app().await;
    app.area("SZ-FT-01", "urban").await;
    let r = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"username": "root", "password": PASSWORD, "role": "agent", "display_name": "x"}),
        )
        .await
        .expect(409);
    assert_eq!(r.body["code"], "already_exists");
    let r = app
        .post(
            "/api/v1/users",
            &app.admin,
            json!({"username": "c", "password": "short", "role": "crew"}),
        )
        .await
        .expect(422);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"password") && fields.contains(&"crew_id"),
        "{fields:?}"
    );
    app.post(
        "/api/v1/users",
        &app.admin,
        json!({"username": "w", "password": PASSWORD, "role": "wizard"}),
    )
    .await
    .expect(422);
    app.post("/api/v1/users", &app.admin, json!({"username": "s", "password": PASSWORD, "role": "supervisor", "area_codes": ["NOPE"]})).await.expect(422);
    let r = app.post("/api/v1/users", &app.admin, json!({"username": "sup", "password": PASSWORD, "role": "supervisor", "display_name": "班长", "area_codes": ["SZ-FT-01"]})).await.expect(201);
    assert_eq!(r.body["area_codes"], json!(["SZ-FT-01"]));
    assert!(r.body.get("password").is_none() && r.body.get("password_hash").is_none());
    let id = r.id();
    let r = app
        .patch(
            &format!("/api/v1/users/{id}"),
            &app.admin,
            json!({"role": "dispatcher", "display_name": "调度"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["role"], "dispatcher");
    app.get(
        &format!("/api/v1/users/{}", uuid::Uuid::new_v4()),
        &app.admin,
    )
    .await
    .expect(404);

    let agent = app.user("agent1", "agent", json!({})).await;
    let body = json!({"account_no": "0100012345", "name": "李四", "phone": "0755-83451234", "address": "深南大道 100 号", "area_code": "SZ-FT-01"});
    let r = app
        .post("/api/v1/customers", &agent, body.clone())
        .await
        .expect(201);
    assert_eq!(r.body["phone"], "075583451234");
    assert_eq!(r.body["tier"], "normal");
    let id = r.id();
    let r = app
        .post("/api/v1/customers", &agent, body)
        .await
        .expect(409);
    assert_eq!(r.body["code"], "already_exists");
    app.post("/api/v1/customers", &agent, json!({"account_no": "2", "name": "x", "phone": "123", "address": "y", "area_code": "NOPE", "tier": "vip"})).await.expect(422);
    let found = app
        .get("/api/v1/customers?phone=0755-83451234", &agent)
        .await
        .expect(200)
        .body;
    assert_eq!(found["items"][0]["id"], id.as_str());
    let found = app
        .get("/api/v1/customers?q=%E6%9D%8E", &agent)
        .await
        .expect(200)
        .body;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let found = app
        .get("/api/v1/customers?account_no=0100012345", &agent)
        .await
        .expect(200)
        .body;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);
    let r = app
        .patch(
            &format!("/api/v1/customers/{id}"),
            &agent,
            json!({"tier": "sensitive", "phone": "13600000000"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["tier"], "sensitive");
    assert_eq!(r.body["phone"], "13600000000");
    let cats = app.get("/api/v1/categories", &agent).await.expect(200).body;
    let repair = cats["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kind"] == "repair")
        .unwrap()
        .clone();
    assert_eq!(repair["categories"][0]["code"], "no_power");
}
