//! Supervisor reports (API.md, "Reports"): SLA compliance by a grouping, crew scores, the open
//! backlog and the breach list, each scoped to the caller's areas and their descendants.

use crate::db::credits::{self, Fact};
use crate::db::reports::{self as repo, InstanceFilter, InstanceRow};
use crate::db::rollups::{self, CellFilter};
use crate::db::{areas, crews, read_snapshot, DbConnection};
use crate::domain::reports::{
    age_bucket, local_day, whole_minutes, with_descendants, Minutes, Month, SlaFigures, SlaTally,
    Standing, AGE_BUCKETS,
};
use crate::domain::rollup::{
    in_rolled, split, SlaContribution, Span, Verdict, BRIEF_DAY, DAY, MONTH,
};
use crate::domain::scoring::{score_crews, CrewScore, CrewTally, ScoringConfig};
use crate::domain::sla::Stage;
use crate::domain::sla::TimerState;
use crate::domain::{Actor, CrewKind, Kind, Role};
use crate::errors::AppError;
use crate::notify::alerts::{kind_name, stage_name};
use crate::service::rollups::{
    applied_contribution, applied_credit_contribution, credit_contribution, credit_slots,
    sla_contribution, sla_seconds, InstanceFacts,
};
use crate::service::sla::SlaContext;
use chrono::Datelike;
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

fn facts(row: &InstanceRow) -> InstanceFacts<'_> {
    InstanceFacts {
        state: row.state,
        calendar: &row.calendar,
        started_at: row.started_at,
        ended_at: row.ended_at,
        paused_seconds: row.paused_seconds,
        excused_seconds: row.excused_seconds,
        sla_seconds: row.sla_seconds,
        credited_crew_id: row.credited_crew_id.as_deref(),
        area_code: &row.area_code,
        kind: &row.kind,
        priority: &row.priority,
        stage: &row.stage,
    }
}

/// The crew a row counts under: the credited crew once it ended, the assigned crew while open.
fn crew_of(row: &InstanceRow) -> Option<&str> {
    if row.ended_at.is_some() {
        row.credited_crew_id.as_deref()
    } else {
        row.assigned_crew_id.as_deref()
    }
}

/// The dimensions a row, a cell or a contribution is grouped and filtered by.
struct Dims<'a> {
    area: &'a str,
    kind: &'a str,
    priority: &'a str,
    stage: &'a str,
    crew: Option<&'a str>,
    day: std::borrow::Cow<'a, str>,
}

impl Dims<'_> {
    fn key(&self, g: GroupBy) -> Option<String> {
        match g {
            GroupBy::Crew => self.crew.filter(|c| !c.is_empty()).map(str::to_owned),
            GroupBy::Area => Some(self.area.to_owned()),
            GroupBy::Kind => Some(self.kind.to_owned()),
            GroupBy::Priority => Some(self.priority.to_owned()),
            GroupBy::Stage => Some(self.stage.to_owned()),
            GroupBy::Day => Some(self.day.to_string()),
        }
    }
}

fn row_dims(row: &InstanceRow) -> Dims<'_> {
    Dims {
        area: &row.area_code,
        kind: &row.kind,
        priority: &row.priority,
        stage: &row.stage,
        crew: crew_of(row),
        day: local_day(row.started_at.and_utc()).to_string().into(),
    }
}

fn contribution_dims(c: &SlaContribution) -> Dims<'_> {
    Dims {
        area: &c.area_code,
        kind: &c.kind,
        priority: &c.priority,
        stage: &c.stage,
        crew: Some(c.crew_id.as_str()),
        day: c.day.to_string().into(),
    }
}

/// What a report keeps of the instances.
struct Wanted {
    stages: Option<Vec<String>>,
    kind: Option<String>,
    areas: Option<HashSet<String>>,
    /// The report needs instances' crew or priority (not only day, area, kind, stage).
    by_crew_or_priority: bool,
}

impl Wanted {
    fn keeps(&self, d: &Dims<'_>) -> bool {
        self.stages
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == d.stage))
            && self.kind.as_ref().is_none_or(|k| k == d.kind)
            && self.areas.as_ref().is_none_or(|a| a.contains(d.area))
    }

    fn cell_filter(&self) -> CellFilter {
        CellFilter {
            stages: self.stages.clone(),
            kind: self.kind.clone(),
            areas: self.areas.as_ref().map(|a| a.iter().cloned().collect()),
        }
    }

    fn instance_filter(&self, stage: Option<&str>, open_only: bool) -> InstanceFilter {
        InstanceFilter {
            stage: stage.map(str::to_owned),
            kind: self.kind.clone(),
            areas: self.areas.as_ref().map(|a| a.iter().cloned().collect()),
            open_only,
        }
    }
}

