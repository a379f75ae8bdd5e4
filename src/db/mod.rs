//! The database layer: one diesel code path over SQLite and PostgreSQL (`MultiConnection`),
//! the r2d2 pool, embedded migrations and the write-transaction helper. Knows no HTTP.

pub mod appeals;
pub mod areas;
pub mod auth;
pub mod credits;
pub mod crews;
pub mod customers;
pub mod event_stream;
pub mod events;
pub mod idempotency;
pub mod outages;
pub mod outbox;
pub mod reports;
pub mod rollups;
pub mod schema;
pub mod scorecards;
pub mod seed;
pub mod timers;
pub mod users;
pub mod work_orders;

use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
use diesel::prelude::*;
use diesel::r2d2::R2D2Connection;
use diesel_migrations::{embed_migrations, EmbeddedMigrations, MigrationHarness};
use std::time::Duration;

/// A connection to either backend; the backend is chosen by the URL's scheme.
#[derive(diesel::MultiConnection)]
pub enum DbConnection {
    Postgresql(diesel::PgConnection),
    Sqlite(diesel::SqliteConnection),
}

pub type PooledConn = r2d2::PooledConnection<ConnectionManager>;

/// The connection pool, with how long a request may wait for a connection.
///
/// r2d2 retries a failed connect with a back-off capped at half its own timeout, so that
/// timeout is kept short ([`RECONNECT_TIMEOUT`]: a database that comes back is reconnected
/// within a second) and the configured wait is applied here, in slices, by [`DbPool::checkout`].
#[derive(Clone)]
pub struct DbPool {
    pool: r2d2::Pool<ConnectionManager>,
    wait: Duration,
}

/// r2d2's own timeout; its reconnect back-off is capped at half of it.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// One slice of waiting for a connection.
const CHECKOUT_SLICE: Duration = Duration::from_millis(250);

impl std::ops::Deref for DbPool {
    type Target = r2d2::Pool<ConnectionManager>;

    fn deref(&self) -> &Self::Target {
        &self.pool
    }
}

impl DbPool {
    /// A connection, waiting up to the configured time while every connection is busy. When
    /// no connection to the database is alive (it is down: each pooled connection was dropped
    /// at its first failure and new ones cannot be made), the request is refused after one
    /// slice as unavailable (503) instead of hanging for the whole wait.
    pub fn checkout(&self) -> Result<PooledConn, crate::errors::AppError> {
        let started = std::time::Instant::now();
        loop {
            let slice = CHECKOUT_SLICE.min(self.wait.saturating_sub(started.elapsed()));
            match self.pool.get_timeout(slice.max(Duration::from_millis(1))) {
                Ok(conn) => return Ok(conn),
                Err(e) => {
                    if self.pool.state().connections == 0 || started.elapsed() >= self.wait {
                        return Err(e.into());
                    }
                }
            }
        }
    }
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgres");

/// Any key will do, as long as every gridcall instance uses the same one.
const MIGRATION_LOCK_KEY: i64 = 0x6772_6964_6361_6c6c;

/// Which backend a database URL selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// Where the database is and how to talk to it.
#[derive(Debug, Clone)]
pub struct DbTarget {
    pub backend: Backend,
    /// For SQLite a file path; for PostgreSQL the URL as given.
    pub location: String,
    pub busy_timeout_ms: u32,
    /// SQLite `synchronous` pragma: FULL survives power loss, NORMAL only process crashes.
    pub sqlite_synchronous: String,
}

impl DbTarget {
    /// Reads `postgres://…` / `postgresql://…` as PostgreSQL; `sqlite://…` or a plain path as SQLite.
    pub fn from_url(url: &str, busy_timeout_ms: u32, sqlite_synchronous: &str) -> DbTarget {
        let (backend, location) =
            if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                (Backend::Postgres, url.to_owned())
            } else if let Some(path) = url.strip_prefix("sqlite://") {
                (Backend::Sqlite, path.to_owned())
            } else {
                (
                    Backend::Sqlite,
                    url.strip_prefix("sqlite:").unwrap_or(url).to_owned(),
                )
            };
        DbTarget {
            backend,
            location,
            busy_timeout_ms,
            sqlite_synchronous: sqlite_synchronous.to_owned(),
        }
    }

