//! Appeals (免责申请, PRODUCT.md "Metrics and crew performance"): a crew or a dispatcher asks
//! that a breached timer be excused; a supervisor or admin approves (the timer becomes
//! `excused`, with an `sla_excused` event) or rejects. One pending appeal per timer, none once
//! the timer's month is closed.

use super::reports::area_set;
use crate::db::appeals::{self as repo, AppealFilter, AppealRow};
use crate::db::events::{self, NewEvent};
use crate::db::{scorecards, timers, work_orders, write_transaction, DbConnection};
use crate::domain::reports::Month;
use crate::domain::sla::{Stage, TimerState};
use crate::domain::state_machine::string_enum;
use crate::domain::{Actor, Role};
use crate::errors::ProblemCode;
use crate::errors::{AppError, Problems};
use crate::notify::alerts::Notifier;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::json;
use std::collections::HashSet;

string_enum!(
    /// Why a breach should not count against the crew.
    ReasonCode {
        Weather => "weather",
        CustomerUnreachable => "customer_unreachable",
        AccessDenied => "access_denied",
        ThirdParty => "third_party",
        UpstreamOutage => "upstream_outage",
        Other => "other",
    }
);

string_enum!(
    /// Where an appeal stands.
    AppealStatus {
        Pending => "pending",
        Approved => "approved",
        Rejected => "rejected",
    }
);

/// The timer an appeal names, read from the body before the body is typed (the 404 and 409
/// checks come before a 422).
#[derive(Debug, Clone)]
pub struct Target {
    pub work_order_id: String,
    pub stage: Stage,
    pub instance: i32,
}

/// The typed and checked rest of a filing.
#[derive(Debug, Clone)]
pub struct NewAppeal {
    pub reason_code: ReasonCode,
    pub reason: String,
}

/// A decision's body, typed and checked.
#[derive(Debug, Clone)]
pub enum Decision {
    Approve { note: Option<String> },
    Reject { reason: String },
}

fn order_not_found() -> AppError {
    AppError::NotFound { what: "work order" }
}

fn appeal_not_found() -> AppError {
    AppError::NotFound { what: "appeal" }
}

fn conflict(code: ProblemCode, detail: impl Into<String>) -> AppError {
    AppError::Conflict {
        code,
        detail: detail.into(),
        allowed_actions: None,
    }
}

/// The areas the caller is scoped to, with their descendants; `None` is every area.
fn scope(conn: &mut DbConnection, actor: &Actor) -> Result<Option<HashSet<String>>, AppError> {
    Ok(area_set(conn, actor, None)?.map(|v| v.into_iter().collect()))
}

fn in_scope(scope: &Option<HashSet<String>>, area_code: &str) -> bool {
    scope.as_ref().is_none_or(|s| s.contains(area_code))
}

/// Whether the caller may see an appeal: crew users their crew's and those they filed,
/// scoped users their areas'.
fn sees(actor: &Actor, scope: &Option<HashSet<String>>, a: &AppealRow) -> bool {
    match actor.role {
        Role::Crew => {
            (actor.crew_id.is_some() && a.crew_id == actor.crew_id) || a.filed_by == actor.id
        }
        _ => in_scope(scope, &a.area_code),
    }
}

/// Who files: crews and dispatchers (and admins). Supervisors decide, they never file.
fn require_filer(actor: &Actor) -> Result<(), AppError> {
    if actor.is(&[Role::Crew, Role::Dispatcher]) {
        Ok(())
    } else {
        Err(AppError::forbidden(format!(
            "a {} may not file appeals",
            actor.role
        )))
    }
}

fn require_reader(actor: &Actor) -> Result<(), AppError> {
    if actor.is(&[Role::Crew, Role::Dispatcher, Role::Supervisor]) {
        Ok(())
    } else {
        Err(AppError::forbidden(format!(
            "a {} may not read appeals",
            actor.role
        )))
    }
}

fn require_decider(actor: &Actor) -> Result<(), AppError> {
    if actor.is(&[Role::Supervisor]) {
        Ok(())
    } else {
        Err(AppError::forbidden(format!(
            "a {} may not decide appeals",
            actor.role
        )))
    }
}

