//! `gridcall seed`: a province's year of orders written straight into an empty database for
//! benchmarks — areas in a two-level tree, field crews and handling units, the real kind mix,
//! every order's timers, events and crew credits as the live code would have written them
//! (late arrivals, returns, unhappy callbacks and reopens included), and the report roll-ups.
//! Deterministic for a given `--seed`.

use crate::db::areas::{self, AreaRow};
use crate::db::credits::CreditRow;
use crate::db::crews::{self, CrewRow};
use crate::db::events::NewEvent;
use crate::db::rollups::{CreditCellKey, CreditCellRow, SlaCellKey, SlaCellRow};
use crate::db::seed::{self as bulk, SeedCredit, SeedOrder, SeedTimer};
use crate::db::timers::TimerRow;
use crate::db::users::UserRow;
use crate::db::StoredList;
use crate::db::{to_json_list, write_transaction, DbConnection};
use crate::domain::calendar::{parse_duration, Calendar};
use crate::domain::reports::{local_day, whole_minutes};
use crate::domain::rollup::{
    applied_credit, applied_sla, periods, sla_cells_of, Histogram, Verdict,
};
use crate::domain::sla::TimerState;
use crate::domain::sla::{CalendarRef, OrderProfile, Stage};
use crate::domain::Kind;
use crate::errors::AppError;
use crate::errors::ProblemCode;
use crate::service::sla::SlaContext;
use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};

/// What to write.
#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub orders: usize,
    /// The year ends here (orders are spread over the 365 days before).
    pub until: DateTime<Utc>,
    pub seed: u64,
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct SeedReport {
    pub areas: usize,
    pub crews: usize,
    pub orders: usize,
    pub events: usize,
    pub timers: usize,
    pub credits: usize,
    pub cells: usize,
}

const CITIES: usize = 5;
const DISTRICTS_PER_CITY: usize = 9;
const FIELD_CREWS_PER_DISTRICT: usize = 4;
const UNITS: usize = 20;
const CHUNK: usize = 5_000;

/// The kind mix of a provincial 95598 centre: mostly repairs and inquiries.
const KIND_MIX: [(Kind, u32); 8] = [
    (Kind::Repair, 42),
    (Kind::Inquiry, 33),
    (Kind::ServiceRequest, 10),
    (Kind::Complaint, 5),
    (Kind::Praise, 4),
    (Kind::Opinion, 3),
    (Kind::Suggestion, 2),
    (Kind::Report, 1),
];

fn pick<T: Copy>(rng: &mut StdRng, mix: &[(T, u32)]) -> T {
    let total: u32 = mix.iter().map(|(_, w)| w).sum();
    let mut x = rng.gen_range(0..total);
    for (v, w) in mix {
        if x < *w {
            return *v;
        }
        x -= w;
    }
    mix[0].0
}

struct District {
    code: String,
    region: &'static str,
    field: Vec<String>,
    unit: String,
}

/// A stage instance while its order is simulated.
struct SimTimer {
    stage: Stage,
    instance: i32,
    start: DateTime<Utc>,
    end: Option<(DateTime<Utc>, bool)>,
    crew: Option<String>,
}

/// One order's life, cut at `until`.
struct Life {
    actions: Vec<(DateTime<Utc>, &'static str, Option<String>)>,
    timers: Vec<SimTimer>,
}

impl Life {
    fn start(&mut self, stage: Stage, at: DateTime<Utc>) {
        let instance = self.timers.iter().filter(|t| t.stage == stage).count() as i32 + 1;
        self.timers.push(SimTimer {
            stage,
            instance,
            start: at,
            end: None,
            crew: None,
        });
    }

