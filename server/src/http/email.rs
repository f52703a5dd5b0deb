//! Email routes, all for pool admins only (SMTP is a global setting): the SMTP settings (the
//! password only as `password_set`), a test mail that answers what the SMTP server said (200 with
//! the outcome, whatever it was), and the outbox of alert mail.

use super::extract::{ApiJson, Auth};
use crate::app::permission::AdministerPool;
use crate::app::{AppError, email};
use crate::state::AppState;
use api::v1::{EmailSettings, OutboxMail, OutboxQuery, TestEmailRequest, TestEmailResult, UpdateEmailSettingsRequest};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};

/// `GET /settings/email`.
pub async fn show(_: Auth<AdministerPool>, State(state): State<AppState>) -> Result<Json<EmailSettings>, AppError> {
    Ok(Json(email::show(&state).await?))
}

/// `PUT /settings/email`.
pub async fn update(
    auth: Auth<AdministerPool>,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<UpdateEmailSettingsRequest>,
) -> Result<Json<EmailSettings>, AppError> {
    Ok(Json(email::update(&state, request, &auth.user.username).await?))
}

/// `POST /settings/email/test`: the body is optional (empty: the stored settings).
pub async fn test(
    auth: Auth<AdministerPool>,
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<TestEmailResult>, AppError> {
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        TestEmailRequest::default()
    } else {
        // serde's message names the field, never its value.
        serde_json::from_slice(&body).map_err(|error| AppError::bad_request("invalid-body", error.to_string()))?
    };
    Ok(Json(email::test(&state, request, &auth.user.username).await?))
}

/// `GET /settings/email/outbox?limit=N`: newest first.
pub async fn outbox(
    _: Auth<AdministerPool>,
    State(state): State<AppState>,
    query: Result<Query<OutboxQuery>, QueryRejection>,
) -> Result<Json<Vec<OutboxMail>>, AppError> {
    let Query(query) = query.map_err(|rejection| AppError::bad_request("invalid-query", rejection.body_text()))?;
    Ok(Json(email::outbox(&state, &query).await?))
}
