//! Application services: each public function is one use case, run in one transaction over
//! the database layer with the domain's rules. No HTTP here.

pub mod appeals;
pub mod auth;
pub mod event_stream;
pub mod outages;
pub mod pauses;
pub mod reference;
pub mod reports;
pub mod rollups;
pub mod routing;
pub mod scorecards;
pub mod seed;
pub mod sla;
pub mod users;
pub mod work_orders;
