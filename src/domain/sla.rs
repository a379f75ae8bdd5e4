//! SLA policy (PRODUCT.md, "SLA"): rules over kind × category × priority × region class ×
//! customer tier give a target per measured stage and the calendar it runs on; the first
//! matching rule in file order wins and the file must end with a catch-all. Also which
//! timers an action starts, ends or stops. Pure.

use super::calendar::parse_duration;
use super::state_machine::string_enum;
use super::{Action, Family, Kind, Status};
use serde::Deserialize;
use std::str::FromStr;

string_enum!(
    /// A measured stage of an order's life.
    Stage {
        Dispatch => "dispatch",
        Accept => "accept",
        Arrival => "arrival",
        Restore => "restore",
        Contact => "contact",
        Reply => "reply",
        Callback => "callback",
    }
);

string_enum!(
    /// Where a stage instance stands (API.md, "Timer").
    TimerState {
        Running => "running",
        Paused => "paused",
        Met => "met",
        Breached => "breached",
        Stopped => "stopped",
        Excused => "excused",
    }
);

/// Which calendar a target runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CalendarRef {
    /// The working calendar of the order's area.
    Area,
    Named(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageTarget {
    pub stage: Stage,
    /// As written: `45m`, `3h`, `5d`.
    pub target: String,
    pub calendar: CalendarRef,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    /// 1-based line of the rule in its file.
    pub line: usize,
    pub kinds: Vec<Kind>,
    pub categories: Vec<String>,
    pub priorities: Vec<String>,
    pub region_classes: Vec<String>,
    pub tiers: Vec<String>,
    pub targets: Vec<StageTarget>,
}

impl Rule {
    fn is_catch_all(&self) -> bool {
        self.kinds.is_empty()
            && self.categories.is_empty()
            && self.priorities.is_empty()
            && self.region_classes.is_empty()
            && self.tiers.is_empty()
    }

    pub fn target(&self, stage: Stage) -> Option<&StageTarget> {
        self.targets.iter().find(|t| t.stage == stage)
    }
}

/// What a rule is matched against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderProfile<'a> {
    pub kind: Kind,
    pub category: &'a str,
    pub priority: &'a str,
    pub region_class: &'a str,
    pub tier: &'a str,
}

/// A whole policy file.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub version: String,
    /// Warn at this fraction of the target (default 0.8).
    pub warn_at: f64,
    /// Further escalation levels after a breach, each a delay counted on the timer's calendar.
    pub escalations: Vec<String>,
    pub rules: Vec<Rule>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyFile {
    version: String,
    warn_at: Option<f64>,
    #[serde(default)]
    escalations: Vec<String>,
    rules: Vec<toml::Spanned<RuleFile>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    name: String,
    #[serde(default)]
    kinds: Vec<String>,
    #[serde(default)]
    categories: Vec<String>,
    #[serde(default)]
    priorities: Vec<String>,
    #[serde(default)]
    region_classes: Vec<String>,
    #[serde(default)]
    tiers: Vec<String>,
    targets: std::collections::BTreeMap<String, TargetFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetFile {
    target: String,
    calendar: Option<String>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

fn check_values<T: FromStr>(values: &[String], what: &str) -> Result<(), String> {
    match values.iter().find(|v| v.parse::<T>().is_err()) {
        Some(bad) => Err(format!("unknown {what} `{bad}`")),
        None => Ok(()),
    }
}

impl Policy {
    /// Parses and checks a policy file; errors name the line and the reason.
    pub fn from_toml(text: &str) -> Result<Policy, String> {
        let file: PolicyFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            format!("line {line}: {}", e.message())
        })?;
        let warn_at = file.warn_at.unwrap_or(0.8);
        if !(warn_at > 0.0 && warn_at < 1.0) {
            return Err("warn_at must be between 0 and 1".into());
        }
        for e in &file.escalations {
            parse_duration(e, 86_400).map_err(|m| format!("escalations: {m}"))?;
        }
        let mut rules = Vec::new();
        for spanned in file.rules {
            let line = line_of(text, spanned.span().start);
            let r = spanned.into_inner();
            let fail = |m: String| format!("line {line}: rule `{}`: {m}", r.name);
            check_values::<Kind>(&r.kinds, "kind").map_err(fail)?;
            check_values::<super::Priority>(&r.priorities, "priority").map_err(fail)?;
            check_values::<super::RegionClass>(&r.region_classes, "region class").map_err(fail)?;
            check_values::<super::Tier>(&r.tiers, "tier").map_err(fail)?;
            let mut targets = Vec::new();
            for (stage, t) in &r.targets {
                let stage: Stage = stage
                    .parse()
                    .map_err(|_| fail(format!("unknown stage `{stage}`")))?;
                parse_duration(&t.target, 86_400).map_err(|m| fail(format!("{stage}: {m}")))?;
                let calendar = match t.calendar.as_deref() {
                    None | Some("24x7") => CalendarRef::Named("24x7".into()),
                    Some("area") => CalendarRef::Area,
                    Some(other) => CalendarRef::Named(other.to_owned()),
                };
                if t.target.ends_with('d')
                    && calendar == CalendarRef::Named("24x7".into())
                    && t.calendar.is_none()
                {
                    return Err(fail(format!(
                        "{stage}: a target in days needs a calendar (`area` for working days)"
                    )));
                }
                targets.push(StageTarget {
                    stage,
                    target: t.target.clone(),
                    calendar,
                });
            }
            rules.push(Rule {
                name: r.name.clone(),
                line,
                kinds: r.kinds.iter().filter_map(|k| k.parse().ok()).collect(),
                categories: r.categories.clone(),
                priorities: r.priorities.clone(),
                region_classes: r.region_classes.clone(),
                tiers: r.tiers.clone(),
                targets,
            });
        }
        match rules.last() {
            Some(last) if last.is_catch_all() => {}
            _ => return Err("the last rule must be a catch-all (no kinds, categories, priorities, region classes or tiers)".into()),
        }
        Ok(Policy {
            version: file.version,
            warn_at,
            escalations: file.escalations,
            rules,
        })
    }

    /// The first rule that matches (the catch-all at worst).
    pub fn rule_for(&self, o: &OrderProfile<'_>) -> &Rule {
        let any = |list: &[String], v: &str| list.is_empty() || list.iter().any(|x| x == v);
        self.rules
            .iter()
            .find(|r| {
                (r.kinds.is_empty() || r.kinds.contains(&o.kind))
                    && any(&r.categories, o.category)
                    && any(&r.priorities, o.priority)
                    && any(&r.region_classes, o.region_class)
                    && any(&r.tiers, o.tier)
            })
            .unwrap_or_else(|| &self.rules[self.rules.len() - 1])
    }
}

