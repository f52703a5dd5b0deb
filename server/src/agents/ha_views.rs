//! What agents tell this server for the HA engine, kept in memory: the storage heartbeat records
//! each agent reads of its peers (and when each counter was first seen to advance), each agent's own
//! storage writes, the peers it hears, and why it stopped a VM on its own. Only the latest report
//! per agent counts; nothing here is needed after a restart (agents report again every second).
//!
//! A host is alive on storage when some OTHER host's reading shows its counter advancing: the
//! engine judges that from [`StorageSighting`]s, built here from the raw reports.

use api::agent::{AgentStopReason, AgentVmState, StorageView};
use api::{HostId, VmId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One observer's reading of one host's record on one storage (by the storage's URL and the
/// written host's name, as agents report them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageSighting {
    pub observer: HostId,
    pub storage_url: String,
    pub subject_name: String,
    pub counter: u64,
    /// When this server first received the current counter value (the counter advanced then).
    pub advanced_at_ms: i64,
    /// When this server last received a reading of the record (same counter or not).
    pub read_at_ms: i64,
    pub self_fenced: bool,
    pub running_vms: u32,
}

/// A host's own storage heartbeat write on one storage, as it last reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnWrite {
    pub storage_url: String,
    pub ok: bool,
    /// The agent's time of its last successful write, else the time the report arrived.
    pub at_ms: i64,
}

#[derive(Default)]
struct Views {
    /// Keyed by (observer, storage URL, subject host name).
    sightings: HashMap<(HostId, String, String), StorageSighting>,
    own_writes: HashMap<HostId, Vec<OwnWrite>>,
    peers_heard: HashMap<HostId, (i64, Vec<HostId>)>,
    /// Per VM: the host whose agent stopped it, and why.
    stop_reasons: HashMap<VmId, (HostId, AgentStopReason)>,
    /// Per host: its agent's last complete inventory (a VM it lacks is not on the host at all).
    inventories: HashMap<HostId, HashMap<VmId, AgentVmState>>,
    /// VMs a host's agent listed as running (or starting) and then no longer listed at all, with
    /// no reason of its own: the host was reset or rebooted under them. Cleared when listed again.
    vanished: HashMap<VmId, HostId>,
}

/// Shared by the sessions (which record) and the engine (which reads).
#[derive(Clone, Default)]
pub struct HaViews {
    views: Arc<Mutex<Views>>,
}

impl HaViews {
    /// Take one heartbeat's storage views from `observer`, received at `now_ms`.
    pub fn record_heartbeat(&self, observer: HostId, now_ms: i64, storage: &[StorageView], peers_heard: &[HostId]) {
        let mut views = self.views.lock().unwrap();
        for view in storage {
            for record in &view.peers {
                let key = (observer, view.name.clone(), record.host.clone());
                let entry = views.sightings.entry(key).or_insert_with(|| StorageSighting {
                    observer,
                    storage_url: view.name.clone(),
                    subject_name: record.host.clone(),
                    counter: record.counter,
                    advanced_at_ms: now_ms,
                    read_at_ms: now_ms,
                    self_fenced: record.self_fenced,
                    running_vms: record.running_vms,
                });
                if entry.counter != record.counter {
                    // Any change counts as progress: a restarted agent starts its counter again at 1.
                    entry.counter = record.counter;
                    entry.advanced_at_ms = now_ms;
                }
                entry.read_at_ms = now_ms;
                entry.self_fenced = record.self_fenced;
                entry.running_vms = record.running_vms;
            }
        }
        let writes = storage
            .iter()
            .map(|view| OwnWrite {
                storage_url: view.name.clone(),
                ok: view.write_ok,
                at_ms: if view.write_ok { view.last_write_ms.unwrap_or(now_ms) } else { now_ms },
            })
            .collect();
        views.own_writes.insert(observer, writes);
        views.peers_heard.insert(observer, (now_ms, peers_heard.to_vec()));
    }

    /// Take the stop reasons of `host`'s complete inventory (a VM started again loses its reason).
    pub fn record_inventory(&self, host: HostId, reports: &[api::agent::VmReport]) {
        let mut views = self.views.lock().unwrap();
        let current: HashMap<VmId, AgentVmState> = reports.iter().map(|report| (report.vm_id, report.state)).collect();
        let gone: Vec<VmId> = views
            .inventories
            .get(&host)
            .map(|previous| {
                previous
                    .iter()
                    .filter(|(vm, state)| {
                        matches!(state, AgentVmState::Running | AgentVmState::Starting) && !current.contains_key(vm)
                    })
                    .map(|(vm, _)| *vm)
                    .collect()
            })
            .unwrap_or_default();
        for vm in gone {
            views.vanished.insert(vm, host);
        }
        for vm in current.keys() {
            views.vanished.remove(vm);
        }
        views.inventories.insert(host, current);
        for report in reports {
            match &report.stop_reason {
                Some(reason) => {
                    views.stop_reasons.insert(report.vm_id, (host, reason.clone()));
                }
                None => {
                    if views.stop_reasons.get(&report.vm_id).is_some_and(|(by, _)| *by == host) {
                        views.stop_reasons.remove(&report.vm_id);
                    }
                }
            }
        }
    }

