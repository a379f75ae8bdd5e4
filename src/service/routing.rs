//! Gathering the facts for automatic dispatch: every crew with its load and 30-day on-time
//! arrivals (replies for units) by the crew credited, the order's area and needs; the ranking itself is `domain::routing::rank`.

use crate::db::areas::AreaRow;
use crate::db::work_orders::WorkOrderRow;
use crate::db::{areas, crews, DbConnection};
use crate::domain::categories::Categories;
use crate::domain::routing::{
    self, rank, CandidateInput, CrewFacts, OrderNeeds, Ranked, RoutingWeights,
};
use crate::domain::sla::Stage;
use crate::domain::CrewKind;
use crate::errors::AppError;
use chrono::{DateTime, TimeDelta, Utc};

/// A crew's standing for an order, with its name (what a dispatcher is shown).
#[derive(Debug, Clone)]
pub struct Candidate {
    pub ranked: Ranked,
    pub name: String,
}

/// Every crew ranked for this order (eligible first, best first). `area`: the order's area
/// when it was read already.
pub fn candidates(
    conn: &mut DbConnection,
    order: &WorkOrderRow,
    area: Option<&AreaRow>,
    categories: &Categories,
    weights: &RoutingWeights,
    now: DateTime<Utc>,
) -> Result<Vec<Ranked>, AppError> {
    Ok(
        named_candidates(conn, order, area, categories, weights, now)?
            .into_iter()
            .map(|c| c.ranked)
            .collect(),
    )
}

/// Every crew ranked for this order, with the crews' names.
pub fn named_candidates(
    conn: &mut DbConnection,
    order: &WorkOrderRow,
    area: Option<&AreaRow>,
    categories: &Categories,
    weights: &RoutingWeights,
    now: DateTime<Utc>,
) -> Result<Vec<Candidate>, AppError> {
    let all = crews::all(conn)?;
    let since = (now - TimeDelta::days(weights.performance_window_days)).naive_utc();
    let kind = order.kind;
    let crew_kind = routing::crew_kind_for(kind);
    // Units go on no site: their recent performance is the on-time reply rate.
    let stage = match crew_kind {
        CrewKind::Field => Stage::Arrival,
        CrewKind::Unit => Stage::Reply,
    };
    let backup = match area.filter(|a| a.code == order.area_code) {
        Some(a) => a.backup_area_codes.to_vec(),
        None => areas::find(conn, &order.area_code)?
            .map(|a| a.backup_area_codes.to_vec())
            .unwrap_or_default(),
    };
    let lists: Vec<(Vec<String>, Vec<String>)> = all
        .iter()
        .map(|c| (c.area_codes.to_vec(), c.skills.to_vec()))
        .collect();
    // Loads and arrivals are read only for the crews that could take the order (they cover
    // its area or a backup area) and their peers (same kind, same home area), whose
    // arrivals the score is shrunk toward: a dispatch reads a few crews' month, not the
    // month of every crew in the province. Other crews are listed with no history.
    let covers = |areas: &[String]| {
        areas
            .iter()
            .any(|a| a == &order.area_code || backup.contains(a))
    };
    let homes: std::collections::HashSet<&str> = all
        .iter()
        .zip(&lists)
        .filter(|(c, (areas, _))| c.kind == crew_kind && covers(areas))
        .filter_map(|(_, (areas, _))| areas.first().map(String::as_str))
        .collect();
    let relevant: Vec<&str> = all
        .iter()
        .zip(&lists)
        .filter(|(c, (areas, _))| {
            covers(areas)
                || (c.kind == crew_kind
                    && areas.first().is_some_and(|h| homes.contains(h.as_str())))
        })
        .map(|(c, _)| c.id.as_str())
        .collect();
    let standings = crews::standings(conn, stage.as_str(), (since, now.naive_utc()), &relevant)?;
    let skill = categories
        .find(kind, &order.category)
        .and_then(|c| c.skill.clone());
    let returned = order.returned_crew_ids.to_vec();
    let inputs: Vec<CandidateInput<'_>> = all
        .iter()
        .zip(&lists)
        .map(|(c, (area_codes, skills))| {
            // A crew that was not read (it could not take the order) has no load or history.
            let standing = standings.get(&c.id).copied().unwrap_or_default();
            CandidateInput {
                facts: CrewFacts {
                    id: &c.id,
                    kind: c.kind,
                    on_duty: c.on_duty,
                    area_codes,
                    skills,
                    capacity: i64::from(c.capacity),
                    load: standing.load,
                },
                code: &c.code,
                position: c.lat.zip(c.lon),
                arrivals: (standing.met, standing.timed),
            }
        })
        .collect();
    let needs = OrderNeeds {
        kind,
        area_code: &order.area_code,
        backup_area_codes: &backup,
        skill: skill.as_deref(),
        returned_crew_ids: &returned,
    };
    let names: std::collections::HashMap<&str, &str> = all
        .iter()
        .map(|c| (c.id.as_str(), c.name.as_str()))
        .collect();
    Ok(rank(&needs, order.lat.zip(order.lon), &inputs, weights)
        .into_iter()
        .map(|ranked| Candidate {
            name: names
                .get(ranked.crew_id.as_str())
                .copied()
                .unwrap_or_default()
                .to_owned(),
            ranked,
        })
        .collect())
}
