//! Supervisor reports (API.md, "Reports"): SLA compliance by a grouping, crew scores, the open
//! backlog and the breach list, each scoped to the caller's areas and their descendants.

use crate::db::credits::{self, Fact};
use crate::db::reports::{self as repo, InstanceFilter, InstanceRow};
use crate::db::{areas, crews, from_json_list, DbConnection};
use crate::domain::reports::{
    age_bucket, local_day, whole_minutes, with_descendants, SlaFigures, SlaTally, Standing,
    AGE_BUCKETS,
};
use crate::domain::scoring::{score_crews, CrewScore, CrewTally, ScoringConfig};
use crate::domain::sla::Stage;
use crate::domain::{Actor, CrewKind, Kind, Role};
use crate::errors::AppError;
use crate::notify::alerts::{kind_name, stage_name};
use crate::service::sla::SlaContext;
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};

/// Who may read reports: supervisors and admins.
pub fn require_reader(actor: &Actor) -> Result<(), AppError> {
    if actor.is(&[Role::Supervisor]) {
        Ok(())
    } else {
        Err(AppError::forbidden(format!(
            "a {} may not read reports",
            actor.role
        )))
    }
}

/// The areas a report covers: the filter's area and its descendants, inside the caller's
/// scope (and its descendants); `None` is every area.
pub fn area_set(
    conn: &mut DbConnection,
    actor: &Actor,
    area_code: Option<&str>,
) -> Result<Option<Vec<String>>, AppError> {
    let tree = areas::tree(conn)?;
    let scope = (matches!(actor.role, Role::Supervisor | Role::Dispatcher)
        && !actor.area_codes.is_empty())
    .then(|| with_descendants(&tree, &actor.area_codes));
    let Some(code) = area_code else {
        return Ok(scope.map(|s| s.into_iter().collect()));
    };
    if !tree.iter().any(|(c, _)| c == code) {
        return Err(AppError::invalid("area_code", "no such area"));
    }
    let wanted = with_descendants(&tree, &[code.to_owned()]);
    let set: HashSet<String> = match scope {
        Some(scope) => wanted.intersection(&scope).cloned().collect(),
        None => wanted,
    };
    if set.is_empty() {
        return Err(AppError::forbidden(format!(
            "area `{code}` is outside your areas"
        )));
    }
    Ok(Some(set.into_iter().collect()))
}

/// What the SLA report groups by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    Crew,
    Area,
    Kind,
    Priority,
    Stage,
    Day,
}

/// `/reports/sla` after its query was checked.
#[derive(Debug, Clone)]
pub struct SlaQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub group_by: GroupBy,
    pub kind: Option<Kind>,
    pub area_code: Option<String>,
    pub stage: Option<Stage>,
}

/// One row of `/reports/sla`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SlaRow {
    /// The crew id, area code, kind, priority, stage or local date; null: credited to no crew.
    pub key: Option<String>,
    pub label: Option<String>,
    pub total: i64,
    pub met: i64,
    pub breached: i64,
    pub stopped: i64,
    pub excused: i64,
    pub open_running: i64,
    pub open_breached: i64,
    /// met ÷ (met + breached); null when both are 0.
    pub compliance_rate: Option<f64>,
    pub p50_minutes: Option<i64>,
    pub p90_minutes: Option<i64>,
    pub p99_minutes: Option<i64>,
}

/// The SLA time of an ended instance: stored when it ended, or (rows backfilled from before
/// durations were stored) working time less held time on its calendar.
fn sla_seconds(row: &InstanceRow, ctx: &SlaContext) -> Option<i64> {
    let ended = row.ended_at?;
    row.sla_seconds.or_else(|| {
        let cal = ctx.calendars.get(&row.calendar)?;
        let working = cal
            .working_between(row.started_at.and_utc(), ended.and_utc())
            .num_seconds();
        Some((working - row.paused_seconds - row.excused_seconds).max(0))
    })
}

/// The crew a row counts under: the credited crew once it ended, the assigned crew while open.
fn crew_of(row: &InstanceRow) -> Option<&str> {
    if row.ended_at.is_some() {
        row.credited_crew_id.as_deref()
    } else {
        row.assigned_crew_id.as_deref()
    }
}

