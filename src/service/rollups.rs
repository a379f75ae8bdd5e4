//! Keeping the report roll-ups: what an ended stage instance or a credited fact contributes,
//! and folding dirty rows into their day and month cells (docs/reports.md, "Speed").

use crate::db::rollups::{
    self as repo, CreditCellKey, CreditCellRow, SlaCellKey as CellKey, SlaCellRow,
};
use crate::db::{write_transaction, DbConnection};
use crate::domain::reports::{local_day, whole_minutes};
use crate::domain::rollup::{
    applied_credit, applied_sla, parse_applied_credit, parse_applied_sla, periods, sla_cells_of,
    CreditContribution, Histogram, SlaContribution, Verdict,
};
use crate::domain::sla::TimerState;
use crate::errors::AppError;
use crate::service::sla::SlaContext;
use chrono::{DateTime, NaiveDateTime, Utc};
use std::collections::BTreeMap;

/// The fields of an instance that decide what it contributes.
pub struct InstanceFacts<'a> {
    pub state: TimerState,
    pub calendar: &'a str,
    pub started_at: NaiveDateTime,
    pub ended_at: Option<NaiveDateTime>,
    pub paused_seconds: i64,
    pub excused_seconds: i64,
    pub sla_seconds: Option<i64>,
    pub credited_crew_id: Option<&'a str>,
    pub area_code: &'a str,
    pub kind: &'a str,
    pub priority: &'a str,
    pub stage: &'a str,
}

/// SLA time of an ended instance: stored when it ended, or (rows backfilled from before
/// durations were stored) working time less held time on its calendar.
pub fn sla_seconds(f: &InstanceFacts<'_>, ctx: &SlaContext) -> Option<i64> {
    let ended = f.ended_at?;
    f.sla_seconds.or_else(|| {
        let cal = ctx.calendars.get(f.calendar)?;
        let working = cal
            .working_between(f.started_at.and_utc(), ended.and_utc())
            .num_seconds();
        Some((working - f.paused_seconds - f.excused_seconds).max(0))
    })
}

/// What an instance adds to the roll-ups: nothing until it has ended.
pub fn sla_contribution(f: &InstanceFacts<'_>, ctx: &SlaContext) -> Option<SlaContribution> {
    f.ended_at?;
    Some(SlaContribution {
        day: local_day(f.started_at.and_utc()),
        area_code: f.area_code.to_owned(),
        kind: f.kind.to_owned(),
        priority: f.priority.to_owned(),
        stage: f.stage.to_owned(),
        crew_id: f.credited_crew_id.unwrap_or_default().to_owned(),
        verdict: Verdict::of(f.state),
        minutes: whole_minutes(sla_seconds(f, ctx).unwrap_or(0)),
    })
}

/// What the roll-ups hold for an instance, from what the job recorded it applied. A mark
/// this version cannot read fails loudly: read as "nothing applied" it would be counted twice.
pub fn applied_contribution(
    f: &InstanceFacts<'_>,
    applied: Option<&str>,
) -> Result<Option<SlaContribution>, AppError> {
    let Some(text) = applied else { return Ok(None) };
    let (verdict, minutes) = parse_applied_sla(text)
        .ok_or_else(|| AppError::internal(format!("unreadable roll-up mark `{text}`")))?;
    Ok(Some(SlaContribution {
        day: local_day(f.started_at.and_utc()),
        area_code: f.area_code.to_owned(),
        kind: f.kind.to_owned(),
        priority: f.priority.to_owned(),
        stage: f.stage.to_owned(),
        crew_id: f.credited_crew_id.unwrap_or_default().to_owned(),
        verdict,
        minutes,
    }))
}

/// What the roll-ups hold for a credit, from what the job recorded it applied.
pub fn applied_credit_contribution(
    crew_id: &str,
    fact: &str,
    at: NaiveDateTime,
    applied: Option<&str>,
) -> Result<Option<CreditContribution>, AppError> {
    let Some(text) = applied else { return Ok(None) };
    let (good, reopened) = parse_applied_credit(text)
        .ok_or_else(|| AppError::internal(format!("unreadable credit roll-up mark `{text}`")))?;
    Ok(Some(CreditContribution {
        day: local_day(at.and_utc()),
        crew_id: crew_id.to_owned(),
        fact: fact.to_owned(),
        good,
        reopened,
    }))
}

