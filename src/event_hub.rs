//! The instance's event hub: one loop reads newly committed work-order events from the
//! database (so events written by every instance arrive), advances the safe high-water mark
//! (domain::event_stream), and fans the events out to this instance's streams. Streams hold
//! no database connection: they read history in short pages and then follow the hub.
//!
//! Not a background job of `jobs/`: it holds state the streams subscribe to. Like the jobs it
//! takes its time from the caller (`run_once(now)`; the loop reads the app's clock).

use crate::clock::Clock;
use crate::db::event_stream as store;
use crate::db::events::EventRow;
use crate::db::{DbConnection, DbPool};
use crate::domain::event_stream::{EventAudience, Snapshot, Watermark};
use crate::errors::AppError;
use chrono::{DateTime, TimeDelta, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, watch};

/// How many events one read takes.
pub const BATCH: i64 = 1000;

/// One event as the streams receive it: already framed for Server-Sent Events.
#[derive(Debug)]
pub struct LiveEvent {
    pub id: i64,
    pub audience: EventAudience,
    pub frame: actix_web::web::Bytes,
}

/// Frames an event row for the wire (the API layer decides the JSON shape).
pub type Framer = fn(&EventRow) -> actix_web::web::Bytes;

pub struct EventHub {
    events: broadcast::Sender<Arc<LiveEvent>>,
    /// The high-water mark; None until the hub has found a safe starting point.
    position: watch::Sender<Option<i64>>,
    closing: watch::Sender<bool>,
    /// Bumped to make every stream write at once, so that streams whose client has gone
    /// find out (a server learns of a vanished client only by writing to it).
    probes: watch::Sender<u64>,
    /// Bumped whenever a stream of this instance has ended and deregistered.
    ended_streams: watch::Sender<u64>,
    /// None until the hub has found a safe starting point.
    watermark: tokio::sync::Mutex<Option<Watermark>>,
    framer: Framer,
}

