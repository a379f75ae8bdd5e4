//! The live event stream's two rules: how far the stream may safely read (the high-water
//! mark), and who may see an event.
//!
//! Event ids come from a sequence. On PostgreSQL a writer that took id 7 may commit after a
//! writer that took id 8, so a reader that has seen 8 cannot simply continue from 8: it would
//! skip 7. The stream therefore advances only through ids it has seen or knows are final.
//!
//! A missing id is final once its holder has ended. The holder took its transaction id
//! before its event id (the id's default does that), and that was before the higher id it
//! precedes became visible. So when the reader first sees a gap it asks the database for a
//! fresh transaction id, the *bound*: the holder's id is below it. Once a snapshot taken after
//! the bound committed (its `xmax` is above the bound) lists no running transaction below
//! the bound, the holder has ended: the missing id is visible now, or was rolled back and
//! never appears. A snapshot's running list leaves out transactions at or above its `xmax`
//! (one past the newest *completed* transaction), which is why a bound is needed at all.
//! SQLite has one writer at a time, so every gap there is final at once.

use crate::domain::{Actor, Role};
use chrono::{DateTime, TimeDelta, Utc};

/// What a reader's database snapshot says about concurrent writers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snapshot {
    /// One writer at a time (SQLite): an id missing below a visible one never appears.
    Serial,
    /// PostgreSQL: `xmax` and the transaction ids below it still running.
    Concurrent { xmax: u64, running: Vec<u64> },
}

impl Snapshot {
    /// Parses PostgreSQL's `pg_current_snapshot()` text, `xmin:xmax:xip,xip,…`.
    pub fn parse_pg(text: &str) -> Option<Snapshot> {
        let mut parts = text.trim().splitn(3, ':');
        let _xmin: u64 = parts.next()?.parse().ok()?;
        let xmax: u64 = parts.next()?.parse().ok()?;
        let running = match parts.next()? {
            "" => Vec::new(),
            list => list
                .split(',')
                .map(|x| x.parse().ok())
                .collect::<Option<Vec<u64>>>()?,
        };
        Some(Snapshot::Concurrent { xmax, running })
    }

    /// Whether every transaction with an id below `bound` had ended when this snapshot was
    /// taken (always on SQLite).
    pub fn settled_below(&self, bound: u64) -> bool {
        match self {
            Snapshot::Serial => true,
            Snapshot::Concurrent { xmax, running } => {
                *xmax > bound && running.iter().all(|x| *x >= bound)
            }
        }
    }
}

/// A gap the stream is waiting on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Gap {
    /// The stream position when the gap was seen (the gap starts just after it).
    after: i64,
    /// A transaction id taken after the gap was seen: its holder's id is below it.
    bound: Option<u64>,
    seen_at: DateTime<Utc>,
}

/// The stream's position: every event id up to it has been delivered or is final.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Watermark {
    position: i64,
    gap: Option<Gap>,
    max_gap_wait: TimeDelta,
}

/// What one `advance` did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Advanced {
    /// How many of the given ids may be delivered now (a prefix).
    pub deliver: usize,
    /// Ids skipped because they stayed missing past `max_gap_wait`.
    pub skipped_after_timeout: Vec<(i64, i64)>,
    /// The stream waits on a gap that has no bound yet: take a fresh transaction id and pass
    /// it to `bound_gap` before the next read.
    pub needs_bound: bool,
}

impl Watermark {
    pub fn new(position: i64, max_gap_wait: TimeDelta) -> Watermark {
        Watermark {
            position,
            gap: None,
            max_gap_wait,
        }
    }

    pub fn position(&self) -> i64 {
        self.position
    }

    /// Whether the stream is holding back behind a gap.
    pub fn waiting(&self) -> bool {
        self.gap.is_some()
    }

    /// Records the bound of the gap the stream waits on (taken after the gap was seen).
    pub fn bound_gap(&mut self, bound: u64) {
        if let Some(gap) = self.gap.as_mut() {
            gap.bound.get_or_insert(bound);
        }
    }

    /// Takes the visible ids above the position, ascending, read in one snapshot; returns
    /// how many of them (a prefix) may be delivered, and moves the position past them.
    pub fn advance(&mut self, ids: &[i64], snapshot: &Snapshot, now: DateTime<Utc>) -> Advanced {
        let mut done = Advanced::default();
        for &id in ids {
            if id <= self.position {
                continue; // cannot happen with a correct query; never deliver twice
            }
            if id != self.position + 1 && !self.gap_is_final(snapshot, now, &mut done, id) {
                if self.gap.as_ref().map(|g| g.after) != Some(self.position) {
                    self.gap = Some(Gap {
                        after: self.position,
                        bound: None,
                        seen_at: now,
                    });
                }
                done.needs_bound = self.gap.as_ref().is_some_and(|g| g.bound.is_none());
                return done;
            }
            self.position = id;
            self.gap = None;
            done.deliver += 1;
        }
        done
    }

