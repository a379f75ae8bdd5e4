//! A stage timer's clock: its deadline given the calendar, the target and the time it was
//! held (suspended, or inside a force-majeure window), and its segments for "why breached".
//! Pure.

use super::calendar::Calendar;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Why a timer's clock was held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoldKind {
    /// The order was suspended.
    Paused,
    /// A force-majeure window of the order's area.
    Excused,
}

/// An interval during which the clock does not run; `to: None` is still open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub kind: HoldKind,
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
}

/// The union of the holds as disjoint sorted intervals (open-ended last).
fn merged(holds: &[Hold]) -> Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> {
    let mut v: Vec<_> = holds.iter().map(|h| (h.from, h.to)).collect();
    v.sort_by_key(|(from, _)| *from);
    let mut out: Vec<(DateTime<Utc>, Option<DateTime<Utc>>)> = Vec::new();
    for (from, to) in v {
        if let Some(last) = out.last_mut() {
            match last.1 {
                None => continue,
                Some(end) if from <= end => {
                    last.1 = to.map(|t| end.max(t));
                    continue;
                }
                _ => {}
            }
        }
        out.push((from, to));
    }
    out
}

/// The instant at which `amount` of unheld working time has run since `start`; `None` while
/// an open hold stops the clock before then (or the calendar has no working time ahead).
pub fn deadline(
    cal: &Calendar,
    start: DateTime<Utc>,
    amount: TimeDelta,
    holds: &[Hold],
) -> Option<DateTime<Utc>> {
    let mut cursor = start;
    let mut remaining = amount;
    for (from, to) in merged(holds) {
        if to.is_some_and(|t| t <= cursor) {
            continue;
        }
        let candidate = cal.add_working(cursor, remaining)?;
        if from >= candidate {
            return Some(candidate);
        }
        if from > cursor {
            remaining -= cal.working_between(cursor, from);
        }
        match to {
            None => return None,
            Some(t) => cursor = cursor.max(t),
        }
    }
    cal.add_working(cursor, remaining)
}

/// Working time of the holds of one kind inside `[start, until]`.
pub fn held(
    cal: &Calendar,
    start: DateTime<Utc>,
    until: DateTime<Utc>,
    holds: &[Hold],
    kind: HoldKind,
) -> TimeDelta {
    let of_kind: Vec<Hold> = holds.iter().filter(|h| h.kind == kind).cloned().collect();
    merged(&of_kind)
        .into_iter()
        .map(|(from, to)| {
            let a = from.max(start);
            let b = to.unwrap_or(until).min(until);
            cal.working_between(a, b)
        })
        .sum()
}

/// One stretch of a timer's life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Segment {
    /// running | paused | excused | off_hours
    pub kind: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// Splits `[start, end)` into running, paused, excused and off-hours stretches (excused wins
