//! Bulk writes for `gridcall seed`: multi-row inserts on the backend's own connection (the
//! shared query builder has no multi-row insert for both).

use super::credits::CreditRow;
use super::events::NewEvent;
use super::rollups::{CreditCellRow, SlaCellRow};
use super::schema::{
    credit_rollups, crew_credits, sla_rollups, sla_timers, work_order_events, work_orders,
};
use super::timers::TimerRow;
use super::DbConnection;
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::prelude::*;

/// A whole order as the seed writes it.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = work_orders)]
pub struct SeedOrder {
    pub id: String,
    pub number: Option<String>,
    pub kind: String,
    pub category: String,
    pub grade: Option<String>,
    pub priority: String,
    pub channel: String,
    pub status: String,
    pub caller_name: Option<String>,
    pub caller_phone: Option<String>,
    pub area_code: String,
    pub address: Option<String>,
    pub description: String,
    pub resolution: Option<String>,
    pub assigned_crew_id: Option<String>,
    pub subject_crew_id: Option<String>,
    pub returned_crew_ids: String,
    pub reopen_count: i32,
    pub satisfaction: Option<String>,
    pub version: i32,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub resolved_at: Option<NaiveDateTime>,
    pub closed_at: Option<NaiveDateTime>,
}

/// A timer with what the roll-ups already hold for it.
#[derive(Debug, Clone)]
pub struct SeedTimer {
    pub row: TimerRow,
    pub rollup_applied: Option<String>,
}

/// A credit with what the roll-ups already hold for it.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = crew_credits)]
pub struct SeedCredit {
    #[diesel(embed)]
    pub row: CreditRow,
    pub rollup_applied: Option<String>,
}

macro_rules! bulk {
    ($name:ident, $table:expr, $row:ty, $chunk:expr) => {
        pub fn $name(conn: &mut DbConnection, rows: &[$row]) -> Result<(), AppError> {
            for chunk in rows.chunks($chunk) {
                match conn {
                    DbConnection::Postgresql(c) => {
                        diesel::insert_into($table).values(chunk).execute(c)?;
                    }
                    DbConnection::Sqlite(c) => {
                        diesel::insert_into($table).values(chunk).execute(c)?;
                    }
                }
            }
            Ok(())
        }
    };
}

bulk!(orders, work_orders::table, SeedOrder, 800);
bulk!(events, work_order_events::table, NewEvent, 1500);

/// Timers in batches of 500; a `TimerRow` is inserted by value (its state is written
/// through `serialize_as`), so each batch is built from copies.
pub fn timers(conn: &mut DbConnection, rows: &[SeedTimer]) -> Result<(), AppError> {
    for chunk in rows.chunks(500) {
        let values: Vec<_> = chunk
            .iter()
            .map(|t| {
                (
                    t.row.clone(),
                    sla_timers::rollup_applied.eq(t.rollup_applied.clone()),
                )
            })
            .collect();
        match conn {
            DbConnection::Postgresql(c) => {
                diesel::insert_into(sla_timers::table)
                    .values(values)
                    .execute(c)?;
            }
            DbConnection::Sqlite(c) => {
                diesel::insert_into(sla_timers::table)
                    .values(values)
                    .execute(c)?;
            }
        }
    }
    Ok(())
}
bulk!(credits, crew_credits::table, SeedCredit, 1500);
bulk!(sla_cells, sla_rollups::table, SlaCellRow, 1000);
bulk!(credit_cells, credit_rollups::table, CreditCellRow, 1500);

/// Vacuums PostgreSQL's tables and gathers its planner statistics, as its autovacuum would in
/// time: a year in service has been vacuumed many times over, while a bulk load leaves every
/// page to be dirtied and written again by its first reader (hint bits; seen: creates on a
/// year just seeded at 0.66–0.74 × an empty database's rate, 1.00–1.08 × once vacuumed, and
/// this machine kind's cluster runs with autovacuum off). SQLite is left as a live gridcall
/// database is: without statistics (its indexes are shaped not to need them).
pub fn analyze(conn: &mut DbConnection) -> Result<(), AppError> {
    if let DbConnection::Postgresql(pg) = conn {
        diesel::sql_query("VACUUM (ANALYZE)").execute(pg)?;
    }
    Ok(())
}

/// Whether the database holds any order (the seed writes only into an empty one).
pub fn has_orders(conn: &mut DbConnection) -> Result<bool, AppError> {
    Ok(work_orders::table
        .select(work_orders::seq)
        .first::<i64>(conn)
        .optional()?
        .is_some())
}
