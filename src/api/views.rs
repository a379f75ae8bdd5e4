//! Response bodies: what clients see of each resource.

use crate::db::areas::AreaRow;
use crate::db::crews::CrewRow;
use crate::db::customers::CustomerRow;
use crate::db::events::EventRow;
use crate::db::timers::TimerRow;
use crate::db::users::UserRow;
use crate::db::work_orders::WorkOrderRow;
use crate::domain::routing::{Ranked, ScoreParts};
use crate::domain::sla::TimerState;
use crate::domain::state_machine::{Channel, Grade, Kind, Priority, Satisfaction, Status};
use crate::domain::timer::Segment;
use crate::domain::{Action, Role};
use crate::service::routing::Candidate;
use crate::service::work_orders::{OutageNotice, TimerDetail};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

/// `{items}`: a whole list, not paged (it is short by nature).
#[derive(Debug, Serialize, ToSchema)]
pub struct Items<T> {
    pub items: Vec<T>,
}

pub fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub username: String,
    pub role: Role,
    pub display_name: String,
    pub email: Option<String>,
    pub crew_id: Option<String>,
    pub area_codes: Vec<String>,
    pub active: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<UserRow> for UserView {
    fn from(u: UserRow) -> Self {
        UserView {
            role: u.role(),
            area_codes: u.area_codes(),
            id: u.id,
            username: u.username,
            display_name: u.display_name,
            email: u.email,
            crew_id: u.crew_id,
            active: u.active,
            created_at: utc(u.created_at),
            updated_at: utc(u.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AreaView {
    pub code: String,
    pub name: String,
    pub region_class: String,
    pub parent_code: Option<String>,
    pub backup_area_codes: Vec<String>,
    pub calendar: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<AreaRow> for AreaView {
    fn from(a: AreaRow) -> Self {
        AreaView {
            backup_area_codes: a.backup_area_codes.to_vec(),
            code: a.code,
            name: a.name,
            region_class: a.region_class,
            parent_code: a.parent_code,
            calendar: a.calendar,
            created_at: utc(a.created_at),
            updated_at: utc(a.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CrewView {
    pub id: String,
    pub code: String,
    pub name: String,
    pub kind: String,
    pub area_codes: Vec<String>,
    pub skills: Vec<String>,
    pub capacity: i32,
    pub on_duty: bool,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub located_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl CrewView {
    /// The crew as `reader` may see it: a crew user sees its own crew's position, not where
    /// the other crews are (PIPL: a member's position is personal information).
    pub fn for_reader(c: CrewRow, reader: &crate::domain::Actor) -> CrewView {
        let own = reader.crew_id.as_deref() == Some(c.id.as_str());
        let mut view = CrewView::from(c);
        if reader.role == crate::domain::Role::Crew && !own {
            view.lat = None;
            view.lon = None;
            view.located_at = None;
        }
        view
    }
}

impl From<CrewRow> for CrewView {
    fn from(c: CrewRow) -> Self {
        CrewView {
            area_codes: c.area_codes.to_vec(),
            skills: c.skills.to_vec(),
            id: c.id,
            code: c.code,
            name: c.name,
            kind: c.kind.as_str().to_owned(),
            capacity: c.capacity,
            on_duty: c.on_duty,
            lat: c.lat,
            lon: c.lon,
            located_at: c.located_at.map(utc),
            created_at: utc(c.created_at),
            updated_at: utc(c.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CustomerView {
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
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl From<CustomerRow> for CustomerView {
    fn from(c: CustomerRow) -> Self {
        CustomerView {
            id: c.id,
            account_no: c.account_no,
            name: c.name,
            phone: c.phone,
            email: c.email,
            address: c.address,
            area_code: c.area_code,
            lat: c.lat,
            lon: c.lon,
            tier: c.tier,
            created_at: utc(c.created_at),
            updated_at: utc(c.updated_at),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CallerView {
    pub name: Option<String>,
    pub phone: Option<String>,
}

/// A work order as API.md shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkOrderView {
    pub id: String,
    pub number: String,
    pub kind: Kind,
    pub category: String,
    pub grade: Option<Grade>,
    pub priority: Priority,
    pub channel: Channel,
    pub status: Status,
    pub customer_id: Option<String>,
    pub caller: CallerView,
    pub area_code: String,
    pub address: Option<String>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub description: String,
    pub resolution: Option<String>,
    pub assigned_crew_id: Option<String>,
    pub master_id: Option<String>,
    pub subject_crew_id: Option<String>,
    pub outage_id: Option<String>,
    pub urge_count: i32,
    pub reopen_count: i32,
    pub satisfaction: Option<Satisfaction>,
    pub suspended_until: Option<DateTime<Utc>>,
    pub version: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Every stage timer of the order, all instances.
    pub sla: Vec<TimerView>,
    pub allowed_actions: Vec<Action>,
    /// Set when the create call found an open order from the same caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    /// After an automatic dispatch: the chosen crew, its score and the score's parts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub routing: Option<RoutingView>,
    /// On creation of a call linked to an active outage: what to tell the caller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub outage: Option<OutageNoticeView>,
}

/// The crew an automatic dispatch chose, and why.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoutingView {
    pub crew_id: String,
    pub code: String,
    pub score: f64,
    pub distance_km: Option<f64>,
    pub parts: ScoreParts,
}

impl From<Ranked> for RoutingView {
    fn from(r: Ranked) -> Self {
        RoutingView {
            crew_id: r.crew_id,
            code: r.code,
            score: r.score,
            distance_km: r.distance_km,
            parts: r.parts,
        }
    }
}

/// The outage a call was linked to: its cause and when power should be back.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutageNoticeView {
    pub id: String,
    pub cause: String,
    pub estimated_restore_at: Option<DateTime<Utc>>,
}

impl From<OutageNotice> for OutageNoticeView {
    fn from(o: OutageNotice) -> Self {
        OutageNoticeView {
            id: o.id,
            cause: o.cause,
            estimated_restore_at: o.estimated_restore_at,
        }
    }
}

/// A crew's standing for an order (`GET /work-orders/{id}/candidates`), best first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CandidateView {
    pub crew_id: String,
    pub code: String,
    pub name: String,
    pub eligible: bool,
    /// Why an ineligible crew may not take the order (off_duty, wrong_kind, no_skill, …).
    pub why_not: Vec<&'static str>,
    pub score: f64,
    /// From the crew's last reported position; none when either position is unknown.
    pub distance_km: Option<f64>,
    pub load: i64,
    pub capacity: i64,
    pub parts: ScoreParts,
}

impl From<Candidate> for CandidateView {
    fn from(c: Candidate) -> Self {
        let r = c.ranked;
        CandidateView {
            crew_id: r.crew_id,
            code: r.code,
            name: c.name,
            eligible: r.eligible,
            why_not: r.why_not,
            score: r.score,
            distance_km: r.distance_km,
            load: r.load,
            capacity: r.capacity,
            parts: r.parts,
        }
    }
}

/// A timer with its policy rule and clock segments: the "why breached" view.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimerDetailView {
    #[serde(flatten)]
    pub timer: TimerView,
    /// The policy rule the timer's target came from.
    pub rule: String,
    pub segments: Vec<Segment>,
}

impl From<TimerDetail> for TimerDetailView {
    fn from(d: TimerDetail) -> Self {
        TimerDetailView {
            rule: d.timer.rule_name.clone(),
            timer: TimerView::from(d.timer),
            segments: d.segments,
        }
    }
}

impl WorkOrderView {
    pub fn new(
        o: WorkOrderRow,
        allowed_actions: Vec<Action>,
        timers: Vec<TimerRow>,
    ) -> WorkOrderView {
        WorkOrderView {
            number: o.number.unwrap_or_default(),
            caller: CallerView {
                name: o.caller_name,
                phone: o.caller_phone,
            },
            id: o.id,
            kind: o.kind,
            category: o.category,
            grade: *o.grade,
            priority: o.priority,
            channel: o.channel,
            status: o.status,
            customer_id: o.customer_id,
            area_code: o.area_code,
            address: o.address,
            lat: o.lat,
            lon: o.lon,
            description: o.description,
            resolution: o.resolution,
            assigned_crew_id: o.assigned_crew_id,
            master_id: o.master_id,
            subject_crew_id: o.subject_crew_id,
            outage_id: o.outage_id,
            urge_count: o.urge_count,
            reopen_count: o.reopen_count,
            satisfaction: *o.satisfaction,
            suspended_until: o.suspend_until.map(utc),
            version: o.version,
            created_at: utc(o.created_at),
            updated_at: utc(o.updated_at),
            resolved_at: o.resolved_at.map(utc),
            closed_at: o.closed_at.map(utc),
            sla: timers.into_iter().map(TimerView::from).collect(),
            allowed_actions,
            duplicate_of: None,
            routing: None,
            outage: None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ActorView {
    pub id: String,
    pub username: Option<String>,
    pub role: Option<String>,
}

/// A work-order event; `id` is its position in the event stream.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub id: i64,
    pub work_order_id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub actor: Option<ActorView>,
    pub from_status: Option<String>,
    pub to_status: Option<String>,
    pub reason: Option<String>,
    /// What the event carries, by `type`: e.g. `dispatch` the crew and routing, `update` the
    /// old and new values, `sla_breach` the stage and instance (docs/api.md, "Live events").
    #[schema(required = true, value_type = Option<std::collections::HashMap<String, Value>>)]
    pub data: serde_json::Value,
    pub at: DateTime<Utc>,
}

impl From<EventRow> for EventView {
    fn from(e: EventRow) -> Self {
        EventView {
            id: e.id,
            work_order_id: e.work_order_id,
            event_type: e.event_type,
            actor: e.actor_id.map(|id| ActorView {
                id,
                username: e.actor_username,
                role: e.actor_role,
            }),
            from_status: e.from_status,
            to_status: e.to_status,
            reason: e.reason,
            data: serde_json::from_str(&e.data).unwrap_or(serde_json::Value::Null),
            at: utc(e.at),
        }
    }
}

/// A stage timer (API.md, "Timer").
#[derive(Debug, Serialize, ToSchema)]
pub struct TimerView {
    pub stage: String,
    pub instance: i32,
    pub policy_version: String,
    /// As configured: `45m`, `3h`, `5d`.
    pub target: String,
    pub calendar: String,
    pub started_at: DateTime<Utc>,
    /// None while the clock is held open-endedly (suspended, or an open force-majeure window).
    pub due_at: Option<DateTime<Utc>>,
    pub warn_at: Option<DateTime<Utc>>,
    pub warned_at: Option<DateTime<Utc>>,
    pub paused_seconds: i64,
    pub excused_seconds: i64,
    pub state: TimerState,
    /// When the timer ended (met, breached at its ending action, stopped or excused).
    pub stopped_at: Option<DateTime<Utc>>,
    pub breached_at: Option<DateTime<Utc>>,
    pub escalation_level: i32,
    /// Years the timer runs into whose holidays its calendar does not know: its deadline
    /// counts every weekday there as working (add the year to the calendar, then recalc).
    pub holiday_data_missing: Vec<i32>,
}

impl From<TimerRow> for TimerView {
    fn from(t: TimerRow) -> Self {
        TimerView {
            stage: t.stage,
            instance: t.instance,
            policy_version: t.policy_version,
            target: t.target,
            calendar: t.calendar,
            started_at: utc(t.started_at),
            due_at: t.due_at.map(utc),
            warn_at: t.warn_at.map(utc),
            warned_at: t.warned_at.map(utc),
            paused_seconds: t.paused_seconds,
            excused_seconds: t.excused_seconds,
            state: t.state,
            stopped_at: t.ended_at.map(utc),
            breached_at: t.breached_at.map(utc),
            escalation_level: t.escalation_level,
            holiday_data_missing: t
                .holiday_data_missing
                .as_deref()
                .map(|y| serde_json::from_str(y).unwrap_or_default())
                .unwrap_or_default(),
        }
    }
}
