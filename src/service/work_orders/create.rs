//! Opening an order: the repeat-call check, outage linking, the number, the opening timers;
//! at most once per idempotency key.

use super::*;

/// A validated new order.
#[derive(Debug, Clone)]
pub struct NewOrder {
    pub kind: Kind,
    pub category: String,
    pub grade: Option<String>,
    pub priority: String,
    pub channel: String,
    pub customer_id: Option<String>,
    pub caller_name: Option<String>,
    pub caller_phone: Option<String>,
    pub area_code: String,
    pub address: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub description: String,
    pub subject_crew_id: Option<String>,
    /// Skip the repeat-call check.
    pub force_new: bool,
    /// Link a repair call to an active outage in its area.
    pub link_outage: bool,
}

/// What opening an order did.
#[derive(Debug)]
pub enum Created {
    /// A new order, with its timers when nothing after its opening changed them (else the
    /// caller reads them).
    New(Box<WorkOrderRow>, Option<Vec<crate::db::timers::TimerRow>>),
    /// A repeat call: the open order it repeats, with an urge recorded on it.
    Duplicate(Box<WorkOrderRow>),
    /// A repair call in the area of an active outage: created merged into its master.
    Linked(Box<WorkOrderRow>, Box<crate::db::outages::OutageRow>),
}

/// The idempotency key a create completes in its own transaction.
pub struct IdempotencyKey<'a> {
    pub user_id: &'a str,
    pub key: &'a str,
}

/// The outage a new call was linked to, as the agent tells the caller.
#[derive(Debug, Clone)]
pub struct OutageNotice {
    pub id: String,
    pub cause: String,
    pub estimated_restore_at: Option<DateTime<Utc>>,
}

impl From<&crate::db::outages::OutageRow> for OutageNotice {
    fn from(o: &crate::db::outages::OutageRow) -> OutageNotice {
        OutageNotice {
            id: o.id.clone(),
            cause: o.cause.clone(),
            estimated_restore_at: o.estimated_restore_at.map(|t| t.and_utc()),
        }
    }
}

/// A create sent with an `Idempotency-Key`.
pub struct IdempotentRequest {
    pub key: String,
    /// A digest of the request body: a repeat must send the same one.
    pub request_hash: String,
    /// How long a key is kept.
    pub kept: TimeDelta,
    /// How long a claim may stay in flight before it is taken as abandoned (a crash).
    pub stale_after: TimeDelta,
}

/// How a create is answered.
#[derive(Debug)]
pub struct CreateAnswer {
    pub order: WorkOrderRow,
    pub timers: Vec<crate::db::timers::TimerRow>,
    /// A repeat call: the answer is the open order it repeats (200, not 201).
    pub repeat_call: bool,
    /// For a call linked to an outage: what to tell the caller.
    pub outage: Option<OutageNotice>,
}

/// Opens an order (`create`) at most once per idempotency key: a repeat with the same body
/// answers as the first did, with the order as it is now; the same key with another body is
/// 422; a repeat while the first is still in flight is 409. The key is claimed in its own
/// commit (so a racing repeat sees it) and completed in the create's transaction; a failed
/// create releases it.
pub fn create_once(
    conn: &mut DbConnection,
    actor: &Actor,
    order: NewOrder,
    now: DateTime<Utc>,
    request: Option<IdempotentRequest>,
    rules: &Rules,
) -> Result<CreateAnswer, AppError> {
    let Some(request) = request else {
        let created = create(conn, actor, order, now, None, rules)?;
        return answer(conn, created);
    };
    let claim = idempotency::claim(
        conn,
        &actor.id,
        &request.key,
        &request.request_hash,
        now.naive_utc(),
        (now - request.kept).naive_utc(),
        (now - request.stale_after).naive_utc(),
    )?;
    match claim {
        idempotency::Claim::InFlight => Err(AppError::Conflict {
            code: ProblemCode::IdempotencyInFlight,
            detail: "a request with this Idempotency-Key is still being processed".into(),
            allowed_actions: None,
        }),
        idempotency::Claim::Done {
            same_request: false,
            ..
        } => Err(AppError::invalid(
            "Idempotency-Key",
            "this key was used with a different request body",
        )),
        idempotency::Claim::Done {
            status,
            work_order_id,
            ..
        } => {
            let row = repo::find(conn, &work_order_id)?.ok_or_else(order_not_found)?;
            let outage = outage_notice(conn, &row)?;
            let timers = crate::db::timers::for_orders(conn, std::slice::from_ref(&row.id))?;
            Ok(CreateAnswer {
                order: row,
                timers,
                repeat_call: status == REPEAT_CALL_STATUS,
                outage,
            })
        }
        idempotency::Claim::Claimed => {
            let key = IdempotencyKey {
                user_id: &actor.id,
                key: &request.key,
            };
            match create(conn, actor, order, now, Some(key), rules) {
                Ok(created) => answer(conn, created),
                Err(e) => {
                    idempotency::release(conn, &actor.id, &request.key)?;
                    Err(e)
                }
            }
        }
    }
}