    /// Ends the open instance of `stage` (met or breached by its deadline; `stopped` if not
    /// judged), credited to `crew` (none for dispatch).
    fn end(&mut self, stage: Stage, at: DateTime<Utc>, crew: Option<&str>, judged: bool) {
        if let Some(t) = self
            .timers
            .iter_mut()
            .rev()
            .find(|t| t.stage == stage && t.end.is_none())
        {
            t.end = Some((at, judged));
            t.crew = (stage != Stage::Dispatch)
                .then(|| crew.map(str::to_owned))
                .flatten();
        }
    }

    fn act(&mut self, at: DateTime<Utc>, action: &'static str, crew: Option<&str>) {
        self.actions.push((at, action, crew.map(str::to_owned)));
    }
}

/// Each stage's target: seconds of working time, and its calendar.
type Targets = HashMap<Stage, (i64, String)>;

/// kind, category, priority, region class.
type Profile = (Kind, &'static str, &'static str, &'static str);

struct Seeder<'a> {
    rng: StdRng,
    ctx: &'a SlaContext,
    until: DateTime<Utc>,
    user: String,
    sla_cells: BTreeMap<SlaCellKey, (SlaCellRow, Histogram)>,
    credit_cells: BTreeMap<CreditCellKey, CreditCellRow>,
    counter: u64,
}

impl Seeder<'_> {
    fn calendar(&self, id: &str) -> &Calendar {
        self.ctx
            .calendars
            .get(id)
            .or_else(|| self.ctx.calendars.get("24x7"))
            .unwrap_or_else(|| panic!("the 24x7 calendar is always loaded"))
    }

    /// `fraction` of the stage's target past `start`, on the stage's calendar.
    fn after(
        &self,
        targets: &Targets,
        stage: Stage,
        start: DateTime<Utc>,
        fraction: f64,
    ) -> DateTime<Utc> {
        let (seconds, cal) = targets
            .get(&stage)
            .cloned()
            .unwrap_or((3600, "24x7".into()));
        let amount = TimeDelta::seconds(((seconds as f64) * fraction).max(1.0) as i64);
        self.calendar(&cal)
            .add_working(start, amount)
            .unwrap_or(start + amount)
    }

    /// Mostly inside the target, now and then late.
    fn fraction(&mut self, late_percent: u32) -> f64 {
        if self.rng.gen_range(0..100) < late_percent {
            self.rng.gen_range(1.02..1.6)
        } else {
            self.rng.gen_range(0.08..0.97)
        }
    }

    fn exp_secs(&mut self, mean: f64) -> TimeDelta {
        let u: f64 = self.rng.gen_range(1e-6..1.0);
        TimeDelta::seconds((-u.ln() * mean) as i64 + 5)
    }

