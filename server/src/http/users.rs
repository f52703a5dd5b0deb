//! Account management routes (pool admins only).

use super::extract::{ApiJson, ApiPath, Auth};
use crate::app::permission::AdministerPool;
use crate::app::{AppError, users};
use crate::state::AppState;
use api::UserId;
use api::v1::{CreateUserRequest, ResetPasswordRequest, UpdateUserRequest, User};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

pub async fn list(_: Auth<AdministerPool>, State(state): State<AppState>) -> Result<Json<Vec<User>>, AppError> {
    Ok(Json(users::list(&state.db).await?))
}

pub async fn create(
    _: Auth<AdministerPool>,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateUserRequest>,
) -> Result<(StatusCode, Json<User>), AppError> {
    Ok((StatusCode::CREATED, Json(users::create(&state.db, request).await?)))
}

pub async fn update(
    auth: Auth<AdministerPool>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(request): ApiJson<UpdateUserRequest>,
) -> Result<Json<User>, AppError> {
    Ok(Json(users::update(&state.db, &auth.user, id, request).await?))
}

pub async fn reset_password(
    _: Auth<AdministerPool>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(request): ApiJson<ResetPasswordRequest>,
) -> Result<StatusCode, AppError> {
    users::reset_password(&state.db, id, request.new_password).await?;
    Ok(StatusCode::NO_CONTENT)
}
