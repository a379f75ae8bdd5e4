//! Authentication: login, throttling, refresh rotation and reuse, logout, password change,
//! deactivation, and attacks on the access token.

use crate::helpers::*;
use base64::Engine;
use chrono::TimeDelta;
use reqwest::Method;
use serde_json::json;

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

async fn refresh(app: &TestApp, token: &str) -> Resp {
    app.call(
        Method::POST,
        "/api/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": token})),
        &[],
    )
    .await
}

#[actix_web::test]
async fn login_me_and_bad_credentials() {
    let app = spawn_app_with(|s| s.auth.access_token_minutes = 15).await;
    let r = login_raw(&app, "root", PASSWORD).await.expect(200);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 900);
    assert_eq!(r.body["user"]["role"], "admin");
    assert!(r.body["user"].get("password_hash").is_none());
    let me = app
        .get("/api/v1/auth/me", r.body["access_token"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(me.body["username"], "root");
    let wrong = login_raw(&app, "root", "not-the-password")
        .await
        .expect(401);
    let unknown = login_raw(&app, "nobody", "not-the-password")
        .await
        .expect(401);
    assert!(wrong.is_problem());
    assert_eq!(
        wrong.body["code"], unknown.body["code"],
        "unknown users look like wrong passwords"
    );
    app.call(Method::GET, "/api/v1/auth/me", None, None, &[])
        .await
        .expect(401);
}

#[actix_web::test]
async fn five_failures_throttle_even_the_right_password() {
    let app = spawn_app().await;
    for _ in 0..5 {
        login_raw(&app, "root", "wrong-password").await.expect(401);
    }
    let r = login_raw(&app, "root", PASSWORD).await.expect(429);
    assert!(r.is_problem());
    let retry: i64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!(retry > 0 && retry <= 15 * 60, "{retry}");
    // other users are not affected
    app.user("agent1", "agent", json!({})).await;
    app.clock
        .advance(TimeDelta::minutes(15) + TimeDelta::seconds(1));
    login_raw(&app, "root", PASSWORD).await.expect(200);
}

#[actix_web::test]
async fn refresh_rotates_and_reuse_revokes_the_chain() {
    let app = spawn_app().await;
    let first = login_raw(&app, "root", PASSWORD).await.expect(200).body;
    let r1 = first["refresh_token"].as_str().unwrap().to_owned();
    let second = refresh(&app, &r1).await.expect(200).body;
    let r2 = second["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(r1, r2);
    app.get("/api/v1/auth/me", second["access_token"].as_str().unwrap())
        .await
        .expect(200);
    // r1 again: reuse — the chain, r2 included, is revoked
    let r = refresh(&app, &r1).await.expect(401);
    assert_eq!(r.body["code"], "refresh_token_reused");
    refresh(&app, &r2).await.expect(401);
    refresh(&app, "made-up").await.expect(401);
    // expiry
    let third = login_raw(&app, "root", PASSWORD).await.expect(200).body;
    app.clock.advance(TimeDelta::hours(13));
    refresh(&app, third["refresh_token"].as_str().unwrap())
        .await
        .expect(401);
}

#[actix_web::test]
async fn logout_password_change_and_deactivation_revoke() {
    let app = spawn_app().await;
    let s = login_raw(&app, "root", PASSWORD).await.expect(200).body;
    let access = s["access_token"].as_str().unwrap();
    app.post(
        "/api/v1/auth/logout",
        access,
        json!({"refresh_token": s["refresh_token"]}),
    )
    .await
    .expect(204);
    refresh(&app, s["refresh_token"].as_str().unwrap())
        .await
        .expect(401);

    app.user("agent1", "agent", json!({})).await;
    let s = login_raw(&app, "agent1", PASSWORD).await.expect(200).body;
    let access = s["access_token"].as_str().unwrap().to_owned();
    let r = app
        .post(
            "/api/v1/auth/password",
            &access,
            json!({"current_password": "wrong-one-123", "new_password": "New-pass-2026!"}),
        )
        .await
        .expect(422);
    assert_eq!(r.body["errors"][0]["field"], "current_password");
    app.post(
        "/api/v1/auth/password",
        &access,
        json!({"current_password": PASSWORD, "new_password": "short"}),
    )
    .await
    .expect(422);
    app.post(
        "/api/v1/auth/password",
        &access,
        json!({"current_password": PASSWORD, "new_password": "New-pass-2026!"}),
    )
    .await
    .expect(204);
    refresh(&app, s["refresh_token"].as_str().unwrap())
        .await
        .expect(401);
    login_raw(&app, "agent1", PASSWORD).await.expect(401);
    let s = login_raw(&app, "agent1", "New-pass-2026!")
        .await
        .expect(200)
        .body;
    let id = s["user"]["id"].as_str().unwrap();
    // Read once, so the instance remembers the user (auth.user_cache_ms): a deactivation
    // through this instance must still apply to the very next request.
    app.get("/api/v1/auth/me", s["access_token"].as_str().unwrap())
        .await
        .expect(200);
    app.patch(
        &format!("/api/v1/users/{id}"),
        &app.admin,
        json!({"active": false}),
    )
    .await
    .expect(200);
    app.get("/api/v1/auth/me", s["access_token"].as_str().unwrap())
        .await
        .expect(401);
    refresh(&app, s["refresh_token"].as_str().unwrap())
        .await
        .expect(401);
    login_raw(&app, "agent1", "New-pass-2026!")
        .await
        .expect(401);
}

#[actix_web::test]
async fn forged_expired_and_tampered_tokens_are_refused() {
    let app = spawn_app_with(|s| s.auth.access_token_minutes = 15).await;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let good = app.admin.clone();
    let parts: Vec<&str> = good.split('.').collect();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    let alg_none = format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), parts[1]);
    let wrong_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(b"some-other-secret-of-enough-length!!"),
    )
    .unwrap();
    let mut escalated = claims.clone();
    escalated["sub"] = json!(uuid::Uuid::new_v4());
    let tampered = format!("{}.{}.{}", parts[0], b64(&escalated.to_string()), parts[2]);
    for (name, token) in [
        ("alg none", alg_none),
        ("wrong key", wrong_key),
        ("tampered", tampered),
        ("garbage", "abc.def".to_owned()),
    ] {
        let r = app.get("/api/v1/auth/me", &token).await;
        assert_eq!(r.status, 401, "{name}");
        assert!(r.is_problem(), "{name}");
    }
    let r = app
        .call(
            Method::GET,
            "/api/v1/auth/me",
            None,
            None,
            &[("Authorization", "Basic cm9vdDpwdw==")],
        )
        .await;
    assert_eq!(r.status, 401);
    app.get("/api/v1/auth/me", &good).await.expect(200);
    app.clock.advance(TimeDelta::minutes(16));
    app.get("/api/v1/auth/me", &good).await.expect(401);
}