pub fn sla(
    conn: &mut DbConnection,
    actor: &Actor,
    q: &SlaQuery,
    ctx: &SlaContext,
) -> Result<Vec<SlaRow>, AppError> {
    let areas = area_set(conn, actor, q.area_code.as_deref())?;
    let filter = InstanceFilter {
        stage: q.stage.map(|s| s.as_str().to_owned()),
        kind: q.kind.map(|k| k.as_str().to_owned()),
        areas,
    };
    let rows = repo::instances(conn, q.from.naive_utc(), q.to.naive_utc(), &filter)?;
    let mut groups: BTreeMap<Option<String>, SlaTally> = BTreeMap::new();
    for row in &rows {
        let key = match q.group_by {
            GroupBy::Crew => crew_of(row).map(str::to_owned),
            GroupBy::Area => Some(row.area_code.clone()),
            GroupBy::Kind => Some(row.kind.clone()),
            GroupBy::Priority => Some(row.priority.clone()),
            GroupBy::Stage => Some(row.stage.clone()),
            GroupBy::Day => Some(local_day(row.started_at.and_utc()).to_string()),
        };
        let standing = Standing::of(&row.state, row.ended_at.is_some());
        groups
            .entry(key)
            .or_default()
            .add(standing, sla_seconds(row, ctx).map(whole_minutes));
    }
    let labels: HashMap<String, String> = match q.group_by {
        GroupBy::Crew => crews::all(conn)?
            .into_iter()
            .map(|c| (c.id, c.name))
            .collect(),
        GroupBy::Area => areas::names(conn)?,
        _ => HashMap::new(),
    };
    let mut out: Vec<SlaRow> = groups
        .into_iter()
        .map(|(key, tally)| {
            let label = key.as_deref().map(|k| match q.group_by {
                GroupBy::Crew | GroupBy::Area => labels.get(k).cloned().unwrap_or_default(),
                GroupBy::Kind => kind_name(k).to_owned(),
                GroupBy::Stage => stage_name(k).to_owned(),
                GroupBy::Priority | GroupBy::Day => k.to_owned(),
            });
            sla_row(key, label, tally.finish())
        })
        .collect();
    // keys ascending, the uncredited row (null key) last
    out.sort_by(|a, b| match (&a.key, &b.key) {
        (None, None) => std::cmp::Ordering::Equal,
        (None, _) => std::cmp::Ordering::Greater,
        (_, None) => std::cmp::Ordering::Less,
        (Some(x), Some(y)) => x.cmp(y),
    });
    Ok(out)
}

fn sla_row(key: Option<String>, label: Option<String>, f: SlaFigures) -> SlaRow {
    SlaRow {
        key,
        label,
        total: f.total,
        met: f.met,
        breached: f.breached,
        stopped: f.stopped,
        excused: f.excused,
        open_running: f.open_running,
        open_breached: f.open_breached,
        compliance_rate: f.compliance_rate,
        p50_minutes: f.p50_minutes,
        p90_minutes: f.p90_minutes,
        p99_minutes: f.p99_minutes,
    }
}

/// Crew scores for `[from, to)`, of the crews whose home area is in the report's areas.
pub fn crews(
    conn: &mut DbConnection,
    actor: &Actor,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    area_code: Option<&str>,
    cfg: &ScoringConfig,
) -> Result<Vec<CrewScore>, AppError> {
    let areas = area_set(conn, actor, area_code)?;
    let all = score_period(conn, (from.naive_utc(), to.naive_utc()), cfg)?;
    Ok(match areas {
        None => all.into_iter().map(|(_, s)| s).collect(),
        Some(set) => {
            let set: HashSet<String> = set.into_iter().collect();
            let kept: Vec<CrewScore> = all
                .into_iter()
                .filter(|(home, _)| home.as_ref().is_some_and(|h| set.contains(h)))
                .map(|(_, s)| s)
                .collect();
            rerank(kept)
        }
    })
}

/// Ranks 1..n again after a filter, keeping the order.
fn rerank(mut rows: Vec<CrewScore>) -> Vec<CrewScore> {
    for (i, r) in rows.iter_mut().enumerate() {
        r.rank = i as i64 + 1;
    }
    rows
}

