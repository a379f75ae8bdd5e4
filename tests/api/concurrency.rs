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

/// An action works out its timers' changes from its read and writes them with the order's
/// update; a timer the scanner fired in between must not be overwritten, nor the action half
/// applied: the write reports it (the action then starts over from a fresh read).
#[actix_web::test]
async fn a_timer_fired_between_an_actions_read_and_its_write_leaves_nothing_half_written() {
    use diesel::prelude::*;
    use gridcall::db::events::NewEvent;
    use gridcall::db::schema::sla_timers;
    use gridcall::db::timers::TimerWrites;
    use gridcall::db::work_orders::{self as repo, Applied, WorkOrderChanges};
    use gridcall::db::write_transaction;
    use gridcall::errors::AppError;
    let app = spawn_app().await;
    let c = cast(&app).await;
    let crew = app.crew("FIRED-1", "field", &["SZ-FT-01"]).await;
    let id = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000077")
        .await;
    app.act(&c.dispatcher, &id, "dispatch", json!({"crew_id": crew}))
        .await
        .expect(200);
    let order_id = id.clone();
    let outcomes = app
        .state
        .pool
        .run(move |conn| {
            let read = repo::find_for_action(conn, &order_id)?.expect("the order");
            let open = read
                .timers
                .iter()
                .find(|t| t.ended_at.is_none())
                .expect("an open timer")
                .clone();
            let now = chrono::Utc::now().naive_utc();
            let changes = WorkOrderChanges {
                status: Some("accepted".into()),
                version: Some(read.order.version + 1),
                updated_at: Some(now),
                ..Default::default()
            };
            let event = NewEvent {
                work_order_id: order_id.clone(),
                event_type: "accept".into(),
                actor_id: None,
                actor_username: None,
                actor_role: None,
                from_status: Some("dispatched".into()),
                to_status: Some("accepted".into()),
                reason: None,
                data: "{}".into(),
                at: now,
            };
            let mut ended = open.clone();
            ended.ended_at = Some(now);
            ended.version += 1;
            let writes = TimerWrites {
                updates: vec![(ended, open.version)],
                inserts: Vec::new(),
            };
            let attempt = |conn: &mut gridcall::db::DbConnection| {
                write_transaction(conn, |conn| {
                    let applied = repo::guarded_update_with(
                        conn,
                        (&read.order.id, read.order.version),
                        &changes,
                        &event,
                        None,
                        &writes,
                    )?;
                    match applied {
                        Applied::Done(_) => Ok("done"),
                        // rolled back, as an action does
                        Applied::TimerMoved => Err(AppError::internal("timer moved")),
                        Applied::OrderMoved => Err(AppError::internal("order moved")),
                    }
                })
                .unwrap_or_else(|e| match e {
                    AppError::Internal(cause) if cause.to_string() == "timer moved" => "timer",
                    AppError::Internal(cause) if cause.to_string() == "order moved" => "order",
                    other => panic!("{other:?}"),
                })
            };
            // The scanner fires the timer after the read.
            diesel::update(sla_timers::table.filter(sla_timers::id.eq(&open.id)))
                .set(sla_timers::version.eq(open.version + 1))
                .execute(conn)?;
            let moved = attempt(conn);
            // Back as read: the same writes apply.
            diesel::update(sla_timers::table.filter(sla_timers::id.eq(&open.id)))
                .set(sla_timers::version.eq(open.version))
                .execute(conn)?;
            let applied = attempt(conn);
            let again = attempt(conn);
            Ok((moved, applied, again))
        })
        .await
        .unwrap();
    assert_eq!(outcomes, ("timer", "done", "order"));
    let events = app
        .get(&format!("/api/v1/work-orders/{id}/events"), &c.dispatcher)
        .await
        .body;
    let accepts = events["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "accept")
        .count();
    assert_eq!(accepts, 1, "the rolled-back attempts left no event");
    let order = app
        .get(&format!("/api/v1/work-orders/{id}"), &c.dispatcher)
        .await
        .body;
    assert_eq!(order["status"], "accepted");
    assert_eq!(order["version"], 3);
}
