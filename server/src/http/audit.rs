//! Every mutating API call goes to the audit log: who, what (method and route), on what (the concrete
//! path and query), how it ended (status), from where, and what a handler noted about its decision
//! (`AuditNote`, e.g. proceeding past an overcommit warning). Request bodies are never stored: they
//! may hold passwords.

use super::extract::Auth;
use super::extract::{client_address, current_user};
use crate::app::AppError;
use crate::app::admission::AuditNote;
use crate::app::permission::ReadAudit;
use crate::db::NewAuditEntry;
use crate::events::error_chain;
use crate::state::AppState;
use api::v1::{AuditEntry, AuditQuery};
use axum::Json;
use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

/// Set by a handler whose caller is not signed in but claims a name (sign-in).
#[derive(Clone)]
pub struct AuditActor(pub String);

pub async fn record(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if matches!(*request.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return next.run(request).await;
    }
    let route = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned());
    let action = format!("{} {}", request.method(), route.as_deref().unwrap_or("(no such route)"));
    // With the query string: it carries decisions such as `?overcommit=proceed` (never secrets).
    let target =
        request.uri().path_and_query().map_or_else(|| request.uri().path(), |target| target.as_str()).to_owned();
    let note = AuditNote::default();
    let (mut parts, body) = request.into_parts();
    parts.extensions.insert(note.clone());
    let signed_in = current_user(&parts, &state).await.ok().map(|(user, _)| user.username);
    let client = client_address(&parts);
    let response = next.run(Request::from_parts(parts, body)).await;
    let actor = response
        .extensions()
        .get::<AuditActor>()
        .map(|actor| actor.0.clone())
        .or(signed_in)
        .unwrap_or_else(|| "-".to_owned());
    let detail = note.take();
    let entry = NewAuditEntry {
        actor: &actor,
        action: &action,
        target: &target,
        status: response.status().as_u16(),
        client: &client,
        detail: detail.as_deref(),
    };
    if let Err(error) = state.db.audit_insert(entry).await {
        tracing::error!(error = %error_chain(&error), %action, %target, "cannot write the audit log");
    }
    response
}

pub async fn list(
    _: Auth<ReadAudit>,
    State(state): State<AppState>,
    Query(query): Query<AuditQuery>,
) -> Result<Json<Vec<AuditEntry>>, AppError> {
    Ok(Json(state.db.audit_list(&query).await?))
}
