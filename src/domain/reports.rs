//! Supervisor report arithmetic (PRODUCT.md, "Supervisor reports"; API.md, "Reports"): how a
//! stage instance is counted, percentiles by nearest rank in whole SLA minutes, the backlog's
//! age buckets, report periods and months in Asia/Shanghai, the area tree, and CSV cells that
//! a spreadsheet never runs. Pure.

pub use super::areas::with_descendants;
use super::rollup::Histogram;
use super::sla::TimerState;
use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, TimeZone, Utc};
use chrono_tz::Asia::Shanghai;

/// The zone of report days and scorecard months.
pub const REPORT_TZ: chrono_tz::Tz = Shanghai;

/// The local date (Asia/Shanghai) of an instant: a fact's report day.
pub fn local_day(at: DateTime<Utc>) -> NaiveDate {
    at.with_timezone(&REPORT_TZ).date_naive()
}

/// Whole SLA minutes of a duration in seconds (floored: 59 s is 0 minutes).
pub fn whole_minutes(seconds: i64) -> i64 {
    seconds.max(0).div_euclid(60)
}

/// The value at nearest rank `ceil(p/100 × n)` of sorted values (`None` when empty).
pub fn nearest_rank(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = (u64::from(p) * n).div_ceil(100).clamp(1, n);
    sorted.get(usize::try_from(rank - 1).ok()?).copied()
}

/// How a stage instance stands, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    Met,
    Breached,
    Stopped,
    Excused,
    OpenRunning,
    OpenBreached,
}

impl Standing {
    /// From a timer's stored state and whether it has ended.
    pub fn of(state: TimerState, ended: bool) -> Standing {
        use TimerState as S;
        match (state, ended) {
            (S::Met, _) => Standing::Met,
            (S::Excused, _) => Standing::Excused,
            (S::Stopped, _) => Standing::Stopped,
            (S::Breached, true) => Standing::Breached,
            (S::Breached, false) => Standing::OpenBreached,
            (S::Running | S::Paused, true) => Standing::Stopped,
            (S::Running | S::Paused, false) => Standing::OpenRunning,
        }
    }

    pub fn is_ended(self) -> bool {
        !matches!(self, Standing::OpenRunning | Standing::OpenBreached)
    }
}

/// One row of the SLA report as it is being counted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SlaTally {
    pub met: i64,
    pub breached: i64,
    pub stopped: i64,
    pub excused: i64,
    pub open_running: i64,
    pub open_breached: i64,
    /// Whole SLA minutes of the ended instances: minute → instances (a hash map: a year's
    /// report merges millions of histogram entries).
    pub minutes: rustc_hash::FxHashMap<i64, i64>,
}

/// Minutes handed to a tally with counts.
#[derive(Debug, Clone, Copy)]
pub enum Minutes<'a> {
    None,
    One(i64),
    /// A roll-up cell's histogram, `minute:count,…`.
    Text(&'a str),
}

/// A finished SLA report row's numbers.
#[derive(Debug, Clone, PartialEq)]
pub struct SlaFigures {
    pub total: i64,
    pub met: i64,
    pub breached: i64,
    pub stopped: i64,
    pub excused: i64,
    pub open_running: i64,
    pub open_breached: i64,
    pub compliance_rate: Option<f64>,
    pub p50_minutes: Option<i64>,
    pub p90_minutes: Option<i64>,
    pub p99_minutes: Option<i64>,
}

impl SlaTally {
    /// Counts one instance; `sla_minutes` is kept for ended instances only.
    pub fn add(&mut self, standing: Standing, sla_minutes: Option<i64>) {
        match standing {
            Standing::Met => self.met += 1,
            Standing::Breached => self.breached += 1,
            Standing::Stopped => self.stopped += 1,
            Standing::Excused => self.excused += 1,
            Standing::OpenRunning => self.open_running += 1,
            Standing::OpenBreached => self.open_breached += 1,
        }
        if let (true, Some(m)) = (standing.is_ended(), sla_minutes) {
            *self.minutes.entry(m).or_insert(0) += 1;
        }
    }

