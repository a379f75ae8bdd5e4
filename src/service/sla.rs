//! Stage timers in the same transaction as the action that causes them: start, end (met or
//! breached), stop, pause and resume, recalculation; the policy in force, shared by every
//! instance through the database.

use crate::db::areas::AreaRow;
use crate::db::timers::{self, PauseRow, TimerRow, TimerWrites};
use crate::db::work_orders::{RuleFacts, WorkOrderRow};
use crate::db::{areas, customers, DbConnection};
use crate::domain::areas::{with_ancestors, AreaTree};
use crate::domain::calendar::{parse_duration, Calendar, Calendars};
use crate::domain::sla::TimerState;
use crate::domain::sla::{phone_tier, CalendarRef, OrderProfile, Policy, Rule, Stage, TimerPlan};
use crate::domain::state_machine::Kind;
use crate::domain::timer::{deadline, held, Hold, HoldKind};
use crate::errors::AppError;
use crate::errors::ProblemCode;
use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use serde_json::json;
use std::sync::{Arc, RwLock};

/// The calendar years that timers ran into without holiday data (their deadlines count every
/// weekday there as working): each logged once, and listed by `/readyz`.
#[derive(Debug, Default)]
pub struct HolidayDataGaps(std::sync::Mutex<std::collections::BTreeSet<(String, i32)>>);

impl HolidayDataGaps {
    pub fn note(&self, calendar: &str, years: &[i32]) {
        if years.is_empty() {
            return;
        }
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        for &year in years {
            if seen.insert((calendar.to_owned(), year)) {
                log::warn!(
                    "timers on calendar `{calendar}` run into {year}, which has no holiday data: \
                     their deadlines count every weekday there as working until \
                     config/calendars/{calendar}.toml has {year} (then `gridcall sla recalc`)"
                );
            }
        }
    }

    pub fn list(&self) -> Vec<(String, i32)> {
        let seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        seen.iter().cloned().collect()
    }
}

/// The policy in force (swappable by `gridcall sla reload`) and the calendars.
pub struct SlaRuntime {
    policy: RwLock<Arc<Policy>>,
    pub calendars: Arc<Calendars>,
    pub holiday_gaps: Arc<HolidayDataGaps>,
}

impl SlaRuntime {
    pub fn new(policy: Policy, calendars: Calendars) -> SlaRuntime {
        SlaRuntime {
            policy: RwLock::new(Arc::new(policy)),
            calendars: Arc::new(calendars),
            holiday_gaps: Arc::default(),
        }
    }

    pub fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub fn replace_policy(&self, policy: Policy) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(policy);
    }

    pub fn context(&self) -> SlaContext {
        SlaContext {
            policy: self.policy(),
            calendars: self.calendars.clone(),
            holiday_gaps: self.holiday_gaps.clone(),
        }
    }
}

/// What the timer code needs, cheap to clone into a blocking closure.
#[derive(Clone)]
pub struct SlaContext {
    pub policy: Arc<Policy>,
    pub calendars: Arc<Calendars>,
    pub holiday_gaps: Arc<HolidayDataGaps>,
}

impl SlaContext {
    fn calendar(&self, id: &str) -> &Calendar {
        self.calendars
            .get(id)
            .or_else(|| self.calendars.get("24x7"))
            .unwrap_or_else(|| panic!("the 24x7 calendar is always loaded"))
    }
}

/// Makes the file's policy the one every instance uses, unless that version is stored already.
/// A stored version with different text is refused: a changed policy needs a new version.
pub fn publish_policy(
    conn: &mut DbConnection,
    policy_text: &str,
    version: &str,
    now: DateTime<Utc>,
) -> Result<bool, AppError> {
    match timers::policy_body(conn, version)? {
        Some(body) if body == policy_text => Ok(false),
        Some(_) => Err(AppError::invalid(
            "version",
            format!("policy version `{version}` is stored with other rules; give the changed policy a new version"),
        )),
        None => {
            timers::store_policy(conn, version, policy_text, now.naive_utc())?;
            Ok(true)
        }
    }
}

/// The newest published policy if it differs from `current`.
pub fn newer_policy(conn: &mut DbConnection, current: &str) -> Result<Option<Policy>, AppError> {
    match timers::latest_policy(conn)? {
        Some((version, body)) if version != current => Policy::from_toml(&body)
            .map(Some)
            .map_err(AppError::internal),
        _ => Ok(None),
    }
}

