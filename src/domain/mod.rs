//! Pure domain logic: work-order kinds, the state machine and validated values.
//! Nothing here knows actix or diesel.

pub mod areas;
pub mod calendar;
pub mod categories;
pub mod event_stream;
pub mod reports;
pub mod rollup;
pub mod routing;
pub mod scoring;
pub mod sla;
pub mod state_machine;
pub mod timer;
pub mod values;

pub use state_machine::{
    Action, Channel, CrewKind, Family, Grade, Kind, Priority, RegionClass, Role, Satisfaction,
    Status, Tier,
};

/// Who is acting: the authenticated user as the domain sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub crew_id: Option<String>,
    /// Scope of a dispatcher or supervisor; empty means all areas.
    pub area_codes: Vec<String>,
}

impl Actor {
    const SYSTEM_ID: &'static str = "system";

    /// gridcall itself acting on a configured rule (automatic dispatch on creation): allowed
    /// what an admin is; its events carry no actor.
    pub fn system() -> Actor {
        Actor {
            id: Self::SYSTEM_ID.into(),
            username: Self::SYSTEM_ID.into(),
            role: Role::Admin,
            crew_id: None,
            area_codes: Vec::new(),
        }
    }

    pub fn is_system(&self) -> bool {
        self.id == Self::SYSTEM_ID
    }

    /// Whether the caller has one of `roles` (admin has every role).
    pub fn is(&self, roles: &[Role]) -> bool {
        self.role == Role::Admin || roles.contains(&self.role)
    }

    /// Whether an area is inside the caller's scope.
    pub fn sees_area(&self, area_code: &str) -> bool {
        match self.role {
            Role::Dispatcher | Role::Supervisor => {
                self.area_codes.is_empty() || self.area_codes.iter().any(|a| a == area_code)
            }
            _ => true,
        }
    }

    /// Whether the caller sees only part of the work: a crew user, or a scoped dispatcher or
    /// supervisor (the event stream filters what they receive).
    pub fn is_scoped(&self) -> bool {
        match self.role {
            Role::Crew => true,
            Role::Dispatcher | Role::Supervisor => !self.area_codes.is_empty(),
            _ => false,
        }
    }

    /// Whether every one of `area_codes` is inside the caller's scope.
    pub fn sees_all_areas(&self, area_codes: &[String]) -> bool {
        area_codes.iter().all(|a| self.sees_area(a))
    }

    /// Whether an order is inside the caller's scope: crew users see their crew's orders,
    /// scoped dispatchers and supervisors their areas'.
    pub fn sees_order(&self, area_code: &str, assigned_crew_id: Option<&str>) -> bool {
        match self.role {
            Role::Crew => self.crew_id.is_some() && assigned_crew_id == self.crew_id.as_deref(),
            _ => self.sees_area(area_code),
        }
    }
}

#[cfg(test)]
mod actor_tests {
    use super::*;

    fn actor(role: Role, crew: Option<&str>, areas: &[&str]) -> Actor {
        Actor {
            id: "u".into(),
            username: "u".into(),
            role,
            crew_id: crew.map(Into::into),
            area_codes: areas.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn scopes() {
        assert!(actor(Role::Crew, Some("c1"), &[]).sees_order("A", Some("c1")));
        assert!(!actor(Role::Crew, Some("c1"), &[]).sees_order("A", Some("c2")));
        assert!(!actor(Role::Crew, Some("c1"), &[]).sees_order("A", None));
        assert!(actor(Role::Dispatcher, None, &["A"]).sees_order("A", None));
        assert!(!actor(Role::Dispatcher, None, &["A"]).sees_order("B", None));
        assert!(actor(Role::Supervisor, None, &[]).sees_order("B", None));
        assert!(actor(Role::Agent, None, &["A"]).sees_order("B", None));
        assert!(actor(Role::Admin, None, &[]).is(&[Role::Dispatcher]));
        assert!(!actor(Role::Agent, None, &[]).is(&[Role::Dispatcher]));
    }
}
