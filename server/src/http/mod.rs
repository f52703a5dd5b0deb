//! The HTTP edge: routes per resource, the auth extractor, CSRF check, one error mapping, static files.

pub(crate) mod agent;
mod alerts;
mod audit;
mod auth;
mod clusters;
mod email;
pub mod error;
mod events;
pub mod extract;
mod ha;
mod health;
mod hosts;
mod inventory;
mod offerings;
mod oobm;
mod plan;
mod users;
mod vms;

use crate::state::AppState;
use api::v1::{ApiError, CSRF_HEADER};
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{self, MethodRouter};
use axum::{Json, Router};
use std::path::Path;
use tower_http::compression::CompressionLayer;
use tower_http::services::{ServeDir, ServeFile};
use tower_http::set_header::SetResponseHeader;
use tower_http::trace::TraceLayer;

pub use agent::token_hash;

/// Builds a router and remembers every (method, path) it was given, so tests can check that each
/// route has an entry in the role x route matrix.
pub struct RouteTable {
    router: Router<AppState>,
    routes: Vec<(Method, &'static str)>,
}

impl RouteTable {
    fn new() -> Self {
        RouteTable { router: Router::new(), routes: Vec::new() }
    }

    fn add(mut self, method: Method, path: &'static str, route: MethodRouter<AppState>) -> Self {
        self.routes.push((method, path));
        self.router = self.router.route(path, route);
        self
    }

    fn get<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::GET, path, routing::get(handler))
    }

    fn post<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::POST, path, routing::post(handler))
    }

    fn delete<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::DELETE, path, routing::delete(handler))
    }

    fn patch<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::PATCH, path, routing::patch(handler))
    }

    fn put<H: Handler<T, AppState>, T: 'static>(self, path: &'static str, handler: H) -> Self {
        self.add(Method::PUT, path, routing::put(handler))
    }

    /// Every route's method and path (relative to `/api/v1`).
    pub fn routes(&self) -> &[(Method, &'static str)] {
        &self.routes
    }
}

/// The `/api/v1` routes (console API). Each handler's signature names the permission it requires.
pub fn api_routes() -> RouteTable {
    RouteTable::new()
        .post("/auth/login", auth::login)
        .post("/auth/logout", auth::logout)
        .post("/auth/refresh", auth::refresh)
        .post("/auth/password", auth::change_password)
        .get("/auth/me", auth::me)
        .put("/account/language", auth::set_language)
        .get("/users", users::list)
        .post("/users", users::create)
        .patch("/users/{id}", users::update)
        .post("/users/{id}/password", users::reset_password)
        .get("/audit", audit::list)
        .get("/inventory", inventory::inventory)
        .get("/zones", inventory::zones)
        .get("/clusters", inventory::clusters)
        .get("/clusters/{id}/ha/plan", clusters::plan)
        .put("/clusters/{id}/ha/failure-limit", clusters::set_failure_limit)
        .get("/hosts", inventory::hosts)
        .get("/hosts/{id}", inventory::host)
        .patch("/hosts/{id}", hosts::update)
        .delete("/hosts/{id}", hosts::remove)
        .post("/hosts/{id}/maintenance", hosts::enter_maintenance)
        .post("/hosts/{id}/cancel-maintenance", hosts::cancel_maintenance)
        .get("/vms", inventory::vms)
        .post("/vms", vms::deploy)
        .get("/vms/{id}", inventory::vm)
        .delete("/vms/{id}", vms::destroy)
        .post("/vms/{id}/start", vms::start)
        .post("/vms/{id}/stop", vms::stop)
        .post("/vms/{id}/restart", vms::restart)
        .post("/vms/{id}/migrate", vms::migrate)
        .patch("/vms/{id}/ha", vms::update_ha)
        .get("/storage-pools", inventory::storage_pools)
        .get("/offerings", inventory::offerings)
        .post("/offerings", offerings::create)
        .patch("/offerings/{id}", offerings::update)
        .delete("/offerings/{id}", offerings::delete)
        .get("/templates", inventory::templates)
        .post("/ha/plan/simulate", plan::simulate)
        .get("/alerts", alerts::list)
        .post("/alerts/{id}/acknowledge", alerts::acknowledge)
        .get("/events", events::stream)
        .get("/hosts/{id}/oobm", oobm::show)
        .put("/hosts/{id}/oobm", oobm::configure)
        .post("/hosts/{id}/oobm/test", oobm::test)
        .put("/hosts/{id}/oobm/enabled", oobm::set_host_enabled)
        .put("/zones/{id}/oobm/enabled", oobm::set_zone_enabled)
        .put("/clusters/{id}/oobm/enabled", oobm::set_cluster_enabled)
        .post("/hosts/{id}/oobm/power", oobm::power)
        .post("/hosts/{id}/oobm/password", oobm::change_password)
        .put("/zones/{id}/ha", ha::set_zone)
        .put("/clusters/{id}/ha", ha::set_cluster)
        .get("/clusters/{id}/ha/settings", ha::cluster_settings)
        .put("/clusters/{id}/ha/settings", ha::update_cluster_settings)
        .put("/hosts/{id}/ha", ha::set_host)
        .get("/hosts/{id}/ha", ha::host)
        .get("/ha/incidents", ha::incidents)
        .get("/ha/incidents/{id}", ha::incident)
        .get("/settings/email", email::show)
        .put("/settings/email", email::update)
        .post("/settings/email/test", email::test)
        .get("/settings/email/outbox", email::outbox)
}

/// The whole application: API, agent endpoint, probes, and (when given) the console's static files
/// with index.html for every other path, so the console's deep links load.
pub fn router(state: AppState, web_dir: Option<&Path>) -> Router {
    let api = api_routes()
        .router
        .fallback(api_not_found)
        .layer(middleware::from_fn(require_csrf_header))
        // Outermost, so refused mutations (CSRF, permissions, validation) are recorded too.
        .layer(middleware::from_fn_with_state(state.clone(), audit::record));
    let mut router = Router::new()
        .nest("/api/v1", api)
        .route(api::agent::CONNECT_PATH, routing::get(agent::connect))
        .route("/healthz", routing::get(health::healthz))
        .route("/readyz", routing::get(health::readyz));
    if let Some(dir) = web_dir {
        let index = dir.join("index.html");
        // `no-cache`: the browser may keep the files but must revalidate them (Last-Modified, 304).
        // The console's wasm and JS under /pkg/ have fixed names, so without this an upgraded server
        // could meet a stale main module that no longer fits its freshly loaded route modules.
        let files = ServeDir::new(dir).fallback(ServeFile::new(index));
        router = router.fallback_service(SetResponseHeader::overriding(
            files,
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        ));
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
