//! Working calendars and working-time arithmetic (PRODUCT.md, "SLA"): which local dates are
//! working days, which hours of them count, in the calendar's time zone. Pure.

use chrono::{DateTime, Datelike, Days, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// How far ahead arithmetic looks for working time before giving up (a calendar with no
/// working days at all).
const HORIZON_DAYS: u64 = 3 * 366;

/// What a local date is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DayKind {
    Workday,
    Weekend,
    Holiday,
    AdjustedWorkday,
}

/// A working calendar.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    pub id: String,
    pub name: String,
    pub tz: Tz,
    /// Working windows of a working day as local seconds from midnight, sorted, disjoint.
    pub windows: Vec<(u32, u32)>,
    /// Every day is a working day (a `24x7` calendar).
    pub always: bool,
    pub weekend: Vec<Weekday>,
    pub days_off: BTreeMap<NaiveDate, String>,
    pub extra_workdays: BTreeSet<NaiveDate>,
    pub years: BTreeSet<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalendarFile {
    id: String,
    name: Option<String>,
    time_zone: Option<String>,
    /// `[["08:30", "12:00"], ["13:30", "17:30"]]`; default the whole day.
    working_hours: Option<Vec<(String, String)>>,
    #[serde(default)]
    every_day_working: bool,
    weekend: Option<Vec<String>>,
    #[serde(default)]
    years: BTreeMap<String, YearFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    #[serde(default)]
    days_off: Vec<HolidayFile>,
    #[serde(default)]
    extra_workdays: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HolidayFile {
    from: String,
    to: Option<String>,
    name: Option<String>,
}

fn parse_date(s: &str) -> Result<NaiveDate, String> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .map_err(|_| format!("`{s}` is not a date (YYYY-MM-DD)"))
}

fn parse_clock(s: &str) -> Result<u32, String> {
    if s == "24:00" {
        return Ok(86_400);
    }
    NaiveTime::parse_from_str(s, "%H:%M")
        .map(|t| t.signed_duration_since(NaiveTime::MIN).num_seconds() as u32)
        .map_err(|_| format!("`{s}` is not a time (HH:MM)"))
}

fn parse_weekday(s: &str) -> Result<Weekday, String> {
    s.parse::<Weekday>()
        .map_err(|_| format!("`{s}` is not a weekday"))
}

impl Calendar {
    /// Parses a calendar file (`config/calendars/*.toml`).
    pub fn from_toml(text: &str) -> Result<Calendar, String> {
        let file: CalendarFile = toml::from_str(text).map_err(|e| e.to_string())?;
        let tz: Tz = file
            .time_zone
            .as_deref()
            .unwrap_or("Asia/Shanghai")
            .parse()
            .map_err(|_| format!("unknown time zone `{}`", file.time_zone.unwrap_or_default()))?;
        let mut windows = Vec::new();
        for (from, to) in file
            .working_hours
            .unwrap_or_else(|| vec![("00:00".into(), "24:00".into())])
        {
            let (a, b) = (parse_clock(&from)?, parse_clock(&to)?);
            if a >= b {
                return Err(format!("working hours {from}–{to} are empty"));
            }
            windows.push((a, b));
        }
        windows.sort_unstable();
        if windows.windows(2).any(|w| w[0].1 > w[1].0) {
            return Err("working hours overlap".into());
        }
        if windows.is_empty() {
            return Err("a calendar needs working hours".into());
        }
        let weekend = file
            .weekend
            .unwrap_or_else(|| vec!["sat".into(), "sun".into()])
            .iter()
            .map(|d| parse_weekday(d))
            .collect::<Result<Vec<_>, _>>()?;
        let mut days_off = BTreeMap::new();
        let mut extra_workdays = BTreeSet::new();
        let mut years = BTreeSet::new();
        for (year, y) in file.years {
            let year: i32 = year
                .parse()
                .map_err(|_| format!("`{year}` is not a year"))?;
            years.insert(year);
            for h in y.days_off {
                let from = parse_date(&h.from)?;
                let to = h.to.as_deref().map(parse_date).transpose()?.unwrap_or(from);
                if to < from || (to - from).num_days() > 31 {
                    return Err(format!(
                        "days off {}..{} is not a range of at most a month",
                        h.from,
                        h.to.unwrap_or_default()
                    ));
                }
                let mut d = from;
                while d <= to {
                    days_off.insert(d, h.name.clone().unwrap_or_default());
                    d = d + Days::new(1);
                }
            }
            for w in y.extra_workdays {
                extra_workdays.insert(parse_date(&w)?);
            }
        }
        if let Some(d) = extra_workdays.iter().find(|d| days_off.contains_key(d)) {
            return Err(format!("{d} is both a day off and a working day"));
        }
        Ok(Calendar {
            name: file.name.unwrap_or_else(|| file.id.clone()),
            id: file.id,
            tz,
            windows,
            always: file.every_day_working,
            weekend,
            days_off,
            extra_workdays,
            years,
        })
    }

