//! The `gridcall` command line: serve (the default), migrate, check-config, user create, backup.

use clap::{Parser, Subcommand};
use gridcall::clock::{Clock, SystemClock};
use gridcall::config::Settings;
use gridcall::db::{Backend, DbTarget, SqliteSynchronous};
use gridcall::domain::Role;
use gridcall::service::users::{self, NewUser};
use gridcall::startup::{connect, Application};
use std::io::Read;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "gridcall",
    version,
    about = "Work orders, SLA timers and dispatch for a 95598-style service centre"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the REST API (the default command).
    Serve {
        /// Address to listen on, e.g. 127.0.0.1:8080 (default: server.bind).
        #[arg(long)]
        bind: Option<String>,
    },
    /// Apply pending database migrations and exit.
    Migrate,
    /// Load and check every configuration file, then exit.
    CheckConfig,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// SLA policy: publish the policy file to every instance, or recalculate running timers.
    Sla {
        #[command(subcommand)]
        command: SlaCommand,
    },
    /// Write a consistent copy of the SQLite database while the service runs.
    Backup {
        #[arg(long)]
        to: String,
    },
    /// Fill an empty database with a province's year of orders (for benchmarks): 50 areas in
    /// a two-level tree, 200 crews, the real kind mix, timers, events, credits and roll-ups.
    Seed {
        /// How many orders.
        #[arg(long, default_value_t = 1_000_000)]
        orders: usize,
        /// The year ends at this RFC 3339 time (default: now).
        #[arg(long)]
        until: Option<String>,
        /// Random seed (the same seed writes the same year).
        #[arg(long, default_value_t = 95598)]
        seed: u64,
    },
}