/// Every crew's score for the period, with its home area, best first (scorecards freeze this).
pub fn score_period(
    conn: &mut DbConnection,
    (from, to): (NaiveDateTime, NaiveDateTime),
    cfg: &ScoringConfig,
) -> Result<Vec<(Option<String>, CrewScore)>, AppError> {
    let crews = crews::all(conn)?;
    let mut tallies: HashMap<String, CrewTally> = crews
        .iter()
        .map(|c| {
            let kind = c.kind.parse().unwrap_or(CrewKind::Field);
            let home = from_json_list(&c.area_codes).into_iter().next();
            (
                c.id.clone(),
                CrewTally {
                    crew_id: c.id.clone(),
                    code: c.code.clone(),
                    name: c.name.clone(),
                    kind,
                    home_area: home,
                    arrival_met: 0,
                    arrival_breached: 0,
                    restore_met: 0,
                    restore_breached: 0,
                    callbacks_good: 0,
                    callbacks: 0,
                    orders: 0,
                    reopened_orders: 0,
                    complaints: 0,
                    returns: 0,
                    dispatches: 0,
                    praise: 0,
                },
            )
        })
        .collect();
    let stages = [
        Stage::Arrival.as_str(),
        Stage::Restore.as_str(),
        Stage::Reply.as_str(),
    ];
    for (crew, stage, state, n) in repo::verdicts_by_crew(conn, &stages, from, to)? {
        let Some(t) = crew.and_then(|c| tallies.get_mut(&c)) else {
            continue;
        };
        let met = state == "met";
        // a unit's on-time part is its reply; a field crew's is its arrival
        let slot = match (t.kind, stage.as_str()) {
            (CrewKind::Field, "arrival") | (CrewKind::Unit, "reply") => {
                Some((&mut t.arrival_met, &mut t.arrival_breached))
            }
            (CrewKind::Field, "restore") => Some((&mut t.restore_met, &mut t.restore_breached)),
            _ => None,
        };
        if let Some((m, b)) = slot {
            if met {
                *m += n;
            } else {
                *b += n;
            }
        }
    }
    let mut resolved: HashMap<&str, HashMap<String, bool>> = HashMap::new();
    let facts = credits::between(conn, from, to)?;
    for c in &facts {
        let Some(t) = tallies.get_mut(&c.crew_id) else {
            continue;
        };
        match c.fact.as_str() {
            f if f == Fact::Dispatch.as_str() => t.dispatches += 1,
            f if f == Fact::Return.as_str() => t.returns += 1,
            f if f == Fact::Complaint.as_str() => t.complaints += 1,
            f if f == Fact::Praise.as_str() => t.praise += 1,
            f if f == Fact::Callback.as_str() => {
                t.callbacks += 1;
                if matches!(
                    c.satisfaction.as_deref(),
                    Some("very_satisfied" | "satisfied")
                ) {
                    t.callbacks_good += 1;
                }
            }
            f if f == Fact::Resolve.as_str() => {
                let reopened = resolved
                    .entry(c.crew_id.as_str())
                    .or_default()
                    .entry(c.work_order_id.clone())
                    .or_default();
                *reopened |= c.reopened_at.is_some();
            }
            _ => {}
        }
    }
    for (crew, orders) in resolved {
        if let Some(t) = tallies.get_mut(crew) {
            t.orders = orders.len() as i64;
            t.reopened_orders = orders.values().filter(|r| **r).count() as i64;
        }
    }
    let homes: HashMap<String, Option<String>> = tallies
        .values()
        .map(|t| (t.crew_id.clone(), t.home_area.clone()))
        .collect();
    let mut list: Vec<CrewTally> = tallies.into_values().collect();
    list.sort_by(|a, b| a.code.cmp(&b.code));
    Ok(score_crews(&list, cfg)
        .into_iter()
        .map(|s| (homes.get(&s.crew_id).cloned().flatten(), s))
        .collect())
}

/// One row of `/reports/backlog`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BacklogRow {
    pub status: String,
    pub age_bucket: String,
    /// The order's worst open timer: breached, warning, running; `none` without one.
    pub sla_state: String,
    pub count: i64,
}

