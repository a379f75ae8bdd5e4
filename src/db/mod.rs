//! The database layer: one diesel code path over SQLite and PostgreSQL (`MultiConnection`),
//! the r2d2 pool, embedded migrations and the write-transaction helper. Knows no HTTP.

pub mod appeals;
pub mod areas;
pub mod auth;
pub mod credits;
pub mod crews;
mod cte;
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

/// Runs `$body` on the backend's own connection, bound to `$c`: for the statements of every
/// create and action. Through `DbConnection` diesel builds a query's SQL text again at each
/// execution (the derived `MultiConnection` serialises it for the backend, for the
/// statement-cache key and for the bind pass); on the backend's own connection a statement of
/// fixed shape is found in the cache by its type. That rebuilding was about 8 % of the
/// server's CPU in the lifecycle mix (perf, docs/benchmarks.md, ninth session).
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::DbConnection::Postgresql($c) => $body,
            $crate::db::DbConnection::Sqlite($c) => $body,
        }
    };
}
pub(crate) use on_backend;

/// A statement the connection keeps prepared, found in its cache by its SQL text, where diesel
/// would prepare it for one execution: diesel never caches an `UPDATE`, because the columns a
/// changeset sets vary. Here they vary over a few shapes (one per kind of change in the
/// code), while an unprepared statement is parsed and planned again by PostgreSQL (0.1 ms a
/// time: a quarter of its CPU in the lifecycle mix went to the guarded updates of orders and
/// timers) or by SQLite. Only for statements whose text comes from a bounded set of shapes.
///
/// Load its rows (`get_result`, `load`; an update returns a column to count): `execute`
/// hands diesel the statement by reference, and a reference forgets this wrapper's answer.
#[derive(Debug, Clone, Copy)]
pub struct KeptPrepared<Q>(pub Q);

impl<Q, DB> diesel::query_builder::QueryFragment<DB> for KeptPrepared<Q>
where
    Q: diesel::query_builder::QueryFragment<DB>,
    DB: diesel::backend::Backend,
{
    fn walk_ast<'b>(&'b self, pass: diesel::query_builder::AstPass<'_, 'b, DB>) -> QueryResult<()> {
        self.0.walk_ast(pass)
    }

    fn is_safe_to_cache_prepared(&self, _backend: &DB) -> QueryResult<bool> {
        Ok(true)
    }
}

impl<Q> diesel::query_builder::QueryId for KeptPrepared<Q> {
    type QueryId = ();
    // The cache key is the statement's text (and its binds' types), not a type.
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Q: diesel::query_builder::Query> diesel::query_builder::Query for KeptPrepared<Q> {
    type SqlType = Q::SqlType;
}

impl<Q, Conn> RunQueryDsl<Conn> for KeptPrepared<Q> {}

/// The connection pool, with how long a request may wait for a connection.
///
/// r2d2 retries a failed connect with a back-off capped at half its own timeout, so that
/// timeout is kept short ([`RECONNECT_TIMEOUT`]: a database that comes back is reconnected
/// within a second) and the configured wait is applied here, in slices, by [`DbPool::checkout`].
#[derive(Clone)]
pub struct DbPool {
    pool: r2d2::Pool<ConnectionManager>,
    /// PostgreSQL: connections whose session plans as [`Plans::IndexedOnce`], for creates and
    /// actions ([`DbPool::run_indexed`]); `None` where they share `pool` (SQLite, dedicated
    /// pools).
    indexed: Option<r2d2::Pool<ConnectionManager>>,
    wait: Duration,
    target: DbTarget,
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
        self.checkout_from(&self.pool)
    }

    fn checkout_from(
        &self,
        pool: &r2d2::Pool<ConnectionManager>,
    ) -> Result<PooledConn, crate::errors::AppError> {
        let started = std::time::Instant::now();
        loop {
            let slice = CHECKOUT_SLICE.min(self.wait.saturating_sub(started.elapsed()));
            match pool.get_timeout(slice.max(Duration::from_millis(1))) {
                Ok(conn) => return Ok(conn),
                Err(e) => {
                    if pool.state().connections == 0 || started.elapsed() >= self.wait {
                        return Err(e.into());
                    }
                }
            }
        }
    }

    /// Connections (idle, open) of this pool and its write sessions together.
    pub fn usage(&self) -> (u32, u32) {
        let mut idle_open = (0, 0);
        for pool in std::iter::once(&self.pool).chain(self.indexed.as_ref()) {
            let state = pool.state();
            idle_open.0 += state.idle_connections;
            idle_open.1 += state.connections;
        }
        idle_open
    }

    /// Which database this pool talks to.
    pub fn backend(&self) -> Backend {
        self.target.backend
    }

    /// A separate pool of `size` connections to the same database, for a task that must not
    /// wait behind request traffic for a connection (the event hub: at the maximum rate every
    /// connection of the main pool is taken most of the time, and r2d2 hands a returned
    /// connection to whoever asks first, not to the longest waiter).
    pub fn dedicated(&self, size: u32) -> Result<DbPool, r2d2::Error> {
        build_pool(&self.target, size, self.wait)
    }

    /// This pool with a sibling of `size` connections for creates and actions, on PostgreSQL
    /// (on SQLite they share the pool). The sibling's sessions plan as
    /// [`Plans::IndexedOnce`] from the start, so the write transactions of creates and actions
    /// open with a plain `BEGIN` instead of setting the plans for each transaction, and a
    /// create whose writes are one statement needs no transaction at all
    /// (`service::work_orders::create`): two round trips of four.
    pub fn with_write_sessions(mut self, size: u32) -> Result<DbPool, r2d2::Error> {
        if self.target.backend == Backend::Postgres {
            self.indexed = Some(r2d2_pool(&self.target, Plans::IndexedOnce, size)?);
        }
        Ok(self)
    }

