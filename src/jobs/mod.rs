//! Background jobs: plain loops around a public `run_once(now)`, one per instance; the
//! database keeps them from doing anything twice when several instances run.

pub mod rollup;
pub mod scanner;
pub mod sender;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Runs `tick` every `period` until `stop` is set; a tick in progress finishes first.
pub async fn run_every<F>(name: &'static str, period: Duration, stop: Arc<AtomicBool>, tick: F)
where
    F: Fn() -> Result<String, String> + Send + Sync + Clone + 'static,
{
    let mut interval = actix_web::rt::time::interval(period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::SeqCst) {
        interval.tick().await;
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let tick = tick.clone();
        match actix_web::web::block(tick).await {
            Ok(Ok(report)) if !report.is_empty() => log::info!("{name}: {report}"),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => log::error!("{name}: {e}"),
            Err(e) => log::error!("{name}: {e}"),
        }
    }
    log::info!("{name} stopped");
}