    fn simulate(
        &mut self,
        kind: Kind,
        t0: DateTime<Utc>,
        targets: &Targets,
        d: &District,
    ) -> (Life, Option<String>) {
        let mut life = Life {
            actions: Vec::new(),
            timers: Vec::new(),
        };
        let has = |s: Stage| targets.contains_key(&s);
        for s in crate::domain::sla::opening_stages(kind) {
            if has(*s) {
                life.start(*s, t0);
            }
        }
        let mut satisfaction = None;
        match kind {
            Kind::Praise => {
                life.act(t0 + self.exp_secs(60.0), "close", None);
            }
            Kind::Inquiry if self.rng.gen_range(0..100) < 80 => {
                // answered on the call
                let at = t0 + self.exp_secs(150.0);
                life.end(Stage::Reply, at, None, true);
                life.act(at, "resolve", None);
                life.act(at + self.exp_secs(600.0), "close", None);
            }
            _ => {
                let mut round_start = t0;
                let unit = !matches!(kind, Kind::Repair | Kind::ServiceRequest);
                let mut crew = if unit {
                    d.unit.clone()
                } else {
                    d.field[self.rng.gen_range(0..d.field.len())].clone()
                };
                for round in 0..2 {
                    let mut t = round_start + self.exp_secs(90.0);
                    life.end(Stage::Dispatch, t, None, true);
                    life.act(t, "dispatch", Some(&crew));
                    if has(Stage::Accept) {
                        life.start(Stage::Accept, t);
                    }
                    if self.rng.gen_range(0..100) < 3 {
                        // returned, dispatched to another crew
                        t += self.exp_secs(150.0);
                        life.end(Stage::Accept, t, Some(&crew), false);
                        life.act(t, "reject", Some(&crew));
                        if has(Stage::Dispatch) {
                            life.start(Stage::Dispatch, t);
                        }
                        if !unit {
                            crew = d.field[(d.field.iter().position(|c| *c == crew).unwrap_or(0)
                                + 1)
                                % d.field.len()]
                            .clone();
                        }
                        t += self.exp_secs(60.0);
                        life.end(Stage::Dispatch, t, None, true);
                        life.act(t, "dispatch", Some(&crew));
                        if has(Stage::Accept) {
                            life.start(Stage::Accept, t);
                        }
                    }
                    t += self.exp_secs(100.0);
                    life.end(Stage::Accept, t, Some(&crew), true);
                    life.act(t, "accept", Some(&crew));
                    let resolve_at;
                    if !unit && has(Stage::Arrival) {
                        t += self.exp_secs(120.0);
                        life.act(t, "depart", Some(&crew));
                        let f = self.fraction(9);
                        let arrive = self.after(targets, Stage::Arrival, round_start, f).max(t);
                        life.end(Stage::Arrival, arrive, Some(&crew), true);
                        life.act(arrive, "arrive", Some(&crew));
                        if has(Stage::Restore) {
                            life.start(Stage::Restore, arrive);
                        }
                        let f = self.fraction(7);
                        resolve_at = if has(Stage::Restore) {
                            self.after(targets, Stage::Restore, arrive, f)
                        } else {
                            self.after(targets, Stage::Reply, round_start, f)
                                .max(arrive)
                        };
                    } else {
                        if has(Stage::Contact) {
                            let f = self.fraction(6);
                            let c = self.after(targets, Stage::Contact, round_start, f).max(t);
                            life.end(Stage::Contact, c, Some(&crew), true);
                            life.act(c, "contact", Some(&crew));
                            t = c;
                        }
                        let f = self.fraction(8);
                        resolve_at = self.after(targets, Stage::Reply, round_start, f).max(t);
                    }
                    life.end(Stage::Restore, resolve_at, Some(&crew), true);
                    life.end(Stage::Reply, resolve_at, Some(&crew), true);
                    for open in [Stage::Arrival, Stage::Contact] {
                        life.end(open, resolve_at, Some(&crew), false);
                    }
                    life.act(resolve_at, "resolve", Some(&crew));
                    if !has(Stage::Callback) {
                        life.act(resolve_at + self.exp_secs(3600.0), "close", None);
                        break;
                    }
                    life.start(Stage::Callback, resolve_at);
                    let f = self.fraction(8);
                    let cb = self.after(targets, Stage::Callback, resolve_at, f);
                    life.end(Stage::Callback, cb, Some(&crew), true);
                    let sat = pick(
                        &mut self.rng,
                        &[
                            ("very_satisfied", 68),
                            ("satisfied", 22),
                            ("neutral", 6),
                            ("unsatisfied", 3),
                            ("very_unsatisfied", 1),
                        ],
                    );
                    satisfaction = Some(sat);
                    life.act(cb, "callback", Some(&crew));
                    let unhappy = matches!(sat, "unsatisfied" | "very_unsatisfied");
                    if !unhappy || round == 1 {
                        break;
                    }
                    // reopened: the flow starts again from the callback
                    life.act(cb, "reopen", Some(&crew));
                    for s in crate::domain::sla::opening_stages(kind) {
                        if has(*s) {
                            life.start(*s, cb);
                        }
                    }
                    if !unit && self.rng.gen_bool(0.5) {
                        crew = d.field[self.rng.gen_range(0..d.field.len())].clone();
                    }
                    round_start = cb;
                }
            }
        }
        // the order as it stands at `until`
        let until = self.until;
        life.actions.retain(|(at, _, _)| *at <= until);
        for t in &mut life.timers {
            if t.end.is_some_and(|(e, _)| e > until) {
                t.end = None;
                t.crew = None;
            }
        }
        life.timers.retain(|t| t.start <= until);
        (life, satisfaction.map(str::to_owned))
    }
}

