//! Crew eligibility for an order (PRODUCT.md, "Routing to crews"). Pure: the caller gathers
//! the facts. An explicit dispatch may override these rules; the event records which.

use super::scoring::shrunk;
use super::{CrewKind, Family, Kind};
use std::collections::HashMap;

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

/// Weights and constants of the dispatch score (`config/routing.toml`).
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingWeights {
    pub distance: f64,
    pub load: f64,
    pub performance: f64,
    /// At this distance or beyond the distance part is 0.
    pub distance_scale_km: f64,
    /// Pseudo-arrivals of the peers' rate (same kind, same home area) mixed into a crew's
    /// on-time rate.
    pub shrinkage: f64,
    /// Days of arrivals the performance part looks back on.
    pub performance_window_days: i64,
}

/// One crew as routing sees it.
#[derive(Debug, Clone)]
pub struct CandidateInput<'a> {
    pub facts: CrewFacts<'a>,
    pub code: &'a str,
    pub position: Option<(f64, f64)>,
    /// On-time arrivals and all timed arrivals in the window.
    pub arrivals: (i64, i64),
}

/// The parts of a score, each in 0..1.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct ScoreParts {
    pub distance: f64,
    pub load: f64,
    pub performance: f64,
    /// The crew's raw on-time arrival rate in the window, if it had arrivals.
    pub on_time_rate: Option<f64>,
    /// Whether the crew covers the order's own area (else a backup area, ranked after).
    pub home_area: bool,
}

/// A crew's standing for an order.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    pub crew_id: String,
    pub code: String,
    pub eligible: bool,
    pub why_not: Vec<&'static str>,
    pub distance_km: Option<f64>,
    pub load: i64,
    pub capacity: i64,
    pub score: f64,
    pub parts: ScoreParts,
}

/// Great-circle distance in km (haversine, mean Earth radius).
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * 6371.0088 * h.sqrt().min(1.0).asin()
}

