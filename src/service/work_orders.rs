//! Work-order use cases: create, act (every row of the status table), note, correct.
//! Each is one transaction: the order row, its event and (later) its timers and mail.

use crate::db::events::{self, NewEvent};
use crate::db::work_orders::{self as repo, NewWorkOrder, WorkOrderChanges, WorkOrderRow};
use crate::db::{
    areas, credits, crews, customers, from_json_list, idempotency, to_json_list, write_transaction,
    DbConnection,
};
use crate::domain::categories::Categories;
use crate::domain::routing::{self, CrewFacts, OrderNeeds};
use crate::domain::sla as sla_rules;
use crate::domain::state_machine::{self, callback_reopens, reason_required, OrderFacts, Refusal};
use crate::domain::values::limits;
use crate::domain::{Action, Actor, CrewKind, Family, Kind, Satisfaction, Status};
use crate::errors::{AppError, FieldError};
use crate::service::sla::{self, SlaContext};
use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;

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

/// What an action did.
#[derive(Debug)]
pub enum Acted {
    /// The order after the action; for an automatic dispatch, why this crew; the order's
    /// timers when the action read them (else the caller reads them).
    Done(
        Box<WorkOrderRow>,
        Option<serde_json::Value>,
        Option<Vec<crate::db::timers::TimerRow>>,
    ),
    /// Automatic dispatch found no eligible crew: the order stays as it was; the event
    /// `no_eligible_crew` and the dispatchers' mail are committed.
    NoEligibleCrew { considered: usize },
}

/// A validated new order.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub kind: Kind,
    pub category: String,
    pub grade: Option<String>,
    pub priority: String,
    pub channel: String,
    pub customer_id: Option<String>,
    pub caller_name: Option<String>,
    pub caller_phone: Option<String>,
    pub area_code: String,
    pub address: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub description: String,
    pub subject_crew_id: Option<String>,
    /// Skip the repeat-call check.
    pub force_new: bool,
    /// Link a repair call to an active outage in its area.
    pub link_outage: bool,
}

/// What opening an order did.
#[derive(Debug)]
pub enum Created {
    /// A new order, with its timers when nothing after its opening changed them (else the
    /// caller reads them).
    New(Box<WorkOrderRow>, Option<Vec<crate::db::timers::TimerRow>>),
    /// A repeat call: the open order it repeats, with an urge recorded on it.
    Duplicate(Box<WorkOrderRow>),
    /// A repair call in the area of an active outage: created merged into its master.
    Linked(Box<WorkOrderRow>, Box<crate::db::outages::OutageRow>),
}

/// The idempotency key a create completes in its own transaction.
pub struct IdempotencyKey<'a> {
    pub user_id: &'a str,
    pub key: &'a str,
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

fn status_of(row: &WorkOrderRow) -> Status {
    row.status.parse().unwrap_or(Status::New)
}

fn kind_of(row: &WorkOrderRow) -> Kind {
    row.kind.parse().unwrap_or(Kind::Repair)
}