/// What a credited fact adds to the roll-ups.
pub fn credit_contribution(
    crew_id: &str,
    fact: &str,
    at: NaiveDateTime,
    satisfaction: Option<&str>,
    reopened: bool,
) -> CreditContribution {
    CreditContribution {
        day: local_day(at.and_utc()),
        crew_id: crew_id.to_owned(),
        fact: fact.to_owned(),
        good: matches!(satisfaction, Some("very_satisfied" | "satisfied")),
        reopened,
    }
}

/// Counts of a cell, as deltas.
#[derive(Debug, Clone, Default)]
struct SlaDelta {
    counts: [i64; 4],
    minutes: Histogram,
}

fn verdict_slot(v: Verdict) -> usize {
    match v {
        Verdict::Met => 0,
        Verdict::Breached => 1,
        Verdict::Stopped => 2,
        Verdict::Excused => 3,
    }
}

/// Credit counts in cell order: dispatches, returns, callbacks, good callbacks, complaints,
/// praise, resolves, reopened resolves.
pub fn credit_slots(c: &CreditContribution) -> [i64; 8] {
    let mut out = [0; 8];
    match c.fact.as_str() {
        "dispatch" => out[0] = 1,
        "return" => out[1] = 1,
        "callback" => {
            out[2] = 1;
            out[3] = i64::from(c.good);
        }
        "complaint" => out[4] = 1,
        "praise" => out[5] = 1,
        "resolve" => {
            out[6] = 1;
            out[7] = i64::from(c.reopened);
        }
        _ => {}
    }
    out
}

/// What one pass folded in.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Folded {
    pub instances: usize,
    pub credits: usize,
}

