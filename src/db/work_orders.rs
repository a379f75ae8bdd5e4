//! Work orders: rows, guarded updates and the list query.

use super::events::NewEvent;
use super::schema::{customers, work_orders};
use super::timers::TimerRow;
use super::{on_backend, DbConnection, KeptPrepared};
use crate::domain::sla::TimerState;
use crate::domain::state_machine::{Channel, Grade, Kind, Priority, Satisfaction, Status};
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::dsl::exists;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = work_orders)]
pub struct WorkOrderRow {
    pub seq: i64,
    pub id: String,
    pub number: Option<String>,
    #[diesel(deserialize_as = String)]
    pub kind: Kind,
    pub category: String,
    #[diesel(deserialize_as = Option<String>)]
    pub grade: super::StoredOption<Grade>,
    #[diesel(deserialize_as = String)]
    pub priority: Priority,
    #[diesel(deserialize_as = String)]
    pub channel: Channel,
    #[diesel(deserialize_as = String)]
    pub status: Status,
    #[diesel(deserialize_as = Option<String>)]
    pub suspended_from: super::StoredOption<Status>,
    pub suspend_until: Option<NaiveDateTime>,
    pub customer_id: Option<String>,
    pub caller_name: Option<String>,
    pub caller_phone: Option<String>,
    pub area_code: String,
    pub address: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub description: String,
    pub resolution: Option<String>,
    pub assigned_crew_id: Option<String>,
    pub master_id: Option<String>,
    pub subject_crew_id: Option<String>,
    pub outage_id: Option<String>,
    #[diesel(deserialize_as = String)]
    pub returned_crew_ids: super::StoredList,
    pub urge_count: i32,
    pub reopen_count: i32,
    #[diesel(deserialize_as = Option<String>)]
    pub satisfaction: super::StoredOption<Satisfaction>,
    pub version: i32,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    pub resolved_at: Option<NaiveDateTime>,
    pub closed_at: Option<NaiveDateTime>,
}