/// over paused where they overlap; both win over off-hours).
pub fn segments(
    cal: &Calendar,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    holds: &[Hold],
) -> Vec<Segment> {
    let mut cuts = vec![start, end];
    for h in holds {
        for t in [Some(h.from), h.to].into_iter().flatten() {
            if t > start && t < end {
                cuts.push(t);
            }
        }
    }
    let mut date = start.with_timezone(&cal.tz).date_naive() - chrono::Days::new(1);
    let last = end.with_timezone(&cal.tz).date_naive();
    while date <= last && cuts.len() < 10_000 {
        for (a, b) in cal.working_intervals(date) {
            for t in [a, b] {
                if t > start && t < end {
                    cuts.push(t);
                }
            }
        }
        date = date + chrono::Days::new(1);
    }
    cuts.sort();
    cuts.dedup();
    let mut out: Vec<Segment> = Vec::new();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let covered = |kind: HoldKind| {
            holds
                .iter()
                .any(|h| h.kind == kind && h.from <= a && h.to.is_none_or(|t| t >= b))
        };
        let kind = if covered(HoldKind::Excused) {
            "excused"
        } else if covered(HoldKind::Paused) {
            "paused"
        } else if cal.working_between(a, b) == b - a {
            "running"
        } else {
            "off_hours"
        };
        match out.last_mut() {
            Some(prev) if prev.kind == kind && prev.to == a => prev.to = b,
            _ => out.push(Segment {
                kind: kind.to_owned(),
                from: a,
                to: b,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cn() -> Calendar {
        Calendar::from_toml(include_str!("../../config/calendars/cn.toml")).unwrap()
    }

    fn h24() -> Calendar {
        Calendar::from_toml(include_str!("../../config/calendars/24x7.toml")).unwrap()
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn hold(kind: HoldKind, from: &str, to: Option<&str>) -> Hold {
        Hold {
            kind,
            from: at(from),
            to: to.map(at),
        }
    }

    #[test]
    fn holds_push_the_deadline_by_their_working_time() {
        let c = h24();
        let start = at("2026-11-22T10:00:00+08:00");
        assert_eq!(
            deadline(&c, start, TimeDelta::minutes(45), &[]).unwrap(),
            at("2026-11-22T10:45:00+08:00")
        );
        let paused = [hold(
            HoldKind::Paused,
            "2026-11-22T10:10:00+08:00",
            Some("2026-11-22T10:40:00+08:00"),
        )];
        assert_eq!(
            deadline(&c, start, TimeDelta::minutes(45), &paused).unwrap(),
            at("2026-11-22T11:15:00+08:00")
        );
        let open = [hold(HoldKind::Paused, "2026-11-22T10:10:00+08:00", None)];
        assert_eq!(deadline(&c, start, TimeDelta::minutes(45), &open), None);
        // a hold that starts after the deadline changes nothing
        let late = [hold(HoldKind::Excused, "2026-11-22T11:00:00+08:00", None)];
        assert_eq!(
            deadline(&c, start, TimeDelta::minutes(45), &late).unwrap(),
            at("2026-11-22T10:45:00+08:00")
        );
        // overlapping holds count once
        let both = [
            hold(
                HoldKind::Paused,
                "2026-11-22T10:10:00+08:00",
                Some("2026-11-22T10:40:00+08:00"),
            ),
            hold(
                HoldKind::Excused,
                "2026-11-22T10:30:00+08:00",
                Some("2026-11-22T10:50:00+08:00"),
            ),
        ];
        assert_eq!(
            deadline(&c, start, TimeDelta::minutes(45), &both).unwrap(),
            at("2026-11-22T11:25:00+08:00")
        );
        assert_eq!(
            held(
                &c,
                start,
                at("2026-11-22T12:00:00+08:00"),
                &both,
                HoldKind::Paused
            ),
            TimeDelta::minutes(30)
        );
        assert_eq!(
            held(
                &c,
                start,
                at("2026-11-22T12:00:00+08:00"),
                &both,
                HoldKind::Excused
            ),
            TimeDelta::minutes(20)
        );
    }

    #[test]
    fn a_hold_on_a_holiday_costs_no_working_time() {
        let c = cn();
        let start = at("2026-09-30T10:00:00+08:00");
        let holiday_hold = [hold(
            HoldKind::Excused,
            "2026-10-02T00:00:00+08:00",
            Some("2026-10-05T00:00:00+08:00"),
        )];
        let five = TimeDelta::seconds(5 * c.seconds_per_day());
        assert_eq!(
            deadline(&c, start, five, &holiday_hold).unwrap(),
            at("2026-10-13T10:00:00+08:00")
        );
    }

    #[test]
    fn segments_say_why() {
        let c = h24();
        let start = at("2026-11-22T10:00:00+08:00");
        let holds = [hold(
            HoldKind::Paused,
            "2026-11-22T10:10:00+08:00",
            Some("2026-11-22T10:40:00+08:00"),
        )];
        let s = segments(&c, start, at("2026-11-22T11:00:00+08:00"), &holds);
        let kinds: Vec<&str> = s.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(kinds, ["running", "paused", "running"]);
        let s = segments(
            &cn(),
            at("2026-10-09T20:00:00+08:00"),
            at("2026-10-12T02:00:00+08:00"),
            &[],
        );
        let kinds: Vec<&str> = s.iter().map(|s| s.kind.as_str()).collect();
        assert_eq!(
            kinds,
            ["running", "off_hours", "running"],
            "Sunday 10-11 is off, Saturday 10-10 worked"
        );
    }

    proptest! {
        /// More held time never brings a deadline earlier.
        #[test]
        fn holds_never_make_a_deadline_earlier(start in 1_780_000_000i64..1_790_000_000, minutes in 1i64..10_000, from in 0i64..20_000, len in 0i64..20_000) {
            let c = cn();
            let start = DateTime::from_timestamp(start, 0).unwrap();
            let amount = TimeDelta::minutes(minutes);
            let plain = deadline(&c, start, amount, &[]).unwrap();
            let h = Hold { kind: HoldKind::Excused, from: start + TimeDelta::minutes(from), to: Some(start + TimeDelta::minutes(from + len)) };
            let held = deadline(&c, start, amount, std::slice::from_ref(&h)).unwrap();
            prop_assert!(held >= plain);
            prop_assert_eq!(c.working_between(start, held) - super::held(&c, start, held, &[h], HoldKind::Excused), amount);
        }
    }
}
