//! Force-majeure pauses (不可抗力): an area-wide SLA pause for a window. Timers of orders in
//! those areas (and their sub-areas) exclude the window: their deadlines move out by it, and
//! a breach recorded before a retroactive window is withdrawn when the moved deadline allows.

use crate::db::events::{self, NewEvent};
use crate::db::timers::{self, PauseRow, TimerRow};
use crate::db::StoredList;
use crate::db::{areas, write_transaction, DbConnection};
use crate::domain::areas::with_descendants;
use crate::domain::sla::TimerState;
use crate::domain::timer::Hold;
use crate::domain::Actor;
use crate::errors::ProblemCode;
use crate::errors::{AppError, Problems};
use crate::service::sla::{self, pause_holds, SlaContext};
use chrono::{DateTime, Utc};
use serde_json::json;

pub struct NewPause {
    pub area_codes: Vec<String>,
    pub starts_at: DateTime<Utc>,
    pub ends_at: Option<DateTime<Utc>>,
    pub reason: String,
}

/// What a force-majeure window does to one timer (PRODUCT.md, "SLA"): the deadline moves out
/// by the window. A breach recorded before a retroactive window was declared is withdrawn
/// when the moved deadline is still ahead (an open timer runs again and breaches again if the
/// work is still not done when it passes; an ended one was met after all), and stands when
/// it is not.
fn reconsider(t: &mut TimerRow, ctx: &SlaContext, holds: &[Hold], now: DateTime<Utc>) -> bool {
    let was_breached = t.state == TimerState::Breached;
    sla::refresh(t, ctx, holds, now);
    if !was_breached {
        return false;
    }
    let Some(due) = t.due_at.map(|d| d.and_utc()) else {
        // an open-ended window holds the clock: the deadline is not known yet
        if t.ended_at.is_none() {
            withdraw(t, TimerState::Paused, ctx, holds, now);
            return true;
        }
        return false;
    };
    match t.ended_at.map(|e| e.and_utc()) {
        None if due > now => {
            withdraw(t, TimerState::Running, ctx, holds, now);
            true
        }
        Some(ended) if ended <= due => {
            withdraw(t, TimerState::Met, ctx, holds, now);
            true
        }
        _ => false,
    }
}

fn withdraw(
    t: &mut TimerRow,
    state: TimerState,
    ctx: &SlaContext,
    holds: &[Hold],
    now: DateTime<Utc>,
) {
    t.state = state;
    t.breached_at = None;
    t.escalation_level = 0;
    sla::refresh(t, ctx, holds, now);
}

/// Re-applies the pauses of these areas (and their sub-areas) to their timers: open ones get
/// new deadlines, and breaches are withdrawn where the moved deadline allows; each withdrawal
/// is an `sla_recalculated` event on the order. Returns how many breaches were withdrawn.
fn reapply(
    conn: &mut DbConnection,
    ctx: &SlaContext,
    area_codes: &[String],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<usize, AppError> {
    let tree = areas::tree(conn)?;
    let covered: Vec<String> = with_descendants(&tree, area_codes).into_iter().collect();
    let all = timers::pauses(conn)?;
    let mut withdrawn = 0;
    for mut t in timers::in_areas_since(conn, &covered, since.naive_utc())? {
        if t.state == TimerState::Excused
            || t.state == TimerState::Stopped
            || (t.ended_at.is_some() && t.state == TimerState::Met)
        {
            continue;
        }
        let holds = pause_holds(&all, &tree, &t.area_code);
        let expected = t.version;
        let old_due = t.due_at;
        let breached_at = t.breached_at;
        let withdrew = reconsider(&mut t, ctx, &holds, now);
        t.version += 1;
        if !timers::update_guarded(conn, &t, expected)? {
            return Err(AppError::Conflict {
                code: ProblemCode::ConcurrentUpdate,
                detail: "a timer in these areas changed at the same time; try again".into(),
                allowed_actions: None,
            });
        }
        if withdrew {
            withdrawn += 1;
            events::insert(
                conn,
                &NewEvent {
                    work_order_id: t.work_order_id.clone(),
                    event_type: "sla_recalculated".into(),
                    actor_id: None,
                    actor_username: None,
                    actor_role: None,
                    from_status: None,
                    to_status: None,
                    reason: Some("force-majeure window".into()),
                    data: json!({
                        "breach_withdrawn": [format!("{}#{}", t.stage, t.instance)],
                        "timer_id": t.id,
                        "stage": t.stage,
                        "instance": t.instance,
                        "state": t.state,
                        "breached_at": breached_at.map(|b| b.and_utc()),
                        "due_at": {"old": old_due.map(|d| d.and_utc()), "new": t.due_at.map(|d| d.and_utc())},
                        "excused_seconds": t.excused_seconds,
                    })
                    .to_string(),
                    at: now.naive_utc(),
                },
            )?;
        }
    }
    Ok(withdrawn)
}

pub fn create(
    conn: &mut DbConnection,
    actor: &Actor,
    p: NewPause,
    ctx: &SlaContext,
    now: DateTime<Utc>,
) -> Result<PauseRow, AppError> {
    write_transaction(conn, |conn| {
        let mut problems = Problems::default();
        let missing = areas::missing(conn, &p.area_codes)?;
        if !missing.is_empty() {
            problems.add(
                "area_codes",
                format!("no such areas: {}", missing.join(", ")),
            );
        }
        problems.finish()?;
        let row = PauseRow {
            id: uuid::Uuid::new_v4().to_string(),
            area_codes: StoredList(p.area_codes.clone()),
            starts_at: p.starts_at.naive_utc(),
            ends_at: p.ends_at.map(|e| e.naive_utc()),
            reason: p.reason,
            created_by: actor.id.clone(),
            created_at: now.naive_utc(),
            ended_by: None,
        };
        timers::insert_pause(conn, &row)?;
        let withdrawn = reapply(conn, ctx, &p.area_codes, p.starts_at, now)?;
        log::info!(
            "force-majeure pause {} for {:?} by {}: {withdrawn} breaches withdrawn",
            row.id,
            p.area_codes,
            actor.username
        );
        Ok(row)
    })
}

pub fn end(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
    ctx: &SlaContext,
    now: DateTime<Utc>,
) -> Result<PauseRow, AppError> {
    write_transaction(conn, |conn| {
        let pause = timers::find_pause(conn, id)?.ok_or(AppError::NotFound { what: "pause" })?;
        let codes = pause.area_codes.to_vec();
        if !actor.area_codes.is_empty() && !codes.iter().all(|c| actor.sees_area(c)) {
            return Err(AppError::NotFound { what: "pause" });
        }
        if !actor.is(&[crate::domain::Role::Supervisor]) {
            return Err(AppError::forbidden(format!(
                "a {} may not end force-majeure pauses",
                actor.role
            )));
        }
        let ends_at = match pause.ends_at {
            Some(e) if e.and_utc() <= now => {
                return Err(AppError::Conflict {
                    code: ProblemCode::PauseEnded,
                    detail: "the pause has ended already".into(),
                    allowed_actions: None,
                })
            }
            _ => now.max(pause.starts_at.and_utc()),
        };
        timers::end_pause(conn, id, ends_at.naive_utc(), &actor.id)?;
        reapply(conn, ctx, &codes, pause.starts_at.and_utc(), now)?;
        timers::find_pause(conn, id)?.ok_or(AppError::NotFound { what: "pause" })
    })
}
