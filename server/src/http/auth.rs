//! Sign in, sign out, refresh the session, and who am I.

use super::extract::{ApiJson, Auth, current_user};
use crate::app::AppError;
use crate::app::auth::authenticate;
use crate::app::permission::ViewInventory;
use crate::db::UserRecord;
use crate::state::AppState;
use api::v1::{LoginRequest, Me, SESSION_COOKIE};
use axum::Json;
use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

fn session_cookie(state: &AppState, token: &str, max_age_seconds: i64) -> HeaderValue {
    let secure = if state.settings.secure_cookies { "; Secure" } else { "" };
    let value =
        format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_seconds}{secure}");
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn me_answer(user: &UserRecord, session_expires_at: DateTime<Utc>) -> Me {
    Me { id: user.id, username: user.username.clone(), role: user.role, session_expires_at }
}

fn signed_in(state: &AppState, user: &UserRecord) -> Result<Response, AppError> {
    let (token, expires_at) = state.keys.issue(user, Utc::now())?;
    let cookie = session_cookie(state, &token, state.keys.ttl.num_seconds());
    Ok(([(SET_COOKIE, cookie)], Json(me_answer(user, expires_at))).into_response())
}

pub async fn login(
    State(state): State<AppState>,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Result<Response, AppError> {
    if request.username.trim().is_empty() {
        return Err(AppError::bad_request("username-required", "username must not be empty"));
    }
    if request.password.is_empty() {
        return Err(AppError::bad_request("password-required", "password must not be empty"));
    }
    let user = match authenticate(&state.db, request.username.trim(), &request.password).await {
        Ok(user) => user,
        Err(error) => {
            tracing::info!(username = %request.username.trim(), "sign-in refused: {error}");
            return Err(error);
        }
    };
    tracing::info!(username = %user.username, "signed in");
    signed_in(&state, &user)
}

/// Revokes the user's tokens (all of them: the token version moves on) and clears the cookie. Works
/// without a valid session too, so a stale console can always sign out.
pub async fn logout(State(state): State<AppState>, parts: Parts) -> Result<Response, AppError> {
    if let Ok((user, _)) = current_user(&parts, &state).await {
        state.db.user_bump_token_version(user.id).await?;
        tracing::info!(username = %user.username, "signed out");
    }
    Ok((StatusCode::NO_CONTENT, [(SET_COOKIE, session_cookie(&state, "", 0))]).into_response())
}

pub async fn refresh(State(state): State<AppState>, auth: Auth<ViewInventory>) -> Result<Response, AppError> {
    signed_in(&state, &auth.user)
}

pub async fn me(auth: Auth<ViewInventory>) -> Json<Me> {
    Json(me_answer(&auth.user, auth.session_expires_at))
}
