//! Force-majeure pauses (不可抗力): an area-wide SLA pause for a window. Timers of orders in
//! those areas exclude the window; a breach inside a (retroactive) window becomes excused.

use crate::db::events::{self, NewEvent};
use crate::db::timers::{self, PauseRow};
use crate::db::{areas, to_json_list, write_transaction, DbConnection};
use crate::domain::Actor;
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

/// Re-applies the pauses of these areas to their timers: open ones get new deadlines;
/// breaches that fall inside a window become excused (event `sla_excused`).
fn reapply(
    conn: &mut DbConnection,
    ctx: &SlaContext,
    area_codes: &[String],
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<usize, AppError> {
    let all = timers::pauses(conn)?;
    let mut excused = 0;
    for mut t in timers::in_areas_since(conn, area_codes, since.naive_utc())? {
        let holds = pause_holds(&all, &t.area_code);
        let expected = t.version;
        let breach_excused = t.state == "breached"
            && t.breached_at.is_some_and(|b| {
                let b = b.and_utc();
                holds
                    .iter()
                    .any(|h| h.from <= b && h.to.is_none_or(|to| b < to))
            });
        if breach_excused {
            t.state = "excused".into();
        }
        if t.ended_at.is_none() || breach_excused {
            sla::refresh(&mut t, ctx, &holds, now);
            if breach_excused {
                t.next_fire_at = None;
            }
            t.version += 1;
            if !timers::update_guarded(conn, &t, expected)? {
                return Err(AppError::Conflict {
                    code: "concurrent_update",
                    detail: "a timer in these areas changed at the same time; try again".into(),
                    allowed_actions: None,
                });
            }
        }
        if breach_excused {
            excused += 1;
            events::insert(
                conn,
                &NewEvent {
                    work_order_id: t.work_order_id.clone(),
                    event_type: "sla_excused".into(),
                    actor_id: None,
                    actor_username: None,
                    actor_role: None,
                    from_status: None,
                    to_status: None,
                    reason: None,
                    data: json!({"timer_id": t.id, "stage": t.stage, "instance": t.instance,
                                 "breached_at": t.breached_at.map(|b| b.and_utc())})
                    .to_string(),
                    at: now.naive_utc(),
                },
            )?;
        }
    }
    Ok(excused)
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
            area_codes: to_json_list(&p.area_codes),
            starts_at: p.starts_at.naive_utc(),
            ends_at: p.ends_at.map(|e| e.naive_utc()),
            reason: p.reason,
            created_by: actor.id.clone(),
            created_at: now.naive_utc(),
            ended_by: None,
        };
        timers::insert_pause(conn, &row)?;
        let excused = reapply(conn, ctx, &p.area_codes, p.starts_at, now)?;
        log::info!(
            "force-majeure pause {} for {:?} by {}: {excused} breaches excused",
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
        let codes = crate::db::from_json_list(&pause.area_codes);
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
                    code: "pause_ended",
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