    /// Runs `f` with a pooled connection on the runtime's blocking threads, never on the
    /// async executor (diesel's calls block). The one way async code reaches the database.
    pub async fn run<T, F>(&self, f: F) -> Result<T, crate::errors::AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, crate::errors::AppError> + Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = pool.checkout()?;
            f(&mut conn)
        })
        .await
        .map_err(|e| crate::errors::AppError::internal(format!("blocking task failed: {e}")))?
    }

    /// [`DbPool::run`] for a create or an action: on PostgreSQL with a connection of the
    /// write sessions ([`DbPool::with_write_sessions`]), whose plans [`session_plans`] tells
    /// the code `f` runs while it runs.
    pub async fn run_indexed<T, F>(&self, f: F) -> Result<T, crate::errors::AppError>
    where
        T: Send + 'static,
        F: FnOnce(&mut DbConnection) -> Result<T, crate::errors::AppError> + Send + 'static,
    {
        let pool = self.clone();
        tokio::task::spawn_blocking(move || match &pool.indexed {
            Some(indexed) => {
                let mut conn = pool.checkout_from(indexed)?;
                let _session = SessionPlans::set(Plans::IndexedOnce);
                f(&mut conn)
            }
            None => f(&mut *pool.checkout()?),
        })
        .await
        .map_err(|e| crate::errors::AppError::internal(format!("blocking task failed: {e}")))?
    }
}

thread_local! {
    /// How the session of the connection this thread was handed by [`DbPool::run_indexed`]
    /// plans; every other connection's is [`Plans::PerExecution`].
    static SESSION_PLANS: std::cell::Cell<Plans> = const { std::cell::Cell::new(Plans::PerExecution) };
}

/// Marks this thread's connection as planning as `plans` until dropped.
struct SessionPlans(Plans);

impl SessionPlans {
    fn set(plans: Plans) -> SessionPlans {
        SessionPlans(SESSION_PLANS.with(|c| c.replace(plans)))
    }
}

impl Drop for SessionPlans {
    fn drop(&mut self) {
        SESSION_PLANS.with(|c| c.set(self.0));
    }
}

/// How PostgreSQL plans the statements `conn` runs outside a transaction: `Some` on
/// PostgreSQL (what [`DbPool::run_indexed`] handed this thread, else the pool's
/// per-execution planning), `None` on SQLite.
pub fn session_plans(conn: &DbConnection) -> Option<Plans> {
    match conn {
        DbConnection::Postgresql(_) => Some(SESSION_PLANS.with(std::cell::Cell::get)),
        DbConnection::Sqlite(_) => None,
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

/// SQLite's `synchronous` pragma: FULL survives power loss, NORMAL only process crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
pub enum SqliteSynchronous {
    #[serde(rename = "OFF", alias = "off")]
    Off,
    #[serde(rename = "NORMAL", alias = "normal")]
    Normal,
    #[serde(rename = "FULL", alias = "full")]
    Full,
    #[serde(rename = "EXTRA", alias = "extra")]
    Extra,
}

impl SqliteSynchronous {
    fn pragma_value(self) -> &'static str {
        match self {
            SqliteSynchronous::Off => "OFF",
            SqliteSynchronous::Normal => "NORMAL",
            SqliteSynchronous::Full => "FULL",
            SqliteSynchronous::Extra => "EXTRA",
        }
    }
}

/// Where the database is and how to talk to it.
#[derive(Debug, Clone)]
pub struct DbTarget {
    pub backend: Backend,
    /// For SQLite a file path; for PostgreSQL the URL as given.
    pub location: String,
    pub busy_timeout_ms: u32,
    pub sqlite_synchronous: SqliteSynchronous,
}

impl DbTarget {
    /// Reads `postgres://…` / `postgresql://…` as PostgreSQL; `sqlite://…` or a plain path as SQLite.
    pub fn from_url(
        url: &str,
        busy_timeout_ms: u32,
        sqlite_synchronous: SqliteSynchronous,
    ) -> DbTarget {
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
            sqlite_synchronous,
        }
    }

    /// Opens one connection, set up for this service (SQLite pragmas on every connection).
    pub fn connect(&self) -> Result<DbConnection, diesel::r2d2::Error> {
        self.connect_planned(Plans::PerExecution)
    }

    /// [`DbTarget::connect`], with a PostgreSQL session that plans as `plans`.
    fn connect_planned(&self, plans: Plans) -> Result<DbConnection, diesel::r2d2::Error> {
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
                // needs no luck (docs/benchmarks.md, "Plans that do not age"); the write
                // sessions keep plans built from index scans only (`Plans::IndexedOnce`).
                conn.batch_execute(plans.session_sql())
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
                let synchronous = self.sqlite_synchronous.pragma_value();
                // Temporary storage (statement journals, sorts) in memory: as files, every
                // write statement inside a transaction opened, wrote and closed one (open and
                // close were 3 % of a create's CPU on SQLite).
                let pragmas = format!(
                    "PRAGMA busy_timeout = {}; PRAGMA synchronous = {synchronous}; \
                     PRAGMA foreign_keys = ON; PRAGMA temp_store = MEMORY;",
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
                let file = sqlite_main_file(&mut conn).map_err(diesel::r2d2::Error::QueryError)?;
                writer_queue::register(file, self);
                Ok(DbConnection::Sqlite(conn))
            }
        }
    }
}

/// The file behind a SQLite connection's main database (empty for an in-memory one): the key
/// of its writer queue.
fn sqlite_main_file(conn: &mut diesel::SqliteConnection) -> Result<String, diesel::result::Error> {
    #[derive(diesel::QueryableByName)]
    struct MainFile {
        #[diesel(sql_type = diesel::sql_types::Text)]
        file: String,
    }
    // Asked at every write transaction: kept prepared, not parsed each time.
    let row: MainFile = KeptPrepared(diesel::sql_query(
        "SELECT file FROM pragma_database_list WHERE name = 'main'",
    ))
    .get_result(conn)?;
    Ok(row.file)
}

/// Write transactions and commits of this process on one SQLite file: writers queued behind
/// each other share one commit, so `transactions / commits` is the mean group size.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteCounts {
    pub transactions: u64,
    pub commits: u64,
}

/// The [`WriteCounts`] of the SQLite file behind `conn`; `None` on PostgreSQL (and for a file
/// this process has not written).
pub fn sqlite_write_counts(
    conn: &mut DbConnection,
) -> Result<Option<WriteCounts>, diesel::result::Error> {
    match conn {
        DbConnection::Sqlite(lite) => Ok(writer_queue::counts(&sqlite_main_file(lite)?)),
        DbConnection::Postgresql(_) => Ok(None),
    }
}

