//! Out-of-band management routes: a host's BMC configuration (read by everyone signed in; the
//! password only as `password_set`), and, for pool admins and pool operators, configuring, testing,
//! power actions, the zone/cluster/host switches and BMC password changes. BMC failures answer 502
//! with `oobm-unreachable`, `oobm-auth`, `oobm-timeout`, `oobm-unsupported` or `oobm-protocol`.

use super::extract::{ApiJson, ApiPath, Auth};
use crate::app::admission::AuditNote;
use crate::app::permission::{ManageOobm, ViewInventory};
use crate::app::{AppError, oobm};
use crate::state::AppState;
use api::v1::{
    ChangeOobmPasswordRequest, Cluster, ConfigureOobmRequest, HostOobm, OobmTestResult, PowerActionRequest,
    PowerActionResult, SetOobmEnabledRequest, TestOobmRequest, Zone,
};
use api::{ClusterId, HostId, ZoneId};
use axum::Json;
use axum::body::Bytes;
use axum::extract::State;

/// `GET /hosts/{id}/oobm`.
pub async fn show(
    _: Auth<ViewInventory>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<HostId>,
) -> Result<Json<HostOobm>, AppError> {
    Ok(Json(oobm::show(&state, id).await?))
}

/// `PUT /hosts/{id}/oobm`.
pub async fn configure(
    _: Auth<ManageOobm>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<HostId>,
    ApiJson(request): ApiJson<ConfigureOobmRequest>,
) -> Result<Json<HostOobm>, AppError> {
    Ok(Json(oobm::configure(&state, id, request).await?))
}

/// `POST /hosts/{id}/oobm/test`: the body is optional (empty: the stored configuration).
pub async fn test(
    _: Auth<ManageOobm>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<HostId>,
    body: Bytes,
) -> Result<Json<OobmTestResult>, AppError> {
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        TestOobmRequest::default()
    } else {
        // serde's message names the field, never its value.
        serde_json::from_slice(&body).map_err(|error| AppError::bad_request("invalid-body", error.to_string()))?
    };
    Ok(Json(oobm::test(&state, id, request).await?))
}

/// `POST /hosts/{id}/oobm/power`.
pub async fn power(
    _: Auth<ManageOobm>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<HostId>,
    note: AuditNote,
    ApiJson(request): ApiJson<PowerActionRequest>,
) -> Result<Json<PowerActionResult>, AppError> {
    Ok(Json(oobm::power(&state, id, request.action, &note).await?))
}

/// `PUT /hosts/{id}/oobm/enabled`.
pub async fn set_host_enabled(
    _: Auth<ManageOobm>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<HostId>,
    ApiJson(request): ApiJson<SetOobmEnabledRequest>,
) -> Result<Json<HostOobm>, AppError> {
    Ok(Json(oobm::set_host_enabled(&state, id, request.enabled).await?))
}

/// `PUT /zones/{id}/oobm/enabled`.
pub async fn set_zone_enabled(
    _: Auth<ManageOobm>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ZoneId>,
    ApiJson(request): ApiJson<SetOobmEnabledRequest>,
) -> Result<Json<Zone>, AppError> {
    Ok(Json(oobm::set_zone_enabled(&state, id, request.enabled).await?))
}

/// `PUT /clusters/{id}/oobm/enabled`.
pub async fn set_cluster_enabled(
    _: Auth<ManageOobm>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<ClusterId>,
    ApiJson(request): ApiJson<SetOobmEnabledRequest>,
) -> Result<Json<Cluster>, AppError> {
    Ok(Json(oobm::set_cluster_enabled(&state, id, request.enabled).await?))
}

/// `POST /hosts/{id}/oobm/password`.
pub async fn change_password(
    _: Auth<ManageOobm>,
    State(state): State<AppState>,
    ApiPath(id): ApiPath<HostId>,
    ApiJson(request): ApiJson<ChangeOobmPasswordRequest>,
) -> Result<Json<HostOobm>, AppError> {
    Ok(Json(oobm::change_password(&state, id, request).await?))
}
