//! The console's one live copy of the pool: reactive maps of zones, clusters, hosts, VMs and storage pools.
//!
//! The initial load (`GET /api/v1/inventory`) and every live event (`GET /api/v1/events`) write into the
//! same signals, and every page reads from them, so a host or VM that changes on the server re-renders
//! wherever it is shown, without a reload. A reload of the inventory replaces everything wholesale: it is
//! the truth after a reconnect, when events may have been missed.
//!
//! HA is not part of the inventory: a host's HA state ([`HostHa`]) is fetched for the hosts a page shows
//! ([`Store::want_host_ha`]), incidents as their pages load them, and `Event::Ha` keeps both current (a
//! reload fetches the known hosts' HA again, since switches change with `InventoryChanged`).

use crate::api_client::{self, ClientError};
use crate::components::admission::OvercommitQuestion;
use crate::i18n::t;
use crate::session::Session;
use api::v1::{
    Cluster, Event, HaEvent, HaIncident, HaIncidentEvent, Host, HostHa, IncidentId, Inventory, StoragePool, Vm,
    VmState, Zone,
};
use api::{ClusterId, HostId, StoragePoolId, VmId, ZoneId};
use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos::task::spawn_local;
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
    /// The first inventory load: pages await it inside a Transition, and a failed load shows the
    /// server's message in their ErrorBoundary (whose retry loads again through it). Once it succeeded,
    /// [`Store::reload`] replaces the data in the background instead (see there).
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
    /// Numbers the background reloads: only the latest one's answer is applied.
    reload_seq: StoredValue<u64>,
    session: Session,
    /// HA switches, state and transitions of the hosts some page showed (see [`Store::want_host_ha`]).
    pub host_ha: RwSignal<BTreeMap<HostId, HostHa>>,
    /// Hosts whose HA is being fetched now, each with whether to fetch again once the answer is in
    /// (something changed while the request was on its way, so the answer may be stale).
    host_ha_pending: StoredValue<BTreeMap<HostId, bool>>,
    /// The HA incidents known so far (the list page loads them; live events add and update them).
    pub incidents: RwSignal<BTreeMap<IncidentId, HaIncident>>,
    /// Incident timelines, oldest first: loaded by the incident page, extended by live events.
    pub incident_events: RwSignal<BTreeMap<IncidentId, Vec<HaIncidentEvent>>>,
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
            reload_seq: StoredValue::new(0),
            session,
            host_ha: RwSignal::new(BTreeMap::new()),
            host_ha_pending: StoredValue::new(BTreeMap::new()),
            incidents: RwSignal::new(BTreeMap::new()),
            incident_events: RwSignal::new(BTreeMap::new()),
        };
        provide_context(store);
        store
    }

    pub fn expect() -> Store {
        expect_context::<Store>()
    }

    /// Reloads the whole inventory (after a reconnect, or when the server says so).
    ///
    /// Until the first load succeeded, through [`Store::load`], so the pages' ErrorBoundary shows how
    /// it went. After that in the background, replacing the data when it arrives: refetching `load`
    /// would re-run every page's `Suspend` that awaits it, and two refetches overlapping (the server
    /// announces changes in bursts, e.g. an alert and a new plan) let a page read signals of a view
    /// already disposed, which panicked and froze the console.
    pub fn reload(self) {
        self.reloads.update(|reloads| *reloads += 1);
        if self.load.with_untracked(|load| matches!(load, Some(Err(_)))) {
            self.load.refetch();
            return;
        }
        let Some(seq) = self.reload_seq.try_update_value(|seq| {
            *seq += 1;
            *seq
        }) else {
            return;
        };
        spawn_local(async move {
            let answer = api_client::inventory().await;
            // A later reload is on its way (or the console signed out): its answer counts, not this one.
            if self.reload_seq.try_get_value() != Some(seq) {
                return;
            }
            match answer {
                Ok(inventory) => {
                    self.replace(inventory);
                    // Switches are not in the inventory: the HA of the hosts shown may have changed too.
                    for host in self.host_ha.with_untracked(|known| known.keys().copied().collect::<Vec<_>>()) {
                        self.fetch_host_ha(host);
                    }
                }
                Err(error) => self.session.notice(&error),
            }
        });
    }

    /// Replaces everything with `inventory`.
    fn replace(self, inventory: Inventory) {
        let Inventory { zones, clusters, hosts, vms, storage_pools } = inventory;
        self.zones.set(by_id(zones, |zone| zone.id));
        self.clusters.set(by_id(clusters, |cluster| cluster.id));
        self.hosts.set(by_id(hosts, |host| host.id));
        self.vms.set(by_id(vms, |vm| vm.id));
        self.storage_pools.set(by_id(storage_pools, |pool| pool.id));
    }

    /// Applies one live event from the server.
    pub fn apply(self, event: Event) {
        match event {
            Event::HostChanged { host } => self.upsert_host(host),
            Event::VmChanged { vm } => self.upsert_vm(vm),
            Event::InventoryChanged => self.reload(),
            Event::Ha { change } => self.apply_ha(change),
        }
    }

    fn apply_ha(self, change: HaEvent) {
        match change {
            HaEvent::HostState { host_id, transition, reason } => {
                let known = self.host_ha.with_untracked(|known| known.contains_key(&host_id));
                if !known {
                    // A host no page showed yet: fetch it whole (again, if a fetch is on its way: its
                    // answer may predate this change).
                    self.fetch_host_ha(host_id);
                    return;
                }
                self.host_ha.update(|known| {
                    if let Some(ha) = known.get_mut(&host_id) {
                        apply_transition(ha, transition, reason);
                    }
                });
            }
            HaEvent::Incident { incident, event } => {
                let id = incident.id;
                self.incidents.update(|incidents| {
                    incidents.insert(id, incident);
                });
                if let Some(event) = event {
                    self.incident_events
                        .update(|timelines| merge_events(timelines.entry(id).or_default(), vec![event]));
                }
            }
        }
    }

    /// Fetches the HA of these hosts unless it is known or on its way (live events keep it current).
    pub fn want_host_ha(self, hosts: impl IntoIterator<Item = HostId>) {
        for host in hosts {
            if !self.host_ha.with_untracked(|known| known.contains_key(&host)) {
                self.fetch_host_ha(host);
            }
        }
    }

    /// Fetches one host's HA (again) into [`Store::host_ha`]. While a fetch is on its way, another one
    /// follows once it answered, since its answer may predate what made us ask.
    pub fn fetch_host_ha(self, host: HostId) {
        let started = self
            .host_ha_pending
            .try_update_value(|pending| match pending.get_mut(&host) {
                Some(again) => {
                    *again = true;
                    false
                }
                None => {
                    pending.insert(host, false);
                    true
                }
            })
            .unwrap_or(false);
        if !started {
            return;
        }
        spawn_local(async move {
            let answer = api_client::host_ha(host).await;
            let Some(again) = self.host_ha_pending.try_update_value(|pending| pending.remove(&host)).flatten() else {
                return;
            };
            match answer {
                Ok(ha) => self.upsert_host_ha(ha),
                Err(error) => self.session.notice(&error),
            }
            if again {
                self.fetch_host_ha(host);
            }
        });
    }

    /// Stores a host's HA as the server answered; an answer older than a transition that arrived live
    /// meanwhile updates only the switches and provider, so a state never appears to go back in time.
    pub fn upsert_host_ha(self, mut ha: HostHa) {
        chain_order(&mut ha.transitions);
        self.host_ha.update(|known| {
            if let Some(current) = known.get_mut(&ha.host_id)
                && newer_than(current, &ha)
            {
                current.enabled = ha.enabled;
                current.enabled_effective = ha.enabled_effective;
                current.provider = ha.provider;
                return;
            }
            known.insert(ha.host_id, ha);
        });
    }

    /// Stores incidents as the server listed them.
    pub fn upsert_incidents(self, list: Vec<HaIncident>) {
        self.incidents.update(|incidents| {
            for incident in list {
                incidents.insert(incident.id, incident);
            }
        });
    }

    /// Stores an incident and its timeline as fetched, keeping steps that arrived live meanwhile.
    pub fn upsert_incident_detail(self, detail: api::v1::HaIncidentDetail) {
        let api::v1::HaIncidentDetail { incident, events } = detail;
        let id = incident.id;
        self.incidents.update(|incidents| {
            // A live event may already have brought a newer version (e.g. the end).
            let newer = incidents.get(&id).is_some_and(|known| known.ended_at.is_some() && incident.ended_at.is_none());
            if !newer {
                incidents.insert(id, incident);
            }
        });
        self.incident_events.update(|timelines| merge_events(timelines.entry(id).or_default(), events));
    }

    /// A host's HA as known (tracked).
    pub fn host_ha(self, id: HostId) -> Option<HostHa> {
        self.host_ha.with(|known| known.get(&id).cloned())
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
        self.zones.with(|zones| zones.get(&id).map_or_else(|| t("unknown zone").to_owned(), |zone| zone.name.clone()))
    }

    pub fn cluster_name(self, id: ClusterId) -> String {
        self.clusters.with(|clusters| {
            clusters.get(&id).map_or_else(|| t("unknown cluster").to_owned(), |cluster| cluster.name.clone())
        })
    }

    pub fn host_name(self, id: HostId) -> String {
        self.hosts.with(|hosts| hosts.get(&id).map_or_else(|| t("unknown host").to_owned(), |host| host.name.clone()))
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

/// A host's HA after a live transition: the new state, why, since when, and the transition on top.
fn apply_transition(ha: &mut HostHa, transition: api::v1::HaTransition, reason: Option<String>) {
    if ha.transitions.first() == Some(&transition) {
        return;
    }
    ha.state = transition.to;
    ha.reason = reason;
    ha.since = Some(transition.at);
    ha.transitions.insert(0, transition);
    ha.transitions.truncate(TRANSITIONS_KEPT);
    chain_order(&mut ha.transitions);
}

/// Whether `current` holds a transition `answer` does not know, as recent as the answer's latest.
fn newer_than(current: &HostHa, answer: &HostHa) -> bool {
    let Some(latest) = current.transitions.first() else {
        return false;
    };
    let answered = answer.transitions.first().map(|transition| transition.at);
    !answer.transitions.contains(latest) && answered.is_none_or(|answered| latest.at >= answered)
}

/// Transitions kept per host, as many as the server shows.
const TRANSITIONS_KEPT: usize = 100;

/// Adds the steps not there yet and keeps the timeline in time order (equal times keep their order).
fn merge_events(timeline: &mut Vec<HaIncidentEvent>, new: Vec<HaIncidentEvent>) {
    for event in new {
        if !timeline.contains(&event) {
            timeline.push(event);
        }
    }
    // Steps of one engine step share a time; the end of the incident comes after them.
    timeline.sort_by_key(|event| (event.at, event.kind == api::v1::incident_event_kind::RESOLVED));
}

/// Newest first, with transitions of the same instant in chain order: the server breaks ties of its
/// `at` arbitrarily, so "Available → Suspect" could be listed above "Suspect → Checking".
pub fn chain_order(transitions: &mut [api::v1::HaTransition]) {
    let mut swapped = true;
    while swapped {
        swapped = false;
        for i in 1..transitions.len() {
            let (newer, older) = (&transitions[i - 1], &transitions[i]);
            if newer.at == older.at && newer.to == older.from && newer.from != older.to {
                transitions.swap(i - 1, i);
                swapped = true;
            }
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use api::v1::{HaTransition, HostHaState as S};

    fn step(from: S, to: S, second: i64) -> HaTransition {
        HaTransition {
            host_id: HostId(uuid::Uuid::nil()),
            from,
            to,
            event: String::new(),
            reason: String::new(),
            at: DateTime::from_timestamp(second, 0).unwrap_or_default(),
        }
    }

    #[test]
    fn transitions_of_one_instant_are_listed_in_chain_order() {
        let mut listed =
            vec![step(S::Checking, S::Fencing, 9), step(S::Available, S::Suspect, 5), step(S::Suspect, S::Checking, 5)];
        chain_order(&mut listed);
        let order: Vec<(S, S)> = listed.iter().map(|t| (t.from, t.to)).collect();
        assert_eq!(order, [(S::Checking, S::Fencing), (S::Suspect, S::Checking), (S::Available, S::Suspect)]);
    }

    #[test]
    fn an_answer_older_than_a_live_transition_does_not_take_the_state_back() {
        let ha = |transitions: Vec<HaTransition>, state: S| HostHa {
            host_id: HostId(uuid::Uuid::nil()),
            host_name: "h".to_owned(),
            cluster_id: api::ClusterId(uuid::Uuid::nil()),
            enabled: true,
            enabled_effective: true,
            provider: api::v1::HaProvider::Sim,
            state,
            reason: None,
            since: None,
            transitions,
        };
        let live = ha(vec![step(S::Disabled, S::Available, 5)], S::Available);
        assert!(newer_than(&live, &ha(vec![], S::Disabled)));
        assert!(!newer_than(&live, &ha(vec![step(S::Disabled, S::Available, 5)], S::Available)));
        assert!(!newer_than(&live, &ha(vec![step(S::Available, S::Suspect, 6)], S::Suspect)));
        assert!(!newer_than(&ha(vec![], S::Disabled), &ha(vec![], S::Available)));
    }
}
