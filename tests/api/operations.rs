//! Health, readiness, metrics, OpenAPI, request ids, unknown routes and methods.

use crate::helpers::*;
use reqwest::Method;

#[actix_web::test]
async fn health_readiness_metrics_and_docs() {
    let app = spawn_app().await;
    app.call(Method::GET, "/healthz", None, None, &[])
        .await
        .expect(200);
    let r = app
        .call(Method::GET, "/readyz", None, None, &[])
        .await
        .expect(200);
    assert_eq!(r.body["status"], "ready");
    assert!(r.body["warnings"].is_array());
    app.order(&app.admin, "repair", "NOPE", "13800000000")
        .await
        .expect(422);
    let res = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    assert!(text.contains("gridcall_http_requests_total"), "{text}");
    assert!(text.contains("gridcall_http_request_duration_seconds_bucket"));
    assert!(
        text.contains("route=\"/api/v1/work-orders\""),
        "routes are patterns, not raw paths"
    );
    assert!(text.contains("gridcall_db_pool_connections"));
    // The failed create above was one write transaction; on SQLite the scrape counts the
    // process's write transactions and the commits they shared.
    let on_sqlite = app.state.pool.backend() == gridcall::db::Backend::Sqlite;
    for family in [
        "gridcall_sqlite_write_transactions_total",
        "gridcall_sqlite_commits_total",
    ] {
        assert_eq!(text.contains(family), on_sqlite, "{family}: {text}");
    }
    let doc = app
        .call(Method::GET, "/api/v1/openapi.json", None, None, &[])
        .await
        .expect(200);
    for path in [
        "/api/v1/work-orders",
        "/api/v1/work-orders/{id}/dispatch",
        "/api/v1/work-orders/{id}/callback",
        "/api/v1/auth/login",
        "/healthz",
    ] {
        assert!(doc.body["paths"][path].is_object(), "{path} documented");
    }
    // Each action has its own path and body; the route's `{action}` is not a path of its own.
    assert!(doc.body["paths"]["/api/v1/work-orders/{id}/{action}"].is_null());
    let reassign = &doc.body["paths"]["/api/v1/work-orders/{id}/reassign"]["post"];
    assert_eq!(reassign["requestBody"]["required"], true);
    let dispatch = &doc.body["paths"]["/api/v1/work-orders/{id}/dispatch"]["post"];
    assert_eq!(
        dispatch["requestBody"]["required"], false,
        "an empty body reads as {{}}"
    );
    // Operation ids are unique.
    let mut ids = std::collections::HashSet::new();
    for item in doc.body["paths"].as_object().unwrap().values() {
        for op in item.as_object().unwrap().values() {
            if let Some(id) = op["operationId"].as_str() {
                assert!(ids.insert(id.to_owned()), "operation id {id} is used twice");
            }
        }
    }
    let ui = app
        .client
        .get(format!("{}/docs/", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger"));
}

#[actix_web::test]
async fn scrape_token_guards_metrics() {
    let app = spawn_app_with(|s| s.metrics.scrape_token = "scrape-me".into()).await;
    app.call(Method::GET, "/metrics", None, None, &[])
        .await
        .expect(401);
    app.call(Method::GET, "/metrics", Some("scrape-me"), None, &[])
        .await;
    let res = app
        .client
        .get(format!("{}/metrics", app.base))
        .bearer_auth("scrape-me")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[actix_web::test]
async fn request_ids_unknown_routes_and_methods() {
    let app = spawn_app().await;
    let r = app
        .call(
            Method::GET,
            "/healthz",
            None,
            None,
            &[("X-Request-Id", "abc-123")],
        )
        .await;
    assert_eq!(r.header("x-request-id").unwrap(), "abc-123");
    let r = app.call(Method::GET, "/healthz", None, None, &[]).await;
    assert_eq!(r.header("x-request-id").unwrap().len(), 36);
    let r = app
        .call(Method::GET, "/api/v1/nothing-here", None, None, &[])
        .await
        .expect(404);
    assert!(r.is_problem());
    assert!(r.header("x-request-id").is_some());
    let r = app
        .call(
            Method::DELETE,
            "/api/v1/work-orders",
            Some(&app.admin),
            None,
            &[],
        )
        .await
        .expect(405);
    assert!(r.is_problem());
    let r = app
        .call(Method::PUT, "/healthz", None, None, &[])
        .await
        .expect(405);
    assert!(r.is_problem());
    let r = app
        .call(
            Method::POST,
            &format!("/api/v1/work-orders/{}/events", uuid::Uuid::new_v4()),
            Some(&app.admin),
            None,
            &[],
        )
        .await
        .expect(405);
    assert!(r.is_problem());
}

/// The OpenAPI document is the contract generated clients are built from: any change to it
/// shows up as a diff of `tests/api/snapshots/` in review (`cargo insta review`, or run the
/// tests with `INSTA_UPDATE=always` and read the diff).
#[actix_web::test]
async fn the_openapi_document_is_the_reviewed_one() {
    let app = spawn_app().await;
    let doc = app
        .call(Method::GET, "/api/v1/openapi.json", None, None, &[])
        .await
        .expect(200);
    insta::assert_json_snapshot!("openapi", doc.body);
}

#[actix_web::test]
async fn the_board_is_served_from_the_binary_with_a_policy_that_allows_nothing_from_outside() {
    let app = spawn_app().await;
    let fetch = |path: &str| {
        let (client, url) = (app.client.clone(), format!("{}{path}", app.base));
        async move {
            let res = client.get(url).send().await.unwrap();
            let (status, headers) = (res.status(), res.headers().clone());
            (status, headers, res.text().await.unwrap())
        }
    };
    for path in [
        "/",
        "/crews",
        "/trend",
        "/scorecard",
        "/appeals",
        "/orders/5f0c6a43-2b1e-4c55-9a8e-0d6a4c1f0a11",
    ] {
        let (status, headers, html) = fetch(path).await;
        assert_eq!(status, 200, "{path}");
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("http"),
            "{csp}"
        );
        assert!(html.contains("/assets/app.js"), "{path}");
        // nothing loaded from elsewhere, no inline script
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "{path}"
        );
        assert!(!html.contains("<script>"), "{path}");
    }
    for (path, kind) in [
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/assets/favicon.svg", "image/svg+xml"),
    ] {
        let (status, headers, text) = fetch(path).await;
        assert_eq!(status, 200, "{path}");
        assert!(headers["content-type"].to_str().unwrap().starts_with(kind));
        // no CDN, no outside fonts: every address in the board is this server's
        assert!(
            !text.contains("https://") && !text.contains("http://cdn"),
            "{path}"
        );
        if path.ends_with(".js") {
            // the board never puts a token in a URL: the stream is opened with a ticket
            assert!(text.contains("/events/ticket") && !text.contains("token="));
        }
    }
    // an unknown asset or page is a problem+json 404, as elsewhere
    let r = app.get("/assets/nope.js", "").await;
    assert_eq!(r.status, 404);
    assert_eq!(r.body["code"], "not_found");
}

/// A create's transaction plans its statements once, from plain index scans (PostgreSQL's
/// `force_generic_plan`, sequential and bitmap scans and JIT off); the settings end with it, so the pooled
/// connection plans every other statement per execution again. SQLite has no such settings:
/// there the transaction is an ordinary one.
#[actix_web::test]
async fn plan_settings_of_a_transaction_end_with_it() {
    use diesel::prelude::*;
    use gridcall::db::{write_transaction, write_transaction_planned, DbConnection, Plans};
    use gridcall::errors::AppError;
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    fn settings(conn: &mut DbConnection) -> Option<(String, String, String, String)> {
        let DbConnection::Postgresql(pg) = conn else {
            return None;
        };
        let read = |pg: &mut diesel::PgConnection, name: &str| {
            diesel::sql_query("SELECT current_setting($1) AS value")
                .bind::<diesel::sql_types::Text, _>(name)
                .get_result::<Setting>(pg)
                .unwrap()
                .value
        };
        Some((
            read(pg, "plan_cache_mode"),
            read(pg, "enable_seqscan"),
            read(pg, "enable_bitmapscan"),
            read(pg, "jit"),
        ))
    }
    let app = spawn_app().await;
    let mut conn = app.state.pool.get().unwrap();
    let postgres = matches!(&*conn, DbConnection::Postgresql(_));
    let expect = |mode: &str, scans: &str| {
        let s = scans.to_owned();
        postgres.then(|| (mode.to_owned(), s.clone(), s.clone(), s))
    };
    let inside = write_transaction_planned(&mut conn, Plans::IndexedOnce, |c| {
        Ok::<_, AppError>(settings(c))
    })
    .unwrap();
    assert_eq!(inside, expect("force_generic_plan", "off"));
    assert_eq!(settings(&mut conn), expect("force_custom_plan", "on"));
    // a failed transaction ends them too, and a nested one keeps its outer one's
    let failed: Result<(), AppError> =
        write_transaction_planned(&mut conn, Plans::IndexedOnce, |_| {
            Err(AppError::internal("rolled back"))
        });
    assert!(failed.is_err());
    assert_eq!(settings(&mut conn), expect("force_custom_plan", "on"));
    let nested = write_transaction(&mut conn, |c| {
        write_transaction_planned(c, Plans::IndexedOnce, |c| Ok::<_, AppError>(settings(c)))
    })
    .unwrap();
    assert_eq!(nested, expect("force_custom_plan", "on"));
}

/// PostgreSQL's write sessions (creates and actions, `DbPool::run_indexed`) plan as
/// `Plans::IndexedOnce` from the start: their statements outside a transaction and their
/// `IndexedOnce` transactions plan so without settings of their own, and a transaction that
/// plans per execution sets that back for itself alone. Other connections are untouched. On
/// SQLite `run_indexed` is `run`.
#[actix_web::test]
async fn write_sessions_plan_once_and_a_per_execution_transaction_on_them_does_not() {
    use diesel::prelude::*;
    use gridcall::db::{session_plans, write_transaction, write_transaction_planned};
    use gridcall::db::{DbConnection, Plans};
    use gridcall::errors::AppError;
    #[derive(QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    fn mode(conn: &mut DbConnection) -> Result<Option<(String, String)>, AppError> {
        let DbConnection::Postgresql(pg) = conn else {
            return Ok(None);
        };
        let mut read = |name: &str| {
            diesel::sql_query("SELECT current_setting($1) AS value")
                .bind::<diesel::sql_types::Text, _>(name)
                .get_result::<Setting>(pg)
                .map(|s| s.value)
        };
        Ok(Some((read("plan_cache_mode")?, read("enable_seqscan")?)))
    }
    let app = spawn_app().await;
    let seen = app
        .state
        .pool
        .run_indexed(|c| {
            let session = session_plans(c);
            let alone = mode(c)?;
            let once = write_transaction_planned(c, Plans::IndexedOnce, mode)?;
            let per_execution = write_transaction(c, mode)?;
            let after = mode(c)?;
            Ok((session, alone, once, per_execution, after))
        })
        .await
        .unwrap();
    let other = app
        .state
        .pool
        .run(|c| Ok((session_plans(c), mode(c)?)))
        .await
        .unwrap();
    let postgres = other.0.is_some();
    let expect =
        |plans: &str, seqscan: &str| postgres.then(|| (plans.to_owned(), seqscan.to_owned()));
    let generic = expect("force_generic_plan", "off");
    let custom = expect("force_custom_plan", "on");
    assert_eq!(seen.0, postgres.then_some(Plans::IndexedOnce));
    assert_eq!(seen.1, generic, "a statement alone on a write session");
    assert_eq!(seen.2, generic, "an IndexedOnce transaction on it");
    assert_eq!(seen.3, custom, "a per-execution transaction on it");
    assert_eq!(seen.4, generic, "the session after that transaction");
    assert_eq!(other, (postgres.then_some(Plans::PerExecution), custom));
}
