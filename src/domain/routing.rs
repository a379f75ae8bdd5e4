//! Crew eligibility for an order (PRODUCT.md, "Routing to crews"). Pure: the caller gathers
//! the facts. An explicit dispatch may override these rules; the event records which.

use super::{CrewKind, Family, Kind};

/// What eligibility looks at of a crew.
#[derive(Debug, Clone)]
pub struct CrewFacts<'a> {
    pub id: &'a str,
    pub kind: CrewKind,
    pub on_duty: bool,
    pub area_codes: &'a [String],
    pub skills: &'a [String],
    pub capacity: i64,
    pub load: i64,
}

/// What eligibility looks at of an order.
#[derive(Debug, Clone)]
pub struct OrderNeeds<'a> {
    pub kind: Kind,
    pub area_code: &'a str,
    pub backup_area_codes: &'a [String],
    pub skill: Option<&'a str>,
    pub returned_crew_ids: &'a [String],
}

/// The crew kind an order family needs.
pub fn crew_kind_for(kind: Kind) -> CrewKind {
    match kind.family() {
        Family::Field => CrewKind::Field,
        _ => CrewKind::Unit,
    }
}

/// The rules a crew fails for an order, by name (empty: eligible).
pub fn failed_rules(crew: &CrewFacts<'_>, order: &OrderNeeds<'_>) -> Vec<&'static str> {
    let mut failed = Vec::new();
    if crew.kind != crew_kind_for(order.kind) {
        failed.push("kind");
    }
    if !crew.on_duty {
        failed.push("on_duty");
    }
    let covers = |code: &str| crew.area_codes.iter().any(|a| a == code);
    if !covers(order.area_code) && !order.backup_area_codes.iter().any(|b| covers(b)) {
        failed.push("area");
    }
    if let Some(skill) = order.skill {
        if !crew.skills.iter().any(|s| s == skill) {
            failed.push("skill");
        }
    }
    if crew.load >= crew.capacity {
        failed.push("capacity");
    }
    if order.returned_crew_ids.iter().any(|r| r == crew.id) {
        failed.push("returned_before");
    }
    failed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules() {
        let areas = vec!["A".to_owned()];
        let skills = vec!["repair".to_owned()];
        let none: Vec<String> = vec![];
        let crew = CrewFacts {
            id: "c1",
            kind: CrewKind::Field,
            on_duty: true,
            area_codes: &areas,
            skills: &skills,
            capacity: 2,
            load: 1,
        };
        let order = OrderNeeds {
            kind: Kind::Repair,
            area_code: "A",
            backup_area_codes: &none,
            skill: Some("repair"),
            returned_crew_ids: &none,
        };
        assert!(failed_rules(&crew, &order).is_empty());
        let busy = CrewFacts {
            load: 2,
            on_duty: false,
            ..crew.clone()
        };
        assert_eq!(failed_rules(&busy, &order), vec!["on_duty", "capacity"]);
        let elsewhere = OrderNeeds {
            area_code: "B",
            ..order.clone()
        };
        assert_eq!(failed_rules(&crew, &elsewhere), vec!["area"]);
        let backup = vec!["A".to_owned()];
        let helped = OrderNeeds {
            area_code: "B",
            backup_area_codes: &backup,
            ..order.clone()
        };
        assert!(failed_rules(&crew, &helped).is_empty());
        let complaint = OrderNeeds {
            kind: Kind::Complaint,
            skill: Some("complaints"),
            ..order.clone()
        };
        assert_eq!(failed_rules(&crew, &complaint), vec!["kind", "skill"]);
        let returned = vec!["c1".to_owned()];
        let again = OrderNeeds {
            returned_crew_ids: &returned,
            ..order
        };
        assert_eq!(failed_rules(&crew, &again), vec!["returned_before"]);
    }
}