/// The facts the state machine needs of a row.
pub fn facts(row: &WorkOrderRow, now: DateTime<Utc>, rules: &Rules) -> OrderFacts {
    OrderFacts {
        status: status_of(row),
        kind: kind_of(row),
        suspended_from: row.suspended_from.as_deref().and_then(|s| s.parse().ok()),
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

/// Creates an order and its `created` event (and completes the idempotency key) in one
/// transaction. The order number uses the local date in Asia/Shanghai.
pub fn create(
    conn: &mut DbConnection,
    actor: &Actor,
    order: NewOrder,
    now: DateTime<Utc>,
    key: Option<IdempotencyKey<'_>>,
    rules: &Rules,
) -> Result<Created, AppError> {
    write_transaction(conn, |conn| {
        if !order.force_new && order.kind != Kind::Praise {
            let phone = match (&order.caller_phone, &order.customer_id) {
                (Some(p), _) => Some(p.clone()),
                (None, Some(c)) => customers::find(conn, c)?.map(|c| c.phone),
                _ => None,
            };
            let duplicate = repo::find_repeated(
                conn,
                order.kind.as_str(),
                (phone.as_deref(), order.customer_id.as_deref()),
                (now - rules.repeat_window).naive_utc(),
            )?
            .filter(|d| actor.sees_order(&d.area_code, d.assigned_crew_id.as_deref()));
            if let Some(existing) = duplicate {
                let urge = ActRequest {
                    action: Action::Urge,
                    body: Ok(ActionBody {
                        note: Some(format!("重复来电（{}）", order.channel)),
                        ..Default::default()
                    }),
                    if_match: None,
                };
                let urged = match act(conn, actor, &existing.id, urge, now, rules)? {
                    Acted::Done(row, ..) => *row,
                    Acted::NoEligibleCrew { .. } => existing,
                };
                if let Some(key) = &key {
                    idempotency::complete(conn, key.user_id, key.key, 200, &urged.id)?;
                }
                return Ok(Created::Duplicate(Box::new(urged)));
            }
        }
        let mut problems = Vec::new();
        let area = areas::find(conn, &order.area_code)?;
        if area.is_none() {
            problems.push(FieldError::new("area_code", "no such area"));
        }
        let customer = match &order.customer_id {
            Some(id) => {
                let c = customers::find(conn, id)?;
                if c.is_none() {
                    problems.push(FieldError::new("customer_id", "no such customer"));
                }
                c
            }
            None => None,
        };
        if let Some(crew) = &order.subject_crew_id {
            if crews::find(conn, crew)?.is_none() {
                problems.push(FieldError::new("subject_crew_id", "no such crew"));
            }
        }
        if !problems.is_empty() {
            return Err(AppError::Validation(problems));
        }
        let (address, lat, lon) = match (&customer, order.address.is_some() || order.lat.is_some())
        {
            (Some(c), false) => (Some(c.address.clone()), c.lat, c.lon),
            _ => (order.address.clone(), order.lat, order.lon),
        };
        let (caller_name, caller_phone) = match (&customer, &order.caller_phone) {
            (Some(c), None) => (
                order.caller_name.clone().or(Some(c.name.clone())),
                Some(c.phone.clone()),
            ),
            _ => (order.caller_name.clone(), order.caller_phone.clone()),
        };
        let outage = if order.kind == Kind::Repair && order.link_outage {
            super::outages::covering_for_link(conn, &order.area_code)?
        } else {
            None
        };
        let status = if outage.is_some() {
            Status::Merged
        } else {
            Status::New
        };
        let id = uuid::Uuid::new_v4().to_string();
        let row = NewWorkOrder {
            id: id.clone(),
            kind: order.kind.as_str().to_owned(),
            category: order.category.clone(),
            grade: order.grade.clone(),
            priority: order.priority.clone(),
            channel: order.channel.clone(),
            status: status.as_str().to_owned(),
            customer_id: order.customer_id.clone(),
            caller_name,
            caller_phone,
            area_code: order.area_code.clone(),
            address,
            lat,
            lon,
            description: order.description.clone(),
            subject_crew_id: order.subject_crew_id.clone(),
            master_id: outage.as_ref().map(|o| o.master_id.clone()),
            outage_id: outage.as_ref().map(|o| o.id.clone()),
            created_by: actor.id.clone(),
            created_at: now.naive_utc(),
            updated_at: now.naive_utc(),
        };
        let local_date = now
            .with_timezone(&chrono_tz::Asia::Shanghai)
            .format("%Y%m%d");
        let created = repo::insert(conn, &row, &format!("{}{local_date}", order.kind.letter()))?;
        let number = created.number.clone();
        events::insert(
            conn,
            &event(
                &id,
                "created",
                Some(actor),
                (None, Some(Status::New)),
                None,
                json!({"number": number, "kind": order.kind, "category": order.category, "priority": order.priority,
                       "channel": order.channel, "area_code": order.area_code}),
                now,
            ),
        )?;
        if let Some(key) = &key {
            idempotency::complete(conn, key.user_id, key.key, 201, &id)?;
        }
        let named = match order.kind {
            Kind::Complaint => Some(credits::Fact::Complaint),
            Kind::Praise => Some(credits::Fact::Praise),
            _ => None,
        };
        if let (Some(fact), Some(crew)) = (named, &order.subject_crew_id) {
            credits::record(conn, fact, crew, &id, None, now.naive_utc())?;
        }
        if let Some(outage) = outage {
            // Linked to the outage's master: no crew, no timers, no escalation of its own.
            events::insert(
                conn,
                &event(
                    &id,
                    "linked_to_outage",
                    None,
                    (Some(Status::New), Some(Status::Merged)),
                    None,
                    json!({"outage_id": outage.id, "master_id": outage.master_id, "cause": outage.cause}),
                    now,
                ),
            )?;
            return Ok(Created::Linked(Box::new(created), Box::new(outage)));
        }
        let timers = sla::open_new_order(
            conn,
            &rules.sla,
            &created,
            area,
            sla_rules::opening_stages(order.kind),
            now,
        )?;
        if order.kind == Kind::Complaint {
            if let Some(email) = customer.as_ref().and_then(|c| c.email.clone()) {
                rules.notifier.complaint_ack(conn, &created, &email, now)?;
            }
        }
        if rules.auto_dispatch && order.kind.family() == Family::Field {
            // Same routing as a dispatcher's dispatch without crew_id; with no eligible crew
            // the order stays new and the dispatchers are alerted (event and mail).
            let dispatch = ActRequest {
                action: Action::Dispatch,
                body: Ok(ActionBody::default()),
                if_match: None,
            };
            // The dispatch is a savepoint: if it fails, the order is still created, new,
            // for a dispatcher to handle.
            match act(conn, &Actor::system(), &id, dispatch, now, rules) {
                Ok(Acted::Done(dispatched, _, timers)) => {
                    return Ok(Created::New(dispatched, timers))
                }
                Ok(Acted::NoEligibleCrew { .. }) => {}
                Err(e) => log::warn!("automatic dispatch of {id} failed, left new: {e}"),
            }
        }
        Ok(Created::New(Box::new(created), Some(timers)))
    })
}

/// The body of an action: every field any action takes; each action accepts only its own.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    pub crew_id: Option<String>,
    pub reason: Option<String>,
    pub note: Option<String>,
    pub until: Option<DateTime<FixedOffset>>,
    pub resolution: Option<String>,
    pub satisfaction: Option<Satisfaction>,
    pub master_id: Option<String>,
}

impl ActionBody {
    fn present(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.crew_id.is_some() {
            v.push("crew_id");
        }
        if self.reason.is_some() {
            v.push("reason");
        }
        if self.note.is_some() {
            v.push("note");
        }
        if self.until.is_some() {
            v.push("until");
        }
        if self.resolution.is_some() {
            v.push("resolution");
        }
        if self.satisfaction.is_some() {
            v.push("satisfaction");
        }
        if self.master_id.is_some() {
            v.push("master_id");
        }
        v
    }
}

/// The fields each action takes (API.md).
fn accepted_fields(action: Action) -> &'static [&'static str] {
    match action {
        Action::Dispatch => &["crew_id", "note"],
        Action::Reassign => &["crew_id", "reason"],
        Action::Accept | Action::Depart | Action::Arrive | Action::Resume | Action::Urge => {
            &["note"]
        }
        Action::Reject | Action::Reopen | Action::Cancel | Action::Unmerge | Action::Close => {
            &["reason"]
        }
        Action::Suspend => &["reason", "until"],
        Action::Contact => &["note"],
        Action::Resolve => &["resolution", "note"],
        Action::Callback => &["satisfaction", "note"],
        Action::Merge => &["master_id"],
        Action::Note | Action::Update => &[],
    }
}

