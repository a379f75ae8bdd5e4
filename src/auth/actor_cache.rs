//! Who a token's user is, remembered for a moment: every request names its user, and reading
//! the user (and expanding a scope over the area tree) on each one cost a database round trip
//! and a thread hand-off per request.
//!
//! An entry lives `auth.user_cache_ms` (default 2 s; 0 turns the cache off). This instance
//! forgets every entry when a user or an area is written through it, so a deactivation or a
//! scope change applies at once here; another instance behind the same load balancer applies
//! it within that time at most.

use crate::domain::Actor;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept before expired ones are swept (a centre has hundreds of users).
const SWEEP_ABOVE: usize = 4096;

pub struct ActorCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Actor)>>,
}

impl ActorCache {
    pub fn new(ttl: Duration) -> ActorCache {
        ActorCache {
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The user's actor if read less than the lifetime before `now`.
    pub fn get(&self, user_id: &str, now: Instant) -> Option<Actor> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries
            .get(user_id)
            .filter(|(at, _)| now.saturating_duration_since(*at) < self.ttl)
            .map(|(_, actor)| actor.clone())
    }

    /// Remembers an actor read from the database at `at` (taken before the read began, so
    /// a write that landed during it is never hidden for longer than the lifetime).
    pub fn put(&self, actor: Actor, at: Instant) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= SWEEP_ABOVE {
            let ttl = self.ttl;
            entries.retain(|_, (t, _)| at.saturating_duration_since(*t) < ttl);
        }
        entries.insert(actor.id.clone(), (at, actor));
    }

    /// Forgets every entry: a user or an area changed.
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Role;

    fn actor(id: &str) -> Actor {
        Actor {
            id: id.into(),
            username: id.into(),
            role: Role::Agent,
            crew_id: None,
            area_codes: Vec::new(),
        }
    }

    #[test]
    fn an_entry_lives_its_lifetime_and_no_longer() {
        let cache = ActorCache::new(Duration::from_secs(2));
        let t0 = Instant::now();
        cache.put(actor("u1"), t0);
        assert!(cache.get("u1", t0 + Duration::from_millis(1999)).is_some());
        assert!(cache.get("u1", t0 + Duration::from_secs(2)).is_none());
        assert!(cache.get("u2", t0).is_none());
    }

    #[test]
    fn clear_forgets_everyone_and_zero_keeps_nothing() {
        let cache = ActorCache::new(Duration::from_secs(2));
        let t0 = Instant::now();
        cache.put(actor("u1"), t0);
        cache.clear();
        assert!(cache.get("u1", t0).is_none());
        let off = ActorCache::new(Duration::ZERO);
        off.put(actor("u1"), t0);
        assert!(off.get("u1", t0).is_none());
    }

    #[test]
    fn a_full_cache_sweeps_expired_entries() {
        let cache = ActorCache::new(Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..SWEEP_ABOVE {
            cache.put(actor(&format!("old{i}")), t0);
        }
        let later = t0 + Duration::from_secs(5);
        cache.put(actor("new"), later);
        let len = cache.entries.lock().unwrap().len();
        assert_eq!(len, 1);
        assert!(cache.get("new", later).is_some());
    }
}