/// None is written as NULL (none of these columns has a default), so the statement's text is
/// the same for every order and the connection prepares it once.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = work_orders, treat_none_as_default_value = false)]
pub struct NewWorkOrder {
    pub id: String,
    pub kind: String,
    pub category: String,
    pub grade: Option<String>,
    pub priority: String,
    pub channel: String,
    pub status: String,
    pub customer_id: Option<String>,
    pub caller_name: Option<String>,
    pub caller_phone: Option<String>,
    pub area_code: String,
    pub address: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub description: String,
    pub subject_crew_id: Option<String>,
    pub master_id: Option<String>,
    pub outage_id: Option<String>,
    pub created_by: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

/// Column changes of one state change or correction; `version` and `updated_at` always move.
#[derive(Debug, Default, Clone, AsChangeset)]
#[diesel(table_name = work_orders)]
pub struct WorkOrderChanges {
    pub category: Option<String>,
    pub grade: Option<Option<String>>,
    pub priority: Option<String>,
    pub status: Option<String>,
    pub suspended_from: Option<Option<String>>,
    pub suspend_until: Option<Option<NaiveDateTime>>,
    pub area_code: Option<String>,
    pub address: Option<Option<String>>,
    pub lat: Option<Option<f64>>,
    pub lon: Option<Option<f64>>,
    pub description: Option<String>,
    pub resolution: Option<Option<String>>,
    pub assigned_crew_id: Option<Option<String>>,
    pub master_id: Option<Option<String>>,
    pub outage_id: Option<Option<String>>,
    pub returned_crew_ids: Option<String>,
    pub urge_count: Option<i32>,
    pub reopen_count: Option<i32>,
    pub satisfaction: Option<Option<String>>,
    pub version: Option<i32>,
    pub updated_at: Option<NaiveDateTime>,
    pub resolved_at: Option<Option<NaiveDateTime>>,
    pub closed_at: Option<Option<NaiveDateTime>>,
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<WorkOrderRow>, AppError> {
    Ok(on_backend!(conn, |c| work_orders::table
        .filter(work_orders::id.eq(id))
        .select(WorkOrderRow::as_select())
        .first(c)
        .optional())?)
}

/// An order as an action reads it, in one statement: the row, every timer of it (ordered as
/// [`super::timers::of_order_noting_pauses`] orders them), whether any force-majeure window
/// ends after the order was created or has not ended (only then are the windows read), and
/// when the crew holding the order last resolved it (a resolve credited again is a repeat),
/// and what picks the policy rule of timers it starts ([`rule_facts`]; none when its area
/// does not exist).
#[derive(Debug, Clone)]
pub struct OrderForAction {
    pub order: WorkOrderRow,
    pub timers: Vec<TimerRow>,
    pub any_window: bool,
    pub holder_resolved_at: Option<NaiveDateTime>,
    pub rule: Option<RuleFacts>,
    /// Whether orders are merged into it and waiting on it ([`merged_into`] would find some).
    pub has_merged: bool,
}

diesel::alias!(work_orders as merged_orders: MergedOrders);

pub fn find_for_action(
    conn: &mut DbConnection,
    id: &str,
) -> Result<Option<OrderForAction>, AppError> {
    use super::schema::{areas, crew_credits, sla_pauses, sla_timers};
    // The subqueries refer to the order's own columns: each is an index probe (the windows
    // two, as one `IS NULL OR >` filter would walk every window that ended before).
    let windows = exists(sla_pauses::table.filter(sla_pauses::ends_at.is_null())).or(exists(
        sla_pauses::table.filter(sla_pauses::ends_at.gt(work_orders::created_at.nullable())),
    ));
    let holder_resolved_at = crew_credits::table
        .filter(crew_credits::work_order_id.eq(work_orders::id))
        .filter(crew_credits::fact.eq(super::credits::Fact::Resolve.as_str()))
        .filter(
            crew_credits::crew_id
                .nullable()
                .eq(work_orders::assigned_crew_id),
        )
        .select(diesel::dsl::max(crew_credits::at))
        .single_value();
    let customer_tier = customers::table
        .filter(customers::id.nullable().eq(work_orders::customer_id))
        .select(customers::tier)
        .single_value();
    let phone_tier = |tier: &'static str| {
        exists(
            customers::table
                .filter(customers::phone.nullable().eq(work_orders::caller_phone))
                .filter(customers::tier.eq(tier)),
        )
    };
    let has_merged = exists(
        merged_orders
            .filter(
                merged_orders
                    .field(work_orders::master_id)
                    .eq(work_orders::id.nullable()),
            )
            .filter(merged_orders.field(work_orders::status).eq("merged")),
    );
    type Row = (
        WorkOrderRow,
        Option<TimerRow>,
        Option<super::areas::AreaRow>,
        (bool, bool),
        Option<NaiveDateTime>,
        (Option<String>, bool, bool),
    );
    let rows: Vec<Row> = on_backend!(conn, |c| work_orders::table
        .left_join(sla_timers::table.on(sla_timers::work_order_id.eq(work_orders::id)))
        .left_join(areas::table.on(areas::code.eq(work_orders::area_code)))
        .filter(work_orders::id.eq(id))
        .select((
            WorkOrderRow::as_select(),
            Option::<TimerRow>::as_select(),
            Option::<super::areas::AreaRow>::as_select(),
            (windows, has_merged),
            holder_resolved_at,
            (
                customer_tier,
                phone_tier("important"),
                phone_tier("sensitive"),
            ),
        ))
        .order((
            sla_timers::started_at,
            sla_timers::stage,
            sla_timers::instance,
        ))
        .load(c))?;
    let mut rows = rows.into_iter();
    let Some((order, first, area, (any_window, has_merged), holder_resolved_at, tiers)) =
        rows.next()
    else {
        return Ok(None);
    };
    let timers = first
        .into_iter()
        .chain(rows.filter_map(|(_, timer, ..)| timer))
        .collect();
    let (customer_tier, phone_tier_important, phone_tier_sensitive) = tiers;
    Ok(Some(OrderForAction {
        order,
        timers,
        any_window,
        holder_resolved_at,
        rule: area.map(|area| RuleFacts {
            area,
            customer_tier,
            phone_tier_important,
            phone_tier_sensitive,
        }),
        has_merged,
    }))
}

/// Inserts an order and gives it its number: the kind letter, the local date and the row's
/// sequence value. The sequence is the database's own (no counter row to contend on).
/// `drawn` is a value [`opening_facts`] took from the sequence already.
pub fn insert(
    conn: &mut DbConnection,
    row: &NewWorkOrder,
    number_prefix: &str,
    drawn: Option<i64>,
) -> Result<WorkOrderRow, AppError> {
    let number = |seq: i64| format!("{number_prefix}{seq:06}");
    match conn {
        // The sequence value (drawn by the opening read, or here), then one INSERT with the
        // number; the row as stored (defaults included) comes back without a re-read.
        DbConnection::Postgresql(pg) => {
            let next: i64 = match drawn {
                Some(next) => next,
                None => diesel::select(nextval(SEQUENCE)).get_result(pg)?,
            };
            Ok(diesel::insert_into(work_orders::table)
                .values((
                    row,
                    work_orders::seq.eq(next),
                    work_orders::number.eq(number(next)),
                ))
                .returning(WorkOrderRow::as_returning())
                .get_result(pg)?)
        }
        // SQLite assigns the rowid in the INSERT; a statement here costs no round trip.
        DbConnection::Sqlite(lite) => {
            let mut stored: WorkOrderRow = diesel::insert_into(work_orders::table)
                .values(row)
                .returning(WorkOrderRow::as_returning())
                .get_result(lite)?;
            let n = number(stored.seq);
            KeptPrepared(
                diesel::update(work_orders::table.filter(work_orders::seq.eq(stored.seq)))
                    .set(work_orders::number.eq(&n))
                    .returning(work_orders::seq),
            )
            .get_result::<i64>(lite)?;
            stored.number = Some(n);
            Ok(stored)
        }
    }
}

/// Inserts a new order with its first events (`events`, given the order's number) and its
/// opening timers. On PostgreSQL, with the sequence value drawn already, the three are one
/// statement ([`super::cte`]); elsewhere, and for shapes that statement does not cover, one
/// after the other in the caller's transaction.
pub fn insert_opening(
    conn: &mut DbConnection,
    row: &NewWorkOrder,
    number_prefix: &str,
    drawn: Option<i64>,
    events: impl FnOnce(&str) -> Vec<NewEvent>,
    timers: &[TimerRow],
) -> Result<WorkOrderRow, AppError> {
    let (created, list) = match (&mut *conn, drawn) {
        (DbConnection::Postgresql(pg), Some(seq)) => {
            let number = format!("{number_prefix}{seq:06}");
            let list = events(&number);
            if let Some(created) = insert_as_one(pg, row, (seq, &number), &list, timers)? {
                return Ok(created);
            }
            (insert(conn, row, number_prefix, drawn)?, list)
        }
        _ => {
            let created = insert(conn, row, number_prefix, drawn)?;
            let list = events(created.number.as_deref().unwrap_or_default());
            (created, list)
        }
    };
    super::events::insert_many(conn, &list)?;
    super::timers::insert_many(conn, timers)?;
    Ok(created)
}

/// [`insert_opening`] when it is one statement (PostgreSQL, the sequence value drawn, a shape
/// [`insert_as_one`] knows), for a create that needs no transaction; `None`, with nothing
/// written, otherwise.
pub fn insert_opening_alone(
    conn: &mut DbConnection,
    row: &NewWorkOrder,
    number_prefix: &str,
    drawn: Option<i64>,
    events: impl FnOnce(&str) -> Vec<NewEvent>,
    timers: &[TimerRow],
) -> Result<Option<WorkOrderRow>, AppError> {
    match (conn, drawn) {
        (DbConnection::Postgresql(pg), Some(seq)) => {
            let number = format!("{number_prefix}{seq:06}");
            insert_as_one(pg, row, (seq, &number), &events(&number), timers)
        }
        _ => Ok(None),
    }
}

/// The order, one or two events and up to three running timers as one statement, or none
/// for another shape. Each shape is a statement of fixed text, prepared once per connection.
fn insert_as_one(
    pg: &mut diesel::PgConnection,
    row: &NewWorkOrder,
    (seq, number): (i64, &str),
    events: &[NewEvent],
    timers: &[TimerRow],
) -> Result<Option<WorkOrderRow>, AppError> {
    use super::cte::with_writes;
    use super::schema::{sla_timers, work_order_events};
    if timers.iter().any(|t| t.ended_at.is_some()) {
        return Ok(None);
    }
    let order = diesel::insert_into(work_orders::table)
        .values((
            row,
            work_orders::seq.eq(seq),
            work_orders::number.eq(number),
        ))
        .returning(WorkOrderRow::as_returning());
    let event = || diesel::insert_into(work_order_events::table);
    let timer = || diesel::insert_into(sla_timers::table);
    let stored = match (events, timers) {
        ([e], []) => with_writes((event().values(e),), order).get_result(pg)?,
        ([e1, e2], []) => {
            with_writes((event().values([e1.clone(), e2.clone()]),), order).get_result(pg)?
        }
        ([e], [t]) => {
            with_writes((event().values(e), timer().values(t.clone())), order).get_result(pg)?
        }
        ([e], [t1, t2]) => with_writes(
            (event().values(e), timer().values([t1.clone(), t2.clone()])),
            order,
        )
        .get_result(pg)?,
        ([e], [t1, t2, t3]) => with_writes(
            (
                event().values(e),
                timer().values([t1.clone(), t2.clone(), t3.clone()]),
            ),
            order,
        )
        .get_result(pg)?,
        _ => return Ok(None),
    };
    Ok(Some(stored))
}

/// The PostgreSQL sequence that numbers orders (`work_orders.seq`).
const SEQUENCE: &str = "work_orders_seq_seq";

diesel::define_sql_function! {
    /// PostgreSQL's next value of a sequence.
    fn nextval(sequence: diesel::sql_types::Text) -> diesel::sql_types::BigInt;
}

/// Applies `changes` only if the order still has `expected_version`; false if it moved on.
pub fn guarded_update(
    conn: &mut DbConnection,
    id: &str,
    expected_version: i32,
    changes: &WorkOrderChanges,
) -> Result<bool, AppError> {
    let target = work_orders::table
        .filter(work_orders::id.eq(id))
        .filter(work_orders::version.eq(expected_version));
    let written = on_backend!(conn, |c| KeptPrepared(
        diesel::update(target)
            .set(changes)
            .returning(work_orders::version)
    )
    .get_result::<i32>(c)
    .optional())?;
    Ok(written.is_some())
}

/// [`guarded_update`] that returns the row as stored (one statement): `None` if it moved on.
pub fn guarded_update_returning(
    conn: &mut DbConnection,
    id: &str,
    expected_version: i32,
    changes: &WorkOrderChanges,
) -> Result<Option<WorkOrderRow>, AppError> {
    let target = work_orders::table
        .filter(work_orders::id.eq(id))
        .filter(work_orders::version.eq(expected_version));
    // `returning` is typed per backend: one statement for each.
    Ok(match conn {
        DbConnection::Postgresql(pg) => KeptPrepared(
            diesel::update(target)
                .set(changes)
                .returning(WorkOrderRow::as_returning()),
        )
        .get_result(pg)
        .optional()?,
        DbConnection::Sqlite(lite) => KeptPrepared(
            diesel::update(target)
                .set(changes)
                .returning(WorkOrderRow::as_returning()),
        )
        .get_result(lite)
        .optional()?,
    })
}

/// What [`guarded_update_with`] did.
#[derive(Debug)]
pub enum Applied {
    /// Everything was written; the order as stored.
    Done(Box<WorkOrderRow>),
    /// The order had moved on from the expected version.
    OrderMoved,
    /// A timer to update had moved on from its expected version (the scanner fired it).
    TimerMoved,
}

/// [`guarded_update_returning`] with the action's event, its crew credit (if any) and its
/// timer writes. Call it inside a transaction, and roll back unless it answers `Done`: what
/// it wrote before it found something moved on stays otherwise. On PostgreSQL, with at most
/// one timer to update, it is one statement (the other writes as data-modifying `WITH`
/// queries; the timer's guarded update is `w1`, whose rows the order's `RETURNING` counts);
/// elsewhere one statement each, in that order.
pub fn guarded_update_with(
    conn: &mut DbConnection,
    (id, expected_version): (&str, i32),
    changes: &WorkOrderChanges,
    event: &NewEvent,
    credit: Option<&super::credits::CreditRow>,
    timers: &super::timers::TimerWrites,
) -> Result<Applied, AppError> {
    use super::schema::crew_credits;
    use diesel::sql_types::BigInt;
    let pg = match conn {
        DbConnection::Postgresql(pg) if timers.updates.len() <= 1 => pg,
        _ => {
            let Some(changed) = guarded_update_returning(conn, id, expected_version, changes)?
            else {
                return Ok(Applied::OrderMoved);
            };
            super::events::insert(conn, event)?;
            if let Some(credit) = credit {
                on_backend!(conn, |c| diesel::insert_into(crew_credits::table)
                    .values(credit)
                    .execute(c))?;
            }
            if !timers.write_each(conn)? {
                return Ok(Applied::TimerMoved);
            }
            return Ok(Applied::Done(Box::new(changed)));
        }
    };
    let writes = action_writes(timers, event, credit);
    let counted = if !timers.updates.is_empty() {
        "(SELECT count(*) FROM w1)"
    } else {
        "CAST(1 AS BIGINT)"
    };
    let update = diesel::update(
        work_orders::table
            .filter(work_orders::id.eq(id))
            .filter(work_orders::version.eq(expected_version)),
    )
    .set(changes)
    .returning((
        WorkOrderRow::as_returning(),
        diesel::dsl::sql::<BigInt>(counted),
    ));
    // One text per changeset shape and list of writes: a bounded set, kept prepared.
    let stored: Option<(WorkOrderRow, i64)> =
        KeptPrepared(super::cte::with_write_list(writes, update))
            .get_result(pg)
            .optional()?;
    Ok(match stored {
        None => Applied::OrderMoved,
        Some((_, 0)) => Applied::TimerMoved,
        Some((changed, _)) => Applied::Done(Box::new(changed)),
    })
}

/// [`guarded_update_with`] as one statement that needs no transaction (PostgreSQL, at most
/// one timer to update, outside a transaction), or `None` with nothing written for any other
/// case. The statement fails as a whole when the order or the timer moved on since it was
/// read: the order's update finds the row by its key alone and sets its version through
/// `gridcall_order_version`, which raises unless the stored version is the one read, and its
/// `RETURNING` counts the timer's update through `gridcall_timers_updated` (migration
/// `2026-12-03-000015_action_guards`). Under READ COMMITTED an update that waited on a racing
/// one's row lock evaluates both on the row that one stored.
pub fn guarded_update_alone(
    conn: &mut DbConnection,
    (id, expected_version): (&str, i32),
    changes: &WorkOrderChanges,
    event: &NewEvent,
    credit: Option<&super::credits::CreditRow>,
    timers: &super::timers::TimerWrites,
) -> Result<Option<Applied>, AppError> {
    use diesel::result::{DatabaseErrorKind, Error};
    use diesel::sql_types::{BigInt, Integer};
    if super::in_transaction(conn)? {
        return Ok(None);
    }
    let pg = match conn {
        DbConnection::Postgresql(pg) if timers.updates.len() <= 1 => pg,
        _ => return Ok(None),
    };
    if changes.version != Some(expected_version + 1) {
        return Err(AppError::internal(format!(
            "order {id}: an action's update must move the version from {expected_version} by one"
        )));
    }
    let writes = action_writes(timers, event, credit);
    let counted = if !timers.updates.is_empty() {
        "gridcall_timers_updated((SELECT count(*) FROM w1), 1)"
    } else {
        "CAST(1 AS BIGINT)"
    };
    let unversioned = WorkOrderChanges {
        version: None,
        ..changes.clone()
    };
    let version = diesel::dsl::sql::<Integer>("gridcall_order_version(version, ")
        .bind::<Integer, _>(expected_version)
        .sql(") + 1");
    let update = diesel::update(work_orders::table.filter(work_orders::id.eq(id)))
        .set((&unversioned, work_orders::version.eq(version)))
        .returning((
            WorkOrderRow::as_returning(),
            diesel::dsl::sql::<BigInt>(counted),
        ));
    // One text per changeset shape and list of writes: a bounded set, kept prepared.
    let stored: Result<Option<(WorkOrderRow, i64)>, Error> =
        KeptPrepared(super::cte::with_write_list(writes, update))
            .get_result(pg)
            .optional();
    Ok(Some(match stored {
        Ok(Some((changed, _))) => Applied::Done(Box::new(changed)),
        // Orders are never deleted, and the event's reference to it would have failed.
        Ok(None) => Applied::OrderMoved,
        // The guard functions' errors name what moved on.
        Err(Error::DatabaseError(DatabaseErrorKind::CheckViolation, info))
            if info.constraint_name() == Some("work_order_version_read") =>
        {
            Applied::OrderMoved
        }
        Err(Error::DatabaseError(DatabaseErrorKind::CheckViolation, info))
            if info.constraint_name() == Some("sla_timer_version_read") =>
        {
            Applied::TimerMoved
        }
        Err(e) => return Err(e.into()),
    }))
}

/// An action's writes in front of its order's update, as data-modifying `WITH` queries: the
/// timer's guarded update (`w1`, returning a row when it matched; at most one), the event, the
/// credit, the new timers.
fn action_writes<'a>(
    timers: &'a super::timers::TimerWrites,
    event: &'a NewEvent,
    credit: Option<&'a super::credits::CreditRow>,
) -> Vec<Box<dyn diesel::query_builder::QueryFragment<diesel::pg::Pg> + 'a>> {
    use super::schema::{crew_credits, sla_timers, work_order_events};
    use diesel::pg::Pg;
    use diesel::query_builder::QueryFragment;
    let mut writes: Vec<Box<dyn QueryFragment<Pg> + 'a>> = Vec::new();
    if let Some((row, expected)) = timers.updates.first() {
        writes.push(Box::new(
            diesel::update(
                sla_timers::table
                    .filter(sla_timers::id.eq(&row.id))
                    .filter(sla_timers::version.eq(*expected)),
            )
            .set(super::timers::mark(row).into_owned())
            .returning(sla_timers::version),
        ));
    }
    writes.push(Box::new(
        diesel::insert_into(work_order_events::table).values(event),
    ));
    if let Some(credit) = credit {
        writes.push(Box::new(
            diesel::insert_into(crew_credits::table).values(credit),
        ));
    }
    match timers.inserts.as_slice() {
        [] => {}
        [one] => writes.push(Box::new(
            diesel::insert_into(sla_timers::table).values(one.clone()),
        )),
        many => writes.push(Box::new(
            diesel::insert_into(sla_timers::table).values(many.to_vec()),
        )),
    }
    writes
}