impl EventHub {
    pub fn new(capacity: usize, framer: Framer) -> EventHub {
        EventHub {
            events: broadcast::channel(capacity).0,
            position: watch::channel(None).0,
            closing: watch::channel(false).0,
            probes: watch::channel(0).0,
            ended_streams: watch::channel(0).0,
            watermark: tokio::sync::Mutex::new(None),
            framer,
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.events.subscribe()
    }

    /// The position up to which every event id is final and has been broadcast.
    pub fn position(&self) -> Option<i64> {
        *self.position.borrow()
    }

    /// Waits (up to `timeout`) until the hub has a position.
    pub async fn ready(&self, timeout: Duration) -> Option<i64> {
        let mut rx = self.position.subscribe();
        let found = match actix_web::rt::time::timeout(timeout, rx.wait_for(Option::is_some)).await
        {
            Ok(Ok(p)) => *p,
            _ => None,
        };
        found
    }

    /// Signals streams and the loop to end (the instance is draining).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    pub fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// Asks every stream of this instance to write now.
    pub fn probe(&self) {
        self.probes.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn probes(&self) -> watch::Receiver<u64> {
        self.probes.subscribe()
    }

    /// Records that a stream ended and gave up its registration.
    pub fn stream_ended(&self) {
        self.ended_streams.send_modify(|n| *n = n.wrapping_add(1));
    }

    pub fn ended_streams(&self) -> watch::Receiver<u64> {
        self.ended_streams.subscribe()
    }

    pub fn is_closing(&self) -> bool {
        *self.closing.borrow()
    }

    /// Polls every `period` until closed.
    pub async fn run(
        self: Arc<Self>,
        pool: DbPool,
        clock: Arc<dyn Clock>,
        period: Duration,
        max_gap_wait: TimeDelta,
    ) {
        let mut closing = self.closing();
        let watermark = loop {
            if *closing.borrow() {
                return;
            }
            match self
                .start(&pool, clock.as_ref(), period, max_gap_wait)
                .await
            {
                Ok(w) => break w,
                Err(e) => {
                    log::warn!("event hub: cannot start yet: {e}");
                    actix_web::rt::time::sleep(period).await;
                }
            }
        };
        let position = watermark.position();
        *self.watermark.lock().await = Some(watermark);
        self.position.send_replace(Some(position));
        log::info!("event hub: streaming after event {position}");
        loop {
            let more = match self.run_once(&pool, clock.now()).await {
                Ok(more) => more,
                Err(e) => {
                    log::warn!("event hub: {e}");
                    false
                }
            };
            if !more {
                tokio::select! {
                    _ = actix_web::rt::time::sleep(period) => {}
                    _ = closing.changed() => {}
                }
            }
            if *closing.borrow() {
                break;
            }
        }
        log::info!("event hub stopped");
    }

    /// One read of new events (what the loop does every period; tests call it to move the
    /// hub on without waiting). `now` ages the gaps the read finds. True when more is waiting;
    /// false before the hub has started.
    pub async fn run_once(&self, pool: &DbPool, now: DateTime<Utc>) -> Result<bool, AppError> {
        let mut guard = self.watermark.lock().await;
        match guard.as_mut() {
            Some(watermark) => self.poll(pool, watermark, now).await,
            None => Ok(false),
        }
    }

    /// Finds a safe start: the newest id, once every writer that could hold a lower id (one
    /// whose transaction id is below a bound taken after the read) has ended.
    async fn start(
        &self,
        pool: &DbPool,
        clock: &dyn Clock,
        period: Duration,
        max_gap_wait: TimeDelta,
    ) -> Result<Watermark, AppError> {
        let (_, newest) = pool.run(store::newest).await?;
        if let Some(bound) = pool.run(store::new_transaction_id).await? {
            let started = clock.now();
            while !pool
                .run(store::current_snapshot)
                .await?
                .settled_below(bound)
                && clock.now() - started < max_gap_wait
                && !self.is_closing()
            {
                actix_web::rt::time::sleep(period).await;
            }
            if clock.now() - started >= max_gap_wait {
                log::warn!(
                    "event hub: writers older than the start stayed open past the gap limit; an event id at or below {newest} they commit later is not streamed"
                );
            }
        }
        Ok(Watermark::new(newest, max_gap_wait))
    }

    /// One read; true when more is waiting (the batch was full and nothing held it back, or
    /// a gap just got its bound and can be checked at once).
    async fn poll(
        &self,
        pool: &DbPool,
        watermark: &mut Watermark,
        now: DateTime<Utc>,
    ) -> Result<bool, AppError> {
        let after = watermark.position();
        let framer = self.framer;
        let (snapshot, mut rows): (Snapshot, Vec<EventRow>) = pool
            .run(move |c| store::read_after(c, after, BATCH))
            .await?;
        let full = rows.len() as i64 == BATCH;
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        // Advance a copy: the position moves only once the events are on their way.
        let mut next = watermark.clone();
        let advanced = next.advance(&ids, &snapshot, now);
        if advanced.needs_bound {
            // Without a bound the gap stays unbounded (and keeps its age toward the limit);
            // the next poll asks again.
            match pool.run(store::new_transaction_id).await {
                Ok(Some(bound)) => next.bound_gap(bound),
                Ok(None) => {}
                Err(e) => log::warn!("event hub: no bound for the gap after {after}: {e}"),
            }
        }
        for (from, to) in &advanced.skipped_after_timeout {
            log::warn!(
                "event hub: event ids {from}..={to} stayed uncommitted past the gap limit; streams skip them"
            );
        }
        if advanced.deliver == 0 {
            *watermark = next;
            return Ok(advanced.needs_bound);
        }
        rows.truncate(advanced.deliver);
        let live = pool.run(move |c| live_events(c, rows, framer)).await?;
        *watermark = next;
        // Position first, then the events: a stream that reads the position before
        // subscribing finds the rest on the channel (streams drop ids they already sent).
        self.position.send_replace(Some(watermark.position()));
        for event in live {
            let _ = self.events.send(Arc::new(event));
        }
        Ok((full && !watermark.waiting()) || advanced.needs_bound)
    }
}

fn live_events(
    conn: &mut DbConnection,
    rows: Vec<EventRow>,
    framer: Framer,
) -> Result<Vec<LiveEvent>, AppError> {
    Ok(crate::service::event_stream::with_audience(conn, rows)?
        .into_iter()
        .map(|(row, audience)| LiveEvent {
            id: row.id,
            audience,
            frame: framer(&row),
        })
        .collect())
}
