//! Sign in, sign out, refresh the session, who am I, and one's own password and console language.

use super::audit::AuditActor;
use super::extract::{ApiJson, Auth, ClientAddress, current_user};
use crate::app::AppError;
use crate::app::auth::authenticate;
use crate::app::permission::ViewInventory;
use crate::db::UserRecord;
use crate::state::AppState;
use api::v1::{ChangePasswordRequest, Language, LoginRequest, Me, SESSION_COOKIE, SetLanguageRequest};
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

fn me_answer(user: &UserRecord, session_expires_at: DateTime<Utc>, language: Option<Language>) -> Me {
    Me { id: user.id, username: user.username.clone(), role: user.role, session_expires_at, language }
}

async fn signed_in(state: &AppState, user: &UserRecord) -> Result<Response, AppError> {
    let (token, expires_at) = state.keys.issue(user, Utc::now())?;
    let cookie = session_cookie(state, &token, state.keys.ttl.num_seconds());
    let language = state.db.user_language(user.id).await?;
    Ok(([(SET_COOKIE, cookie)], Json(me_answer(user, expires_at, language))).into_response())
}

/// Sign in. The claimed username goes to the audit log whatever the outcome.
pub async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    ApiJson(request): ApiJson<LoginRequest>,
) -> Response {
    let claimed = request.username.trim().to_owned();
    let mut response = login_checked(&state, &address, request).await.unwrap_or_else(IntoResponse::into_response);
    response.extensions_mut().insert(AuditActor(claimed));
    response
}

async fn login_checked(state: &AppState, address: &str, request: LoginRequest) -> Result<Response, AppError> {
    if request.username.trim().is_empty() {
        return Err(AppError::bad_request("username-required", "username must not be empty"));
    }
    if request.password.is_empty() {
        return Err(AppError::bad_request("password-required", "password must not be empty"));
    }
    let username = request.username.trim();
    let now = std::time::Instant::now();
    state.login_throttle.check(username, address, now).map_err(AppError::TooManyRequests)?;
    let user = match authenticate(&state.db, username, &request.password).await {
        Ok(user) => user,
        Err(error) => {
            if matches!(error, AppError::Unauthorized(_)) {
                state.login_throttle.record_failure(username, address, now);
            }
            tracing::info!(username, client = address, "sign-in refused: {error}");
            return Err(error);
        }
    };
    state.login_throttle.record_success(username);
    tracing::info!(username = %user.username, "signed in");
    signed_in(state, &user).await
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
    signed_in(&state, &auth.user).await
}

/// Change one's own password; every session of the user ends, and this one gets a fresh token.
pub async fn change_password(
    State(state): State<AppState>,
    auth: Auth<ViewInventory>,
    ApiJson(request): ApiJson<ChangePasswordRequest>,
) -> Result<Response, AppError> {
    crate::app::users::change_own_password(&state.db, &auth.user, request.current_password, request.new_password)
        .await?;
    let user = state.db.user_fetch(auth.user.id).await?.ok_or_else(|| AppError::NotFound("user vanished".into()))?;
    tracing::info!(username = %user.username, "password changed");
    signed_in(&state, &user).await
}

pub async fn me(State(state): State<AppState>, auth: Auth<ViewInventory>) -> Result<Json<Me>, AppError> {
    let language = state.db.user_language(auth.user.id).await?;
    Ok(Json(me_answer(&auth.user, auth.session_expires_at, language)))
}

/// Remember one's own console language (every signed-in role may).
pub async fn set_language(
    State(state): State<AppState>,
    auth: Auth<ViewInventory>,
    ApiJson(request): ApiJson<SetLanguageRequest>,
) -> Result<StatusCode, AppError> {
    crate::app::users::set_own_language(&state.db, &auth.user, request.language).await?;
    Ok(StatusCode::NO_CONTENT)
}
