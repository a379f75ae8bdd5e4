//! Layered settings: compiled-in defaults → config/default.toml → config/$GRIDCALL_ENV.toml →
//! GRIDCALL__SECTION__KEY environment variables; DATABASE_URL picks the database. Settings
//! are a value handed to the application, never a global.

use crate::domain::calendar::{Calendar, Calendars};
use crate::domain::categories::Categories;
use crate::domain::routing::RoutingWeights;
use crate::domain::scoring::ScoringConfig;
use crate::domain::sla::Policy;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::path::{Path, PathBuf};

const DEFAULT_TOML: &str = include_str!("../config/default.toml");
const DEFAULT_CATEGORIES: &str = include_str!("../config/categories.toml");
const DEFAULT_SCORING: &str = include_str!("../config/scoring.toml");
pub const BUILTIN_JWT_SECRET: &str = "gridcall-development-secret-do-not-use-in-production";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub auth: AuthSettings,
    pub work_orders: WorkOrderSettings,
    pub events: EventSettings,
    pub metrics: MetricsSettings,
    pub sla: SlaSettings,
    pub mail: MailSettings,
    /// Not read from files: loaded from routing.toml beside the settings.
    #[serde(skip, default = "default_routing")]
    pub routing: RoutingWeights,
    /// Not read from files: loaded from categories.toml beside the settings.
    #[serde(skip, default = "default_categories")]
    pub categories: std::sync::Arc<Categories>,
    /// Not read from files: loaded from scoring.toml beside the settings.
    #[serde(skip, default = "default_scoring")]
    pub scoring: std::sync::Arc<ScoringConfig>,
    #[serde(skip)]
    pub environment: Environment,
    /// The folder the files were read from.
    #[serde(skip)]
    pub config_dir: PathBuf,
}

/// Which `config/<environment>.toml` layers over the defaults (`GRIDCALL_ENV`). In
/// production the service refuses the built-in JWT secret anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Environment {
    #[default]
    Development,
    Test,
    Bench,
    Staging,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Development => "development",
            Environment::Test => "test",
            Environment::Bench => "bench",
            Environment::Staging => "staging",
            Environment::Production => "production",
        }
    }
}

impl std::str::FromStr for Environment {
    type Err = String;

    fn from_str(s: &str) -> Result<Environment, String> {
        [
            Environment::Development,
            Environment::Test,
            Environment::Bench,
            Environment::Staging,
            Environment::Production,
        ]
        .into_iter()
        .find(|e| e.as_str() == s)
        .ok_or_else(|| {
            format!("GRIDCALL_ENV `{s}`: development, test, bench, staging or production")
        })
    }
}

impl std::fmt::Display for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How mail leaves: `.eml` files under `mail.dir`, or an SMTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    File,
    Smtp,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with STARTTLS (required).
    Starttls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption (a local relay only).
    Plain,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    pub transport: MailTransport,
    pub dir: String,
    pub from: String,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_security: SmtpSecurity,
    pub smtp_username: String,
    /// Shown as `[REDACTED]` by `Debug`.
    pub smtp_password: SecretString,
    pub templates_dir: String,
    pub base_url: String,
    pub sender_enabled: bool,
    pub sender_tick_ms: u64,
    pub sender_batch: i64,
    pub max_attempts: i32,
    pub backoff_base_secs: i64,
    pub backoff_max_secs: i64,
    pub digest_interval_secs: i64,
}

impl MailSettings {
    /// Checks the values without touching the network or the disk.
    pub fn check(&self) -> Result<(), String> {
        if self.transport == MailTransport::Smtp && self.smtp_host.is_empty() {
            return Err("mail.smtp_host is required with transport = \"smtp\"".into());
        }
        self.from
            .parse::<lettre::message::Mailbox>()
            .map_err(|e| format!("mail.from `{}`: {e}", self.from))?;
        Ok(())
    }

