//! The work-order state machine: one transition table (PRODUCT.md), as a pure function
//! of (status, action, kind, role).

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, utoipa::ToSchema,
        )]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::state_machine::UnknownValue;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::domain::state_machine::UnknownValue(s.to_owned())),
                }
            }
        }

        // A stored column typed as this enum reads through these (`deserialize_as` and
        // `serialize_as = String` in `db`): a value no variant names fails the read.
        impl TryFrom<String> for $name {
            type Error = $crate::domain::state_machine::UnknownValue;
            fn try_from(s: String) -> Result<Self, $crate::domain::state_machine::UnknownValue> {
                s.parse()
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.as_str().to_owned()
            }
        }
    };
}
pub(crate) use string_enum;

/// A string that names no variant of the enum it was parsed as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown value `{0}`")]
pub struct UnknownValue(pub String);

string_enum!(
    /// The eight 95598 business types.
    Kind {
        Repair => "repair",
        ServiceRequest => "service_request",
        Complaint => "complaint",
        Report => "report",
        Inquiry => "inquiry",
        Opinion => "opinion",
        Suggestion => "suggestion",
        Praise => "praise",
    }
);

string_enum!(
    /// Status of a work order.
    Status {
        New => "new",
        Dispatched => "dispatched",
        Accepted => "accepted",
        EnRoute => "en_route",
        OnSite => "on_site",
        Contacted => "contacted",
        Suspended => "suspended",
        Resolved => "resolved",
        Closed => "closed",
        Reopened => "reopened",
        Merged => "merged",
        Cancelled => "cancelled",
    }
);

string_enum!(
    /// What a user may ask of a work order.
    Action {
        Dispatch => "dispatch",
        Reassign => "reassign",
        Accept => "accept",
        Reject => "reject",
        Depart => "depart",
        Arrive => "arrive",
        Contact => "contact",
        Resolve => "resolve",
        Suspend => "suspend",
        Resume => "resume",
        Callback => "callback",
        Close => "close",
        Reopen => "reopen",
        Merge => "merge",
        Unmerge => "unmerge",
        Cancel => "cancel",
        Urge => "urge",
        Note => "note",
        Update => "update",
    }
);

string_enum!(
    /// User roles.
    Role {
        Agent => "agent",
        Dispatcher => "dispatcher",
        Crew => "crew",
        Supervisor => "supervisor",
        Admin => "admin",
    }
);

/// The four families of kinds that share a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Field,
    Case,
    Reply,
    Praise,
}

impl Kind {
    pub fn family(self) -> Family {
        match self {
            Kind::Repair | Kind::ServiceRequest => Family::Field,
            Kind::Complaint | Kind::Report => Family::Case,
            Kind::Inquiry | Kind::Opinion | Kind::Suggestion => Family::Reply,
            Kind::Praise => Family::Praise,
        }
    }

    /// The letter that opens the order number.
    pub fn letter(self) -> char {
        match self {
            Kind::Repair => 'R',
            Kind::ServiceRequest => 'A',
            Kind::Complaint => 'C',
            Kind::Report => 'J',
            Kind::Inquiry => 'Q',
            Kind::Opinion => 'Y',
            Kind::Suggestion => 'S',
            Kind::Praise => 'P',
        }
    }
}

impl Status {
    /// Open statuses: all but closed and cancelled (a resolved order awaits its callback).
    pub fn is_open(self) -> bool {
        !matches!(self, Status::Closed | Status::Cancelled)
    }
}

/// The facts about an order besides its status that decide a transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OrderFacts {
    pub status: Status,
    pub kind: Kind,
    /// The status a suspended order returns to on resume.
    pub suspended_from: Option<Status>,
    /// For a closed order: whether it is still within the reopen window.
    pub reopen_window_open: bool,
}

/// Why an action cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The caller's role may never take this action on this kind of order.
    RoleForbidden,
    /// The current status does not allow it.
    NotAllowedNow,
}