/// Stages that start when an order is opened (and again on reopen or unmerge).
pub fn opening_stages(kind: Kind) -> &'static [Stage] {
    match kind.family() {
        Family::Field => &[Stage::Dispatch, Stage::Arrival, Stage::Reply],
        Family::Case => &[Stage::Contact, Stage::Reply],
        Family::Reply => &[Stage::Reply],
        Family::Praise => &[],
    }
}

/// What an action does to an order's timers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TimerPlan {
    /// Stages whose running timer ends as met (or breached, if past due).
    pub end: Vec<Stage>,
    /// Stages whose running timer ends as `stopped` (left out of compliance).
    pub stop: Vec<Stage>,
    /// Stop every running or paused timer.
    pub stop_all: bool,
    /// Stop every open timer not in `end` (the stages the order no longer needs).
    pub stop_rest: bool,
    /// Stages whose next instance starts now (if the rule has a target for them).
    pub start: Vec<Stage>,
    pub pause_all: bool,
    pub resume_all: bool,
    /// The arrival instance started here counts from the customer's call, not from now (an
    /// order released from a master or an outage: the customer has waited since the call).
    pub arrival_from_call: bool,
}

impl TimerPlan {
    /// Whether the plan changes timers already open (a new order's plan only starts some).
    pub fn touches_open(&self) -> bool {
        !self.end.is_empty()
            || !self.stop.is_empty()
            || self.stop_all
            || self.stop_rest
            || self.pause_all
            || self.resume_all
    }
}

