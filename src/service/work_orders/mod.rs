//! Work-order use cases, one file each: opening an order (`create`), the actions of the status
//! table (`act`, one function per action), merging into a master and what a master's end does
//! to its merged orders (`merge`), notes and corrections (`correct`), and the reads that need
//! the rules (`read`). Each use case is one transaction: the order row, its event, its timers
//! and its mail. This file holds what they share.

use crate::db::events::{self, NewEvent};
use crate::db::timers::TimerWrites;
use crate::db::work_orders::{self as repo, Applied, NewWorkOrder, WorkOrderChanges, WorkOrderRow};
use crate::db::{
    areas, credits, crews, customers, idempotency, to_json_list, write_transaction,
    write_transaction_planned, DbConnection, Plans,
};
use crate::domain::categories::Categories;
use crate::domain::routing::{self, CrewFacts, OrderNeeds, Ranked};
use crate::domain::sla as sla_rules;
use crate::domain::state_machine::{self, callback_reopens, reason_required, OrderFacts, Refusal};
use crate::domain::values::limits;
use crate::domain::{Action, Actor, Family, Kind, Priority, Satisfaction, Status};
use crate::errors::ProblemCode;
use crate::errors::{AppError, FieldError};
use crate::service::sla::{self, SlaContext};
use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

mod act;
mod correct;
mod create;
mod merge;
mod read;

pub use act::*;
pub use correct::*;
pub use create::*;
pub(crate) use merge::*;
pub use read::*;

/// What the work-order rules need beyond the database: settings, categories, SLA policy.
#[derive(Clone)]
pub struct Rules {
    pub reopen_window: TimeDelta,
    /// How far back a repeat call finds the order it repeats.
    pub repeat_window: TimeDelta,
    pub categories: Arc<Categories>,
    pub sla: SlaContext,
    pub notifier: crate::notify::alerts::Notifier,
    pub routing: crate::domain::routing::RoutingWeights,
    /// Every this many urges raise the priority one level (0: never).
    pub urges_to_raise_priority: i32,
    /// Dispatch new field orders as they are created.
    pub auto_dispatch: bool,
}

fn order_not_found() -> AppError {
    AppError::NotFound { what: "work order" }
}

/// Loads an order the actor may see; anything else is 404.
pub fn load_visible(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
) -> Result<WorkOrderRow, AppError> {
    repo::find(conn, id)?
        .filter(|o| actor.sees_order(&o.area_code, o.assigned_crew_id.as_deref()))
        .ok_or_else(order_not_found)
}

/// The facts the state machine needs of a row.
pub fn facts(row: &WorkOrderRow, now: DateTime<Utc>, rules: &Rules) -> OrderFacts {
    OrderFacts {
        status: row.status,
        kind: row.kind,
        suspended_from: *row.suspended_from,
        reopen_window_open: row
            .closed_at
            .is_some_and(|c| c.and_utc() + rules.reopen_window >= now),
    }
}

/// Actions allowed now for this actor.
pub fn allowed_actions(
    row: &WorkOrderRow,
    actor: &Actor,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Vec<Action> {
    state_machine::allowed_actions(facts(row, now, rules), actor.role)
}

/// A transition of status: (from, to); either side may be absent (a note changes none).
type Transition = (Option<Status>, Option<Status>);

fn event(
    order_id: &str,
    kind: &str,
    actor: Option<&Actor>,
    (from, to): Transition,
    reason: Option<String>,
    data: serde_json::Value,
    now: DateTime<Utc>,
) -> NewEvent {
    let actor = actor.filter(|a| !a.is_system());
    NewEvent {
        work_order_id: order_id.to_owned(),
        event_type: kind.to_owned(),
        actor_id: actor.map(|a| a.id.clone()),
        actor_username: actor.map(|a| a.username.clone()),
        actor_role: actor.map(|a| a.role.as_str().to_owned()),
        from_status: from.map(|s| s.as_str().to_owned()),
        to_status: to.map(|s| s.as_str().to_owned()),
        reason,
        data: data.to_string(),
        at: now.naive_utc(),
    }
}

/// Checks `If-Match`: `None` (no header or `*`), or the version it names (`None` inside: unparsable).
fn check_if_match(if_match: Option<Option<i32>>, version: i32) -> Result<(), AppError> {
    match if_match {
        Some(expected) if expected != Some(version) => {
            Err(AppError::PreconditionFailed { current: version })
        }
        _ => Ok(()),
    }
}

fn concurrent() -> AppError {
    AppError::Conflict {
        code: ProblemCode::ConcurrentUpdate,
        detail: "the order was changed by another request at the same time".into(),
        allowed_actions: None,
    }
}
