//! The capacity reconciler: re-reads every cluster from the database, computes its failover plan,
//! stores the capacity (shown on `Cluster::ha_plan`) and raises or clears the plan's alerts:
//!
//! * `pool-overcommitted` while capacity < failure limit (critical when there is no plan at all);
//! * `capacity-dropped` when the capacity falls (cleared when it rises again);
//! * `no-ha-tag-host` while the `ha.tag` setting is set and no host of the cluster carries it.
//!
//! A reconciler in Oxide's sense: idempotent, no input but the database, run after every inventory
//! change (`EventBus::inventory_changed`), every [`PERIOD`] (changes made by other servers), and once
//! after start. Storing the capacity is a compare-and-set, so among several servers exactly one sees
//! each drop. The alert decisions themselves are the pure [`alert_actions`].

use crate::app::AppError;
use crate::app::alerts::{self, NewAlert};
use crate::db::{StoredCapacity, StoredPlan};
use crate::events::error_chain;
use crate::ha::plan::DEFAULT_SEARCH_BUDGET;
use crate::ha::pool::ClusterSnapshot;
use crate::state::AppState;
use api::v1::{AgentConnection, AlertSeverity, Event, PlanReport, alert_kind};
use std::time::Duration;

/// Re-evaluation without any change, for changes made through other servers.
pub const PERIOD: Duration = Duration::from_secs(30);
/// Changes arriving within this window are evaluated together.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// What to do about one alert condition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AlertAction {
    Raise(NewAlert),
    Clear(String),
}

fn capacity_text(capacity: Option<u32>) -> String {
    capacity.map_or_else(|| "no plan".to_owned(), |capacity| capacity.to_string())
}

/// Pure: the alert actions for one cluster, given its plan now and, when this evaluation stored a
/// new capacity, the plan stored before (`None`: another server stored it first, or nothing changed,
/// so drops are not judged here). A capacity that only counts live hosts because nothing is
/// protected (`trivial`) neither drops nor is dropped from: the first protected VM is no loss.
pub fn alert_actions(
    snapshot: &ClusterSnapshot,
    previous: Option<&StoredPlan>,
    report: &PlanReport,
) -> Vec<AlertAction> {
    let cluster = &snapshot.cluster;
    let overcommitted_key = alerts::dedupe_key(alert_kind::POOL_OVERCOMMITTED, cluster.id);
    let dropped_key = alerts::dedupe_key(alert_kind::CAPACITY_DROPPED, cluster.id);
    let tag_key = alerts::dedupe_key(alert_kind::NO_HA_TAG_HOST, cluster.id);
    if snapshot.hosts.is_empty() {
        // Nothing to plan for: no condition holds.
        return vec![AlertAction::Clear(overcommitted_key), AlertAction::Clear(tag_key)];
    }
    let mut actions = Vec::new();
    if report.overcommitted {
        let (severity, message) = match (report.max_failure_capacity, &report.reason) {
            (Some(capacity), _) => (
                AlertSeverity::Warning,
                format!(
                    "cluster {} is overcommitted: it can survive {capacity} host failure(s), its host failure limit is {}",
                    cluster.name, report.failure_limit
                ),
            ),
            (None, reason) => (
                AlertSeverity::Critical,
                format!(
                    "cluster {} has no failover plan: {}",
                    cluster.name,
                    reason.as_deref().unwrap_or("not every protected VM can run")
                ),
            ),
        };
        actions.push(AlertAction::Raise(NewAlert::for_cluster(
            alert_kind::POOL_OVERCOMMITTED,
            severity,
            cluster.id,
            message,
        )));
    } else {
        actions.push(AlertAction::Clear(overcommitted_key));
    }
    let trivial = |method: Option<&str>| method == Some("trivial");
    if let Some(StoredPlan { capacity: StoredCapacity::Evaluated(before), method }) = previous
        && !trivial(method.as_deref())
        && !trivial(Some(&report.method))
    {
        let before = *before;
        // None (no plan) ranks below every capacity.
        let rank = |capacity: Option<u32>| capacity.map_or(-1, i64::from);
        let now = report.max_failure_capacity;
        if rank(now) < rank(before) {
            let severity = if report.overcommitted { AlertSeverity::Warning } else { AlertSeverity::Info };
            let message = format!(
                "failover capacity of cluster {} dropped from {} to {} host failure(s) (host failure limit {})",
                cluster.name,
                capacity_text(before),
                capacity_text(now),
                report.failure_limit
            );
            actions.push(AlertAction::Raise(NewAlert::for_cluster(
                alert_kind::CAPACITY_DROPPED,
                severity,
                cluster.id,
                message,
            )));
        } else if rank(now) > rank(before) {
            actions.push(AlertAction::Clear(dropped_key));
        }
    }
    match &snapshot.ha_tag {
        Some(tag) if !snapshot.hosts.iter().any(|host| host.tags.contains(tag)) => {
            let message = format!(
                "ha.tag is {tag:?} but no host of cluster {} carries it: HA restarts there have no dedicated host",
                cluster.name
            );
            actions.push(AlertAction::Raise(NewAlert::for_cluster(
                alert_kind::NO_HA_TAG_HOST,
                AlertSeverity::Warning,
                cluster.id,
                message,
            )));
        }
        _ => actions.push(AlertAction::Clear(tag_key)),
    }
    actions
}

