//! Alerts: the one way any part of the server (capacity reconciler now; HA engine, OOBM and email
//! later) tells operators something needs their attention. [`raise`] stores an alert, deduplicated
//! by its condition's key, and tells open consoles; [`clear`] records that a condition ended.
//!
//! Lifecycle: an alert is *open* until someone acknowledges it. While its condition holds it is
//! *uncleared*, and raising the same condition again updates it (re-opening it when the message or
//! severity changed) instead of adding another. Once cleared, the next occurrence is a new alert.

use super::AppError;
use crate::db::{AcknowledgeRefusal, Raised};
use crate::state::AppState;
use api::v1::{Alert, AlertId, AlertQuery, AlertSeverity, Event};
use api::{ClusterId, HostId, VmId};

pub use crate::db::NewAlert;

/// The dedupe key of condition `kind` about `subject` (a cluster, host or VM id, or `global`).
pub fn dedupe_key(kind: &str, subject: impl std::fmt::Display) -> String {
    format!("{kind}:{subject}")
}

impl NewAlert {
    /// An alert about a cluster, deduplicated per (kind, cluster).
    pub fn for_cluster(kind: &str, severity: AlertSeverity, cluster: ClusterId, message: String) -> NewAlert {
        NewAlert {
            kind: kind.to_owned(),
            severity,
            cluster_id: Some(cluster),
            host_id: None,
            vm_id: None,
            message,
            dedupe_key: dedupe_key(kind, cluster),
        }
    }

    /// An alert about a host (of `cluster`), deduplicated per (kind, host).
    pub fn for_host(
        kind: &str,
        severity: AlertSeverity,
        cluster: ClusterId,
        host: HostId,
        message: String,
    ) -> NewAlert {
        NewAlert {
            host_id: Some(host),
            dedupe_key: dedupe_key(kind, host),
            ..Self::for_cluster(kind, severity, cluster, message)
        }
    }

    /// An alert about a VM, deduplicated per (kind, VM).
    pub fn for_vm(
        kind: &str,
        severity: AlertSeverity,
        cluster: Option<ClusterId>,
        vm: VmId,
        message: String,
    ) -> NewAlert {
        NewAlert {
            kind: kind.to_owned(),
            severity,
            cluster_id: cluster,
            host_id: None,
            vm_id: Some(vm),
            message,
            dedupe_key: dedupe_key(kind, vm),
        }
    }
}

/// Raise an alert: stored (or its condition's uncleared alert updated), logged, and announced to
/// open consoles (`Event::InventoryChanged`, on which they reload). Answers what happened, so a
/// mailer sends one mail per new or changed alert and none for a repeat.
pub async fn raise(state: &AppState, alert: NewAlert) -> Result<Raised, AppError> {
    let raised = state.db.alert_raise(&alert).await?;
    // A new alert's mail is queued (once per alert: the outbox is keyed by alert id).
    super::email::alert_raised(state, &raised).await;
    match &raised {
        Raised::New(stored) | Raised::Updated(stored) => {
            tracing::warn!(kind = %stored.kind, severity = stored.severity.as_str(), "alert: {}", stored.message);
            state.events.announce(Event::InventoryChanged);
        }
        Raised::Unchanged(_) => {}
    }
    Ok(raised)
}

/// The condition behind `dedupe_key` ended; answers whether an uncleared alert was cleared.
pub async fn clear(state: &AppState, dedupe_key: &str) -> Result<bool, AppError> {
    let cleared = state.db.alert_clear(dedupe_key).await?;
    if cleared {
        tracing::info!(key = dedupe_key, "alert condition cleared");
        state.events.announce(Event::InventoryChanged);
    }
    Ok(cleared)
}

pub async fn list(state: &AppState, query: &AlertQuery) -> Result<Vec<Alert>, AppError> {
    if query.limit.is_some_and(|limit| !(1..=1000).contains(&limit)) {
        return Err(AppError::bad_request("invalid-limit", "limit: must be 1 to 1000"));
    }
    Ok(state.db.alert_list(query.status, query.limit.unwrap_or(200)).await?)
}

/// Acknowledge an open alert as `username`; 404 when there is none, 409 when it already was.
pub async fn acknowledge(state: &AppState, id: AlertId, username: &str) -> Result<Alert, AppError> {
    match state.db.alert_acknowledge(id, username).await? {
        Ok(alert) => {
            state.events.announce(Event::InventoryChanged);
            Ok(alert)
        }
        Err(AcknowledgeRefusal::NotFound) => Err(AppError::NotFound(format!("no alert with id {id}"))),
        Err(AcknowledgeRefusal::Already { by, at }) => Err(AppError::conflict(
            "already-acknowledged",
            format!("the alert was already acknowledged by {by} at {}", at.to_rfc3339()),
        )),
    }
}
