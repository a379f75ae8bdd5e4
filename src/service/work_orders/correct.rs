//! Changes that are not transitions: notes, and corrections of an order's fields (audited,
//! with the timers recalculated when a target changes).

use super::*;

/// Adds a note (agent, dispatcher, the assigned crew); the order itself does not change.
pub fn add_note(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
    text: Result<String, AppError>,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<events::EventRow, AppError> {
    write_transaction(conn, |conn| {
        let order = load_visible(conn, actor, id)?;
        let f = facts(&order, now, rules);
        match state_machine::decide(f, Action::Note, actor.role) {
            Err(Refusal::RoleForbidden) => {
                return Err(AppError::forbidden(format!(
                    "a {} may not add notes",
                    actor.role
                )))
            }
            Err(Refusal::NotAllowedNow) => {
                return Err(AppError::Conflict {
                    code: ProblemCode::ActionNotAllowed,
                    detail: format!("notes are not allowed while the order is {}", f.status),
                    allowed_actions: Some(state_machine::allowed_actions(f, actor.role)),
                })
            }
            Ok(_) => {}
        }
        let text = text?;
        events::insert_returning(
            conn,
            &event(
                &order.id,
                "note",
                Some(actor),
                (None, None),
                None,
                json!({"text": text}),
                now,
            ),
        )
    })
}

/// A correction of an order's fields (PATCH).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Correction {
    /// A category of the order's kind.
    pub category: Option<String>,
    pub priority: Option<crate::domain::Priority>,
    #[schema(schema_with = crate::schema::code_or_null)]
    pub area_code: Option<String>,
    #[schema(schema_with = crate::schema::any_address_or_null)]
    pub address: Option<String>,
    /// With the order's `lon` (or a new one).
    #[schema(schema_with = crate::schema::lat_or_null)]
    pub lat: Option<f64>,
    #[schema(schema_with = crate::schema::lon_or_null)]
    pub lon: Option<f64>,
    #[schema(schema_with = crate::schema::description_or_null)]
    pub description: Option<String>,
    /// Complaints only.
    pub grade: Option<crate::domain::Grade>,
}

/// A request to correct an order.
pub struct CorrectRequest {
    /// The typed body, or why it could not be typed (reported only after the state checks).
    pub correction: Result<Correction, AppError>,
    pub if_match: Option<Option<i32>>,
}

/// Applies a correction, audited as an `update` event with old and new values.
pub fn correct(
    conn: &mut DbConnection,
    actor: &Actor,
    id: &str,
    request: CorrectRequest,
    now: DateTime<Utc>,
    rules: &Rules,
) -> Result<WorkOrderRow, AppError> {
    let CorrectRequest {
        correction,
        if_match,
    } = request;
    write_transaction(conn, |conn| {
        let order = load_visible(conn, actor, id)?;
        let f = facts(&order, now, rules);
        match state_machine::decide(f, Action::Update, actor.role) {
            Err(Refusal::RoleForbidden) => {
                return Err(AppError::forbidden(format!(
                    "a {} may not correct orders",
                    actor.role
                )))
            }
            Ok(_) => check_if_match(if_match, order.version)?,
            Err(Refusal::NotAllowedNow) => {
                check_if_match(if_match, order.version)?;
                return Err(AppError::Conflict {
                    code: ProblemCode::ActionNotAllowed,
                    detail: format!("a {} order cannot be corrected", f.status),
                    allowed_actions: Some(state_machine::allowed_actions(f, actor.role)),
                });
            }
        }
        let c = correction?;
        let mut problems = crate::errors::Problems::default();
        if let Some(category) = &c.category {
            if rules.categories.find(f.kind, category).is_none() {
                problems.add("category", format!("not a category of {}", f.kind));
            }
        }
        if c.grade.is_some() && f.kind != Kind::Complaint {
            problems.add("grade", "only complaints have a grade");
        }
        problems.text(
            "description",
            c.description.as_deref(),
            limits::DESCRIPTION,
            c.description.is_some(),
        );
        problems.text("address", c.address.as_deref(), limits::ADDRESS, false);
        for (field, message) in crate::domain::values::check_coordinates(
            c.lat.or(order.lat.filter(|_| c.lon.is_some())),
            c.lon.or(order.lon.filter(|_| c.lat.is_some())),
        ) {
            problems.add(field, message);
        }
        if let Some(area) = &c.area_code {
            if areas::find(conn, area)?.is_none() {
                problems.add("area_code", "no such area");
            }
        }
        problems.finish()?;

        let mut diff = serde_json::Map::new();
        let mut changes = WorkOrderChanges::default();
        let mut record = |name: &str, old: serde_json::Value, new: serde_json::Value| -> bool {
            if old != new {
                diff.insert(name.to_owned(), json!({"old": old, "new": new}));
                true
            } else {
                false
            }
        };
        if let Some(v) = &c.category {
            if record("category", json!(order.category), json!(v)) {
                changes.category = Some(v.clone());
            }
        }
        if let Some(v) = c.priority {
            if record("priority", json!(order.priority), json!(v)) {
                changes.priority = Some(v.as_str().to_owned());
            }
        }
        if let Some(v) = &c.area_code {
            if record("area_code", json!(order.area_code), json!(v)) {
                changes.area_code = Some(v.clone());
            }
        }
        if let Some(v) = &c.address {
            if record("address", json!(order.address), json!(v)) {
                changes.address = Some(Some(v.clone()));
            }
        }
        if let Some(v) = c.lat {
            if record("lat", json!(order.lat), json!(v)) {
                changes.lat = Some(Some(v));
            }
        }
        if let Some(v) = c.lon {
            if record("lon", json!(order.lon), json!(v)) {
                changes.lon = Some(Some(v));
            }
        }
        if let Some(v) = &c.description {
            if record("description", json!(order.description), json!(v)) {
                changes.description = Some(v.clone());
            }
        }
        if let Some(v) = c.grade {
            if record("grade", json!(*order.grade), json!(v)) {
                changes.grade = Some(Some(v.as_str().to_owned()));
            }
        }
        if diff.is_empty() {
            return Ok(order);
        }
        changes.version = Some(order.version + 1);
        changes.updated_at = Some(now.naive_utc());
        let retarget = ["priority", "category", "area_code"]
            .iter()
            .any(|k| diff.contains_key(*k));
        if !repo::guarded_update(conn, &order.id, order.version, &changes)? {
            return Err(concurrent());
        }
        let corrected = repo::find(conn, &order.id)?.ok_or_else(order_not_found)?;
        let mut data = json!({"changes": diff});
        if retarget {
            let recalculated = sla::recalculate(conn, &rules.sla, &corrected, now)?;
            if !recalculated.is_empty() {
                data["sla_recalculated"] = json!(recalculated);
            }
        }
        events::insert(
            conn,
            &event(
                &order.id,
                "update",
                Some(actor),
                (None, None),
                None,
                data,
                now,
            ),
        )?;
        Ok(corrected)
    })
}