/// Scores and ranks every crew for an order: eligible before ineligible, home-area crews
/// before backup-area crews, then by score, ties by crew code (deterministic).
pub fn rank(
    order: &OrderNeeds<'_>,
    order_position: Option<(f64, f64)>,
    crews: &[CandidateInput<'_>],
    w: &RoutingWeights,
) -> Vec<Ranked> {
    // A crew's peers are the crews of its kind whose home area (first area code) is its own:
    // only their arrivals tell what on time means there.
    fn peer_key<'a>(c: &CandidateInput<'a>) -> (CrewKind, Option<&'a str>) {
        (c.facts.kind, c.facts.area_codes.first().map(String::as_str))
    }
    let mut peers: HashMap<_, (i64, i64)> = HashMap::new();
    for c in crews {
        let p = peers.entry(peer_key(c)).or_default();
        *p = (p.0 + c.arrivals.0, p.1 + c.arrivals.1);
    }
    // Nothing known of the peers: neutral.
    let peer_rate = |c: &CandidateInput<'_>| match peers.get(&peer_key(c)) {
        Some(&(h, t)) if t > 0 => h as f64 / t as f64,
        _ => 0.5,
    };
    let mut out: Vec<Ranked> = crews
        .iter()
        .map(|c| {
            let why_not = failed_rules(&c.facts, order);
            let distance = match (order_position, c.position) {
                (Some(o), Some(p)) => Some(distance_km(o, p)),
                _ => None,
            };
            let distance_part = distance
                .map(|d| (1.0 - d / w.distance_scale_km).clamp(0.0, 1.0))
                .unwrap_or(0.5);
            let load_part = if c.facts.capacity > 0 {
                (1.0 - c.facts.load as f64 / c.facts.capacity as f64).clamp(0.0, 1.0)
            } else {
                0.0
            };
            let (h, t) = c.arrivals;
            let performance = shrunk(h as f64, t as f64, peer_rate(c), w.shrinkage).unwrap_or(0.5);
            let home_area = c.facts.area_codes.iter().any(|a| a == order.area_code);
            let score =
                w.distance * distance_part + w.load * load_part + w.performance * performance;
            Ranked {
                crew_id: c.facts.id.to_owned(),
                code: c.code.to_owned(),
                eligible: why_not.is_empty(),
                why_not,
                distance_km: distance.map(|d| (d * 100.0).round() / 100.0),
                load: c.facts.load,
                capacity: c.facts.capacity,
                score: (score * 10_000.0).round() / 10_000.0,
                parts: ScoreParts {
                    distance: distance_part,
                    load: load_part,
                    performance,
                    on_time_rate: (t > 0).then(|| h as f64 / t as f64),
                    home_area,
                },
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.eligible
            .cmp(&a.eligible)
            .then(b.parts.home_area.cmp(&a.parts.home_area))
            .then(b.score.total_cmp(&a.score))
            .then(a.code.cmp(&b.code))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights() -> RoutingWeights {
        RoutingWeights {
            distance: 0.5,
            load: 0.3,
            performance: 0.2,
            distance_scale_km: 30.0,
            shrinkage: 5.0,
            performance_window_days: 30,
        }
    }

    #[test]
    fn haversine() {
        // Shenzhen Futian to Guangzhou Tianhe, about 104 km
        let d = distance_km((22.5431, 114.0579), (23.1291, 113.2644));
        assert!((d - 104.0).abs() < 3.0, "{d}");
        assert!(distance_km((22.5, 114.0), (22.5, 114.0)) < 1e-9);
    }

    #[test]
    fn ranking_by_distance_capacity_skill_backup_and_ties() {
        let home = vec!["A".to_owned()];
        let other = vec!["B".to_owned()];
        let skills = vec!["repair".to_owned()];
        let none: Vec<String> = vec![];
        let backup = vec!["B".to_owned()];
        let order = OrderNeeds {
            kind: Kind::Repair,
            area_code: "A",
            backup_area_codes: &backup,
            skill: Some("repair"),
            returned_crew_ids: &none,
        };
        let crew = |id: &'static str, areas: &'static Vec<String>, load: i64, pos: (f64, f64)| {
            CandidateInput {
                facts: CrewFacts {
                    id,
                    kind: CrewKind::Field,
                    on_duty: true,
                    area_codes: areas,
                    skills: &skills,
                    capacity: 4,
                    load,
                },
                code: id,
                position: Some(pos),
                arrivals: (0, 0),
            }
        };
        let home: &'static Vec<String> = Box::leak(Box::new(home));
        let other: &'static Vec<String> = Box::leak(Box::new(other));
        let near = crew("near", home, 0, (22.54, 114.05));
        let far = crew("far", home, 0, (22.70, 114.30));
        let full = crew("full", home, 4, (22.54, 114.05));
        let helper = crew("helper", other, 0, (22.54, 114.05));
        let twin = crew("a-twin", home, 0, (22.70, 114.30));
        let ranked = rank(
            &order,
            Some((22.54, 114.05)),
            &[far.clone(), full, helper, near, twin],
            &weights(),
        );
        let codes: Vec<&str> = ranked.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(
            codes,
            ["near", "a-twin", "far", "helper", "full"],
            "home before backup; ties by code; full last"
        );
        assert!(!ranked[4].eligible);
        assert_eq!(ranked[4].why_not, vec!["capacity"]);
        assert!(ranked[3].eligible && !ranked[3].parts.home_area);
        assert!(ranked[0].distance_km.unwrap() < 0.01);
    }

    /// Crews given as (id, kind, home area, arrivals), each covering A too, ranked for a repair
    /// order in A.
    fn performance_of(crews: &[(&'static str, CrewKind, &'static str, (i64, i64))]) -> Vec<Ranked> {
        let skills: Vec<String> = vec![];
        let none: Vec<String> = vec![];
        let order = OrderNeeds {
            kind: Kind::Repair,
            area_code: "A",
            backup_area_codes: &none,
            skill: None,
            returned_crew_ids: &none,
        };
        let areas: Vec<Vec<String>> = crews
            .iter()
            .map(|(_, _, home, _)| {
                let mut areas = vec![(*home).to_owned(), "A".to_owned()];
                areas.dedup();
                areas
            })
            .collect();
        let inputs: Vec<CandidateInput<'_>> = crews
            .iter()
            .zip(&areas)
            .map(|(&(id, kind, _, arrivals), areas)| CandidateInput {
                facts: CrewFacts {
                    id,
                    kind,
                    on_duty: true,
                    area_codes: areas,
                    skills: &skills,
                    capacity: 1,
                    load: 0,
                },
                code: id,
                position: None,
                arrivals,
            })
            .collect();
        rank(&order, None, &inputs, &weights())
    }

    fn perf(ranked: &[Ranked], code: &str) -> f64 {
        ranked
            .iter()
            .find(|r| r.code == code)
            .unwrap()
            .parts
            .performance
    }

    fn near(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    #[test]
    fn performance_is_shrunk_toward_the_same_kind_same_home_area_rate() {
        use CrewKind::{Field, Unit};
        let area_a = [
            ("lucky", Field, "A", (3, 3)),
            ("steady", Field, "A", (45, 50)),
            ("slow", Field, "A", (10, 50)),
        ];
        // peers of A's field crews: (3 + 45 + 10)/(3 + 50 + 50) = 58/103 = 0.5631068
        // lucky  = (3 + 5*58/103)/(3 + 5)   = (3 + 2.8155340)/8   = 0.7269417
        // steady = (45 + 5*58/103)/(50 + 5) = 47.8155340/55       = 0.8693733
        // slow   = (10 + 5*58/103)/(50 + 5) = 12.8155340/55       = 0.2330097
        let check = |ranked: &[Ranked]| {
            assert!(
                near(perf(ranked, "lucky"), 0.7269417),
                "{}",
                perf(ranked, "lucky")
            );
            assert!(
                near(perf(ranked, "steady"), 0.8693733),
                "{}",
                perf(ranked, "steady")
            );
            assert!(
                near(perf(ranked, "slow"), 0.2330097),
                "{}",
                perf(ranked, "slow")
            );
        };
        let ranked = performance_of(&area_a);
        check(&ranked);
        assert!(
            perf(&ranked, "steady") > perf(&ranked, "lucky"),
            "3 of 3 is not ranked above 45 of 50"
        );
        assert_eq!(
            ranked
                .iter()
                .find(|r| r.code == "lucky")
                .unwrap()
                .parts
                .on_time_rate,
            Some(1.0),
            "the raw rate is shown unshrunk"
        );

        // A field crew whose home is B (it covers A second) and a unit of A, both never on
        // time in 40 arrivals: mixed in, they would pull A's field rate down to 58/183.
        let mut all = area_a.to_vec();
        all.push(("b-home", Field, "B", (0, 40)));
        all.push(("a-unit", Unit, "A", (0, 40)));
        let ranked = performance_of(&all);
        check(&ranked);
        // each outsider is its own only peer at 0/40 = 0: (0 + 5*0)/(40 + 5) = 0
        assert!(near(perf(&ranked, "b-home"), 0.0));
        assert!(near(perf(&ranked, "a-unit"), 0.0));
    }

    #[test]
    fn performance_without_data_is_neutral() {
        use CrewKind::{Field, Unit};
        // nobody of A's field crews has arrivals: (0 + 5*0.5)/(0 + 5) = 0.5, whatever other
        // areas and kinds did
        let ranked = performance_of(&[
            ("new", Field, "A", (0, 0)),
            ("other-area", Field, "B", (9, 10)),
            ("other-kind", Unit, "A", (1, 10)),
        ]);
        assert!(near(perf(&ranked, "new"), 0.5));
        assert_eq!(
            ranked
                .iter()
                .find(|r| r.code == "new")
                .unwrap()
                .parts
                .on_time_rate,
            None
        );
        // a new crew among peers with data takes their rate: 8 of 10 = 0.8, (0 + 5*0.8)/5 = 0.8
        let ranked = performance_of(&[("new", Field, "A", (0, 0)), ("old", Field, "A", (8, 10))]);
        assert!(near(perf(&ranked, "new"), 0.8));
        // no arrivals and no shrinkage: nothing to divide, neutral 0.5
        let w = RoutingWeights {
            shrinkage: 0.0,
            ..weights()
        };
        let none: Vec<String> = vec![];
        let areas = vec!["A".to_owned()];
        let order = OrderNeeds {
            kind: Kind::Repair,
            area_code: "A",
            backup_area_codes: &none,
            skill: None,
            returned_crew_ids: &none,
        };
        let lone = CandidateInput {
            facts: CrewFacts {
                id: "lone",
                kind: CrewKind::Field,
                on_duty: true,
                area_codes: &areas,
                skills: &none,
                capacity: 1,
                load: 0,
            },
            code: "lone",
            position: None,
            arrivals: (0, 0),
        };
        assert!(near(
            rank(&order, None, &[lone], &w)[0].parts.performance,
            0.5
        ));
    }

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
