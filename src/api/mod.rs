//! HTTP layer: thin actix handlers per resource, the routes, and the OpenAPI document.

pub mod appeals;
pub mod auth;
pub mod dashboard;
pub mod events;
pub mod extract;
pub mod ops;
pub mod outages;
pub mod reference;
pub mod reports;
pub mod sla;
pub mod users;
pub mod views;
pub mod work_orders;

use actix_web::{web, HttpResponse};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "gridcall", description = "Work orders, SLA timers and dispatch for a 95598-style customer-service centre."),
    paths(
        ops::healthz, ops::readyz, ops::metrics,
        auth::login, auth::refresh, auth::logout, auth::change_password, auth::me,
        users::create, users::list, users::get, users::update,
        reference::create_area, reference::list_areas, reference::get_area, reference::update_area,
        reference::create_crew, reference::list_crews, reference::get_crew, reference::update_crew,
        reference::crew_location, reference::crew_duty,
        reference::create_customer, reference::list_customers, reference::get_customer, reference::update_customer,
        reference::categories,
        work_orders::create, work_orders::list, work_orders::get, work_orders::update,
        work_orders::events, work_orders::add_note, work_orders::act, work_orders::sla, work_orders::candidates,
        events::page, events::stream, events::ticket,
        outages::declare, outages::list, outages::lookup, outages::get, outages::update, outages::restore, outages::cancel,
        sla::policies, sla::calendars, sla::days, sla::create_pause, sla::list_pauses, sla::end_pause,
        reports::sla, reports::crews, reports::backlog, reports::breaches,
        reports::scorecard, reports::close, reports::reopen,
        appeals::file, appeals::list, appeals::get, appeals::approve, appeals::reject,
    ),
    components(schemas(crate::errors::FieldError, crate::errors::Problem,
        work_orders::action_bodies::DispatchBody, work_orders::action_bodies::ReassignBody,
        work_orders::action_bodies::NoteBody, work_orders::action_bodies::ReasonBody,
        work_orders::action_bodies::CloseBody, work_orders::action_bodies::SuspendBody,
        work_orders::action_bodies::ContactBody, work_orders::action_bodies::ResolveBody,
        work_orders::action_bodies::CallbackBody, work_orders::action_bodies::MergeBody,
        crate::service::reports::GroupBy)),
    modifiers(&BearerAuth, &ActionPaths, &OptionalBodies, &ProblemAnswers),
    tags((name = "work orders", description = "The work-order state machine (PRODUCT.md)"))
)]
pub struct ApiDoc;

struct BearerAuth;

/// A body is required exactly when its schema has a required field: the server reads an
/// empty body as `{}` (`JsonBody`), which every all-optional body accepts.
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{RefOr, Required, Schema};

        let Some(components) = openapi.components.as_ref() else {
            return;
        };
        let has_required = |name: &str| match components.schemas.get(name) {
            Some(RefOr::T(Schema::Object(o))) => !o.required.is_empty(),
            _ => true,
        };
        let mut decided = Vec::new();
        for (path, item) in openapi.paths.paths.iter() {
            for (method, op) in [
                ("post", &item.post),
                ("patch", &item.patch),
                ("put", &item.put),
            ] {
                let Some(RefOr::T(body)) = op.as_ref().and_then(|o| o.request_body.as_ref()) else {
                    continue;
                };
                let name = body.content.values().find_map(|c| match c {
                    RefOr::T(c) => match &c.schema {
                        Some(RefOr::Ref(r)) => r.ref_location.rsplit('/').next().map(str::to_owned),
                        _ => None,
                    },
                    RefOr::Ref(_) => None,
                });
                let required = name.as_deref().is_none_or(has_required);
                decided.push((path.clone(), method, required));
            }
        }
        for (path, method, required) in decided {
            let Some(item) = openapi.paths.paths.get_mut(&path) else {
                continue;
            };
            let op = match method {
                "post" => item.post.as_mut(),
                "patch" => item.patch.as_mut(),
                _ => item.put.as_mut(),
            };
            if let Some(RefOr::T(body)) = op.and_then(|o| o.request_body.as_mut()) {
                body.required = Some(if required {
                    Required::True
                } else {
                    Required::False
                });
            }
        }
    }
}

