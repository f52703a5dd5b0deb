//! The HTTP edge: routes per resource, the auth extractor, CSRF check, one error mapping, static files.

pub(crate) mod agent;
mod auth;
pub mod error;
mod events;
pub mod extract;
mod health;
mod inventory;
mod vms;

use crate::state::AppState;
use api::v1::{ApiError, CSRF_HEADER};
use axum::extract::Request;
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use std::path::Path;
use tower_http::compression::CompressionLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::trace::TraceLayer;

pub use agent::token_hash;

/// The `/api/v1` routes (console API). Every route here is listed in the route table test.
pub fn api_routes() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/refresh", post(auth::refresh))
        .route("/auth/me", get(auth::me))
        .route("/inventory", get(inventory::inventory))
        .route("/zones", get(inventory::zones))
        .route("/clusters", get(inventory::clusters))
        .route("/hosts", get(inventory::hosts))
        .route("/hosts/{id}", get(inventory::host))
        .route("/vms", get(inventory::vms))
        .route("/vms/{id}", get(inventory::vm))
        .route("/vms/{id}/start", post(vms::start))
        .route("/vms/{id}/stop", post(vms::stop))
        .route("/storage-pools", get(inventory::storage_pools))
        .route("/offerings", get(inventory::offerings))
        .route("/events", get(events::stream))
        .fallback(api_not_found)
        .layer(middleware::from_fn(require_csrf_header))
}

/// The whole application: API, agent endpoint, probes, and (when given) the console's static files
/// with index.html for every other path, so the console's deep links load.
pub fn router(state: AppState, web_dir: Option<&Path>) -> Router {
    let mut router = Router::new()
        .nest("/api/v1", api_routes())
        .route(api::agent::CONNECT_PATH, get(agent::connect))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz));
    if let Some(dir) = web_dir {
        let index = dir.join("index.html");
        router = router.fallback_service(ServeDir::new(dir).fallback(ServeFile::new(index)));
    }
    router.with_state(state).layer(CompressionLayer::new()).layer(TraceLayer::new_for_http())
}

async fn api_not_found(method: Method, axum::extract::OriginalUri(uri): axum::extract::OriginalUri) -> Response {
    error::api_error(StatusCode::NOT_FOUND, "not-found", format!("no API route {method} {}", uri.path()))
}

/// Mutations must carry the CSRF header; a cross-site form or fetch cannot add it.
async fn require_csrf_header(request: Request, next: Next) -> Response {
    let safe = matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if !safe && !request.headers().contains_key(CSRF_HEADER) {
        let body = ApiError {
            code: "csrf-header-missing".into(),
            message: format!("mutating requests must carry the {CSRF_HEADER} header"),
        };
        return (StatusCode::FORBIDDEN, Json(body)).into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests;
