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
    use gridcall::db::schema::sla_timers;
    use gridcall::db::work_orders::{self as repo, Applied};
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
            let Accept {
                open,
                now: _,
                changes,
                event,
                writes,
            } = accept_of(&read);
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

/// On PostgreSQL an action whose writes are one statement runs without a transaction: the
/// statement must then undo itself as a whole when the order or its timer moved on since the
/// read, for its event and credit are data-modifying `WITH` queries that would otherwise stay.
/// On SQLite (always a transaction) the statement is refused with nothing written.
#[actix_web::test]
async fn an_action_written_without_a_transaction_undoes_itself_when_anything_moved() {
    use diesel::prelude::*;
    use gridcall::db::credits::{CreditRow, Fact};
    use gridcall::db::schema::{crew_credits, sla_timers, work_order_events, work_orders};
    use gridcall::db::work_orders::{self as repo, Applied};
    let app = spawn_app().await;
    let on_postgres = app.state.pool.backend() == gridcall::db::Backend::Postgres;
    let c = cast(&app).await;
    let crew = app.crew("ALONE-1", "field", &["SZ-FT-01"]).await;
    let id = app
        .new_order(&c.agent, "repair", "SZ-FT-01", "13800000078")
        .await;
    app.act(&c.dispatcher, &id, "dispatch", json!({"crew_id": crew}))
        .await
        .expect(200);
    let order_id = id.clone();
    let crew_id = crew.clone();
    let (outcomes, counts) = app
        .state
        .pool
        .run(move |conn| {
            let read = repo::find_for_action(conn, &order_id)?.expect("the order");
            let Accept {
                open,
                now,
                changes,
                event,
                writes,
            } = accept_of(&read);
            let credit = CreditRow::new(Fact::Dispatch, &crew_id, &order_id, None, now, None);
            let attempt = |conn: &mut gridcall::db::DbConnection| {
                let applied = repo::guarded_update_alone(
                    conn,
                    (&read.order.id, read.order.version),
                    &changes,
                    &event,
                    Some(&credit),
                    &writes,
                )
                .expect("no other error");
                match applied {
                    None => "refused",
                    Some(Applied::Done(_)) => "done",
                    Some(Applied::TimerMoved) => "timer",
                    Some(Applied::OrderMoved) => "order",
                }
            };
            let count = |conn: &mut gridcall::db::DbConnection| -> QueryResult<(i64, i64)> {
                let events = work_order_events::table
                    .filter(work_order_events::work_order_id.eq(&order_id))
                    .filter(work_order_events::event_type.eq("accept"))
                    .count()
                    .get_result(conn)?;
                let credits = crew_credits::table
                    .filter(crew_credits::work_order_id.eq(&order_id))
                    .count()
                    .get_result(conn)?;
                Ok((events, credits))
            };
            let before = count(conn)?;
            // The scanner fires the timer after the read.
            diesel::update(sla_timers::table.filter(sla_timers::id.eq(&open.id)))
                .set(sla_timers::version.eq(open.version + 1))
                .execute(conn)?;
            let timer_moved = attempt(conn);
            let after_timer = count(conn)?;
            diesel::update(sla_timers::table.filter(sla_timers::id.eq(&open.id)))
                .set(sla_timers::version.eq(open.version))
                .execute(conn)?;
            // Another action moves the order after the read.
            diesel::update(work_orders::table.filter(work_orders::id.eq(&order_id)))
                .set(work_orders::version.eq(read.order.version + 5))
                .execute(conn)?;
            let order_moved = attempt(conn);
            let after_order = count(conn)?;
            diesel::update(work_orders::table.filter(work_orders::id.eq(&order_id)))
                .set(work_orders::version.eq(read.order.version))
                .execute(conn)?;
            // As read: everything is written, once.
            let applied = attempt(conn);
            let after_applied = count(conn)?;
            let again = attempt(conn);
            let after_again = count(conn)?;
            Ok::<_, gridcall::errors::AppError>((
                (timer_moved, order_moved, applied, again),
                (before, after_timer, after_order, after_applied, after_again),
            ))
        })
        .await
        .unwrap();
    let (before, after_timer, after_order, after_applied, after_again) = counts;
    assert_eq!(
        after_timer, before,
        "a moved timer undid the event and credit"
    );
    assert_eq!(
        after_order, before,
        "a moved order undid the event and credit"
    );
    if on_postgres {
        assert_eq!(outcomes, ("timer", "order", "done", "order"));
        assert_eq!(after_applied, (before.0 + 1, before.1 + 1));
        assert_eq!(after_again, after_applied);
        let order = app
            .get(&format!("/api/v1/work-orders/{id}"), &c.dispatcher)
            .await
            .body;
        assert_eq!(order["status"], "accepted");
        assert_eq!(order["version"], 3);
    } else {
        assert_eq!(outcomes, ("refused", "refused", "refused", "refused"));
        assert_eq!(after_again, before);
    }
}

/// An accept of a dispatched order as the action works it out from its read: the open timer
/// it ends, and the order's changes, its event and the timer's update.
struct Accept {
    open: gridcall::db::timers::TimerRow,
    now: chrono::NaiveDateTime,
    changes: gridcall::db::work_orders::WorkOrderChanges,
    event: gridcall::db::events::NewEvent,
    writes: gridcall::db::timers::TimerWrites,
}

fn accept_of(read: &gridcall::db::work_orders::OrderForAction) -> Accept {
    let open = read
        .timers
        .iter()
        .find(|t| t.ended_at.is_none())
        .expect("an open timer")
        .clone();
    let now = chrono::Utc::now().naive_utc();
    let changes = gridcall::db::work_orders::WorkOrderChanges {
        status: Some("accepted".into()),
        version: Some(read.order.version + 1),
        updated_at: Some(now),
        ..Default::default()
    };
    let event = gridcall::db::events::NewEvent {
        work_order_id: read.order.id.clone(),
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
    let writes = gridcall::db::timers::TimerWrites {
        updates: vec![(ended, open.version)],
        inserts: Vec::new(),
    };
    Accept {
        open,
        now,
        changes,
        event,
        writes,
    }
}