/// Whether a callback with this satisfaction reopens the order instead of closing it.
pub fn callback_reopens(satisfaction: Satisfaction) -> bool {
    matches!(
        satisfaction,
        Satisfaction::Unsatisfied | Satisfaction::VeryUnsatisfied
    )
}

string_enum!(
    /// The 5-point callback scale (非常满意/满意/一般/不满意/非常不满意).
    Satisfaction {
        VerySatisfied => "very_satisfied",
        Satisfied => "satisfied",
        Neutral => "neutral",
        Unsatisfied => "unsatisfied",
        VeryUnsatisfied => "very_unsatisfied",
    }
);

/// The status an action leads to, ignoring roles; `None` where the table has no such row.
/// `Callback` leads to `Closed` here; the caller turns it into `Reopened` for an unhappy customer.
fn next_status(facts: OrderFacts, action: Action) -> Option<Status> {
    use Action as A;
    use Family as F;
    use Status as S;
    let family = facts.kind.family();
    let kind = facts.kind;
    let status = facts.status;
    let not_praise = family != F::Praise;
    let worked = matches!(family, F::Field | F::Case | F::Reply);
    match action {
        A::Dispatch => (worked && matches!(status, S::New | S::Reopened)).then_some(S::Dispatched),
        A::Reassign => {
            (worked && matches!(status, S::Dispatched | S::Accepted)).then_some(S::Dispatched)
        }
        A::Accept => (worked && status == S::Dispatched).then_some(S::Accepted),
        A::Reject => (worked && matches!(status, S::Dispatched | S::Accepted)).then_some(S::New),
        A::Depart => (family == F::Field && status == S::Accepted).then_some(S::EnRoute),
        A::Arrive => (family == F::Field && status == S::EnRoute).then_some(S::OnSite),
        A::Contact => (family == F::Case && status == S::Accepted).then_some(S::Contacted),
        A::Resolve => {
            let ok = match kind {
                Kind::Repair => status == S::OnSite,
                Kind::ServiceRequest => matches!(status, S::Accepted | S::EnRoute | S::OnSite),
                Kind::Complaint | Kind::Report => status == S::Contacted,
                Kind::Inquiry => matches!(status, S::Accepted | S::New),
                Kind::Opinion | Kind::Suggestion => status == S::Accepted,
                Kind::Praise => false,
            };
            ok.then_some(S::Resolved)
        }
        A::Suspend => (matches!(family, F::Field | F::Case)
            && matches!(status, S::Accepted | S::EnRoute | S::OnSite | S::Contacted))
        .then_some(S::Suspended),
        A::Resume => {
            if matches!(family, F::Field | F::Case) && status == S::Suspended {
                facts.suspended_from
            } else {
                None
            }
        }
        A::Callback => (not_praise && status == S::Resolved).then_some(S::Closed),
        A::Close => match family {
            F::Praise => (status == S::New).then_some(S::Closed),
            _ => (status == S::Resolved).then_some(S::Closed),
        },
        A::Reopen => (not_praise
            && (status == S::Resolved || (status == S::Closed && facts.reopen_window_open)))
            .then_some(S::Reopened),
        A::Merge => (matches!(family, F::Field | F::Case) && status == S::New).then_some(S::Merged),
        A::Unmerge => {
            (matches!(family, F::Field | F::Case) && status == S::Merged).then_some(S::New)
        }
        A::Cancel => status.is_open().then_some(S::Cancelled),
        A::Urge | A::Note | A::Update => (status != S::Cancelled).then_some(status),
    }
}

