//! The SLA scanner: warnings (default at 80% of the target), breaches at the deadline,
//! further escalation levels after the policy's delays, and automatic resumes. Each fires
//! exactly once: every timer change is a guarded update in the same transaction as its event,
//! so of two scanners racing on one timer only one writes (tested with two at once).

use crate::db::events::{self, NewEvent};
use crate::db::timers::{self, TimerRow};
use crate::db::work_orders::WorkOrderRow;
use crate::db::{write_transaction, DbConnection};
use crate::domain::sla::TimerState;
use crate::errors::AppError;
use crate::notify::alerts::Notifier;
use crate::service::sla::{self, pause_holds, SlaContext, SlaRuntime};
use crate::service::work_orders::{self, Rules};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::collections::{HashMap, HashSet};

/// What one scan did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ScanReport {
    pub warnings: usize,
    pub breaches: usize,
    pub escalations: usize,
    pub resumed: usize,
}

impl ScanReport {
    pub fn is_empty(&self) -> bool {
        self == &ScanReport::default()
    }
}

/// What the scanner writes for a timer that fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Firing {
    Warning,
    Breach,
    Escalation,
}

fn system_event(t: &TimerRow, kind: &str, data: serde_json::Value, now: DateTime<Utc>) -> NewEvent {
    NewEvent {
        work_order_id: t.work_order_id.clone(),
        event_type: kind.to_owned(),
        actor_id: None,
        actor_username: None,
        actor_role: None,
        from_status: None,
        to_status: None,
        reason: None,
        data: data.to_string(),
        at: now.naive_utc(),
    }
}

/// Advances one timer as far as `now` allows; the firings it made.
fn advance(
    t: &mut TimerRow,
    ctx: &SlaContext,
    holds: &[crate::domain::timer::Hold],
    now: DateTime<Utc>,
) -> Vec<Firing> {
    let mut fired = Vec::new();
    let cal = ctx
        .calendars
        .get(&t.calendar)
        .or_else(|| ctx.calendars.get("24x7"));
    let Some(cal) = cal else { return fired };
    let n = now.naive_utc();
    for _ in 0..16 {
        match t.next_fire_at {
            Some(at) if at <= n => {}
            _ => break,
        }
        match t.state {
            TimerState::Running => match (t.due_at, t.warned_at, t.warn_at) {
                (Some(due), _, _) if due <= n => {
                    t.state = TimerState::Breached;
                    t.breached_at = Some(due);
                    if t.warned_at.is_none() {
                        t.warned_at = Some(n);
                    }
                    fired.push(Firing::Breach);
                }
                (_, None, Some(w)) if w <= n => {
                    t.warned_at = Some(n);
                    fired.push(Firing::Warning);
                }
                _ => {}
            },
            TimerState::Breached => {
                t.escalation_level += 1;
                fired.push(Firing::Escalation);
            }
            TimerState::Paused | TimerState::Met | TimerState::Stopped | TimerState::Excused => {
                t.next_fire_at = None;
                break;
            }
        }
        t.next_fire_at = sla::next_fire(t, cal, &sla::escalations_of(t), holds, now);
        if fired.is_empty() && t.next_fire_at.is_some_and(|at| at <= n) {
            break;
        }
    }
    fired
}

/// The scanner of one instance.
pub struct Scanner {
    pub batch: i64,
    pub notifier: Notifier,
}

impl Scanner {
    /// One pass: picks up a newer published policy, fires every due timer in batches (one
    /// transaction per batch), and resumes orders whose suspension ended.
    pub fn run_once(
        &self,
        conn: &mut DbConnection,
        runtime: &SlaRuntime,
        rules: &Rules,
        now: DateTime<Utc>,
    ) -> Result<ScanReport, AppError> {
        if let Some(newer) = sla::newer_policy(conn, &runtime.policy().version)? {
            log::info!("SLA policy {} is now in force", newer.version);
            runtime.replace_policy(newer);
        }
        let ctx = runtime.context();
        let mut report = ScanReport::default();
        let mut seen = HashSet::new();
        loop {
            let mut due = timers::due_to_fire(conn, now.naive_utc(), self.batch)?;
            due.retain(|t| !seen.contains(&t.id));
            if due.is_empty() {
                break;
            }
            // One lock order for every scanner, so concurrent batches cannot deadlock.
            due.sort_by(|a, b| a.id.cmp(&b.id));
            let fetched = due.len();
            seen.extend(due.iter().map(|t| t.id.clone()));
            let batch = write_transaction(conn, |conn| {
                fire_batch(conn, &ctx, &self.notifier, due, now)
            })?;
            report.warnings += batch.warnings;
            report.breaches += batch.breaches;
            report.escalations += batch.escalations;
            if (fetched as i64) < self.batch {
                break;
            }
        }
        report.resumed = work_orders::auto_resume_due(conn, now, rules, self.batch)?;
        Ok(report)
    }
}

fn fire_batch(
    conn: &mut DbConnection,
    ctx: &SlaContext,
    notifier: &Notifier,
    due: Vec<TimerRow>,
    now: DateTime<Utc>,
) -> Result<ScanReport, AppError> {
    let mut report = ScanReport::default();
    let ids: Vec<String> = due.iter().map(|t| t.work_order_id.clone()).collect();
    let orders: HashMap<String, WorkOrderRow> = crate::db::work_orders::find_many(conn, &ids)?
        .into_iter()
        .map(|o| (o.id.clone(), o))
        .collect();
    let mut recipients = crate::notify::alerts::RecipientCache::new();
    let mut new_events = Vec::new();
    let mut mails = Vec::new();
    let all_pauses = timers::pauses(conn)?;
    let tree = sla::areas_for(conn, &all_pauses)?;
    for mut t in due {
        let expected = t.version;
        // Force-majeure windows may have changed since the deadline was computed.
        let holds = pause_holds(&all_pauses, &tree, &t.area_code);
        sla::refresh(&mut t, ctx, &holds, now);
        let timer_holds = sla::all_holds(&t, &holds);
        let fired = advance(&mut t, ctx, &timer_holds, now);
        t.version += 1;
        if !timers::update_guarded(conn, &t, expected)? {
            continue; // another scanner (or an action) got there first
        }
        for f in fired {
            let data = json!({
                "timer_id": t.id, "stage": t.stage, "instance": t.instance, "target": t.target,
                "due_at": t.due_at.map(|d| d.and_utc()), "escalation_level": t.escalation_level,
            });
            let kind = match f {
                Firing::Warning => {
                    report.warnings += 1;
                    "sla_warning"
                }
                Firing::Breach => {
                    report.breaches += 1;
                    "sla_breach"
                }
                Firing::Escalation => {
                    report.escalations += 1;
                    "sla_escalation"
                }
            };
            new_events.push(system_event(&t, kind, data, now));
            if let Some(order) = orders.get(&t.work_order_id) {
                notifier.sla_alert(conn, kind, (order, &t), &mut recipients, &mut mails, now)?;
            }
        }
    }
    events::insert_many(conn, &new_events)?;
    crate::db::outbox::insert_many(conn, &mails)?;
    Ok(report)
}
