//! Customers (personal data: name, phone, address).

use super::schema::customers;
use super::{is_unique_violation, DbConnection};
use crate::errors::AppError;
use chrono::NaiveDateTime;
use diesel::prelude::*;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = customers)]
pub struct CustomerRow {
    pub id: String,
    pub account_no: String,
    pub name: String,
    pub phone: String,
    pub email: Option<String>,
    pub address: String,
    pub area_code: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub tier: String,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Default, AsChangeset)]
#[diesel(table_name = customers)]
pub struct CustomerChanges {
    pub account_no: Option<String>,
    pub name: Option<String>,
    pub phone: Option<String>,
    pub email: Option<Option<String>>,
    pub address: Option<String>,
    pub area_code: Option<String>,
    pub lat: Option<Option<f64>>,
    pub lon: Option<Option<f64>>,
    pub tier: Option<String>,
    pub updated_at: Option<NaiveDateTime>,
}

#[derive(Debug, Default)]
pub struct CustomerFilter {
    pub phone: Option<String>,
    pub account_no: Option<String>,
    pub q: Option<String>,
}

fn map_unique(e: diesel::result::Error, account_no: &str) -> AppError {
    if is_unique_violation(&e) {
        AppError::AlreadyExists {
            detail: format!("account number `{account_no}` exists"),
        }
    } else {
        e.into()
    }
}

pub fn find(conn: &mut DbConnection, id: &str) -> Result<Option<CustomerRow>, AppError> {
    Ok(customers::table
        .find(id)
        .select(CustomerRow::as_select())
        .first(conn)
        .optional()?)
}

/// The tiers of the customers with this (normalised) phone: a caller who gives only a phone
/// is still the important customer whose phone it is. Served by `customers_phone_idx`.
pub fn tiers_by_phone(conn: &mut DbConnection, phone: &str) -> Result<Vec<String>, AppError> {
    Ok(customers::table
        .filter(customers::phone.eq(phone))
        .select(customers::tier)
        .limit(20)
        .load(conn)?)
}

pub fn insert(conn: &mut DbConnection, row: &CustomerRow) -> Result<(), AppError> {
    diesel::insert_into(customers::table)
        .values(row)
        .execute(conn)
        .map_err(|e| map_unique(e, &row.account_no))?;
    Ok(())
}

pub fn update(
    conn: &mut DbConnection,
    id: &str,
    changes: &CustomerChanges,
) -> Result<(), AppError> {
    diesel::update(customers::table.find(id))
        .set(changes)
        .execute(conn)
        .map_err(|e| map_unique(e, changes.account_no.as_deref().unwrap_or("")))?;
    Ok(())
}

/// Escapes LIKE wildcards so user text matches literally.
pub fn like_pattern(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('%', "\\%")
        .replace('_', "\\_");
    format!("%{escaped}%")
}

/// Customers by account number, after the cursor's account number.
pub fn list(
    conn: &mut DbConnection,
    filter: &CustomerFilter,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<CustomerRow>, AppError> {
    let mut q = customers::table
        .select(CustomerRow::as_select())
        .order(customers::account_no.asc())
        .limit(limit)
        .into_boxed();
    if let Some(after) = after {
        q = q.filter(customers::account_no.gt(after.to_owned()));
    }
    if let Some(phone) = &filter.phone {
        q = q.filter(customers::phone.eq(phone.clone()));
    }
    if let Some(account_no) = &filter.account_no {
        q = q.filter(customers::account_no.eq(account_no.clone()));
    }
    if let Some(text) = &filter.q {
        let pattern = like_pattern(text);
        q = q.filter(
            customers::name
                .like(pattern.clone())
                .escape('\\')
                .or(customers::address.like(pattern.clone()).escape('\\'))
                .or(customers::account_no.like(pattern).escape('\\')),
        );
    }
    Ok(q.load(conn)?)
}