#[derive(Subcommand)]
enum SlaCommand {
    /// Check the policy file and make it the one every running instance uses (they pick it
    /// up within one scanner tick; running timers keep their version until `sla recalc`).
    Reload,
    /// Re-target running timers under the policy in force; each change is an audited event.
    Recalc {
        /// Only orders of this area.
        #[arg(long)]
        area: Option<String>,
        /// Only timers started at or after this RFC 3339 time.
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Create a user; the password is read from standard input (first line).
    Create {
        #[arg(long)]
        username: String,
        #[arg(long, value_parser = parse_role)]
        role: Role,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        crew_id: Option<String>,
        /// Read the password from standard input (required: passwords never go on the command line).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
        .map_err(|_| format!("unknown role `{s}`: agent, dispatcher, crew, supervisor or admin"))
}

/// glibc gives every thread that allocates its own arena (up to 8 per core) and keeps what
/// they free: with actix's blocking threads each running database work, the server grew to
/// 280 MB under the lifecycle mix; two arenas hold it near 110 MB at the same throughput
/// (docs/benchmarks.md). `MALLOC_ARENA_MAX` in the environment still wins.
///
/// A password check (argon2) allocates 19 MiB and frees it. glibc's mmap threshold adapts
/// upwards after such a free, so the next ones came from the heap and stayed resident: a
/// burst of logins left the server at 195 MB. A fixed threshold of 1 MiB keeps large blocks
/// mapped and returns them when freed. `MALLOC_MMAP_THRESHOLD_` in the environment still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            // SAFETY: mallopt only sets an allocator parameter; it is called before any other
            // thread exists.
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, 2);
            }
        }
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_none() {
            // SAFETY: as above.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
            }
        }
    }
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match run(cli.command.unwrap_or(Command::Serve { bind: None })) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("gridcall: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), String> {
    let mut settings = Settings::load()?;
    match command {
        Command::Serve { bind } => {
            if let Some(bind) = bind {
                settings.server.bind = bind;
            }
            serve(settings)
        }
        Command::Migrate => {
            connect(&settings)?;
            println!("migrations are up to date");
            Ok(())
        }
        Command::CheckConfig => {
            let sla = settings.load_sla()?;
            gridcall::notify::Templates::load(
                settings
                    .mail
                    .templates_path(&settings.config_dir)
                    .as_deref(),
            )?;
            println!(
                "SLA policy {} ({} rules); calendars: {}",
                sla.policy.version,
                sla.policy.rules.len(),
                sla.calendars
                    .iter()
                    .map(|c| c.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let today = SystemClock
                .now()
                .with_timezone(&chrono_tz::Asia::Shanghai)
                .date_naive();
            use chrono::Datelike;
            if today.month() == 12 {
                for id in sla.calendars.missing_year(today.year() + 1) {
                    println!(
                        "warning: calendar `{id}` has no holiday data for {}",
                        today.year() + 1
                    );
                }
            }
            println!(
                "configuration is valid (environment {}, database {})",
                settings.environment,
                match DbTarget::from_url(&settings.database.url, 0, SqliteSynchronous::Full).backend
                {
                    Backend::Postgres => "PostgreSQL",
                    Backend::Sqlite => "SQLite",
                }
            );
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    username,
                    role,
                    display_name,
                    crew_id,
                    password_stdin: _,
                },
        } => {
            let mut input = String::new();
            std::io::stdin()
                .read_to_string(&mut input)
                .map_err(|e| format!("reading the password: {e}"))?;
            let password = input.lines().next().unwrap_or("").to_owned();
            let pool = connect(&settings)?;
            let mut conn = pool.get().map_err(|e| e.to_string())?;
            let cost = gridcall::auth::password::PasswordCost {
                memory_kib: settings.auth.argon2_memory_kib,
                iterations: settings.auth.argon2_iterations,
            };
            let new = NewUser {
                username,
                password,
                role,
                display_name,
                email: None,
                crew_id,
                area_codes: Vec::new(),
            };
            let user = users::create(&mut conn, new, SystemClock.now(), cost).map_err(describe)?;
            println!(
                "created user {} ({}) with id {}",
                user.username, user.role, user.id
            );
            Ok(())
        }
        Command::Backup { to } => backup(&settings, &to),
        Command::Seed {
            orders,
            until,
            seed,
        } => seed_year(&settings, orders, until.as_deref(), seed),
        Command::Sla { command } => sla(&settings, command),
    }
}

fn describe(e: gridcall::errors::AppError) -> String {
    match e {
        gridcall::errors::AppError::Validation(errors) => errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

fn seed_year(
    settings: &Settings,
    orders: usize,
    until: Option<&str>,
    seed: u64,
) -> Result<(), String> {
    let until = match until {
        Some(t) => chrono::DateTime::parse_from_rfc3339(t)
            .map_err(|e| format!("--until: {e}"))?
            .with_timezone(&chrono::Utc),
        None => SystemClock.now(),
    };
    let files = settings.load_sla()?;
    let ctx = gridcall::service::sla::SlaRuntime::new(files.policy, files.calendars).context();
    let pool = connect(settings)?;
    let mut conn = pool.get().map_err(|e| format!("database: {e}"))?;
    let started = std::time::Instant::now();
    let opts = gridcall::service::seed::SeedOptions {
        orders,
        until,
        seed,
    };
    let report = gridcall::service::seed::seed(&mut conn, &ctx, &opts, &mut |r| {
        if r.orders % 100_000 == 0 || r.orders == orders {
            log::info!(
                "seeded {} orders ({} timers, {} events, {} credits) in {:.0} s",
                r.orders,
                r.timers,
                r.events,
                r.credits,
                started.elapsed().as_secs_f64()
            );
        }
    })
    .map_err(describe)?;
    println!(
        "seeded {} areas, {} crews, {} orders, {} events, {} timers, {} credits, {} roll-up cells in {:.0} s",
        report.areas,
        report.crews,
        report.orders,
        report.events,
        report.timers,
        report.credits,
        report.cells,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn serve(settings: Settings) -> Result<(), String> {
    actix_web::rt::System::new().block_on(async move {
        let bind = settings.server.bind.clone();
        let app = Application::build(settings, Arc::new(SystemClock))?;
        log::info!("gridcall listening on {bind} (port {})", app.port());
        app.run_until_stopped().await.map_err(|e| e.to_string())
    })
}

fn sla(settings: &Settings, command: SlaCommand) -> Result<(), String> {
    let files = settings.load_sla()?;
    let pool = connect(settings)?;
    let now = SystemClock.now();
    match command {
        SlaCommand::Reload => {
            let mut conn = pool.get().map_err(|e| e.to_string())?;
            let version = files.policy.version.clone();
            let published = gridcall::db::write_transaction(&mut conn, |c| {
                gridcall::service::sla::publish_policy(c, &files.policy_text, &version, now)
            })
            .map_err(describe)?;
            if published {
                println!("published SLA policy {version}; running instances use it from their next scanner tick");
            } else {
                println!("SLA policy {version} is already published");
            }
            Ok(())
        }
        SlaCommand::Recalc { area, since } => {
            let since = since
                .map(|s| {
                    chrono::DateTime::parse_from_rfc3339(&s).map(|t| t.with_timezone(&chrono::Utc))
                })
                .transpose()
                .map_err(|e| format!("--since: {e}"))?;
            let runtime = gridcall::startup::start_sla(&pool, files, now)?;
            let mut conn = pool.get().map_err(|e| e.to_string())?;
            let (orders, changed) = gridcall::service::sla::recalculate_all(
                &mut conn,
                &runtime.context(),
                area.as_deref(),
                since,
                now,
            )
            .map_err(describe)?;
            println!("recalculated {orders} orders with running timers under policy {}: {changed} changed", runtime.policy().version);
            Ok(())
        }
    }
}

fn backup(settings: &Settings, to: &str) -> Result<(), String> {
    let target = DbTarget::from_url(
        &settings.database.url,
        settings.database.sqlite_busy_timeout_ms,
        SqliteSynchronous::Full,
    );
    if target.backend == Backend::Postgres {
        return Err("the database is PostgreSQL: back it up with pg_dump (e.g. `pg_dump -Fc -f gridcall.dump \"$DATABASE_URL\"`)".into());
    }
    if std::path::Path::new(to).exists() {
        return Err(format!("{to} exists; choose a new file"));
    }
    let mut conn = target.connect().map_err(|e| e.to_string())?;
    // VACUUM INTO reads one snapshot: a consistent copy even while the service writes.
    let statement = format!("VACUUM INTO '{}'", to.replace('\'', "''"));
    use diesel::connection::SimpleConnection;
    conn.batch_execute(&statement)
        .map_err(|e| format!("backup: {e}"))?;
    println!("backup written to {to}");
    Ok(())
}
