//! Building the application: pool, migrations, state, and the HTTP server bound to a port
//! (port 0 in tests).

use crate::api;
use crate::auth::tokens::TokenKeys;
use crate::clock::Clock;
use crate::config::Settings;
use crate::db::{build_pool, run_migrations, DbPool, DbTarget};
use crate::service::sla::{self, SlaRuntime};
use crate::state::AppState;
use crate::telemetry::{observe, Metrics};
use actix_web::dev::Server;
use actix_web::middleware::from_fn;
use actix_web::{web, App, HttpServer};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Opens the pool for the configured database and applies pending migrations.
pub fn connect(settings: &Settings) -> Result<DbPool, String> {
    let db = &settings.database;
    let target = DbTarget::from_url(&db.url, db.sqlite_busy_timeout_ms, db.sqlite_synchronous);
    let pool = build_pool(
        &target,
        db.pool_size,
        Duration::from_secs(db.pool_timeout_secs),
    )
    .and_then(|pool| pool.with_write_sessions(db.pool_size))
    .map_err(|e| format!("database: {e}"))?;
    let mut conn = pool.get().map_err(|e| format!("database: {e}"))?;
    let applied = run_migrations(&mut conn).map_err(|e| format!("migrations: {e}"))?;
    for m in applied {
        log::info!("applied migration {m}");
    }
    Ok(pool)
}

