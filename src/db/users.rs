//! Users.

use super::schema::users;
use super::{is_unique_violation, DbConnection};
use crate::domain::{Actor, Role};
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = users)]
pub struct UserRow {
    pub id: String,
    pub username: String,
    pub password_hash: String,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub role: Role,
    pub display_name: String,
    pub email: Option<String>,
    pub crew_id: Option<String>,
    #[diesel(deserialize_as = String, serialize_as = String)]
    pub area_codes: super::StoredList,
    pub active: bool,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

impl UserRow {
    pub fn role(&self) -> Role {
        self.role
    }

    pub fn area_codes(&self) -> Vec<String> {
        self.area_codes.to_vec()
    }

    pub fn actor(&self) -> Actor {
        Actor {
            id: self.id.clone(),
            username: self.username.clone(),
            role: self.role(),
            crew_id: self.crew_id.clone(),
            area_codes: self.area_codes(),
        }
    }
}

/// The changes a PATCH may make.
#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = users)]
pub struct UserChanges {
    pub role: Option<String>,
    pub display_name: Option<String>,
    pub email: Option<Option<String>>,
    pub crew_id: Option<Option<String>>,
    pub area_codes: Option<String>,
    pub active: Option<bool>,
    pub password_hash: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<UserRow>, AppError> {
    Ok(users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn find_by_username(
    conn: &mut DbConnection,
    username: &str,
) -> Result<Option<UserRow>, AppError> {
    Ok(users::table
        .filter(users::username.eq(username))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?)
}

pub fn insert(conn: &mut DbConnection, row: &UserRow) -> Result<(), AppError> {
    diesel::insert_into(users::table)
        .values(row.clone())
        .execute(conn)
        .map_err(|e| {
            if is_unique_violation(&e) {
                AppError::AlreadyExists {
                    detail: format!("username `{}` is taken", row.username),
                }
            } else {
                e.into()
            }
        })?;
    Ok(())
}

pub fn update(conn: &mut DbConnection, id: &str, changes: &UserChanges) -> Result<(), AppError> {
    diesel::update(users::table.find(id))
        .set(changes)
        .execute(conn)?;
    Ok(())
}

/// Users ordered by username, after the cursor's username.
pub fn list(
    conn: &mut DbConnection,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<UserRow>, AppError> {
    let mut q = users::table
        .select(UserRow::as_select())
        .order(users::username.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(users::username.gt(after.to_owned()));
    }
    Ok(q.load(conn)?)
}

/// Addresses of active users with `role` whose scope covers `area_code`.
pub fn emails_for(
    conn: &mut DbConnection,
    role: Role,
    area_code: &str,
) -> Result<Vec<String>, AppError> {
    let rows: Vec<UserRow> = users::table
        .filter(users::role.eq(role.as_str()))
        .filter(users::active.eq(true))
        .filter(users::email.is_not_null())
        .select(UserRow::as_select())
        .load(conn)?;
    let mut emails: Vec<String> = rows
        .into_iter()
        .filter(|u| {
            let areas = u.area_codes();
            areas.is_empty() || areas.iter().any(|a| a == area_code)
        })
        .filter_map(|u| u.email)
        .collect();
    emails.sort();
    emails.dedup();
    Ok(emails)
}