/// One path per work-order action, each with its own body schema, in place of the route's
/// single `/{action}` path (which the server keeps: one handler reads every action).
struct ActionPaths;

impl Modify for ActionPaths {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::request_body::RequestBodyBuilder;
        use utoipa::openapi::{Content, Ref, RefOr};

        let generic = "/api/v1/work-orders/{id}/{action}";
        let Some(item) = openapi.paths.paths.remove(generic) else {
            return;
        };
        let Some(operation) = item.post else { return };
        for (action, body) in work_orders::action_bodies::ACTIONS {
            let mut op = operation.clone();
            op.operation_id = Some(format!("act_{action}"));
            op.summary = Some(format!("`{action}` (PRODUCT.md, the state table)"));
            if let Some(params) = op.parameters.as_mut() {
                params.retain(|p| !matches!(p, RefOr::T(p) if p.name == "action"));
            }
            op.request_body = Some(RefOr::T(
                RequestBodyBuilder::new()
                    .content(
                        "application/json",
                        Content::new(Some(Ref::from_schema_name(*body))),
                    )
                    .build(),
            ));
            let mut path_item = utoipa::openapi::PathItem::default();
            path_item.post = Some(op);
            openapi
                .paths
                .paths
                .insert(format!("/api/v1/work-orders/{{id}}/{action}"), path_item);
        }
    }
}

/// Completes every operation with the answers every handler of its shape can give, so the
/// document says what the server does: 401 where a token is required; 400, 413, 415 and 422
/// where a body is read; 400 and 404 where an id is in the path (ids are UUIDs: the path
/// parameter says so); 400 where a query is parsed; 500 everywhere and 503 wherever the
/// database is asked. Every error answer carries the `Problem` body.
struct ProblemAnswers;

impl Modify for ProblemAnswers {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        unique_operation_ids(openapi);
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            for op in operations.into_iter().flatten() {
                complete_answers(path, op);
            }
        }
    }
}

/// Handlers of different resources share names (`list`, `get`, `update`, …); an operation id
/// must be unique in the document, so a shared one gets its resource: `update_outages`.
fn unique_operation_ids(openapi: &mut utoipa::openapi::OpenApi) {
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for item in openapi.paths.paths.values() {
        for op in [&item.get, &item.post, &item.put, &item.patch, &item.delete]
            .into_iter()
            .flatten()
        {
            if let Some(id) = &op.operation_id {
                *seen.entry(id.clone()).or_default() += 1;
            }
        }
    }
    for (path, item) in openapi.paths.paths.iter_mut() {
        let resource = path
            .trim_start_matches("/api/v1/")
            .split('/')
            .next()
            .unwrap_or_default()
            .replace('-', "_");
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            if let Some(id) = op.operation_id.as_mut() {
                if seen.get(id.as_str()).is_some_and(|n| *n > 1) {
                    *id = format!("{id}_{resource}");
                }
            }
        }
    }
}

