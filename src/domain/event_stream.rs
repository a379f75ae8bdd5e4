//! The live event stream's two rules: how far the stream may safely read (the high-water
//! mark), and who may see an event.
//!
//! Event ids come from a sequence. On PostgreSQL a writer that took id 7 may commit after a
//! writer that took id 8, so a reader that has seen 8 cannot simply continue from 8: it would
//! skip 7. The stream therefore advances only through ids it has seen or knows are final.
//! A missing id is final once every transaction that could hold it has ended: the writer
//! takes its transaction id before its event id (the id's default does that), so a holder
//! was running when the gap was first seen, and it is in that snapshot's list of running
//! transactions. Once none of them is still running, the missing id either is visible or
//! was rolled back for good. SQLite has one writer at a time, so every gap there is final.

use crate::domain::{Actor, Role};
use chrono::{DateTime, TimeDelta, Utc};

/// What a reader's database snapshot says about concurrent writers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Snapshot {
    /// One writer at a time (SQLite): an id missing below a visible one never appears.
    Serial,
    /// PostgreSQL: the transaction ids still running when the snapshot was taken.
    Concurrent { running: Vec<u64> },
}

impl Snapshot {
    /// Parses PostgreSQL's `pg_current_snapshot()` text, `xmin:xmax:xip,xip,…`.
    pub fn parse_pg(text: &str) -> Option<Snapshot> {
        let mut parts = text.trim().splitn(3, ':');
        let _xmin: u64 = parts.next()?.parse().ok()?;
        let _xmax: u64 = parts.next()?.parse().ok()?;
        let running = match parts.next()? {
            "" => Vec::new(),
            list => list
                .split(',')
                .map(|x| x.parse().ok())
                .collect::<Option<Vec<u64>>>()?,
        };
        Some(Snapshot::Concurrent { running })
    }

    /// Whether a transaction that ran in `earlier` still runs in this later snapshot.
    pub fn still_running_from(&self, earlier: &Snapshot) -> bool {
        match (earlier, self) {
            (Snapshot::Concurrent { running: before }, Snapshot::Concurrent { running: now }) => {
                before.iter().any(|x| now.contains(x))
            }
            _ => false,
        }
    }
}

/// A gap the stream is waiting on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Gap {
    /// The stream position when the gap was seen (the gap starts just after it).
    after: i64,
    /// Transactions running then: the gap is final when none of them runs any more.
    waiting_on: Vec<u64>,
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
                        waiting_on: match snapshot {
                            Snapshot::Serial => Vec::new(),
                            Snapshot::Concurrent { running } => running.clone(),
                        },
                        seen_at: now,
                    });
                }
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
        let Snapshot::Concurrent { running } = snapshot else {
            return true;
        };
        let Some(gap) = self.gap.as_ref().filter(|g| g.after == self.position) else {
            // First sight: even if nothing runs now, a holder may have been running when
            // the id was taken; wait for the next snapshot unless none was running.
            return running.is_empty();
        };
        if !gap.waiting_on.iter().any(|x| running.contains(x)) {
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

    fn running(xs: &[u64]) -> Snapshot {
        Snapshot::Concurrent {
            running: xs.to_vec(),
        }
    }

    fn wm(position: i64) -> Watermark {
        Watermark::new(position, TimeDelta::seconds(30))
    }

    #[test]
    fn parses_pg_snapshots() {
        assert_eq!(Snapshot::parse_pg("10:20:12,15"), Some(running(&[12, 15])));
        assert_eq!(Snapshot::parse_pg("10:10:"), Some(running(&[])));
        assert_eq!(Snapshot::parse_pg("garbage"), None);
        assert_eq!(Snapshot::parse_pg("1:2:x"), None);
    }

    #[test]
    fn writers_still_running() {
        assert!(running(&[3, 4]).still_running_from(&running(&[1, 4])));
        assert!(!running(&[3, 5]).still_running_from(&running(&[1, 4])));
        assert!(!Snapshot::Serial.still_running_from(&Snapshot::Serial));
    }

    #[test]
    fn contiguous_ids_are_delivered() {
        let mut w = wm(4);
        assert_eq!(w.advance(&[5, 6, 7], &running(&[99]), t(0)).deliver, 3);
        assert_eq!(w.position(), 7);
        assert!(!w.waiting());
    }

    #[test]
    fn a_gap_holds_back_until_its_writers_end() {
        let mut w = wm(4);
        // 5 is missing while transaction 50 runs: stop before 6
        assert_eq!(w.advance(&[6, 7], &running(&[50, 51]), t(0)).deliver, 0);
        assert!(w.waiting());
        // 50 still runs: keep waiting, even though 51 ended
        assert_eq!(w.advance(&[6, 7], &running(&[50, 60]), t(1)).deliver, 0);
        // 5 committed: everything flows
        assert_eq!(w.advance(&[5, 6, 7], &running(&[60]), t(2)).deliver, 3);
        assert_eq!(w.position(), 7);
    }

    #[test]
    fn a_rolled_back_id_is_skipped_once_its_writers_end() {
        let mut w = wm(4);
        assert_eq!(w.advance(&[6], &running(&[50]), t(0)).deliver, 0);
        // 50 ended (rolled back: 5 never appears); 70 started later and cannot hold 5
        let done = w.advance(&[6], &running(&[70]), t(1));
        assert_eq!(done.deliver, 1);
        assert!(done.skipped_after_timeout.is_empty());
        assert_eq!(w.position(), 6);
    }

    #[test]
    fn a_gap_with_no_writer_running_is_final_at_once() {
        let mut w = wm(4);
        assert_eq!(w.advance(&[6], &running(&[]), t(0)).deliver, 1);
    }

    #[test]
    fn a_gap_held_past_the_limit_is_skipped_and_reported() {
        let mut w = wm(4);
        assert_eq!(w.advance(&[8], &running(&[50]), t(0)).deliver, 0);
        assert_eq!(w.advance(&[8], &running(&[50]), t(29)).deliver, 0);
        let done = w.advance(&[8], &running(&[50]), t(30));
        assert_eq!(done.deliver, 1);
        assert_eq!(done.skipped_after_timeout, vec![(5, 7)]);
    }

    #[test]
    fn a_second_gap_waits_on_its_own_writers() {
        let mut w = wm(0);
        assert_eq!(w.advance(&[1, 3], &running(&[10]), t(0)).deliver, 1);
        assert_eq!(w.position(), 1);
        // the gap at 2 was seen with 10 running; 10 ends, 11 runs
        assert_eq!(w.advance(&[3, 5], &running(&[11]), t(1)).deliver, 1);
        assert_eq!(w.position(), 3);
        // new gap at 4 seen with 11 running: wait for 11
        assert_eq!(w.advance(&[5], &running(&[11]), t(2)).deliver, 0);
        assert_eq!(w.advance(&[5], &running(&[]), t(3)).deliver, 1);
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