/// Orders merged into `master_id` and still waiting on it.
pub fn merged_into(
    conn: &mut DbConnection,
    master_id: &str,
) -> Result<Vec<WorkOrderRow>, AppError> {
    Ok(work_orders::table
        .filter(work_orders::master_id.eq(master_id))
        .filter(work_orders::status.eq("merged"))
        .select(WorkOrderRow::as_select())
        .order(work_orders::seq.asc())
        .load(conn)?)
}

/// Applies `changes` (which must leave `version` unset) and the next version to every order
/// merged into `master_id` and still waiting on it, in one statement; the rows as stored, in
/// no particular order. An outage's restore or cancellation moves thousands of orders at once.
pub fn update_merged_into(
    conn: &mut DbConnection,
    master_id: &str,
    changes: &WorkOrderChanges,
) -> Result<Vec<WorkOrderRow>, AppError> {
    debug_assert!(changes.version.is_none());
    let target = work_orders::table
        .filter(work_orders::master_id.eq(master_id))
        .filter(work_orders::status.eq("merged"));
    Ok(on_backend!(conn, |c| diesel::update(target)
        .set((changes, work_orders::version.eq(work_orders::version + 1)))
        .returning(WorkOrderRow::as_returning())
        .get_results(c))?)
}

/// The list filters of API.md, already validated.
#[derive(Debug, Default, Clone)]
pub struct OrderFilter {
    pub statuses: Vec<String>,
    pub kinds: Vec<String>,
    pub priorities: Vec<String>,
    pub area_codes: Vec<String>,
    pub crew_id: Option<String>,
    pub customer_id: Option<String>,
    pub phone: Option<String>,
    pub created_from: Option<NaiveDateTime>,
    pub created_to: Option<NaiveDateTime>,
    pub q: Option<String>,
    /// running | warning | breached: orders with an open timer in that state.
    pub sla_state: Option<String>,
    /// Scope: only these areas (a scoped dispatcher or supervisor); empty means all.
    pub scope_areas: Vec<String>,
    /// Scope: only this crew's orders (a crew user).
    pub scope_crew: Option<String>,
}

