//! The supervisor board: static files compiled into the binary and served at `/`, so that
//! `cargo run --release` serves it offline with no Node step. The page is a client of the
//! REST API like any other; this module only hands out its files.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

const INDEX: &str = include_str!("../dashboard/index.html");
const APP_JS: &str = include_str!("../dashboard/app.js");
const APP_CSS: &str = include_str!("../dashboard/app.css");
const FAVICON: &str = include_str!("../dashboard/favicon.svg");

/// Nothing from outside: scripts, styles, images and connections to this origin only, no
/// inline script or style, no framing.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// The pages the board routes in the browser; each is the same document.
pub const PAGES: &[&str] = &[
    "/",
    "/crews",
    "/trend",
    "/scorecard",
    "/appeals",
    "/appeals/{id}",
    "/orders/{id}",
];

fn file(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, content_type))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        // small files: always revalidated, so a new binary's board is used at once
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

pub async fn page() -> HttpResponse {
    file("text/html; charset=utf-8", INDEX)
}

pub async fn script() -> HttpResponse {
    file("text/javascript; charset=utf-8", APP_JS)
}

pub async fn style() -> HttpResponse {
    file("text/css; charset=utf-8", APP_CSS)
}

pub async fn icon() -> HttpResponse {
    file("image/svg+xml", FAVICON)
}

/// The board's routes, beside the API's.
pub fn routes(cfg: &mut web::ServiceConfig) {
    use actix_web::web::{get, resource};
    for path in PAGES {
        cfg.service(resource(*path).route(get().to(page)));
    }
    cfg.service(resource("/assets/app.js").route(get().to(script)))
        .service(resource("/assets/app.css").route(get().to(style)))
        .service(resource("/assets/favicon.svg").route(get().to(icon)));
}