/// The instant bounds of a span served by roll-ups.
fn span_bounds(span: &Span) -> Option<(NaiveDateTime, NaiveDateTime)> {
    let midnight = |d: chrono::NaiveDate| {
        Month {
            year: d.year(),
            month: d.month(),
        }
        .start()
            + chrono::TimeDelta::days(i64::from(d.day()) - 1)
    };
    match span {
        Span::Raw(..) => None,
        Span::Days(a, b) => Some((midnight(*a).naive_utc(), midnight(*b).naive_utc())),
        Span::Months(a, b) => Some((a.start().naive_utc(), b.start().naive_utc())),
    }
}

/// What `visit_instances` calls: dims, counts, minutes, sign.
type Visit<'v> = dyn FnMut(&Dims<'_>, [i64; 6], Minutes<'_>, i64) -> Result<(), String> + 'v;

/// Visits every stage instance that started in `[from, to)` and is wanted, as counts with a
/// minute histogram: roll-up cells for whole days and months, the rows themselves for
/// partial days, open instances, and rows changed since the roll-up job last ran (their old
/// contribution taken out, the new one put in). `visit(dims, counts, minutes, sign)` where
/// counts are met, breached, stopped, excused, open running, open breached.
fn visit_instances(
    conn: &mut DbConnection,
    ctx: &SlaContext,
    (from, to, by_day): (DateTime<Utc>, DateTime<Utc>, bool),
    wanted: &Wanted,
    visit: &mut Visit<'_>,
) -> Result<(), AppError> {
    let spans = split(from, to, by_day);
    let one = |standing: Standing, minutes: Option<i64>| {
        let mut counts = [0; 6];
        let slot = match standing {
            Standing::Met => 0,
            Standing::Breached => 1,
            Standing::Stopped => 2,
            Standing::Excused => 3,
            Standing::OpenRunning => 4,
            Standing::OpenBreached => 5,
        };
        counts[slot] = 1;
        let minutes = match (standing.is_ended(), minutes) {
            (true, Some(m)) => Minutes::One(m),
            _ => Minutes::None,
        };
        (counts, minutes)
    };
    let mut visit = |d: &Dims<'_>, counts: [i64; 6], minutes: Minutes<'_>, sign: i64| {
        visit(d, counts, minutes, sign).map_err(AppError::internal)
    };
    let single_stage = wanted
        .stages
        .as_ref()
        .filter(|s| s.len() == 1)
        .map(|s| s[0].clone());
    for span in &spans {
        let (grain, range) = match span {
            Span::Raw(a, b) => {
                let filter = wanted.instance_filter(single_stage.as_deref(), false);
                for row in repo::instances(conn, a.naive_utc(), b.naive_utc(), &filter)? {
                    let d = row_dims(&row);
                    if wanted.keeps(&d) {
                        let standing = Standing::of(row.state, row.ended_at.is_some());
                        let (counts, h) =
                            one(standing, sla_seconds(&facts(&row), ctx).map(whole_minutes));
                        visit(&d, counts, h, 1)?;
                    }
                }
                continue;
            }
            // crew and priority are only in the detailed day cells
            Span::Days(a, b) if wanted.by_crew_or_priority => (DAY, (a.to_string(), b.to_string())),
            Span::Days(a, b) => (BRIEF_DAY, (a.to_string(), b.to_string())),
            Span::Months(a, b) => (MONTH, (a.to_string(), b.to_string())),
        };
        let cells = rollups::sla_cells(conn, grain, (&range.0, &range.1), &wanted.cell_filter())?;
        for c in &cells {
            let d = Dims {
                area: &c.area_code,
                kind: &c.kind,
                priority: &c.priority,
                stage: &c.stage,
                crew: Some(c.crew_id.as_str()),
                day: c.period.as_str().into(),
            };
            let counts = [c.met, c.breached, c.stopped, c.excused, 0, 0];
            visit(&d, counts, Minutes::Text(&c.minutes), 1)?;
        }
        if let Some((a, b)) = span_bounds(span) {
            let filter = wanted.instance_filter(single_stage.as_deref(), true);
            for row in repo::instances(conn, a, b, &filter)? {
                let d = row_dims(&row);
                if wanted.keeps(&d) {
                    let (counts, h) = one(Standing::of(row.state, false), None);
                    visit(&d, counts, h, 1)?;
                }
            }
        }
    }
    for (row, applied) in rollups::dirty_instances(conn, from.naive_utc(), to.naive_utc())? {
        if !in_rolled(&spans, row.started_at.and_utc()) {
            continue;
        }
        let before = applied_contribution(&facts(&row), applied.as_deref())?;
        let now = sla_contribution(&facts(&row), ctx);
        for (c, sign) in [(before, -1), (now, 1)] {
            let Some(c) = c else { continue };
            let d = contribution_dims(&c);
            if wanted.keeps(&d) {
                let mut counts = [0; 6];
                counts[match c.verdict {
                    Verdict::Met => 0,
                    Verdict::Breached => 1,
                    Verdict::Stopped => 2,
                    Verdict::Excused => 3,
                }] = 1;
                visit(&d, counts, Minutes::One(c.minutes), sign)?;
            }
        }
    }
    Ok(())
}