/// Newest first; the cursor is the (created_at, id) of the last row of the previous page.
pub fn list(
    conn: &mut DbConnection,
    f: &OrderFilter,
    after: Option<(NaiveDateTime, String)>,
    limit: i64,
) -> Result<Vec<WorkOrderRow>, AppError> {
    let mut q = work_orders::table
        .select(WorkOrderRow::as_select())
        .order((work_orders::created_at.desc(), work_orders::id.desc()))
        .limit(limit)
        .into_boxed();
    if let Some((at, id)) = after {
        // `created_at <= at` is implied by the `OR` but, unlike it, bounds an index range: a
        // deep page's scan starts at the cursor instead of walking the earlier pages' entries.
        q = q.filter(work_orders::created_at.le(at)).filter(
            work_orders::created_at
                .lt(at)
                .or(work_orders::created_at.eq(at).and(work_orders::id.lt(id))),
        );
    }
    if !f.statuses.is_empty() {
        q = q.filter(work_orders::status.eq_any(f.statuses.clone()));
    }
    if !f.kinds.is_empty() {
        q = q.filter(work_orders::kind.eq_any(f.kinds.clone()));
    }
    if !f.priorities.is_empty() {
        q = q.filter(work_orders::priority.eq_any(f.priorities.clone()));
    }
    if !f.area_codes.is_empty() {
        q = q.filter(work_orders::area_code.eq_any(f.area_codes.clone()));
    }
    if !f.scope_areas.is_empty() {
        q = q.filter(work_orders::area_code.eq_any(f.scope_areas.clone()));
    }
    if let Some(crew) = &f.scope_crew {
        q = q.filter(work_orders::assigned_crew_id.eq(crew.clone()));
    }
    if let Some(crew) = &f.crew_id {
        q = q.filter(work_orders::assigned_crew_id.eq(crew.clone()));
    }
    if let Some(customer) = &f.customer_id {
        q = q.filter(work_orders::customer_id.eq(customer.clone()));
    }
    if let Some(phone) = &f.phone {
        q = q.filter(work_orders::caller_phone.eq(phone.clone()));
    }
    if let Some(from) = f.created_from {
        q = q.filter(work_orders::created_at.ge(from));
    }
    if let Some(to) = f.created_to {
        q = q.filter(work_orders::created_at.lt(to));
    }
    if let Some(state) = f.sla_state.as_deref() {
        use super::schema::sla_timers;
        let open = sla_timers::table.filter(sla_timers::ended_at.is_null());
        q = match state {
            "breached" => q.filter(
                work_orders::id.eq_any(
                    open.filter(sla_timers::state.eq(TimerState::Breached.as_str()))
                        .select(sla_timers::work_order_id),
                ),
            ),
            "warning" => q.filter(
                work_orders::id.eq_any(
                    open.filter(sla_timers::state.eq(TimerState::Running.as_str()))
                        .filter(sla_timers::warned_at.is_not_null())
                        .select(sla_timers::work_order_id),
                ),
            ),
            _ => q.filter(
                work_orders::id.eq_any(
                    open.filter(sla_timers::state.eq(TimerState::Running.as_str()))
                        .select(sla_timers::work_order_id),
                ),
            ),
        };
    }
    if let Some(text) = &f.q {
        let pattern = super::customers::like_pattern(text);
        q = q.filter(
            work_orders::number
                .like(pattern.clone())
                .escape('\\')
                .or(work_orders::address.like(pattern.clone()).escape('\\'))
                .or(work_orders::description.like(pattern).escape('\\')),
        );
    }
    Ok(q.load(conn)?)
}

