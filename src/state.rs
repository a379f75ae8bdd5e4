//! What every handler shares: the pool, settings, clock, token keys, the event hub and the
//! caches. Blocking diesel work runs through `DbPool::run`.

use crate::auth::tokens::TokenKeys;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::{DbConnection, DbPool};
use crate::errors::AppError;
use crate::telemetry::Metrics;
use std::sync::Arc;

pub struct AppState {
    pub pool: DbPool,
    pub settings: Arc<Settings>,
    pub clock: Arc<dyn Clock>,
    pub keys: TokenKeys,
    pub metrics: Metrics,
    pub sla: Arc<crate::service::sla::SlaRuntime>,
    pub notifier: crate::notify::alerts::Notifier,
    pub mailer: Arc<crate::notify::Mailer>,
    /// This instance's fan-out of committed work-order events to its live streams.
    pub events: Arc<crate::event_hub::EventHub>,
    /// Verified against when a username is unknown, so timing does not reveal which exist.
    pub dummy_hash: String,
    /// Password checks (argon2) running at once, at most `auth.login_concurrent_checks`.
    pub password_checks: Arc<tokio::sync::Semaphore>,
    /// Token users read in the last `auth.user_cache_ms`.
    pub actors: crate::auth::actor_cache::ActorCache,
}

impl AppState {
    /// Runs `f` with a pooled connection on actix's blocking thread pool.
    pub async fn db<T, F>(&self, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, AppError> + Send + 'static,
    {
        self.pool.run(f).await
    }

    /// [`AppState::db`] for a create or an action: a connection of PostgreSQL's write sessions
    /// ([`DbPool::run_indexed`]).
    pub async fn db_write<T, F>(&self, f: F) -> Result<T, AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, AppError> + Send + 'static,
    {
        self.pool.run_indexed(f).await
    }

    /// The rules work-order use cases run under (settings, categories, the SLA policy in force).
    pub fn work_order_rules(&self) -> crate::service::work_orders::Rules {
        crate::service::work_orders::Rules {
            reopen_window: chrono::TimeDelta::days(self.settings.work_orders.reopen_window_days),
            repeat_window: chrono::TimeDelta::days(self.settings.work_orders.repeat_window_days),
            categories: self.settings.categories.clone(),
            sla: self.sla.context(),
            notifier: self.notifier.clone(),
            routing: self.settings.routing.clone(),
            urges_to_raise_priority: self.settings.work_orders.urges_to_raise_priority,
            auto_dispatch: self.settings.work_orders.auto_dispatch,
        }
    }

    pub fn password_cost(&self) -> crate::auth::password::PasswordCost {
        crate::auth::password::PasswordCost {
            memory_kib: self.settings.auth.argon2_memory_kib,
            iterations: self.settings.auth.argon2_iterations,
        }
    }
}