    /// Opens one connection, set up for this service (SQLite pragmas on every connection).
    pub fn connect(&self) -> Result<DbConnection, diesel::r2d2::Error> {
        match self.backend {
            Backend::Postgres => {
                let mut conn = diesel::PgConnection::establish(&self.location)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // diesel prepares every statement once per connection. PostgreSQL would keep
                // a generic plan for it, costed on the table sizes of the moment the pool
                // connected (an empty table: a sequential scan looks best) and kept until the
                // next ANALYZE, which never comes where autovacuum is off (as on the machines
                // these benchmarks ran on). Planning each execution with its own
                // parameters and the tables as they are now costs a few microseconds and
                // needs no luck (docs/benchmarks.md, "Plans that do not age").
                conn.batch_execute("SET plan_cache_mode = force_custom_plan")
                    .map_err(diesel::r2d2::Error::QueryError)?;
                Ok(DbConnection::Postgresql(conn))
            }
            Backend::Sqlite => {
                if let Some(parent) = std::path::Path::new(&self.location).parent() {
                    if !parent.as_os_str().is_empty() && !parent.exists() {
                        std::fs::create_dir_all(parent).map_err(|e| {
                            diesel::r2d2::Error::ConnectionError(ConnectionError::BadConnection(
                                format!("cannot create {}: {e}", parent.display()),
                            ))
                        })?;
                    }
                }
                let mut conn = diesel::SqliteConnection::establish(&self.location)
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                let synchronous = match self.sqlite_synchronous.to_ascii_uppercase().as_str() {
                    "NORMAL" => "NORMAL",
                    "EXTRA" => "EXTRA",
                    _ => "FULL",
                };
                let pragmas = format!(
                    "PRAGMA busy_timeout = {}; PRAGMA synchronous = {synchronous}; PRAGMA foreign_keys = ON;",
                    self.busy_timeout_ms
                );
                conn.batch_execute(&pragmas)
                    .map_err(diesel::r2d2::Error::QueryError)?;
                // WAL is a property of the file: set it once. Asking again while another
                // connection writes would need a lock the busy timeout does not wait for.
                let mode: JournalMode = diesel::sql_query("PRAGMA journal_mode")
                    .get_result(&mut conn)
                    .map_err(diesel::r2d2::Error::QueryError)?;
                if !mode.journal_mode.eq_ignore_ascii_case("wal") {
                    conn.batch_execute("PRAGMA journal_mode = WAL;")
                        .map_err(diesel::r2d2::Error::QueryError)?;
                }
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

#[derive(diesel::QueryableByName)]
struct JournalMode {
    #[diesel(sql_type = diesel::sql_types::Text)]
    journal_mode: String,
}

/// The r2d2 manager: picks the backend by URL itself, because the derived `establish` tries
/// each backend in turn and hides the real error.
#[derive(Debug, Clone)]
pub struct ConnectionManager {
    target: DbTarget,
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        self.target.connect()
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

/// Builds the pool. Connections are opened lazily after the first, so a start with the
/// database briefly away still fails loudly on the first one.
pub fn build_pool(
    target: &DbTarget,
    max_size: u32,
    timeout: Duration,
) -> Result<DbPool, r2d2::Error> {
    // SQLite allows one writer at a time; more connections only add readers.
    let pool = r2d2::Pool::builder()
        .max_size(max_size.max(1))
        .connection_timeout(RECONNECT_TIMEOUT)
        .test_on_check_out(false)
        .error_handler(Box::new(ConnectFailures))
        .build(ConnectionManager {
            target: target.clone(),
        })?;
    Ok(DbPool {
        pool,
        wait: timeout,
    })
}

/// Logs a failed connect as one line (r2d2 retries about once a second while the database
/// is away).
#[derive(Debug)]
struct ConnectFailures;

impl r2d2::HandleError<diesel::r2d2::Error> for ConnectFailures {
    fn handle_error(&self, error: diesel::r2d2::Error) {
        log::warn!(
            "database connection failed: {}",
            crate::errors::one_line(&error.to_string())
        );
    }
}

/// Applies pending migrations under a lock, so several instances may start at once.
pub fn run_migrations(conn: &mut DbConnection) -> Result<Vec<String>, String> {
    match conn {
        DbConnection::Postgresql(pg) => {
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
                .execute(pg)
                .map_err(|e| e.to_string())?;
            let result = pg
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.iter().map(ToString::to_string).collect())
                .map_err(|e| e.to_string());
            let unlock =
                diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
                    .execute(pg);
            let applied = result?;
            unlock.map_err(|e| e.to_string())?;
            Ok(applied)
        }
        DbConnection::Sqlite(lite) => {
            // The write lock of an IMMEDIATE transaction is the migration lock; the harness's own
            // transactions nest inside it as savepoints.
            lite.immediate_transaction(|c| {
                c.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>())
                    .map_err(|e| MigrationError(e.to_string()))
            })
            .map_err(|e: MigrationError| e.0)
        }
    }
}

/// Whether migrations are missing (for readiness).
pub fn has_pending_migrations(conn: &mut DbConnection) -> Result<bool, String> {
    match conn {
        DbConnection::Postgresql(pg) => pg.has_pending_migration(POSTGRES_MIGRATIONS),
        DbConnection::Sqlite(lite) => lite.has_pending_migration(SQLITE_MIGRATIONS),
    }
    .map_err(|e| e.to_string())
}

#[derive(Debug)]
struct MigrationError(String);

impl From<diesel::result::Error> for MigrationError {
    fn from(e: diesel::result::Error) -> Self {
        MigrationError(e.to_string())
    }
}

/// Runs `f` on one consistent snapshot of the database, for reads made of several statements
/// (a report): on PostgreSQL a read-only REPEATABLE READ transaction, on SQLite a deferred one
/// (in WAL mode its first read fixes what it sees). Inside a transaction already open, `f`
/// runs in that one.
pub fn read_snapshot<T, E>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    let open = match conn {
        DbConnection::Sqlite(c) => AnsiTransactionManager::transaction_manager_status_mut(c)
            .transaction_depth()?
            .is_some(),
        DbConnection::Postgresql(c) => AnsiTransactionManager::transaction_manager_status_mut(c)
            .transaction_depth()?
            .is_some(),
    };
    if open {
        return f(conn);
    }
    match conn {
        DbConnection::Sqlite(c) => {
            AnsiTransactionManager::begin_transaction_sql(c, "BEGIN DEFERRED")?
        }
        DbConnection::Postgresql(c) => AnsiTransactionManager::begin_transaction_sql(
            c,
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        )?,
    }
    match f(conn) {
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(user_error) => {
            match <DbConnection as Connection>::TransactionManager::rollback_transaction(conn) {
                Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(user_error),
                Err(rollback_error) => Err(rollback_error.into()),
            }
        }
    }
}

/// Makes the write transaction just begun read one snapshot on PostgreSQL (REPEATABLE READ;
/// a conflicting concurrent write then fails it as a serialization failure, 409). Must be its
/// first statement. SQLite's `BEGIN IMMEDIATE` excludes other writers anyway.
pub fn repeatable_read(conn: &mut DbConnection) -> Result<(), diesel::result::Error> {
    if let DbConnection::Postgresql(c) = conn {
        diesel::sql_query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(c)?;
    }
    Ok(())
}

/// Whether the database is a PostgreSQL server with autovacuum off (`/readyz` warns: nothing
/// then removes dead rows or refreshes the statistics). SQLite has no such thing.
pub fn autovacuum_off(conn: &mut DbConnection) -> Result<bool, crate::errors::AppError> {
    #[derive(diesel::QueryableByName)]
    struct Setting {
        #[diesel(sql_type = diesel::sql_types::Text)]
        value: String,
    }
    match conn {
        DbConnection::Postgresql(pg) => {
            let s: Setting = diesel::sql_query("SELECT current_setting('autovacuum') AS value")
                .get_result(pg)?;
            Ok(s.value == "off")
        }
        DbConnection::Sqlite(_) => Ok(false),
    }
}

/// Runs `f` in a write transaction. On SQLite it opens with `BEGIN IMMEDIATE`, so the write
/// lock is taken up front and a read-then-write cannot fail with "database is locked"; the
/// busy timeout then queues writers. On PostgreSQL it is an ordinary transaction.
pub fn write_transaction<T, E>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    let nested = match conn {
        DbConnection::Sqlite(lite) => AnsiTransactionManager::transaction_manager_status_mut(lite)
            .transaction_depth()?
            .is_some(),
        DbConnection::Postgresql(_) => false,
    };
    match conn {
        // The outermost write transaction takes SQLite's write lock at once; a nested one
        // is a savepoint inside it.
        DbConnection::Sqlite(lite) if !nested => {
            AnsiTransactionManager::begin_transaction_sql(lite, "BEGIN IMMEDIATE")?
        }
        _ => <DbConnection as Connection>::TransactionManager::begin_transaction(conn)?,
    }
    match f(conn) {
        Ok(value) => {
            <DbConnection as Connection>::TransactionManager::commit_transaction(conn)?;
            Ok(value)
        }
        Err(user_error) => {
            match <DbConnection as Connection>::TransactionManager::rollback_transaction(conn) {
                Ok(()) | Err(diesel::result::Error::BrokenTransactionManager) => Err(user_error),
                Err(rollback_error) => Err(rollback_error.into()),
            }
        }
    }
}

/// Whether a diesel error is a unique-key violation.
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// JSON text column helpers: lists of codes are kept as JSON arrays.
pub fn to_json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

pub fn from_json_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_is_chosen_by_scheme() {
        assert_eq!(
            DbTarget::from_url("postgres://x/y", 1, "FULL").backend,
            Backend::Postgres
        );
        assert_eq!(
            DbTarget::from_url("postgresql://x/y", 1, "FULL").backend,
            Backend::Postgres
        );
        let t = DbTarget::from_url("sqlite://data/a.db", 1, "FULL");
        assert_eq!(
            (t.backend, t.location.as_str()),
            (Backend::Sqlite, "data/a.db")
        );
        assert_eq!(
            DbTarget::from_url("data/b.db", 1, "FULL").location,
            "data/b.db"
        );
    }
}
