//! A cluster's failover-planner input (`PlanPool`) built from the inventory, in one place, so that
//! the live plan (`GET /clusters/{id}/ha/plan`), admission control, the capacity reconciler and
//! (later) the HA engine all plan from the same picture.
//!
//! The mapping, in [`ClusterSnapshot::plan_pool`]:
//! * hosts of the cluster: capacity as registered; **live** = agent connected, allocation `enabled`
//!   and not in maintenance (a disabled host or one in maintenance counts as already failed, so its
//!   VMs must fit elsewhere); **ha_dedicated** = carries the `ha.tag` setting's tag, when set.
//! * VMs whose host is in the cluster and that occupy it (running, starting, stopping, migrating, or
//!   unknown because the host's agent is gone): the offering's memory and CPU, the host, priority =
//!   the VM's restart priority when it is HA-protected (else `do-not-restart`), shared storage = its
//!   primary storage is cluster-scoped. A VM that is stopped (or in error) is not protected while it
//!   stays down (XAPI leaves halted VMs out of the plan too): starting it is what admission judges.
//! * the cluster's host failure limit.
//!
//! [`Change`] describes an action (start, deploy, migrate, host disable/maintenance/removal, HA
//! settings) applied to a snapshot, so that admission control compares the plan before and after.

use crate::db::{Db, DbResult};
use crate::ha::plan::{Model, PlanError};
use api::v1::{
    AgentConnection, Cluster, Host, HostAllocation, PlanHost, PlanPool, PlanReport, PlanVm, RestartPriority,
    StoragePool, StorageScope, Vm, VmState,
};
use api::{ClusterId, HostId, StoragePoolId, VmId};
use std::collections::{HashMap, HashSet};

/// Everything the planner needs to know about one cluster, as the inventory shows it.
#[derive(Clone, Debug)]
pub struct ClusterSnapshot {
    pub cluster: Cluster,
    /// The cluster's hosts, by name.
    pub hosts: Vec<Host>,
    /// VMs placed on the cluster's hosts, by name.
    pub vms: Vec<Vm>,
    /// Cluster-scoped primary storage: VMs on it can restart on another host.
    pub shared_storage: HashSet<StoragePoolId>,
    /// The `ha.tag` setting, when set.
    pub ha_tag: Option<String>,
}

/// An action, as admission control asks "what if".
#[derive(Clone, Debug)]
pub enum Change {
    /// A VM of the cluster starts on `host`.
    StartVm { vm: VmId, host: HostId },
    /// A new VM (as it will be recorded, with the host placement chose) is deployed and started.
    DeployVm { vm: Box<Vm> },
    /// A running VM moves to another host of the cluster.
    MigrateVm { vm: VmId, to: HostId },
    /// A host's allocation and/or tags change (absent ones stay).
    UpdateHost { host: HostId, allocation: Option<HostAllocation>, tags: Option<Vec<String>> },
    /// A host enters maintenance (its VMs move away; it takes no VMs).
    EnterMaintenance { host: HostId },
    /// A host leaves the inventory.
    RemoveHost { host: HostId },
    /// A VM's HA protection and/or restart priority change (absent ones stay).
    UpdateVmHa { vm: VmId, ha_protected: Option<bool>, restart_priority: Option<RestartPriority> },
}

/// Does a VM in this state take room on its host?
pub fn occupies_host(state: VmState) -> bool {
    matches!(state, VmState::Running | VmState::Starting | VmState::Stopping | VmState::Migrating | VmState::Unknown)
}

/// Can a host take VMs, restarted ones included, right now?
pub fn host_is_live(host: &Host) -> bool {
    host.connection == AgentConnection::Connected
        && host.allocation == HostAllocation::Enabled
        && host.maintenance.is_none()
}

