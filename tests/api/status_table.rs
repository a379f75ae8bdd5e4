//! Every status × action × role, for every family, over HTTP. Each probe sends a body with
//! an unknown field, so nothing changes and the answer tells which check stopped it:
//! 404 (out of scope) → 403 (role) → 409 (status) → 422 (the body: the action was allowed).

use crate::helpers::*;
use futures_util::future::join_all;
use gridcall::domain::state_machine::{decide, OrderFacts, Refusal};
use gridcall::domain::{Action, Kind, Role, Status};
use reqwest::Method;
use serde_json::{json, Value};

fn path_to(kind: Kind, target: Status) -> Option<Vec<(&'static str, Value)>> {
    use Status as S;
    let dispatch = ("dispatch", Value::Null);
    let accept = ("accept", json!({}));
    let to_resolved: Vec<(&str, Value)> = match kind {
        Kind::Repair => vec![
            dispatch.clone(),
            accept.clone(),
            ("depart", json!({})),
            ("arrive", json!({})),
            ("resolve", json!({"resolution": "修复"})),
        ],
        Kind::ServiceRequest => vec![
            dispatch.clone(),
            accept.clone(),
            ("resolve", json!({"resolution": "已处理"})),
        ],
        Kind::Complaint | Kind::Report => vec![
            dispatch.clone(),
            accept.clone(),
            ("contact", json!({"note": "已联系"})),
            ("resolve", json!({"resolution": "已答复"})),
        ],
        Kind::Inquiry | Kind::Opinion | Kind::Suggestion => vec![
            dispatch.clone(),
            accept.clone(),
            ("resolve", json!({"resolution": "已答复"})),
        ],
        Kind::Praise => vec![],
    };
    let family = kind.family();
    use gridcall::domain::Family as F;
    let steps = match target {
        S::New => vec![],
        S::Dispatched if family != F::Praise => vec![dispatch],
        S::Accepted if family != F::Praise => vec![dispatch, accept],
        S::EnRoute if family == F::Field => vec![dispatch, accept, ("depart", json!({}))],
        S::OnSite if family == F::Field => vec![
            dispatch,
            accept,
            ("depart", json!({})),
            ("arrive", json!({})),
        ],
        S::Contacted if family == F::Case => {
            vec![dispatch, accept, ("contact", json!({"note": "已联系"}))]
        }
        S::Suspended if matches!(family, F::Field | F::Case) => {
            vec![dispatch, accept, ("suspend", json!({"reason": "等待配件"}))]
        }
        S::Resolved if family != F::Praise => to_resolved,
        S::Closed if family == F::Praise => vec![("close", json!({}))],
        S::Closed => [
            to_resolved,
            vec![("close", json!({"reason": "客户无法联系"}))],
        ]
        .concat(),
        S::Reopened if family != F::Praise => {
            [to_resolved, vec![("reopen", json!({"reason": "问题复发"}))]].concat()
        }
        S::Merged if matches!(family, F::Field | F::Case) => vec![("merge", Value::Null)],
        S::Cancelled => vec![("cancel", json!({"reason": "客户撤销"}))],
        _ => return None,
    };
    Some(steps)
}