/// Writers of one SQLite database file queue here, in arrival order, and write through one
/// connection. SQLite admits one writer at a time, and its busy handler, left to itself, has
/// each waiter sleep in growing steps (up to 100 ms) and retry: not a queue, so an unlucky
/// request slept through many others' commits (creates at 16 connections: p50 9 ms, p99
/// 1.3 s). Inside one process a fair lock hands the write lock on in order; the busy handler
/// still arbitrates between processes (the CLI beside a running server).
///
/// The lock guards the writer connection itself. Each SQLite connection has its own page
/// cache, and a commit by any other connection empties it: when every pooled connection
/// wrote in turn, each write transaction found its cache stale and read every page it
/// touched again from the file, one `pread` a page (kernel time was 43 % of a create's CPU,
/// docs/benchmarks.md). The one writer's cache is only ever changed by its own commits, so
/// it stays warm.
///
/// Writers that queue behind each other commit together (group commit). A commit with
/// `synchronous = FULL` syncs the WAL to disk (0.3–0.6 ms on this machine kind's disk) while
/// every other writer waits, and writes again the pages the previous commit wrote (the right
/// edges of the same indexes). So a writer that finds the next one already waiting leaves
/// the transaction open and hands the writer on: each writer's work is a savepoint inside one
/// transaction, released when its work succeeds and rolled back to when it fails, and the
/// last writer of the group (the one nobody waits behind, or the [`GROUP_LIMIT`]th) commits
/// for all. No writer returns before the commit that made its work durable, so the contract
/// of [`super::write_transaction`] is unchanged: `Ok` means committed. If that commit fails,
/// or a writer's savepoint cannot be closed (the transaction is then in doubt), the whole
/// group is rolled back and every writer of it gets the error: none of them was answered yet.
mod writer_queue {
    use super::{DbConnection, DbTarget};
    use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};
    use diesel::r2d2::R2D2Connection;
    use parking_lot::{ArcMutexGuard, Condvar, FairMutex, Mutex, RawFairMutex};
    use std::collections::HashMap;
    use std::num::NonZeroU32;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, LazyLock};
    use std::time::Duration;

    /// The writer's page cache, in KiB: the pages a year of writes keeps touching (the right
    /// edges of the growing indexes, the small tables) with room to spare, well inside the
    /// server's memory budget.
    const WRITER_CACHE_KIB: u32 = 16 * 1024;

    /// The most writers one commit makes durable. A writer waits for its group's commit, so
    /// this bounds how long the first of a group waits for those behind it.
    pub(super) const GROUP_LIMIT: u32 = 32;

    /// How long a writer that handed its group on waits before it looks for itself whether the
    /// group was left open with nobody to commit it (the writer it was handed to gave up
    /// waiting for its turn at the same moment).
    const SETTLE_CHECK: Duration = Duration::from_millis(20);

    /// One queue per database file, kept for the life of the process.
    struct Queue {
        writer: Arc<FairMutex<Writer>>,
        /// Writers waiting for their turn: a finished writer hands the group on only to one.
        waiting: Arc<AtomicUsize>,
        wait: Duration,
        target: DbTarget,
        counts: Arc<Counts>,
    }

    /// The writer connection and the group whose transaction is open on it.
    struct Writer {
        conn: Option<DbConnection>,
        group: Option<Arc<Group>>,
        /// Writers whose work the open group holds.
        members: u32,
    }

    /// Write transactions and commits of one file since the process started: their ratio is
    /// the mean group size.
    #[derive(Default)]
    pub(super) struct Counts {
        pub(super) transactions: AtomicU64,
        pub(super) commits: AtomicU64,
    }

    /// One group commit: how it ended, once it has, for every writer waiting on it.
    #[derive(Default)]
    struct Group {
        outcome: Mutex<Option<Result<(), String>>>,
        settled: Condvar,
    }

    impl Group {
        fn settle(&self, outcome: Result<(), String>) {
            *self.outcome.lock() = Some(outcome);
            self.settled.notify_all();
        }

        /// The outcome, waiting at most `wait` for it.
        fn outcome_within(&self, wait: Duration) -> Option<Result<(), String>> {
            let mut outcome = self.outcome.lock();
            if outcome.is_none() {
                self.settled.wait_for(&mut outcome, wait);
            }
            outcome.clone()
        }
    }

    static QUEUES: LazyLock<std::sync::Mutex<HashMap<String, Queue>>> =
        LazyLock::new(|| std::sync::Mutex::new(HashMap::new()));

    /// Makes the queue of `file` (idempotent; the first connection's settings are kept).
    pub(super) fn register(file: String, target: &DbTarget) {
        if file.is_empty() {
            return;
        }
        let mut queues = QUEUES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        queues.entry(file).or_insert_with(|| Queue {
            writer: Arc::new(FairMutex::new(Writer {
                conn: None,
                group: None,
                members: 0,
            })),
            waiting: Arc::new(AtomicUsize::new(0)),
            wait: Duration::from_millis(u64::from(target.busy_timeout_ms)),
            target: target.clone(),
            counts: Arc::default(),
        });
    }

    /// The counts of `file`'s queue, if it has one.
    pub(super) fn counts(file: &str) -> Option<super::WriteCounts> {
        let queues = QUEUES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        queues.get(file).map(|q| super::WriteCounts {
            transactions: q.counts.transactions.load(Ordering::Relaxed),
            commits: q.counts.commits.load(Ordering::Relaxed),
        })
    }

    /// Writers waiting for their turn on `file`.
    #[cfg(test)]
    pub(super) fn waiting(file: &str) -> usize {
        of(file).map_or(0, |q| q.waiting.load(Ordering::SeqCst))
    }

    /// Counts a writer that is not there (a test of a group handed on to a writer that gave
    /// up waiting): `true` to add one, `false` to take it away.
    #[cfg(test)]
    pub(super) fn pretend_waiting(file: &str, add: bool) {
        if let Some(q) = of(file) {
            if add {
                q.waiting.fetch_add(1, Ordering::SeqCst);
            } else {
                q.waiting.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    /// A handle on `file`'s queue; `None` for a file without one (in memory).
    pub(super) fn of(file: &str) -> Option<Handle> {
        let queues = QUEUES
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        queues.get(file).map(|q| Handle {
            writer: Arc::clone(&q.writer),
            waiting: Arc::clone(&q.waiting),
            wait: q.wait,
            target: q.target.clone(),
            counts: Arc::clone(&q.counts),
        })
    }

    pub(super) struct Handle {
        writer: Arc<FairMutex<Writer>>,
        waiting: Arc<AtomicUsize>,
        wait: Duration,
        target: DbTarget,
        counts: Arc<Counts>,
    }

    type Turn = ArcMutexGuard<RawFairMutex, Writer>;

    /// How a writer's own work ended inside its group.
    enum Work<T, E> {
        /// Its savepoint was released (`Ok`) or rolled back to (`Err`): the group goes on.
        Closed(Result<T, E>),
        /// Its savepoint could not be closed, or it panicked: the group's transaction is in
        /// doubt and is rolled back.
        Broken(Result<T, E>, String),
        Panicked(Box<dyn std::any::Any + Send>),
    }

    impl Handle {
        /// Runs `f` as one writer of a group commit (see the module's documentation).
        pub(super) fn write<T, E>(
            &self,
            f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
        ) -> Result<T, E>
        where
            E: From<diesel::result::Error>,
        {
            let mut turn = self.wait_turn()?;
            let group = self.join(&mut turn)?;
            let work = {
                let conn = turn
                    .conn
                    .as_mut()
                    .ok_or(diesel::result::Error::BrokenTransactionManager)?;
                run_savepoint(conn, f)
            };
            self.counts.transactions.fetch_add(1, Ordering::Relaxed);
            let result = match work {
                Work::Closed(result) => result,
                Work::Broken(result, why) => {
                    abandon(&mut turn, &why);
                    drop(turn);
                    return match result {
                        Ok(_) => Err(group_failed(&why).into()),
                        Err(e) => Err(e),
                    };
                }
                Work::Panicked(payload) => {
                    abandon(&mut turn, "a writer of the group panicked");
                    drop(turn);
                    std::panic::resume_unwind(payload);
                }
            };
            turn.members += 1;
            let hand_on = turn.members < GROUP_LIMIT && self.waiting.load(Ordering::SeqCst) > 0;
            let outcome = if hand_on {
                drop(turn);
                self.outcome_of(&group)
            } else {
                self.commit(&mut turn)
            };
            match outcome {
                Ok(()) => result,
                Err(why) => Err(group_failed(&why).into()),
            }
        }

        fn wait_turn(&self) -> Result<Turn, diesel::result::Error> {
            self.waiting.fetch_add(1, Ordering::SeqCst);
            let turn = self.writer.try_lock_arc_for(self.wait);
            self.waiting.fetch_sub(1, Ordering::SeqCst);
            turn.ok_or_else(super::database_locked)
        }

        /// The open group, or a new one: the writer connection (opened on first use, and
        /// opened again when the last one broke) with a transaction begun.
        fn join(&self, turn: &mut Turn) -> Result<Arc<Group>, diesel::result::Error> {
            if let Some(group) = &turn.group {
                return Ok(Arc::clone(group));
            }
            let usable = match turn.conn.as_mut() {
                Some(DbConnection::Sqlite(lite)) => {
                    !lite.is_broken()
                        && AnsiTransactionManager::transaction_manager_status_mut(lite)
                            .transaction_depth()
                            .is_ok_and(|depth| depth.is_none())
                }
                _ => false,
            };
            if !usable {
                turn.conn = None;
                let mut conn = self.target.connect().map_err(|e| match e {
                    diesel::r2d2::Error::QueryError(e) => e,
                    diesel::r2d2::Error::ConnectionError(e) => {
                        diesel::result::Error::DatabaseError(
                            diesel::result::DatabaseErrorKind::ClosedConnection,
                            Box::new(e.to_string()),
                        )
                    }
                })?;
                conn.batch_execute(&format!("PRAGMA cache_size = -{WRITER_CACHE_KIB}"))?;
                turn.conn = Some(conn);
            }
            let Some(DbConnection::Sqlite(lite)) = turn.conn.as_mut() else {
                return Err(diesel::result::Error::BrokenTransactionManager);
            };
            AnsiTransactionManager::begin_transaction_sql(lite, "BEGIN IMMEDIATE")?;
            let group = Arc::new(Group::default());
            turn.group = Some(Arc::clone(&group));
            turn.members = 0;
            Ok(group)
        }

        /// Commits the open group and tells its writers how it ended.
        fn commit(&self, turn: &mut Turn) -> Result<(), String> {
            let Some(group) = turn.group.take() else {
                return Err("the group was already closed".to_owned());
            };
            turn.members = 0;
            let outcome = match turn.conn.as_mut() {
                Some(conn) => {
                    <DbConnection as diesel::Connection>::TransactionManager::commit_transaction(
                        conn,
                    )
                    .map_err(|e| e.to_string())
                }
                None => Err("the writer connection was lost".to_owned()),
            };
            if outcome.is_err() {
                // Replaced at the next turn if the failed commit left it unusable.
                if let Some(DbConnection::Sqlite(lite)) = turn.conn.as_mut() {
                    let open = AnsiTransactionManager::transaction_manager_status_mut(lite)
                        .transaction_depth()
                        .map_or(true, |depth| depth.is_some());
                    if open {
                        turn.conn = None;
                    }
                }
            }
            self.counts.commits.fetch_add(1, Ordering::Relaxed);
            group.settle(outcome.clone());
            outcome
        }

        /// Waits for the commit of a group this writer handed on. Should the group be left
        /// open with the writer free (the writer it was handed to gave up waiting for its
        /// turn), it commits the group itself.
        fn outcome_of(&self, group: &Arc<Group>) -> Result<(), String> {
            loop {
                if let Some(outcome) = group.outcome_within(SETTLE_CHECK) {
                    return outcome;
                }
                if let Some(mut turn) = self.writer.try_lock_arc() {
                    let still_open = turn
                        .group
                        .as_ref()
                        .is_some_and(|open| Arc::ptr_eq(open, group));
                    if still_open {
                        return self.commit(&mut turn);
                    }
                }
            }
        }
    }

    /// Runs a writer's work in a savepoint of the group's transaction.
    fn run_savepoint<T, E>(
        conn: &mut DbConnection,
        f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
    ) -> Work<T, E>
    where
        E: From<diesel::result::Error>,
    {
        type Tm = <DbConnection as diesel::Connection>::TransactionManager;
        if let Err(e) = Tm::begin_transaction(conn) {
            return Work::Broken(Err(e.into()), "a savepoint could not be opened".to_owned());
        }
        let result = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut *conn)))
        {
            Ok(result) => result,
            Err(payload) => return Work::Panicked(payload),
        };
        let closed = match &result {
            Ok(_) => Tm::commit_transaction(conn),
            Err(_) => Tm::rollback_transaction(conn),
        };
        let depth = match conn {
            DbConnection::Sqlite(lite) => {
                AnsiTransactionManager::transaction_manager_status_mut(lite).transaction_depth()
            }
            DbConnection::Postgresql(_) => Ok(None),
        };
        match (closed, depth) {
            (Ok(()), Ok(Some(depth))) if depth == NonZeroU32::MIN => Work::Closed(result),
            (Err(e), _) => Work::Broken(result, format!("a savepoint could not be closed: {e}")),
            _ => Work::Broken(result, "the group's transaction ended early".to_owned()),
        }
    }

    /// Rolls back the open group (by dropping the connection: SQLite rolls back what a closed
    /// connection left uncommitted) and tells its writers why.
    fn abandon(turn: &mut Turn, why: &str) {
        turn.conn = None;
        turn.members = 0;
        if let Some(group) = turn.group.take() {
            group.settle(Err(why.to_owned()));
        }
    }

    fn group_failed(why: &str) -> diesel::result::Error {
        diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::Unknown,
            Box::new(format!("the write transaction was rolled back: {why}")),
        )
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
    /// How a PostgreSQL session of this pool plans.
    session: Plans,
}