/// What the timers of one order depend on.
pub struct OrderSla {
    pub rule: Rule,
    pub area_calendar: String,
    /// Force-majeure windows of the order's area.
    pub pauses: Vec<Hold>,
}

/// The force-majeure windows covering an area: pauses declared on it or on an area above it
/// (`tree` from `areas_for`).
pub fn pause_holds(pauses: &[PauseRow], tree: &AreaTree, area_code: &str) -> Vec<Hold> {
    if pauses.is_empty() {
        return Vec::new();
    }
    let up = with_ancestors(tree, area_code);
    pauses
        .iter()
        .filter(|p| p.area_codes.to_vec().iter().any(|a| up.contains(a)))
        .map(|p| Hold {
            kind: HoldKind::Excused,
            from: p.starts_at.and_utc(),
            to: p.ends_at.map(|t| t.and_utc()),
        })
        .collect()
}

/// The area tree that `pause_holds` needs: read only when there are pauses to match.
pub fn areas_for(
    conn: &mut DbConnection,
    pauses: &[PauseRow],
) -> Result<Vec<(String, Option<String>)>, AppError> {
    if pauses.is_empty() {
        Ok(Vec::new())
    } else {
        areas::tree(conn)
    }
}

pub fn order_sla(
    conn: &mut DbConnection,
    ctx: &SlaContext,
    order: &WorkOrderRow,
) -> Result<OrderSla, AppError> {
    let area = areas::find(conn, &order.area_code)?;
    order_sla_in(conn, ctx, order, area)
}

/// [`order_sla`] with the order's area already read.
fn order_sla_in(
    conn: &mut DbConnection,
    ctx: &SlaContext,
    order: &WorkOrderRow,
    area: Option<AreaRow>,
) -> Result<OrderSla, AppError> {
    let (rule, area_calendar) = order_rule(conn, ctx, order, area)?;
    let pauses = order_pauses(conn, &OrderTerms::from(order))?;
    Ok(OrderSla {
        rule,
        area_calendar,
        pauses,
    })
}

/// [`order_rule`] with its area and tier read in one statement (or read with the order:
/// `known`, taken when it is of the order's area).
fn order_rule_now(
    conn: &mut DbConnection,
    ctx: &SlaContext,
    order: &WorkOrderRow,
    known: Option<RuleFacts>,
) -> Result<(Rule, String), AppError> {
    let facts = match known.filter(|f| f.area.code == order.area_code) {
        Some(f) => Some(f),
        None => crate::db::work_orders::rule_facts(
            conn,
            &order.area_code,
            order.customer_id.as_deref(),
            order.caller_phone.as_deref(),
        )?,
    };
    let Some(f) = facts else {
        // no such area (any more): the defaults, as `order_rule` gives them
        return order_rule(conn, ctx, order, None);
    };
    let tier = match &order.customer_id {
        Some(_) => f.customer_tier.unwrap_or_else(|| "normal".into()),
        None => phone_tier(f.phone_tier_important, f.phone_tier_sensitive).to_owned(),
    };
    let rule = rule_for(ctx, &OrderTerms::from(order), &f.area.region_class, &tier);
    Ok((rule, f.area.calendar))
}

/// The policy rule the order's timers start under, and its area's calendar.
fn order_rule(
    conn: &mut DbConnection,
    ctx: &SlaContext,
    order: &WorkOrderRow,
    area: Option<AreaRow>,
) -> Result<(Rule, String), AppError> {
    let (region_class, area_calendar) = area
        .map(|a| (a.region_class, a.calendar))
        .unwrap_or_else(|| ("urban".into(), "cn".into()));
    let tier = match (&order.customer_id, &order.caller_phone) {
        (Some(id), _) => customers::find(conn, id)?
            .map(|c| c.tier)
            .unwrap_or_else(|| "normal".into()),
        (None, Some(phone)) => {
            let tiers = customers::tiers_by_phone(conn, phone)?;
            let has = |t: &str| tiers.iter().any(|x| x == t);
            phone_tier(has("important"), has("sensitive")).to_owned()
        }
        (None, None) => "normal".into(),
    };
    Ok((
        rule_for(ctx, &OrderTerms::from(order), &region_class, &tier),
        area_calendar,
    ))
}

/// The policy rule for the order in an area of `region_class`, for a customer of `tier`.
fn rule_for(ctx: &SlaContext, order: &OrderTerms<'_>, region_class: &str, tier: &str) -> Rule {
    let profile = OrderProfile {
        kind: order.kind,
        category: order.category,
        priority: order.priority,
        region_class,
        tier,
    };
    ctx.policy.rule_for(&profile).clone()
}