async fn probe_kind(kind: Kind) {
    let app = spawn_app().await;
    let c = cast(&app).await;
    let field = kind.family() == gridcall::domain::Family::Field;
    let crew_id = if field {
        c.field_crew.clone()
    } else {
        c.unit.clone()
    };
    let crew_token = if field {
        c.field_member.clone()
    } else {
        c.unit_member.clone()
    };
    let tokens: Vec<(Role, String)> = vec![
        (Role::Admin, app.admin.clone()),
        (Role::Agent, c.agent.clone()),
        (Role::Dispatcher, c.dispatcher.clone()),
        (Role::Crew, crew_token.clone()),
        (Role::Supervisor, c.supervisor.clone()),
    ];
    let mut probed = 0;
    for &target in Status::ALL {
        let Some(steps) = path_to(kind, target) else {
            continue;
        };
        let id = app
            .order(&c.agent, kind.as_str(), "SZ-FT-01", "13800000001")
            .await
            .expect(201)
            .id();
        for (action, body) in steps {
            let body = match action {
                "dispatch" => json!({"crew_id": crew_id}),
                "merge" => {
                    let master = app
                        .order(&c.agent, kind.as_str(), "SZ-FT-01", "13800000002")
                        .await
                        .expect(201)
                        .id();
                    json!({"master_id": master})
                }
                _ => body,
            };
            app.act(&app.admin, &id, action, body).await.expect(200);
        }
        let order = app
            .get(&format!("/api/v1/work-orders/{id}"), &app.admin)
            .await
            .expect(200)
            .body;
        assert_eq!(
            order["status"],
            target.as_str(),
            "{kind}: reached {}",
            order["status"]
        );
        let assigned = order["assigned_crew_id"].as_str().map(str::to_owned);
        let facts = OrderFacts {
            status: target,
            kind,
            suspended_from: (target == Status::Suspended).then_some(Status::Accepted),
            reopen_window_open: true,
        };
        let mut probes = Vec::new();
        for (role, token) in &tokens {
            let hidden = *role == Role::Crew && assigned.as_deref() != Some(crew_id.as_str());
            let mut expected_allowed = Vec::new();
            for &action in Action::ALL {
                let decision = decide(facts, action, *role);
                if decision.is_ok() {
                    expected_allowed.push(action.as_str().to_owned());
                }
                let expected = if hidden {
                    404
                } else {
                    match decision {
                        Err(Refusal::RoleForbidden) => 403,
                        Err(Refusal::NotAllowedNow) => 409,
                        Ok(_) => 422,
                    }
                };
                let (method, path) = match action {
                    Action::Update => (Method::PATCH, format!("/api/v1/work-orders/{id}")),
                    Action::Note => (Method::POST, format!("/api/v1/work-orders/{id}/notes")),
                    _ => (Method::POST, format!("/api/v1/work-orders/{id}/{action}")),
                };
                let app = &app;
                let token = token.clone();
                probes.push(async move {
                    let r = app
                        .call(
                            method,
                            &path,
                            Some(&token),
                            Some(json!({"zzz_unknown": 1})),
                            &[],
                        )
                        .await;
                    assert!(
                        r.is_problem(),
                        "problem+json for {kind} {target} {action} {role}: {}",
                        r.body
                    );
                    assert_eq!(
                        r.status.as_u16(),
                        expected,
                        "{kind} {target} {action} {role}: {}",
                        r.body
                    );
                    if expected == 409 {
                        assert!(
                            r.body["allowed_actions"].is_array(),
                            "409 carries allowed_actions"
                        );
                    }
                });
            }
            if !hidden {
                let got = app
                    .get(&format!("/api/v1/work-orders/{id}"), token)
                    .await
                    .expect(200);
                let got: Vec<String> = got.body["allowed_actions"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_owned())
                    .collect();
                assert_eq!(
                    got, expected_allowed,
                    "allowed_actions of {kind} {target} for {role}"
                );
            } else {
                app.get(&format!("/api/v1/work-orders/{id}"), token)
                    .await
                    .expect(404);
            }
        }
        probed += probes.len();
        join_all(probes).await;
        let after = app
            .get(&format!("/api/v1/work-orders/{id}"), &app.admin)
            .await
            .expect(200)
            .body;
        assert_eq!(
            after["version"], order["version"],
            "probes must change nothing"
        );
    }
    assert!(probed > 0);
}

#[actix_web::test]
async fn status_table_field_repair() {
    probe_kind(Kind::Repair).await;
}

#[actix_web::test]
async fn status_table_field_service_request() {
    probe_kind(Kind::ServiceRequest).await;
}

#[actix_web::test]
async fn status_table_case_complaint() {
    probe_kind(Kind::Complaint).await;
}

#[actix_web::test]
async fn status_table_case_report() {
    probe_kind(Kind::Report).await;
}

#[actix_web::test]
async fn status_table_reply_inquiry() {
    probe_kind(Kind::Inquiry).await;
}

#[actix_web::test]
async fn status_table_reply_opinion() {
    probe_kind(Kind::Opinion).await;
}

#[actix_web::test]
async fn status_table_praise() {
    probe_kind(Kind::Praise).await;
}