/// See `sla_in`; read on one snapshot, so no instance is counted twice or missed while
/// actions and the roll-up job commit.
pub fn sla(
    conn: &mut DbConnection,
    actor: &Actor,
    q: &SlaQuery,
    ctx: &SlaContext,
) -> Result<Vec<SlaRow>, AppError> {
    read_snapshot(conn, |conn| sla_in(conn, actor, q, ctx))
}

fn sla_in(
    conn: &mut DbConnection,
    actor: &Actor,
    q: &SlaQuery,
    ctx: &SlaContext,
) -> Result<Vec<SlaRow>, AppError> {
    let areas = area_set(conn, actor, q.area_code.as_deref())?;
    let wanted = Wanted {
        stages: q.stage.map(|s| vec![s.as_str().to_owned()]),
        kind: q.kind.map(|k| k.as_str().to_owned()),
        areas: areas.map(|a| a.into_iter().collect()),
        by_crew_or_priority: matches!(q.group_by, GroupBy::Crew | GroupBy::Priority),
    };
    let mut groups: BTreeMap<Option<String>, SlaTally> = BTreeMap::new();
    visit_instances(
        conn,
        ctx,
        (q.from, q.to, q.group_by == GroupBy::Day),
        &wanted,
        &mut |d, counts, minutes, sign| {
            groups
                .entry(d.key(q.group_by))
                .or_default()
                .add_counts(counts, minutes, sign)
        },
    )?;
    groups.retain(|_, t| !t.is_empty());
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

/// See `crews_in`; read on one snapshot, so no instance is counted twice or missed while
/// actions and the roll-up job commit.
pub fn crews(
    conn: &mut DbConnection,
    actor: &Actor,
    period: (DateTime<Utc>, DateTime<Utc>),
    area_code: Option<&str>,
    rules: (&ScoringConfig, &SlaContext),
) -> Result<Vec<CrewScore>, AppError> {
    read_snapshot(conn, |conn| crews_in(conn, actor, period, area_code, rules))
}

/// Crew scores for `[from, to)`, of the crews whose home area is in the report's areas.
fn crews_in(
    conn: &mut DbConnection,
    actor: &Actor,
    (from, to): (DateTime<Utc>, DateTime<Utc>),
    area_code: Option<&str>,
    (cfg, ctx): (&ScoringConfig, &SlaContext),
) -> Result<Vec<CrewScore>, AppError> {
    let areas = area_set(conn, actor, area_code)?;
    let all = score_period_in(conn, (from.naive_utc(), to.naive_utc()), cfg, ctx)?;
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

/// See `score_period_in`; read on one snapshot, so no instance is counted twice or missed while
/// actions and the roll-up job commit.
pub fn score_period(
    conn: &mut DbConnection,
    period: (NaiveDateTime, NaiveDateTime),
    cfg: &ScoringConfig,
    ctx: &SlaContext,
) -> Result<Vec<(Option<String>, CrewScore)>, AppError> {
    read_snapshot(conn, |conn| score_period_in(conn, period, cfg, ctx))
}

/// Every crew's score for the period, with its home area, best first (scorecards freeze this).
fn score_period_in(
    conn: &mut DbConnection,
    (from, to): (NaiveDateTime, NaiveDateTime),
    cfg: &ScoringConfig,
    ctx: &SlaContext,
) -> Result<Vec<(Option<String>, CrewScore)>, AppError> {
    let crews = crews::all(conn)?;
    let mut tallies: HashMap<String, CrewTally> = crews
        .iter()
        .map(|c| {
            let kind = c.kind;
            let home = c.area_codes.first().cloned();
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
    let (from_t, to_t) = (from.and_utc(), to.and_utc());
    let wanted = Wanted {
        stages: Some(
            [Stage::Arrival, Stage::Restore, Stage::Reply]
                .iter()
                .map(|s| s.as_str().to_owned())
                .collect(),
        ),
        kind: None,
        areas: None,
        by_crew_or_priority: true,
    };
    visit_instances(
        conn,
        ctx,
        (from_t, to_t, false),
        &wanted,
        &mut |d, counts, _, sign| {
            let Some(t) = d.crew.and_then(|c| tallies.get_mut(c)) else {
                return Ok(());
            };
            // a unit's on-time part is its reply; a field crew's is its arrival
            let slot = match (t.kind, d.stage) {
                (CrewKind::Field, "arrival") | (CrewKind::Unit, "reply") => {
                    Some((&mut t.arrival_met, &mut t.arrival_breached))
                }
                (CrewKind::Field, "restore") => Some((&mut t.restore_met, &mut t.restore_breached)),
                _ => None,
            };
            if let Some((m, b)) = slot {
                *m += sign * counts[0];
                *b += sign * counts[1];
            }
            Ok(())
        },
    )?;
    let mut add = |crew: &str, slots: [i64; 8], sign: i64| {
        if let Some(t) = tallies.get_mut(crew) {
            t.dispatches += sign * slots[0];
            t.returns += sign * slots[1];
            t.callbacks += sign * slots[2];
            t.callbacks_good += sign * slots[3];
            t.complaints += sign * slots[4];
            t.praise += sign * slots[5];
            t.orders += sign * slots[6];
            t.reopened_orders += sign * slots[7];
        }
    };
    let spans = split(from_t, to_t, false);
    for span in &spans {
        let (grain, range) = match span {
            Span::Raw(a, b) => {
                for c in credits::between(conn, a.naive_utc(), b.naive_utc())? {
                    let contribution = credit_contribution(
                        &c.crew_id,
                        &c.fact,
                        c.at,
                        c.satisfaction.as_deref(),
                        c.reopened_at.is_some(),
                    );
                    add(&c.crew_id, credit_slots(&contribution), 1);
                }
                continue;
            }
            Span::Days(a, b) => (DAY, (a.to_string(), b.to_string())),
            Span::Months(a, b) => (MONTH, (a.to_string(), b.to_string())),
        };
        for c in rollups::credit_cells(conn, grain, (&range.0, &range.1))? {
            add(
                &c.crew_id,
                [
                    c.dispatches,
                    c.returns,
                    c.callbacks,
                    c.callbacks_good,
                    c.complaints,
                    c.praise,
                    c.resolves,
                    c.resolves_reopened,
                ],
                1,
            );
        }
    }
    for c in rollups::dirty_credits_between(conn, from, to)? {
        if !in_rolled(&spans, c.at.and_utc()) {
            continue;
        }
        let before =
            applied_credit_contribution(&c.crew_id, &c.fact, c.at, c.rollup_applied.as_deref())?;
        if let Some(before) = before {
            add(&before.crew_id, credit_slots(&before), -1);
        }
        let now = credit_contribution(
            &c.crew_id,
            &c.fact,
            c.at,
            c.satisfaction.as_deref(),
            c.reopened_at.is_some(),
        );
        add(&c.crew_id, credit_slots(&now), 1);
    }
    // `orders` counts an order once: a crew's repeated resolves of one order in the period
    // (a reopen came between, so every earlier one is reopened) are one order, reopened.
    let mut chains: HashMap<(String, String), (i64, bool, NaiveDateTime)> = HashMap::new();
    for r in repo::repeat_resolves(conn, from, to)? {
        if r.fact != Fact::Resolve.as_str() || r.repeat_of_at.is_none_or(|p| p < from) {
            continue;
        }
        let e = chains
            .entry((r.crew_id.clone(), r.work_order_id.clone()))
            .or_insert((0, false, r.at));
        e.0 += 1;
        if r.at >= e.2 {
            e.2 = r.at;
            e.1 = r.reopened_at.is_some();
        }
    }
    for ((crew, _), (repeats, last_reopened, _)) in chains {
        if let Some(t) = tallies.get_mut(&crew) {
            t.orders -= repeats;
            t.reopened_orders -= repeats - 1 + i64::from(last_reopened);
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

/// See `backlog_in`; read on one snapshot, so no instance is counted twice or missed while
/// actions and the roll-up job commit.
pub fn backlog(
    conn: &mut DbConnection,
    actor: &Actor,
    area_code: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<BacklogRow>, AppError> {
    read_snapshot(conn, |conn| backlog_in(conn, actor, area_code, now))
}

fn backlog_in(
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
        let state = TimerState::try_from(state)
            .map_err(|e| AppError::internal(format!("a timer of order {order} has state {e}")))?;
        let level = match (state, warned) {
            (TimerState::Breached, _) => 3,
            (TimerState::Running, Some(_)) => 2,
            (TimerState::Running | TimerState::Paused, _) => 1,
            // ended states are not read here (the query takes open timers)
            (TimerState::Met | TimerState::Stopped | TimerState::Excused, _) => 1,
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
        open_only: false,
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
                excused: r.state == TimerState::Excused,
            }
        })
        .collect();
    Ok((items, next))
}
