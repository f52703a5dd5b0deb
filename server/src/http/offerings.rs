//! Compute offering routes: anyone signed in lists them; pool operators and up change them.

use super::extract::{ApiJson, ApiPath, Auth};
use crate::app::permission::ManagePool;
use crate::app::{AppError, offerings};
use crate::state::AppState;
use api::OfferingId;
use api::v1::{ComputeOffering, CreateOfferingRequest, UpdateOfferingRequest};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

pub async fn create(
    _: Auth<ManagePool>,
    State(state): State<AppState>,
    ApiJson(request): ApiJson<CreateOfferingRequest>,
) -> Result<(StatusCode, Json<ComputeOffering>), AppError> {
    Ok((StatusCode::CREATED, Json(offerings::create(&state.db, request).await?)))
}

pub async fn update(
    _: Auth<ManagePool>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<OfferingId>,
    ApiJson(request): ApiJson<UpdateOfferingRequest>,
) -> Result<Json<ComputeOffering>, AppError> {
    Ok(Json(offerings::update(&state.db, id, request).await?))
}

pub async fn delete(
    _: Auth<ManagePool>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<OfferingId>,
) -> Result<StatusCode, AppError> {
    offerings::delete(&state.db, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
