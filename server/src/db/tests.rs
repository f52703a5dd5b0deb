//! The database layer against both backends: every test runs on a fresh SQLite file and a fresh
//! PostgreSQL database.

use super::testdb::{on_each_backend, registration};
use super::*;
use api::ClusterId;
use api::v1::*;

#[tokio::test]
async fn users_are_unique_and_token_versions_move_on() {
    on_each_backend(|db| async move {
        assert_eq!(db.user_count().await.unwrap(), 0);
        let user = db.user_insert("alice", "hash", Role::VmOperator).await.unwrap();
        assert!(matches!(db.user_insert("alice", "other", Role::ReadOnly).await, Err(DbError::Conflict(_))));
        let fetched = db.user_fetch_by_name("alice").await.unwrap().unwrap();
        assert_eq!(
            (fetched.id, fetched.role, fetched.disabled, fetched.token_version),
            (user.id, Role::VmOperator, false, 0)
        );
        db.user_bump_token_version(user.id).await.unwrap();
        assert_eq!(db.user_fetch(user.id).await.unwrap().unwrap().token_version, 1);
        assert!(db.user_fetch_by_name("bob").await.unwrap().is_none());
    })
    .await;
}

#[tokio::test]
async fn hosts_register_once_by_name_and_map_their_storage() {
    on_each_backend(|db| async move {
        let zone = db.zone_insert("z", "tokenhash").await.unwrap();
        assert_eq!(db.zone_fetch_by_token_hash("tokenhash").await.unwrap().unwrap().zone.id, zone.id);
        assert!(db.zone_fetch_by_token_hash("other").await.unwrap().is_none());
        let cluster = db.cluster_insert(zone.id, "c1").await.unwrap();
        assert!(matches!(db.cluster_insert(zone.id, "c1").await, Err(DbError::Conflict(_))));
        let pool = db
            .storage_pool_insert(NewStoragePool {
                zone_id: zone.id,
                cluster_id: Some(cluster.id),
                host_id: None,
                name: "p1",
                kind: StorageKind::Nfs,
                url: "nfs://s/p1",
                capacity_gb: 100,
            })
            .await
            .unwrap();
        assert_eq!(pool.scope, StorageScope::Cluster);

        let first = db
            .host_register(zone.id, cluster.id, &registration("h1", "c1", &["nfs://s/p1", "nfs://unknown"]))
            .await
            .unwrap();
        let again = db.host_register(zone.id, cluster.id, &registration("h1", "c1", &["nfs://s/p1"])).await.unwrap();
        assert_eq!(first, again, "a host that registers again under its name is the same host");
        let hosts = db.host_list().await.unwrap();
        assert_eq!(hosts.len(), 1);
        assert_eq!(hosts[0].storage_pool_ids, vec![pool.id]);
        assert_eq!(hosts[0].connection, AgentConnection::Connected);
        assert_eq!(hosts[0].capacity.memory_mb, 65536);
        assert!(hosts[0].last_heartbeat_at.is_some());

        db.host_set_connected(first, false).await.unwrap();
        assert_eq!(db.host_fetch(first).await.unwrap().unwrap().connection, AgentConnection::Disconnected);
        db.host_record_heartbeat(first, 1_800_000_000_000).await.unwrap();
        let host = db.host_fetch(first).await.unwrap().unwrap();
        assert_eq!(host.last_heartbeat_at.unwrap().timestamp_millis(), 1_800_000_000_000);
        db.host_record_heartbeat(first, 1_799_999_999_000).await.unwrap();
        let host = db.host_fetch(first).await.unwrap().unwrap();
        assert_eq!(
            host.last_heartbeat_at.unwrap().timestamp_millis(),
            1_800_000_000_000,
            "a late write never goes back"
        );
    })
    .await;
}

