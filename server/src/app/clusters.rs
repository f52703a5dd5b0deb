//! A cluster's failover settings: its live plan, and the host failure limit (pool operators and up).

use super::AppError;
use super::admission::AuditNote;
use crate::ha::plan::DEFAULT_SEARCH_BUDGET;
use crate::ha::pool::ClusterSnapshot;
use crate::state::AppState;
use api::ClusterId;
use api::v1::{ClusterHaPlan, Event, LimitAboveCapacity, PlanReport, SetFailureLimitRequest};

/// The largest failure limit accepted: far more hosts than a cluster has is a typo, not a wish.
pub const MAX_FAILURE_LIMIT: u32 = 1000;

async fn snapshot(state: &AppState, id: ClusterId) -> Result<ClusterSnapshot, AppError> {
    ClusterSnapshot::load(&state.db, id).await?.ok_or_else(|| AppError::NotFound(format!("no cluster with id {id}")))
}

/// The planner on a snapshot, off the async threads (the search is CPU-bound).
async fn report(snapshot: ClusterSnapshot) -> Result<(ClusterSnapshot, PlanReport), AppError> {
    let (snapshot, report) = tokio::task::spawn_blocking(move || {
        let report = snapshot.report(DEFAULT_SEARCH_BUDGET);
        (snapshot, report)
    })
    .await
    .map_err(AppError::internal)?;
    Ok((snapshot, report.map_err(AppError::internal)?))
}

/// The cluster's failover plan computed now from the inventory, with the pool it was computed from.
pub async fn plan(state: &AppState, id: ClusterId) -> Result<ClusterHaPlan, AppError> {
    let (snapshot, report) = report(snapshot(state, id).await?).await?;
    Ok(ClusterHaPlan {
        cluster_id: snapshot.cluster.id,
        cluster_name: snapshot.cluster.name.clone(),
        failure_limit: snapshot.cluster.ha_failure_limit,
        ha_tag: snapshot.ha_tag.clone(),
        pool: snapshot.plan_pool(),
        report,
    })
}

/// Set the host failure limit. A limit above the current capacity makes the cluster overcommitted,
/// so it is refused (409 `limit-above-capacity`, naming the capacity) unless the caller confirms.
pub async fn set_failure_limit(
    state: &AppState,
    id: ClusterId,
    request: SetFailureLimitRequest,
    note: &AuditNote,
) -> Result<ClusterHaPlan, AppError> {
    if request.limit > MAX_FAILURE_LIMIT {
        return Err(AppError::bad_request("invalid-limit", format!("limit: must be 0 to {MAX_FAILURE_LIMIT}")));
    }
    // Decided with admission control's lock, so no admitted action slips between check and write.
    let serialized = state.admission_lock.clone().lock_owned().await;
    let mut current = snapshot(state, id).await?;
    let old_limit = current.cluster.ha_failure_limit;
    current.cluster.ha_failure_limit = request.limit;
    let (current, report) = report(current).await?;
    let name = current.cluster.name.clone();
    let capacity_text = report.max_failure_capacity.map_or_else(|| "none".to_owned(), |capacity| capacity.to_string());
    if report.overcommitted && !request.confirm_overcommit {
        note.set(format!(
            "refused: host failure limit {} of {name} is above its capacity ({capacity_text})",
            request.limit
        ));
        let capacity_words = match report.max_failure_capacity {
            Some(capacity) => format!("can survive {capacity} host failure(s)"),
            None => "has no failover plan (not every protected VM can run)".to_owned(),
        };
        return Err(AppError::LimitAboveCapacity(Box::new(LimitAboveCapacity {
            code: "limit-above-capacity".into(),
            message: format!(
                "limit: {} is above the capacity of cluster {name}, which {capacity_words}; the cluster would be \
                 overcommitted. Set confirm_overcommit to set it anyway.",
                request.limit
            ),
            cluster_id: id,
            limit: request.limit,
            capacity: report.max_failure_capacity,
        })));
    }
    state
        .db
        .cluster_set_failure_limit(id, request.limit)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no cluster with id {id}")))?;
    drop(serialized);
    note.set(format!(
        "host failure limit of {name}: {old_limit} -> {} (capacity {capacity_text}){}",
        request.limit,
        if report.overcommitted { "; overcommit confirmed" } else { "" }
    ));
    // Clusters carry the limit: consoles reload, and the capacity reconciler re-judges the alerts.
    state.events.publish(Event::InventoryChanged);
    Ok(ClusterHaPlan {
        cluster_id: id,
        cluster_name: name,
        failure_limit: request.limit,
        ha_tag: current.ha_tag.clone(),
        pool: current.plan_pool(),
        report,
    })
}