    /// The local years from `from` to `to` whose holidays this calendar does not know (a
    /// calendar with holiday data; `24x7` and plain weekday calendars miss nothing).
    pub fn uncovered_years(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<i32> {
        if self.always || self.years.is_empty() {
            return Vec::new();
        }
        let (a, b) = (
            from.with_timezone(&self.tz).year(),
            to.max(from).with_timezone(&self.tz).year(),
        );
        (a..=b).filter(|y| !self.years.contains(y)).collect()
    }

    /// Whether a local date's year is configured (else weekdays decide, and callers warn).
    pub fn covers(&self, date: NaiveDate) -> bool {
        self.always || self.years.contains(&date.year())
    }

    pub fn day_kind(&self, date: NaiveDate) -> DayKind {
        if self.always {
            return DayKind::Workday;
        }
        if self.days_off.contains_key(&date) {
            return DayKind::Holiday;
        }
        let weekend = self.weekend.contains(&date.weekday());
        match (weekend, self.extra_workdays.contains(&date)) {
            (true, true) => DayKind::AdjustedWorkday,
            (true, false) => DayKind::Weekend,
            (false, _) => DayKind::Workday,
        }
    }

    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        matches!(
            self.day_kind(date),
            DayKind::Workday | DayKind::AdjustedWorkday
        )
    }

    pub fn holiday_name(&self, date: NaiveDate) -> Option<&str> {
        self.days_off
            .get(&date)
            .map(String::as_str)
            .filter(|n| !n.is_empty())
    }

    /// Working seconds in one working day (what "1 working day" means).
    pub fn seconds_per_day(&self) -> i64 {
        self.windows.iter().map(|(a, b)| i64::from(b - a)).sum()
    }

    /// The UTC instant of a local date at `secs` seconds past local midnight.
    fn instant(&self, date: NaiveDate, secs: u32) -> DateTime<Utc> {
        let midnight = date.and_time(NaiveTime::MIN);
        let local = midnight + TimeDelta::seconds(i64::from(secs));
        match self.tz.from_local_datetime(&local) {
            chrono::LocalResult::Single(t) => t.with_timezone(&Utc),
            chrono::LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
            // A local time skipped by a DST jump: the first instant after the gap.
            chrono::LocalResult::None => self
                .tz
                .from_local_datetime(&(local + TimeDelta::hours(1)))
                .earliest()
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_else(|| Utc.from_utc_datetime(&local)),
        }
    }

    /// The working windows of a local date as UTC intervals (none on a day off).
    pub fn working_intervals(&self, date: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if !self.is_working_day(date) {
            return Vec::new();
        }
        self.windows
            .iter()
            .map(|&(a, b)| (self.instant(date, a), self.instant(date, b)))
            .collect()
    }

    fn local_date(&self, t: DateTime<Utc>) -> NaiveDate {
        t.with_timezone(&self.tz).date_naive()
    }

    /// Working time in `[from, to)`.
    pub fn working_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> TimeDelta {
        if to <= from {
            return TimeDelta::zero();
        }
        if self.always && self.windows == [(0, 86_400)] {
            return to - from;
        }
        let mut total = TimeDelta::zero();
        let mut date = self.local_date(from) - Days::new(1);
        let last = self.local_date(to);
        while date <= last {
            for (a, b) in self.working_intervals(date) {
                let (s, e) = (a.max(from), b.min(to));
                if e > s {
                    total += e - s;
                }
            }
            date = date + Days::new(1);
        }
        total
    }

    /// The instant at which `amount` of working time has elapsed since `start`. A zero amount
    /// is `start` itself; otherwise the result lies inside a working window or at its end.
    pub fn add_working(&self, start: DateTime<Utc>, amount: TimeDelta) -> Option<DateTime<Utc>> {
        if amount <= TimeDelta::zero() {
            return Some(start);
        }
        if self.always && self.windows == [(0, 86_400)] {
            return Some(start + amount);
        }
        let mut remaining = amount;
        let mut date = self.local_date(start) - Days::new(1);
        for _ in 0..HORIZON_DAYS {
            for (a, b) in self.working_intervals(date) {
                let s = a.max(start);
                if b <= s {
                    continue;
                }
                let available = b - s;
                if remaining <= available {
                    return Some(s + remaining);
                }
                remaining -= available;
            }
            date = date + Days::new(1);
        }
        None
    }
}

/// Every calendar the service knows, by id.
#[derive(Debug, Clone, Default)]
pub struct Calendars {
    by_id: BTreeMap<String, Calendar>,
}

impl Calendars {
    pub fn new(list: Vec<Calendar>) -> Calendars {
        Calendars {
            by_id: list.into_iter().map(|c| (c.id.clone(), c)).collect(),
        }
    }