/// `POST /appeals`: checks in API.md's order (404, 403, 409 not_breached / appeal_pending /
/// period_closed, 422), then stores the appeal and mails the area's supervisors, in one
/// transaction. The month's row lock serialises the filing with the month's closing.
pub fn file(
    conn: &mut DbConnection,
    actor: &Actor,
    target: Option<Target>,
    body: Result<NewAppeal, AppError>,
    notifier: &Notifier,
    now: DateTime<Utc>,
) -> Result<AppealRow, AppError> {
    let Some(target) = target else {
        // Nothing to look up: only the role can be checked before the body's errors.
        require_filer(actor)?;
        body?;
        return Err(AppError::invalid(
            "work_order_id",
            "name the order, stage and instance",
        ));
    };
    write_transaction(conn, |conn| {
        let order = work_orders::find(conn, &target.work_order_id)?.ok_or_else(order_not_found)?;
        let timer = repo::timer_of(conn, &order.id, target.stage.as_str(), target.instance)?;
        let visible = match actor.role {
            Role::Crew => {
                actor.crew_id.is_some()
                    && (order.assigned_crew_id == actor.crew_id
                        || timer
                            .as_ref()
                            .is_some_and(|t| t.credited_crew_id == actor.crew_id))
            }
            _ => {
                // the timer's area: where its appeal is decided and reported (an ended
                // instance keeps the area it ran in when the order is moved)
                let scope = scope(conn, actor)?;
                let area = timer.as_ref().map_or(&order.area_code, |t| &t.area_code);
                in_scope(&scope, area)
            }
        };
        if !visible {
            return Err(order_not_found());
        }
        let timer = timer.ok_or(AppError::NotFound { what: "timer" })?;
        require_filer(actor)?;
        if timer.state != TimerState::Breached {
            return Err(conflict(
                ProblemCode::NotBreached,
                format!(
                    "the {} timer #{} is {}, not breached",
                    timer.stage, timer.instance, timer.state
                ),
            ));
        }
        let period = Month::of(timer.started_at.and_utc()).to_string();
        // Taken before the pending check: on PostgreSQL two filings on the same month queue
        // here, so the second sees the first's appeal (the unique index backs this up).
        let month = scorecards::lock_period(conn, &period, now.naive_utc())?;
        if repo::has_pending(conn, &timer.id)? {
            return Err(conflict(
                ProblemCode::AppealPending,
                "an appeal on this timer is waiting for a decision",
            ));
        }
        if month.status == "closed" {
            return Err(conflict(
                ProblemCode::PeriodClosed,
                format!("{period} is closed: its timers can no longer be appealed"),
            ));
        }
        let input = body?;
        let row = AppealRow {
            id: crate::db::new_row_key(),
            work_order_id: order.id.clone(),
            timer_id: timer.id.clone(),
            stage: timer.stage.clone(),
            instance: timer.instance,
            area_code: timer.area_code.clone(),
            crew_id: timer
                .credited_crew_id
                .clone()
                .or_else(|| order.assigned_crew_id.clone()),
            period,
            reason_code: input.reason_code.as_str().to_owned(),
            reason: input.reason,
            status: AppealStatus::Pending.as_str().to_owned(),
            filed_by: actor.id.clone(),
            filed_at: now.naive_utc(),
            decided_by: None,
            decided_at: None,
            decision_note: None,
        };
        repo::insert(conn, &row)?;
        let mailed = notifier.appeal_filed(conn, &order, &row, &actor.username, now)?;
        log::info!(
            "appeal {} on {} {}#{} filed by {} ({mailed} supervisors mailed)",
            row.id,
            order.id,
            row.stage,
            row.instance,
            actor.username
        );
        Ok(row)
    })
}

