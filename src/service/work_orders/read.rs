//! Reads that need the work-order rules: the timers' clock segments, the dispatch candidates.

use super::*;

/// A timer with its rule and its clock segments: the "why breached" view.
#[derive(Debug)]
pub struct TimerDetail {
    pub timer: crate::db::timers::TimerRow,
    pub segments: Vec<crate::domain::timer::Segment>,
}

/// Every timer of an order the actor may see, with its clock segments up to `now` (or the
/// timer's end), force-majeure windows of the order's area included.
pub fn timer_details(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
    ctx: &SlaContext,
    now: DateTime<Utc>,
) -> Result<Vec<TimerDetail>, AppError> {
    let order = load_visible(conn, actor, id)?;
    let windows = crate::db::timers::pauses(conn)?;
    let tree = sla::areas_for(conn, &windows)?;
    let pauses = sla::pause_holds(&windows, &tree, &order.area_code);
    let timers = crate::db::timers::for_orders(conn, std::slice::from_ref(&order.id))?;
    timers
        .into_iter()
        .map(|t| {
            let cal = ctx
                .calendars
                .get(&t.calendar)
                .or_else(|| ctx.calendars.get("24x7"));
            let mut holds: Vec<crate::domain::timer::Hold> = serde_json::from_str(&t.holds)
                .map_err(|e| {
                    AppError::internal(format!("timer {} has unreadable holds: {e}", t.id))
                })?;
            holds.extend(pauses.iter().cloned());
            let end = t.ended_at.map(|e| e.and_utc()).unwrap_or(now);
            let segments = cal
                .map(|c| crate::domain::timer::segments(c, t.started_at.and_utc(), end, &holds))
                .unwrap_or_default();
            Ok(TimerDetail { timer: t, segments })
        })
        .collect()
}

/// The crews a dispatcher could send to an order, ranked as automatic dispatch would.
pub fn dispatch_candidates(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
    rules: &Rules,
    now: DateTime<Utc>,
) -> Result<Vec<crate::service::routing::Candidate>, AppError> {
    let order = load_visible(conn, actor, id)?;
    if !actor.is(&[crate::domain::Role::Dispatcher]) {
        return Err(AppError::forbidden(
            "only dispatchers see dispatch candidates",
        ));
    }
    crate::service::routing::named_candidates(
        conn,
        &order,
        None,
        &rules.categories,
        &rules.routing,
        now,
    )
}