/// The timer plan of a transition (PRODUCT.md, "Stage starts and ends").
pub fn plan(kind: Kind, action: Action, to: Status) -> TimerPlan {
    let mut p = TimerPlan::default();
    let callback_kind = !matches!(kind.family(), Family::Reply | Family::Praise);
    match action {
        Action::Dispatch => {
            p.end.push(Stage::Dispatch);
            p.start.push(Stage::Accept);
        }
        Action::Reassign => {
            p.stop.push(Stage::Accept);
            p.start.push(Stage::Accept);
        }
        Action::Accept => p.end.push(Stage::Accept),
        Action::Reject => {
            p.stop.push(Stage::Accept);
            p.start.push(Stage::Dispatch);
        }
        Action::Arrive => {
            p.end.push(Stage::Arrival);
            p.start.push(Stage::Restore);
        }
        Action::Contact => p.end.push(Stage::Contact),
        Action::Resolve => {
            p.end.extend([Stage::Restore, Stage::Reply]);
            // e.g. a service request resolved before anyone went on site: its arrival stops
            p.stop_rest = true;
            // answered on the call: the reply stage is met at once
            if callback_kind {
                p.start.push(Stage::Callback);
            }
        }
        Action::Suspend => p.pause_all = true,
        Action::Resume => p.resume_all = true,
        Action::Callback => {
            // the callback stage is met or breached even when the customer is unhappy
            p.end.push(Stage::Callback);
            p.stop_rest = true;
            if to == Status::Reopened {
                p.start.extend(opening_stages(kind));
            }
        }
        Action::Close => p.stop_all = true,
        Action::Reopen => {
            p.stop_all = true;
            p.start.extend(opening_stages(kind));
        }
        Action::Merge | Action::Cancel => p.stop_all = true,
        Action::Unmerge => {
            p.start.extend(opening_stages(kind));
            p.arrival_from_call = true;
        }
        Action::Depart | Action::Urge | Action::Note | Action::Update => {}
    }
    p
}