/// Open orders counted by status (for /metrics).
pub fn count_open_by_status(conn: &mut DbConnection) -> Result<Vec<(String, i64)>, AppError> {
    Ok(work_orders::table
        .filter(work_orders::status.ne_all(["closed", "cancelled"]))
        .group_by(work_orders::status)
        .select((work_orders::status, diesel::dsl::count_star()))
        .load(conn)?)
}

/// Suspended orders whose automatic resume time has come.
pub fn suspended_until(
    conn: &mut DbConnection,
    now: NaiveDateTime,
    limit: i64,
) -> Result<Vec<WorkOrderRow>, AppError> {
    Ok(work_orders::table
        .filter(work_orders::status.eq("suspended"))
        .filter(work_orders::suspend_until.le(now))
        .order(work_orders::suspend_until.asc())
        .limit(limit)
        .select(WorkOrderRow::as_select())
        .load(conn)?)
}

/// The orders with these ids (any order).
pub fn find_many(conn: &mut DbConnection, ids: &[String]) -> Result<Vec<WorkOrderRow>, AppError> {
    let mut out = Vec::new();
    for chunk in ids.chunks(500) {
        out.extend(
            work_orders::table
                .filter(work_orders::id.eq_any(chunk))
                .select(WorkOrderRow::as_select())
                .load(conn)?,
        );
    }
    Ok(out)
}