/// Publishes the file's policy for every instance and returns the runtime with the newest
/// published policy.
pub fn start_sla(
    pool: &DbPool,
    files: crate::config::SlaFiles,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<SlaRuntime, String> {
    let mut conn = pool.get().map_err(|e| format!("database: {e}"))?;
    let version = files.policy.version.clone();
    crate::db::write_transaction(&mut conn, |c| {
        sla::publish_policy(c, &files.policy_text, &version, now)
    })
    .map_err(|e| format!("sla policy: {e}: {}", describe(&e)))?;
    let runtime = SlaRuntime::new(files.policy, files.calendars);
    if let Some(newer) = sla::newer_policy(&mut conn, &version).map_err(|e| e.to_string())? {
        log::info!(
            "using the newest published SLA policy {} (the file has {version})",
            newer.version
        );
        runtime.replace_policy(newer);
    }
    Ok(runtime)
}

fn describe(e: &crate::errors::AppError) -> String {
    match e {
        crate::errors::AppError::Validation(errors) => errors
            .iter()
            .map(|e| e.message.clone())
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::new(),
    }
}

/// Events buffered per instance for streams that are briefly slower than the hub; a stream
/// further behind reads what it missed from the database.
const EVENT_HUB_CAPACITY: usize = 4096;

pub struct Application {
    port: u16,
    server: Server,
    state: web::Data<AppState>,
}

impl Application {
    pub fn build(settings: Settings, clock: Arc<dyn Clock>) -> Result<Application, String> {
        let sla_files = settings.load_sla()?;
        let pool = connect(&settings)?;
        let sla = Arc::new(start_sla(&pool, sla_files, clock.now())?);
        let templates = Arc::new(crate::notify::Templates::load(
            settings
                .mail
                .templates_path(&settings.config_dir)
                .as_deref(),
        )?);
        let mailer = crate::notify::Mailer::from_settings(&settings.mail)?;
        let notifier = crate::notify::alerts::Notifier {
            templates,
            base_url: settings.mail.base_url.clone(),
            digest_interval_secs: settings.mail.digest_interval_secs,
        };
        let listener = TcpListener::bind(&settings.server.bind)
            .map_err(|e| format!("bind {}: {e}", settings.server.bind))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let cost = crate::auth::password::PasswordCost {
            memory_kib: settings.auth.argon2_memory_kib,
            iterations: settings.auth.argon2_iterations,
        };
        let metrics = Metrics::new();
        let request_metrics = web::Data::new(metrics.clone());
        let state = web::Data::new(AppState {
            pool,
            keys: TokenKeys::new(secrecy::ExposeSecret::expose_secret(
                &settings.auth.jwt_secret,
            )),
            metrics,
            sla,
            notifier,
            mailer: Arc::new(mailer),
            events: Arc::new(crate::event_hub::EventHub::new(
                EVENT_HUB_CAPACITY,
                api::events::sse_frame,
            )),
            dummy_hash: crate::auth::password::dummy_hash(cost),
            password_checks: Arc::new(tokio::sync::Semaphore::new(
                settings.auth.login_concurrent_checks as usize,
            )),
            actors: crate::auth::actor_cache::ActorCache::new(std::time::Duration::from_millis(
                settings.auth.user_cache_ms,
            )),
            clock,
            settings: Arc::new(settings),
        });
        let settings = state.settings.clone();
        let app_state = state.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(request_metrics.clone())
                .app_data(web::PayloadConfig::new(
                    app_state.settings.server.body_limit_bytes,
                ))
                .app_data(api::extract::query_config())
                .app_data(api::extract::path_config())
                .wrap(from_fn(observe))
                .configure(api::routes)
        })
        .listen(listener)
        .map_err(|e| e.to_string())?
        .shutdown_timeout(settings.server.shutdown_timeout_secs);
        if settings.server.workers > 0 {
            server = server.workers(settings.server.workers);
        }
        Ok(Application {
            port,
            server: server.run(),
            state,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle to stop the server (tests stop theirs when they end).
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }

    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }

    /// Serves until SIGINT/SIGTERM, then drains: event streams end (clients resume elsewhere
    /// with Last-Event-ID), requests in flight finish (actix's graceful stop), and the
    /// background jobs finish their tick.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let stop = Arc::new(AtomicBool::new(false));
        let mut jobs = Vec::new();
        let settings = self.state.settings.clone();
        let hub = self.state.events.clone();
        // The hub reads through its own connection, so the live streams never wait behind
        // request traffic for one.
        let hub_pool = self.state.pool.dedicated(1).unwrap_or_else(|e| {
            log::warn!("event hub: no connection of its own ({e}); sharing the pool");
            self.state.pool.clone()
        });
        jobs.push(actix_web::rt::spawn(hub.clone().run(
            hub_pool,
            self.state.clock.clone(),
            Duration::from_millis(settings.events.poll_interval_ms),
            chrono::TimeDelta::seconds(settings.events.max_gap_wait_secs),
        )));
        let on_signal = hub.clone();
        let signals = actix_web::rt::spawn(async move {
            stop_signal().await;
            log::info!("stop requested: ending event streams");
            on_signal.close();
        });
        if settings.sla.scanner_enabled {
            let state = self.state.clone();
            let scanner = Arc::new(crate::jobs::scanner::Scanner {
                batch: settings.sla.scanner_batch,
                notifier: self.state.notifier.clone(),
            });
            jobs.push(actix_web::rt::spawn(crate::jobs::run_every(
                "sla scanner",
                Duration::from_millis(settings.sla.scanner_tick_ms),
                stop.clone(),
                move || {
                    let mut conn = state.pool.get().map_err(|e| e.to_string())?;
                    let rules = state.work_order_rules();
                    scanner
                        .run_once(&mut conn, &state.sla, &rules, state.clock.now())
                        .map(|r| {
                            if r.is_empty() {
                                String::new()
                            } else {
                                format!("{r:?}")
                            }
                        })
                        .map_err(|e| e.to_string())
                },
            )));
        }
        if settings.sla.rollup_enabled {
            let state = self.state.clone();
            let rollup = crate::jobs::rollup::Rollup {
                batch: settings.sla.rollup_batch,
            };
            jobs.push(actix_web::rt::spawn(crate::jobs::run_every(
                "report roll-up",
                Duration::from_millis(settings.sla.rollup_tick_ms),
                stop.clone(),
                move || {
                    let mut conn = state.pool.get().map_err(|e| e.to_string())?;
                    rollup
                        .run_once(&mut conn, &state.sla.context(), state.clock.now())
                        .map(|_| String::new())
                        .map_err(|e| e.to_string())
                },
            )));
        }
        if settings.mail.sender_enabled {
            let state = self.state.clone();
            let m = &settings.mail;
            let sender = Arc::new(crate::jobs::sender::Sender {
                batch: m.sender_batch,
                max_attempts: m.max_attempts,
                backoff_base_secs: m.backoff_base_secs,
                backoff_max_secs: m.backoff_max_secs,
                digest_interval_secs: m.digest_interval_secs,
                templates: state.notifier.templates.clone(),
            });
            jobs.push(actix_web::rt::spawn(crate::jobs::run_every(
                "mail sender",
                Duration::from_millis(m.sender_tick_ms),
                stop.clone(),
                move || {
                    let mut conn = state.pool.get().map_err(|e| e.to_string())?;
                    sender
                        .run_once(&mut conn, &state.mailer, state.clock.now())
                        .map(|r| {
                            if r.is_empty() {
                                String::new()
                            } else {
                                format!("{r:?}")
                            }
                        })
                        .map_err(|e| e.to_string())
                },
            )));
        }
        let result = self.server.await;
        signals.abort();
        hub.close();
        stop.store(true, Ordering::SeqCst);
        for job in jobs {
            let _ = job.await;
        }
        result
    }
}

/// SIGINT or SIGTERM (the same signals on which actix stops accepting).
async fn stop_signal() {
    use actix_web::rt::signal;
    #[cfg(unix)]
    {
        let mut term = match signal::unix::signal(signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(e) => {
                log::warn!("cannot listen for SIGTERM: {e}");
                let _ = signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = signal::ctrl_c().await;
}