#[tokio::test]
async fn vms_count_towards_their_hosts_and_state_changes_are_reported_once() {
    on_each_backend(|db| async move {
        let zone = db.zone_insert("z", "h").await.unwrap();
        let cluster = db.cluster_insert(zone.id, "c").await.unwrap();
        let pool = db
            .storage_pool_insert(NewStoragePool {
                zone_id: zone.id,
                cluster_id: Some(cluster.id),
                host_id: None,
                name: "p",
                kind: StorageKind::Iscsi,
                url: "iscsi://s/iqn",
                capacity_gb: 10,
            })
            .await
            .unwrap();
        let offering = db
            .offering_insert(NewOffering {
                name: "m",
                description: "2 x 2 GHz, 4 GB",
                cpu_cores: 2,
                cpu_mhz: 2000,
                memory_mb: 4096,
                host_tags: &["ssd".to_owned()],
                offer_ha: true,
            })
            .await
            .unwrap();
        assert_eq!(db.offering_fetch(offering.id).await.unwrap().unwrap().host_tags, vec!["ssd".to_owned()]);
        let host = db.host_register(zone.id, cluster.id, &registration("h", "c", &[])).await.unwrap();
        let new_vm = |name: &'static str| NewVm {
            template_id: crate::db::default_template_id(),
            network: "default",
            name,
            zone_id: zone.id,
            host_id: Some(host),
            offering_id: offering.id,
            storage_pool_id: pool.id,
            ha_protected: true,
            restart_priority: RestartPriority::Restart,
        };
        let vm = db.vm_insert(new_vm("a")).await.unwrap();
        db.vm_insert(new_vm("b")).await.unwrap();
        assert!(matches!(db.vm_insert(new_vm("a")).await, Err(DbError::Conflict(_))));
        assert_eq!((vm.state, vm.generation, vm.cluster_id), (VmState::Stopped, 1, Some(cluster.id)));
        assert_eq!(vm.resources, Resources { cpu_cores: 2, cpu_mhz: 4000, memory_mb: 4096 });

        let changed = db.vm_set_state(vm.id, VmState::Running, None).await.unwrap();
        assert_eq!(changed.unwrap().state, VmState::Running);
        assert!(db.vm_set_state(vm.id, VmState::Running, None).await.unwrap().is_none(), "no change, no answer");
        let with_reason = db.vm_set_state(vm.id, VmState::Error, Some("boom")).await.unwrap().unwrap();
        assert_eq!(with_reason.state_reason.as_deref(), Some("boom"));
        db.vm_set_state(vm.id, VmState::Running, None).await.unwrap();

        let host_view = db.host_fetch(host).await.unwrap().unwrap();
        assert_eq!(host_view.allocated, Resources { cpu_cores: 4, cpu_mhz: 8000, memory_mb: 8192 });
        assert_eq!((host_view.vm_count, host_view.running_vm_count), (2, 1));

        db.host_mark_all_disconnected().await.unwrap();
        let vms = db.vm_list_by_host(host).await.unwrap();
        assert!(vms.iter().all(|vm| vm.state == VmState::Unknown));
        let inventory = db.inventory().await.unwrap();
        assert_eq!(
            (inventory.zones.len(), inventory.clusters.len(), inventory.hosts.len(), inventory.vms.len()),
            (1, 1, 1, 2)
        );
        assert_eq!(inventory.hosts[0].connection, AgentConnection::Disconnected);
    })
    .await;
}

#[tokio::test]
async fn a_clusters_failure_limit_and_stored_capacity_make_its_plan_summary() {
    on_each_backend(|db| async move {
        let zone = db.zone_insert("z", "h").await.unwrap();
        let cluster = db.cluster_insert(zone.id, "c").await.unwrap();
        assert_eq!((cluster.ha_failure_limit, cluster.ha_plan.clone()), (1, None), "limit 1 by default, not evaluated");
        assert_eq!(
            db.cluster_stored_plan(cluster.id).await.unwrap(),
            Some(StoredPlan { capacity: StoredCapacity::Unknown, method: None })
        );

        let updated = db.cluster_set_failure_limit(cluster.id, 3).await.unwrap().unwrap();
        assert_eq!(updated.ha_failure_limit, 3);
        assert!(db.cluster_set_failure_limit(ClusterId::new_random(), 1).await.unwrap().is_none());

        assert!(db.cluster_record_plan(cluster.id, StoredCapacity::Unknown, Some(2), "exact").await.unwrap());
        assert!(
            !db.cluster_record_plan(cluster.id, StoredCapacity::Unknown, Some(5), "exact").await.unwrap(),
            "a stale compare-and-set must not overwrite"
        );
        let summary = db.cluster_fetch(cluster.id).await.unwrap().unwrap().ha_plan.unwrap();
        assert_eq!(
            (summary.max_failure_capacity, summary.plan_exists_for, summary.overcommitted, summary.method.as_str()),
            (Some(2), 2, true, "exact")
        );
        assert!(db.cluster_record_plan(cluster.id, StoredCapacity::Evaluated(Some(2)), None, "none").await.unwrap());
        assert_eq!(
            db.cluster_stored_plan(cluster.id).await.unwrap(),
            Some(StoredPlan { capacity: StoredCapacity::Evaluated(None), method: Some("none".into()) })
        );
        assert_eq!(db.cluster_stored_plan(ClusterId::new_random()).await.unwrap(), None);
        let listed = db.cluster_list().await.unwrap();
        let summary = listed[0].ha_plan.clone().unwrap();
        assert_eq!((summary.max_failure_capacity, summary.plan_exists_for, summary.overcommitted), (None, 0, true));
    })
    .await;
}

