//! Layered settings: compiled-in defaults → config/default.toml → config/$GRIDCALL_ENV.toml →
//! GRIDCALL__SECTION__KEY environment variables; DATABASE_URL picks the database. Settings
//! are a value handed to the application, never a global.

use crate::domain::calendar::{Calendar, Calendars};
use crate::domain::categories::Categories;
use crate::domain::routing::RoutingWeights;
use crate::domain::scoring::ScoringConfig;
use crate::domain::sla::Policy;
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
    pub environment: String,
    /// The folder the files were read from.
    #[serde(skip)]
    pub config_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailSettings {
    pub transport: String,
    pub dir: String,
    pub from: String,
    pub smtp_host: String,
    pub smtp_port: u16,
    pub smtp_security: String,
    pub smtp_username: String,
    pub smtp_password: String,
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
        if !matches!(self.transport.as_str(), "file" | "smtp") {
            return Err(format!("mail.transport `{}`: file or smtp", self.transport));
        }
        if !matches!(self.smtp_security.as_str(), "starttls" | "tls" | "plain") {
            return Err(format!(
                "mail.smtp_security `{}`: starttls, tls or plain",
                self.smtp_security
            ));
        }
        if self.transport == "smtp" && self.smtp_host.is_empty() {
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
    pub sqlite_synchronous: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    pub jwt_secret: String,
    pub access_token_minutes: i64,
    pub refresh_token_hours: i64,
    pub login_max_failures: i64,
    pub login_window_minutes: i64,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkOrderSettings {
    pub reopen_window_days: i64,
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSettings {
    pub scrape_token: String,
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
        let env = std::env::var("GRIDCALL_ENV").unwrap_or_else(|_| "development".to_owned());
        let mut settings = Self::load_from(&dir, &env, std::env::vars())?;
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
        env: &str,
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
        settings.environment = env.to_owned();
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

    /// Rules that make a configuration unusable.
    pub fn check(&self) -> Result<(), String> {
        if self.environment == "production" && self.auth.jwt_secret == BUILTIN_JWT_SECRET {
            return Err("auth.jwt_secret is the built-in development secret; set GRIDCALL__AUTH__JWT_SECRET".into());
        }
        if self.auth.jwt_secret.len() < 32 {
            return Err("auth.jwt_secret must be at least 32 bytes".into());
        }
        if self.auth.access_token_minutes < 1 || self.auth.refresh_token_hours < 1 {
            return Err("auth token lifetimes must be positive".into());
        }
        if self.server.body_limit_bytes < 1024 {
            return Err("server.body_limit_bytes must be at least 1024".into());
        }
        if self.sla.scanner_tick_ms == 0 || self.sla.scanner_batch < 1 {
            return Err("sla.scanner_tick_ms and sla.scanner_batch must be positive".into());
        }
        if self.sla.rollup_tick_ms == 0 || self.sla.rollup_batch < 1 {
            return Err("sla.rollup_tick_ms and sla.rollup_batch must be positive".into());
        }
        self.mail.check()?;
        if self.mail.digest_interval_secs < 1
            || self.mail.max_attempts < 1
            || self.mail.backoff_base_secs < 1
        {
            return Err("mail.digest_interval_secs, mail.max_attempts and mail.backoff_base_secs must be positive".into());
        }
        let ev = &self.events;
        if ev.max_streams_per_user < 3 {
            return Err("events.max_streams_per_user must be at least 3".into());
        }
        if ev.poll_interval_ms == 0
            || ev.heartbeat_secs == 0
            || ev.ticket_secs < 1
            || ev.max_gap_wait_secs < 1
        {
            return Err("events.poll_interval_ms, heartbeat_secs, ticket_secs and max_gap_wait_secs must be positive".into());
        }
        if ev.poll_interval_ms > 60_000
            || ev.heartbeat_secs > 3600
            || ev.ticket_secs > 3600
            || ev.max_gap_wait_secs > 3600
        {
            return Err("events: poll_interval_ms at most 60000, heartbeat_secs, ticket_secs and max_gap_wait_secs at most 3600".into());
        }
        if self.database.pool_size == 0 {
            return Err("database.pool_size must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_env_overrides() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::load_from(dir.path(), "test", std::iter::empty()).unwrap();
        assert_eq!(s.server.bind, "127.0.0.1:8080");
        assert_eq!(s.server.body_limit_bytes, 65536);
        let vars = vec![(
            "GRIDCALL__AUTH__ACCESS_TOKEN_MINUTES".to_owned(),
            "7".to_owned(),
        )];
        let s = Settings::load_from(dir.path(), "test", vars.into_iter()).unwrap();
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
        let s = Settings::load_from(dir.path(), "production", std::iter::empty()).unwrap();
        assert_eq!(s.server.workers, 3);
        assert!(s.check().is_err());
    }

    #[test]
    fn sla_files_load_and_override() {
        let dir = tempfile::tempdir().unwrap();
        let s = Settings::load_from(dir.path(), "test", std::iter::empty()).unwrap();
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

    #[test]
    fn unknown_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("default.toml"), "[server]\nbindd = 'x'\n").unwrap();
        assert!(Settings::load_from(dir.path(), "x", std::iter::empty()).is_err());
    }
}
