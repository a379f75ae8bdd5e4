//! Gathering the facts for automatic dispatch: every crew with its load and 30-day on-time
//! arrivals (replies for units) by the crew credited, the order's area and needs; the ranking itself is `domain::routing::rank`.

use crate::db::work_orders::WorkOrderRow;
use crate::db::{areas, crews, from_json_list, DbConnection};
use crate::domain::categories::Categories;
use crate::domain::routing::{
    self, rank, CandidateInput, CrewFacts, OrderNeeds, Ranked, RoutingWeights,
};
use crate::domain::sla::Stage;
use crate::domain::{CrewKind, Kind};
use crate::errors::AppError;
use chrono::{DateTime, TimeDelta, Utc};

/// Every crew ranked for this order (eligible first, best first).
pub fn candidates(
    conn: &mut DbConnection,
    order: &WorkOrderRow,
    categories: &Categories,
    weights: &RoutingWeights,
    now: DateTime<Utc>,
) -> Result<Vec<Ranked>, AppError> {
    let all = crews::all(conn)?;
    let loads = crews::loads(conn)?;
    let since = (now - TimeDelta::days(weights.performance_window_days)).naive_utc();
    let kind: Kind = order.kind.parse().unwrap_or(Kind::Repair);
    // Units go on no site: their recent performance is the on-time reply rate.
    let stage = match routing::crew_kind_for(kind) {
        CrewKind::Field => Stage::Arrival,
        CrewKind::Unit => Stage::Reply,
    };
    let arrivals = crews::on_time_stats(conn, stage.as_str(), (since, now.naive_utc()))?;
    let backup = areas::find(conn, &order.area_code)?
        .map(|a| from_json_list(&a.backup_area_codes))
        .unwrap_or_default();
    let skill = categories
        .find(kind, &order.category)
        .and_then(|c| c.skill.clone());
    let returned = from_json_list(&order.returned_crew_ids);
    let lists: Vec<(Vec<String>, Vec<String>)> = all
        .iter()
        .map(|c| (from_json_list(&c.area_codes), from_json_list(&c.skills)))
        .collect();
    let inputs: Vec<CandidateInput<'_>> = all
        .iter()
        .zip(&lists)
        .map(|(c, (area_codes, skills))| CandidateInput {
            facts: CrewFacts {
                id: &c.id,
                kind: c.kind.parse().unwrap_or(CrewKind::Field),
                on_duty: c.on_duty,
                area_codes,
                skills,
                capacity: i64::from(c.capacity),
                load: loads.get(&c.id).copied().unwrap_or(0),
            },
            code: &c.code,
            position: c.lat.zip(c.lon),
            arrivals: arrivals.get(&c.id).copied().unwrap_or((0, 0)),
        })
        .collect();
    let needs = OrderNeeds {
        kind,
        area_code: &order.area_code,
        backup_area_codes: &backup,
        skill: skill.as_deref(),
        returned_crew_ids: &returned,
    };
    // Rank only crews that could ever serve this kind of order in this region of the tree.
    Ok(rank(&needs, order.lat.zip(order.lon), &inputs, weights))
}