#[tokio::test]
async fn a_lowered_limit_is_written_with_the_host_or_vm_change_or_not_at_all() {
    on_each_backend(|db| async move {
        let zone = db.zone_insert("z", "h").await.unwrap();
        let cluster = db.cluster_insert(zone.id, "c").await.unwrap();
        let host = db.host_register(zone.id, cluster.id, &registration("h1", "c", &[])).await.unwrap();
        let limit = |value| Some(LimitChange { cluster_id: cluster.id, limit: value });
        let limit_now = || async { db.cluster_fetch(cluster.id).await.unwrap().unwrap().ha_failure_limit };

        let updated = db.host_update(host, Some(HostAllocation::Disabled), None, limit(0)).await.unwrap().unwrap();
        assert_eq!((updated.allocation, limit_now().await), (HostAllocation::Disabled, 0));

        // A limit for a cluster that does not exist fails the whole transaction: the host keeps its allocation.
        let missing = Some(LimitChange { cluster_id: ClusterId::new_random(), limit: 2 });
        let refused = db.host_update(host, Some(HostAllocation::Enabled), Some(&["ssd".to_owned()]), missing).await;
        assert!(matches!(refused, Err(DbError::Refused(_))), "{refused:?}");
        let unchanged = db.host_fetch(host).await.unwrap().unwrap();
        assert_eq!((unchanged.allocation, unchanged.tags.len()), (HostAllocation::Disabled, 0));

        let pool = db
            .storage_pool_insert(NewStoragePool {
                zone_id: zone.id,
                cluster_id: Some(cluster.id),
                host_id: None,
                name: "p",
                kind: StorageKind::Nfs,
                url: "nfs://s/p",
                capacity_gb: 10,
            })
            .await
            .unwrap();
        let offering = db
            .offering_insert(NewOffering {
                name: "o",
                description: "",
                cpu_cores: 1,
                cpu_mhz: 1000,
                memory_mb: 1024,
                host_tags: &[],
                offer_ha: false,
            })
            .await
            .unwrap();
        let vm = db
            .vm_insert(NewVm {
                template_id: crate::db::default_template_id(),
                network: "default",
                name: "v",
                zone_id: zone.id,
                host_id: Some(host),
                offering_id: offering.id,
                storage_pool_id: pool.id,
                ha_protected: false,
                restart_priority: RestartPriority::DoNotRestart,
            })
            .await
            .unwrap();
        let protect = UpdateVmHaRequest {
            ha_protected: Some(true),
            restart_priority: Some(RestartPriority::Restart),
            ..Default::default()
        };
        let refused = db.vm_update_ha(vm.id, &protect, missing).await;
        assert!(matches!(refused, Err(DbError::Refused(_))));
        assert!(!db.vm_fetch(vm.id).await.unwrap().unwrap().ha_protected, "the refused change left the VM alone");
        let protected = db.vm_update_ha(vm.id, &protect, limit(1)).await.unwrap().unwrap();
        assert_eq!((protected.ha_protected, protected.restart_priority), (true, RestartPriority::Restart));
        assert_eq!(limit_now().await, 1);
        let ordered = UpdateVmHaRequest { start_order: Some(5), ..Default::default() };
        let ordered = db.vm_update_ha(vm.id, &ordered, None).await.unwrap().unwrap();
        assert_eq!((ordered.start_order, ordered.ha_protected), (5, true), "absent settings stay");

        assert!(matches!(db.host_delete(host, limit(3)).await, Err(DbError::Refused(_))), "a VM is placed there");
        assert_eq!(limit_now().await, 1);
        db.vm_delete(vm.id).await.unwrap();
        assert!(db.host_delete(host, limit(3)).await.unwrap());
        assert_eq!(limit_now().await, 3);
        assert!(!db.host_delete(host, limit(4)).await.unwrap(), "nothing left to delete");
        assert_eq!(limit_now().await, 3, "no removal, no limit change");
    })
    .await;
}