/// `GET /appeals`: newest first, keyset paged; scoped users see their areas (with their
/// descendants), crew users their crew's appeals.
pub fn list(
    conn: &mut DbConnection,
    actor: &Actor,
    status: Option<&str>,
    area_code: Option<&str>,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> Result<Vec<AppealRow>, AppError> {
    require_reader(actor)?;
    let mut p = Problems::default();
    if let Some(s) = status {
        if s.parse::<AppealStatus>().is_err() {
            p.add("status", "must be pending, approved or rejected");
        }
    }
    let known_area = match area_code {
        Some(code) => crate::db::areas::find(conn, code)?.is_some(),
        None => true,
    };
    if !known_area {
        p.add("area_code", "no such area");
    }
    p.finish()?;
    let filter = AppealFilter {
        status: status.map(str::to_owned),
        area_codes: area_set(conn, actor, area_code)?,
        crew_id: (actor.role == Role::Crew)
            .then(|| (actor.crew_id.clone().unwrap_or_default(), actor.id.clone())),
    };
    repo::list(conn, &filter, after, limit)
}

/// `GET /appeals/{id}`.
pub fn get(conn: &mut DbConnection, actor: &Actor, id: &str) -> Result<AppealRow, AppError> {
    let appeal = repo::find(conn, id)?.ok_or_else(appeal_not_found)?;
    let scope = scope(conn, actor)?;
    if !sees(actor, &scope, &appeal) {
        return Err(appeal_not_found());
    }
    require_reader(actor)?;
    Ok(appeal)
}

/// `POST /appeals/{id}/approve|reject`. Approving excuses the timer (guarded on its version)
/// and records `sla_excused` on the order; the guarded update of the appeal lets only one of
/// two concurrent decisions through.
pub fn decide(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
    approve: bool,
    body: Result<Decision, AppError>,
    now: DateTime<Utc>,
) -> Result<AppealRow, AppError> {
    write_transaction(conn, |conn| {
        let appeal = repo::find(conn, id)?.ok_or_else(appeal_not_found)?;
        let scope = scope(conn, actor)?;
        if !sees(actor, &scope, &appeal) {
            return Err(appeal_not_found());
        }
        require_decider(actor)?;
        let not_pending = || {
            conflict(
                ProblemCode::NotPending,
                format!("the appeal is {}, not pending", appeal.status),
            )
        };
        if appeal.status != AppealStatus::Pending.as_str() {
            return Err(not_pending());
        }
        let timer = timers::find(conn, &appeal.timer_id)?
            .ok_or_else(|| AppError::internal("an appeal's timer is missing"))?;
        // A breach withdrawn since (a retroactive force-majeure window moved the deadline)
        // leaves nothing to excuse; one excused since is approved as it stands.
        if approve && !matches!(timer.state, TimerState::Breached | TimerState::Excused) {
            return Err(conflict(
                ProblemCode::NotBreached,
                format!(
                    "the timer is {} now, not breached: reject the appeal",
                    timer.state
                ),
            ));
        }
        let (status, note) = match body? {
            Decision::Approve { note } => (AppealStatus::Approved, note),
            Decision::Reject { reason } => (AppealStatus::Rejected, Some(reason)),
        };
        if !repo::decide(
            conn,
            &appeal.id,
            status.as_str(),
            &actor.id,
            now.naive_utc(),
            note.as_deref(),
        )? {
            return Err(not_pending());
        }
        if status == AppealStatus::Approved && timer.state == TimerState::Breached {
            let mut t = timer;
            let expected = t.version;
            t.state = TimerState::Excused;
            // An excused breach no longer escalates.
            t.next_fire_at = None;
            t.version += 1;
            if !timers::update_guarded(conn, &t, expected)? {
                return Err(conflict(
                    ProblemCode::ConcurrentUpdate,
                    "the timer was changed at the same time; try again",
                ));
            }
            events::insert(
                conn,
                &NewEvent {
                    work_order_id: appeal.work_order_id.clone(),
                    event_type: "sla_excused".into(),
                    actor_id: Some(actor.id.clone()),
                    actor_username: Some(actor.username.clone()),
                    actor_role: Some(actor.role.as_str().to_owned()),
                    from_status: None,
                    to_status: None,
                    reason: Some(appeal.reason.clone()),
                    data: json!({
                        "appeal_id": appeal.id, "timer_id": t.id, "stage": t.stage,
                        "instance": t.instance, "reason_code": appeal.reason_code,
                        "breached_at": t.breached_at.map(|b| b.and_utc()), "note": note,
                    })
                    .to_string(),
                    at: now.naive_utc(),
                },
            )?;
        }
        log::info!(
            "appeal {} {} by {}",
            appeal.id,
            status.as_str(),
            actor.username
        );
        repo::find(conn, &appeal.id)?.ok_or_else(appeal_not_found)
    })
}