/// The status a completed key records: a repeat call (200) or a new order (201), so that a
/// replay answers as the first request did.
pub(super) const REPEAT_CALL_STATUS: i32 = 200;
pub(super) const NEW_ORDER_STATUS: i32 = 201;

pub(super) fn answer(conn: &mut DbConnection, created: Created) -> Result<CreateAnswer, AppError> {
    let read_timers = |conn: &mut DbConnection, row: &WorkOrderRow| {
        crate::db::timers::for_orders(conn, std::slice::from_ref(&row.id))
    };
    Ok(match created {
        Created::New(row, Some(timers)) => CreateAnswer {
            order: *row,
            timers,
            repeat_call: false,
            outage: None,
        },
        Created::New(row, None) => CreateAnswer {
            timers: read_timers(conn, &row)?,
            order: *row,
            repeat_call: false,
            outage: None,
        },
        // Linked to an outage's master: it has no timers of its own.
        Created::Linked(row, outage) => CreateAnswer {
            order: *row,
            timers: Vec::new(),
            repeat_call: false,
            outage: Some(OutageNotice::from(outage.as_ref())),
        },
        Created::Duplicate(row) => CreateAnswer {
            timers: read_timers(conn, &row)?,
            outage: outage_notice(conn, &row)?,
            order: *row,
            repeat_call: true,
        },
    })
}

/// What an agent tells the caller about the outage an order is linked to (none for the
/// outage's own master).
pub(super) fn outage_notice(
    conn: &mut DbConnection,
    row: &WorkOrderRow,
) -> Result<Option<OutageNotice>, AppError> {
    let Some(outage_id) = &row.outage_id else {
        return Ok(None);
    };
    Ok(crate::db::outages::find(conn, outage_id)?
        .filter(|o| o.master_id != row.id)
        .map(|o| OutageNotice::from(&o)))
}

/// Creates an order and its `created` event (and completes the idempotency key) in one
/// transaction. The order number uses the local date in Asia/Shanghai.
///
/// On PostgreSQL's write sessions ([`crate::db::DbPool::run_indexed`]) the reads run before
/// the transaction, each a statement of its own: they take no lock, and under READ COMMITTED
/// each statement of a transaction sees the rows committed when it starts anyway, so reading
/// before `BEGIN` is reading at an earlier moment of it. An order whose writes are then one
/// statement (the order, its events and its timers: a new call with nothing else to record)
/// is written by that statement alone, atomic without a transaction: two round trips instead
/// of four (begin, read, write, commit).
pub fn create(
    conn: &mut DbConnection,
    actor: &Actor,
    order: NewOrder,
    now: DateTime<Utc>,
    key: Option<IdempotencyKey<'_>>,
    rules: &Rules,
) -> Result<Created, AppError> {
    if crate::db::session_plans(conn) == Some(Plans::IndexedOnce) {
        let opened = open(conn, actor, &order, now, rules)?;
        if key.is_none() {
            if let Some(created) = write_alone(conn, actor, &order, &opened, now, rules)? {
                return Ok(created);
            }
        }
        return write_transaction_planned(conn, Plans::IndexedOnce, |conn| {
            write_opening(conn, actor, order, opened, now, key, rules)
        });
    }
    // Every statement of a create has its index (the opening read's subqueries, inserts, key
    // lookups): one kept plan each, instead of planning each execution.
    write_transaction_planned(conn, Plans::IndexedOnce, |conn| {
        let opened = open(conn, actor, &order, now, rules)?;
        write_opening(conn, actor, order, opened, now, key, rules)
    })
}