/// Writes the year. Refuses a database that has orders.
pub fn seed(
    conn: &mut DbConnection,
    ctx: &SlaContext,
    opts: &SeedOptions,
    progress: &mut dyn FnMut(&SeedReport),
) -> Result<SeedReport, AppError> {
    if bulk::has_orders(conn)? {
        return Err(AppError::Conflict {
            code: ProblemCode::NotEmpty,
            detail: "the database has orders already; seed an empty one".into(),
            allowed_actions: None,
        });
    }
    let now = opts.until.naive_utc();
    let mut report = SeedReport::default();
    let mut seeder = Seeder {
        rng: StdRng::seed_from_u64(opts.seed),
        ctx,
        until: opts.until,
        user: uuid::Uuid::new_v4().to_string(),
        sla_cells: BTreeMap::new(),
        credit_cells: BTreeMap::new(),
        counter: 0,
    };
    // reference data
    let mut districts: Vec<District> = Vec::new();
    write_transaction(conn, |conn| {
        crate::db::users::insert(
            conn,
            &UserRow {
                id: seeder.user.clone(),
                username: format!("seed-{}", opts.seed),
                password_hash: "!".into(),
                role: crate::domain::Role::Agent,
                display_name: "seed".into(),
                email: None,
                crew_id: None,
                area_codes: StoredList::default(),
                active: false,
                created_at: now,
                updated_at: now,
            },
        )?;
        let regions = ["urban", "urban", "rural", "rural", "remote"];
        for c in 0..CITIES {
            let city = format!("C{:02}", c + 1);
            areas::insert(
                conn,
                &AreaRow {
                    code: city.clone(),
                    name: format!("市{}", c + 1),
                    region_class: "urban".into(),
                    parent_code: None,
                    backup_area_codes: StoredList::default(),
                    calendar: "cn".into(),
                    created_at: now,
                    updated_at: now,
                },
            )?;
            for k in 0..DISTRICTS_PER_CITY {
                let code = format!("{city}-D{:02}", k + 1);
                let region = regions[(c + k) % regions.len()];
                areas::insert(
                    conn,
                    &AreaRow {
                        code: code.clone(),
                        name: format!("市{}区{}", c + 1, k + 1),
                        region_class: region.into(),
                        parent_code: Some(city.clone()),
                        backup_area_codes: StoredList::default(),
                        calendar: "cn".into(),
                        created_at: now,
                        updated_at: now,
                    },
                )?;
                districts.push(District {
                    code,
                    region,
                    field: Vec::new(),
                    unit: String::new(),
                });
            }
        }
        let crew = |code: String,
                    kind: crate::domain::CrewKind,
                    area_codes: Vec<String>,
                    skills: &[&str]| CrewRow {
            id: crate::db::new_row_key(),
            code: code.clone(),
            name: format!("班组 {code}"),
            kind,
            area_codes: StoredList(area_codes),
            skills: StoredList(skills.iter().map(|s| s.to_string()).collect()),
            capacity: 20,
            on_duty: true,
            lat: None,
            lon: None,
            located_at: None,
            created_at: now,
            updated_at: now,
        };
        for (i, d) in districts.iter_mut().enumerate() {
            for n in 0..FIELD_CREWS_PER_DISTRICT {
                let row = crew(
                    format!("F{:03}-{n}", i + 1),
                    crate::domain::CrewKind::Field,
                    vec![d.code.clone()],
                    &["repair", "metering", "charging"],
                );
                d.field.push(row.id.clone());
                crews::insert(conn, &row)?;
            }
        }
        let per_unit = districts.len().div_ceil(UNITS);
        for u in 0..UNITS {
            let covered: Vec<String> = districts
                .iter()
                .skip(u * per_unit)
                .take(per_unit)
                .map(|d| d.code.clone())
                .collect();
            if covered.is_empty() {
                continue;
            }
            let row = crew(
                format!("U{:02}", u + 1),
                crate::domain::CrewKind::Unit,
                covered.clone(),
                &["complaints", "reply"],
            );
            for d in districts.iter_mut().filter(|d| covered.contains(&d.code)) {
                d.unit = row.id.clone();
            }
            crews::insert(conn, &row)?;
        }
        Ok::<(), AppError>(())
    })?;
    report.areas = CITIES * (DISTRICTS_PER_CITY + 1);
    report.crews = districts.len() * FIELD_CREWS_PER_DISTRICT + UNITS;

    let year = TimeDelta::days(365);
    let mut target_cache: HashMap<Profile, Targets> = HashMap::new();
    let mut written = 0;
    while written < opts.orders {
        let n = CHUNK.min(opts.orders - written);
        let mut orders = Vec::with_capacity(n);
        let mut events = Vec::with_capacity(n * 6);
        let mut timers = Vec::with_capacity(n * 4);
        let mut credits = Vec::with_capacity(n * 3);
        for _ in 0..n {
            let kind = pick(&mut seeder.rng, &KIND_MIX);
            let di = seeder.rng.gen_range(0..districts.len());
            let d = &districts[di];
            let priority = pick(
                &mut seeder.rng,
                &[("normal", 85), ("high", 10), ("urgent", 3), ("low", 2)],
            );
            let category: &'static str = match kind {
                Kind::Repair => pick(
                    &mut seeder.rng,
                    &[
                        ("no_power", 60),
                        ("partial_power", 20),
                        ("line_fault", 10),
                        ("voltage_abnormal", 10),
                    ],
                ),
                Kind::ServiceRequest => {
                    pick(&mut seeder.rng, &[("reconnection", 50), ("other", 50)])
                }
                Kind::Complaint => "service",
                _ => "general",
            };
            let offset = seeder.rng.gen_range(0..year.num_seconds());
            let t0 = opts.until - year + TimeDelta::seconds(offset);
            let targets = target_cache
                .entry((kind, category, priority, d.region))
                .or_insert_with(|| {
                    let profile = OrderProfile {
                        kind,
                        category,
                        priority,
                        region_class: d.region,
                        tier: "normal",
                    };
                    let rule = ctx.policy.rule_for(&profile);
                    rule.targets
                        .iter()
                        .filter_map(|t| {
                            let cal = match &t.calendar {
                                CalendarRef::Area => "cn".to_owned(),
                                CalendarRef::Named(id) => id.clone(),
                            };
                            let per_day = seeder.calendar(&cal).seconds_per_day();
                            let secs = parse_duration(&t.target, per_day).ok()?.num_seconds();
                            Some((t.stage, (secs, cal)))
                        })
                        .collect()
                })
                .clone();
            let (life, satisfaction) = seeder.simulate(kind, t0, &targets, d);
            seeder.counter += 1;
            let id = crate::db::new_row_key();
            let subject = match kind {
                Kind::Praise => Some(d.field[seeder.rng.gen_range(0..d.field.len())].clone()),
                Kind::Complaint if seeder.rng.gen_range(0..100) < 30 => {
                    Some(d.field[seeder.rng.gen_range(0..d.field.len())].clone())
                }
                _ => None,
            };
            let at = |t: DateTime<Utc>| t.naive_utc();
            // events, status and credits from the actions that happened by `until`
            events.push(NewEvent {
                work_order_id: id.clone(),
                event_type: "created".into(),
                actor_id: Some(seeder.user.clone()),
                actor_username: Some("seed".into()),
                actor_role: Some("agent".into()),
                from_status: None,
                to_status: Some("new".into()),
                reason: None,
                data: "{}".into(),
                at: at(t0),
            });
            let mut status = "new";
            let mut assigned: Option<String> = None;
            let mut returned: Vec<String> = Vec::new();
            let (mut resolved_at, mut closed_at, mut reopens) = (None, None, 0);
            let mut resolves: Vec<usize> = Vec::new();
            let credit = |credits: &mut Vec<SeedCredit>,
                          crew: &str,
                          fact: &str,
                          t: DateTime<Utc>,
                          sat: Option<&str>| {
                credits.push(SeedCredit {
                    row: CreditRow {
                        id: crate::db::new_row_key(),
                        crew_id: crew.to_owned(),
                        fact: fact.to_owned(),
                        work_order_id: id.clone(),
                        at: t.naive_utc(),
                        satisfaction: sat.map(str::to_owned),
                        reopened_at: None,
                        repeat_of_at: None,
                        rollup_dirty: false,
                    },
                    rollup_applied: None,
                });
                credits.len() - 1
            };
            if let Some(s) = &subject {
                let fact = if kind == Kind::Praise {
                    "praise"
                } else {
                    "complaint"
                };
                credit(&mut credits, s, fact, t0, None);
            }
            let mut last_resolve_by: HashMap<String, DateTime<Utc>> = HashMap::new();
            for (t, action, crew) in &life.actions {
                let from = status;
                status = match *action {
                    "dispatch" => "dispatched",
                    "accept" => "accepted",
                    "depart" => "en_route",
                    "arrive" => "on_site",
                    "contact" => "contacted",
                    "resolve" => "resolved",
                    "reject" => "new",
                    "reopen" => "reopened",
                    "callback" => "closed",
                    "close" => "closed",
                    other => other,
                };
                match *action {
                    "dispatch" => {
                        assigned = crew.clone();
                        if let Some(c) = crew {
                            credit(&mut credits, c, "dispatch", *t, None);
                        }
                    }
                    "reject" => {
                        if let Some(c) = &assigned {
                            credit(&mut credits, c, "return", *t, None);
                            returned.push(c.clone());
                        }
                        assigned = None;
                    }
                    "resolve" => {
                        resolved_at = Some(at(*t));
                        if let Some(c) = &assigned {
                            let i = credit(&mut credits, c, "resolve", *t, None);
                            credits[i].row.repeat_of_at = last_resolve_by.get(c).map(|p| at(*p));
                            last_resolve_by.insert(c.clone(), *t);
                            resolves.push(i);
                        }
                    }
                    "callback" => {
                        if let Some(c) = &assigned {
                            credit(&mut credits, c, "callback", *t, satisfaction.as_deref());
                        }
                        closed_at = Some(at(*t));
                    }
                    "reopen" => {
                        status = "reopened";
                        reopens += 1;
                        closed_at = None;
                        resolved_at = None;
                        assigned = None;
                        for &i in &resolves {
                            credits[i].row.reopened_at.get_or_insert(at(*t));
                        }
                    }
                    "close" => closed_at = Some(at(*t)),
                    _ => {}
                }
                events.push(NewEvent {
                    work_order_id: id.clone(),
                    event_type: (*action).into(),
                    actor_id: Some(seeder.user.clone()),
                    actor_username: Some("seed".into()),
                    actor_role: Some("dispatcher".into()),
                    from_status: Some(from.into()),
                    to_status: Some(status.into()),
                    reason: None,
                    data: "{}".into(),
                    at: at(*t),
                });
            }
            let letter = kind.letter();
            let day = t0
                .with_timezone(&crate::domain::reports::REPORT_TZ)
                .format("%Y%m%d");
            let policy = ctx.policy.clone();
            for st in &life.timers {
                let (secs, cal_id) = targets
                    .get(&st.stage)
                    .cloned()
                    .unwrap_or((3600, "24x7".into()));
                let cal = seeder.calendar(&cal_id);
                let due = cal
                    .add_working(st.start, TimeDelta::seconds(secs))
                    .unwrap_or(st.start);
                let warn = cal
                    .add_working(
                        st.start,
                        TimeDelta::seconds((secs as f64 * policy.warn_at) as i64),
                    )
                    .unwrap_or(st.start);
                let (state, ended, breached_at, sla_seconds, next_fire, warned) = match st.end {
                    Some((e, true)) => {
                        let state = if e > due {
                            TimerState::Breached
                        } else {
                            TimerState::Met
                        };
                        let sla = cal.working_between(st.start, e).num_seconds();
                        (
                            state,
                            Some(e),
                            (e > due).then_some(due),
                            Some(sla),
                            None,
                            (e > warn).then_some(warn),
                        )
                    }
                    Some((e, false)) => {
                        let sla = cal.working_between(st.start, e).num_seconds();
                        (
                            TimerState::Stopped,
                            Some(e),
                            None,
                            Some(sla),
                            None,
                            (e > warn).then_some(warn),
                        )
                    }
                    None if due <= opts.until => (
                        TimerState::Breached,
                        None,
                        Some(due),
                        None,
                        None,
                        Some(warn),
                    ),
                    None if warn <= opts.until => {
                        (TimerState::Running, None, None, None, Some(due), Some(warn))
                    }
                    None => (TimerState::Running, None, None, None, Some(warn), None),
                };
                let applied = ended.map(|e| {
                    let verdict = Verdict::of(state);
                    let minutes = whole_minutes(sla_seconds.unwrap_or(0));
                    let crew = st.crew.clone().unwrap_or_default();
                    let contribution = crate::domain::rollup::SlaContribution {
                        day: local_day(st.start),
                        area_code: d.code.clone(),
                        kind: kind.as_str().to_owned(),
                        priority: priority.to_owned(),
                        stage: st.stage.as_str().to_owned(),
                        crew_id: crew.clone(),
                        verdict,
                        minutes,
                    };
                    for (grain, period, cell_priority, cell_crew) in sla_cells_of(&contribution) {
                        let key = (
                            grain.to_owned(),
                            period.clone(),
                            d.code.clone(),
                            kind.as_str().to_owned(),
                            cell_priority.to_owned(),
                            st.stage.as_str().to_owned(),
                            cell_crew.to_owned(),
                        );
                        let (cell, h) = seeder.sla_cells.entry(key).or_insert_with_key(|key| {
                            (SlaCellRow::empty(key.clone()), Histogram::default())
                        });
                        match verdict {
                            Verdict::Met => cell.met += 1,
                            Verdict::Breached => cell.breached += 1,
                            Verdict::Stopped => cell.stopped += 1,
                            Verdict::Excused => cell.excused += 1,
                        }
                        h.add(minutes, 1);
                    }
                    let _ = e;
                    applied_sla(verdict, minutes)
                });
                timers.push(SeedTimer {
                    row: TimerRow {
                        id: crate::db::new_row_key(),
                        work_order_id: id.clone(),
                        stage: st.stage.as_str().to_owned(),
                        instance: st.instance,
                        policy_version: policy.version.clone(),
                        rule_name: "seed".into(),
                        target: format!("{secs}s"),
                        target_seconds: secs,
                        calendar: cal_id.clone(),
                        started_at: at(st.start),
                        due_at: Some(at(due)),
                        warn_at: Some(at(warn)),
                        warned_at: warned.map(at),
                        paused_seconds: 0,
                        excused_seconds: 0,
                        state,
                        ended_at: ended.map(at),
                        breached_at: breached_at.map(at),
                        escalation_level: if ended.is_none() && breached_at.is_some() {
                            policy.escalations.len() as i32
                        } else {
                            0
                        },
                        next_fire_at: next_fire.map(at),
                        holds: "[]".into(),
                        area_code: d.code.clone(),
                        version: 1,
                        warn_fraction: policy.warn_at,
                        escalations: serde_json::to_string(&policy.escalations)
                            .unwrap_or_else(|_| "[]".into()),
                        credited_crew_id: st.crew.clone(),
                        wall_seconds: ended.map(|e| (e - st.start).num_seconds()),
                        sla_seconds,
                        kind: kind.as_str().into(),
                        priority: priority.into(),
                        rollup_dirty: false,
                        holiday_data_missing: None,
                    },
                    rollup_applied: applied,
                });
            }
            orders.push(SeedOrder {
                id: id.clone(),
                number: Some(format!("{letter}{day}{:07}", seeder.counter)),
                kind: kind.as_str().into(),
                category: category.into(),
                grade: (kind == Kind::Complaint).then(|| "general".to_owned()),
                priority: priority.into(),
                channel: "phone".into(),
                status: status.into(),
                caller_name: Some("客户".into()),
                caller_phone: Some(format!("138{:08}", seeder.counter % 100_000_000)),
                area_code: d.code.clone(),
                address: Some(format!("{}路{}号", d.code, seeder.counter % 997)),
                description: "停电报修".into(),
                resolution: resolved_at.map(|_| "已处理".to_owned()),
                assigned_crew_id: assigned,
                subject_crew_id: subject,
                returned_crew_ids: to_json_list(&returned),
                reopen_count: reopens,
                satisfaction,
                version: life.actions.len() as i32 + 1,
                created_by: seeder.user.clone(),
                created_at: at(t0),
                updated_at: at(life.actions.last().map(|a| a.0).unwrap_or(t0)),
                resolved_at,
                closed_at,
            });
        }
        // credits into their cells, with what the roll-ups hold for them
        for c in &mut credits {
            let good = matches!(
                c.row.satisfaction.as_deref(),
                Some("very_satisfied" | "satisfied")
            );
            let reopened = c.row.reopened_at.is_some();
            let slots = crate::service::rollups::credit_slots(
                &crate::service::rollups::credit_contribution(
                    &c.row.crew_id,
                    &c.row.fact,
                    c.row.at,
                    c.row.satisfaction.as_deref(),
                    reopened,
                ),
            );
            for (grain, period) in periods(local_day(c.row.at.and_utc())) {
                let cell = seeder
                    .credit_cells
                    .entry((grain.to_owned(), period.clone(), c.row.crew_id.clone()))
                    .or_insert_with_key(|key| CreditCellRow::empty(key.clone()));
                cell.add(slots);
            }
            c.rollup_applied = Some(applied_credit(good, reopened));
        }
        write_transaction(conn, |conn| {
            bulk::orders(conn, &orders)?;
            bulk::events(conn, &events)?;
            bulk::timers(conn, &timers)?;
            bulk::credits(conn, &credits)
        })?;
        written += n;
        report.orders += n;
        report.events += events.len();
        report.timers += timers.len();
        report.credits += credits.len();
        progress(&report);
    }
    let sla_cells: Vec<SlaCellRow> = std::mem::take(&mut seeder.sla_cells)
        .into_values()
        .map(|(mut cell, h)| {
            cell.minutes = h.encode();
            cell
        })
        .collect();
    let credit_cells: Vec<CreditCellRow> = std::mem::take(&mut seeder.credit_cells)
        .into_values()
        .collect();
    write_transaction(conn, |conn| {
        bulk::sla_cells(conn, &sla_cells)?;
        bulk::credit_cells(conn, &credit_cells)
    })?;
    report.cells = sla_cells.len() + credit_cells.len();
    // A bulk load leaves PostgreSQL without statistics or vacuum until autovacuum gets to the tables
    // (seen: still none 20 minutes after a seed): a server started at once planned the order's
    // timers read as a parallel scan (17 ms a create).
    bulk::analyze(conn)?;
    Ok(report)
}