/// Whether `role` may take `action` on an order of `kind` in `status` (roles only; the crew
/// user's own-crew condition is a scope check made before this).
fn role_allows(role: Role, action: Action, kind: Kind, status: Status) -> bool {
    use Action as A;
    use Role as R;
    if role == R::Admin {
        return true;
    }
    match action {
        A::Dispatch | A::Reassign => role == R::Dispatcher,
        A::Accept | A::Reject | A::Depart | A::Arrive | A::Suspend | A::Resume => {
            matches!(role, R::Crew | R::Dispatcher)
        }
        A::Contact => matches!(role, R::Crew | R::Agent | R::Dispatcher),
        A::Resolve => {
            if kind == Kind::Inquiry && status == Status::New {
                role == R::Agent
            } else {
                matches!(role, R::Crew | R::Dispatcher)
            }
        }
        A::Callback | A::Reopen => matches!(role, R::Agent | R::Supervisor),
        A::Close => {
            if kind.family() == Family::Praise {
                role == R::Agent
            } else {
                matches!(role, R::Agent | R::Supervisor)
            }
        }
        A::Merge | A::Unmerge | A::Cancel | A::Urge | A::Update => {
            matches!(role, R::Agent | R::Dispatcher)
        }
        A::Note => matches!(role, R::Agent | R::Dispatcher | R::Crew),
    }
}

/// Decides an action: the next status, or why not. 403 comes before 409: a role that could
/// never take this action on this kind (in any status) is refused as forbidden.
pub fn decide(facts: OrderFacts, action: Action, role: Role) -> Result<Status, Refusal> {
    let ever = Status::ALL.iter().any(|&status| {
        let probe = OrderFacts {
            status,
            suspended_from: Some(Status::Accepted),
            reopen_window_open: true,
            ..facts
        };
        next_status(probe, action).is_some() && role_allows(role, action, facts.kind, status)
    });
    if !ever {
        return Err(Refusal::RoleForbidden);
    }
    match next_status(facts, action) {
        Some(next) if role_allows(role, action, facts.kind, facts.status) => Ok(next),
        _ => Err(Refusal::NotAllowedNow),
    }
}

/// The actions allowed now for this role (allowed now ∩ the caller's role), in table order.
pub fn allowed_actions(facts: OrderFacts, role: Role) -> Vec<Action> {
    Action::ALL
        .iter()
        .copied()
        .filter(|&a| decide(facts, a, role).is_ok())
        .collect()
}