/// The tier an order from a caller's phone is served at: the most demanding of the customers
/// who have that phone.
pub fn phone_tier(important: bool, sensitive: bool) -> &'static str {
    if important {
        "important"
    } else if sensitive {
        "sensitive"
    } else {
        "normal"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_phone_is_served_at_the_most_demanding_tier_among_its_customers() {
        assert_eq!(phone_tier(true, true), "important");
        assert_eq!(phone_tier(true, false), "important");
        assert_eq!(phone_tier(false, true), "sensitive");
        assert_eq!(phone_tier(false, false), "normal");
    }

    fn shipped() -> Policy {
        Policy::from_toml(include_str!("../../config/sla.toml")).unwrap()
    }

    fn profile<'a>(
        kind: Kind,
        category: &'a str,
        region: &'a str,
        tier: &'a str,
    ) -> OrderProfile<'a> {
        OrderProfile {
            kind,
            category,
            priority: "normal",
            region_class: region,
            tier,
        }
    }

    fn target(p: &Policy, o: OrderProfile<'_>, stage: Stage) -> Option<(String, CalendarRef)> {
        p.rule_for(&o)
            .target(stage)
            .map(|t| (t.target.clone(), t.calendar.clone()))
    }

    #[test]
    fn shipped_defaults_follow_the_product_table() {
        let p = shipped();
        let area = CalendarRef::Area;
        let h24 = CalendarRef::Named("24x7".into());
        assert_eq!(
            target(
                &p,
                profile(Kind::Repair, "no_power", "urban", "normal"),
                Stage::Arrival
            ),
            Some(("45m".into(), h24.clone()))
        );
        assert_eq!(
            target(
                &p,
                profile(Kind::Repair, "no_power", "rural", "normal"),
                Stage::Arrival
            ),
            Some(("90m".into(), h24.clone()))
        );
        assert_eq!(
            target(
                &p,
                profile(Kind::Repair, "no_power", "remote", "normal"),
                Stage::Arrival
            ),
            Some(("120m".into(), h24.clone()))
        );
        assert_eq!(
            target(
                &p,
                profile(Kind::Repair, "no_power", "remote", "important"),
                Stage::Arrival
            ),
            Some(("45m".into(), h24.clone()))
        );
        assert_eq!(
            target(
                &p,
                profile(Kind::Repair, "no_power", "rural", "normal"),
                Stage::Restore
            ),
            Some(("4h".into(), h24.clone()))
        );
        assert_eq!(
            target(
                &p,
                profile(Kind::Repair, "no_power", "urban", "normal"),
                Stage::Dispatch
            ),
            Some(("5m".into(), h24.clone()))
        );
        assert_eq!(
            target(
                &p,
                profile(Kind::Complaint, "service", "urban", "normal"),
                Stage::Reply
            ),
            Some(("5d".into(), area.clone()))
        );
        assert_eq!(
            target(
                &p,
                profile(Kind::Complaint, "service", "urban", "normal"),
                Stage::Contact
            ),
            Some(("24h".into(), h24.clone()))
        );
        assert_eq!(
            target(
                &p,
                profile(Kind::Report, "general", "urban", "normal"),
                Stage::Reply
            ),
            Some(("10d".into(), area.clone()))
        );
        assert_eq!(
            target(
                &p,
                profile(Kind::Inquiry, "general", "urban", "normal"),
                Stage::Reply
            ),
            Some(("1d".into(), area.clone()))
        );
        assert_eq!(
            target(
                &p,
                profile(Kind::Inquiry, "general", "urban", "normal"),
                Stage::Callback
            ),
            None
        );
        assert_eq!(
            target(
                &p,
                profile(Kind::ServiceRequest, "reconnection", "urban", "normal"),
                Stage::Reply
            ),
            Some(("24h".into(), h24.clone()))
        );
        assert_eq!(
            target(
                &p,
                profile(Kind::ServiceRequest, "appliance_damage", "urban", "normal"),
                Stage::Arrival
            ),
            Some(("24h".into(), h24.clone()))
        );
        assert_eq!(
            target(
                &p,
                profile(
                    Kind::ServiceRequest,
                    "meter_reading_abnormal",
                    "urban",
                    "normal"
                ),
                Stage::Reply
            ),
            Some(("6d".into(), area.clone()))
        );
        assert_eq!(
            target(
                &p,
                profile(Kind::ServiceRequest, "fast_charging", "urban", "normal"),
                Stage::Arrival
            ),
            Some(("45m".into(), h24.clone()))
        );
        assert_eq!(
            target(
                &p,
                profile(Kind::ServiceRequest, "meter_abnormal", "urban", "normal"),
                Stage::Arrival
            ),
            None
        );
        assert_eq!(
            target(
                &p,
                profile(Kind::Praise, "general", "urban", "normal"),
                Stage::Reply
            ),
            None
        );
        assert_eq!(p.warn_at, 0.8);
    }

    #[test]
    fn alternative_profiles_are_configuration_only() {
        let gb = Policy::from_toml(include_str!("../../config/sla-gbt28583.toml")).unwrap();
        assert_eq!(
            target(
                &gb,
                profile(Kind::Repair, "no_power", "rural", "normal"),
                Stage::Arrival
            )
            .unwrap()
            .0,
            "120m"
        );
        assert_eq!(
            target(
                &gb,
                profile(Kind::Repair, "no_power", "remote", "normal"),
                Stage::Arrival
            )
            .unwrap()
            .0,
            "240m"
        );
        let old = Policy::from_toml(include_str!("../../config/sla-2011.toml")).unwrap();
        assert_eq!(
            target(
                &old,
                profile(Kind::Complaint, "service", "urban", "normal"),
                Stage::Contact
            ),
            Some(("1d".into(), CalendarRef::Area))
        );
        assert_eq!(
            target(
                &old,
                profile(Kind::Complaint, "service", "urban", "normal"),
                Stage::Reply
            )
            .unwrap()
            .0,
            "7d"
        );
    }

    #[test]
    fn invalid_files_name_line_and_reason() {
        let no_catch_all = "version = '1'\n[[rules]]\nname = 'r'\nkinds = ['repair']\ntargets = { arrival = { target = '45m' } }\n";
        assert!(Policy::from_toml(no_catch_all)
            .unwrap_err()
            .contains("catch-all"));
        let bad_stage =
            "version = '1'\n\n[[rules]]\nname = 'all'\ntargets = { lunch = { target = '45m' } }\n";
        let e = Policy::from_toml(bad_stage).unwrap_err();
        assert!(e.contains("line 3") && e.contains("lunch"), "{e}");
        let bad_duration = "version = '1'\n[[rules]]\nname = 'all'\ntargets = { reply = { target = '5 weeks', calendar = 'area' } }\n";
        assert!(Policy::from_toml(bad_duration)
            .unwrap_err()
            .contains("5 weeks"));
        let syntax = "version = '1'\n[[rules]\n";
        assert!(Policy::from_toml(syntax).unwrap_err().starts_with("line 2"));
        let bad_kind = "version = '1'\n[[rules]]\nname = 'x'\nkinds = ['teleport']\ntargets = {}\n";
        assert!(Policy::from_toml(bad_kind)
            .unwrap_err()
            .contains("teleport"));
    }

    #[test]
    fn plans() {
        let p = plan(Kind::Repair, Action::Reject, Status::New);
        assert_eq!(
            (p.stop, p.start),
            (vec![Stage::Accept], vec![Stage::Dispatch])
        );
        let p = plan(Kind::Inquiry, Action::Resolve, Status::Resolved);
        assert!(p.start.is_empty(), "no callback timer for the reply family");
        let p = plan(Kind::Complaint, Action::Callback, Status::Reopened);
        assert_eq!(
            p.end,
            vec![Stage::Callback],
            "the callback itself is measured"
        );
        assert!(p.stop_rest && !p.stop_all);
        assert_eq!(p.start, vec![Stage::Contact, Stage::Reply]);
        assert!(plan(Kind::Repair, Action::Merge, Status::Merged).stop_all);
    }
}
