//! `POST /api/v1/ha/plan/simulate`: the failover planner on a pool the caller describes.

use super::extract::{ApiJson, Auth};
use crate::app::AppError;
use crate::app::permission::ViewInventory;
use crate::ha::plan::{DEFAULT_SEARCH_BUDGET, simulate_request};
use api::v1::{PlanSimulateRequest, PlanSimulateResponse};
use axum::Json;

pub async fn simulate(
    _: Auth<ViewInventory>,
    ApiJson(request): ApiJson<PlanSimulateRequest>,
) -> Result<Json<PlanSimulateResponse>, AppError> {
    if request.pool.hosts.len() > 5000 || request.pool.vms.len() > 100_000 {
        return Err(AppError::bad_request("pool-too-large", "pool: at most 5000 hosts and 100000 VMs"));
    }
    // The search is CPU-bound: keep it off the request threads.
    let response = tokio::task::spawn_blocking(move || simulate_request(&request, DEFAULT_SEARCH_BUDGET))
        .await
        .map_err(AppError::internal)?
        .map_err(|error| AppError::bad_request("invalid-pool", error.to_string()))?;
    Ok(Json(response))
}