/// Actions that must carry a reason. `close` needs one for the field and case families only.
pub fn reason_required(action: Action, kind: Kind) -> bool {
    match action {
        Action::Reject
        | Action::Reassign
        | Action::Suspend
        | Action::Cancel
        | Action::Reopen
        | Action::Unmerge => true,
        Action::Close => matches!(kind.family(), Family::Field | Family::Case),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(status: Status, kind: Kind) -> OrderFacts {
        OrderFacts {
            status,
            kind,
            suspended_from: (status == Status::Suspended).then_some(Status::EnRoute),
            reopen_window_open: true,
        }
    }

    /// The transition table of PRODUCT.md written out row by row, as the test oracle:
    /// (from, action, to, kinds, roles besides admin).
    /// (from statuses, action, to status, kinds, roles besides admin).
    type Row = (Vec<Status>, Action, Status, Vec<Kind>, Vec<Role>);

    fn table() -> Vec<Row> {
        use Kind::*;
        use Role::*;
        use Status as S;
        let field = vec![Repair, ServiceRequest];
        let case = vec![Complaint, Report];
        let reply = vec![Inquiry, Opinion, Suggestion];
        let worked: Vec<Kind> = [field.clone(), case.clone(), reply.clone()].concat();
        let fc: Vec<Kind> = [field.clone(), case.clone()].concat();
        let not_praise = worked.clone();
        let open: Vec<Status> = Status::ALL
            .iter()
            .copied()
            .filter(|s| s.is_open())
            .collect();
        let not_cancelled: Vec<Status> = Status::ALL
            .iter()
            .copied()
            .filter(|s| *s != S::Cancelled)
            .collect();
        let mut rows = vec![
            (
                vec![S::New, S::Reopened],
                Action::Dispatch,
                S::Dispatched,
                worked.clone(),
                vec![Dispatcher],
            ),
            (
                vec![S::Dispatched, S::Accepted],
                Action::Reassign,
                S::Dispatched,
                worked.clone(),
                vec![Dispatcher],
            ),
            (
                vec![S::Dispatched],
                Action::Accept,
                S::Accepted,
                worked.clone(),
                vec![Crew, Dispatcher],
            ),
            (
                vec![S::Dispatched, S::Accepted],
                Action::Reject,
                S::New,
                worked.clone(),
                vec![Crew, Dispatcher],
            ),
            (
                vec![S::Accepted],
                Action::Depart,
                S::EnRoute,
                field.clone(),
                vec![Crew, Dispatcher],
            ),
            (
                vec![S::EnRoute],
                Action::Arrive,
                S::OnSite,
                field.clone(),
                vec![Crew, Dispatcher],
            ),
            (
                vec![S::Accepted],
                Action::Contact,
                S::Contacted,
                case.clone(),
                vec![Crew, Agent, Dispatcher],
            ),
            (
                vec![S::OnSite],
                Action::Resolve,
                S::Resolved,
                vec![Repair],
                vec![Crew, Dispatcher],
            ),
            (
                vec![S::Accepted, S::EnRoute, S::OnSite],
                Action::Resolve,
                S::Resolved,
                vec![ServiceRequest],
                vec![Crew, Dispatcher],
            ),
            (
                vec![S::Contacted],
                Action::Resolve,
                S::Resolved,
                case.clone(),
                vec![Crew, Dispatcher],
            ),
            (
                vec![S::Accepted],
                Action::Resolve,
                S::Resolved,
                reply.clone(),
                vec![Crew, Dispatcher],
            ),
            (
                vec![S::New],
                Action::Resolve,
                S::Resolved,
                vec![Inquiry],
                vec![Agent],
            ),
            (
                vec![S::Accepted, S::EnRoute, S::OnSite, S::Contacted],
                Action::Suspend,
                S::Suspended,
                fc.clone(),
                vec![Crew, Dispatcher],
            ),
            (
                vec![S::Suspended],
                Action::Resume,
                S::EnRoute,
                fc.clone(),
                vec![Crew, Dispatcher],
            ),
            (
                vec![S::Resolved],
                Action::Callback,
                S::Closed,
                not_praise.clone(),
                vec![Agent, Supervisor],
            ),
            (
                vec![S::Resolved],
                Action::Close,
                S::Closed,
                not_praise.clone(),
                vec![Agent, Supervisor],
            ),
            (
                vec![S::Resolved, S::Closed],
                Action::Reopen,
                S::Reopened,
                not_praise.clone(),
                vec![Agent, Supervisor],
            ),
            (
                vec![S::New],
                Action::Merge,
                S::Merged,
                fc.clone(),
                vec![Agent, Dispatcher],
            ),
            (
                vec![S::Merged],
                Action::Unmerge,
                S::New,
                fc.clone(),
                vec![Agent, Dispatcher],
            ),
            (
                vec![S::New],
                Action::Close,
                S::Closed,
                vec![Praise],
                vec![Agent],
            ),
            (
                open,
                Action::Cancel,
                S::Cancelled,
                Kind::ALL.to_vec(),
                vec![Agent, Dispatcher],
            ),
        ];
        for action in [Action::Urge, Action::Update] {
            for &s in &not_cancelled {
                rows.push((
                    vec![s],
                    action,
                    s,
                    Kind::ALL.to_vec(),
                    vec![Agent, Dispatcher],
                ));
            }
        }
        for &s in &not_cancelled {
            rows.push((
                vec![s],
                Action::Note,
                s,
                Kind::ALL.to_vec(),
                vec![Agent, Dispatcher, Crew],
            ));
        }
        rows
    }

    #[test]
    fn every_status_action_kind_role_matches_the_table() {
        let rows = table();
        for &kind in Kind::ALL {
            for &status in Status::ALL {
                for &action in Action::ALL {
                    for &role in Role::ALL {
                        let expected = rows.iter().find_map(|(from, a, to, kinds, roles)| {
                            (*a == action
                                && from.contains(&status)
                                && kinds.contains(&kind)
                                && (role == Role::Admin || roles.contains(&role)))
                            .then_some(*to)
                        });
                        let got = decide(facts(status, kind), action, role).ok();
                        assert_eq!(got, expected, "{kind} {status} {action} {role}");
                        // 403 exactly when no row of the table lets this role do this on this kind.
                        let ever = rows.iter().any(|(_, a, _, kinds, roles)| {
                            *a == action
                                && kinds.contains(&kind)
                                && (role == Role::Admin || roles.contains(&role))
                        });
                        let forbidden = decide(facts(status, kind), action, role)
                            == Err(Refusal::RoleForbidden);
                        assert_eq!(forbidden, !ever, "403 for {kind} {status} {action} {role}");
                    }
                }
            }
        }
    }

    #[test]
    fn resume_returns_to_the_status_suspended_from() {
        for from in [Status::Accepted, Status::EnRoute, Status::OnSite] {
            let f = OrderFacts {
                status: Status::Suspended,
                kind: Kind::Repair,
                suspended_from: Some(from),
                reopen_window_open: false,
            };
            assert_eq!(decide(f, Action::Resume, Role::Crew), Ok(from));
        }
    }

    #[test]
    fn closed_order_reopens_only_inside_the_window() {
        let mut f = facts(Status::Closed, Kind::Complaint);
        f.reopen_window_open = false;
        assert_eq!(
            decide(f, Action::Reopen, Role::Agent),
            Err(Refusal::NotAllowedNow)
        );
        f.reopen_window_open = true;
        assert_eq!(decide(f, Action::Reopen, Role::Agent), Ok(Status::Reopened));
    }

    #[test]
    fn allowed_actions_for_a_new_repair() {
        let f = facts(Status::New, Kind::Repair);
        let got = allowed_actions(f, Role::Dispatcher);
        assert_eq!(
            got,
            vec![
                Action::Dispatch,
                Action::Merge,
                Action::Cancel,
                Action::Urge,
                Action::Note,
                Action::Update
            ]
        );
        assert!(allowed_actions(facts(Status::Cancelled, Kind::Repair), Role::Admin).is_empty());
    }

    #[test]
    fn unhappy_callbacks_reopen() {
        assert!(callback_reopens(Satisfaction::Unsatisfied));
        assert!(callback_reopens(Satisfaction::VeryUnsatisfied));
        assert!(!callback_reopens(Satisfaction::Neutral));
        assert!(!callback_reopens(Satisfaction::Satisfied));
    }

    #[test]
    fn reasons() {
        assert!(reason_required(Action::Close, Kind::Repair));
        assert!(!reason_required(Action::Close, Kind::Inquiry));
        assert!(!reason_required(Action::Close, Kind::Praise));
        assert!(reason_required(Action::Unmerge, Kind::Complaint));
    }
}

string_enum!(
    /// Work-order priority.
    Priority { Urgent => "urgent", High => "high", Normal => "normal", Low => "low" }
);

string_enum!(
    /// How the customer reached the centre.
    Channel { Phone => "phone", Web => "web", App => "app", Wechat => "wechat", Sms => "sms", WalkIn => "walk_in" }
);

string_enum!(
    /// Complaint grade.
    Grade { Special => "special", Major => "major", Important => "important", General => "general" }
);

string_enum!(
    /// Customer tier.
    Tier { Normal => "normal", Important => "important", Sensitive => "sensitive" }
);

string_enum!(
    /// Region class of a service area (decides arrival targets).
    RegionClass { Urban => "urban", Rural => "rural", Remote => "remote" }
);

string_enum!(
    /// A field crew goes on site; a unit handles complaints, reports and written replies.
    CrewKind { Field => "field", Unit => "unit" }
);
