//! Merging an order into a master, and what the master's resolution or cancellation does to
//! the orders merged into it.

use super::*;

pub(super) fn check_master(
    conn: &mut DbConnection,
    actor: &Actor,
    order: &WorkOrderRow,
    master_id: &str,
) -> Result<WorkOrderRow, AppError> {
    if master_id == order.id {
        return Err(AppError::invalid(
            "master_id",
            "an order cannot be merged into itself",
        ));
    }
    if !repo::merged_into(conn, &order.id)?.is_empty() {
        return Err(AppError::invalid(
            "master_id",
            "other orders are merged into this one; it cannot be merged itself",
        ));
    }
    let master = repo::find(conn, master_id)?
        .filter(|m| actor.sees_order(&m.area_code, m.assigned_crew_id.as_deref()))
        .ok_or_else(|| AppError::invalid("master_id", "no such work order"))?;
    if master.kind != order.kind {
        return Err(AppError::invalid(
            "master_id",
            "the master must be of the same kind",
        ));
    }
    let status = master.status;
    if !status.is_open() || matches!(status, Status::Merged | Status::Resolved) {
        return Err(AppError::invalid(
            "master_id",
            format!("the master is {status}; it must be open and unresolved"),
        ));
    }
    Ok(master)
}

/// When a master is cancelled, the orders merged into it go back to `new` to be handled on
/// their own (a system `unmerge`), with their opening timers started again.
pub(crate) fn release_merged(
    conn: &mut DbConnection,
    master_id: &str,
    now: DateTime<Utc>,
    sla_context: &SlaContext,
    (event_type, reason): (&str, &str),
) -> Result<(), AppError> {
    for child in repo::merged_into(conn, master_id)? {
        let changes = WorkOrderChanges {
            status: Some(Status::New.as_str().to_owned()),
            master_id: Some(None),
            outage_id: Some(None),
            version: Some(child.version + 1),
            updated_at: Some(now.naive_utc()),
            ..Default::default()
        };
        if !repo::guarded_update(conn, &child.id, child.version, &changes)? {
            return Err(concurrent());
        }
        events::insert(
            conn,
            &event(
                &child.id,
                event_type,
                None,
                (Some(Status::Merged), Some(Status::New)),
                Some(reason.to_owned()),
                json!({"master_id": master_id, "outage_id": child.outage_id}),
                now,
            ),
        )?;
        let released = repo::find(conn, &child.id)?.ok_or_else(order_not_found)?;
        let kind = released.kind;
        sla::apply(
            conn,
            sla_context,
            &released,
            &sla_rules::plan(kind, Action::Unmerge, Status::New),
            None,
            now,
        )?;
    }
    Ok(())
}

/// When a master resolves, the orders merged into it resolve too (system events).
pub(crate) fn resolve_merged(
    conn: &mut DbConnection,
    master_id: &str,
    now: DateTime<Utc>,
    sla_context: &SlaContext,
) -> Result<(), AppError> {
    for child in repo::merged_into(conn, master_id)? {
        let changes = WorkOrderChanges {
            status: Some(Status::Resolved.as_str().to_owned()),
            resolved_at: Some(Some(now.naive_utc())),
            version: Some(child.version + 1),
            updated_at: Some(now.naive_utc()),
            ..Default::default()
        };
        if !repo::guarded_update(conn, &child.id, child.version, &changes)? {
            return Err(concurrent());
        }
        events::insert(
            conn,
            &event(
                &child.id,
                "master_resolved",
                None,
                (Some(Status::Merged), Some(Status::Resolved)),
                None,
                json!({"master_id": master_id}),
                now,
            ),
        )?;
        // Each linked order still gets its callback.
        let resolved = repo::find(conn, &child.id)?.ok_or_else(order_not_found)?;
        let kind = resolved.kind;
        sla::apply(
            conn,
            sla_context,
            &resolved,
            &sla_rules::plan(kind, Action::Resolve, Status::Resolved),
            None,
            now,
        )?;
    }
    Ok(())
}