/// The force-majeure windows over the order's area (and its ancestors) since it was opened.
fn order_pauses(conn: &mut DbConnection, order: &OrderTerms<'_>) -> Result<Vec<Hold>, AppError> {
    // Every timer of the order starts at or after its creation.
    let windows = timers::pauses_since(conn, order.created_at)?;
    let tree = areas_for(conn, &windows)?;
    Ok(pause_holds(&windows, &tree, order.area_code))
}

/// The escalation delays a timer carries.
pub fn escalations_of(t: &TimerRow) -> Vec<String> {
    serde_json::from_str(&t.escalations).unwrap_or_default()
}

/// A timer's own holds (suspensions) with its area's force-majeure windows.
pub fn all_holds(t: &TimerRow, pauses: &[Hold]) -> Vec<Hold> {
    let mut holds = holds_of(t);
    holds.extend(pauses.iter().cloned());
    holds
}

fn holds_of(t: &TimerRow) -> Vec<Hold> {
    serde_json::from_str(&t.holds).unwrap_or_default()
}

fn naive(t: Option<DateTime<Utc>>) -> Option<NaiveDateTime> {
    t.map(|t| t.naive_utc())
}

fn is_open(t: &TimerRow) -> bool {
    t.ended_at.is_none()
}

/// Recomputes an open timer's deadline, warning instant, held time, state and next firing.
pub fn refresh(t: &mut TimerRow, ctx: &SlaContext, pauses: &[Hold], now: DateTime<Utc>) {
    let cal = ctx.calendar(&t.calendar);
    let mut holds = holds_of(t);
    holds.extend(pauses.iter().cloned());
    let start = t.started_at.and_utc();
    let target = TimeDelta::seconds(t.target_seconds);
    let warn_target =
        TimeDelta::seconds((t.target_seconds as f64 * t.warn_fraction).round() as i64);
    let due = deadline(cal, start, target, &holds);
    t.due_at = naive(due);
    let missing = cal.uncovered_years(start, due.unwrap_or(now).max(start));
    ctx.holiday_gaps.note(&cal.id, &missing);
    t.holiday_data_missing = (!missing.is_empty()).then(|| json!(missing).to_string());
    t.warn_at = naive(deadline(cal, start, warn_target, &holds));
    let until = t.ended_at.map(|e| e.and_utc()).unwrap_or(now).max(start);
    t.paused_seconds = held(cal, start, until, &holds, HoldKind::Paused).num_seconds();
    t.excused_seconds = held(cal, start, until, &holds, HoldKind::Excused).num_seconds();
    if matches!(t.state, TimerState::Running | TimerState::Paused) && is_open(t) {
        // Only an open-ended hold that has begun stops the clock now; one that begins
        // later lets it run until then.
        t.state = if due.is_none() && held_open_now(&holds, now) {
            TimerState::Paused
        } else {
            TimerState::Running
        };
    }
    t.next_fire_at = next_fire(t, cal, &escalations_of(t), &holds, now);
    measure(t, cal);
}

/// An ended instance's durations: wall time, and SLA time (working time less held time).
fn measure(t: &mut TimerRow, cal: &Calendar) {
    let Some(end) = t.ended_at else {
        return;
    };
    let (start, end) = (
        t.started_at.and_utc(),
        end.and_utc().max(t.started_at.and_utc()),
    );
    t.wall_seconds = Some((end - start).num_seconds());
    let working = cal.working_between(start, end).num_seconds();
    t.sla_seconds = Some((working - t.paused_seconds - t.excused_seconds).max(0));
}

/// The crew an ending instance is credited to: the crew that held the order when the stage
/// ended (it accepted, arrived, resolved, contacted, replied; for the callback, the crew whose
/// resolve it follows, which still holds the resolved order). Dispatch is the dispatchers'.
fn credit_for(t: &TimerRow, crew: Option<&str>) -> Option<String> {
    (t.stage != Stage::Dispatch.as_str())
        .then(|| crew.map(str::to_owned))
        .flatten()
}

fn held_open_now(holds: &[Hold], now: DateTime<Utc>) -> bool {
    holds.iter().any(|h| h.to.is_none() && h.from <= now)
}

