//! Who may call what: every endpoint × every role, plus no token at all. Writes carry an
//! unknown field, so an allowed caller gets 422 and nothing changes.

use crate::helpers::*;
use reqwest::Method;
use serde_json::json;

#[actix_web::test]
async fn every_endpoint_by_every_role() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let customer = app
        .post("/api/v1/customers", &c.agent, json!({"account_no": "A-1", "name": "王五", "phone": "13700000000", "address": "x", "area_code": "SZ-FT-01"}))
        .await
        .expect(201)
        .id();
    let order = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await;
    let users = app.get("/api/v1/users?limit=500", &app.admin).await.body;
    let some_user = users["items"][0]["id"].as_str().unwrap().to_owned();
    let crew = c.field_crew.clone();
    let roles = [
        ("admin", app.admin.clone()),
        ("agent", c.agent.clone()),
        ("dispatcher", c.dispatcher.clone()),
        ("crew", c.field_member.clone()),
        ("supervisor", c.supervisor.clone()),
    ];
    let all = &["admin", "agent", "dispatcher", "crew", "supervisor"][..];
    // (method, path, who may, what the others get)
    let endpoints: Vec<(Method, String, &[&str], u16)> = vec![
        (Method::GET, "/api/v1/auth/me".into(), all, 403),
        (Method::POST, "/api/v1/auth/password".into(), all, 403),
        (Method::GET, "/api/v1/users".into(), &["admin"], 403),
        (Method::POST, "/api/v1/users".into(), &["admin"], 403),
        (
            Method::GET,
            format!("/api/v1/users/{some_user}"),
            &["admin"],
            403,
        ),
        (
            Method::PATCH,
            format!("/api/v1/users/{some_user}"),
            &["admin"],
            403,
        ),
        (Method::GET, "/api/v1/areas".into(), all, 403),
        (Method::POST, "/api/v1/areas".into(), &["admin"], 403),
        (Method::GET, "/api/v1/areas/SZ-FT-01".into(), all, 403),
        (
            Method::PATCH,
            "/api/v1/areas/SZ-FT-01".into(),
            &["admin"],
            403,
        ),
        (Method::GET, "/api/v1/crews".into(), all, 403),
        (Method::POST, "/api/v1/crews".into(), &["admin"], 403),
        (Method::GET, format!("/api/v1/crews/{crew}"), all, 403),
        (
            Method::PATCH,
            format!("/api/v1/crews/{crew}"),
            &["admin"],
            403,
        ),
        (
            Method::POST,
            format!("/api/v1/crews/{crew}/location"),
            &["admin", "dispatcher", "crew"],
            403,
        ),
        (
            Method::POST,
            format!("/api/v1/crews/{crew}/duty"),
            &["admin", "dispatcher", "crew"],
            403,
        ),
        (
            Method::POST,
            format!("/api/v1/crews/{}/duty", c.unit),
            &["admin", "dispatcher"],
            403,
        ),
        (
            Method::GET,
            "/api/v1/customers".into(),
            &["admin", "agent", "dispatcher", "supervisor"],
            403,
        ),
        (
            Method::POST,
            "/api/v1/customers".into(),
            &["admin", "agent", "dispatcher"],
            403,
        ),
        (
            Method::GET,
            format!("/api/v1/customers/{customer}"),
            &["admin", "agent", "dispatcher", "supervisor"],
            403,
        ),
        (
            Method::PATCH,
            format!("/api/v1/customers/{customer}"),
            &["admin", "agent", "dispatcher"],
            403,
        ),
        (Method::GET, "/api/v1/categories".into(), all, 403),
        (Method::GET, "/api/v1/work-orders".into(), all, 403),
        (
            Method::POST,
            "/api/v1/work-orders".into(),
            &["admin", "agent", "dispatcher"],
            403,
        ),
        (
            Method::GET,
            format!("/api/v1/work-orders/{order}"),
            &["admin", "agent", "dispatcher", "supervisor"],
            404,
        ),
        (
            Method::GET,
            format!("/api/v1/work-orders/{order}/events"),
            &["admin", "agent", "dispatcher", "supervisor"],
            404,
        ),
        (
            Method::PATCH,
            format!("/api/v1/work-orders/{order}"),
            &["admin", "agent", "dispatcher"],
            403,
        ),
        (
            Method::POST,
            format!("/api/v1/work-orders/{order}/notes"),
            &["admin", "agent", "dispatcher"],
            403,
        ),
    ];
    for (method, path, allowed, refused) in &endpoints {
        let body = (*method != Method::GET).then(|| json!({"zzz_unknown": true}));
        let r = app
            .call(method.clone(), path, None, body.clone(), &[])
            .await;
        assert_eq!(r.status, 401, "no token: {method} {path}");
        assert!(r.is_problem());
        for (role, token) in &roles {
            let r = app
                .call(method.clone(), path, Some(token), body.clone(), &[])
                .await;
            let want_refused = !allowed.contains(role);
            let expected = match (want_refused, body.is_some()) {
                // outside a crew user's scope: other crews' orders and crew records
                (true, _)
                    if *role == "crew"
                        && (path.contains("/work-orders/") || path.contains(&c.unit)) =>
                {
                    404
                }
                (true, _) => *refused,
                (false, true) => 422,
                (false, false) => 200,
            };
            assert_eq!(
                r.status.as_u16(),
                expected,
                "{role} {method} {path}: {}",
                r.body
            );
            assert!(r.status == 200 || r.is_problem(), "{role} {method} {path}");
        }
    }
}