impl r2d2::ManageConnection for ConnectionManager {
    type Connection = DbConnection;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<DbConnection, Self::Error> {
        self.target.connect_planned(self.session)
    }

    fn is_valid(&self, conn: &mut DbConnection) -> Result<(), Self::Error> {
        conn.ping().map_err(diesel::r2d2::Error::QueryError)
    }

    fn has_broken(&self, conn: &mut DbConnection) -> bool {
        conn.is_broken()
    }
}

/// How long a pooled connection lives. Plans a connection keeps (`Plans::IndexedOnce`) are
/// built from the tables as they were then; a table empty at that moment gives every index
/// the same cost, and the kept plan could be one that reads a whole index once the table has
/// grown. A new connection plans again from the tables' current size, so no kept plan is
/// older than this. Reconnecting costs a few milliseconds per connection per period.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// Builds the pool. Connections are opened lazily after the first, so a start with the
/// database briefly away still fails loudly on the first one.
pub fn build_pool(
    target: &DbTarget,
    max_size: u32,
    timeout: Duration,
) -> Result<DbPool, r2d2::Error> {
    Ok(DbPool {
        pool: r2d2_pool(target, Plans::PerExecution, max_size)?,
        indexed: None,
        wait: timeout,
        target: target.clone(),
    })
}