/// When the scanner should next look at a timer.
pub fn next_fire(
    t: &TimerRow,
    cal: &Calendar,
    escalations: &[String],
    holds: &[Hold],
    now: DateTime<Utc>,
) -> Option<NaiveDateTime> {
    if !is_open(t) {
        return None;
    }
    match t.state {
        TimerState::Running => match (t.warned_at, t.warn_at, t.due_at) {
            (None, Some(w), _) => Some(w),
            (_, _, Some(d)) => Some(d),
            // An open-ended hold begins before the deadline: look again when it begins.
            _ => holds
                .iter()
                .filter(|h| h.to.is_none() && h.from > now)
                .map(|h| h.from.naive_utc())
                .min(),
        },
        TimerState::Breached => {
            let level = usize::try_from(t.escalation_level).unwrap_or(0);
            if level >= escalations.len() {
                return None;
            }
            let delay: TimeDelta = escalations[..=level]
                .iter()
                .filter_map(|d| parse_duration(d, cal.seconds_per_day()).ok())
                .sum();
            let base = t.breached_at.or(t.due_at)?.and_utc();
            // Escalation delays are counted on the calendar and skip held time too.
            deadline(cal, base, delay, holds).map(|x| x.naive_utc())
        }
        TimerState::Paused | TimerState::Met | TimerState::Stopped | TimerState::Excused => None,
    }
}

fn save(conn: &mut DbConnection, t: &mut TimerRow) -> Result<(), AppError> {
    let expected = t.version;
    t.version += 1;
    if !timers::update_guarded(conn, t, expected)? {
        return Err(AppError::Conflict {
            code: ProblemCode::ConcurrentUpdate,
            detail: "a timer of this order was changed at the same time".into(),
            allowed_actions: None,
        });
    }
    Ok(())
}

/// What a create has read already for its opening timers (`work_orders::opening_facts`).
#[derive(Debug, Clone)]
pub struct Opening {
    /// The customer's tier, or the caller's phone's (`domain::sla::phone_tier`).
    pub tier: String,
    /// Whether a force-majeure window anywhere is open or to come: only then are the windows
    /// over the order's area read.
    pub force_majeure_ahead: bool,
}

/// What an order's SLA rule and its new timers depend on: a stored order, or one about to be
/// written (a create computes its opening timers before the statement that writes them all).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OrderTerms<'a> {
    pub id: &'a str,
    pub kind: Kind,
    pub category: &'a str,
    pub priority: &'a str,
    pub area_code: &'a str,
    pub created_at: NaiveDateTime,
    pub reopen_count: i32,
}

impl<'a> From<&'a WorkOrderRow> for OrderTerms<'a> {
    fn from(order: &'a WorkOrderRow) -> OrderTerms<'a> {
        OrderTerms {
            id: &order.id,
            kind: order.kind,
            category: &order.category,
            priority: order.priority.as_str(),
            area_code: &order.area_code,
            created_at: order.created_at,
            reopen_count: order.reopen_count,
        }
    }
}

/// The opening timers of a new order: instance 1 of each stage (it has no timers yet), in
/// the order `timers::for_orders` reads them. The caller writes them with the order.
pub fn plan_new_order(
    conn: &mut DbConnection,
    ctx: &SlaContext,
    order: &OrderTerms<'_>,
    area: &AreaRow,
    known: Opening,
    stages: &[Stage],
    now: DateTime<Utc>,
) -> Result<Vec<TimerRow>, AppError> {
    if stages.is_empty() {
        return Ok(Vec::new());
    }
    let osla = OrderSla {
        rule: rule_for(ctx, order, &area.region_class, &known.tier),
        area_calendar: area.calendar.clone(),
        pauses: if known.force_majeure_ahead {
            order_pauses(conn, order)?
        } else {
            Vec::new()
        },
    };
    let mut opened = Vec::new();
    for &stage in stages {
        let started_at = stage_start(order, stage, true, now);
        if let Some(t) = new_timer(ctx, order, &osla, (stage, 1), (started_at, now))? {
            opened.push(t);
        }
    }
    in_read_order(&mut opened);
    Ok(opened)
}

/// When a stage instance started now begins: arrival is counted from the customer's call
/// (PRODUCT.md) when the plan says so, unless a reopen began a new flow since; the others
/// from now.
fn stage_start(
    order: &OrderTerms<'_>,
    stage: Stage,
    arrival_from_call: bool,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    if arrival_from_call && stage == Stage::Arrival && order.reopen_count == 0 {
        order.created_at.and_utc().min(now)
    } else {
        now
    }
}