    /// `host` ran `vm` and lost it without stopping it: its agent once listed it running and no longer
    /// lists it at all (a reset or reboot), or lists it crashed. A VM that was never seen running
    /// there (a start not yet carried out) has not crashed.
    pub fn crashed(&self, host: HostId, vm: VmId) -> bool {
        let views = self.views.lock().unwrap();
        views.vanished.get(&vm) == Some(&host)
            || views.inventories.get(&host).and_then(|inventory| inventory.get(&vm)) == Some(&AgentVmState::Crashed)
    }

    /// Every reading every observer reported.
    pub fn sightings(&self) -> Vec<StorageSighting> {
        self.views.lock().unwrap().sightings.values().cloned().collect()
    }

    pub fn own_writes(&self) -> HashMap<HostId, Vec<OwnWrite>> {
        self.views.lock().unwrap().own_writes.clone()
    }

    /// The peers `host` last said it hears, with when it said so.
    pub fn peers_heard(&self, host: HostId) -> Option<(i64, Vec<HostId>)> {
        self.views.lock().unwrap().peers_heard.get(&host).cloned()
    }

    /// Why `host`'s agent stopped `vm` on its own, if it did (a reason from another host is stale:
    /// the VM has moved since).
    pub fn stop_reason(&self, vm: VmId, host: HostId) -> Option<AgentStopReason> {
        let views = self.views.lock().unwrap();
        views.stop_reasons.get(&vm).filter(|(by, _)| *by == host).map(|(_, reason)| reason.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::agent::StorageRecord;

    fn view(records: &[(&str, u64)]) -> StorageView {
        StorageView {
            name: "nfs://s/p".into(),
            write_ok: true,
            last_write_ms: Some(5),
            last_error: None,
            peers: records
                .iter()
                .map(|(host, counter)| StorageRecord {
                    host: (*host).into(),
                    counter: *counter,
                    written_at_ms: 0,
                    self_fenced: false,
                    running_vms: 1,
                })
                .collect(),
        }
    }

    #[test]
    fn a_counter_advances_only_when_it_changes() {
        let views = HaViews::default();
        let observer = HostId::new_random();
        views.record_heartbeat(observer, 1_000, &[view(&[("h2", 7)])], &[]);
        views.record_heartbeat(observer, 2_000, &[view(&[("h2", 7)])], &[]);
        let seen = views.sightings();
        assert_eq!((seen[0].counter, seen[0].advanced_at_ms, seen[0].read_at_ms), (7, 1_000, 2_000));
        views.record_heartbeat(observer, 3_000, &[view(&[("h2", 8)])], &[]);
        let seen = views.sightings();
        assert_eq!((seen[0].counter, seen[0].advanced_at_ms, seen[0].read_at_ms), (8, 3_000, 3_000));
        assert_eq!(views.own_writes()[&observer][0], OwnWrite { storage_url: "nfs://s/p".into(), ok: true, at_ms: 5 });
    }

    fn report(vm: VmId, state: AgentVmState) -> api::agent::VmReport {
        api::agent::VmReport { vm_id: vm, name: "vm".into(), state, generation: 1, stop_reason: None }
    }

    #[test]
    fn only_a_vm_seen_running_and_then_gone_has_crashed() {
        let views = HaViews::default();
        let (host, other) = (HostId::new_random(), HostId::new_random());
        let (vm, fresh) = (VmId::new_random(), VmId::new_random());
        views.record_inventory(host, &[report(vm, AgentVmState::Running)]);
        assert!(!views.crashed(host, fresh), "a VM never listed (its start still on the way) has not crashed");
        views.record_inventory(host, &[]);
        assert!(views.crashed(host, vm), "running, then gone without a reason: reset under it");
        assert!(!views.crashed(other, vm));
        views.record_inventory(host, &[report(vm, AgentVmState::Stopped)]);
        assert!(!views.crashed(host, vm), "listed again (stopped on purpose)");
        views.record_inventory(host, &[]);
        assert!(!views.crashed(host, vm), "a stopped VM that is undefined did not crash");
        views.record_inventory(host, &[report(fresh, AgentVmState::Crashed)]);
        assert!(views.crashed(host, fresh));
    }
}
