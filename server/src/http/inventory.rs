//! Read routes of the inventory: zones, clusters, hosts, VMs, primary storage, compute offerings.

use super::extract::{ApiPath, Auth};
use crate::app::AppError;
use crate::app::permission::ViewInventory;
use crate::state::AppState;
use api::v1::*;
use api::{HostId, VmId};
use axum::Json;
use axum::extract::State;

type ApiResult<T> = Result<Json<T>, AppError>;

pub async fn inventory(_: Auth<ViewInventory>, State(state): State<AppState>) -> ApiResult<Inventory> {
    Ok(Json(state.db.inventory().await?))
}

pub async fn zones(_: Auth<ViewInventory>, State(state): State<AppState>) -> ApiResult<Vec<Zone>> {
    Ok(Json(state.db.zone_list().await?))
}

pub async fn clusters(_: Auth<ViewInventory>, State(state): State<AppState>) -> ApiResult<Vec<Cluster>> {
    Ok(Json(state.db.cluster_list().await?))
}

pub async fn hosts(_: Auth<ViewInventory>, State(state): State<AppState>) -> ApiResult<Vec<Host>> {
    Ok(Json(state.db.host_list().await?))
}

pub async fn host(
    _: Auth<ViewInventory>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<HostId>,
) -> ApiResult<Host> {
    let host = state.db.host_fetch(id).await?;
    Ok(Json(host.ok_or_else(|| AppError::NotFound(format!("no host with id {id}")))?))
}

pub async fn vms(_: Auth<ViewInventory>, State(state): State<AppState>) -> ApiResult<Vec<Vm>> {
    Ok(Json(state.db.vm_list().await?))
}

pub async fn vm(_: Auth<ViewInventory>, State(state): State<AppState>, ApiPath(id): ApiPath<VmId>) -> ApiResult<Vm> {
    let vm = state.db.vm_fetch(id).await?;
    Ok(Json(vm.ok_or_else(|| AppError::NotFound(format!("no VM with id {id}")))?))
}

pub async fn storage_pools(_: Auth<ViewInventory>, State(state): State<AppState>) -> ApiResult<Vec<StoragePool>> {
    Ok(Json(state.db.storage_pool_list().await?))
}

pub async fn offerings(_: Auth<ViewInventory>, State(state): State<AppState>) -> ApiResult<Vec<ComputeOffering>> {
    Ok(Json(state.db.offering_list().await?))
}

pub async fn templates(_: Auth<ViewInventory>, State(state): State<AppState>) -> ApiResult<Vec<Template>> {
    Ok(Json(state.db.template_list().await?))
}