/// Sorts one order's timers as `timers::for_orders` reads them.
fn in_read_order(timers: &mut [TimerRow]) {
    timers.sort_by(|a, b| {
        (a.started_at, &a.stage, a.instance).cmp(&(b.started_at, &b.stage, b.instance))
    });
}

/// A new running timer for `stage`, or none when the order's rule has no target for it.
fn new_timer(
    ctx: &SlaContext,
    order: &OrderTerms<'_>,
    osla: &OrderSla,
    (stage, instance): (Stage, i32),
    (started_at, now): (DateTime<Utc>, DateTime<Utc>),
) -> Result<Option<TimerRow>, AppError> {
    let Some(target) = osla.rule.target(stage) else {
        return Ok(None);
    };
    let calendar_id = match &target.calendar {
        CalendarRef::Area => osla.area_calendar.clone(),
        CalendarRef::Named(id) => id.clone(),
    };
    let cal = ctx.calendar(&calendar_id);
    let seconds =
        parse_duration(&target.target, cal.seconds_per_day()).map_err(AppError::internal)?;
    let mut t = TimerRow {
        id: crate::db::new_row_key(),
        work_order_id: order.id.to_owned(),
        stage: stage.as_str().to_owned(),
        instance,
        policy_version: ctx.policy.version.clone(),
        rule_name: osla.rule.name.clone(),
        target: target.target.clone(),
        target_seconds: seconds.num_seconds(),
        calendar: cal.id.clone(),
        started_at: started_at.naive_utc(),
        due_at: None,
        warn_at: None,
        warned_at: None,
        paused_seconds: 0,
        excused_seconds: 0,
        state: TimerState::Running,
        ended_at: None,
        breached_at: None,
        escalation_level: 0,
        next_fire_at: None,
        holds: "[]".into(),
        area_code: order.area_code.to_owned(),
        version: 1,
        warn_fraction: ctx.policy.warn_at,
        escalations: serde_json::to_string(&ctx.policy.escalations).unwrap_or_else(|_| "[]".into()),
        credited_crew_id: None,
        wall_seconds: None,
        sla_seconds: None,
        kind: order.kind.as_str().to_owned(),
        priority: order.priority.to_owned(),
        rollup_dirty: false,
        holiday_data_missing: None,
    };
    refresh(&mut t, ctx, &osla.pauses, now);
    Ok(Some(t))
}

/// Ends an open timer at its ending action: met if the target was not used up by now
/// (held time excluded), else breached at the instant it was.
fn ended(
    ctx: &SlaContext,
    t: &mut TimerRow,
    (pauses, crew): (&[Hold], Option<&str>),
    now: DateTime<Utc>,
) {
    refresh(t, ctx, pauses, now);
    if matches!(t.state, TimerState::Running | TimerState::Paused) {
        let cal = ctx.calendar(&t.calendar);
        let mut holds = holds_of(t);
        holds.extend(pauses.iter().cloned());
        for h in holds.iter_mut().filter(|h| h.to.is_none()) {
            h.to = Some(now.max(h.from));
        }
        let reached = deadline(
            cal,
            t.started_at.and_utc(),
            TimeDelta::seconds(t.target_seconds),
            &holds,
        );
        match reached {
            Some(r) if r < now => {
                t.state = TimerState::Breached;
                t.breached_at = Some(r.naive_utc());
            }
            _ => t.state = TimerState::Met,
        }
    }
    t.ended_at = Some(now.naive_utc());
    t.next_fire_at = None;
    t.credited_crew_id = credit_for(t, crew);
    measure(t, ctx.calendar(&t.calendar));
}

/// Ends an open timer without a verdict (cancel, merge, reject, reassign, waived callback).
fn stop(
    conn: &mut DbConnection,
    ctx: &SlaContext,
    t: &mut TimerRow,
    (pauses, crew): (&[Hold], Option<&str>),
    now: DateTime<Utc>,
) -> Result<(), AppError> {
    stopped(ctx, t, (pauses, crew), now);
    save(conn, t)
}

/// [`stop`] on the row alone (the caller saves it).
fn stopped(
    ctx: &SlaContext,
    t: &mut TimerRow,
    (pauses, crew): (&[Hold], Option<&str>),
    now: DateTime<Utc>,
) {
    if matches!(t.state, TimerState::Running | TimerState::Paused) {
        t.state = TimerState::Stopped;
    }
    t.ended_at = Some(now.naive_utc());
    t.credited_crew_id = credit_for(t, crew);
    refresh(t, ctx, pauses, now);
    t.next_fire_at = None;
}

