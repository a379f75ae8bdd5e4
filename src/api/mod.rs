//! HTTP layer: thin actix handlers per resource, the routes, and the OpenAPI document.

pub mod appeals;
pub mod auth;
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
    components(schemas(crate::errors::FieldError)),
    modifiers(&BearerAuth),
    tags((name = "work orders", description = "The work-order state machine (PRODUCT.md)"))
)]
pub struct ApiDoc;

struct BearerAuth;

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
        "not_found",
        "no such resource",
        Default::default(),
    )
}

/// Every route of the service.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use actix_web::web::{get, patch, post, resource, scope};
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