/// One pass over every cluster. Errors of one cluster are logged and do not stop the others.
pub async fn evaluate_all(state: &AppState) -> Result<(), AppError> {
    let snapshots = ClusterSnapshot::load_all(&state.db).await?;
    let mut changed = false;
    for snapshot in snapshots {
        match evaluate(state, snapshot).await {
            Ok(summary_changed) => changed |= summary_changed,
            Err(error) => tracing::warn!(error = %error_chain(&error), "cannot evaluate a cluster's failover plan"),
        }
    }
    if changed {
        // Clusters carry the plan summary: consoles reload. Not an inventory change itself.
        state.events.announce(Event::InventoryChanged);
    }
    Ok(())
}

/// Evaluate one cluster; answers whether its stored capacity changed.
async fn evaluate(state: &AppState, snapshot: ClusterSnapshot) -> Result<bool, AppError> {
    let id = snapshot.cluster.id;
    let previous = state
        .db
        .cluster_stored_plan(id)
        .await?
        .unwrap_or(StoredPlan { capacity: StoredCapacity::Unknown, method: None });
    let (snapshot, report) = tokio::task::spawn_blocking(move || {
        let report = snapshot.report(DEFAULT_SEARCH_BUDGET);
        (snapshot, report)
    })
    .await
    .map_err(AppError::internal)?;
    let report = report.map_err(AppError::internal)?;
    let stored =
        state.db.cluster_record_plan(id, previous.capacity, report.max_failure_capacity, &report.method).await?;
    let changed_hands = stored && previous.capacity != StoredCapacity::Evaluated(report.max_failure_capacity);
    for action in alert_actions(&snapshot, changed_hands.then_some(&previous), &report) {
        match action {
            AlertAction::Raise(alert) => {
                alerts::raise(state, alert).await?;
            }
            AlertAction::Clear(key) => {
                alerts::clear(state, &key).await?;
            }
        }
    }
    Ok(changed_hands)
}

/// Run until the server shuts down: evaluate after agents had a chance to reconnect, then after
/// every inventory change (debounced) and every [`PERIOD`].
pub async fn run(state: AppState) {
    let mut shutting_down = state.shutting_down.clone();
    let stopping = async move {
        let _ = shutting_down.wait_for(|stopping| *stopping).await;
    };
    tokio::pin!(stopping);
    tokio::select! {
        () = wait_for_agents(&state) => {}
        () = &mut stopping => return,
    }
    loop {
        if let Err(error) = evaluate_all(&state).await {
            tracing::warn!(error = %error_chain(&error), "capacity evaluation failed");
        }
        tokio::select! {
            () = state.events.inventory_changed() => tokio::time::sleep(DEBOUNCE).await,
            () = tokio::time::sleep(PERIOD) => {}
            () = &mut stopping => return,
        }
    }
}