/// What a create read before it writes.
enum Opened {
    /// A repeat call of this open order (which the caller's agent sees).
    Repeat(Box<WorkOrderRow>),
    /// A new order, valid, with what its opening needs to know.
    New {
        customer: Option<Box<crate::db::customers::CustomerRow>>,
        facts: Box<repo::OpeningFacts>,
    },
}

/// The reads of a create: the customer, the opening facts (area, repeat calls, outages,
/// tiers, pauses, the number's sequence value), the repeated order; the request's references
/// checked. Writes nothing.
fn open(
    conn: &mut DbConnection,
    actor: &Actor,
    order: &NewOrder,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<Opened, AppError> {
    let probe_repeats = !order.force_new && order.kind != Kind::Praise;
    // Read once: the customer's phone serves the repeat-call check, its tier the timers.
    let customer = match &order.customer_id {
        Some(id) => customers::find(conn, id)?,
        None => None,
    };
    let phone = order
        .caller_phone
        .clone()
        .or_else(|| customer.as_ref().map(|c| c.phone.clone()));
    let probe = probe_repeats.then(|| repo::RepeatProbe {
        kind: order.kind.as_str(),
        phone: phone.as_deref(),
        customer_id: order.customer_id.as_deref(),
        created_since: (now - rules.repeat_window).naive_utc(),
    });
    // Without a customer the order is served at the tier of the caller's phone.
    let tier_phone = match &order.customer_id {
        Some(_) => None,
        None => order.caller_phone.as_deref(),
    };
    let facts = repo::opening_facts(conn, &order.area_code, probe, tier_phone, now.naive_utc())?;
    let repeated = match (&facts, probe) {
        (Some(f), Some(_)) => repo::newest_of(conn, &f.repeat)?,
        // No such area: nothing else was read; a repeat call is still one.
        (None, Some(p)) => {
            let found = repo::repeat_ids(conn, p)?;
            repo::newest_of(conn, &found)?
        }
        (_, None) => None,
    };
    if let Some(existing) =
        repeated.filter(|d| actor.sees_order(&d.area_code, d.assigned_crew_id.as_deref()))
    {
        return Ok(Opened::Repeat(Box::new(existing)));
    }
    let mut problems = Vec::new();
    if facts.is_none() {
        problems.push(FieldError::new("area_code", "no such area"));
    }
    if order.customer_id.is_some() && customer.is_none() {
        problems.push(FieldError::new("customer_id", "no such customer"));
    }
    if let Some(crew) = &order.subject_crew_id {
        if crews::find(conn, crew)?.is_none() {
            problems.push(FieldError::new("subject_crew_id", "no such crew"));
        }
    }
    match facts.filter(|_| problems.is_empty()) {
        Some(facts) => Ok(Opened::New {
            customer: customer.map(Box::new),
            facts: Box::new(facts),
        }),
        None => Err(AppError::Validation(problems)),
    }
}

/// The credit a new order records for the crew it names (a complaint about it, praise of it).
fn named_credit(order: &NewOrder) -> Option<(credits::Fact, &str)> {
    let fact = match order.kind {
        Kind::Complaint => credits::Fact::Complaint,
        Kind::Praise => credits::Fact::Praise,
        _ => return None,
    };
    order.subject_crew_id.as_deref().map(|crew| (fact, crew))
}

/// Whether a new order is linked to an active outage (read in the transaction: the outage
/// is locked while the call joins it).
fn may_link_outage(order: &NewOrder, facts: &repo::OpeningFacts) -> bool {
    order.kind == Kind::Repair && order.link_outage && facts.outage_active
}

/// A new order with nothing to write but its row, events and timers, as one statement
/// without a transaction ([`create`]); `None` (nothing written) for any other: a repeat
/// call, an outage to join, a credit, a complaint's acknowledgement, an automatic dispatch,
/// a shape of writes that is not one statement.
fn write_alone(
    conn: &mut DbConnection,
    actor: &Actor,
    order: &NewOrder,
    opened: &Opened,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<Option<Created>, AppError> {
    let Opened::New { customer, facts } = opened else {
        return Ok(None);
    };
    let acknowledged =
        order.kind == Kind::Complaint && customer.as_deref().is_some_and(|c| c.email.is_some());
    let dispatched = rules.auto_dispatch && order.kind.family() == Family::Field;
    if may_link_outage(order, facts) || named_credit(order).is_some() || acknowledged || dispatched
    {
        return Ok(None);
    }
    let id = crate::db::new_row_key();
    let row = new_row(&id, actor, order, customer.as_deref(), None, now);
    let timers = opening_timers(conn, rules, order, &row, customer.as_deref(), facts, now)?;
    let prefix = number_prefix(order, now);
    let events = |number: &str| opening_events(&id, actor, order, None, number, now);
    Ok(
        repo::insert_opening_alone(conn, &row, &prefix, facts.next_seq, events, &timers)?
            .map(|created| Created::New(Box::new(created), Some(timers))),
    )
}

/// The writes of a create, in its transaction: the urge of a repeated order, or the new order
/// (linked to an outage when one covers it) with its events and timers, the idempotency key,
/// the named crew's credit, a complaint's acknowledgement and the automatic dispatch.
fn write_opening(
    conn: &mut DbConnection,
    actor: &Actor,
    order: NewOrder,
    opened: Opened,
    now: DateTime<Utc>,
    key: Option<IdempotencyKey<'_>>,
    rules: &Rules,
) -> Result<Created, AppError> {
    let (customer, facts) = match opened {
        Opened::Repeat(existing) => {
            let urge = ActRequest {
                action: Action::Urge,
                body: Ok(ActionBody {
                    note: Some(format!("重复来电（{}）", order.channel)),
                    ..Default::default()
                }),
                if_match: None,
            };
            let urged = match act(conn, actor, &existing.id, urge, now, rules)? {
                Acted::Done(row, ..) => *row,
                Acted::NoEligibleCrew { .. } => *existing,
            };
            if let Some(key) = &key {
                idempotency::complete(conn, key.user_id, key.key, REPEAT_CALL_STATUS, &urged.id)?;
            }
            return Ok(Created::Duplicate(Box::new(urged)));
        }
        Opened::New { customer, facts } => (customer, facts),
    };
    let outage = if may_link_outage(&order, &facts) {
        crate::service::outages::covering_for_link(conn, &order.area_code)?
    } else {
        None
    };
    let id = crate::db::new_row_key();
    let row = new_row(
        &id,
        actor,
        &order,
        customer.as_deref(),
        outage.as_ref(),
        now,
    );
    let timers = match &outage {
        // Linked to the outage's master: no crew, no timers, no escalation of its own.
        Some(_) => Vec::new(),
        None => opening_timers(conn, rules, &order, &row, customer.as_deref(), &facts, now)?,
    };
    let prefix = number_prefix(&order, now);
    let events = |number: &str| opening_events(&id, actor, &order, outage.as_ref(), number, now);
    let created = repo::insert_opening(conn, &row, &prefix, facts.next_seq, events, &timers)?;
    if let Some(key) = &key {
        idempotency::complete(conn, key.user_id, key.key, NEW_ORDER_STATUS, &id)?;
    }
    if let Some((fact, crew)) = named_credit(&order) {
        credits::record(conn, fact, crew, &id, None, now.naive_utc())?;
    }
    if let Some(outage) = outage {
        return Ok(Created::Linked(Box::new(created), Box::new(outage)));
    }
    if order.kind == Kind::Complaint {
        if let Some(email) = customer.as_deref().and_then(|c| c.email.clone()) {
            rules.notifier.complaint_ack(conn, &created, &email, now)?;
        }
    }
    if rules.auto_dispatch && order.kind.family() == Family::Field {
        // Same routing as a dispatcher's dispatch without crew_id; with no eligible crew
        // the order stays new and the dispatchers are alerted (event and mail).
        let dispatch = ActRequest {
            action: Action::Dispatch,
            body: Ok(ActionBody::default()),
            if_match: None,
        };
        // The dispatch is a savepoint: if it fails, the order is still created, new,
        // for a dispatcher to handle.
        match act(conn, &Actor::system(), &id, dispatch, now, rules) {
            Ok(Acted::Done(dispatched, _, timers)) => return Ok(Created::New(dispatched, timers)),
            Ok(Acted::NoEligibleCrew { .. }) => {}
            Err(e) => log::warn!("automatic dispatch of {id} failed, left new: {e}"),
        }
    }
    Ok(Created::New(Box::new(created), Some(timers)))
}

/// The row of a new order: the caller and the address from the customer where the request
/// gives none; merged into the master of the outage it joins.
fn new_row(
    id: &str,
    actor: &Actor,
    order: &NewOrder,
    customer: Option<&crate::db::customers::CustomerRow>,
    outage: Option<&crate::db::outages::OutageRow>,
    now: DateTime<Utc>,
) -> NewWorkOrder {
    let (address, lat, lon) = match (customer, order.address.is_some() || order.lat.is_some()) {
        (Some(c), false) => (Some(c.address.clone()), c.lat, c.lon),
        _ => (order.address.clone(), order.lat, order.lon),
    };
    let (caller_name, caller_phone) = match (customer, &order.caller_phone) {
        (Some(c), None) => (
            order.caller_name.clone().or(Some(c.name.clone())),
            Some(c.phone.clone()),
        ),
        _ => (order.caller_name.clone(), order.caller_phone.clone()),
    };
    let status = if outage.is_some() {
        Status::Merged
    } else {
        Status::New
    };
    NewWorkOrder {
        id: id.to_owned(),
        kind: order.kind.as_str().to_owned(),
        category: order.category.clone(),
        grade: order.grade.clone(),
        priority: order.priority.clone(),
        channel: order.channel.clone(),
        status: status.as_str().to_owned(),
        customer_id: order.customer_id.clone(),
        caller_name,
        caller_phone,
        area_code: order.area_code.clone(),
        address,
        lat,
        lon,
        description: order.description.clone(),
        subject_crew_id: order.subject_crew_id.clone(),
        master_id: outage.map(|o| o.master_id.clone()),
        outage_id: outage.map(|o| o.id.clone()),
        created_by: actor.id.clone(),
        created_at: now.naive_utc(),
        updated_at: now.naive_utc(),
    }
}

/// The timers a new order opens with, worked out before it is written, so that the order, its
/// events and its timers are written together (one statement on PostgreSQL).
fn opening_timers(
    conn: &mut DbConnection,
    rules: &Rules,
    order: &NewOrder,
    row: &NewWorkOrder,
    customer: Option<&crate::db::customers::CustomerRow>,
    facts: &repo::OpeningFacts,
    now: DateTime<Utc>,
) -> Result<Vec<crate::db::timers::TimerRow>, AppError> {
    let tier = match customer {
        Some(c) => c.tier.clone(),
        None => {
            sla_rules::phone_tier(facts.phone_tier_important, facts.phone_tier_sensitive).to_owned()
        }
    };
    let opening = sla::Opening {
        tier,
        force_majeure_ahead: facts.force_majeure_ahead,
    };
    let terms = sla::OrderTerms {
        id: &row.id,
        kind: order.kind,
        category: &row.category,
        priority: &row.priority,
        area_code: &row.area_code,
        created_at: row.created_at,
        reopen_count: 0,
    };
    sla::plan_new_order(
        conn,
        &rules.sla,
        &terms,
        &facts.area,
        opening,
        sla_rules::opening_stages(order.kind),
        now,
    )
}

/// The number's prefix: the kind's letter and the local date in Asia/Shanghai.
fn number_prefix(order: &NewOrder, now: DateTime<Utc>) -> String {
    let local_date = now
        .with_timezone(&chrono_tz::Asia::Shanghai)
        .format("%Y%m%d");
    format!("{}{local_date}", order.kind.letter())
}

/// A new order's events: `created`, and `linked_to_outage` when it joined one.
fn opening_events(
    id: &str,
    actor: &Actor,
    order: &NewOrder,
    outage: Option<&crate::db::outages::OutageRow>,
    number: &str,
    now: DateTime<Utc>,
) -> Vec<NewEvent> {
    let mut list = vec![event(
        id,
        "created",
        Some(actor),
        (None, Some(Status::New)),
        None,
        json!({"number": number, "kind": order.kind, "category": order.category, "priority": order.priority,
               "channel": order.channel, "area_code": order.area_code}),
        now,
    )];
    if let Some(outage) = outage {
        list.push(event(
            id,
            "linked_to_outage",
            None,
            (Some(Status::New), Some(Status::Merged)),
            None,
            json!({"outage_id": outage.id, "master_id": outage.master_id, "cause": outage.cause}),
            now,
        ));
    }
    list
}