/// Applies an action's timer plan to the order (already in its new state). `crew` is the crew
/// that held the order when the action was taken: instances the plan ends or stops are
/// credited to it. Returns every timer of the order as it now stands (for the answer), or
/// none when the plan touches no timer (and nothing was read).
pub fn apply(
    conn: &mut DbConnection,
    ctx: &SlaContext,
    order: &WorkOrderRow,
    plan: &TimerPlan,
    crew: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<Vec<TimerRow>>, AppError> {
    if plan == &TimerPlan::default() {
        return Ok(None);
    }
    // All of the order's timers in one read: the open ones to change, the instance numbers
    // of the stages to start, and the answer's list.
    let (all, any_window) = timers::of_order_noting_pauses(conn, &order.id, order.created_at)?;
    let read = OrderTimers {
        all,
        any_window: any_window.unwrap_or(true),
        rule: None,
        pauses: None,
    };
    apply_to_read(conn, ctx, order, plan, crew, now, read, None).map(Some)
}

/// [`apply`] to many orders at once, each with its own plan and no crew (an outage's linked
/// orders resolving or going back to `new` together): their timers, the force-majeure windows
/// and what picks their rules read in a few statements for all of them, the changes written
/// together in a few more (a timer it changes is written at once, as [`apply`] writes it).
/// False when a timer moved on meanwhile (the caller's transaction must not commit).
pub fn apply_to_many(
    conn: &mut DbConnection,
    ctx: &SlaContext,
    orders: &[(WorkOrderRow, TimerPlan)],
    now: DateTime<Utc>,
) -> Result<bool, AppError> {
    let orders: Vec<_> = orders
        .iter()
        .filter(|(_, plan)| plan != &TimerPlan::default())
        .collect();
    let Some(since) = orders.iter().map(|(o, _)| o.created_at).min() else {
        return Ok(true);
    };
    let ids: Vec<String> = orders.iter().map(|(o, _)| o.id.clone()).collect();
    let mut timers_of: std::collections::HashMap<String, Vec<TimerRow>> = Default::default();
    for t in timers::for_orders(conn, &ids)? {
        timers_of
            .entry(t.work_order_id.clone())
            .or_default()
            .push(t);
    }
    // Every window that can overlap a timer of any of them; each order takes those that
    // can overlap its own (as `order_pauses` reads them for one).
    let windows = timers::pauses_since(conn, since)?;
    let tree = areas_for(conn, &windows)?;
    let facts = if orders.iter().any(|(_, plan)| !plan.start.is_empty()) {
        let keys: Vec<_> = orders
            .iter()
            .map(|(o, _)| {
                (
                    o.area_code.as_str(),
                    o.customer_id.as_deref(),
                    o.caller_phone.as_deref(),
                )
            })
            .collect();
        crate::db::work_orders::rule_facts_many(conn, &keys)?
    } else {
        vec![None; orders.len()]
    };
    let mut writes = TimerWrites::default();
    for ((order, plan), rule) in orders.into_iter().zip(facts) {
        let own: Vec<PauseRow> = windows
            .iter()
            .filter(|w| w.ends_at.is_none_or(|end| end > order.created_at))
            .cloned()
            .collect();
        let read = OrderTimers {
            all: timers_of.remove(&order.id).unwrap_or_default(),
            any_window: true,
            rule,
            pauses: Some(pause_holds(&own, &tree, &order.area_code)),
        };
        // An open timer the plan changes is written at once, as `apply` does (taking the
        // fresh row if the scanner fired it since the read); new timers go together.
        let touched = plan.touches_open() && read.all.iter().any(|t| t.ended_at.is_none());
        let defer = (!touched).then_some(&mut writes);
        apply_to_read(conn, ctx, order, plan, None, now, read, defer)?;
    }
    writes.write_each(conn)
}

/// Every timer of an order as read (with the order, before its action's update), whether
/// a force-majeure window may bear on them (when not, the windows are not read), and what
/// picks the rule of timers it starts when that was read with them.
#[derive(Debug, Clone)]
pub struct OrderTimers {
    pub all: Vec<TimerRow>,
    pub any_window: bool,
    pub rule: Option<RuleFacts>,
    /// The order's force-majeure windows when read already (for many orders at once);
    /// otherwise they are read here if `any_window`.
    pub pauses: Option<Vec<Hold>>,
}

/// [`apply`] on timers read already; returns them as they now stand, changed or not. With
/// `defer`, nothing is written: the changes are added to it, for the caller to write with
/// the order's update (and to start over if a timer moved on meanwhile). Without, each is
/// written at once, and a timer the scanner fired since the read is taken fresh and changed.
#[allow(clippy::too_many_arguments)]
pub fn apply_to_read(
    conn: &mut DbConnection,
    ctx: &SlaContext,
    order: &WorkOrderRow,
    plan: &TimerPlan,
    crew: Option<&str>,
    now: DateTime<Utc>,
    read: OrderTimers,
    mut defer: Option<&mut TimerWrites>,
) -> Result<Vec<TimerRow>, AppError> {
    let OrderTimers {
        mut all,
        any_window,
        rule: rule_facts,
        pauses,
    } = read;
    if plan == &TimerPlan::default() {
        in_read_order(&mut all);
        return Ok(all);
    }
    let pauses = match pauses {
        Some(known) => known,
        None if any_window => order_pauses(conn, &OrderTerms::from(order))?,
        None => Vec::new(),
    };
    if plan.touches_open() {
        for slot in all.iter_mut().filter(|t| t.ended_at.is_none()) {
            let stage: Stage = slot.stage.parse().map_err(|_| {
                AppError::internal(format!(
                    "a timer of order {} has stage `{}`, which this version does not know",
                    order.id, slot.stage
                ))
            })?;
            let mut t = slot.clone();
            if !change(ctx, &mut t, (plan, stage), (&pauses, crew), now) {
                continue;
            }
            match defer.as_deref_mut() {
                Some(writes) => {
                    let expected = t.version;
                    t.version += 1;
                    writes.updates.push((t.clone(), expected));
                }
                None => {
                    // The scanner may have just fired this timer (a warning): take the fresh
                    // row and apply the action's change to it, rather than failing the action.
                    for attempt in 0.. {
                        match save(conn, &mut t) {
                            Err(AppError::Conflict {
                                code: ProblemCode::ConcurrentUpdate,
                                ..
                            }) if attempt < 3 => match timers::find(conn, &t.id)? {
                                Some(fresh) if fresh.ended_at.is_none() => {
                                    t = fresh;
                                    change(ctx, &mut t, (plan, stage), (&pauses, crew), now);
                                }
                                Some(fresh) => {
                                    t = fresh;
                                    break;
                                }
                                None => break,
                            },
                            other => {
                                other?;
                                break;
                            }
                        }
                    }
                }
            }
            *slot = t;
        }
    }
    if !plan.start.is_empty() {
        let (rule, area_calendar) = order_rule_now(conn, ctx, order, rule_facts)?;
        let osla = OrderSla {
            rule,
            area_calendar,
            pauses,
        };
        for &stage in &plan.start {
            if osla.rule.target(stage).is_none() {
                continue;
            }
            let terms = OrderTerms::from(order);
            let started_at = stage_start(&terms, stage, plan.arrival_from_call, now);
            let instance = all
                .iter()
                .filter(|t| t.stage == stage.as_str())
                .map(|t| t.instance)
                .max()
                .unwrap_or(0)
                + 1;
            if let Some(t) = new_timer(ctx, &terms, &osla, (stage, instance), (started_at, now))? {
                match defer.as_deref_mut() {
                    Some(writes) => writes.inserts.push(t.clone()),
                    None => timers::insert(conn, &t)?,
                }
                all.push(t);
            }
        }
    }
    in_read_order(&mut all);
    Ok(all)
}

/// What an action's plan does to one open timer of `stage`, on the row alone: ends it,
/// stops it, or pauses or resumes its clock. False when the plan leaves it as it is.
fn change(
    ctx: &SlaContext,
    t: &mut TimerRow,
    (plan, stage): (&TimerPlan, Stage),
    (pauses, crew): (&[Hold], Option<&str>),
    now: DateTime<Utc>,
) -> bool {
    let in_list = |list: &[Stage]| list.contains(&stage);
    if in_list(&plan.end) {
        ended(ctx, t, (pauses, crew), now);
    } else if plan.stop_all || plan.stop_rest || in_list(&plan.stop) {
        stopped(ctx, t, (pauses, crew), now);
    } else if plan.pause_all || plan.resume_all {
        let mut holds = holds_of(t);
        if plan.pause_all {
            holds.push(Hold {
                kind: HoldKind::Paused,
                from: now,
                to: None,
            });
        } else {
            for h in holds
                .iter_mut()
                .filter(|h| h.kind == HoldKind::Paused && h.to.is_none())
            {
                h.to = Some(now);
            }
        }
        t.holds = serde_json::to_string(&holds).unwrap_or_else(|_| "[]".into());
        refresh(t, ctx, pauses, now);
    } else {
        return false;
    }
    true
}

/// Re-targets an order's open timers under the current policy (its priority, category or
/// area changed, or `gridcall sla recalc`). Returns what changed, for the audit event.
pub fn recalculate(
    conn: &mut DbConnection,
    ctx: &SlaContext,
    order: &WorkOrderRow,
    now: DateTime<Utc>,
) -> Result<Vec<serde_json::Value>, AppError> {
    let osla = order_sla(conn, ctx, order)?;
    let mut changes = Vec::new();
    for mut t in timers::open_for_order(conn, &order.id)? {
        let Some(stage) = t.stage.parse::<Stage>().ok() else {
            continue;
        };
        let before = (
            t.target.clone(),
            t.calendar.clone(),
            t.due_at,
            t.policy_version.clone(),
        );
        match osla.rule.target(stage) {
            None => {
                stop(
                    conn,
                    ctx,
                    &mut t,
                    (&osla.pauses, order.assigned_crew_id.as_deref()),
                    now,
                )?;
                changes.push(json!({"stage": stage, "instance": t.instance, "old_target": before.0, "new_target": null, "state": t.state}));
            }
            Some(target) => {
                let calendar_id = match &target.calendar {
                    CalendarRef::Area => osla.area_calendar.clone(),
                    CalendarRef::Named(id) => id.clone(),
                };
                let cal = ctx.calendar(&calendar_id);
                let seconds = parse_duration(&target.target, cal.seconds_per_day())
                    .map_err(AppError::internal)?;
                t.target = target.target.clone();
                t.target_seconds = seconds.num_seconds();
                t.calendar = cal.id.clone();
                t.rule_name = osla.rule.name.clone();
                t.policy_version = ctx.policy.version.clone();
                t.warn_fraction = ctx.policy.warn_at;
                t.escalations =
                    serde_json::to_string(&ctx.policy.escalations).unwrap_or_else(|_| "[]".into());
                // what the reports group an open instance by follows the order
                let regrouped =
                    t.area_code != order.area_code || t.priority != order.priority.as_str();
                t.area_code = order.area_code.clone();
                t.priority = order.priority.as_str().to_owned();
                refresh(&mut t, ctx, &osla.pauses, now);
                if (
                    t.target.clone(),
                    t.calendar.clone(),
                    t.due_at,
                    t.policy_version.clone(),
                ) != before
                {
                    changes.push(json!({
                        "stage": stage, "instance": t.instance,
                        "old_target": before.0, "new_target": t.target,
                        "old_calendar": before.1, "new_calendar": t.calendar,
                        "old_due_at": before.2.map(|d| d.and_utc()), "new_due_at": t.due_at.map(|d| d.and_utc()),
                        "old_policy_version": before.3, "new_policy_version": t.policy_version,
                    }));
                    save(conn, &mut t)?;
                } else if regrouped {
                    save(conn, &mut t)?;
                }
            }
        }
    }
    Ok(changes)
}

/// `gridcall sla recalc`: re-targets the open timers of every matching order under the
/// policy in force, one transaction and one audited `sla_recalculated` event per order.
pub fn recalculate_all(
    conn: &mut DbConnection,
    ctx: &SlaContext,
    area_code: Option<&str>,
    since: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(usize, usize), AppError> {
    let ids = timers::orders_with_open_timers(conn, area_code, since.map(|s| s.naive_utc()))?;
    let mut changed = 0;
    for id in &ids {
        let done = crate::db::write_transaction(conn, |conn| -> Result<bool, AppError> {
            let Some(order) = crate::db::work_orders::find(conn, id)? else {
                return Ok(false);
            };
            let changes = recalculate(conn, ctx, &order, now)?;
            if changes.is_empty() {
                return Ok(false);
            }
            crate::db::events::insert(
                conn,
                &crate::db::events::NewEvent {
                    work_order_id: order.id.clone(),
                    event_type: "sla_recalculated".into(),
                    actor_id: None,
                    actor_username: None,
                    actor_role: None,
                    from_status: None,
                    to_status: None,
                    reason: Some("gridcall sla recalc".into()),
                    data:
                        json!({"policy_version": ctx.policy.version, "sla_recalculated": changes})
                            .to_string(),
                    at: now.naive_utc(),
                },
            )?;
            Ok(true)
        })?;
        if done {
            changed += 1;
        }
    }
    Ok((ids.len(), changed))
}