/// After a start every host looks disconnected until its agent reconnects; judging the plan then
/// would raise alerts for hosts that are merely late. Wait until every known host is connected, or
/// at most the agent silence timeout (hosts that are really down count as down after that).
async fn wait_for_agents(state: &AppState) {
    let deadline = tokio::time::Instant::now() + state.settings.agent_silence_timeout;
    loop {
        let all_connected = match state.db.host_list().await {
            Ok(hosts) => hosts.iter().all(|host| host.connection == AgentConnection::Connected),
            Err(_) => false,
        };
        if all_connected || tokio::time::Instant::now() >= deadline {
            return;
        }
        tokio::select! {
            () = state.events.inventory_changed() => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::v1::{Cluster, HostAllocation, HypervisorKind, Resources};
    use api::{ClusterId, HostId, ZoneId};

    fn snapshot(hosts: usize, ha_tag: Option<&str>, tagged: bool) -> ClusterSnapshot {
        let cluster = Cluster {
            id: ClusterId::new_random(),
            zone_id: ZoneId::new_random(),
            name: "c1".into(),
            ha_enabled: false,
            oobm_enabled: false,
            ha_failure_limit: 1,
            ha_plan: None,
        };
        let hosts = (0..hosts)
            .map(|index| api::v1::Host {
                id: HostId::new_random(),
                zone_id: cluster.zone_id,
                cluster_id: cluster.id,
                name: format!("h{index}"),
                address: "127.0.1.1".into(),
                hypervisor: HypervisorKind::Sim,
                allocation: HostAllocation::Enabled,
                connection: AgentConnection::Connected,
                last_heartbeat_at: None,
                capacity: Resources { cpu_cores: 4, cpu_mhz: 8000, memory_mb: 8192 },
                allocated: Resources { cpu_cores: 0, cpu_mhz: 0, memory_mb: 0 },
                tags: if tagged && index == 0 { vec!["ha_host".into()] } else { vec![] },
                storage_pool_ids: vec![],
                vm_count: 0,
                running_vm_count: 0,
                maintenance: None,
                oobm_enabled_effective: false,
                power_state: api::v1::PowerState::Disabled,
            })
            .collect();
        ClusterSnapshot {
            cluster,
            hosts,
            vms: vec![],
            shared_storage: Default::default(),
            ha_tag: ha_tag.map(Into::into),
        }
    }

    fn report(capacity: Option<u32>, limit: u32) -> PlanReport {
        PlanReport {
            max_failure_capacity: capacity,
            failure_limit: limit,
            plan_exists_for: capacity.map_or(0, |capacity| capacity.min(limit)),
            overcommitted: capacity.is_none_or(|capacity| capacity < limit),
            method: "exact".into(),
            unprotectable: vec![],
            reason: capacity.is_none().then(|| "protected VM \"x\" cannot run anywhere".into()),
        }
    }

    /// The actions as (raise or clear, kind, severity) for comparison.
    fn summary(actions: &[AlertAction]) -> Vec<(&'static str, String, Option<AlertSeverity>)> {
        actions
            .iter()
            .map(|action| match action {
                AlertAction::Raise(alert) => ("raise", alert.kind.clone(), Some(alert.severity)),
                AlertAction::Clear(key) => ("clear", key.split(':').next().unwrap_or_default().to_owned(), None),
            })
            .collect()
    }

    fn check(
        snapshot: &ClusterSnapshot,
        previous: Option<StoredCapacity>,
        report: PlanReport,
        expected: &[(&'static str, &str, Option<AlertSeverity>)],
    ) {
        let previous = previous.map(|capacity| StoredPlan { capacity, method: Some("exact".into()) });
        let actions = alert_actions(snapshot, previous.as_ref(), &report);
        let expected: Vec<_> =
            expected.iter().map(|(verb, kind, severity)| (*verb, kind.to_string(), *severity)).collect();
        assert_eq!(summary(&actions), expected, "previous {previous:?}, report {report:?}");
    }

    #[test]
    fn overcommit_drops_and_the_ha_tag_raise_and_clear_their_alerts() {
        use AlertSeverity::*;
        let plain = snapshot(2, None, false);
        let evaluated = |capacity| Some(StoredCapacity::Evaluated(capacity));
        check(
            &plain,
            None,
            report(Some(1), 1),
            &[("clear", "pool-overcommitted", None), ("clear", "no-ha-tag-host", None)],
        );
        check(
            &plain,
            evaluated(Some(1)),
            report(Some(0), 1),
            &[
                ("raise", "pool-overcommitted", Some(Warning)),
                ("raise", "capacity-dropped", Some(Warning)),
                ("clear", "no-ha-tag-host", None),
            ],
        );
        check(
            &plain,
            evaluated(Some(3)),
            report(Some(2), 1),
            &[
                ("clear", "pool-overcommitted", None),
                ("raise", "capacity-dropped", Some(Info)),
                ("clear", "no-ha-tag-host", None),
            ],
        );
        check(
            &plain,
            evaluated(Some(0)),
            report(None, 1),
            &[
                ("raise", "pool-overcommitted", Some(Critical)),
                ("raise", "capacity-dropped", Some(Warning)),
                ("clear", "no-ha-tag-host", None),
            ],
        );
        check(
            &plain,
            evaluated(None),
            report(Some(1), 1),
            &[
                ("clear", "pool-overcommitted", None),
                ("clear", "capacity-dropped", None),
                ("clear", "no-ha-tag-host", None),
            ],
        );
        // The first evaluation has nothing to compare with.
        check(
            &plain,
            Some(StoredCapacity::Unknown),
            report(Some(0), 1),
            &[("raise", "pool-overcommitted", Some(Warning)), ("clear", "no-ha-tag-host", None)],
        );

        let untagged = snapshot(2, Some("ha_host"), false);
        check(
            &untagged,
            None,
            report(Some(1), 1),
            &[("clear", "pool-overcommitted", None), ("raise", "no-ha-tag-host", Some(Warning))],
        );
        let tagged = snapshot(2, Some("ha_host"), true);
        check(
            &tagged,
            None,
            report(Some(1), 1),
            &[("clear", "pool-overcommitted", None), ("clear", "no-ha-tag-host", None)],
        );

        // From or to "nothing protected" is no drop.
        let trivial = StoredPlan { capacity: StoredCapacity::Evaluated(Some(2)), method: Some("trivial".into()) };
        let actions = alert_actions(&plain, Some(&trivial), &report(Some(1), 1));
        assert!(summary(&actions).iter().all(|(_, kind, _)| kind != "capacity-dropped"), "{actions:?}");
        let mut nothing_protected = report(Some(1), 1);
        nothing_protected.method = "trivial".into();
        let exact = StoredPlan { capacity: StoredCapacity::Evaluated(Some(2)), method: Some("exact".into()) };
        let actions = alert_actions(&plain, Some(&exact), &nothing_protected);
        assert!(summary(&actions).iter().all(|(_, kind, _)| kind != "capacity-dropped"), "{actions:?}");

        let empty = snapshot(0, Some("ha_host"), false);
        check(
            &empty,
            evaluated(Some(2)),
            report(Some(0), 1),
            &[("clear", "pool-overcommitted", None), ("clear", "no-ha-tag-host", None)],
        );
    }
}