fn r2d2_pool(
    target: &DbTarget,
    session: Plans,
    max_size: u32,
) -> Result<r2d2::Pool<ConnectionManager>, r2d2::Error> {
    // SQLite allows one writer at a time; more connections only add readers.
    r2d2::Pool::builder()
        .max_size(max_size.max(1))
        .connection_timeout(RECONNECT_TIMEOUT)
        .max_lifetime(Some(CONNECTION_LIFETIME))
        .test_on_check_out(false)
        .error_handler(Box::new(ConnectFailures))
        .build(ConnectionManager {
            target: target.clone(),
            session,
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
    if in_transaction(conn)? {
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

/// How PostgreSQL plans the statements of a write transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plans {
    /// Each execution planned with its own values and the tables as they are (the pooled
    /// connection's `plan_cache_mode = force_custom_plan`, "Plans that do not age" in
    /// docs/benchmarks.md): no plan kept from when the tables were small.
    PerExecution,
    /// One plan per statement and connection, built from plain index scans only and kept
    /// (`force_generic_plan`, `enable_seqscan = off` and `enable_bitmapscan = off` for the
    /// transaction), so a plan does not depend on the tables' size when it was built, and
    /// never adds a second index that would read every open order's entry (a bitmap `AND`
    /// with the status index, chosen on a table without statistics). JIT compilation is off:
    /// a scan that has no index (a table of ten areas) carries the cost that disables it,
    /// which is above the threshold for JIT, and compiling took 70–100 ms an execution. For
    /// transactions whose every statement has an index shaped for it (or reads a table of a
    /// few rows) and costs more to plan than to run: a create's opening read took 0.59 ms to
    /// plan and 0.09 ms to run (docs/benchmarks.md).
    IndexedOnce,
}

impl Plans {
    /// What opens a transaction whose statements plan as `self` on a session that plans as
    /// `session`, on PostgreSQL: the settings travel with the `BEGIN`, in the same round trip,
    /// and end with the transaction.
    fn begin_sql(self, session: Plans) -> &'static str {
        match (self, session) {
            (Plans::PerExecution, Plans::PerExecution)
            | (Plans::IndexedOnce, Plans::IndexedOnce) => "BEGIN",
            (Plans::IndexedOnce, Plans::PerExecution) => {
                "BEGIN; SET LOCAL plan_cache_mode = force_generic_plan; \
                 SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; \
                 SET LOCAL jit = off"
            }
            (Plans::PerExecution, Plans::IndexedOnce) => {
                "BEGIN; SET LOCAL plan_cache_mode = force_custom_plan; \
                 SET LOCAL enable_seqscan TO DEFAULT; SET LOCAL enable_bitmapscan TO DEFAULT; \
                 SET LOCAL jit TO DEFAULT"
            }
        }
    }

    /// The settings a PostgreSQL session that plans as `self` starts with.
    fn session_sql(self) -> &'static str {
        match self {
            Plans::PerExecution => "SET plan_cache_mode = force_custom_plan",
            Plans::IndexedOnce => {
                "SET plan_cache_mode = force_generic_plan; SET enable_seqscan = off; \
                 SET enable_bitmapscan = off; SET jit = off"
            }
        }
    }
}

/// Whether `conn` is inside a transaction: then a statement is not atomic on its own (what
/// follows may still roll it back). A connection whose transaction state is broken answers
/// an error.
pub fn in_transaction(conn: &mut DbConnection) -> Result<bool, diesel::result::Error> {
    Ok(match conn {
        DbConnection::Sqlite(c) => AnsiTransactionManager::transaction_manager_status_mut(c)
            .transaction_depth()?
            .is_some(),
        DbConnection::Postgresql(c) => AnsiTransactionManager::transaction_manager_status_mut(c)
            .transaction_depth()?
            .is_some(),
    })
}

/// Runs `f` in a write transaction; `Ok` means committed. On SQLite the transaction opens
/// with `BEGIN IMMEDIATE`, so the write lock is taken up front and a read-then-write cannot
/// fail with "database is locked"; writers of this process wait for it in a fair queue and
/// write through its one connection (`writer_queue`: `f` is handed that connection, not
/// `conn`), writers queued behind each other share one commit (`f` runs in a savepoint of
/// it), and other processes wait through the busy timeout. On PostgreSQL it is an ordinary
/// transaction.
pub fn write_transaction<T, E>(
    conn: &mut DbConnection,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    write_transaction_planned(conn, Plans::PerExecution, f)
}

/// [`write_transaction`], with its statements planned as `plans` says on PostgreSQL (SQLite
/// plans each statement when it is prepared, from the schema and its statistics). A nested
/// transaction is a savepoint and keeps its outer transaction's settings.
pub fn write_transaction_planned<T, E>(
    conn: &mut DbConnection,
    plans: Plans,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    let nested = in_transaction(conn)?;
    match conn {
        // The outermost write transaction waits its turn in this process's queue for the
        // file, then runs on the writer connection as one writer of a group commit (the group's
        // transaction took SQLite's write lock at once); a nested one is a savepoint inside it.
        DbConnection::Sqlite(lite) if !nested => {
            let file = sqlite_main_file(lite)?;
            match writer_queue::of(&file) {
                Some(queue) => queue.write(f),
                None => run_transaction(conn, Begin::SqliteImmediate, f),
            }
        }
        DbConnection::Postgresql(_) if !nested => {
            let session = SESSION_PLANS.with(std::cell::Cell::get);
            run_transaction(conn, Begin::Postgres(plans.begin_sql(session)), f)
        }
        _ => run_transaction(conn, Begin::Plain, f),
    }
}

/// How [`run_transaction`] opens its transaction.
enum Begin {
    SqliteImmediate,
    /// PostgreSQL's `BEGIN` with the plan settings the transaction needs.
    Postgres(&'static str),
    /// The backend's own `BEGIN`, or a savepoint inside an open transaction.
    Plain,
}

fn run_transaction<T, E>(
    conn: &mut DbConnection,
    begin: Begin,
    f: impl FnOnce(&mut DbConnection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<diesel::result::Error>,
{
    match (begin, &mut *conn) {
        (Begin::SqliteImmediate, DbConnection::Sqlite(lite)) => {
            AnsiTransactionManager::begin_transaction_sql(lite, "BEGIN IMMEDIATE")?;
        }
        (Begin::Postgres(sql), DbConnection::Postgresql(pg)) => {
            AnsiTransactionManager::begin_transaction_sql(pg, sql)?;
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

/// The error SQLite gives when its busy timeout runs out, for a writer whose turn did not come
/// in as long.
fn database_locked() -> diesel::result::Error {
    diesel::result::Error::DatabaseError(
        diesel::result::DatabaseErrorKind::Unknown,
        Box::new("database is locked".to_owned()),
    )
}

/// A new key for a row of a growing table (orders, timers, credits, outbox, …): a UUID of
/// version 7, which begins with its creation time, so that inserts land at the right edge of
/// the key's index and of the indexes that carry it (an order's events and timers), as on an
/// empty table. Random (version 4) keys sent every insert to a different leaf of indexes of
/// millions of entries: on a seeded year, 5.5 full-page WAL images a create where an empty
/// database wrote none (docs/benchmarks.md). Secrets (tokens) stay random.
pub fn new_row_key() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// Whether a diesel error is a unique-key violation.
pub fn is_unique_violation(e: &diesel::result::Error) -> bool {
    matches!(
        e,
        diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)
    )
}

/// JSON text column helpers: lists of codes are kept as JSON arrays.
/// A list of codes or ids stored as a JSON array of strings in a TEXT column (both backends).
/// A stored value that is not such an array fails the read (500, logged): it is never read
/// as an empty list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoredList(pub Vec<String>);

impl TryFrom<String> for StoredList {
    type Error = serde_json::Error;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        serde_json::from_str(&text).map(StoredList)
    }
}

impl From<StoredList> for String {
    fn from(list: StoredList) -> String {
        to_json_list(&list.0)
    }
}

impl std::ops::Deref for StoredList {
    type Target = Vec<String>;
    fn deref(&self) -> &Vec<String> {
        &self.0
    }
}

/// A nullable stored enum (`deserialize_as = Option<String>`): NULL reads as `None`, a value
/// no variant of `T` names fails the read (500, logged) instead of reading as `None`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoredOption<T>(pub Option<T>);

impl<T: TryFrom<String>> TryFrom<Option<String>> for StoredOption<T> {
    type Error = T::Error;
    fn try_from(text: Option<String>) -> Result<Self, T::Error> {
        text.map(T::try_from).transpose().map(StoredOption)
    }
}

impl<T> std::ops::Deref for StoredOption<T> {
    type Target = Option<T>;
    fn deref(&self) -> &Option<T> {
        &self.0
    }
}

pub fn to_json_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn row_keys_are_version_7_and_sort_in_the_order_they_were_made() {
        let keys: Vec<String> = (0..1000).map(|_| new_row_key()).collect();
        for k in &keys {
            assert_eq!(uuid::Uuid::parse_str(k).unwrap().get_version_num(), 7);
        }
        assert!(
            keys.windows(2).all(|w| w[0] < w[1]),
            "text order is creation order"
        );
    }

    #[test]
    fn a_stored_list_reads_back_or_fails_loudly() {
        let list = StoredList(vec!["SZ-FT-01".into(), "广州".into()]);
        let text = String::from(list.clone());
        assert_eq!(StoredList::try_from(text).unwrap(), list);
        assert_eq!(
            StoredList::try_from("[]".to_owned()).unwrap(),
            StoredList::default()
        );
        for bad in ["", "SZ-FT-01", "{}", "[1]", "[\"a\""] {
            assert!(
                StoredList::try_from(bad.to_owned()).is_err(),
                "{bad:?} is not a list"
            );
        }
    }

    #[test]
    fn a_stored_option_reads_null_as_none_and_an_unknown_value_as_an_error() {
        use crate::domain::Status;
        assert_eq!(
            StoredOption::<Status>::try_from(None).unwrap(),
            StoredOption(None)
        );
        assert_eq!(
            StoredOption::<Status>::try_from(Some("en_route".to_owned())).unwrap(),
            StoredOption(Some(Status::EnRoute))
        );
        for bad in ["", "paused", "EN_ROUTE"] {
            assert!(StoredOption::<Status>::try_from(Some(bad.to_owned())).is_err());
        }
    }

    #[test]
    fn backend_is_chosen_by_scheme() {
        assert_eq!(
            DbTarget::from_url("postgres://x/y", 1, SqliteSynchronous::Full).backend,
            Backend::Postgres
        );
        assert_eq!(
            DbTarget::from_url("postgresql://x/y", 1, SqliteSynchronous::Full).backend,
            Backend::Postgres
        );
        let t = DbTarget::from_url("sqlite://data/a.db", 1, SqliteSynchronous::Full);
        assert_eq!(
            (t.backend, t.location.as_str()),
            (Backend::Sqlite, "data/a.db")
        );
        assert_eq!(
            DbTarget::from_url("data/b.db", 1, SqliteSynchronous::Full).location,
            "data/b.db"
        );
    }

    fn sqlite_file(busy_timeout_ms: u32) -> (tempfile::TempDir, DbTarget) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("queue.db");
        let target = DbTarget::from_url(
            path.to_str().expect("utf-8"),
            busy_timeout_ms,
            SqliteSynchronous::Normal,
        );
        let mut conn = target.connect().expect("connect");
        conn.batch_execute("CREATE TABLE t (n INTEGER NOT NULL)")
            .expect("table");
        (dir, target)
    }

    fn insert(conn: &mut DbConnection, n: i32) -> Result<(), diesel::result::Error> {
        write_transaction(conn, |c| {
            diesel::sql_query(format!("INSERT INTO t (n) VALUES ({n})"))
                .execute(c)
                .map(drop)
        })
    }

    fn rows_in_t(conn: &mut DbConnection) -> i64 {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let count: Count = diesel::sql_query("SELECT count(*) AS n FROM t")
            .get_result(conn)
            .expect("count");
        count.n
    }

    /// Holds a write transaction on its own thread until told to commit.
    fn hold_write(target: &DbTarget) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let mut holder = target.connect().expect("connect");
        let handle = std::thread::spawn(move || {
            write_transaction(&mut holder, |c| {
                diesel::sql_query("INSERT INTO t (n) VALUES (0)").execute(c)?;
                started_tx.send(()).expect("started");
                release_rx.recv().expect("release");
                Ok::<_, diesel::result::Error>(())
            })
            .expect("holder commits");
        });
        started_rx.recv().expect("holder started");
        (release_tx, handle)
    }

    #[test]
    fn a_writer_waits_its_turn_and_then_commits() {
        let (_dir, target) = sqlite_file(10_000);
        let (release, holder) = hold_write(&target);
        let mut conn = target.connect().expect("connect");
        let waiter = std::thread::spawn(move || insert(&mut conn, 1));
        release.send(()).expect("release");
        holder.join().expect("holder");
        waiter
            .join()
            .expect("waiter")
            .expect("the waiter commits after the holder");
        let mut conn = target.connect().expect("connect");
        assert_eq!(rows_in_t(&mut conn), 2);
    }

    /// A connection-local mark: a temporary table exists only on the connection that made it.
    fn has_temp_mark(c: &mut DbConnection) -> Result<bool, diesel::result::Error> {
        #[derive(diesel::QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let row: Count = diesel::sql_query(
            "SELECT count(*) AS n FROM sqlite_temp_master WHERE name = 'writer_mark'",
        )
        .get_result(c)?;
        Ok(row.n == 1)
    }

    #[test]
    fn every_write_transaction_of_the_process_runs_on_the_one_writer_connection() {
        let (_dir, target) = sqlite_file(10_000);
        let mut first = target.connect().expect("connect");
        let mut second = target.connect().expect("connect");
        write_transaction(&mut first, |c| {
            c.batch_execute("CREATE TEMP TABLE writer_mark (x INTEGER)")
        })
        .expect("mark the writer");
        assert!(
            !has_temp_mark(&mut first).expect("read"),
            "the pooled connection is not the writer"
        );
        let seen = write_transaction(&mut second, has_temp_mark).expect("write");
        assert!(
            seen,
            "a write through another pooled connection ran on the same writer"
        );
    }

    #[test]
    fn a_writer_that_panicked_inside_its_transaction_is_replaced() {
        let (_dir, target) = sqlite_file(10_000);
        let mut conn = target.connect().expect("connect");
        let panicked = std::thread::spawn({
            let target = target.clone();
            move || {
                let mut conn = target.connect().expect("connect");
                let _ = write_transaction(&mut conn, |c| {
                    diesel::sql_query("INSERT INTO t (n) VALUES (7)").execute(c)?;
                    panic!("a writer fails half-way");
                    #[expect(unreachable_code)]
                    Ok::<_, diesel::result::Error>(())
                });
            }
        })
        .join();
        assert!(panicked.is_err());
        insert(&mut conn, 1).expect("the next writer commits on a new writer connection");
        assert_eq!(
            rows_in_t(&mut conn),
            1,
            "the panicked writer's insert was never committed"
        );
    }

    fn main_file(target: &DbTarget) -> String {
        match target.connect().expect("connect") {
            DbConnection::Sqlite(mut lite) => sqlite_main_file(&mut lite).expect("file"),
            DbConnection::Postgresql(_) => unreachable!("a SQLite target"),
        }
    }

    fn counts(target: &DbTarget) -> WriteCounts {
        writer_queue::counts(&main_file(target)).unwrap_or_default()
    }

    /// Starts `work` as a writer on its own thread and returns once it waits for its turn
    /// (the queue is fair: writers started this way take their turns in this order).
    fn queue_writer<T: Send + 'static>(
        target: &DbTarget,
        work: impl FnOnce(&mut DbConnection) -> Result<T, diesel::result::Error> + Send + 'static,
    ) -> std::thread::JoinHandle<Result<T, diesel::result::Error>> {
        let file = main_file(target);
        let before = writer_queue::waiting(&file);
        let mut conn = target.connect().expect("connect");
        let handle = std::thread::spawn(move || write_transaction(&mut conn, work));
        while writer_queue::waiting(&file) == before {
            std::thread::yield_now();
        }
        handle
    }

    fn insert_row(n: i32) -> impl FnOnce(&mut DbConnection) -> Result<(), diesel::result::Error> {
        move |c| {
            diesel::sql_query(format!("INSERT INTO t (n) VALUES ({n})"))
                .execute(c)
                .map(drop)
        }
    }

    fn rows(conn: &mut DbConnection) -> Vec<i32> {
        #[derive(diesel::QueryableByName)]
        struct Row {
            #[diesel(sql_type = diesel::sql_types::Integer)]
            n: i32,
        }
        let rows: Vec<Row> = diesel::sql_query("SELECT n FROM t ORDER BY n")
            .load(conn)
            .expect("rows");
        rows.into_iter().map(|r| r.n).collect()
    }

    #[test]
    fn writers_queued_behind_each_other_share_one_commit() {
        let (_dir, target) = sqlite_file(10_000);
        let (release, holder) = hold_write(&target);
        let writers: Vec<_> = (1..=8)
            .map(|n| queue_writer(&target, insert_row(n)))
            .collect();
        release.send(()).expect("release");
        holder.join().expect("holder");
        for w in writers {
            w.join().expect("writer").expect("committed");
        }
        let mut conn = target.connect().expect("connect");
        assert_eq!(rows(&mut conn), (0..=8).collect::<Vec<_>>());
        assert_eq!(
            counts(&target),
            WriteCounts {
                transactions: 9,
                commits: 1
            },
            "the holder handed on to the eight waiting writers and the last committed for all"
        );
        insert(&mut conn, 9).expect("a writer alone");
        assert_eq!(
            counts(&target),
            WriteCounts {
                transactions: 10,
                commits: 2
            },
            "with nobody waiting behind it a writer commits at once"
        );
    }

    #[test]
    fn a_writer_whose_work_fails_inside_a_group_takes_back_only_its_own_writes() {
        let (_dir, target) = sqlite_file(10_000);
        let (release, holder) = hold_write(&target);
        let first = queue_writer(&target, insert_row(1));
        let failing = queue_writer(&target, |c| {
            insert_row(2)(c)?;
            Err::<(), _>(diesel::result::Error::RollbackTransaction)
        });
        let last = queue_writer(&target, insert_row(3));
        release.send(()).expect("release");
        holder.join().expect("holder");
        first.join().expect("first").expect("committed");
        assert!(matches!(
            failing.join().expect("failing"),
            Err(diesel::result::Error::RollbackTransaction)
        ));
        last.join().expect("last").expect("committed");
        let mut conn = target.connect().expect("connect");
        assert_eq!(rows(&mut conn), vec![0, 1, 3]);
        assert_eq!(counts(&target).commits, 1);
    }

    #[test]
    fn a_writer_that_panics_inside_a_group_fails_the_group_and_no_write_of_it_is_committed() {
        let (_dir, target) = sqlite_file(10_000);
        let (started_tx, started_rx) = std::sync::mpsc::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let mut conn = target.connect().expect("connect");
        let holder = std::thread::spawn(move || {
            write_transaction(&mut conn, |c| {
                insert_row(0)(c)?;
                started_tx.send(()).expect("started");
                release_rx.recv().expect("release");
                Ok::<_, diesel::result::Error>(())
            })
        });
        started_rx.recv().expect("holder started");
        let panicking = queue_writer(&target, |c| {
            insert_row(2)(c)?;
            panic!("a writer fails half-way");
            #[expect(unreachable_code)]
            Ok(())
        });
        release_tx.send(()).expect("release");
        let e = holder
            .join()
            .expect("no panic")
            .expect_err("the holder handed on to the panicking writer: its group was rolled back");
        assert!(e.to_string().contains("panicked"), "{e}");
        assert!(
            panicking.join().is_err(),
            "the panic reaches its own caller"
        );
        let mut conn = target.connect().expect("connect");
        insert(&mut conn, 3).expect("the next writer commits on a new writer connection");
        assert_eq!(rows(&mut conn), vec![3]);
    }

    #[test]
    fn a_group_handed_on_to_a_writer_that_gave_up_is_committed_by_the_writer_that_waits_for_it() {
        let (_dir, target) = sqlite_file(10_000);
        let file = main_file(&target);
        let mut conn = target.connect().expect("connect");
        // It finishes while one writer seems to wait behind it, which never takes its turn.
        writer_queue::pretend_waiting(&file, true);
        let waiter = std::thread::spawn(move || insert(&mut conn, 1));
        std::thread::sleep(Duration::from_millis(100));
        writer_queue::pretend_waiting(&file, false);
        waiter
            .join()
            .expect("waiter")
            .expect("committed by its own writer after the check interval");
        let mut conn = target.connect().expect("connect");
        assert_eq!(rows(&mut conn), vec![1]);
        assert_eq!(counts(&target).commits, 1);
    }

    #[test]
    fn a_writer_whose_turn_does_not_come_in_the_busy_timeout_is_told_the_database_is_locked() {
        let (_dir, target) = sqlite_file(50);
        let (release, holder) = hold_write(&target);
        let mut conn = target.connect().expect("connect");
        use actix_web::ResponseError;
        let e = insert(&mut conn, 1).expect_err("the holder keeps the lock");
        assert!(e.to_string().contains("database is locked"), "{e}");
        assert_eq!(
            crate::errors::AppError::from(e).status_code(),
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE
        );
        release.send(()).expect("release");
        holder.join().expect("holder");
        insert(&mut conn, 2).expect("the lock is free again");
    }
}
