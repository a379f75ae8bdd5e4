//! Mass outages (话务涌流): declare with a master repair order, update (an event on every
//! linked order), restore (the master and every linked order resolve in one transaction),
//! cancel (linked orders back to `new`, the master cancelled).

use super::work_orders::{self as orders, Created, NewOrder, Rules};
use crate::db::credits::{self, Fact};
use crate::db::events::{self, NewEvent};
use crate::db::outages::{self as repo, OutageChanges, OutageRow};
use crate::db::work_orders::{self as order_repo, WorkOrderChanges};
use crate::db::StoredList;
use crate::db::{areas, write_transaction, DbConnection};
use crate::domain::sla as sla_rules;
use crate::domain::{Action, Actor, Kind, Status};
use crate::errors::ProblemCode;
use crate::errors::{AppError, Problems};
use crate::service::sla;
use chrono::{DateTime, Utc};
use serde_json::json;

pub struct NewOutage {
    pub area_codes: Vec<String>,
    pub cause: String,
    pub feeder: Option<String>,
    pub started_at: DateTime<Utc>,
    pub estimated_restore_at: Option<DateTime<Utc>>,
}

fn outage_event(
    order_id: &str,
    kind: &str,
    actor: &Actor,
    (from, to): (Option<Status>, Option<Status>),
    reason: Option<String>,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> NewEvent {
    NewEvent {
        work_order_id: order_id.to_owned(),
        event_type: kind.to_owned(),
        actor_id: Some(actor.id.clone()),
        actor_username: Some(actor.username.clone()),
        actor_role: Some(actor.role.as_str().to_owned()),
        from_status: from.map(|s| s.as_str().to_owned()),
        to_status: to.map(|s| s.as_str().to_owned()),
        reason,
        data: data.to_string(),
        at: now.naive_utc(),
    }
}

fn not_found() -> AppError {
    AppError::NotFound { what: "outage" }
}

fn load(conn: &mut DbConnection, actor: &Actor, id: &str) -> Result<OutageRow, AppError> {
    repo::find(conn, id)?
        .filter(|o| o.area_codes.to_vec().iter().any(|a| actor.sees_area(a)))
        .ok_or_else(not_found)
}

/// An outage the caller may change: it must see every one of its areas (a dispatcher scoped
/// to one of them sees the outage, but may not restore or cancel it for the others).
fn load_to_change(conn: &mut DbConnection, actor: &Actor, id: &str) -> Result<OutageRow, AppError> {
    let outage = load(conn, actor, id)?;
    let codes = outage.area_codes.to_vec();
    if !actor.sees_all_areas(&codes) {
        let outside: Vec<&str> = codes
            .iter()
            .filter(|c| !actor.sees_area(c))
            .map(String::as_str)
            .collect();
        return Err(AppError::out_of_scope(format!(
            "the outage also covers areas outside your scope: {}",
            outside.join(", ")
        )));
    }
    Ok(outage)
}

fn ended() -> AppError {
    AppError::Conflict {
        code: ProblemCode::OutageEnded,
        detail: "the outage is no longer active".into(),
        allowed_actions: None,
    }
}

/// The active outage a new repair call in `area_code` links to: the newest whose areas cover
/// it (an outage on a city covers its districts), locked so that a restore or cancel cannot
/// end it unseen while the call is linked.
pub(crate) fn covering_for_link(
    conn: &mut DbConnection,
    area_code: &str,
) -> Result<Option<OutageRow>, AppError> {
    let active = repo::active(conn)?;
    if active.is_empty() {
        return Ok(None);
    }
    let tree = areas::tree(conn)?;
    let up = crate::domain::areas::with_ancestors(&tree, area_code);
    for outage in active {
        let covers = outage.area_codes.to_vec().iter().any(|a| up.contains(a));
        if covers && repo::lock_active(conn, &outage.id)? {
            return Ok(Some(outage));
        }
    }
    Ok(None)
}

/// Declares an outage and opens its master repair order.
pub fn declare(
    conn: &mut DbConnection,
    actor: &Actor,
    new: NewOutage,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<OutageRow, AppError> {
    write_transaction(conn, |conn| {
        let mut p = Problems::default();
        let missing = areas::missing(conn, &new.area_codes)?;
        if !missing.is_empty() {
            p.add(
                "area_codes",
                format!("no such areas: {}", missing.join(", ")),
            );
        }
        p.finish()?;
        let master = NewOrder {
            kind: Kind::Repair,
            category: rules.categories.default_for(Kind::Repair).code.clone(),
            grade: None,
            priority: "urgent".into(),
            channel: "phone".into(),
            customer_id: None,
            caller_name: None,
            caller_phone: None,
            area_code: new.area_codes[0].clone(),
            address: new.feeder.clone(),
            lat: None,
            lon: None,
            description: format!("停电事件：{}", new.cause),
            subject_crew_id: None,
            force_new: true,
            link_outage: false,
        };
        let master = match orders::create(conn, actor, master, now, None, rules)? {
            Created::New(row, _) | Created::Duplicate(row) | Created::Linked(row, _) => *row,
        };
        let row = OutageRow {
            id: crate::db::new_row_key(),
            area_codes: StoredList(new.area_codes.clone()),
            cause: new.cause,
            feeder: new.feeder,
            started_at: new.started_at.naive_utc(),
            estimated_restore_at: new.estimated_restore_at.map(|t| t.naive_utc()),
            master_id: master.id.clone(),
            status: "active".into(),
            created_by: actor.id.clone(),
            created_at: now.naive_utc(),
            updated_at: now.naive_utc(),
            ended_at: None,
            cancel_reason: None,
        };
        repo::insert(conn, &row)?;
        repo::set_order_outage(conn, &master.id, &row.id)?;
        Ok(row)
    })
}

/// Changes the cause or the estimated restore time: an `outage_updated` event on the master
/// and on every linked order.
pub fn update(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
    cause: Option<String>,
    estimated: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<OutageRow, AppError> {
    write_transaction(conn, |conn| {
        let outage = load_to_change(conn, actor, id)?;
        if outage.status != "active" {
            return Err(ended());
        }
        if estimated.is_some_and(|e| e.naive_utc() < outage.started_at) {
            return Err(AppError::invalid(
                "estimated_restore_at",
                "must not be before started_at",
            ));
        }
        let changes = OutageChanges {
            cause: cause.clone(),
            estimated_restore_at: estimated.map(|e| Some(e.naive_utc())),
            updated_at: Some(now.naive_utc()),
            ..Default::default()
        };
        if !repo::update_active(conn, id, &changes)? {
            return Err(ended());
        }
        let data = json!({"outage_id": id, "cause": cause, "estimated_restore_at": estimated});
        let mut targets = repo::linked_ids(conn, id, &outage.master_id)?;
        targets.push(outage.master_id.clone());
        for order_id in targets {
            events::insert(
                conn,
                &outage_event(
                    &order_id,
                    "outage_updated",
                    actor,
                    (None, None),
                    None,
                    data.clone(),
                    now,
                ),
            )?;
        }
        repo::find(conn, id)?.ok_or_else(not_found)
    })
}

/// Restores: the master resolves whatever its status, and with it every linked order (each
/// then gets its callback), in one transaction.
pub fn restore(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<OutageRow, AppError> {
    write_transaction(conn, |conn| {
        let outage = load_to_change(conn, actor, id)?;
        let changes = OutageChanges {
            status: Some("restored".into()),
            ended_at: Some(Some(now.naive_utc())),
            updated_at: Some(now.naive_utc()),
            ..Default::default()
        };
        if !repo::update_active(conn, id, &changes)? {
            return Err(ended());
        }
        let master = order_repo::find(conn, &outage.master_id)?.ok_or_else(not_found)?;
        let from = master.status;
        if from.is_open() && from != Status::Resolved {
            let resolution = format!("停电事件已恢复送电：{}", outage.cause);
            let c = WorkOrderChanges {
                status: Some(Status::Resolved.as_str().to_owned()),
                resolution: Some(Some(resolution.clone())),
                resolved_at: Some(Some(now.naive_utc())),
                suspended_from: Some(None),
                suspend_until: Some(None),
                version: Some(master.version + 1),
                updated_at: Some(now.naive_utc()),
                ..Default::default()
            };
            if !order_repo::guarded_update(conn, &master.id, master.version, &c)? {
                return Err(AppError::Conflict {
                    code: ProblemCode::ConcurrentUpdate,
                    detail: "the master order changed at the same time".into(),
                    allowed_actions: None,
                });
            }
            events::insert(
                conn,
                &outage_event(
                    &master.id,
                    "resolve",
                    actor,
                    (Some(from), Some(Status::Resolved)),
                    None,
                    json!({"outage_id": id, "resolution": resolution, "restored": true}),
                    now,
                ),
            )?;
            let resolved = order_repo::find(conn, &master.id)?.ok_or_else(not_found)?;
            let crew = master.assigned_crew_id.as_deref();
            if let Some(crew) = crew {
                credits::record(conn, Fact::Resolve, crew, &master.id, None, now.naive_utc())?;
            }
            sla::apply(
                conn,
                &rules.sla,
                &resolved,
                &sla_rules::plan(Kind::Repair, Action::Resolve, Status::Resolved),
                crew,
                now,
            )?;
        }
        orders::resolve_merged(conn, &master.id, now, &rules.sla)?;
        repo::find(conn, id)?.ok_or_else(not_found)
    })
}

/// Cancels an outage declared by mistake: linked orders go back to `new` (event
/// `outage_cancelled`) and the master is cancelled.
pub fn cancel(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
    reason: String,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<OutageRow, AppError> {
    write_transaction(conn, |conn| {
        let outage = load_to_change(conn, actor, id)?;
        let changes = OutageChanges {
            status: Some("cancelled".into()),
            ended_at: Some(Some(now.naive_utc())),
            cancel_reason: Some(Some(reason.clone())),
            updated_at: Some(now.naive_utc()),
            ..Default::default()
        };
        if !repo::update_active(conn, id, &changes)? {
            return Err(ended());
        }
        orders::release_merged(
            conn,
            &outage.master_id,
            now,
            &rules.sla,
            ("outage_cancelled", &reason),
        )?;
        let master = order_repo::find(conn, &outage.master_id)?.ok_or_else(not_found)?;
        let from = master.status;
        if from.is_open() {
            let c = WorkOrderChanges {
                status: Some(Status::Cancelled.as_str().to_owned()),
                closed_at: Some(Some(now.naive_utc())),
                version: Some(master.version + 1),
                updated_at: Some(now.naive_utc()),
                ..Default::default()
            };
            if !order_repo::guarded_update(conn, &master.id, master.version, &c)? {
                return Err(AppError::Conflict {
                    code: ProblemCode::ConcurrentUpdate,
                    detail: "the master order changed at the same time".into(),
                    allowed_actions: None,
                });
            }
            events::insert(
                conn,
                &outage_event(
                    &master.id,
                    "cancel",
                    actor,
                    (Some(from), Some(Status::Cancelled)),
                    Some(reason.clone()),
                    json!({"outage_id": id}),
                    now,
                ),
            )?;
            let cancelled = order_repo::find(conn, &master.id)?.ok_or_else(not_found)?;
            sla::apply(
                conn,
                &rules.sla,
                &cancelled,
                &sla_rules::plan(Kind::Repair, Action::Cancel, Status::Cancelled),
                master.assigned_crew_id.as_deref(),
                now,
            )?;
        }
        repo::find(conn, id)?.ok_or_else(not_found)
    })
}

/// An outage with the number of calls linked to it (its master excluded).
pub struct Counted {
    pub outage: OutageRow,
    pub linked_count: i64,
}

fn counted(conn: &mut DbConnection, rows: Vec<OutageRow>) -> Result<Vec<Counted>, AppError> {
    let keys: Vec<(String, String)> = rows
        .iter()
        .map(|o| (o.id.clone(), o.master_id.clone()))
        .collect();
    let counts = repo::linked_counts(conn, &keys)?;
    Ok(rows
        .into_iter()
        .map(|o| Counted {
            linked_count: counts.get(&o.id).copied().unwrap_or(0),
            outage: o,
        })
        .collect())
}

/// Up to `limit` outages the caller sees (any of their areas in scope), newest first, after
/// the keyset `after`. A scoped caller's page may read past outages of other areas: outages
/// are a few thousand a year, read a page at a time.
pub fn list(
    conn: &mut DbConnection,
    actor: &Actor,
    active_only: bool,
    mut after: Option<(chrono::NaiveDateTime, String)>,
    limit: i64,
) -> Result<Vec<Counted>, AppError> {
    let mut seen = Vec::new();
    loop {
        let batch = repo::page(conn, active_only, after.clone(), limit)?;
        let exhausted = (batch.len() as i64) < limit;
        after = batch.last().map(|o| (o.started_at, o.id.clone()));
        seen.extend(
            batch
                .into_iter()
                .filter(|o| o.area_codes.to_vec().iter().any(|a| actor.sees_area(a))),
        );
        if exhausted || seen.len() as i64 >= limit {
            break;
        }
    }
    seen.truncate(limit as usize);
    counted(conn, seen)
}

/// One outage the caller sees, with its count.
pub fn get(conn: &mut DbConnection, actor: &Actor, id: &str) -> Result<Counted, AppError> {
    let outage = load(conn, actor, id)?;
    Ok(counted(conn, vec![outage])?.remove(0))
}

/// The active outages covering an area (or a customer's area): what an agent tells callers.
pub fn lookup(conn: &mut DbConnection, area_code: &str) -> Result<Vec<Counted>, AppError> {
    let active = repo::active(conn)?;
    if active.is_empty() {
        return Ok(Vec::new());
    }
    let tree = areas::tree(conn)?;
    let up = crate::domain::areas::with_ancestors(&tree, area_code);
    let covering = active
        .into_iter()
        .filter(|o| o.area_codes.to_vec().iter().any(|a| up.contains(a)))
        .collect();
    counted(conn, covering)
}
