//! The database layer against both backends: every test runs on a fresh SQLite file and a fresh
//! PostgreSQL database.

use super::testdb::on_each_backend;
use super::*;
use api::agent::HostRegistration;
use api::v1::*;

fn registration(name: &str, cluster: &str, mounts: &[&str]) -> HostRegistration {
    HostRegistration {
        name: name.into(),
        address: "127.0.1.1".into(),
        cluster: cluster.into(),
        hypervisor: HypervisorKind::Sim,
        capacity: Resources { cpu_cores: 16, cpu_mhz: 38400, memory_mb: 65536 },
        mounted_storage: mounts.iter().map(|url| url.to_string()).collect(),
        agent_version: "test".into(),
    }
}

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
