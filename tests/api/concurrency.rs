//! Racing requests: of many concurrent actions on one order exactly one wins; concurrent
//! creates all land with distinct numbers.

use crate::helpers::*;
use futures_util::future::join_all;
use serde_json::json;
use std::collections::HashSet;

#[actix_web::test]
async fn of_twenty_concurrent_dispatches_exactly_one_succeeds() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let mut crews = Vec::new();
    for i in 0..20 {
        crews.push(app.crew(&format!("RACE-{i}"), "field", &["SZ-FT-01"]).await);
    }
    let id = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000000")
        .await;
    let attempts = crews
        .iter()
        .map(|crew| app.act(&c.dispatcher, &id, "dispatch", json!({"crew_id": crew})));
    let results = join_all(attempts).await;
    let ok: Vec<_> = results.iter().filter(|r| r.status == 200).collect();
    assert_eq!(ok.len(), 1, "exactly one dispatch wins");
    for r in results.iter().filter(|r| r.status != 200) {
        assert!(
            matches!(r.status.as_u16(), 409 | 412),
            "loser status {}: {}",
            r.status,
            r.body
        );
        assert!(r.is_problem());
    }
    let order = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.dispatcher)
        .await
        .body;
    assert_eq!(order["version"], 2);
    assert_eq!(order["assigned_crew_id"], ok[0].body["assigned_crew_id"]);
    let events = app
        .get(&format!("/api/v1/work-orders/{id}/events"), &c.dispatcher)
        .await
        .body;
    let dispatches = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "dispatch")
        .count();
    assert_eq!(dispatches, 1, "one dispatch event");
}

#[actix_web::test]
async fn concurrent_creates_get_distinct_numbers() {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let phones: Vec<String> = (0..40).map(|i| format!("1380000{i:04}")).collect();
    let creates = phones
        .iter()
        .map(|phone| app.order(&c.agent, "repair", "SZ-FT-01", phone));
    let results = join_all(creates).await;
    let numbers: HashSet<String> = results
        .into_iter()
        .map(|r| r.expect(201).body["number"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(numbers.len(), 40);
}
