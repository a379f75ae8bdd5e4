//! Several writes sent to PostgreSQL as one statement: the first ones as data-modifying
//! `WITH` queries, the last as the main statement (whose `RETURNING` is the answer). Each
//! round trip to the database costs the server a tenth of a create's CPU, so an order's
//! opening writes (the order, its events, its timers) go as one. Foreign keys are checked at
//! the end of the whole statement, so a write may refer to a row of another in the same one.

use diesel::pg::Pg;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::{QueryResult, RunQueryDsl};

/// `WITH w1 AS (…), w2 AS (…) main`: `writes` is a tuple of one or two statements without
/// `RETURNING`.
#[derive(Debug, Clone)]
pub struct WithWrites<Writes, Main> {
    writes: Writes,
    main: Main,
}

/// `writes` (a tuple), then `main`, as one statement.
pub fn with_writes<Writes, Main>(writes: Writes, main: Main) -> WithWrites<Writes, Main> {
    WithWrites { writes, main }
}

impl<A, M> QueryFragment<Pg> for WithWrites<(A,), M>
where
    A: QueryFragment<Pg>,
    M: QueryFragment<Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH w1 AS (");
        self.writes.0.walk_ast(out.reborrow())?;
        out.push_sql(") ");
        self.main.walk_ast(out.reborrow())
    }
}

impl<A, B, M> QueryFragment<Pg> for WithWrites<(A, B), M>
where
    A: QueryFragment<Pg>,
    B: QueryFragment<Pg>,
    M: QueryFragment<Pg>,
{
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        out.push_sql("WITH w1 AS (");
        self.writes.0.walk_ast(out.reborrow())?;
        out.push_sql("), w2 AS (");
        self.writes.1.walk_ast(out.reborrow())?;
        out.push_sql(") ");
        self.main.walk_ast(out.reborrow())
    }
}

// The text depends only on the types (a tuple's length, each statement's shape), so a
// statement of fixed parts is prepared once per connection, like its parts alone.
impl<Writes: QueryId, Main: QueryId> QueryId for WithWrites<Writes, Main> {
    type QueryId = WithWrites<Writes::QueryId, Main::QueryId>;
    const HAS_STATIC_QUERY_ID: bool = Writes::HAS_STATIC_QUERY_ID && Main::HAS_STATIC_QUERY_ID;
}

impl<Writes, Main: Query> Query for WithWrites<Writes, Main> {
    type SqlType = Main::SqlType;
}

impl<Writes, Main, Conn> RunQueryDsl<Conn> for WithWrites<Writes, Main> {}

/// [`WithWrites`] over a list of writes known only at run time (`w1`, `w2`, … in order, so
/// the main statement may read `w1`'s `RETURNING`). Its text varies with the list: run it as
/// [`super::KeptPrepared`] where the lists come from a bounded set of shapes.
pub struct WithWriteList<'a, Main> {
    writes: Vec<Box<dyn QueryFragment<Pg> + 'a>>,
    main: Main,
}

/// `writes` (at least one), then `main`, as one statement.
pub fn with_write_list<'a, Main>(
    writes: Vec<Box<dyn QueryFragment<Pg> + 'a>>,
    main: Main,
) -> WithWriteList<'a, Main> {
    WithWriteList { writes, main }
}

impl<Main: QueryFragment<Pg>> QueryFragment<Pg> for WithWriteList<'_, Main> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
        for (i, write) in self.writes.iter().enumerate() {
            out.push_sql(if i == 0 { "WITH " } else { ", " });
            out.push_sql(&format!("w{} AS (", i + 1));
            write.walk_ast(out.reborrow())?;
            out.push_sql(")");
        }
        out.push_sql(" ");
        self.main.walk_ast(out.reborrow())
    }
}

impl<Main> QueryId for WithWriteList<'_, Main> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<Main: Query> Query for WithWriteList<'_, Main> {
    type SqlType = Main::SqlType;
}

impl<Main, Conn> RunQueryDsl<Conn> for WithWriteList<'_, Main> {}