#[tokio::test]
async fn one_condition_raises_one_alert_until_it_clears_and_it_is_acknowledged_once() {
    on_each_backend(|db| async move {
        let cluster = ClusterId::new_random();
        let alert = |message: &str, severity| NewAlert {
            kind: "pool-overcommitted".into(),
            severity,
            cluster_id: Some(cluster),
            host_id: None,
            vm_id: None,
            message: message.into(),
            dedupe_key: format!("pool-overcommitted:{cluster}"),
        };
        let first = match db.alert_raise(&alert("over", AlertSeverity::Warning)).await.unwrap() {
            Raised::New(alert) => alert,
            other => panic!("expected a new alert, got {other:?}"),
        };
        assert_eq!((first.cluster_id, first.cleared_at, first.acknowledged_at), (Some(cluster), None, None));
        assert!(matches!(db.alert_raise(&alert("over", AlertSeverity::Warning)).await.unwrap(), Raised::Unchanged(a) if a.id == first.id));

        let acknowledged = db.alert_acknowledge(first.id, "olga").await.unwrap().unwrap();
        assert_eq!(acknowledged.acknowledged_by.as_deref(), Some("olga"));
        assert!(matches!(
            db.alert_acknowledge(first.id, "pete").await.unwrap(),
            Err(AcknowledgeRefusal::Already { by, .. }) if by == "olga"
        ));
        assert_eq!(db.alert_acknowledge(AlertId::new_random(), "pete").await.unwrap(), Err(AcknowledgeRefusal::NotFound));
        assert!(db.alert_list(AlertStatusFilter::Open, 100).await.unwrap().is_empty());

        // Worse news about the same condition: the same alert, open again.
        let updated = match db.alert_raise(&alert("worse", AlertSeverity::Critical)).await.unwrap() {
            Raised::Updated(alert) => alert,
            other => panic!("expected an update, got {other:?}"),
        };
        assert_eq!((updated.id, updated.severity, updated.acknowledged_at.is_none()), (first.id, AlertSeverity::Critical, true));
        assert_eq!(db.alert_list(AlertStatusFilter::Open, 100).await.unwrap().len(), 1);

        assert!(db.alert_clear(&format!("pool-overcommitted:{cluster}")).await.unwrap());
        assert!(!db.alert_clear(&format!("pool-overcommitted:{cluster}")).await.unwrap(), "nothing left to clear");
        assert!(db.alert_fetch(first.id).await.unwrap().unwrap().cleared_at.is_some());
        let again = db.alert_raise(&alert("over again", AlertSeverity::Warning)).await.unwrap();
        assert!(matches!(&again, Raised::New(alert) if alert.id != first.id), "a new occurrence is a new alert");
        let all = db.alert_list(AlertStatusFilter::All, 100).await.unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(db.alert_list(AlertStatusFilter::All, 1).await.unwrap().len(), 1);
    })
    .await;
}

#[tokio::test]
async fn settings_are_absent_until_set_and_the_audit_log_keeps_details() {
    on_each_backend(|db| async move {
        assert_eq!(db.ha_tag().await.unwrap(), None);
        db.setting_set(HA_TAG_SETTING, Some("ha_host")).await.unwrap();
        db.setting_set(HA_TAG_SETTING, Some(" ha_host ")).await.unwrap();
        assert_eq!(db.ha_tag().await.unwrap().as_deref(), Some("ha_host"));
        db.setting_set(HA_TAG_SETTING, Some("  ")).await.unwrap();
        assert_eq!(db.ha_tag().await.unwrap(), None, "a blank tag is no tag");
        db.setting_set(HA_TAG_SETTING, None).await.unwrap();
        assert_eq!(db.setting_get(HA_TAG_SETTING).await.unwrap(), None);

        for detail in [Some("overcommit=proceed: c1 becomes overcommitted"), None] {
            db.audit_insert(NewAuditEntry {
                actor: "olga",
                action: "POST /api/v1/vms/{id}/start",
                target: "/api/v1/vms/x/start?overcommit=proceed",
                status: 202,
                client: "127.0.0.1",
                detail,
            })
            .await
            .unwrap();
        }
        let entries = db
            .audit_list(&AuditQuery { target: Some("overcommit=proceed".into()), ..Default::default() })
            .await
            .unwrap();
        let mut details: Vec<Option<String>> = entries.into_iter().map(|entry| entry.detail).collect();
        details.sort();
        assert_eq!(details, vec![None, Some("overcommit=proceed: c1 becomes overcommitted".to_owned())]);
    })
    .await;
}
