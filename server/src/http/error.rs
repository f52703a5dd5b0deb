//! `AppError` -> HTTP status + `api::v1::ApiError`, in one place. Internal detail goes to the log only.

use crate::app::AppError;
use crate::events::error_chain;
use api::v1::ApiError;
use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub fn api_error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, Json(ApiError { code: code.to_owned(), message: message.into() })).into_response()
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match &self {
            AppError::BadRequest { code, message } => api_error(StatusCode::BAD_REQUEST, code, message.clone()),
            AppError::Unauthorized(message) => api_error(StatusCode::UNAUTHORIZED, "unauthorized", message.clone()),
            AppError::Forbidden(message) => api_error(StatusCode::FORBIDDEN, "forbidden", message.clone()),
            AppError::NotFound(message) => api_error(StatusCode::NOT_FOUND, "not-found", message.clone()),
            AppError::Conflict(message) => api_error(StatusCode::CONFLICT, "conflict", message.clone()),
            AppError::CodedConflict { code, message } => api_error(StatusCode::CONFLICT, code, message.clone()),
            // Supersets of ApiError (code and message at the top level, figures beside them).
            AppError::WouldOvercommit(body) => (StatusCode::CONFLICT, Json(body.as_ref())).into_response(),
            AppError::LimitAboveCapacity(body) => (StatusCode::CONFLICT, Json(body.as_ref())).into_response(),
            AppError::TooManyRequests(message) => {
                api_error(StatusCode::TOO_MANY_REQUESTS, "too-many-requests", message.clone())
            }
            AppError::Unavailable(message) => {
                api_error(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message.clone())
            }
            AppError::BadGateway { code, message } => api_error(StatusCode::BAD_GATEWAY, code, message.clone()),
            AppError::Internal(_) => {
                tracing::error!(error = %error_chain(&self), "request failed");
                api_error(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
            }
        }
    }
}