impl ClusterSnapshot {
    /// Split a whole inventory into one snapshot per cluster (in the order of `clusters`).
    pub fn from_inventory(
        clusters: Vec<Cluster>,
        hosts: &[Host],
        vms: &[Vm],
        storage_pools: &[StoragePool],
        ha_tag: Option<String>,
    ) -> Vec<ClusterSnapshot> {
        let host_cluster: HashMap<HostId, ClusterId> = hosts.iter().map(|host| (host.id, host.cluster_id)).collect();
        clusters
            .into_iter()
            .map(|cluster| {
                let shared_storage = storage_pools
                    .iter()
                    .filter(|pool| pool.scope == StorageScope::Cluster && pool.cluster_id == Some(cluster.id))
                    .map(|pool| pool.id)
                    .collect();
                ClusterSnapshot {
                    hosts: hosts.iter().filter(|host| host.cluster_id == cluster.id).cloned().collect(),
                    vms: vms
                        .iter()
                        .filter(|vm| vm.host_id.and_then(|host| host_cluster.get(&host)) == Some(&cluster.id))
                        .cloned()
                        .collect(),
                    shared_storage,
                    ha_tag: ha_tag.clone(),
                    cluster,
                }
            })
            .collect()
    }

    /// Every cluster's snapshot, read from the database.
    pub async fn load_all(db: &Db) -> DbResult<Vec<ClusterSnapshot>> {
        let clusters = db.cluster_list().await?;
        let hosts = db.host_list().await?;
        let vms = db.vm_list().await?;
        let storage_pools = db.storage_pool_list().await?;
        let ha_tag = db.ha_tag().await?;
        Ok(Self::from_inventory(clusters, &hosts, &vms, &storage_pools, ha_tag))
    }

    /// One cluster's snapshot, read from the database; `None` when there is no such cluster.
    pub async fn load(db: &Db, id: ClusterId) -> DbResult<Option<ClusterSnapshot>> {
        let Some(cluster) = db.cluster_fetch(id).await? else { return Ok(None) };
        let hosts = db.host_list().await?;
        let vms = db.vm_list().await?;
        let storage_pools = db.storage_pool_list().await?;
        let ha_tag = db.ha_tag().await?;
        Ok(Self::from_inventory(vec![cluster], &hosts, &vms, &storage_pools, ha_tag).pop())
    }

    /// The planner's input. THE mapping from inventory to plan (see the module documentation).
    pub fn plan_pool(&self) -> PlanPool {
        let mut used = HashSet::new();
        let mut host_names = HashMap::new();
        let hosts = self
            .hosts
            .iter()
            .map(|host| {
                let name = unique_name(&mut used, &host.name, &host.id.to_string());
                host_names.insert(host.id, name.clone());
                PlanHost {
                    name,
                    memory_mb: host.capacity.memory_mb,
                    cpu_mhz: u64::from(host.capacity.cpu_mhz),
                    live: host_is_live(host),
                    ha_dedicated: self.ha_tag.as_ref().is_some_and(|tag| host.tags.contains(tag)),
                }
            })
            .collect();
        let mut used = HashSet::new();
        let vms = self
            .vms
            .iter()
            .filter(|vm| occupies_host(vm.state))
            .map(|vm| PlanVm {
                name: unique_name(&mut used, &vm.name, &vm.id.to_string()),
                memory_mb: vm.resources.memory_mb,
                cpu_mhz: u64::from(vm.resources.cpu_mhz),
                host: vm.host_id.and_then(|host| host_names.get(&host).cloned()),
                priority: if vm.ha_protected { vm.restart_priority } else { RestartPriority::DoNotRestart },
                shared_storage: self.shared_storage.contains(&vm.storage_pool_id),
            })
            .collect();
        PlanPool { hosts, vms, failure_limit: self.cluster.ha_failure_limit }
    }

    /// The planner's verdict on this snapshot. CPU-bound: call it off the async threads.
    pub fn report(&self, budget: u64) -> Result<PlanReport, PlanError> {
        Ok(Model::new(&self.plan_pool())?.report(budget))
    }