fn validate_body(
    action: Action,
    kind: Kind,
    body: &ActionBody,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    let mut problems = Vec::new();
    let accepted = accepted_fields(action);
    for field in body.present() {
        if !accepted.contains(&field) {
            problems.push(FieldError::new(
                field,
                format!("`{action}` does not take this field"),
            ));
        }
    }
    let mut text = |field: &str, value: &Option<String>, max: usize, required: bool| match value {
        None if required => problems.push(FieldError::new(field, "is required")),
        Some(v) if required && v.trim().is_empty() => {
            problems.push(FieldError::new(field, "must not be blank"))
        }
        Some(v) if v.chars().count() > max => problems.push(FieldError::new(
            field,
            format!("must be at most {max} characters"),
        )),
        _ => {}
    };
    text(
        "reason",
        &body.reason,
        limits::REASON,
        reason_required(action, kind),
    );
    text("note", &body.note, limits::NOTE, action == Action::Contact);
    text(
        "resolution",
        &body.resolution,
        limits::DESCRIPTION,
        action == Action::Resolve,
    );
    if matches!(action, Action::Reassign) && body.crew_id.is_none() {
        problems.push(FieldError::new("crew_id", "is required"));
    }
    for (field, value) in [("crew_id", &body.crew_id), ("master_id", &body.master_id)] {
        if let Some(v) = value {
            if uuid::Uuid::parse_str(v).is_err() {
                problems.push(FieldError::new(field, "must be a UUID"));
            }
        }
    }
    if action == Action::Merge && body.master_id.is_none() {
        problems.push(FieldError::new("master_id", "is required"));
    }
    if action == Action::Callback && body.satisfaction.is_none() {
        problems.push(FieldError::new("satisfaction", "is required"));
    }
    if let Some(until) = body.until {
        if until.with_timezone(&Utc) <= now {
            problems.push(FieldError::new("until", "must be in the future"));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(AppError::Validation(problems))
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
        code: "concurrent_update",
        detail: "the order was changed by another request at the same time".into(),
        allowed_actions: None,
    }
}

/// Checks the crew of a dispatch or reassign; returns the eligibility rules it overrides.
fn crew_for(
    conn: &mut DbConnection,
    order: &WorkOrderRow,
    crew_id: &str,
    categories: &Categories,
) -> Result<(crate::db::crews::CrewRow, Vec<&'static str>), AppError> {
    let crew =
        crews::find(conn, crew_id)?.ok_or_else(|| AppError::invalid("crew_id", "no such crew"))?;
    let area = areas::find(conn, &order.area_code)?;
    let backup = area
        .map(|a| from_json_list(&a.backup_area_codes))
        .unwrap_or_default();
    let kind = kind_of(order);
    let skill = categories
        .find(kind, &order.category)
        .and_then(|c| c.skill.clone());
    let crew_areas = from_json_list(&crew.area_codes);
    let skills = from_json_list(&crew.skills);
    let returned = from_json_list(&order.returned_crew_ids);
    let load = crews::open_load(conn, &crew.id)?;
    let facts = CrewFacts {
        id: &crew.id,
        kind: crew.kind.parse().unwrap_or(CrewKind::Field),
        on_duty: crew.on_duty,
        area_codes: &crew_areas,
        skills: &skills,
        capacity: i64::from(crew.capacity),
        load,
    };
    let needs = OrderNeeds {
        kind,
        area_code: &order.area_code,
        backup_area_codes: &backup,
        skill: skill.as_deref(),
        returned_crew_ids: &returned,
    };
    let overridden = routing::failed_rules(&facts, &needs);
    Ok((crew, overridden))
}

/// A request to take an action on an order.
pub struct ActRequest {
    pub action: Action,
    /// The typed body, or why it could not be typed (reported only after the state checks).
    pub body: Result<ActionBody, AppError>,
    pub if_match: Option<Option<i32>>,
}

/// Takes an action: checks in the order 404 → 403 → 412 → 409 → 422, then writes the new
/// status and its event (and any cascade) in one transaction, guarded on the version.
pub fn act(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
    request: ActRequest,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<Acted, AppError> {
    let action = request.action;
    write_transaction(conn, |conn| {
        let order = load_visible(conn, actor, id)?;
        let f = facts(&order, now, rules);
        let decision = state_machine::decide(f, action, actor.role);
        if decision == Err(Refusal::RoleForbidden) {
            return Err(AppError::forbidden(format!(
                "a {} may not {action} a {} order",
                actor.role, f.kind
            )));
        }
        check_if_match(request.if_match, order.version)?;
        let next = decision.map_err(|_| AppError::Conflict {
            code: "action_not_allowed",
            detail: format!("`{action}` is not allowed while the order is {}", f.status),
            allowed_actions: Some(state_machine::allowed_actions(f, actor.role)),
        })?;
        if matches!(action, Action::Cancel | Action::Merge) {
            refuse_active_outage_master(conn, &order)?;
        }
        let body = request.body?;
        validate_body(action, f.kind, &body, now)?;

        let mut changes = WorkOrderChanges {
            status: (next != f.status).then(|| next.as_str().to_owned()),
            version: Some(order.version + 1),
            updated_at: Some(now.naive_utc()),
            ..Default::default()
        };
        let mut data = serde_json::Map::new();
        if let Some(note) = &body.note {
            data.insert("note".into(), note.clone().into());
        }
        let mut to = next;
        let mut routing_info: Option<serde_json::Value> = None;
        let mut retarget = false;
        match action {
            Action::Dispatch | Action::Reassign => {
                let routed = match &body.crew_id {
                    Some(_) => None,
                    None => {
                        let ranked = super::routing::candidates(
                            conn,
                            &order,
                            &rules.categories,
                            &rules.routing,
                            now,
                        )?;
                        let considered = ranked.len();
                        match ranked.into_iter().find(|r| r.eligible) {
                            Some(best) => Some(best),
                            None => {
                                events::insert(
                                    conn,
                                    &event(
                                        &order.id,
                                        "no_eligible_crew",
                                        None,
                                        (Some(f.status), Some(f.status)),
                                        None,
                                        json!({"considered": considered}),
                                        now,
                                    ),
                                )?;
                                rules
                                    .notifier
                                    .no_eligible_crew(conn, &order, considered, now)?;
                                return Ok(Acted::NoEligibleCrew { considered });
                            }
                        }
                    }
                };
                if let Some(best) = &routed {
                    routing_info = Some(
                        json!({"crew_id": best.crew_id, "code": best.code, "score": best.score,
                        "distance_km": best.distance_km, "parts": best.parts}),
                    );
                    data.insert("routed".into(), true.into());
                    data.insert("score".into(), json!(best.score));
                    data.insert("parts".into(), json!(best.parts));
                    data.insert("distance_km".into(), json!(best.distance_km));
                }
                let chosen = routed.as_ref().map(|r| r.crew_id.clone());
                let crew_id = body
                    .crew_id
                    .as_deref()
                    .or(chosen.as_deref())
                    .unwrap_or_default();
                if action == Action::Reassign && order.assigned_crew_id.as_deref() == Some(crew_id)
                {
                    return Err(AppError::invalid(
                        "crew_id",
                        "the order is already assigned to this crew",
                    ));
                }
                let (crew, overridden) = crew_for(conn, &order, crew_id, &rules.categories)?;
                data.insert("crew_id".into(), crew.id.clone().into());
                data.insert("crew_code".into(), crew.code.clone().into());
                data.insert("overridden".into(), json!(overridden));
                if let Some(previous) = &order.assigned_crew_id {
                    data.insert("previous_crew_id".into(), previous.clone().into());
                }
                changes.assigned_crew_id = Some(Some(crew.id));
            }
            Action::Reject => {
                let mut returned = from_json_list(&order.returned_crew_ids);
                if let Some(crew) = &order.assigned_crew_id {
                    data.insert("crew_id".into(), crew.clone().into());
                    if !returned.contains(crew) {
                        returned.push(crew.clone());
                    }
                }
                changes.returned_crew_ids = Some(to_json_list(&returned));
                changes.assigned_crew_id = Some(None);
            }
            Action::Suspend => {
                changes.suspended_from = Some(Some(f.status.as_str().to_owned()));
                changes.suspend_until = Some(body.until.map(|u| u.with_timezone(&Utc).naive_utc()));
                if let Some(until) = body.until {
                    data.insert("until".into(), json!(until.with_timezone(&Utc)));
                }
            }
            Action::Resume => {
                changes.suspended_from = Some(None);
                changes.suspend_until = Some(None);
            }
            Action::Resolve => {
                changes.resolution = Some(body.resolution.clone());
                changes.resolved_at = Some(Some(now.naive_utc()));
                data.insert("resolution".into(), body.resolution.clone().into());
            }
            Action::Callback => {
                let satisfaction = body.satisfaction.unwrap_or(Satisfaction::Satisfied);
                changes.satisfaction = Some(Some(satisfaction.as_str().to_owned()));
                data.insert("satisfaction".into(), satisfaction.as_str().into());
                if callback_reopens(satisfaction) {
                    to = Status::Reopened;
                    reopen(&order, &mut changes, &mut data);
                } else {
                    changes.closed_at = Some(Some(now.naive_utc()));
                }
                changes.status = Some(to.as_str().to_owned());
            }
            Action::Close | Action::Cancel => {
                changes.closed_at = Some(Some(now.naive_utc()));
                changes.suspended_from = Some(None);
                changes.suspend_until = Some(None);
                if action == Action::Close
                    && f.status == Status::Resolved
                    && f.kind.family() != crate::domain::Family::Reply
                {
                    data.insert("callback_waived".into(), true.into());
                }
            }
            Action::Reopen => reopen(&order, &mut changes, &mut data),
            Action::Merge => {
                let master_id = body.master_id.clone().unwrap_or_default();
                let master = check_master(conn, actor, &order, &master_id)?;
                // Touch the master so a concurrent change to it (its resolution) and this
                // merge cannot both commit unseen by each other.
                let touch = WorkOrderChanges {
                    version: Some(master.version + 1),
                    updated_at: Some(now.naive_utc()),
                    ..Default::default()
                };
                if !repo::guarded_update(conn, &master.id, master.version, &touch)? {
                    return Err(concurrent());
                }
                data.insert("master_id".into(), master_id.clone().into());
                changes.master_id = Some(Some(master_id));
            }
            Action::Unmerge => {
                if let Some(master) = &order.master_id {
                    data.insert("master_id".into(), master.clone().into());
                }
                if let Some(outage) = &order.outage_id {
                    data.insert("outage_id".into(), outage.clone().into());
                }
                changes.master_id = Some(None);
                // released from the outage too: no longer counted or told about it
                changes.outage_id = Some(None);
            }
            Action::Urge => {
                let count = order.urge_count + 1;
                changes.urge_count = Some(count);
                data.insert("urge_count".into(), count.into());
                // a merged order's customer is waiting on the master's crew
                let crew = match &order.master_id {
                    Some(master) => repo::find(conn, master)?.and_then(|m| m.assigned_crew_id),
                    None => order.assigned_crew_id.clone(),
                };
                if let Some(crew) = crew {
                    data.insert("notify_crew_id".into(), crew.into());
                }
                let every = rules.urges_to_raise_priority;
                if every > 0 && count % every == 0 {
                    if let Some(higher) = raised(&order.priority) {
                        changes.priority = Some(higher.to_owned());
                        data.insert(
                            "priority".into(),
                            json!({"old": order.priority, "new": higher}),
                        );
                        retarget = true;
                    }
                }
            }
            Action::Accept | Action::Depart | Action::Arrive | Action::Contact => {}
            Action::Note | Action::Update => {
                return Err(AppError::internal(
                    "note and update are not actions of this endpoint",
                ));
            }
        }
        let changed = repo::guarded_update_returning(conn, &order.id, order.version, &changes)?
            .ok_or_else(concurrent)?;
        let from = (to != f.status || action != Action::Urge).then_some(f.status);
        if retarget {
            let recalculated = sla::recalculate(conn, &rules.sla, &changed, now)?;
            data.insert("sla_recalculated".into(), json!(recalculated));
        }
        events::insert(
            conn,
            &event(
                &order.id,
                action.as_str(),
                Some(actor),
                (from, Some(to)),
                body.reason.clone(),
                serde_json::Value::Object(data),
                now,
            ),
        )?;
        record_credits(conn, action, (&order, &changed), to, now)?;
        let timers = sla::apply(
            conn,
            &rules.sla,
            &changed,
            &sla_rules::plan(f.kind, action, to),
            order.assigned_crew_id.as_deref(),
            now,
        )?;
        if to == Status::Resolved {
            resolve_merged(conn, &order.id, now, &rules.sla)?;
        }
        if to == Status::Cancelled {
            release_merged(
                conn,
                &order.id,
                now,
                &rules.sla,
                ("unmerge", "master cancelled"),
            )?;
        }
        Ok(Acted::Done(Box::new(changed), routing_info, timers))
    })
}

/// The master of an active outage is cancelled or merged only with its outage (restore or
/// cancel the outage): on its own, every later call in the area would link to a dead order.
fn refuse_active_outage_master(
    conn: &mut DbConnection,
    order: &WorkOrderRow,
) -> Result<(), AppError> {
    let Some(outage_id) = &order.outage_id else {
        return Ok(());
    };
    match crate::db::outages::find(conn, outage_id)? {
        Some(o) if o.master_id == order.id && o.status == "active" => Err(AppError::Conflict {
            code: "outage_master",
            detail: format!(
                "this order is the master of active outage {}: restore or cancel the outage",
                o.id
            ),
            allowed_actions: None,
        }),
        _ => Ok(()),
    }
}

/// The facts an action credits to a crew (PRODUCT.md, "Metrics and crew performance"): a
/// dispatch to the new crew, a return by the crew that held the order, a resolve by it, a
/// callback on its resolve; a reopen (or an unhappy callback) marks its resolve as reworked.
fn record_credits(
    conn: &mut DbConnection,
    action: Action,
    (before, after): (&WorkOrderRow, &WorkOrderRow),
    to: Status,
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    use credits::Fact;
    let at = now.naive_utc();
    let held = before.assigned_crew_id.as_deref();
    match action {
        Action::Dispatch | Action::Reassign => {
            if let Some(crew) = &after.assigned_crew_id {
                credits::record(conn, Fact::Dispatch, crew, &after.id, None, at)?;
            }
        }
        Action::Reject => {
            if let Some(crew) = held {
                credits::record(conn, Fact::Return, crew, &after.id, None, at)?;
            }
        }
        Action::Resolve => {
            if let Some(crew) = held {
                credits::record(conn, Fact::Resolve, crew, &after.id, None, at)?;
            }
        }
        Action::Callback => {
            if let Some(crew) = held {
                let satisfaction = after.satisfaction.as_deref();
                credits::record(conn, Fact::Callback, crew, &after.id, satisfaction, at)?;
            }
            if to == Status::Reopened {
                credits::mark_reopened(conn, &after.id, at)?;
            }
        }
        Action::Reopen => credits::mark_reopened(conn, &after.id, at)?,
        _ => {}
    }
    Ok(())
}

/// The next priority up, if any.
fn raised(priority: &str) -> Option<&'static str> {
    match priority {
        "low" => Some("normal"),
        "normal" => Some("high"),
        "high" => Some("urgent"),
        _ => None,
    }
}

/// A reopen (or an unhappy callback) sends the order back to be dispatched again.
fn reopen(
    order: &WorkOrderRow,
    changes: &mut WorkOrderChanges,
    data: &mut serde_json::Map<String, serde_json::Value>,
) {
    changes.reopen_count = Some(order.reopen_count + 1);
    changes.closed_at = Some(None);
    changes.resolved_at = Some(None);
    changes.assigned_crew_id = Some(None);
    if let Some(crew) = &order.assigned_crew_id {
        data.insert("previous_crew_id".into(), crew.clone().into());
    }
    data.insert("reopen_count".into(), (order.reopen_count + 1).into());
}

fn check_master(
    conn: &mut DbConnection,
    actor: &Actor,
    order: &WorkOrderRow,
    master_id: &str,
) -> Result<WorkOrderRow, AppError> {
    if master_id == order.id {
        return Err(AppError::invalid(
            "master_id",
            "an order cannot be merged into itself",
        ));
    }
    if !repo::merged_into(conn, &order.id)?.is_empty() {
        return Err(AppError::invalid(
            "master_id",
            "other orders are merged into this one; it cannot be merged itself",
        ));
    }
    let master = repo::find(conn, master_id)?
        .filter(|m| actor.sees_order(&m.area_code, m.assigned_crew_id.as_deref()))
        .ok_or_else(|| AppError::invalid("master_id", "no such work order"))?;
    if master.kind != order.kind {
        return Err(AppError::invalid(
            "master_id",
            "the master must be of the same kind",
        ));
    }
    let status = status_of(&master);
    if !status.is_open() || matches!(status, Status::Merged | Status::Resolved) {
        return Err(AppError::invalid(
            "master_id",
            format!("the master is {status}; it must be open and unresolved"),
        ));
    }
    Ok(master)
}

/// When a master is cancelled, the orders merged into it go back to `new` to be handled on
/// their own (a system `unmerge`), with their opening timers started again.
pub(crate) fn release_merged(
    conn: &mut DbConnection,
    master_id: &str,
    now: DateTime<Utc>,
    sla_context: &SlaContext,
    (event_type, reason): (&str, &str),
) -> Result<(), AppError> {
    for child in repo::merged_into(conn, master_id)? {
        let changes = WorkOrderChanges {
            status: Some(Status::New.as_str().to_owned()),
            master_id: Some(None),
            outage_id: Some(None),
            version: Some(child.version + 1),
            updated_at: Some(now.naive_utc()),
            ..Default::default()
        };
        if !repo::guarded_update(conn, &child.id, child.version, &changes)? {
            return Err(concurrent());
        }
        events::insert(
            conn,
            &event(
                &child.id,
                event_type,
                None,
                (Some(Status::Merged), Some(Status::New)),
                Some(reason.to_owned()),
                json!({"master_id": master_id, "outage_id": child.outage_id}),
                now,
            ),
        )?;
        let released = repo::find(conn, &child.id)?.ok_or_else(order_not_found)?;
        let kind = kind_of(&released);
        sla::apply(
            conn,
            sla_context,
            &released,
            &sla_rules::plan(kind, Action::Unmerge, Status::New),
            None,
            now,
        )?;
    }
    Ok(())
}

/// When a master resolves, the orders merged into it resolve too (system events).
pub(crate) fn resolve_merged(
    conn: &mut DbConnection,
    master_id: &str,
    now: DateTime<Utc>,
    sla_context: &SlaContext,
) -> Result<(), AppError> {
    for child in repo::merged_into(conn, master_id)? {
        let changes = WorkOrderChanges {
            status: Some(Status::Resolved.as_str().to_owned()),
            resolved_at: Some(Some(now.naive_utc())),
            version: Some(child.version + 1),
            updated_at: Some(now.naive_utc()),
            ..Default::default()
        };
        if !repo::guarded_update(conn, &child.id, child.version, &changes)? {
            return Err(concurrent());
        }
        events::insert(
            conn,
            &event(
                &child.id,
                "master_resolved",
                None,
                (Some(Status::Merged), Some(Status::Resolved)),
                None,
                json!({"master_id": master_id}),
                now,
            ),
        )?;
        // Each linked order still gets its callback.
        let resolved = repo::find(conn, &child.id)?.ok_or_else(order_not_found)?;
        let kind = kind_of(&resolved);
        sla::apply(
            conn,
            sla_context,
            &resolved,
            &sla_rules::plan(kind, Action::Resolve, Status::Resolved),
            None,
            now,
        )?;
    }
    Ok(())
}

/// Adds a note (agent, dispatcher, the assigned crew); the order itself does not change.
pub fn add_note(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
    text: Result<String, AppError>,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<events::EventRow, AppError> {
    write_transaction(conn, |conn| {
        let order = load_visible(conn, actor, id)?;
        let f = facts(&order, now, rules);
        match state_machine::decide(f, Action::Note, actor.role) {
            Err(Refusal::RoleForbidden) => {
                return Err(AppError::forbidden(format!(
                    "a {} may not add notes",
                    actor.role
                )))
            }
            Err(Refusal::NotAllowedNow) => {
                return Err(AppError::Conflict {
                    code: "action_not_allowed",
                    detail: format!("notes are not allowed while the order is {}", f.status),
                    allowed_actions: Some(state_machine::allowed_actions(f, actor.role)),
                })
            }
            Ok(_) => {}
        }
        let text = text?;
        events::insert_returning(
            conn,
            &event(
                &order.id,
                "note",
                Some(actor),
                (None, None),
                None,
                json!({"text": text}),
                now,
            ),
        )
    })
}

/// A correction of an order's fields (PATCH).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Correction {
    pub category: Option<String>,
    pub priority: Option<crate::domain::Priority>,
    pub area_code: Option<String>,
    pub address: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub description: Option<String>,
    pub grade: Option<crate::domain::Grade>,
}

/// A request to correct an order.
pub struct CorrectRequest {
    /// The typed body, or why it could not be typed (reported only after the state checks).
    pub correction: Result<Correction, AppError>,
    pub if_match: Option<Option<i32>>,
}

/// Applies a correction, audited as an `update` event with old and new values.
pub fn correct(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
    request: CorrectRequest,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<WorkOrderRow, AppError> {
    let CorrectRequest {
        correction,
        if_match,
    } = request;
    write_transaction(conn, |conn| {
        let order = load_visible(conn, actor, id)?;
        let f = facts(&order, now, rules);
        match state_machine::decide(f, Action::Update, actor.role) {
            Err(Refusal::RoleForbidden) => {
                return Err(AppError::forbidden(format!(
                    "a {} may not correct orders",
                    actor.role
                )))
            }
            Ok(_) => check_if_match(if_match, order.version)?,
            Err(Refusal::NotAllowedNow) => {
                check_if_match(if_match, order.version)?;
                return Err(AppError::Conflict {
                    code: "action_not_allowed",
                    detail: format!("a {} order cannot be corrected", f.status),
                    allowed_actions: Some(state_machine::allowed_actions(f, actor.role)),
                });
            }
        }
        let c = correction?;
        let mut problems = crate::errors::Problems::default();
        if let Some(category) = &c.category {
            if rules.categories.find(f.kind, category).is_none() {
                problems.add("category", format!("not a category of {}", f.kind));
            }
        }
        if c.grade.is_some() && f.kind != Kind::Complaint {
            problems.add("grade", "only complaints have a grade");
        }
        problems.text(
            "description",
            c.description.as_deref(),
            limits::DESCRIPTION,
            c.description.is_some(),
        );
        problems.text("address", c.address.as_deref(), limits::ADDRESS, false);
        for (field, message) in crate::domain::values::check_coordinates(
            c.lat.or(order.lat.filter(|_| c.lon.is_some())),
            c.lon.or(order.lon.filter(|_| c.lat.is_some())),
        ) {
            problems.add(field, message);
        }
        if let Some(area) = &c.area_code {
            if areas::find(conn, area)?.is_none() {
                problems.add("area_code", "no such area");
            }
        }
        problems.finish()?;

        let mut diff = serde_json::Map::new();
        let mut changes = WorkOrderChanges::default();
        let mut record = |name: &str, old: serde_json::Value, new: serde_json::Value| -> bool {
            if old != new {
                diff.insert(name.to_owned(), json!({"old": old, "new": new}));
                true
            } else {
                false
            }
        };
        if let Some(v) = &c.category {
            if record("category", json!(order.category), json!(v)) {
                changes.category = Some(v.clone());
            }
        }
        if let Some(v) = c.priority {
            if record("priority", json!(order.priority), json!(v)) {
                changes.priority = Some(v.as_str().to_owned());
            }
        }
        if let Some(v) = &c.area_code {
            if record("area_code", json!(order.area_code), json!(v)) {
                changes.area_code = Some(v.clone());
            }
        }
        if let Some(v) = &c.address {
            if record("address", json!(order.address), json!(v)) {
                changes.address = Some(Some(v.clone()));
            }
        }
        if let Some(v) = c.lat {
            if record("lat", json!(order.lat), json!(v)) {
                changes.lat = Some(Some(v));
            }
        }
        if let Some(v) = c.lon {
            if record("lon", json!(order.lon), json!(v)) {
                changes.lon = Some(Some(v));
            }
        }
        if let Some(v) = &c.description {
            if record("description", json!(order.description), json!(v)) {
                changes.description = Some(v.clone());
            }
        }
        if let Some(v) = c.grade {
            if record("grade", json!(order.grade), json!(v)) {
                changes.grade = Some(Some(v.as_str().to_owned()));
            }
        }
        if diff.is_empty() {
            return Ok(order);
        }
        changes.version = Some(order.version + 1);
        changes.updated_at = Some(now.naive_utc());
        let retarget = ["priority", "category", "area_code"]
            .iter()
            .any(|k| diff.contains_key(*k));
        if !repo::guarded_update(conn, &order.id, order.version, &changes)? {
            return Err(concurrent());
        }
        let corrected = repo::find(conn, &order.id)?.ok_or_else(order_not_found)?;
        let mut data = json!({"changes": diff});
        if retarget {
            let recalculated = sla::recalculate(conn, &rules.sla, &corrected, now)?;
            if !recalculated.is_empty() {
                data["sla_recalculated"] = json!(recalculated);
            }
        }
        events::insert(
            conn,
            &event(
                &order.id,
                "update",
                Some(actor),
                (None, None),
                None,
                data,
                now,
            ),
        )?;
        Ok(corrected)
    })
}

/// Resumes orders whose `suspend.until` has passed (a system action, event `auto_resumed`).
/// Returns how many were resumed; a concurrent change to an order leaves it for next time.
pub fn auto_resume_due(
    conn: &mut DbConnection,
    now: DateTime<Utc>,
    rules: &Rules,
    limit: i64,
) -> Result<usize, AppError> {
    write_transaction(conn, |conn| {
        let mut resumed = 0;
        for order in repo::suspended_until(conn, now.naive_utc(), limit)? {
            let back_to = order
                .suspended_from
                .as_deref()
                .and_then(|s| s.parse::<Status>().ok())
                .unwrap_or(Status::Accepted);
            let changes = WorkOrderChanges {
                status: Some(back_to.as_str().to_owned()),
                suspended_from: Some(None),
                suspend_until: Some(None),
                version: Some(order.version + 1),
                updated_at: Some(now.naive_utc()),
                ..Default::default()
            };
            if !repo::guarded_update(conn, &order.id, order.version, &changes)? {
                continue;
            }
            let until = order.suspend_until.map(|u| u.and_utc());
            // The clock resumes at `until`, not when the scanner got round to it.
            let resumed_at = until.unwrap_or(now).min(now);
            events::insert(
                conn,
                &event(
                    &order.id,
                    "auto_resumed",
                    None,
                    (Some(Status::Suspended), Some(back_to)),
                    None,
                    json!({"until": until}),
                    now,
                ),
            )?;
            let changed = repo::find(conn, &order.id)?.ok_or_else(order_not_found)?;
            sla::apply(
                conn,
                &rules.sla,
                &changed,
                &sla_rules::plan(kind_of(&changed), Action::Resume, back_to),
                changed.assigned_crew_id.as_deref(),
                resumed_at,
            )?;
            resumed += 1;
        }
        Ok(resumed)
    })
}
