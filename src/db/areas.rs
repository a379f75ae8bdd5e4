//! Service areas.

use super::schema::areas;
use super::{is_unique_violation, on_backend, DbConnection};
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = areas)]
pub struct AreaRow {
    pub code: String,
    pub name: String,
    pub region_class: String,
    pub parent_code: Option<String>,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub backup_area_codes: super::StoredList,
    pub calendar: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = areas)]
pub struct AreaChanges {
    pub name: Option<String>,
    pub region_class: Option<String>,
    pub parent_code: Option<Option<String>>,
    pub backup_area_codes: Option<String>,
    pub calendar: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
}

pub fn find(conn: &mut DbConnection, code: &str) -> Result<Option<AreaRow>, AppError> {
    Ok(on_backend!(conn, |c| areas::table
        .find(code)
        .select(AreaRow::as_select())
        .first(c)
        .optional())?)
}

/// The codes among `codes` that name no area.
pub fn missing(conn: &mut DbConnection, codes: &[String]) -> Result<Vec<String>, AppError> {
    if codes.is_empty() {
        return Ok(Vec::new());
    }
    let found: Vec<String> = areas::table
        .filter(areas::code.eq_any(codes))
        .select(areas::code)
        .load(conn)?;
    Ok(codes
        .iter()
        .filter(|c| !found.contains(c))
        .cloned()
        .collect())
}

pub fn insert(conn: &mut DbConnection, row: &AreaRow) -> Result<(), AppError> {
    diesel::insert_into(areas::table)
        .values(row.clone())
        .execute(conn)
        .map_err(|e| {
            if is_unique_violation(&e) {
                AppError::AlreadyExists {
                    detail: format!("area `{}` exists", row.code),
                }
            } else {
                e.into()
            }
        })?;
    Ok(())
}

pub fn update(conn: &mut DbConnection, code: &str, changes: &AreaChanges) -> Result<(), AppError> {
    diesel::update(areas::table.find(code))
        .set(changes)
        .execute(conn)?;
    Ok(())
}

pub fn list(
    conn: &mut DbConnection,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<AreaRow>, AppError> {
    let mut q = areas::table
        .select(AreaRow::as_select())
        .order(areas::code.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(areas::code.gt(after.to_owned()));
    }
    Ok(q.load(conn)?)
}

/// Every area's code and parent: the tree that area filters and scopes expand over (a
/// province has tens of areas, not millions).
pub fn tree(conn: &mut DbConnection) -> Result<Vec<(String, Option<String>)>, AppError> {
    Ok(areas::table
        .select((areas::code, areas::parent_code))
        .load(conn)?)
}

/// Every area's code and name, for report labels.
pub fn names(
    conn: &mut DbConnection,
) -> Result<std::collections::HashMap<String, String>, AppError> {
    Ok(areas::table
        .select((areas::code, areas::name))
        .load::<(String, String)>(conn)?
        .into_iter()
        .collect())
}