    /// Adds (`sign` 1) or takes out (-1) counts in the order met, breached, stopped, excused,
    /// open running, open breached, with the ended instances' minutes.
    pub fn add_counts(
        &mut self,
        counts: [i64; 6],
        minutes: Minutes<'_>,
        sign: i64,
    ) -> Result<(), String> {
        self.met += sign * counts[0];
        self.breached += sign * counts[1];
        self.stopped += sign * counts[2];
        self.excused += sign * counts[3];
        self.open_running += sign * counts[4];
        self.open_breached += sign * counts[5];
        match minutes {
            Minutes::None => {}
            Minutes::One(m) => *self.minutes.entry(m).or_insert(0) += sign,
            Minutes::Text(text) => {
                for pair in text.split(',').filter(|p| !p.is_empty()) {
                    let (m, n) = pair
                        .split_once(':')
                        .and_then(|(m, n)| Some((m.parse::<i64>().ok()?, n.parse::<i64>().ok()?)))
                        .ok_or_else(|| format!("histogram pair `{pair}`"))?;
                    *self.minutes.entry(m).or_insert(0) += sign * n;
                }
            }
        }
        Ok(())
    }

    /// No instance counted.
    pub fn is_empty(&self) -> bool {
        self.met == 0
            && self.breached == 0
            && self.stopped == 0
            && self.excused == 0
            && self.open_running == 0
            && self.open_breached == 0
    }

    /// Compliance = met ÷ (met + breached), null when both are 0; percentiles over the ended
    /// instances by nearest rank.
    pub fn finish(self) -> SlaFigures {
        let minutes = Histogram(self.minutes.iter().map(|(m, n)| (*m, *n)).collect());
        let judged = self.met + self.breached;
        SlaFigures {
            total: self.met
                + self.breached
                + self.stopped
                + self.excused
                + self.open_running
                + self.open_breached,
            met: self.met,
            breached: self.breached,
            stopped: self.stopped,
            excused: self.excused,
            open_running: self.open_running,
            open_breached: self.open_breached,
            compliance_rate: (judged > 0).then(|| round4(self.met as f64 / judged as f64)),
            p50_minutes: minutes.nearest_rank(50),
            p90_minutes: minutes.nearest_rank(90),
            p99_minutes: minutes.nearest_rank(99),
        }
    }
}

/// Rounds a rate to 4 decimals for display.
pub fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The backlog's age buckets, by the order's age.
pub fn age_bucket(age: TimeDelta) -> &'static str {
    let h = age.num_seconds() as f64 / 3600.0;
    if h < 1.0 {
        "<1h"
    } else if h < 4.0 {
        "1-4h"
    } else if h < 24.0 {
        "4-24h"
    } else if h < 72.0 {
        "1-3d"
    } else if h < 168.0 {
        "3-7d"
    } else {
        ">7d"
    }
}

/// The buckets in their order.
pub const AGE_BUCKETS: [&str; 6] = ["<1h", "1-4h", "4-24h", "1-3d", "3-7d", ">7d"];