fn complete_answers(path: &str, op: &mut utoipa::openapi::path::Operation) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
    use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};

    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = op.request_body.is_some();
    let mut has_query = false;
    let mut has_id = false;
    for param in op.parameters.iter_mut().flatten() {
        let RefOr::T(param) = param else { continue };
        match param.parameter_in {
            ParameterIn::Query => has_query = true,
            ParameterIn::Header => {
                if let Some(schema) = crate::schema::header(&param.name) {
                    param.schema = Some(RefOr::T(schema.into()));
                }
            }
            ParameterIn::Path if param.name == "id" => {
                has_id = true;
                param.schema = Some(RefOr::T(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                        .into(),
                ));
            }
            _ => {}
        }
    }
    let mut answers: Vec<(&str, &str)> = Vec::new();
    if secured {
        answers.push(("401", "no, invalid or expired access token"));
        if !path.starts_with("/api/v1/auth/") {
            answers.push((
                "403",
                "the caller's role may not do this (or not in this scope)",
            ));
        }
    }
    if has_body {
        answers.extend([
            ("400", "the body is not JSON"),
            ("413", "the body is over the configured limit"),
            ("415", "the body is not application/json"),
            ("422", "the body is invalid (`errors` names each field)"),
        ]);
    }
    if has_id {
        answers.extend([
            ("400", "the id is not a UUID"),
            ("404", "no such resource, or one outside the caller's scope"),
        ]);
    }
    if has_query {
        answers.extend([
            ("400", "a query value does not parse"),
            ("422", "a query value is out of range (`errors` names it)"),
        ]);
    }
    answers.push(("500", "an internal error (logged, never shown)"));
    if path != "/healthz" {
        answers.push(("503", "the database is not answering; try again"));
    }
    for (status, why) in answers {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(ResponseBuilder::new().description(why).build()));
    }
    for (status, answer) in op.responses.responses.iter_mut() {
        let is_error = status.starts_with('4') || status.starts_with('5');
        if let (true, RefOr::T(answer)) = (is_error, answer) {
            if answer.content.is_empty() {
                answer.content.insert(
                    "application/problem+json".to_owned(),
                    RefOr::T(Content::new(Some(Ref::from_schema_name("Problem")))),
                );
            }
            if answer.description.is_empty() {
                answer.description = "see `code` (docs/api.md lists them)".to_owned();
            }
        }
    }
}

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

async fn not_found() -> HttpResponse {
    crate::errors::problem(
        actix_web::http::StatusCode::NOT_FOUND,
        crate::errors::ProblemCode::NotFound,
        "no such resource",
        Default::default(),
    )
}

