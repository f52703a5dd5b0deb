//! The console's one live copy of the pool: reactive maps of zones, clusters, hosts, VMs and storage pools.
//!
//! The initial load (`GET /api/v1/inventory`) and every live event (`GET /api/v1/events`) write into the
//! same signals, and every page reads from them, so a host or VM that changes on the server re-renders
//! wherever it is shown, without a reload. A reload of the inventory replaces everything wholesale: it is
//! the truth after a reconnect, when events may have been missed.

use crate::api_client::{self, ClientError};
use crate::components::admission::OvercommitQuestion;
use crate::session::Session;
use api::v1::{Cluster, Event, Host, Inventory, StoragePool, Vm, VmState, Zone};
use api::{ClusterId, HostId, StoragePoolId, VmId, ZoneId};
use chrono::{DateTime, Utc};
use leptos::prelude::*;
use std::collections::BTreeMap;

/// Whether live events are flowing, shown in the top bar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveStatus {
    Connecting,
    Live,
    Reconnecting,
}

#[derive(Clone, Copy)]
pub struct Store {
    pub zones: RwSignal<BTreeMap<ZoneId, Zone>>,
    pub clusters: RwSignal<BTreeMap<ClusterId, Cluster>>,
    pub hosts: RwSignal<BTreeMap<HostId, Host>>,
    pub vms: RwSignal<BTreeMap<VmId, Vm>>,
    pub storage_pools: RwSignal<BTreeMap<StoragePoolId, StoragePool>>,
    /// The inventory load: pages await it inside a Transition, so a reload keeps the old view up until
    /// the new data is in, and a failed load shows the server's message in their ErrorBoundary.
    pub load: LocalResource<Result<(), ClientError>>,
    pub live: RwSignal<LiveStatus>,
    /// The last failed action (e.g. a refused VM start), shown as an alert until dismissed.
    pub problem: RwSignal<Option<String>>,
    /// The browser's clock, ticking every second, for "2 s ago" texts.
    pub now: RwSignal<DateTime<Utc>>,
    /// How many times the inventory was reloaded (on `InventoryChanged` and after reconnects): what the
    /// store does not hold itself (alerts, a cluster's plan) is fetched again when it changes.
    pub reloads: RwSignal<u64>,
    /// The overcommit warning waiting for an answer (see `crate::components::admission`).
    pub overcommit: RwSignal<Option<OvercommitQuestion>, LocalStorage>,
}

fn by_id<K: Ord, T>(items: Vec<T>, id: impl Fn(&T) -> K) -> BTreeMap<K, T> {
    items.into_iter().map(|item| (id(&item), item)).collect()
}

impl Store {
    /// Creates the store for a signed-in console and starts the first inventory load.
    pub fn provide(session: Session) -> Store {
        let zones = RwSignal::new(BTreeMap::new());
        let clusters = RwSignal::new(BTreeMap::new());
        let hosts = RwSignal::new(BTreeMap::new());
        let vms = RwSignal::new(BTreeMap::new());
        let storage_pools = RwSignal::new(BTreeMap::new());
        let load = LocalResource::new(move || async move {
            match api_client::inventory().await {
                Ok(inventory) => {
                    let Inventory {
                        zones: new_zones,
                        clusters: new_clusters,
                        hosts: new_hosts,
                        vms: new_vms,
                        storage_pools: new_pools,
                    } = inventory;
                    zones.set(by_id(new_zones, |zone| zone.id));
                    clusters.set(by_id(new_clusters, |cluster| cluster.id));
                    hosts.set(by_id(new_hosts, |host| host.id));
                    vms.set(by_id(new_vms, |vm| vm.id));
                    storage_pools.set(by_id(new_pools, |pool| pool.id));
                    Ok(())
                }
                Err(error) => {
                    session.notice(&error);
                    Err(error)
                }
            }
        });
        let store = Store {
            zones,
            clusters,
            hosts,
            vms,
            storage_pools,
            load,
            live: RwSignal::new(LiveStatus::Connecting),
            problem: RwSignal::new(None),
            now: RwSignal::new(Utc::now()),
            reloads: RwSignal::new(0),
            overcommit: RwSignal::new_local(None),
        };
        provide_context(store);
        store
    }

    pub fn expect() -> Store {
        expect_context::<Store>()
    }

    /// Reloads the whole inventory (after a reconnect, or when the server says so).
    pub fn reload(self) {
        self.load.refetch();
        self.reloads.update(|reloads| *reloads += 1);
    }

    /// Applies one live event from the server.
    pub fn apply(self, event: Event) {
        match event {
            Event::HostChanged { host } => self.upsert_host(host),
            Event::VmChanged { vm } => self.upsert_vm(vm),
            Event::InventoryChanged => self.reload(),
            // HA states and incidents are not part of the inventory store; their pages fetch them.
            Event::Ha { .. } => {}
        }
    }