/// The statuses of an order that a repeat call no longer lands on.
const CLOSED_STATUSES: [&str; 3] = ["resolved", "closed", "cancelled"];

/// Whose newest open order a create looks for (the repeat-call check).
#[derive(Debug, Clone, Copy)]
pub struct RepeatProbe<'a> {
    pub kind: &'a str,
    pub phone: Option<&'a str>,
    pub customer_id: Option<&'a str>,
    pub created_since: NaiveDateTime,
}

/// The ids a repeat-call check found: the newest open order of the kind from the caller's
/// phone and from the customer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepeatIds {
    pub by_phone: Option<String>,
    pub by_customer: Option<String>,
}

/// Orders of `kind` still being worked (not resolved, closed or cancelled) and created since
/// `since`, newest first (by creation, then id): the shape of both repeat-call lookups.
#[diesel::dsl::auto_type]
fn open_of_kind_since(kind: String, since: NaiveDateTime) -> _ {
    let closed: [&'static str; 3] = CLOSED_STATUSES;
    work_orders::table
        .filter(work_orders::kind.eq(kind))
        .filter(work_orders::created_at.ge(since))
        .filter(work_orders::status.ne_all(closed))
        .order((work_orders::created_at.desc(), work_orders::id.desc()))
}

/// The newest open order of the kind from this phone, as a scalar subquery answered by
/// `work_orders_phone_idx` (phone, kind, created_at). A NULL phone matches nothing.
#[diesel::dsl::auto_type(no_type_alias)]
fn newest_open_by_phone(kind: String, since: NaiveDateTime, phone: Option<String>) -> _ {
    let open: open_of_kind_since = open_of_kind_since(kind, since);
    open.filter(work_orders::caller_phone.eq(phone))
        .select(work_orders::id)
        .single_value()
}

/// As [`newest_open_by_phone`], for the customer (`work_orders_customer_idx`).
#[diesel::dsl::auto_type(no_type_alias)]
fn newest_open_by_customer(kind: String, since: NaiveDateTime, customer: Option<String>) -> _ {
    let open: open_of_kind_since = open_of_kind_since(kind, since);
    open.filter(work_orders::customer_id.eq(customer))
        .select(work_orders::id)
        .single_value()
}

/// Whether a customer with this phone is of `tier`: an `EXISTS` on `customers_phone_idx`.
#[diesel::dsl::auto_type(no_type_alias)]
fn phone_has_tier(phone: Option<String>, tier: &'static str) -> _ {
    exists(
        customers::table
            .filter(customers::phone.nullable().eq(phone))
            .filter(customers::tier.eq(tier)),
    )
}

/// What opening an order reads before it writes, in one statement: its area, and under it
/// the newest open order of the kind from the caller's phone and from the customer (the
/// repeat-call check), whether any outage is active, whether a customer with the caller's
/// phone is of the important or the sensitive tier, and whether a force-majeure window is
/// open or to come. Each is a scalar subquery served by its own index
/// (`work_orders_phone_idx`, `work_orders_customer_idx`, `outages_status_idx`,
/// `customers_phone_idx`, `sla_pauses_ends_idx`), so the statement costs one round trip
/// where they were five. None when the area does not exist (then nothing else was read).
#[derive(Debug, Clone)]
pub struct OpeningFacts {
    pub area: super::areas::AreaRow,
    pub repeat: RepeatIds,
    pub outage_active: bool,
    pub phone_tier_important: bool,
    pub phone_tier_sensitive: bool,
    pub force_majeure_ahead: bool,
    /// The new order's sequence value where the read drew it (PostgreSQL); see [`insert`].
    pub next_seq: Option<i64>,
}

pub fn opening_facts(
    conn: &mut DbConnection,
    area_code: &str,
    repeat: Option<RepeatProbe<'_>>,
    tier_phone: Option<&str>,
    now: NaiveDateTime,
) -> Result<Option<OpeningFacts>, AppError> {
    use super::schema::{areas, outages, sla_pauses};
    use diesel::sql_types::{BigInt, Nullable};
    // Without a probe the repeat subqueries compare with NULL: no row, no index walk.
    let (kind, phone, customer, since) = match repeat {
        Some(r) => (
            r.kind.to_owned(),
            r.phone.map(str::to_owned),
            r.customer_id.map(str::to_owned),
            r.created_since,
        ),
        None => (String::new(), None, None, now),
    };
    let tier_phone = tier_phone.map(str::to_owned);
    // The same statement on both backends but for its last column, the order's sequence value.
    macro_rules! read {
        ($conn:expr, $next_seq:expr) => {
            areas::table
                .find(area_code)
                .select((
                    super::areas::AreaRow::as_select(),
                    newest_open_by_phone(kind.clone(), since, phone),
                    newest_open_by_customer(kind, since, customer),
                    exists(outages::table.filter(outages::status.eq("active"))),
                    phone_has_tier(tier_phone.clone(), "important"),
                    phone_has_tier(tier_phone, "sensitive"),
                    exists(sla_pauses::table.filter(sla_pauses::ends_at.is_null())).or(exists(
                        sla_pauses::table.filter(sla_pauses::ends_at.gt(now)),
                    )),
                    $next_seq,
                ))
                .first::<(
                    super::areas::AreaRow,
                    Option<String>,
                    Option<String>,
                    bool,
                    bool,
                    bool,
                    bool,
                    Option<i64>,
                )>($conn)
                .optional()?
        };
    }
    let row = match conn {
        // PostgreSQL draws the value here, saving the round trip of a `SELECT nextval` of its own;
        // a repeat call leaves a gap in the numbers, which the API allows.
        DbConnection::Postgresql(pg) => read!(pg, nextval(SEQUENCE).nullable()),
        // SQLite's rowid gives the value in the INSERT.
        DbConnection::Sqlite(lite) => read!(lite, None::<i64>.into_sql::<Nullable<BigInt>>()),
    };
    Ok(row.map(
        |(area, by_phone, by_customer, outage, important, sensitive, fm, next_seq)| OpeningFacts {
            area,
            repeat: RepeatIds {
                by_phone,
                by_customer,
            },
            outage_active: outage,
            phone_tier_important: important,
            phone_tier_sensitive: sensitive,
            force_majeure_ahead: fm,
            next_seq,
        },
    ))
}

/// The repeat-call check alone, for a create whose area does not exist (so that
/// [`opening_facts`] read nothing): the same two subqueries in one statement.
pub fn repeat_ids(conn: &mut DbConnection, probe: RepeatProbe<'_>) -> Result<RepeatIds, AppError> {
    let kind = probe.kind.to_owned();
    let (by_phone, by_customer) = diesel::select((
        newest_open_by_phone(
            kind.clone(),
            probe.created_since,
            probe.phone.map(str::to_owned),
        ),
        newest_open_by_customer(
            kind,
            probe.created_since,
            probe.customer_id.map(str::to_owned),
        ),
    ))
    .get_result::<(Option<String>, Option<String>)>(conn)?;
    Ok(RepeatIds {
        by_phone,
        by_customer,
    })
}

/// What picks the policy rule of an order's new timers, in one statement: its area, and under
/// it the tier of its customer (by id) and whether a customer with its caller's phone is of
/// the important or the sensitive tier. None when the area does not exist.
#[derive(Debug, Clone)]
pub struct RuleFacts {
    pub area: super::areas::AreaRow,
    pub customer_tier: Option<String>,
    pub phone_tier_important: bool,
    pub phone_tier_sensitive: bool,
}

pub fn rule_facts(
    conn: &mut DbConnection,
    area_code: &str,
    customer_id: Option<&str>,
    phone: Option<&str>,
) -> Result<Option<RuleFacts>, AppError> {
    use super::schema::areas;
    let customer_tier = customers::table
        .filter(customers::id.nullable().eq(customer_id.map(str::to_owned)))
        .select(customers::tier)
        .single_value();
    let phone = phone.map(str::to_owned);
    let row = areas::table
        .find(area_code)
        .select((
            super::areas::AreaRow::as_select(),
            customer_tier,
            phone_has_tier(phone.clone(), "important"),
            phone_has_tier(phone, "sensitive"),
        ))
        .first::<(super::areas::AreaRow, Option<String>, bool, bool)>(conn)
        .optional()?;
    Ok(
        row.map(|(area, customer_tier, important, sensitive)| RuleFacts {
            area,
            customer_tier,
            phone_tier_important: important,
            phone_tier_sensitive: sensitive,
        }),
    )
}

/// [`rule_facts`] of many orders at once (an outage's linked orders resolving together):
/// their areas, their customers' tiers and which of their callers' phones a customer of the
/// important or the sensitive tier has, in three statements per 500 keys, however many orders
/// share them. In the orders' order; None where the area does not exist.
pub fn rule_facts_many(
    conn: &mut DbConnection,
    orders: &[(&str, Option<&str>, Option<&str>)],
) -> Result<Vec<Option<RuleFacts>>, AppError> {
    use super::schema::areas;
    use std::collections::{BTreeSet, HashMap, HashSet};
    fn keys<'a>(it: impl Iterator<Item = &'a str>) -> Vec<String> {
        it.collect::<BTreeSet<_>>()
            .into_iter()
            .map(str::to_owned)
            .collect()
    }
    let mut area_of = HashMap::new();
    for chunk in keys(orders.iter().map(|o| o.0)).chunks(500) {
        for area in areas::table
            .filter(areas::code.eq_any(chunk))
            .select(super::areas::AreaRow::as_select())
            .load::<super::areas::AreaRow>(conn)?
        {
            area_of.insert(area.code.clone(), area);
        }
    }
    let mut tier_of = HashMap::new();
    for chunk in keys(orders.iter().filter_map(|o| o.1)).chunks(500) {
        tier_of.extend(
            customers::table
                .filter(customers::id.eq_any(chunk))
                .select((customers::id, customers::tier))
                .load::<(String, String)>(conn)?,
        );
    }
    let mut phone_tiers = HashSet::new();
    for chunk in keys(orders.iter().filter_map(|o| o.2)).chunks(500) {
        phone_tiers.extend(
            customers::table
                .filter(customers::phone.eq_any(chunk))
                .filter(customers::tier.eq_any(["important", "sensitive"]))
                .select((customers::phone, customers::tier))
                .load::<(String, String)>(conn)?,
        );
    }
    let has = |phone: Option<&str>, tier: &str| {
        phone.is_some_and(|p| phone_tiers.contains(&(p.to_owned(), tier.to_owned())))
    };
    Ok(orders
        .iter()
        .map(|&(area, customer, phone)| {
            area_of.get(area).map(|area| RuleFacts {
                area: area.clone(),
                customer_tier: customer.and_then(|c| tier_of.get(c).cloned()),
                phone_tier_important: has(phone, "important"),
                phone_tier_sensitive: has(phone, "sensitive"),
            })
        })
        .collect())
}

/// The newest (by creation, then id) of the orders a repeat-call check found, read whole;
/// None when it found none.
pub fn newest_of(
    conn: &mut DbConnection,
    found: &RepeatIds,
) -> Result<Option<WorkOrderRow>, AppError> {
    let ids: Vec<&str> = [&found.by_phone, &found.by_customer]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    if ids.is_empty() {
        return Ok(None);
    }
    Ok(work_orders::table
        .filter(work_orders::id.eq_any(ids))
        .order((work_orders::created_at.desc(), work_orders::id.desc()))
        .select(WorkOrderRow::as_select())
        .first(conn)
        .optional()?)
}