    /// The snapshot as it would be after `change`. Ids the snapshot does not hold change nothing.
    pub fn with(&self, change: &Change) -> ClusterSnapshot {
        let mut after = self.clone();
        match change {
            Change::StartVm { vm, host } => {
                if let Some(vm) = after.vms.iter_mut().find(|candidate| candidate.id == *vm) {
                    vm.state = VmState::Starting;
                    vm.host_id = Some(*host);
                }
            }
            Change::DeployVm { vm } => {
                let mut vm = (**vm).clone();
                vm.state = VmState::Starting;
                after.vms.push(vm);
            }
            Change::MigrateVm { vm, to } => {
                if let Some(vm) = after.vms.iter_mut().find(|candidate| candidate.id == *vm) {
                    vm.host_id = Some(*to);
                }
            }
            Change::UpdateHost { host, allocation, tags } => {
                if let Some(host) = after.hosts.iter_mut().find(|candidate| candidate.id == *host) {
                    if let Some(allocation) = allocation {
                        host.allocation = *allocation;
                    }
                    if let Some(tags) = tags {
                        host.tags.clone_from(tags);
                    }
                }
            }
            Change::EnterMaintenance { host } => {
                if let Some(host) = after.hosts.iter_mut().find(|candidate| candidate.id == *host) {
                    host.allocation = HostAllocation::Maintenance;
                }
            }
            Change::RemoveHost { host } => {
                after.hosts.retain(|candidate| candidate.id != *host);
                // Its VMs (the database refuses removing a host that has any) would have no host.
                for vm in after.vms.iter_mut().filter(|vm| vm.host_id == Some(*host)) {
                    vm.host_id = None;
                }
            }
            Change::UpdateVmHa { vm, ha_protected, restart_priority } => {
                if let Some(vm) = after.vms.iter_mut().find(|candidate| candidate.id == *vm) {
                    if let Some(protected) = ha_protected {
                        vm.ha_protected = *protected;
                    }
                    if let Some(priority) = restart_priority {
                        vm.restart_priority = *priority;
                    }
                }
            }
        }
        after
    }
}