    pub fn get(&self, id: &str) -> Option<&Calendar> {
        self.by_id.get(id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Calendar> {
        self.by_id.values()
    }

    /// Calendars that have year data but lack `year` (for the readiness warning).
    pub fn missing_year(&self, year: i32) -> Vec<&str> {
        self.by_id
            .values()
            .filter(|c| !c.always && !c.years.is_empty() && !c.years.contains(&year))
            .map(|c| c.id.as_str())
            .collect()
    }
}

/// Parses a target duration: `30s`, `45m`, `3h`, or `2d` (working days: N × the calendar's
/// working seconds per day; on a 24-hour calendar 48 h).
pub fn parse_duration(text: &str, seconds_per_day: i64) -> Result<TimeDelta, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.len().saturating_sub(1));
    let n: i64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{text}` is not a duration like 30s, 45m, 3h or 2d"))?;
    if n <= 0 {
        return Err(format!("`{text}` must be positive"));
    }
    let seconds = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * seconds_per_day,
        _ => {
            return Err(format!(
                "`{text}` is not a duration like 30s, 45m, 3h or 2d"
            ))
        }
    };
    Ok(TimeDelta::seconds(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cn() -> Calendar {
        Calendar::from_toml(include_str!("../../config/calendars/cn.toml")).unwrap()
    }

    fn office() -> Calendar {
        let mut c = cn();
        c.windows = vec![(8 * 3600 + 1800, 12 * 3600), (13 * 3600 + 1800, 18 * 3600)];
        c
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn days(n: i64, c: &Calendar) -> TimeDelta {
        TimeDelta::seconds(n * c.seconds_per_day())
    }

    #[test]
    fn national_day_example_of_the_spec() {
        let c = cn();
        let due = c
            .add_working(at("2026-09-30T10:00:00+08:00"), days(5, &c))
            .unwrap();
        assert_eq!(due, at("2026-10-13T10:00:00+08:00"));
    }

    #[test]
    fn spring_festival_is_skipped_and_adjusted_saturdays_count() {
        let c = cn();
        // Friday 2026-02-13 09:00 + 1 working day: Saturday 02-14 is a 调休 working day.
        assert_eq!(
            c.add_working(at("2026-02-13T09:00:00+08:00"), days(1, &c))
                .unwrap(),
            at("2026-02-14T09:00:00+08:00")
        );
        // 02-14 09:00 + 1 working day: 02-15..02-23 off → 02-24 00:00 + 9 h remaining of the 14th's 15 h → 09:00 on 02-24.
        assert_eq!(
            c.add_working(at("2026-02-14T09:00:00+08:00"), days(1, &c))
                .unwrap(),
            at("2026-02-24T09:00:00+08:00")
        );
        assert_eq!(
            c.day_kind(NaiveDate::from_ymd_opt(2026, 2, 16).unwrap()),
            DayKind::Holiday
        );
        assert_eq!(
            c.holiday_name(NaiveDate::from_ymd_opt(2026, 2, 16).unwrap()),
            Some("春节")
        );
        assert_eq!(
            c.day_kind(NaiveDate::from_ymd_opt(2026, 2, 28).unwrap()),
            DayKind::AdjustedWorkday
        );
        assert_eq!(
            c.day_kind(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()),
            DayKind::Weekend
        );
        // 2025's Spring Festival: 01-28..02-04 off, Sunday 01-26 and Saturday 02-08 worked.
        assert_eq!(
            c.add_working(at("2025-01-27T12:00:00+08:00"), days(1, &c))
                .unwrap(),
            at("2025-02-05T12:00:00+08:00")
        );
    }

    #[test]
    fn a_start_on_an_adjusted_saturday_counts_from_the_start() {
        let c = cn();
        // Saturday 2026-10-10 is a working day: 2 working days from 10:00 run through Monday 10-12.
        assert_eq!(
            c.add_working(at("2026-10-10T10:00:00+08:00"), days(2, &c))
                .unwrap(),
            at("2026-10-13T10:00:00+08:00")
        );
        // A start on a day off counts from the next working day's start.
        assert_eq!(
            c.add_working(at("2026-10-11T10:00:00+08:00"), TimeDelta::hours(1))
                .unwrap(),
            at("2026-10-12T01:00:00+08:00")
        );
    }

    #[test]
    fn office_hours_skip_nights_and_lunch() {
        let c = office();
        assert_eq!(c.seconds_per_day(), 8 * 3600);
        assert_eq!(
            c.add_working(at("2026-11-20T11:00:00+08:00"), TimeDelta::hours(2))
                .unwrap(),
            at("2026-11-20T14:30:00+08:00")
        );
        // Friday 17:30 + 1 h → Monday 09:00
        assert_eq!(
            c.add_working(at("2026-11-20T17:30:00+08:00"), TimeDelta::hours(1))
                .unwrap(),
            at("2026-11-23T09:00:00+08:00")
        );
        assert_eq!(
            c.working_between(
                at("2026-11-20T17:30:00+08:00"),
                at("2026-11-23T09:00:00+08:00")
            ),
            TimeDelta::hours(1)
        );
    }

    #[test]
    fn uncovered_years_are_the_span_s_years_without_data() {
        let c = cn();
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // a 10-working-day reply started late in December 2026 runs into 2027
        assert_eq!(
            c.uncovered_years(
                at("2026-12-28T10:00:00+08:00"),
                at("2027-01-11T10:00:00+08:00")
            ),
            vec![2027]
        );
        assert!(c
            .uncovered_years(
                at("2026-01-05T10:00:00+08:00"),
                at("2026-12-31T23:00:00+08:00")
            )
            .is_empty());
        // 2026-12-31T20:00Z is already 2027 in Asia/Shanghai
        assert_eq!(
            c.uncovered_years(at("2026-12-31T10:00:00Z"), at("2026-12-31T20:00:00Z")),
            vec![2027]
        );
    }

    #[test]
    fn years_without_data_fall_back_to_weekdays() {
        let c = cn();
        let d = NaiveDate::from_ymd_opt(2027, 10, 1).unwrap();
        assert!(!c.covers(d));
        assert!(
            c.is_working_day(d),
            "2027-10-01 is a Friday: without 2027 data it counts"
        );
        assert!(c.covers(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()));
    }

    #[test]
    fn durations() {
        assert_eq!(
            parse_duration("30s", 86_400).unwrap(),
            TimeDelta::seconds(30)
        );
        assert_eq!(
            parse_duration("45m", 86_400).unwrap(),
            TimeDelta::minutes(45)
        );
        assert_eq!(parse_duration("3h", 86_400).unwrap(), TimeDelta::hours(3));
        assert_eq!(
            parse_duration("2d", 8 * 3600).unwrap(),
            TimeDelta::hours(16)
        );
        for bad in ["", "5", "5w", "-3h", "0m", "h"] {
            assert!(parse_duration(bad, 86_400).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_calendar_files() {
        for text in [
            "id = 'x'\ntime_zone = 'Mars/Base'",
            "id = 'x'\nworking_hours = [['09:00', '08:00']]",
            "id = 'x'\n[years.2026]\ndays_off = [{ from = '2026-13-01' }]",
            "id = 'x'\n[years.2026]\ndays_off = [{ from = '2026-01-01' }]\nextra_workdays = ['2026-01-01']",
            "id = 'x'\nbogus = 1",
        ] {
            assert!(Calendar::from_toml(text).is_err(), "{text}");
        }
    }

    fn instant() -> impl Strategy<Value = DateTime<Utc>> {
        // 2025-01-01 .. 2026-12-31
        (1_735_660_800i64..1_798_675_200).prop_map(|s| Utc.timestamp_opt(s, 0).unwrap())
    }

    fn amount() -> impl Strategy<Value = TimeDelta> {
        (0i64..30 * 86_400).prop_map(TimeDelta::seconds)
    }

    proptest! {
        #[test]
        fn adding_is_monotonic(start in instant(), a in amount(), b in amount()) {
            for c in [cn(), office()] {
                let (small, large) = if a <= b { (a, b) } else { (b, a) };
                prop_assert!(c.add_working(start, small).unwrap() <= c.add_working(start, large).unwrap());
            }
        }

        #[test]
        fn adding_is_additive(start in instant(), a in amount(), b in amount()) {
            for c in [cn(), office()] {
                let step = c.add_working(c.add_working(start, a).unwrap(), b).unwrap();
                let whole = c.add_working(start, a + b).unwrap();
                // Equal, except that a zero first step may stay in non-working time.
                if a > TimeDelta::zero() || b == TimeDelta::zero() {
                    prop_assert_eq!(step, whole);
                }
            }
        }

        #[test]
        fn never_ends_inside_non_working_time(start in instant(), a in (1i64..30 * 86_400).prop_map(TimeDelta::seconds)) {
            for c in [cn(), office()] {
                let end = c.add_working(start, a).unwrap();
                let date = end.with_timezone(&c.tz).date_naive();
                let inside_or_boundary = [date - Days::new(1), date].iter().any(|d| {
                    c.working_intervals(*d).iter().any(|(s, e)| *s < end && end <= *e)
                });
                prop_assert!(inside_or_boundary, "{} ends outside working time", end);
            }
        }

        #[test]
        fn between_inverts_adding(start in instant(), a in amount()) {
            for c in [cn(), office()] {
                let end = c.add_working(start, a).unwrap();
                prop_assert_eq!(c.working_between(start, end), a);
            }
        }
    }
}
