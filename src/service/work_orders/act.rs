//! The actions of the status table (PRODUCT.md), and the automatic resume of suspended orders.

use super::*;

/// What an action did.
#[derive(Debug)]
pub enum Acted {
    /// The order after the action; for an automatic dispatch, the crew chosen and its score;
    /// the order's timers when the action read them (else the caller reads them).
    Done(
        Box<WorkOrderRow>,
        Option<Box<Ranked>>,
        Option<Vec<crate::db::timers::TimerRow>>,
    ),
    /// Automatic dispatch found no eligible crew: the order stays as it was; the event
    /// `no_eligible_crew` and the dispatchers' mail are committed.
    NoEligibleCrew { considered: usize },
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
pub fn accepted_fields(action: Action) -> &'static [&'static str] {
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

pub(super) fn validate_body(
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

/// Checks the crew of a dispatch or reassign; returns the eligibility rules it overrides.
pub(super) fn crew_for(
    conn: &mut DbConnection,
    order: &WorkOrderRow,
    area: Option<&crate::db::areas::AreaRow>,
    crew_id: &str,
    categories: &Categories,
) -> Result<(crate::db::crews::CrewRow, Vec<&'static str>), AppError> {
    let crew =
        crews::find(conn, crew_id)?.ok_or_else(|| AppError::invalid("crew_id", "no such crew"))?;
    let backup = match area.filter(|a| a.code == order.area_code) {
        Some(a) => a.backup_area_codes.to_vec(),
        None => areas::find(conn, &order.area_code)?
            .map(|a| a.backup_area_codes.to_vec())
            .unwrap_or_default(),
    };
    let kind = order.kind;
    let skill = categories
        .find(kind, &order.category)
        .and_then(|c| c.skill.clone());
    let crew_areas = crew.area_codes.to_vec();
    let skills = crew.skills.to_vec();
    let returned = order.returned_crew_ids.to_vec();
    let load = crews::open_load(conn, &crew.id)?;
    let facts = CrewFacts {
        id: &crew.id,
        kind: crew.kind,
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
/// status and its event (and any cascade) in one transaction, guarded on the version. What
/// the action itself changes comes from its own function below (`effect`); the steps every
/// action shares (the guarded update, the event, credits, timers, cascades) follow it.
pub fn act(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
    request: ActRequest,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<Acted, AppError> {
    let ActRequest {
        action,
        body,
        if_match,
    } = request;
    let (body, mut body_error) = match body {
        Ok(b) => (Some(b), None),
        Err(e) => (None, Some(e)),
    };
    // On PostgreSQL's write sessions an action whose writes are one statement needs no
    // transaction: the read, then that statement, which fails whole if the order or a timer
    // moved on (`repo::guarded_update_alone`). Under READ COMMITTED each statement of a
    // transaction sees what was committed when it started, and the read takes no lock, so
    // reading before the write is what reading inside a transaction would be. Any other
    // action (or one that turns out to write more) runs in a transaction.
    let mut alone =
        crate::db::session_plans(conn) == Some(Plans::IndexedOnce) && may_act_alone(action);
    // A timer the scanner fired between the read and the write: start over from the read.
    let mut timer_moves = 0;
    while timer_moves < 3 {
        let request = Attempt {
            action,
            body: body.as_ref(),
            body_error: &mut body_error,
            if_match,
            alone,
        };
        let attempt = if alone {
            act_once(conn, actor, id, request, now, rules)
        } else {
            // Every statement of an action has its index (the order and its timers by key,
            // the crews and their loads, routing's cells): one kept plan each, as for a create.
            write_transaction_planned(conn, Plans::IndexedOnce, |conn| {
                act_once(conn, actor, id, request, now, rules)
            })
        };
        match attempt {
            Ok(acted) => return Ok(acted),
            Err(Failed::App(e)) => return Err(e),
            Err(Failed::TimerMoved) => timer_moves += 1,
            Err(Failed::NeedsTransaction) => alone = false,
        }
    }
    Err(AppError::Conflict {
        code: ProblemCode::ConcurrentUpdate,
        detail: "a timer of this order was changed at the same time".into(),
        allowed_actions: None,
    })
}

/// Whether an action may be written without a transaction when what it reads allows: merge
/// touches its master, urge may re-target the timers, reopen marks the crew's resolves as
/// reworked — each more than one statement.
fn may_act_alone(action: Action) -> bool {
    !matches!(action, Action::Merge | Action::Urge | Action::Reopen)
}

/// Why one attempt at an action did not commit.
enum Failed {
    App(AppError),
    /// A timer to change had moved on since the read (the scanner fired it).
    TimerMoved,
    /// Tried without a transaction, the action turned out to write more than one statement;
    /// nothing was written.
    NeedsTransaction,
}

impl From<AppError> for Failed {
    fn from(e: AppError) -> Failed {
        Failed::App(e)
    }
}

impl From<diesel::result::Error> for Failed {
    fn from(e: diesel::result::Error) -> Failed {
        Failed::App(e.into())
    }
}

/// One attempt's view of the request: the body, or the error typing it (given out once).
struct Attempt<'a> {
    action: Action,
    body: Option<&'a ActionBody>,
    body_error: &'a mut Option<AppError>,
    if_match: Option<Option<i32>>,
    /// No transaction: the attempt may write one statement ([`repo::guarded_update_alone`])
    /// and nothing else; it answers [`Failed::NeedsTransaction`] before writing otherwise.
    alone: bool,
}

/// One attempt at [`act`], in its transaction or alone.
fn act_once(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
    request: Attempt<'_>,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<Acted, Failed> {
    let action = request.action;
    let alone = request.alone;
    // The order with its timers and what its credit needs: one statement.
    let read = repo::find_for_action(conn, id)?
        .filter(|r| actor.sees_order(&r.order.area_code, r.order.assigned_crew_id.as_deref()))
        .ok_or_else(order_not_found)?;
    let repo::OrderForAction {
        order,
        timers: read_timers,
        any_window,
        holder_resolved_at,
        rule,
        has_merged,
    } = read;
    let order = &order;
    let f = facts(order, now, rules);
    let decision = state_machine::decide(f, action, actor.role);
    if decision == Err(Refusal::RoleForbidden) {
        return Err(AppError::forbidden(format!(
            "a {} may not {action} a {} order",
            actor.role, f.kind
        ))
        .into());
    }
    check_if_match(request.if_match, order.version)?;
    let next = decision.map_err(|_| AppError::Conflict {
        code: ProblemCode::ActionNotAllowed,
        detail: format!("`{action}` is not allowed while the order is {}", f.status),
        allowed_actions: Some(state_machine::allowed_actions(f, actor.role)),
    })?;
    if matches!(action, Action::Cancel | Action::Merge) {
        refuse_active_outage_master(conn, order)?;
    }
    let Some(body) = request.body else {
        let typed = request.body_error.take();
        return Err(typed
            .unwrap_or_else(|| {
                AppError::internal("the action's body was neither typed nor refused")
            })
            .into());
    };
    validate_body(action, f.kind, body, now)?;

    let mut effect = Effect::new(order, next, f.status, now);
    if let Some(note) = &body.note {
        effect.data.insert("note".into(), note.clone().into());
    }
    let step = Step {
        actor,
        order,
        area: rule.as_ref().map(|r| &r.area),
        facts: f,
        body,
        rules,
        now,
        alone,
    };
    let done = match action {
        Action::Dispatch | Action::Reassign => dispatch(conn, &step, action, &mut effect)?,
        Action::Reject => reject(&step, &mut effect),
        Action::Suspend => suspend(&step, &mut effect),
        Action::Resume => resume(&mut effect),
        Action::Resolve => resolve(&step, &mut effect),
        Action::Callback => callback(&step, &mut effect),
        Action::Close | Action::Cancel => close(&step, action, &mut effect),
        Action::Reopen => reopen(order, &mut effect.changes, &mut effect.data),
        Action::Merge => merge(conn, &step, &mut effect)?,
        Action::Unmerge => unmerge(&step, &mut effect),
        Action::Urge => urge(conn, &step, &mut effect)?,
        Action::Accept | Action::Depart | Action::Arrive | Action::Contact => Outcome::default(),
        Action::Note | Action::Update => {
            return Err(
                AppError::internal("note and update are not actions of this endpoint").into(),
            );
        }
    };
    if let Some(refused) = done.refused {
        // Nothing of the order changes; what the refusal recorded is committed.
        return Ok(refused);
    }
    let Effect {
        changes,
        mut data,
        to,
        routing,
        retarget,
    } = effect;
    let from = (to != f.status || action != Action::Urge).then_some(f.status);
    let event_of = |data| {
        event(
            &order.id,
            action.as_str(),
            Some(actor),
            (from, Some(to)),
            body.reason.clone(),
            serde_json::Value::Object(data),
            now,
        )
    };
    let plan = sla_rules::plan(f.kind, action, to);
    let held = order.assigned_crew_id.as_deref();
    let (changed, timers) = if retarget {
        if alone {
            return Err(Failed::NeedsTransaction);
        }
        // The event tells what the recalculation changed: written after it, and the
        // timers read with the order are stale.
        let changed = repo::guarded_update_returning(conn, &order.id, order.version, &changes)?
            .ok_or_else(concurrent)?;
        let recalculated = sla::recalculate(conn, &rules.sla, &changed, now)?;
        data.insert("sla_recalculated".into(), json!(recalculated));
        events::insert(conn, &event_of(data))?;
        let timers = sla::apply(conn, &rules.sla, &changed, &plan, held, now)?;
        (changed, timers)
    } else {
        // The timers' changes are worked out on the order as the update will store it,
        // then written with the update, its event and its credit: one statement on
        // PostgreSQL.
        let planned_on = projected(order, &changes)?;
        let read = sla::OrderTimers {
            all: read_timers,
            any_window,
            rule,
            pauses: None,
        };
        let mut writes = TimerWrites::default();
        let timers = sla::apply_to_read(
            conn,
            &rules.sla,
            &planned_on,
            &plan,
            held,
            now,
            read,
            Some(&mut writes),
        )?;
        let credit = credit_of(action, order, &changes, holder_resolved_at, now);
        let write = (order.id.as_str(), order.version);
        let applied = if alone {
            if reworks(action, to) || cascades(to, has_merged, order) {
                return Err(Failed::NeedsTransaction);
            }
            let event = event_of(data);
            repo::guarded_update_alone(conn, write, &changes, &event, credit.as_ref(), &writes)?
                .ok_or(Failed::NeedsTransaction)?
        } else {
            let event = event_of(data);
            repo::guarded_update_with(conn, write, &changes, &event, credit.as_ref(), &writes)?
        };
        let changed = match applied {
            Applied::Done(changed) => *changed,
            Applied::OrderMoved => return Err(concurrent().into()),
            Applied::TimerMoved => return Err(Failed::TimerMoved),
        };
        if sla::OrderTerms::from(&planned_on) != sla::OrderTerms::from(&changed) {
            return Err(AppError::internal(format!(
                "order {}: its timers were planned on terms its update did not store",
                order.id
            ))
            .into());
        }
        (changed, Some(timers))
    };
    if reworks(action, to) {
        credits::mark_reopened(conn, &order.id, now.naive_utc())?;
    }
    if to == Status::Resolved && cascades(to, has_merged, order) {
        resolve_merged(conn, &order.id, now, &rules.sla)?;
    }
    if to == Status::Cancelled && cascades(to, has_merged, order) {
        release_merged(
            conn,
            &order.id,
            now,
            &rules.sla,
            ("unmerge", "master cancelled"),
        )?;
    }
    Ok(Acted::Done(
        Box::new(changed),
        routing.map(Box::new),
        timers,
    ))
}

/// Whether the action marks the crew's resolves of the order as reworked (a reopen, or an
/// unhappy callback).
fn reworks(action: Action, to: Status) -> bool {
    action == Action::Reopen || (action == Action::Callback && to == Status::Reopened)
}

/// Whether the action carries on to the orders waiting on this one (resolved or released
/// with it). A merge moves its master's version, so none came since the read (the update
/// would find the order moved on); calls linked to an outage do not, so an outage's master
/// looks again.
fn cascades(to: Status, has_merged: bool, order: &WorkOrderRow) -> bool {
    matches!(to, Status::Resolved | Status::Cancelled) && (has_merged || order.outage_id.is_some())
}

/// The order as its update will store it, in what its timers are planned from: the terms of
/// `sla::OrderTerms` an action may change (its area, customer and phone it does not). The
/// stored row is compared with it after the update.
fn projected(order: &WorkOrderRow, changes: &WorkOrderChanges) -> Result<WorkOrderRow, AppError> {
    let mut row = order.clone();
    if let Some(category) = &changes.category {
        row.category = category.clone();
    }
    if let Some(priority) = &changes.priority {
        row.priority = priority
            .parse()
            .map_err(|_| AppError::internal(format!("unknown priority `{priority}`")))?;
    }
    if let Some(area) = &changes.area_code {
        row.area_code = area.clone();
    }
    if let Some(count) = changes.reopen_count {
        row.reopen_count = count;
    }
    Ok(row)
}

/// What one action reads: who acts, on which order (as it was, with its area when that
/// exists), with which body.
struct Step<'a> {
    actor: &'a Actor,
    order: &'a WorkOrderRow,
    area: Option<&'a crate::db::areas::AreaRow>,
    facts: OrderFacts,
    body: &'a ActionBody,
    rules: &'a Rules,
    now: DateTime<Utc>,
    /// Without a transaction ([`Attempt::alone`]).
    alone: bool,
}

/// What an action changes: the order's fields, its event's data, the status it ends in, and
/// for an automatic dispatch the crew chosen.
struct Effect {
    changes: WorkOrderChanges,
    data: serde_json::Map<String, serde_json::Value>,
    to: Status,
    routing: Option<Ranked>,
    /// The order's SLA targets change (an urge raised the priority): recalculate its timers.
    retarget: bool,
}

impl Effect {
    fn new(order: &WorkOrderRow, next: Status, from: Status, now: DateTime<Utc>) -> Effect {
        Effect {
            changes: WorkOrderChanges {
                status: (next != from).then(|| next.as_str().to_owned()),
                version: Some(order.version + 1),
                updated_at: Some(now.naive_utc()),
                ..Default::default()
            },
            data: serde_json::Map::new(),
            to: next,
            routing: None,
            retarget: false,
        }
    }
}

/// An action that ends before it changes the order, with what to answer (automatic dispatch
/// that found no crew: its event and the dispatchers' mail are committed, the order is not).
#[derive(Default)]
struct Outcome {
    refused: Option<Acted>,
}

/// Dispatch or reassign: to the crew named, or to the best eligible crew by routing.
fn dispatch(
    conn: &mut DbConnection,
    step: &Step<'_>,
    action: Action,
    effect: &mut Effect,
) -> Result<Outcome, Failed> {
    let order = step.order;
    let routed = match &step.body.crew_id {
        Some(_) => None,
        None => {
            let ranked = crate::service::routing::candidates(
                conn,
                order,
                step.area,
                &step.rules.categories,
                &step.rules.routing,
                step.now,
            )?;
            let considered = ranked.len();
            match ranked.into_iter().find(|r| r.eligible) {
                Some(best) => Some(best),
                // The refusal's event and mail are two writes.
                None if step.alone => return Err(Failed::NeedsTransaction),
                None => {
                    let status = step.facts.status;
                    events::insert(
                        conn,
                        &event(
                            &order.id,
                            "no_eligible_crew",
                            None,
                            (Some(status), Some(status)),
                            None,
                            json!({"considered": considered}),
                            step.now,
                        ),
                    )?;
                    step.rules
                        .notifier
                        .no_eligible_crew(conn, order, considered, step.now)?;
                    return Ok(Outcome {
                        refused: Some(Acted::NoEligibleCrew { considered }),
                    });
                }
            }
        }
    };
    let data = &mut effect.data;
    if let Some(best) = &routed {
        data.insert("routed".into(), true.into());
        data.insert("score".into(), json!(best.score));
        data.insert("parts".into(), json!(best.parts));
        data.insert("distance_km".into(), json!(best.distance_km));
    }
    let chosen = routed.as_ref().map(|r| r.crew_id.clone());
    let crew_id = step
        .body
        .crew_id
        .as_deref()
        .or(chosen.as_deref())
        .unwrap_or_default();
    if action == Action::Reassign && order.assigned_crew_id.as_deref() == Some(crew_id) {
        return Err(
            AppError::invalid("crew_id", "the order is already assigned to this crew").into(),
        );
    }
    // Routing ranked the crew it chose by the same rules, on the same reads: it is eligible,
    // so there is nothing to check again or to override.
    let (crew_id, crew_code, overridden) = match &routed {
        Some(best) => (best.crew_id.clone(), best.code.clone(), Vec::new()),
        None => {
            let (crew, overridden) =
                crew_for(conn, order, step.area, crew_id, &step.rules.categories)?;
            (crew.id, crew.code, overridden)
        }
    };
    data.insert("crew_id".into(), crew_id.clone().into());
    data.insert("crew_code".into(), crew_code.into());
    data.insert("overridden".into(), json!(overridden));
    if let Some(previous) = &order.assigned_crew_id {
        data.insert("previous_crew_id".into(), previous.clone().into());
    }
    effect.changes.assigned_crew_id = Some(Some(crew_id));
    effect.routing = routed;
    Ok(Outcome::default())
}

/// Reject (退单): back to `new`, this crew excluded from routing the order again.
fn reject(step: &Step<'_>, effect: &mut Effect) -> Outcome {
    let order = step.order;
    let mut returned = order.returned_crew_ids.to_vec();
    if let Some(crew) = &order.assigned_crew_id {
        effect.data.insert("crew_id".into(), crew.clone().into());
        if !returned.contains(crew) {
            returned.push(crew.clone());
        }
    }
    effect.changes.returned_crew_ids = Some(to_json_list(&returned));
    effect.changes.assigned_crew_id = Some(None);
    Outcome::default()
}

/// Suspend (挂起): remembers the status to resume to, and `until` for the automatic resume.
fn suspend(step: &Step<'_>, effect: &mut Effect) -> Outcome {
    let until = step.body.until;
    effect.changes.suspended_from = Some(Some(step.facts.status.as_str().to_owned()));
    effect.changes.suspend_until = Some(until.map(|u| u.with_timezone(&Utc).naive_utc()));
    if let Some(until) = until {
        effect
            .data
            .insert("until".into(), json!(until.with_timezone(&Utc)));
    }
    Outcome::default()
}

fn resume(effect: &mut Effect) -> Outcome {
    effect.changes.suspended_from = Some(None);
    effect.changes.suspend_until = Some(None);
    Outcome::default()
}

fn resolve(step: &Step<'_>, effect: &mut Effect) -> Outcome {
    let resolution = step.body.resolution.clone();
    effect.changes.resolution = Some(resolution.clone());
    effect.changes.resolved_at = Some(Some(step.now.naive_utc()));
    effect.data.insert("resolution".into(), resolution.into());
    Outcome::default()
}

/// Callback (回访): closes the order, or reopens it when the customer is unsatisfied.
fn callback(step: &Step<'_>, effect: &mut Effect) -> Outcome {
    let satisfaction = step.body.satisfaction.unwrap_or(Satisfaction::Satisfied);
    effect.changes.satisfaction = Some(Some(satisfaction.as_str().to_owned()));
    effect
        .data
        .insert("satisfaction".into(), satisfaction.as_str().into());
    if callback_reopens(satisfaction) {
        effect.to = Status::Reopened;
        reopen(step.order, &mut effect.changes, &mut effect.data);
    } else {
        effect.changes.closed_at = Some(Some(step.now.naive_utc()));
    }
    effect.changes.status = Some(effect.to.as_str().to_owned());
    Outcome::default()
}

/// Close (the callback waived for the field and case families) or cancel.
fn close(step: &Step<'_>, action: Action, effect: &mut Effect) -> Outcome {
    effect.changes.closed_at = Some(Some(step.now.naive_utc()));
    effect.changes.suspended_from = Some(None);
    effect.changes.suspend_until = Some(None);
    if action == Action::Close
        && step.facts.status == Status::Resolved
        && step.facts.kind.family() != Family::Reply
    {
        effect.data.insert("callback_waived".into(), true.into());
    }
    Outcome::default()
}

/// Merge into a master order (the master is touched, so a concurrent change to it and this
/// merge cannot both commit unseen by each other).
fn merge(
    conn: &mut DbConnection,
    step: &Step<'_>,
    effect: &mut Effect,
) -> Result<Outcome, AppError> {
    let master_id = step.body.master_id.clone().unwrap_or_default();
    let master = check_master(conn, step.actor, step.order, &master_id)?;
    let touch = WorkOrderChanges {
        version: Some(master.version + 1),
        updated_at: Some(step.now.naive_utc()),
        ..Default::default()
    };
    if !repo::guarded_update(conn, &master.id, master.version, &touch)? {
        return Err(concurrent());
    }
    effect
        .data
        .insert("master_id".into(), master_id.clone().into());
    effect.changes.master_id = Some(Some(master_id));
    Ok(Outcome::default())
}

/// Unmerge: back to `new`, released from its master and from an outage too (no longer
/// counted or told about it).
fn unmerge(step: &Step<'_>, effect: &mut Effect) -> Outcome {
    let order = step.order;
    if let Some(master) = &order.master_id {
        effect
            .data
            .insert("master_id".into(), master.clone().into());
    }
    if let Some(outage) = &order.outage_id {
        effect
            .data
            .insert("outage_id".into(), outage.clone().into());
    }
    effect.changes.master_id = Some(None);
    effect.changes.outage_id = Some(None);
    Outcome::default()
}

/// Urge (催办): counted, the crew told, and every `urges_to_raise_priority` urges the priority
/// goes up one level (which recalculates the running timers).
fn urge(
    conn: &mut DbConnection,
    step: &Step<'_>,
    effect: &mut Effect,
) -> Result<Outcome, AppError> {
    let order = step.order;
    let count = order.urge_count + 1;
    effect.changes.urge_count = Some(count);
    effect.data.insert("urge_count".into(), count.into());
    // a merged order's customer is waiting on the master's crew
    let crew = match &order.master_id {
        Some(master) => repo::find(conn, master)?.and_then(|m| m.assigned_crew_id),
        None => order.assigned_crew_id.clone(),
    };
    if let Some(crew) = crew {
        effect.data.insert("notify_crew_id".into(), crew.into());
    }
    let every = step.rules.urges_to_raise_priority;
    if every > 0 && count % every == 0 {
        if let Some(higher) = raised(order.priority) {
            effect.changes.priority = Some(higher.as_str().to_owned());
            effect.data.insert(
                "priority".into(),
                json!({"old": order.priority, "new": higher}),
            );
            effect.retarget = true;
        }
    }
    Ok(Outcome::default())
}

/// The master of an active outage is cancelled or merged only with its outage (restore or
/// cancel the outage): on its own, every later call in the area would link to a dead order.
pub(super) fn refuse_active_outage_master(
    conn: &mut DbConnection,
    order: &WorkOrderRow,
) -> Result<(), AppError> {
    let Some(outage_id) = &order.outage_id else {
        return Ok(());
    };
    match crate::db::outages::find(conn, outage_id)? {
        Some(o) if o.master_id == order.id && o.status == "active" => Err(AppError::Conflict {
            code: ProblemCode::OutageMaster,
            detail: format!(
                "this order is the master of active outage {}: restore or cancel the outage",
                o.id
            ),
            allowed_actions: None,
        }),
        _ => Ok(()),
    }
}

/// The fact an action credits to a crew (PRODUCT.md, "Metrics and crew performance"), as the
/// row written with the order's update: a dispatch to the new crew, a return by the crew that
/// held the order, a resolve by it (`holder_resolved_at`: when it last resolved the order, so
/// this one is a repeat), a callback on its resolve. A reopen (or an unhappy callback) marks
/// the resolves as reworked instead ([`credits::mark_reopened`]).
pub(super) fn credit_of(
    action: Action,
    before: &WorkOrderRow,
    changes: &WorkOrderChanges,
    holder_resolved_at: Option<chrono::NaiveDateTime>,
    now: DateTime<Utc>,
) -> Option<credits::CreditRow> {
    use credits::{CreditRow, Fact};
    let at = now.naive_utc();
    let held = before.assigned_crew_id.as_deref();
    let order = before.id.as_str();
    match action {
        Action::Dispatch | Action::Reassign => {
            let crew = changes.assigned_crew_id.as_ref()?.as_deref()?;
            Some(CreditRow::new(Fact::Dispatch, crew, order, None, at, None))
        }
        Action::Reject => Some(CreditRow::new(Fact::Return, held?, order, None, at, None)),
        Action::Resolve => Some(CreditRow::new(
            Fact::Resolve,
            held?,
            order,
            None,
            at,
            holder_resolved_at,
        )),
        Action::Callback => {
            let satisfaction = changes.satisfaction.as_ref().and_then(|s| s.as_deref());
            Some(CreditRow::new(
                Fact::Callback,
                held?,
                order,
                satisfaction,
                at,
                None,
            ))
        }
        _ => None,
    }
}

/// The next priority up, if any.
pub(super) fn raised(priority: Priority) -> Option<Priority> {
    match priority {
        Priority::Low => Some(Priority::Normal),
        Priority::Normal => Some(Priority::High),
        Priority::High => Some(Priority::Urgent),
        Priority::Urgent => None,
    }
}

/// A reopen (or an unhappy callback) sends the order back to be dispatched again.
fn reopen(
    order: &WorkOrderRow,
    changes: &mut WorkOrderChanges,
    data: &mut serde_json::Map<String, serde_json::Value>,
) -> Outcome {
    changes.reopen_count = Some(order.reopen_count + 1);
    changes.closed_at = Some(None);
    changes.resolved_at = Some(None);
    changes.assigned_crew_id = Some(None);
    if let Some(crew) = &order.assigned_crew_id {
        data.insert("previous_crew_id".into(), crew.clone().into());
    }
    data.insert("reopen_count".into(), (order.reopen_count + 1).into());
    Outcome::default()
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
            let back_to = order.suspended_from.unwrap_or(Status::Accepted);
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
                &sla_rules::plan(changed.kind, Action::Resume, back_to),
                changed.assigned_crew_id.as_deref(),
                resumed_at,
            )?;
            resumed += 1;
        }
        Ok(resumed)
    })
}