/// Why a report period was refused: the field and the message.
pub type PeriodError = (&'static str, String);

/// Checks `from < to` and a span of at most `max_days`.
pub fn check_period(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    max_days: i64,
) -> Result<(), PeriodError> {
    if from >= to {
        return Err(("to", "must be after `from`".into()));
    }
    if to - from > TimeDelta::days(max_days) {
        return Err(("to", format!("at most {max_days} days after `from`")));
    }
    Ok(())
}

/// A scorecard month `YYYY-MM` and its bounds in Asia/Shanghai.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub fn parse(text: &str) -> Option<Month> {
        let (y, m) = text.split_once('-')?;
        if y.len() != 4 || m.len() != 2 || !y.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
            return None;
        }
        let (year, month) = (y.parse().ok()?, m.parse().ok()?);
        NaiveDate::from_ymd_opt(year, month, 1)?;
        Some(Month { year, month })
    }

    /// The month of an instant, in Asia/Shanghai.
    pub fn of(at: DateTime<Utc>) -> Month {
        let d = local_day(at);
        Month {
            year: d.year(),
            month: d.month(),
        }
    }

    fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.year, self.month, 1).unwrap_or(NaiveDate::MIN)
    }

    pub fn next(self) -> Month {
        if self.month == 12 {
            Month {
                year: self.year + 1,
                month: 1,
            }
        } else {
            Month {
                year: self.year,
                month: self.month + 1,
            }
        }
    }

    /// Its first instant.
    pub fn start(self) -> DateTime<Utc> {
        let midnight = self.first_day().and_hms_opt(0, 0, 0).unwrap_or_default();
        REPORT_TZ
            .from_local_datetime(&midnight)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_else(|| midnight.and_utc())
    }

    /// The first instant after it.
    pub fn end(self) -> DateTime<Utc> {
        self.next().start()
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

/// A CSV cell a spreadsheet shows as text: one that begins with `=`, `+`, `-` or `@` gets a
/// leading `'`.
pub fn safe_cell(text: String) -> String {
    if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_by_hand() {
        // n = 10: p50 → rank ceil(5.0) = 5 → 5th value; p90 → 9th; p99 → ceil(9.9) = 10th
        let v: Vec<i64> = (1..=10).map(|x| x * 10).collect();
        assert_eq!(nearest_rank(&v, 50), Some(50));
        assert_eq!(nearest_rank(&v, 90), Some(90));
        assert_eq!(nearest_rank(&v, 99), Some(100));
        // n = 3: p50 → ceil(1.5) = 2nd; p90 → ceil(2.7) = 3rd
        assert_eq!(nearest_rank(&[4, 7, 9], 50), Some(7));
        assert_eq!(nearest_rank(&[4, 7, 9], 90), Some(9));
        assert_eq!(nearest_rank(&[5], 1), Some(5));
        assert_eq!(nearest_rank(&[], 50), None);
    }

    #[test]
    fn tally_counts_and_compliance() {
        let mut t = SlaTally::default();
        t.add(Standing::Met, Some(30));
        t.add(Standing::Met, Some(40));
        t.add(Standing::Breached, Some(50));
        t.add(Standing::Stopped, Some(10));
        t.add(Standing::Excused, Some(90));
        t.add(Standing::OpenRunning, None);
        t.add(Standing::OpenBreached, Some(999));
        let f = t.finish();
        // 6 ended or open + 1 = 7 in all; compliance 2 of 3 = 0.6667
        assert_eq!(
            (f.total, f.met, f.breached, f.stopped, f.excused),
            (7, 2, 1, 1, 1)
        );
        assert_eq!((f.open_running, f.open_breached), (1, 1));
        assert_eq!(f.compliance_rate, Some(0.6667));
        // ended minutes sorted: 10 30 40 50 90 (the open one's minutes are not counted):
        // p50 → ceil(2.5) = 3rd = 40; p90 → ceil(4.5) = 5th = 90
        assert_eq!(f.p50_minutes, Some(40));
        assert_eq!(f.p90_minutes, Some(90));
        let empty = SlaTally::default().finish();
        assert_eq!(
            (empty.total, empty.compliance_rate, empty.p50_minutes),
            (0, None, None)
        );
    }

    #[test]
    fn standing_of_states() {
        assert_eq!(
            Standing::of(TimerState::Breached, false),
            Standing::OpenBreached
        );
        assert_eq!(Standing::of(TimerState::Breached, true), Standing::Breached);
        assert_eq!(
            Standing::of(TimerState::Paused, false),
            Standing::OpenRunning
        );
        assert_eq!(Standing::of(TimerState::Excused, false), Standing::Excused);
        assert_eq!(whole_minutes(119), 1);
        assert_eq!(whole_minutes(-5), 0);
    }

    #[test]
    fn buckets_periods_months() {
        assert_eq!(age_bucket(TimeDelta::minutes(59)), "<1h");
        assert_eq!(age_bucket(TimeDelta::hours(1)), "1-4h");
        assert_eq!(age_bucket(TimeDelta::hours(24)), "1-3d");
        assert_eq!(age_bucket(TimeDelta::days(7)), ">7d");
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        assert!(check_period(t("2026-01-01T00:00:00Z"), t("2026-01-01T00:00:00Z"), 400).is_err());
        assert!(check_period(t("2025-01-01T00:00:00Z"), t("2026-03-01T00:00:00Z"), 400).is_err());
        assert!(check_period(t("2026-01-01T00:00:00Z"), t("2026-02-01T00:00:00Z"), 400).is_ok());
        let m = Month::parse("2026-02").unwrap();
        // Shanghai is UTC+8: February starts 2026-01-31T16:00Z and ends 2026-02-28T16:00Z
        assert_eq!(m.start(), t("2026-01-31T16:00:00Z"));
        assert_eq!(m.end(), t("2026-02-28T16:00:00Z"));
        assert_eq!(Month::of(t("2026-02-28T16:00:00Z")).to_string(), "2026-03");
        assert_eq!(
            Month::parse("2026-12").unwrap().next().to_string(),
            "2027-01"
        );
        for bad in ["2026-13", "2026-1", "26-01", "2026/01", "2026-0a", ""] {
            assert_eq!(Month::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn formula_cells() {
        assert_eq!(safe_cell("=1+1".into()), "'=1+1");
        assert_eq!(safe_cell("@SUM".into()), "'@SUM");
        assert_eq!(safe_cell("-2".into()), "'-2");
        assert_eq!(safe_cell("福田".into()), "福田");
    }
}