    fn gap_is_final(
        &self,
        snapshot: &Snapshot,
        now: DateTime<Utc>,
        done: &mut Advanced,
        next_visible: i64,
    ) -> bool {
        if *snapshot == Snapshot::Serial {
            return true;
        }
        let Some(gap) = self.gap.as_ref().filter(|g| g.after == self.position) else {
            return false; // first sight: a bound is needed
        };
        if gap.bound.is_some_and(|b| snapshot.settled_below(b)) {
            return true;
        }
        if now - gap.seen_at >= self.max_gap_wait {
            done.skipped_after_timeout
                .push((self.position + 1, next_visible - 1));
            return true;
        }
        false
    }
}

/// Who an event concerns, for scoping streams.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventAudience {
    pub area_code: String,
    /// The crews the event concerns: the order's crew now, and any crew the event names
    /// (dispatched to, taken from, returned by, or notified).
    pub crew_ids: Vec<String>,
}

impl EventAudience {
    /// Event data keys that name a crew.
    pub const CREW_KEYS: [&'static str; 3] = ["crew_id", "previous_crew_id", "notify_crew_id"];

    pub fn new(
        area_code: String,
        assigned_crew_id: Option<String>,
        data: &serde_json::Value,
    ) -> EventAudience {
        let mut crew_ids: Vec<String> = assigned_crew_id.into_iter().collect();
        for key in Self::CREW_KEYS {
            if let Some(c) = data.get(key).and_then(|v| v.as_str()) {
                if !crew_ids.iter().any(|x| x == c) {
                    crew_ids.push(c.to_owned());
                }
            }
        }
        EventAudience {
            area_code,
            crew_ids,
        }
    }

    /// Crew users see events that concern their crew; scoped users their areas' events.
    pub fn visible_to(&self, actor: &Actor) -> bool {
        match actor.role {
            Role::Crew => actor
                .crew_id
                .as_ref()
                .is_some_and(|c| self.crew_ids.contains(c)),
            _ => actor.sees_area(&self.area_code),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap() + TimeDelta::seconds(secs)
    }

    /// A snapshot with `xmax` 1000 and these transactions running.
    fn running(xs: &[u64]) -> Snapshot {
        Snapshot::Concurrent {
            xmax: 1000,
            running: xs.to_vec(),
        }
    }

    fn wm(position: i64) -> Watermark {
        Watermark::new(position, TimeDelta::seconds(30))
    }

    #[test]
    fn parses_pg_snapshots() {
        assert_eq!(
            Snapshot::parse_pg("10:20:12,15"),
            Some(Snapshot::Concurrent {
                xmax: 20,
                running: vec![12, 15]
            })
        );
        assert_eq!(
            Snapshot::parse_pg("10:10:"),
            Some(Snapshot::Concurrent {
                xmax: 10,
                running: vec![]
            })
        );
        assert_eq!(Snapshot::parse_pg("garbage"), None);
        assert_eq!(Snapshot::parse_pg("1:2:x"), None);
    }

    #[test]
    fn settled_below_a_bound() {
        assert!(running(&[500]).settled_below(400));
        assert!(!running(&[300, 500]).settled_below(400));
        // a snapshot from before the bound committed cannot tell
        let early = Snapshot::Concurrent {
            xmax: 400,
            running: vec![],
        };
        assert!(!early.settled_below(400));
        assert!(Snapshot::Serial.settled_below(u64::MAX));
    }

    #[test]
    fn contiguous_ids_are_delivered() {
        let mut w = wm(4);
        let done = w.advance(&[5, 6, 7], &running(&[99]), t(0));
        assert_eq!(done.deliver, 3);
        assert!(!done.needs_bound);
        assert_eq!(w.position(), 7);
        assert!(!w.waiting());
    }

    #[test]
    fn a_gap_holds_back_until_the_writers_below_its_bound_end() {
        let mut w = wm(4);
        // 5 is missing: stop before 6 and ask for a bound, even with nothing listed as
        // running (the holder may be at or above xmax, so not listed)
        let done = w.advance(&[6, 7], &running(&[]), t(0));
        assert_eq!(done.deliver, 0);
        assert!(done.needs_bound);
        w.bound_gap(100);
        // 50 (below the bound) still runs: wait; no new bound needed
        let done = w.advance(&[6, 7], &running(&[50, 120]), t(1));
        assert_eq!(done.deliver, 0);
        assert!(!done.needs_bound);
        // 5 committed: everything flows
        assert_eq!(w.advance(&[5, 6, 7], &running(&[120]), t(2)).deliver, 3);
        assert_eq!(w.position(), 7);
    }

    #[test]
    fn a_rolled_back_id_is_skipped_once_the_writers_below_the_bound_end() {
        let mut w = wm(4);
        assert_eq!(w.advance(&[6], &running(&[50]), t(0)).deliver, 0);
        w.bound_gap(100);
        // 50 ended (rolled back: 5 never appears); 120 started after the bound
        let done = w.advance(&[6], &running(&[120]), t(1));
        assert_eq!(done.deliver, 1);
        assert!(done.skipped_after_timeout.is_empty());
        assert_eq!(w.position(), 6);
    }

    #[test]
    fn a_snapshot_older_than_the_bound_does_not_settle_a_gap() {
        let mut w = wm(4);
        w.advance(&[6], &running(&[]), t(0));
        w.bound_gap(2000);
        assert_eq!(w.advance(&[6], &running(&[]), t(1)).deliver, 0);
    }

    #[test]
    fn a_gap_held_past_the_limit_is_skipped_and_reported() {
        let mut w = wm(4);
        assert_eq!(w.advance(&[8], &running(&[50]), t(0)).deliver, 0);
        w.bound_gap(100);
        assert_eq!(w.advance(&[8], &running(&[50]), t(29)).deliver, 0);
        let done = w.advance(&[8], &running(&[50]), t(30));
        assert_eq!(done.deliver, 1);
        assert_eq!(done.skipped_after_timeout, vec![(5, 7)]);
    }

    #[test]
    fn a_second_gap_needs_its_own_bound() {
        let mut w = wm(0);
        assert_eq!(w.advance(&[1, 3], &running(&[10]), t(0)).deliver, 1);
        assert_eq!(w.position(), 1);
        w.bound_gap(20);
        // 10 ended: the gap at 2 is final; a new gap at 4 needs a new bound
        let done = w.advance(&[3, 5], &running(&[30]), t(1));
        assert_eq!(done.deliver, 1);
        assert!(done.needs_bound);
        assert_eq!(w.position(), 3);
        w.bound_gap(40);
        assert_eq!(w.advance(&[5], &running(&[30]), t(2)).deliver, 0);
        assert_eq!(w.advance(&[5], &running(&[45]), t(3)).deliver, 1);
    }

    #[test]
    fn sqlite_gaps_are_final() {
        let mut w = wm(0);
        assert_eq!(w.advance(&[2, 5], &Snapshot::Serial, t(0)).deliver, 2);
        assert_eq!(w.position(), 5);
    }

    #[test]
    fn never_delivers_an_id_twice() {
        let mut w = wm(5);
        assert_eq!(w.advance(&[3, 5, 6], &Snapshot::Serial, t(0)).deliver, 1);
        assert_eq!(w.position(), 6);
    }

    fn actor(role: Role, crew: Option<&str>, areas: &[&str]) -> Actor {
        Actor {
            id: "u".into(),
            username: "u".into(),
            role,
            crew_id: crew.map(Into::into),
            area_codes: areas.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn audiences() {
        let reassigned = EventAudience::new(
            "A".into(),
            Some("c2".into()),
            &serde_json::json!({"crew_id": "c2", "previous_crew_id": "c1"}),
        );
        assert!(reassigned.visible_to(&actor(Role::Crew, Some("c1"), &[])));
        assert!(reassigned.visible_to(&actor(Role::Crew, Some("c2"), &[])));
        assert!(!reassigned.visible_to(&actor(Role::Crew, Some("c3"), &[])));
        assert!(!reassigned.visible_to(&actor(Role::Crew, None, &[])));
        assert!(reassigned.visible_to(&actor(Role::Dispatcher, None, &["A"])));
        assert!(!reassigned.visible_to(&actor(Role::Dispatcher, None, &["B"])));
        assert!(reassigned.visible_to(&actor(Role::Supervisor, None, &[])));
        assert!(reassigned.visible_to(&actor(Role::Agent, None, &[])));
        let urge = EventAudience::new(
            "A".into(),
            None,
            &serde_json::json!({"notify_crew_id": "c9"}),
        );
        assert_eq!(urge.crew_ids, vec!["c9".to_owned()]);
    }
}