pub fn backlog(
    conn: &mut DbConnection,
    actor: &Actor,
    area_code: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<BacklogRow>, AppError> {
    let areas = area_set(conn, actor, area_code)?;
    let orders = repo::open_orders(conn, areas.as_deref())?;
    let wanted: HashSet<&str> = orders.iter().map(|o| o.0.as_str()).collect();
    // 3 breached, 2 warning, 1 running
    let mut worst: HashMap<String, u8> = HashMap::new();
    for (order, state, warned) in repo::open_timers(conn)? {
        if !wanted.contains(order.as_str()) {
            continue;
        }
        let level = match (state.as_str(), warned) {
            ("breached", _) => 3,
            ("running", Some(_)) => 2,
            _ => 1,
        };
        let e = worst.entry(order).or_default();
        *e = (*e).max(level);
    }
    let status_rank = |s: &str| {
        repo::OPEN_STATUSES
            .iter()
            .position(|x| *x == s)
            .unwrap_or(usize::MAX)
    };
    let mut counts: BTreeMap<(usize, usize, u8, String), i64> = BTreeMap::new();
    for (id, status, _, created) in &orders {
        let bucket = age_bucket(now - created.and_utc());
        let b = AGE_BUCKETS.iter().position(|x| *x == bucket).unwrap_or(0);
        let level = worst.get(id).copied().unwrap_or(0);
        *counts
            .entry((status_rank(status), b, level, status.clone()))
            .or_default() += 1;
    }
    Ok(counts
        .into_iter()
        .map(|((_, b, level, status), count)| BacklogRow {
            status,
            age_bucket: AGE_BUCKETS[b].to_owned(),
            sla_state: match level {
                3 => "breached",
                2 => "warning",
                1 => "running",
                _ => "none",
            }
            .to_owned(),
            count,
        })
        .collect())
}

/// One item of `/reports/breaches`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BreachItem {
    pub work_order_id: String,
    pub number: Option<String>,
    pub kind: String,
    pub area_code: String,
    pub stage: String,
    pub instance: i32,
    /// The credited crew once the instance ended, the assigned crew while it is open.
    pub crew_id: Option<String>,
    pub due_at: Option<DateTime<Utc>>,
    pub breached_at: Option<DateTime<Utc>>,
    /// Whole minutes from the deadline to the stage's end (or now, while it is open).
    pub overdue_minutes: i64,
    /// The breach was excused by an approved appeal.
    pub excused: bool,
}

/// Where the next page of breaches starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BreachCursor {
    pub started_at: NaiveDateTime,
    pub id: String,
}

pub struct BreachQuery {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub stage: Option<Stage>,
    pub area_code: Option<String>,
}

pub fn breaches(
    conn: &mut DbConnection,
    actor: &Actor,
    q: &BreachQuery,
    (after, limit): (Option<BreachCursor>, i64),
    now: DateTime<Utc>,
) -> Result<(Vec<BreachItem>, Option<BreachCursor>), AppError> {
    let areas = area_set(conn, actor, q.area_code.as_deref())?;
    let filter = InstanceFilter {
        stage: q.stage.map(|s| s.as_str().to_owned()),
        kind: None,
        areas,
    };
    let rows = repo::breaches(
        conn,
        q.from.naive_utc(),
        q.to.naive_utc(),
        &filter,
        after.map(|c| (c.started_at, c.id)),
        limit + 1,
    )?;
    let more = rows.len() as i64 > limit;
    let rows: Vec<_> = rows
        .into_iter()
        .take(usize::try_from(limit).unwrap_or(0))
        .collect();
    let next = more.then(|| rows.last()).flatten().map(|r| BreachCursor {
        started_at: r.started_at,
        id: r.timer_id.clone(),
    });
    let items = rows
        .into_iter()
        .map(|r| {
            let end = r.ended_at.map(|e| e.and_utc()).unwrap_or(now);
            let overdue = r
                .due_at
                .map(|d| whole_minutes((end - d.and_utc()).num_seconds()))
                .unwrap_or(0);
            BreachItem {
                crew_id: if r.ended_at.is_some() {
                    r.credited_crew_id
                } else {
                    r.assigned_crew_id
                },
                work_order_id: r.work_order_id,
                number: r.number,
                kind: r.kind,
                area_code: r.area_code,
                stage: r.stage,
                instance: r.instance,
                due_at: r.due_at.map(|d| d.and_utc()),
                breached_at: r.breached_at.map(|d| d.and_utc()),
                overdue_minutes: overdue,
                excused: r.state == "excused",
            }
        })
        .collect();
    Ok((items, next))
}
