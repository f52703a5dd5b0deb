//! HA engine routes: the zone/cluster/host HA switches and cluster timing settings (pool admins and
//! pool operators), and for everyone signed in: a host's HA state with its transitions, a cluster's
//! settings, and the incident list and timelines.

use super::extract::{ApiJson, ApiPath, Auth};
use crate::app::permission::{ManageHa, ViewInventory};
use crate::app::{AppError, ha};
use crate::state::AppState;
use api::v1::{
    ClusterHaSettings, ClusterHaSwitched, HaIncident, HaIncidentDetail, HaIncidentQuery, HostHa, IncidentId,
    SetClusterHaRequest, SetHaEnabledRequest, UpdateHaTimingRequest, Zone,
};
use api::{ClusterId, HostId, ZoneId};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};

/// `PUT /zones/{id}/ha` `{enabled}`.
pub async fn set_zone(
    _: Auth<ManageHa>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ZoneId>,
    ApiJson(request): ApiJson<SetHaEnabledRequest>,
) -> Result<Json<Zone>, AppError> {
    Ok(Json(ha::set_zone_enabled(&state, id, request).await?))
}

/// `PUT /clusters/{id}/ha` `{enabled, include_hosts}`.
pub async fn set_cluster(
    _: Auth<ManageHa>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ClusterId>,
    ApiJson(request): ApiJson<SetClusterHaRequest>,
) -> Result<Json<ClusterHaSwitched>, AppError> {
    Ok(Json(ha::set_cluster_enabled(&state, id, request).await?))
}

/// `PUT /hosts/{id}/ha` `{enabled, provider?}`.
pub async fn set_host(
    _: Auth<ManageHa>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<HostId>,
    ApiJson(request): ApiJson<SetHaEnabledRequest>,
) -> Result<Json<HostHa>, AppError> {
    Ok(Json(ha::set_host_enabled(&state, id, request).await?))
}

/// `GET /hosts/{id}/ha`.
pub async fn host(
    _: Auth<ViewInventory>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<HostId>,
) -> Result<Json<HostHa>, AppError> {
    Ok(Json(ha::show_host(&state, id).await?))
}

/// `GET /clusters/{id}/ha/settings`.
pub async fn cluster_settings(
    _: Auth<ViewInventory>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ClusterId>,
) -> Result<Json<ClusterHaSettings>, AppError> {
    Ok(Json(ha::cluster_settings(&state, id).await?))
}

/// `PUT /clusters/{id}/ha/settings`: 400 `invalid-ha-timing` naming the field.
pub async fn update_cluster_settings(
    _: Auth<ManageHa>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ClusterId>,
    ApiJson(request): ApiJson<UpdateHaTimingRequest>,
) -> Result<Json<ClusterHaSettings>, AppError> {
    Ok(Json(ha::update_cluster_settings(&state, id, request).await?))
}

/// `GET /ha/incidents?host_id=&limit=`: newest first.
pub async fn incidents(
    _: Auth<ViewInventory>,
    State(state): State<AppState>,
    query: Result<Query<HaIncidentQuery>, QueryRejection>,
) -> Result<Json<Vec<HaIncident>>, AppError> {
    let Query(query) = query.map_err(|rejection| AppError::bad_request("invalid-query", rejection.body_text()))?;
    Ok(Json(ha::incidents(&state, &query).await?))
}

/// `GET /ha/incidents/{id}`: the incident and its timeline.
pub async fn incident(
    _: Auth<ViewInventory>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<IncidentId>,
) -> Result<Json<HaIncidentDetail>, AppError> {
    Ok(Json(ha::incident(&state, id).await?))
}