    /// The templates folder: the setting, else `templates/` beside the settings if present.
    pub fn templates_path(&self, config_dir: &Path) -> Option<PathBuf> {
        match self.templates_dir.trim() {
            "" => Some(config_dir.join("templates")).filter(|p| p.is_dir()),
            d => Some(PathBuf::from(d)),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaSettings {
    pub policy_file: String,
    pub calendars_dir: String,
    pub scanner_enabled: bool,
    pub scanner_tick_ms: u64,
    pub scanner_batch: i64,
    pub rollup_enabled: bool,
    pub rollup_tick_ms: u64,
    pub rollup_batch: i64,
}

const DEFAULT_POLICY: &str = include_str!("../config/sla.toml");
const SHIPPED_CALENDARS: [&str; 2] = [
    include_str!("../config/calendars/cn.toml"),
    include_str!("../config/calendars/24x7.toml"),
];

/// The SLA configuration read from files: the policy (with its text) and the calendars.
#[derive(Debug, Clone)]
pub struct SlaFiles {
    pub policy: Policy,
    pub policy_text: String,
    pub calendars: Calendars,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub bind: String,
    pub workers: usize,
    pub body_limit_bytes: usize,
    pub shutdown_timeout_secs: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: String,
    pub pool_size: u32,
    pub pool_timeout_secs: u64,
    pub sqlite_busy_timeout_ms: u32,
    pub sqlite_synchronous: crate::db::SqliteSynchronous,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Signs access tokens (HS256); at least 32 bytes. Shown as `[REDACTED]` by `Debug`.
    pub jwt_secret: SecretString,
    pub access_token_minutes: i64,
    pub refresh_token_hours: i64,
    /// Failures for one username from one client address within the window before 429.
    pub login_max_failures: i64,
    /// Failures for one username from any addresses within the window before it is locked.
    pub login_max_failures_any_address: i64,
    pub login_window_minutes: i64,
    /// Password checks (argon2, ~19 MiB each) run at once, at most.
    pub login_concurrent_checks: i64,
    /// How long a token's user (active, role, scope) is remembered between requests; 0: read
    /// on every request.
    pub user_cache_ms: u64,
    /// A refresh chain ends this many hours after its login, however often it is used.
    pub refresh_chain_max_hours: i64,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkOrderSettings {
    pub reopen_window_days: i64,
    /// A call about an order of the same kind still being worked and created within this
    /// many days is a repeat call (an urge on it), not a new order.
    pub repeat_window_days: i64,
    pub idempotency_key_hours: i64,
    pub idempotency_stale_secs: i64,
    pub urges_to_raise_priority: i32,
    pub auto_dispatch: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventSettings {
    pub poll_interval_ms: u64,
    pub heartbeat_secs: u64,
    pub max_streams_per_user: i64,
    pub ticket_secs: i64,
    pub max_gap_wait_secs: i64,
    /// How many events back a scoped stream or page may resume; past it: 410 resume_too_old.
    pub resume_max_events: i64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    /// Empty: `/metrics` is open. Shown as `[REDACTED]` by `Debug`.
    pub scrape_token: SecretString,
}

const DEFAULT_ROUTING: &str = include_str!("../config/routing.toml");

fn parse_routing(text: &str) -> Result<RoutingWeights, String> {
    let w: RoutingWeights = toml::from_str(text).map_err(|e| e.to_string())?;
    if [w.distance, w.load, w.performance]
        .iter()
        .any(|x| !x.is_finite() || *x < 0.0)
        || w.distance_scale_km <= 0.0
        || w.shrinkage < 0.0
    {
        return Err("weights must be non-negative and distance_scale_km positive".into());
    }
    Ok(w)
}

fn default_routing() -> RoutingWeights {
    parse_routing(DEFAULT_ROUTING)
        .unwrap_or_else(|e| panic!("shipped routing.toml is invalid: {e}"))
}

fn default_categories() -> std::sync::Arc<Categories> {
    std::sync::Arc::new(
        Categories::from_toml(DEFAULT_CATEGORIES)
            .unwrap_or_else(|e| panic!("shipped categories.toml is invalid: {e}")),
    )
}

fn default_scoring() -> std::sync::Arc<ScoringConfig> {
    std::sync::Arc::new(
        ScoringConfig::from_toml(DEFAULT_SCORING)
            .unwrap_or_else(|e| panic!("shipped scoring.toml is invalid: {e}")),
    )
}

impl Settings {
    /// Loads the settings from the process environment and the config folder
    /// (`$GRIDCALL_CONFIG_DIR`, default `./config`; missing files are skipped).
    pub fn load() -> Result<Settings, String> {
        let dir = std::env::var("GRIDCALL_CONFIG_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|_| PathBuf::from("config"));
        let env: Environment = match std::env::var("GRIDCALL_ENV") {
            Ok(name) => name.parse()?,
            Err(_) => Environment::Development,
        };
        let mut settings = Self::load_from(&dir, env, std::env::vars())?;
        if let Ok(url) = std::env::var("DATABASE_URL") {
            if !url.trim().is_empty() {
                settings.database.url = url;
            }
        }
        settings.check()?;
        Ok(settings)
    }

    /// Loads the layers from `dir` with the given environment variables (testable).
    pub fn load_from(
        dir: &Path,
        env: Environment,
        vars: impl Iterator<Item = (String, String)>,
    ) -> Result<Settings, String> {
        let vars: config::Map<String, String> =
            vars.filter(|(k, _)| k.starts_with("GRIDCALL__")).collect();
        let built = config::Config::builder()
            .add_source(config::File::from_str(
                DEFAULT_TOML,
                config::FileFormat::Toml,
            ))
            .add_source(config::File::from(dir.join("default.toml")).required(false))
            .add_source(config::File::from(dir.join(format!("{env}.toml"))).required(false))
            .add_source(
                config::Environment::with_prefix("GRIDCALL")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .source(Some(vars)),
            )
            .build()
            .map_err(|e| format!("settings: {e}"))?;
        let mut settings: Settings = built
            .try_deserialize()
            .map_err(|e| format!("settings: {e}"))?;
        settings.environment = env;
        settings.config_dir = dir.to_owned();
        let routing_file = dir.join("routing.toml");
        settings.routing = if routing_file.exists() {
            let text = std::fs::read_to_string(&routing_file)
                .map_err(|e| format!("{}: {e}", routing_file.display()))?;
            parse_routing(&text).map_err(|e| format!("{}: {e}", routing_file.display()))?
        } else {
            default_routing()
        };
        let categories_file = dir.join("categories.toml");
        settings.categories = if categories_file.exists() {
            let text = std::fs::read_to_string(&categories_file)
                .map_err(|e| format!("{}: {e}", categories_file.display()))?;
            std::sync::Arc::new(
                Categories::from_toml(&text)
                    .map_err(|e| format!("{}: {e}", categories_file.display()))?,
            )
        } else {
            default_categories()
        };
        let scoring_file = dir.join("scoring.toml");
        settings.scoring = if scoring_file.exists() {
            let text = std::fs::read_to_string(&scoring_file)
                .map_err(|e| format!("{}: {e}", scoring_file.display()))?;
            std::sync::Arc::new(
                ScoringConfig::from_toml(&text)
                    .map_err(|e| format!("{}: {e}", scoring_file.display()))?,
            )
        } else {
            default_scoring()
        };
        Ok(settings)
    }

    /// Reads the SLA policy and the calendars, checking every file (errors name file and line).
    pub fn load_sla(&self) -> Result<SlaFiles, String> {
        let policy_path = match self.sla.policy_file.trim() {
            "" => self.config_dir.join("sla.toml"),
            p => PathBuf::from(p),
        };
        let policy_text = if policy_path.exists() {
            std::fs::read_to_string(&policy_path)
                .map_err(|e| format!("{}: {e}", policy_path.display()))?
        } else if self.sla.policy_file.trim().is_empty() {
            DEFAULT_POLICY.to_owned()
        } else {
            return Err(format!("{}: no such policy file", policy_path.display()));
        };
        let policy = Policy::from_toml(&policy_text)
            .map_err(|e| format!("{}: {e}", policy_path.display()))?;
        let mut calendars = Vec::new();
        for text in SHIPPED_CALENDARS {
            calendars
                .push(Calendar::from_toml(text).map_err(|e| format!("shipped calendar: {e}"))?);
        }
        let dir = match self.sla.calendars_dir.trim() {
            "" => self.config_dir.join("calendars"),
            d => PathBuf::from(d),
        };
        if dir.is_dir() {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(|e| format!("{}: {e}", dir.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect();
            files.sort();
            for path in files {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                let cal =
                    Calendar::from_toml(&text).map_err(|e| format!("{}: {e}", path.display()))?;
                calendars.retain(|c: &Calendar| c.id != cal.id);
                calendars.push(cal);
            }
        }
        let calendars = Calendars::new(calendars);
        for rule in &policy.rules {
            for t in &rule.targets {
                if let crate::domain::sla::CalendarRef::Named(id) = &t.calendar {
                    if calendars.get(id).is_none() {
                        return Err(format!(
                            "{}: line {}: rule `{}`: no calendar `{id}`",
                            policy_path.display(),
                            rule.line,
                            rule.name
                        ));
                    }
                }
            }
        }
        if calendars.get("cn").is_none() || calendars.get("24x7").is_none() {
            return Err("the calendars `cn` and `24x7` are required".into());
        }
        Ok(SlaFiles {
            policy,
            policy_text,
            calendars,
        })
    }

    /// Every numeric setting with the range it must lie in: a value outside is refused at
    /// start and by `check-config`, with its name (a zero login limit, say, would lock every
    /// user out; a zero tick would spin).
    fn numeric_ranges(&self) -> Vec<(&'static str, i128, i128, i128)> {
        const DAY_SECS: i128 = 86_400;
        let (srv, db, auth, wo, ev, sla, mail) = (
            &self.server,
            &self.database,
            &self.auth,
            &self.work_orders,
            &self.events,
            &self.sla,
            &self.mail,
        );
        vec![
            (
                "server.workers (0: one per core)",
                srv.workers as i128,
                0,
                256,
            ),
            (
                "server.body_limit_bytes",
                srv.body_limit_bytes as i128,
                1024,
                64 << 20,
            ),
            (
                "server.shutdown_timeout_secs",
                srv.shutdown_timeout_secs as i128,
                1,
                3600,
            ),
            ("database.pool_size", db.pool_size as i128, 1, 1000),
            (
                "database.pool_timeout_secs",
                db.pool_timeout_secs as i128,
                1,
                600,
            ),
            (
                "database.sqlite_busy_timeout_ms",
                db.sqlite_busy_timeout_ms as i128,
                1,
                600_000,
            ),
            (
                "auth.access_token_minutes",
                auth.access_token_minutes as i128,
                1,
                24 * 60,
            ),
            (
                "auth.refresh_token_hours",
                auth.refresh_token_hours as i128,
                1,
                24 * 31,
            ),
            (
                "auth.refresh_chain_max_hours",
                auth.refresh_chain_max_hours as i128,
                1,
                24 * 366,
            ),
            (
                "auth.login_max_failures",
                auth.login_max_failures as i128,
                1,
                1000,
            ),
            (
                "auth.login_max_failures_any_address",
                auth.login_max_failures_any_address as i128,
                1,
                100_000,
            ),
            (
                "auth.login_window_minutes",
                auth.login_window_minutes as i128,
                1,
                24 * 60,
            ),
            (
                "auth.login_concurrent_checks",
                auth.login_concurrent_checks as i128,
                1,
                64,
            ),
            ("auth.user_cache_ms", auth.user_cache_ms as i128, 0, 60_000),
            (
                "auth.argon2_memory_kib",
                auth.argon2_memory_kib as i128,
                8,
                1 << 20,
            ),
            (
                "auth.argon2_iterations",
                auth.argon2_iterations as i128,
                1,
                100,
            ),
            (
                "work_orders.reopen_window_days",
                wo.reopen_window_days as i128,
                0,
                3660,
            ),
            (
                "work_orders.repeat_window_days",
                wo.repeat_window_days as i128,
                0,
                3660,
            ),
            (
                "work_orders.idempotency_key_hours",
                wo.idempotency_key_hours as i128,
                1,
                24 * 31,
            ),
            (
                "work_orders.idempotency_stale_secs",
                wo.idempotency_stale_secs as i128,
                1,
                DAY_SECS,
            ),
            (
                "work_orders.urges_to_raise_priority (0: never)",
                wo.urges_to_raise_priority as i128,
                0,
                1000,
            ),
            (
                "events.poll_interval_ms",
                ev.poll_interval_ms as i128,
                1,
                60_000,
            ),
            ("events.heartbeat_secs", ev.heartbeat_secs as i128, 1, 3600),
            (
                "events.max_streams_per_user",
                ev.max_streams_per_user as i128,
                3,
                1000,
            ),
            ("events.ticket_secs", ev.ticket_secs as i128, 1, 3600),
            (
                "events.max_gap_wait_secs",
                ev.max_gap_wait_secs as i128,
                1,
                3600,
            ),
            (
                "events.resume_max_events",
                ev.resume_max_events as i128,
                1,
                100_000_000,
            ),
            (
                "sla.scanner_tick_ms",
                sla.scanner_tick_ms as i128,
                1,
                3_600_000,
            ),
            ("sla.scanner_batch", sla.scanner_batch as i128, 1, 1_000_000),
            (
                "sla.rollup_tick_ms",
                sla.rollup_tick_ms as i128,
                1,
                3_600_000,
            ),
            ("sla.rollup_batch", sla.rollup_batch as i128, 1, 1_000_000),
            ("mail.smtp_port", mail.smtp_port as i128, 1, 65_535),
            (
                "mail.sender_tick_ms",
                mail.sender_tick_ms as i128,
                1,
                3_600_000,
            ),
            ("mail.sender_batch", mail.sender_batch as i128, 1, 1_000_000),
            ("mail.max_attempts", mail.max_attempts as i128, 1, 1000),
            (
                "mail.backoff_base_secs",
                mail.backoff_base_secs as i128,
                1,
                DAY_SECS,
            ),
            (
                "mail.backoff_max_secs",
                mail.backoff_max_secs as i128,
                1,
                7 * DAY_SECS,
            ),
            (
                "mail.digest_interval_secs",
                mail.digest_interval_secs as i128,
                1,
                DAY_SECS,
            ),
        ]
    }

    /// Rules that make a configuration unusable.
    pub fn check(&self) -> Result<(), String> {
        if self.auth.jwt_secret.expose_secret().len() < 32 {
            return Err("auth.jwt_secret must be at least 32 bytes".into());
        }
        let bad: Vec<String> = self
            .numeric_ranges()
            .into_iter()
            .filter(|(_, v, lo, hi)| v < lo || v > hi)
            .map(|(name, v, lo, hi)| format!("{name} = {v}: must be {lo}..={hi}"))
            .collect();
        if !bad.is_empty() {
            return Err(bad.join("; "));
        }
        if self.mail.backoff_max_secs < self.mail.backoff_base_secs {
            return Err("mail.backoff_max_secs must not be below mail.backoff_base_secs".into());
        }
        if self.auth.login_max_failures_any_address < self.auth.login_max_failures {
            return Err(
                "auth.login_max_failures_any_address must not be below auth.login_max_failures"
                    .into(),
            );
        }
        self.mail.check()?;
        self.check_secret()
    }

    /// The built-in JWT secret is published with the source: anyone could sign an admin
    /// token with it. It is accepted only in development on a loopback address.
    fn check_secret(&self) -> Result<(), String> {
        if self.auth.jwt_secret.expose_secret() != BUILTIN_JWT_SECRET {
            return Ok(());
        }
        if self.environment == Environment::Production {
            return Err("auth.jwt_secret is the built-in development secret; set GRIDCALL__AUTH__JWT_SECRET".into());
        }
        if !bind_is_loopback(&self.server.bind) {
            return Err(format!(
                "auth.jwt_secret is the built-in development secret, which is public: it is \
                 accepted only on a loopback bind address, not {}; set GRIDCALL__AUTH__JWT_SECRET",
                self.server.bind
            ));
        }
        Ok(())
    }
}

/// Whether a bind address (`host:port`) accepts connections from this machine only.
fn bind_is_loopback(bind: &str) -> bool {
    use std::net::{SocketAddr, ToSocketAddrs};
    let host = bind.rsplit_once(':').map(|(h, _)| h).unwrap_or(bind);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        // a name: loopback only if every address it names is
        Err(_) => bind
            .to_socket_addrs()
            .map(|addrs| {
                let addrs: Vec<SocketAddr> = addrs.collect();
                !addrs.is_empty() && addrs.iter().all(|a| a.ip().is_loopback())
            })
            .unwrap_or(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_env_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::load_from(dir.path(), Environment::Test, std::iter::empty()).unwrap();
        assert_eq!(s.server.bind, "127.0.0.1:8080");
        assert_eq!(s.server.body_limit_bytes, 65536);
        let vars = vec![(
            "GRIDCALL__AUTH__ACCESS_TOKEN_MINUTES".to_owned(),
            "7".to_owned(),
        )];
        let s = Settings::load_from(dir.path(), Environment::Test, vars.into_iter()).unwrap();
        assert_eq!(s.auth.access_token_minutes, 7);
    }

    #[test]
    fn env_file_overrides_defaults_and_production_refuses_builtin_secret() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("production.toml"),
            "[server]\nworkers = 3\n",
        )
        .unwrap();
        let s =
            Settings::load_from(dir.path(), Environment::Production, std::iter::empty()).unwrap();
        assert_eq!(s.server.workers, 3);
        assert!(s.check().is_err());
    }

    #[test]
    fn sla_files_load_and_override() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::load_from(dir.path(), Environment::Test, std::iter::empty()).unwrap();
        let sla = s.load_sla().unwrap();
        assert!(sla.calendars.get("cn").is_some() && sla.calendars.get("24x7").is_some());
        std::fs::create_dir(dir.path().join("calendars")).unwrap();
        std::fs::write(
            dir.path().join("calendars/office.toml"),
            "id = 'office'\nworking_hours = [['09:00', '17:00']]\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("sla.toml"), "version = 'x'\n[[rules]]\nname = 'all'\ntargets = { reply = { target = '2d', calendar = 'office' } }\n").unwrap();
        let sla = s.load_sla().unwrap();
        assert_eq!(sla.policy.version, "x");
        assert_eq!(
            sla.calendars.get("office").unwrap().seconds_per_day(),
            8 * 3600
        );
        std::fs::write(dir.path().join("sla.toml"), "version = 'x'\n[[rules]]\nname = 'all'\ntargets = { reply = { target = '2d', calendar = 'moon' } }\n").unwrap();
        let e = s.load_sla().unwrap_err();
        assert!(e.contains("line 2") && e.contains("moon"), "{e}");
        std::fs::write(
            dir.path().join("calendars/bad.toml"),
            "id = 'bad'\ntime_zone = 'Nowhere'\n",
        )
        .unwrap();
        assert!(s.load_sla().unwrap_err().contains("bad.toml"));
    }

    fn with(vars: &[(&str, &str)]) -> Settings {
        let dir = tempfile::tempdir().unwrap();
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::load_from(dir.path(), Environment::Test, vars.into_iter()).unwrap()
    }

    #[test]
    fn every_numeric_setting_is_range_checked() {
        let s = with(&[]);
        assert_eq!(s.check(), Ok(()), "the shipped defaults are valid");
        for (name, ..) in s.numeric_ranges() {
            assert!(name.contains('.'), "{name}");
        }
        let e = with(&[("GRIDCALL__AUTH__LOGIN_MAX_FAILURES", "0")])
            .check()
            .unwrap_err();
        assert!(e.contains("auth.login_max_failures = 0"), "{e}");
        let e = with(&[
            ("GRIDCALL__SLA__SCANNER_TICK_MS", "0"),
            ("GRIDCALL__MAIL__MAX_ATTEMPTS", "0"),
        ])
        .check()
        .unwrap_err();
        assert!(
            e.contains("sla.scanner_tick_ms") && e.contains("mail.max_attempts"),
            "every bad value is named at once: {e}"
        );
        let e = with(&[("GRIDCALL__EVENTS__MAX_STREAMS_PER_USER", "2")])
            .check()
            .unwrap_err();
        assert!(e.contains("3..="), "{e}");
        // Named settings are enums: a typo fails to load instead of meaning a default.
        for (key, value) in [
            ("GRIDCALL__DATABASE__SQLITE_SYNCHRONOUS", "FUL"),
            ("GRIDCALL__MAIL__TRANSPORT", "smpt"),
            ("GRIDCALL__MAIL__SMTP_SECURITY", "ssl"),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let vars = vec![(key.to_owned(), value.to_owned())];
            let e = Settings::load_from(dir.path(), Environment::Test, vars.into_iter())
                .expect_err(key);
            assert!(e.contains(value), "{key}: {e}");
        }
        assert!("prodution".parse::<Environment>().is_err());
        assert_eq!("production".parse(), Ok(Environment::Production));
    }

    #[test]
    fn the_public_builtin_secret_is_accepted_on_loopback_only() {
        for bind in ["127.0.0.1:8080", "[::1]:8080", "localhost:8080"] {
            let s = with(&[("GRIDCALL__SERVER__BIND", bind)]);
            assert_eq!(s.check(), Ok(()), "{bind}");
        }
        for bind in ["0.0.0.0:8080", "[::]:8080", "10.1.2.3:8080"] {
            let s = with(&[("GRIDCALL__SERVER__BIND", bind)]);
            let e = s.check().unwrap_err();
            assert!(e.contains("loopback"), "{bind}: {e}");
            let secret = "a-real-secret-of-at-least-thirty-two-bytes";
            let s = with(&[
                ("GRIDCALL__SERVER__BIND", bind),
                ("GRIDCALL__AUTH__JWT_SECRET", secret),
            ]);
            assert_eq!(s.check(), Ok(()), "{bind} with its own secret");
        }
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.toml"), "[server]\nbindd = 'x'\n").unwrap();
        assert!(Settings::load_from(dir.path(), Environment::Test, std::iter::empty()).is_err());
    }
}