/// Every route of the service.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use actix_web::web::{get, patch, post, resource, scope};
    cfg.configure(dashboard::routes);
    cfg.service(resource("/healthz").route(get().to(ops::healthz)))
        .service(resource("/readyz").route(get().to(ops::readyz)))
        .service(resource("/metrics").route(get().to(ops::metrics)))
        .service(resource("/docs").route(get().to(|| async {
            HttpResponse::Found()
                .insert_header(("Location", "/docs/"))
                .finish()
        })))
        .service(
            utoipa_swagger_ui::SwaggerUi::new("/docs/{_:.*}")
                .url("/api/v1/openapi.json", ApiDoc::openapi()),
        )
        .service(
            scope("/api/v1")
                .service(resource("/auth/login").route(post().to(auth::login)))
                .service(resource("/auth/refresh").route(post().to(auth::refresh)))
                .service(resource("/auth/logout").route(post().to(auth::logout)))
                .service(resource("/auth/password").route(post().to(auth::change_password)))
                .service(resource("/auth/me").route(get().to(auth::me)))
                .service(
                    resource("/users")
                        .route(post().to(users::create))
                        .route(get().to(users::list)),
                )
                .service(
                    resource("/users/{id}")
                        .route(get().to(users::get))
                        .route(patch().to(users::update)),
                )
                .service(
                    resource("/areas")
                        .route(post().to(reference::create_area))
                        .route(get().to(reference::list_areas)),
                )
                .service(
                    resource("/areas/{code}")
                        .route(get().to(reference::get_area))
                        .route(patch().to(reference::update_area)),
                )
                .service(
                    resource("/crews")
                        .route(post().to(reference::create_crew))
                        .route(get().to(reference::list_crews)),
                )
                .service(
                    resource("/crews/{id}")
                        .route(get().to(reference::get_crew))
                        .route(patch().to(reference::update_crew)),
                )
                .service(
                    resource("/crews/{id}/location").route(post().to(reference::crew_location)),
                )
                .service(resource("/crews/{id}/duty").route(post().to(reference::crew_duty)))
                .service(
                    resource("/customers")
                        .route(post().to(reference::create_customer))
                        .route(get().to(reference::list_customers)),
                )
                .service(
                    resource("/customers/{id}")
                        .route(get().to(reference::get_customer))
                        .route(patch().to(reference::update_customer)),
                )
                .service(resource("/categories").route(get().to(reference::categories)))
                .service(
                    resource("/work-orders")
                        .route(post().to(work_orders::create))
                        .route(get().to(work_orders::list)),
                )
                .service(
                    resource("/work-orders/{id}")
                        .route(get().to(work_orders::get))
                        .route(patch().to(work_orders::update)),
                )
                .service(resource("/work-orders/{id}/events").route(get().to(work_orders::events)))
                .service(
                    resource("/work-orders/{id}/notes").route(post().to(work_orders::add_note)),
                )
                .service(resource("/work-orders/{id}/sla").route(get().to(work_orders::sla)))
                .service(
                    resource("/work-orders/{id}/candidates")
                        .route(get().to(work_orders::candidates)),
                )
                .service(resource("/events").route(get().to(events::page)))
                .service(resource("/events/stream").route(get().to(events::stream)))
                .service(resource("/events/ticket").route(post().to(events::ticket)))
                .service(
                    resource("/outages")
                        .route(post().to(outages::declare))
                        .route(get().to(outages::list)),
                )
                .service(resource("/outages/lookup").route(get().to(outages::lookup)))
                .service(
                    resource("/outages/{id}")
                        .route(get().to(outages::get))
                        .route(patch().to(outages::update)),
                )
                .service(resource("/outages/{id}/restore").route(post().to(outages::restore)))
                .service(resource("/outages/{id}/cancel").route(post().to(outages::cancel)))
                .service(resource("/sla/policies").route(get().to(sla::policies)))
                .service(
                    resource("/sla/pauses")
                        .route(post().to(sla::create_pause))
                        .route(get().to(sla::list_pauses)),
                )
                .service(resource("/sla/pauses/{id}/end").route(post().to(sla::end_pause)))
                .service(resource("/calendars").route(get().to(sla::calendars)))
                .service(resource("/calendars/{id}/days").route(get().to(sla::days)))
                // reports and scorecards
                .service(resource("/reports/sla").route(get().to(reports::sla)))
                .service(resource("/reports/crews").route(get().to(reports::crews)))
                .service(resource("/reports/backlog").route(get().to(reports::backlog)))
                .service(resource("/reports/breaches").route(get().to(reports::breaches)))
                .service(resource("/scorecards/{period}").route(get().to(reports::scorecard)))
                .service(resource("/scorecards/{period}/close").route(post().to(reports::close)))
                .service(resource("/scorecards/{period}/reopen").route(post().to(reports::reopen)))
                // appeals
                .service(
                    resource("/appeals")
                        .route(post().to(appeals::file))
                        .route(get().to(appeals::list)),
                )
                .service(resource("/appeals/{id}").route(get().to(appeals::get)))
                .service(resource("/appeals/{id}/approve").route(post().to(appeals::approve)))
                .service(resource("/appeals/{id}/reject").route(post().to(appeals::reject)))
                .service(resource("/work-orders/{id}/{action}").route(post().to(work_orders::act))),
        )
        .default_service(web::to(not_found));
}

#[cfg(test)]
mod tests {
    use super::*;
    use utoipa::openapi::{RefOr, Schema};

    /// The document's body of each action names exactly the fields the server accepts for it
    /// (`service::work_orders::accepted_fields`), so the two lists cannot drift apart.
    #[test]
    fn each_action_body_documents_the_fields_the_server_accepts() {
        let doc = ApiDoc::openapi();
        let schemas = &doc.components.as_ref().unwrap().schemas;
        for (action, body) in work_orders::action_bodies::ACTIONS {
            let Some(RefOr::T(Schema::Object(o))) = schemas.get(*body) else {
                panic!("{body} is not in the document");
            };
            let mut documented: Vec<&str> = o.properties.keys().map(String::as_str).collect();
            documented.sort_unstable();
            let action: crate::domain::Action = action.parse().unwrap();
            let mut accepted = crate::service::work_orders::accepted_fields(action).to_vec();
            accepted.sort_unstable();
            assert_eq!(documented, accepted, "{action}");
            assert!(doc
                .paths
                .paths
                .contains_key(&format!("/api/v1/work-orders/{{id}}/{action}")));
        }
    }
}