    pub fn upsert_host(self, host: Host) {
        self.hosts.update(|hosts| {
            hosts.insert(host.id, host);
        });
    }

    /// Stores a newer version of a VM; an older one (e.g. an HTTP answer that arrived after the event
    /// announcing the next state) is ignored so that a VM never appears to go back in time.
    pub fn upsert_vm(self, vm: Vm) {
        let stale =
            self.vms.with_untracked(|vms| vms.get(&vm.id).is_some_and(|known| known.updated_at > vm.updated_at));
        if !stale {
            self.vms.update(|vms| {
                vms.insert(vm.id, vm);
            });
        }
    }

    // ---- reads (all tracked: call them inside reactive closures) ----------------------------------------

    pub fn host(self, id: HostId) -> Option<Host> {
        self.hosts.with(|hosts| hosts.get(&id).cloned())
    }

    pub fn vm(self, id: VmId) -> Option<Vm> {
        self.vms.with(|vms| vms.get(&id).cloned())
    }

    pub fn zone(self, id: ZoneId) -> Option<Zone> {
        self.zones.with(|zones| zones.get(&id).cloned())
    }

    pub fn cluster(self, id: ClusterId) -> Option<Cluster> {
        self.clusters.with(|clusters| clusters.get(&id).cloned())
    }

    pub fn zone_name(self, id: ZoneId) -> String {
        self.zones.with(|zones| zones.get(&id).map_or_else(|| "unknown zone".to_owned(), |zone| zone.name.clone()))
    }

    pub fn cluster_name(self, id: ClusterId) -> String {
        self.clusters.with(|clusters| {
            clusters.get(&id).map_or_else(|| "unknown cluster".to_owned(), |cluster| cluster.name.clone())
        })
    }

    pub fn host_name(self, id: HostId) -> String {
        self.hosts.with(|hosts| hosts.get(&id).map_or_else(|| "unknown host".to_owned(), |host| host.name.clone()))
    }

    /// Zone ids sorted by zone name.
    pub fn zone_ids(self) -> Vec<ZoneId> {
        self.zones.with(|zones| sorted_ids(zones.values(), |zone| (&zone.name, zone.id)))
    }

    /// Cluster ids sorted by cluster name, optionally only those of one zone.
    pub fn cluster_ids(self, zone: Option<ZoneId>) -> Vec<ClusterId> {
        self.clusters.with(|clusters| {
            sorted_ids(clusters.values().filter(|cluster| zone.is_none_or(|zone| cluster.zone_id == zone)), |cluster| {
                (&cluster.name, cluster.id)
            })
        })
    }

    /// Host ids sorted by host name, optionally only those of one cluster.
    pub fn host_ids(self, cluster: Option<ClusterId>) -> Vec<HostId> {
        self.hosts.with(|hosts| {
            sorted_ids(hosts.values().filter(|host| cluster.is_none_or(|cluster| host.cluster_id == cluster)), |host| {
                (&host.name, host.id)
            })
        })
    }

    /// VM ids sorted by VM name, filtered by a predicate.
    pub fn vm_ids(self, keep: impl Fn(&Vm) -> bool) -> Vec<VmId> {
        self.vms.with(|vms| sorted_ids(vms.values().filter(|vm| keep(vm)), |vm| (&vm.name, vm.id)))
    }

    /// (running, total) VMs placed on a host, counted from the live VM map so that a VM state event
    /// updates the count even before the host's own event arrives.
    pub fn host_vm_counts(self, host: HostId) -> (usize, usize) {
        self.vm_counts(|vm| vm.host_id == Some(host))
    }

    /// (running, total) VMs matching a predicate.
    pub fn vm_counts(self, keep: impl Fn(&Vm) -> bool) -> (usize, usize) {
        self.vms.with(|vms| {
            vms.values()
                .filter(|vm| keep(vm))
                .fold((0, 0), |(running, total), vm| (running + usize::from(vm.state == VmState::Running), total + 1))
        })
    }

    /// (connected, total) hosts matching a predicate.
    pub fn host_counts(self, keep: impl Fn(&Host) -> bool) -> (usize, usize) {
        self.hosts.with(|hosts| {
            hosts.values().filter(|host| keep(host)).fold((0, 0), |(connected, total), host| {
                (connected + usize::from(host.connection == api::v1::AgentConnection::Connected), total + 1)
            })
        })
    }

    /// Shows a failed action's message to the person (and signs out if the session expired).
    pub fn report(self, session: Session, error: &ClientError) {
        session.notice(error);
        self.problem.set(Some(error.to_string()));
    }
}

fn sorted_ids<'a, T: 'a, Id: Ord + Copy>(
    items: impl Iterator<Item = &'a T>,
    key: impl Fn(&'a T) -> (&'a String, Id),
) -> Vec<Id> {
    let mut keyed: Vec<(&String, Id)> = items.map(key).collect();
    keyed.sort();
    keyed.into_iter().map(|(_, id)| id).collect()
}
