//! The report roll-up job: folds ended stage instances and credited facts written since its
//! last pass into their day and month cells, until none is left (docs/reports.md, "Speed").

use crate::db::DbConnection;
use crate::errors::AppError;
use crate::service::rollups::{fold, Folded};
use crate::service::sla::SlaContext;
use chrono::{DateTime, Utc};

#[derive(Debug, Clone, Copy)]
pub struct Rollup {
    /// Rows per transaction.
    pub batch: i64,
}

impl Rollup {
    /// Folds batches until a pass finds fewer than a batch left; returns what it folded.
    pub fn run_once(
        &self,
        conn: &mut DbConnection,
        ctx: &SlaContext,
        now: DateTime<Utc>,
    ) -> Result<Folded, AppError> {
        let mut total = Folded::default();
        loop {
            let pass = fold(conn, ctx, now, self.batch)?;
            total.instances += pass.instances;
            total.credits += pass.credits;
            let full = i64::try_from(pass.instances.max(pass.credits)).unwrap_or(i64::MAX);
            if full < self.batch {
                return Ok(total);
            }
        }
    }
}