/// `name`, or when another entry already has it, `name [id]`: the planner needs unique names, and
/// a name conflict (e.g. a VM about to be deployed under a taken name) must not break planning.
fn unique_name(used: &mut HashSet<String>, name: &str, id: &str) -> String {
    let name = if used.contains(name) { format!("{name} [{id}]") } else { name.to_owned() };
    used.insert(name.clone());
    name
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ha::plan::DEFAULT_SEARCH_BUDGET;
    use api::ZoneId;
    use api::v1::{HypervisorKind, Resources};

    fn cluster(limit: u32) -> Cluster {
        Cluster {
            id: ClusterId::new_random(),
            zone_id: ZoneId::new_random(),
            name: "c".into(),
            ha_enabled: false,
            oobm_enabled: false,
            ha_failure_limit: limit,
            ha_plan: None,
        }
    }

    fn host(cluster: &Cluster, name: &str, memory_mb: u64) -> Host {
        Host {
            id: HostId::new_random(),
            zone_id: cluster.zone_id,
            cluster_id: cluster.id,
            name: name.into(),
            address: "127.0.1.1".into(),
            hypervisor: HypervisorKind::Sim,
            allocation: HostAllocation::Enabled,
            connection: AgentConnection::Connected,
            last_heartbeat_at: None,
            capacity: Resources { cpu_cores: 16, cpu_mhz: 32000, memory_mb },
            allocated: Resources { cpu_cores: 0, cpu_mhz: 0, memory_mb: 0 },
            tags: vec![],
            storage_pool_ids: vec![],
            vm_count: 0,
            running_vm_count: 0,
            maintenance: None,
            oobm_enabled_effective: false,
            power_state: api::v1::PowerState::Disabled,
        }
    }

    fn vm(host: &Host, name: &str, memory_mb: u64, state: VmState, storage: StoragePoolId) -> Vm {
        Vm {
            id: VmId::new_random(),
            name: name.into(),
            zone_id: host.zone_id,
            cluster_id: Some(host.cluster_id),
            host_id: Some(host.id),
            offering_id: api::OfferingId::new_random(),
            storage_pool_id: storage,
            state,
            state_reason: None,
            resources: Resources { cpu_cores: 1, cpu_mhz: 1000, memory_mb },
            ha_protected: true,
            restart_priority: RestartPriority::Restart,
            start_order: 0,
            start_delay_seconds: 0,
            template_id: crate::db::default_template_id(),
            network: "default".into(),
            generation: 1,
            updated_at: chrono::Utc::now(),
        }
    }

    fn snapshot(limit: u32) -> (ClusterSnapshot, StoragePoolId) {
        let cluster = cluster(limit);
        let shared = StoragePoolId::new_random();
        let hosts = vec![host(&cluster, "h1", 8192), host(&cluster, "h2", 8192)];
        let snapshot = ClusterSnapshot {
            shared_storage: [shared].into_iter().collect(),
            hosts,
            vms: vec![],
            ha_tag: None,
            cluster,
        };
        (snapshot, shared)
    }

    #[test]
    fn the_pool_maps_liveness_priority_storage_and_leaves_stopped_vms_out() {
        let (mut snapshot, shared) = snapshot(1);
        let local = StoragePoolId::new_random();
        snapshot.hosts[1].connection = AgentConnection::Disconnected;
        snapshot.hosts.push(host(&snapshot.cluster, "h3", 4096));
        snapshot.hosts[2].allocation = HostAllocation::Disabled;
        snapshot.hosts[2].tags = vec!["ha_host".into()];
        snapshot.ha_tag = Some("ha_host".into());
        let mut unprotected = vm(&snapshot.hosts[0], "plain", 1024, VmState::Running, shared);
        unprotected.ha_protected = false;
        snapshot.vms = vec![
            vm(&snapshot.hosts[0], "db", 2048, VmState::Running, shared),
            vm(&snapshot.hosts[1], "lost", 1024, VmState::Unknown, local),
            vm(&snapshot.hosts[0], "off", 1024, VmState::Stopped, shared),
            unprotected,
        ];
        let pool = snapshot.plan_pool();
        let hosts: Vec<(&str, bool, bool)> =
            pool.hosts.iter().map(|host| (host.name.as_str(), host.live, host.ha_dedicated)).collect();
        assert_eq!(hosts, vec![("h1", true, false), ("h2", false, false), ("h3", false, true)]);
        let vms: Vec<(&str, Option<&str>, RestartPriority, bool)> =
            pool.vms.iter().map(|vm| (vm.name.as_str(), vm.host.as_deref(), vm.priority, vm.shared_storage)).collect();
        assert_eq!(
            vms,
            vec![
                ("db", Some("h1"), RestartPriority::Restart, true),
                ("lost", Some("h2"), RestartPriority::Restart, false),
                ("plain", Some("h1"), RestartPriority::DoNotRestart, true),
            ],
            "the stopped VM is not in the plan; an unprotected one never restarts"
        );
        assert_eq!(pool.failure_limit, 1);
    }

    #[test]
    fn changes_apply_to_a_copy_and_move_the_capacity() {
        let (mut snapshot, shared) = snapshot(1);
        snapshot.vms = vec![
            vm(&snapshot.hosts[0], "a", 4096, VmState::Running, shared),
            vm(&snapshot.hosts[1], "big", 6144, VmState::Stopped, shared),
        ];
        let capacity =
            |snapshot: &ClusterSnapshot| snapshot.report(DEFAULT_SEARCH_BUDGET).unwrap().max_failure_capacity;
        assert_eq!(capacity(&snapshot), Some(1));
        let (big, h2) = (snapshot.vms[1].id, snapshot.hosts[1].id);
        let started = snapshot.with(&Change::StartVm { vm: big, host: h2 });
        assert_eq!(capacity(&started), Some(0), "a (4 GB) and big (6 GB) do not fit one 8 GB host");
        assert_eq!(capacity(&snapshot), Some(1), "the snapshot itself is unchanged");

        let disabled =
            snapshot.with(&Change::UpdateHost { host: h2, allocation: Some(HostAllocation::Disabled), tags: None });
        assert_eq!(capacity(&disabled), Some(0));
        assert_eq!(capacity(&snapshot.with(&Change::EnterMaintenance { host: h2 })), Some(0));
        assert_eq!(capacity(&snapshot.with(&Change::RemoveHost { host: h2 })), Some(0));
        let a = snapshot.vms[0].id;
        let unprotected =
            snapshot.with(&Change::UpdateVmHa { vm: a, ha_protected: Some(false), restart_priority: None });
        assert_eq!(capacity(&unprotected), Some(2), "nothing protected: every live host may fail");

        let mut new = vm(&snapshot.hosts[0], "new", 2048, VmState::Stopped, shared);
        new.name = "a".into();
        let deployed = snapshot.with(&Change::DeployVm { vm: Box::new(new) });
        let names: Vec<String> = deployed.plan_pool().vms.into_iter().map(|vm| vm.name).collect();
        assert_eq!(names.len(), 2);
        assert!(names[1].starts_with("a ["), "a taken name is made unique for the planner: {names:?}");
        assert_eq!(capacity(&deployed), Some(1));
    }
}
