//! Creating and changing users: shared by the REST API and the `gridcall user create` CLI.

use crate::auth::password::{check_new_password, hash_password, PasswordCost};
use crate::db::users::{self as repo, UserChanges, UserRow};
use crate::db::StoredList;
use crate::db::{areas, auth, crews, to_json_list, write_transaction, DbConnection};
use crate::domain::Role;
use crate::errors::{AppError, Problems};
use crate::schema;
use chrono::{DateTime, Utc};
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    #[schema(schema_with = schema::username)]
    pub username: String,
    #[schema(schema_with = schema::password)]
    pub password: String,
    pub role: Role,
    #[schema(schema_with = schema::any_name_or_null)]
    pub display_name: Option<String>,
    #[schema(schema_with = schema::email_or_null)]
    pub email: Option<String>,
    /// Required for the crew role, refused for the others.
    #[schema(schema_with = schema::uuid_or_null)]
    pub crew_id: Option<String>,
    #[serde(default)]
    #[schema(schema_with = schema::codes)]
    pub area_codes: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    pub role: Option<Role>,
    #[schema(schema_with = schema::name_or_null)]
    pub display_name: Option<String>,
    #[schema(schema_with = schema::email_or_null)]
    pub email: Option<String>,
    /// Required for the crew role, refused for the others.
    #[schema(schema_with = schema::uuid_or_null)]
    pub crew_id: Option<String>,
    #[schema(schema_with = schema::codes_or_null)]
    pub area_codes: Option<Vec<String>>,
    pub active: Option<bool>,
    #[schema(schema_with = schema::password_or_null)]
    pub password: Option<String>,
}

fn check_username(p: &mut Problems, username: &str) {
    let n = username.chars().count();
    if n == 0 || n > 100 {
        p.add("username", "must be 1 to 100 characters");
    } else if !username
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
    {
        p.add(
            "username",
            "may hold ASCII letters, digits, '.', '_', '-' and '@'",
        );
    }
}

fn check_email(p: &mut Problems, email: Option<&str>) {
    if let Some(e) = email {
        if e.chars().count() > 254 || !e.contains('@') || e.contains(char::is_whitespace) {
            p.add("email", "must be an email address");
        }
    }
}

/// Checks crew and area references of a user with this role.
fn check_refs(
    conn: &mut DbConnection,
    p: &mut Problems,
    role: Role,
    crew_id: Option<&str>,
    area_codes: &[String],
) -> Result<(), AppError> {
    match (role, crew_id) {
        (Role::Crew, None) => p.add("crew_id", "a crew user needs a crew_id"),
        (Role::Crew, Some(id)) if crews::find(conn, id)?.is_none() => {
            p.add("crew_id", "no such crew")
        }
        (Role::Crew, Some(_)) => {}
        (_, Some(_)) => p.add("crew_id", "only crew users belong to a crew"),
        _ => {}
    }
    let missing = areas::missing(conn, area_codes)?;
    if !missing.is_empty() {
        p.add(
            "area_codes",
            format!("no such areas: {}", missing.join(", ")),
        );
    }
    Ok(())
}

pub fn create(
    conn: &mut DbConnection,
    new: NewUser,
    now: DateTime<Utc>,
    cost: PasswordCost,
) -> Result<UserRow, AppError> {
    let mut p = Problems::default();
    check_username(&mut p, &new.username);
    if let Err(m) = check_new_password(&new.password) {
        p.add("password", m);
    }
    p.text("display_name", new.display_name.as_deref(), 100, false);
    check_email(&mut p, new.email.as_deref());
    check_refs(
        conn,
        &mut p,
        new.role,
        new.crew_id.as_deref(),
        &new.area_codes,
    )?;
    p.finish()?;
    let hash = hash_password(&new.password, cost).map_err(AppError::internal)?;
    let row = UserRow {
        id: uuid::Uuid::new_v4().to_string(),
        display_name: new
            .display_name
            .clone()
            .unwrap_or_else(|| new.username.clone()),
        username: new.username,
        password_hash: hash,
        role: new.role,
        email: new.email,
        crew_id: new.crew_id,
        area_codes: StoredList(new.area_codes.clone()),
        active: true,
        created_at: now.naive_utc(),
        updated_at: now.naive_utc(),
    };
    write_transaction(conn, |conn| repo::insert(conn, &row))?;
    Ok(row)
}

/// Changes a user; deactivation and password changes revoke every refresh chain.
pub fn update(
    conn: &mut DbConnection,
    id: &str,
    patch: UserPatch,
    now: DateTime<Utc>,
    cost: PasswordCost,
) -> Result<UserRow, AppError> {
    let user = repo::find(conn, id)?.ok_or(AppError::NotFound { what: "user" })?;
    let mut p = Problems::default();
    let role = patch.role.unwrap_or_else(|| user.role());
    let crew_id = match (&patch.crew_id, role) {
        (Some(c), _) => Some(c.clone()),
        (None, Role::Crew) => user.crew_id.clone(),
        (None, _) => None,
    };
    let area_codes = patch
        .area_codes
        .clone()
        .unwrap_or_else(|| user.area_codes());
    check_refs(conn, &mut p, role, crew_id.as_deref(), &area_codes)?;
    p.text(
        "display_name",
        patch.display_name.as_deref(),
        100,
        patch.display_name.is_some(),
    );
    check_email(&mut p, patch.email.as_deref());
    if let Some(pw) = &patch.password {
        if let Err(m) = check_new_password(pw) {
            p.add("password", m);
        }
    }
    p.finish()?;
    let password_hash = patch
        .password
        .as_deref()
        .map(|pw| hash_password(pw, cost))
        .transpose()
        .map_err(AppError::internal)?;
    let revoke = patch.active == Some(false) || password_hash.is_some();
    let changes = UserChanges {
        role: Some(role.as_str().to_owned()),
        display_name: patch.display_name,
        email: patch.email.map(Some),
        crew_id: Some(crew_id),
        area_codes: Some(to_json_list(&area_codes)),
        active: patch.active,
        password_hash,
        updated_at: Some(now.naive_utc()),
    };
    write_transaction(conn, |conn| {
        repo::update(conn, id, &changes)?;
        if revoke {
            auth::revoke_user(conn, id, now.naive_utc())?;
        }
        repo::find(conn, id)?.ok_or(AppError::NotFound { what: "user" })
    })
}

/// The active user with this id as an actor, its area scope widened to the scoped areas'
/// descendants (a scope on a city covers its districts); `None` if gone or deactivated.
pub fn active_actor(
    conn: &mut DbConnection,
    user_id: &str,
) -> Result<Option<crate::domain::Actor>, AppError> {
    let Some(user) = repo::find(conn, user_id)?.filter(|u| u.active) else {
        return Ok(None);
    };
    let mut actor = user.actor();
    if !actor.area_codes.is_empty() {
        let tree = areas::tree(conn)?;
        let mut scope: Vec<String> =
            crate::domain::areas::with_descendants(&tree, &actor.area_codes)
                .into_iter()
                .collect();
        scope.sort();
        actor.area_codes = scope;
    }
    Ok(Some(actor))
}
