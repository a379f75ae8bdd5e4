//! Roll-ups of ended stage instances and credited facts (docs/reports.md, "Speed"): what one
//! row contributes to its day and month cells, minute histograms, and how a report period is
//! split into partial days read raw, whole days and whole months read from the roll-ups.
//! Pure.

use super::reports::{local_day, Month, REPORT_TZ};
use super::sla::TimerState;
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counts of whole SLA minutes: minute → instances.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram(pub BTreeMap<i64, i64>);

impl Histogram {
    /// Parses `minute:count,minute:count`; a malformed pair is an error.
    pub fn parse(text: &str) -> Result<Histogram, String> {
        let mut h = BTreeMap::new();
        for pair in text.split(',').filter(|p| !p.is_empty()) {
            let (m, n) = pair
                .split_once(':')
                .ok_or_else(|| format!("histogram pair `{pair}` has no `:`"))?;
            let m: i64 = m.parse().map_err(|_| format!("bad minute in `{pair}`"))?;
            let n: i64 = n.parse().map_err(|_| format!("bad count in `{pair}`"))?;
            *h.entry(m).or_insert(0) += n;
        }
        Ok(Histogram(h))
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (m, n) in self.0.iter().filter(|(_, n)| **n != 0) {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&format!("{m}:{n}"));
        }
        out
    }

    /// Adds `n` instances of `minute` (`n` may be negative); zero counts are dropped.
    pub fn add(&mut self, minute: i64, n: i64) {
        let e = self.0.entry(minute).or_insert(0);
        *e += n;
        if *e == 0 {
            self.0.remove(&minute);
        }
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (m, n) in &other.0 {
            self.add(*m, *n);
        }
    }

    pub fn count(&self) -> i64 {
        self.0.values().sum()
    }

    /// The value at nearest rank ⌈p/100 × n⌉.
    pub fn nearest_rank(&self, p: u32) -> Option<i64> {
        let n = self.count();
        if n <= 0 {
            return None;
        }
        let rank = (i64::from(p) * n + 99).div_euclid(100).clamp(1, n);
        let mut seen = 0;
        for (m, c) in &self.0 {
            seen += c;
            if seen >= rank {
                return Some(*m);
            }
        }
        self.0.keys().next_back().copied()
    }
}

/// How an ended instance ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Met,
    Breached,
    Stopped,
    Excused,
}

impl Verdict {
    /// How an ended instance counts: one that ended while running or paused (cancelled,
    /// merged, waived) is stopped.
    pub fn of(state: TimerState) -> Verdict {
        match state {
            TimerState::Met => Verdict::Met,
            TimerState::Breached => Verdict::Breached,
            TimerState::Excused => Verdict::Excused,
            TimerState::Stopped | TimerState::Running | TimerState::Paused => Verdict::Stopped,
        }
    }
}

/// What an ended instance adds to the roll-ups: its cell and how it counts there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaContribution {
    /// Local date its stage started.
    pub day: NaiveDate,
    pub area_code: String,
    pub kind: String,
    pub priority: String,
    pub stage: String,
    /// The credited crew, `""` for none.
    pub crew_id: String,
    pub verdict: Verdict,
    pub minutes: i64,
}

/// What a credited fact adds to the roll-ups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditContribution {
    pub day: NaiveDate,
    pub crew_id: String,
    pub fact: String,
    /// A callback that was very satisfied or satisfied.
    pub good: bool,
    /// A resolve reopened later.
    pub reopened: bool,
}

/// What the job applied for an ended instance, kept in its `rollup_applied` so it can be
/// taken back out exactly: its verdict and minutes (`met:30`). The cell's other dimensions
/// never change once an instance has ended.
pub fn applied_sla(verdict: Verdict, minutes: i64) -> String {
    let v = match verdict {
        Verdict::Met => "met",
        Verdict::Breached => "breached",
        Verdict::Stopped => "stopped",
        Verdict::Excused => "excused",
    };
    format!("{v}:{minutes}")
}