/// Folds up to `batch` dirty instances and credits into their cells, in one transaction
/// that holds the roll-up lock (one job at a time across instances). An instance or credit
/// written since it was read is left dirty for the next pass.
pub fn fold(
    conn: &mut DbConnection,
    ctx: &SlaContext,
    now: DateTime<Utc>,
    batch: i64,
) -> Result<Folded, AppError> {
    write_transaction(conn, |conn| {
        repo::lock(conn, now.naive_utc())?;
        let mut folded = Folded::default();
        let timers = repo::dirty_timers(conn, batch)?;
        let mut contributions = Vec::with_capacity(timers.len());
        let mut marks = Vec::with_capacity(timers.len());
        for t in &timers {
            let facts = InstanceFacts {
                state: t.state,
                calendar: &t.calendar,
                started_at: t.started_at,
                ended_at: t.ended_at,
                paused_seconds: t.paused_seconds,
                excused_seconds: t.excused_seconds,
                sla_seconds: t.sla_seconds,
                credited_crew_id: t.credited_crew_id.as_deref(),
                area_code: &t.area_code,
                kind: &t.kind,
                priority: &t.priority,
                stage: &t.stage,
            };
            let now_counts = sla_contribution(&facts, ctx);
            let before = applied_contribution(&facts, t.rollup_applied.as_deref())?;
            marks.push(repo::TimerMark {
                id: t.id.clone(),
                version: t.version,
                applied: now_counts
                    .as_ref()
                    .map(|c| applied_sla(c.verdict, c.minutes)),
            });
            contributions.push((before, now_counts));
        }
        let cleared = repo::clear_timers(conn, &marks)?;
        let mut sla: BTreeMap<CellKey, SlaDelta> = BTreeMap::new();
        for (t, (before, now_counts)) in timers.iter().zip(contributions) {
            if !cleared.contains(&t.id) {
                continue;
            }
            folded.instances += 1;
            for (c, sign) in [(before, -1), (now_counts, 1)] {
                let Some(c) = c else { continue };
                for (grain, period, priority, crew) in sla_cells_of(&c) {
                    let d = sla
                        .entry((
                            grain.to_owned(),
                            period,
                            c.area_code.clone(),
                            c.kind.clone(),
                            priority.to_owned(),
                            c.stage.clone(),
                            crew.to_owned(),
                        ))
                        .or_default();
                    d.counts[verdict_slot(c.verdict)] += sign;
                    d.minutes.add(c.minutes, sign);
                }
            }
        }
        save_sla_deltas(conn, sla)?;
        let credits = repo::dirty_credits(conn, batch)?;
        let mut contributions = Vec::with_capacity(credits.len());
        let mut marks = Vec::with_capacity(credits.len());
        for c in &credits {
            let now_counts = credit_contribution(
                &c.crew_id,
                &c.fact,
                c.at,
                c.satisfaction.as_deref(),
                c.reopened_at.is_some(),
            );
            let before = applied_credit_contribution(
                &c.crew_id,
                &c.fact,
                c.at,
                c.rollup_applied.as_deref(),
            )?;
            marks.push((c, applied_credit(now_counts.good, now_counts.reopened)));
            contributions.push((before, now_counts));
        }
        let cleared = repo::clear_credits(conn, &marks)?;
        let mut deltas: BTreeMap<CreditCellKey, [i64; 8]> = BTreeMap::new();
        for (c, (before, now_counts)) in credits.iter().zip(contributions) {
            if !cleared.contains(&c.id) {
                continue;
            }
            folded.credits += 1;
            for (contribution, sign) in [(before, -1), (Some(now_counts), 1)] {
                let Some(contribution) = contribution else {
                    continue;
                };
                let slots = credit_slots(&contribution);
                for (grain, period) in periods(contribution.day) {
                    let e = deltas
                        .entry((grain.to_owned(), period, contribution.crew_id.clone()))
                        .or_default();
                    for (a, b) in e.iter_mut().zip(slots) {
                        *a += sign * b;
                    }
                }
            }
        }
        save_credit_deltas(conn, deltas)?;
        Ok(folded)
    })
}

/// Adds the deltas to their SLA cells: the stored cells read in one go, written in one go.
fn save_sla_deltas(
    conn: &mut DbConnection,
    deltas: BTreeMap<CellKey, SlaDelta>,
) -> Result<(), AppError> {
    let keys: Vec<SlaCellRow> = deltas.keys().cloned().map(SlaCellRow::empty).collect();
    let mut stored: BTreeMap<CellKey, SlaCellRow> = repo::sla_cells_at(conn, &keys)?
        .into_iter()
        .map(|c| (c.key(), c))
        .collect();
    let mut cells = Vec::with_capacity(keys.len());
    for (key, d) in keys.into_iter().zip(deltas.into_values()) {
        let mut cell = stored.remove(&key.key()).unwrap_or(key);
        let mut hist = Histogram::parse(&cell.minutes).map_err(AppError::internal)?;
        hist.merge(&d.minutes);
        cell.add_counts(d.counts);
        cell.minutes = hist.encode();
        cells.push(cell);
    }
    repo::save_sla_cells(conn, &cells)
}

/// Adds the deltas to their credit cells, as [`save_sla_deltas`].
fn save_credit_deltas(
    conn: &mut DbConnection,
    deltas: BTreeMap<CreditCellKey, [i64; 8]>,
) -> Result<(), AppError> {
    let keys: Vec<CreditCellRow> = deltas.keys().cloned().map(CreditCellRow::empty).collect();
    let mut stored: BTreeMap<CreditCellKey, CreditCellRow> = repo::credit_cells_at(conn, &keys)?
        .into_iter()
        .map(|c| (c.key(), c))
        .collect();
    let cells: Vec<CreditCellRow> = keys
        .into_iter()
        .zip(deltas.into_values())
        .map(|(key, d)| {
            let mut cell = stored.remove(&key.key()).unwrap_or(key);
            cell.add(d);
            cell
        })
        .collect();
    repo::save_credit_cells(conn, &cells)
}