pub fn parse_applied_sla(text: &str) -> Option<(Verdict, i64)> {
    let (v, m) = text.split_once(':')?;
    let verdict = match v {
        "met" => Verdict::Met,
        "breached" => Verdict::Breached,
        "stopped" => Verdict::Stopped,
        "excused" => Verdict::Excused,
        _ => return None,
    };
    Some((verdict, m.parse().ok()?))
}

/// What the job applied for a credit: whether it counted as a good callback and as a
/// reopened resolve (`10`).
pub fn applied_credit(good: bool, reopened: bool) -> String {
    format!("{}{}", u8::from(good), u8::from(reopened))
}

pub fn parse_applied_credit(text: &str) -> Option<(bool, bool)> {
    let b = text.as_bytes();
    (b.len() == 2).then(|| (b[0] == b'1', b[1] == b'1'))
}

/// The two cells a fact of `day` counts in: its day and its month.
pub fn periods(day: NaiveDate) -> [(&'static str, String); 2] {
    [
        (DAY, day.format("%Y-%m-%d").to_string()),
        (
            MONTH,
            Month {
                year: day.year(),
                month: day.month(),
            }
            .to_string(),
        ),
    ]
}

pub const DAY: &str = "d";
pub const MONTH: &str = "m";
/// Day cells without crew and priority (`""`): what a report by day, area, kind or stage
/// needs, a fraction of the rows.
pub const BRIEF_DAY: &str = "b";

/// The cells an ended instance counts in: grain, period, priority and crew of each.
pub fn sla_cells_of(c: &SlaContribution) -> [(&'static str, String, &str, &str); 3] {
    let [(d, day), (m, month)] = periods(c.day);
    [
        (d, day.clone(), c.priority.as_str(), c.crew_id.as_str()),
        (m, month, c.priority.as_str(), c.crew_id.as_str()),
        (BRIEF_DAY, day, "", ""),
    ]
}

/// A piece of a report period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Span {
    /// Read from the rows themselves: `[from, to)` inside one local day.
    Raw(DateTime<Utc>, DateTime<Utc>),
    /// Whole local days `[first, end)`.
    Days(NaiveDate, NaiveDate),
    /// Whole months `[first, end)`.
    Months(Month, Month),
}

/// The instant a local day (REPORT_TZ) begins.
pub fn day_start(d: NaiveDate) -> DateTime<Utc> {
    midnight(d)
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    let t = d.and_hms_opt(0, 0, 0).unwrap_or_default();
    REPORT_TZ
        .from_local_datetime(&t)
        .earliest()
        .map(|x| x.with_timezone(&Utc))
        .unwrap_or_else(|| t.and_utc())
}

/// Splits `[from, to)` into partial days at its ends (raw), whole days and — unless `by_day`
/// — whole months in between.
pub fn split(from: DateTime<Utc>, to: DateTime<Utc>, by_day: bool) -> Vec<Span> {
    if from >= to {
        return Vec::new();
    }
    let first_day = {
        let d = local_day(from);
        if midnight(d) == from {
            d
        } else {
            d.succ_opt().unwrap_or(d)
        }
    };
    let end_day = local_day(to);
    let (d0, d1) = (midnight(first_day), midnight(end_day));
    if first_day >= end_day {
        return vec![Span::Raw(from, to)];
    }
    let mut out = Vec::new();
    if from < d0 {
        out.push(Span::Raw(from, d0));
    }
    let first_month = {
        let m = Month {
            year: first_day.year(),
            month: first_day.month(),
        };
        if first_day.day() == 1 {
            m
        } else {
            m.next()
        }
    };
    let end_month = Month {
        year: end_day.year(),
        month: end_day.month(),
    };
    let month_day = |m: Month| NaiveDate::from_ymd_opt(m.year, m.month, 1).unwrap_or(first_day);
    if !by_day && (first_month.year, first_month.month) < (end_month.year, end_month.month) {
        if first_day < month_day(first_month) {
            out.push(Span::Days(first_day, month_day(first_month)));
        }
        out.push(Span::Months(first_month, end_month));
        if month_day(end_month) < end_day {
            out.push(Span::Days(month_day(end_month), end_day));
        }
    } else {
        out.push(Span::Days(first_day, end_day));
    }
    if d1 < to {
        out.push(Span::Raw(d1, to));
    }
    out
}

/// Whether an instant falls in a span served by roll-ups (not raw).
pub fn in_rolled(spans: &[Span], at: DateTime<Utc>) -> bool {
    let day = local_day(at);
    spans.iter().any(|s| match s {
        Span::Raw(..) => false,
        Span::Days(a, b) => *a <= day && day < *b,
        Span::Months(a, b) => {
            let m = (day.year(), day.month());
            (a.year, a.month) <= m && m < (b.year, b.month)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn m(s: &str) -> Month {
        Month::parse(s).unwrap()
    }

    #[test]
    fn histogram_round_trip_and_ranks() {
        let mut h = Histogram::parse("2:1,5:3").unwrap();
        h.add(5, -1);
        h.add(9, 1);
        assert_eq!(h.encode(), "2:1,5:2,9:1");
        // n = 4: p50 → rank 2 → 5; p90 → ceil(3.6) = 4 → 9
        assert_eq!(h.nearest_rank(50), Some(5));
        assert_eq!(h.nearest_rank(90), Some(9));
        h.add(2, -1);
        assert_eq!(h.encode(), "5:2,9:1");
        assert!(Histogram::parse("x").is_err());
        assert_eq!(
            parse_applied_sla(&applied_sla(Verdict::Excused, 42)),
            Some((Verdict::Excused, 42))
        );
        for v in [Verdict::Met, Verdict::Breached, Verdict::Stopped] {
            assert_eq!(parse_applied_sla(&applied_sla(v, 7)), Some((v, 7)));
        }
        // never read as stopped
        assert_eq!(parse_applied_sla("lapsed:7"), None);
        assert_eq!(
            parse_applied_credit(&applied_credit(true, false)),
            Some((true, false))
        );
        assert_eq!(Histogram::default().nearest_rank(50), None);
    }

    #[test]
    fn split_by_hand() {
        // Shanghai midnights are 16:00Z the day before
        assert_eq!(
            split(t("2026-11-22T01:00:00Z"), t("2026-11-22T05:00:00Z"), false),
            vec![Span::Raw(
                t("2026-11-22T01:00:00Z"),
                t("2026-11-22T05:00:00Z")
            )]
        );
        assert_eq!(
            split(t("2026-01-10T03:00:00Z"), t("2026-04-05T16:00:00Z"), false),
            vec![
                Span::Raw(t("2026-01-10T03:00:00Z"), t("2026-01-10T16:00:00Z")),
                Span::Days(d("2026-01-11"), d("2026-02-01")),
                Span::Months(m("2026-02"), m("2026-04")),
                Span::Days(d("2026-04-01"), d("2026-04-06")),
            ]
        );
        assert_eq!(
            split(t("2025-12-31T16:00:00Z"), t("2026-12-31T16:00:00Z"), false),
            vec![Span::Months(m("2026-01"), m("2027-01"))]
        );
        assert_eq!(
            split(t("2025-12-31T16:00:00Z"), t("2026-02-01T00:00:00Z"), true),
            vec![
                Span::Days(d("2026-01-01"), d("2026-02-01")),
                Span::Raw(t("2026-01-31T16:00:00Z"), t("2026-02-01T00:00:00Z")),
            ]
        );
    }

    proptest! {
        /// Every instant of the period falls in exactly one span, and no instant outside it.
        #[test]
        fn spans_cover_the_period_once(a in 0i64..40_000_000, len in 1i64..40_000_000, probe in 0i64..80_000_000, by_day: bool) {
            let base = t("2025-06-01T00:00:00Z");
            let from = base + chrono::TimeDelta::seconds(a);
            let to = from + chrono::TimeDelta::seconds(len);
            let at = base + chrono::TimeDelta::seconds(probe);
            let spans = split(from, to, by_day);
            let hits = spans.iter().filter(|s| match s {
                Span::Raw(x, y) => *x <= at && at < *y,
                other => in_rolled(std::slice::from_ref(other), at),
            }).count();
            prop_assert_eq!(hits, usize::from(from <= at && at < to));
        }
    }
}
