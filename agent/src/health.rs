//! What the agent knows about its own reachability, shared by its tasks: when a management server last
//! proved that it heard the agent, what each storage heartbeat write did, which cluster peers were heard
//! lately, the HA timing the server sent, and whether the agent has fenced itself. The session loop
//! reports it in heartbeats; the guardian ([`crate::guardian`]) feeds it to the self-fence rule.
//!
//! It is also the **start gate**: a command that makes a VM run here passes [`Health::begin_start`] at the
//! moment it starts, under the same lock a self-fence is recorded under. After the fence every start is
//! refused; a start already past the gate is counted until it has finished, and the storage heartbeat
//! never publishes "fenced, runs no VM" while one is counted (see [`Health::start_gate`]).

use crate::self_fence::{self, FenceInputs, FenceTimeouts, Verdict};
use api::agent::{AgentStopReason, Peer, StorageRecord, StorageView, VmReport};
use api::{HostId, VmId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The HA timing in effect (defaults until the server's `Welcome` says otherwise).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HaSettings {
    pub heartbeat_interval: Duration,
    pub self_fence_timeout: Duration,
    pub storage_timeout: Duration,
    pub peer_timeout: Duration,
}

impl Default for HaSettings {
    fn default() -> Self {
        HaSettings {
            heartbeat_interval: Duration::from_secs(1),
            self_fence_timeout: Duration::from_millis(api::agent::DEFAULT_SELF_FENCE_TIMEOUT_MS),
            storage_timeout: Duration::from_millis(api::agent::DEFAULT_STORAGE_TIMEOUT_MS),
            peer_timeout: Duration::from_millis(api::agent::DEFAULT_PEER_TIMEOUT_MS),
        }
    }
}

impl HaSettings {
    /// From a `Welcome`; intervals below 100 ms are raised to it (a zero would spin the loops).
    pub fn from_welcome(heartbeat_ms: u64, self_fence_ms: u64, storage_ms: u64, peer_ms: u64) -> Self {
        let at_least = |ms: u64| Duration::from_millis(ms.max(100));
        HaSettings {
            heartbeat_interval: at_least(heartbeat_ms),
            self_fence_timeout: at_least(self_fence_ms),
            storage_timeout: at_least(storage_ms),
            peer_timeout: at_least(peer_ms),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct StorageState {
    /// Monotonic time of the last successful write of the own record.
    last_ok: Option<Instant>,
    last_ok_wall_ms: Option<i64>,
    write_ok: bool,
    last_error: Option<String>,
    peers: Vec<StorageRecord>,
    /// Set while the storage counts as lost (writes failing for the storage timeout): the error then.
    lost: Option<String>,
}

#[derive(Debug)]
struct State {
    host_id: Option<HostId>,
    settings: HaSettings,
    peers: Vec<Peer>,
    /// When the agent SENT the latest message a management server proved it recorded: the heartbeat
    /// of the latest `HeartbeatAck`, or the `Hello` of the latest `Welcome` (the agent's start before
    /// any). Never the arrival of a frame: a frame from a server proves nothing about what it heard.
    last_server_contact: Instant,
    storage: BTreeMap<String, StorageState>,
    heard: HashMap<HostId, Instant>,
    /// Why the agent fenced itself; cleared by the next `Welcome`.
    fenced: Option<String>,
    /// Starts past the start gate that have not finished yet.
    starts_in_flight: u32,
    stop_reasons: HashMap<VmId, AgentStopReason>,
}

/// The start gate at one moment (see [`Health::start_gate`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartGate {
    /// The agent has fenced itself: no start can pass the gate until a server welcomes it again.
    pub fenced: bool,
    /// Starts that passed the gate before and have not finished: their VMs may not be listed yet.
    pub starts_in_flight: u32,
}

/// A start that passed the gate; it counts as in flight until dropped.
#[derive(Debug)]
#[must_use = "the start counts as in flight only while the permit lives"]
pub struct StartPermit<'a> {
    health: &'a Health,
}

impl Drop for StartPermit<'_> {
    fn drop(&mut self) {
        let mut state = self.health.state.lock().unwrap();
        state.starts_in_flight = state.starts_in_flight.saturating_sub(1);
    }
}

#[derive(Debug)]
pub struct Health {
    started: Instant,
    state: Mutex<State>,
    /// Ticks when the agent fences itself, so the session ends and a fresh `Welcome` must follow.
    fenced_tick: watch::Sender<u64>,
}

impl Health {
    /// A fresh view at the agent's start: the start counts as the last contact on every channel, so a
    /// restarted agent gets the full timeouts before it judges itself cut off.
    pub fn new(storage_names: impl IntoIterator<Item = String>) -> Self {
        let now = Instant::now();
        Health {
            started: now,
            state: Mutex::new(State {
                host_id: None,
                settings: HaSettings::default(),
                peers: Vec::new(),
                last_server_contact: now,
                storage: storage_names.into_iter().map(|name| (name, StorageState::default())).collect(),
                heard: HashMap::new(),
                fenced: None,
                starts_in_flight: 0,
                stop_reasons: HashMap::new(),
            }),
            fenced_tick: watch::channel(0).0,
        }
    }

    fn ms(&self, at: Instant) -> i64 {
        at.saturating_duration_since(self.started).as_millis() as i64
    }

    pub fn settings(&self) -> HaSettings {
        self.state.lock().unwrap().settings
    }

    pub fn host_id(&self) -> Option<HostId> {
        self.state.lock().unwrap().host_id
    }

    pub fn peers(&self) -> Vec<Peer> {
        self.state.lock().unwrap().peers.clone()
    }

    /// A server welcomed the agent: its id, timing and peers; a self-fence ends here. The server
    /// recorded the host (with a heartbeat time) before it sent the welcome, so the welcome is contact
    /// from `hello_sent`, when the agent sent its `Hello`.
    pub fn welcomed(&self, host_id: HostId, settings: HaSettings, peers: Vec<Peer>, hello_sent: Instant) {
        let mut state = self.state.lock().unwrap();
        state.host_id = Some(host_id);
        state.settings = settings;
        state.peers = peers.into_iter().filter(|peer| peer.host_id != host_id).collect();
        state.last_server_contact = state.last_server_contact.max(hello_sent);
        if let Some(reason) = state.fenced.take() {
            tracing::info!("welcomed again: the self-fence ({reason}) is over; VMs may start");
        }
    }

    pub fn set_peers(&self, peers: Vec<Peer>) {
        let mut state = self.state.lock().unwrap();
        let own = state.host_id;
        state.peers = peers.into_iter().filter(|peer| Some(peer.host_id) != own).collect();
    }

    /// A server acknowledged a heartbeat: it recorded it, so the engine has heard the agent at least as
    /// late as `sent_at`, when the agent sent that heartbeat. That (not the ack's arrival) is the contact.
    pub fn heartbeat_acknowledged(&self, sent_at: Instant) {
        let mut state = self.state.lock().unwrap();
        state.last_server_contact = state.last_server_contact.max(sent_at);
    }

    /// How long ago the agent sent the latest message a server proved it recorded.
    pub fn since_server_contact(&self) -> Duration {
        self.state.lock().unwrap().last_server_contact.elapsed()
    }

    /// The outcome of one storage heartbeat: the own write (`Ok(began)`: it succeeded, and began then),
    /// and the peers' records read (`None` when the read failed or did not happen).
    ///
    /// A successful write counts from when it BEGAN: other hosts may read the new record (and the
    /// engine count the host alive on storage) as soon as the rename lands, which can be long before
    /// a slow fsync returns; the agent's storage contact must never be later than the engine's.
    pub fn storage_beat(&self, name: &str, written: Result<Instant, String>, read: Option<Vec<StorageRecord>>) {
        let mut state = self.state.lock().unwrap();
        let entry = state.storage.entry(name.to_owned()).or_default();
        match written {
            Ok(began) => {
                entry.last_ok = entry.last_ok.max(Some(began));
                entry.last_ok_wall_ms = Some(chrono::Utc::now().timestamp_millis());
                entry.write_ok = true;
                entry.last_error = None;
            }
            Err(error) => {
                entry.write_ok = false;
                entry.last_error = Some(error);
            }
        }
        entry.peers = read.unwrap_or_default();
    }

    /// What the heartbeat reports about each storage it has tried to write. A storage not tried yet
    /// (right after the start) is left out: reported as "not written" it read as a failed write, and a
    /// whole cluster starting at once raised a primary-storage-down alert for its first second.
    pub fn storage_views(&self) -> Vec<StorageView> {
        let state = self.state.lock().unwrap();
        state
            .storage
            .iter()
            .filter(|(_, entry)| entry.last_ok.is_some() || entry.last_error.is_some())
            .map(|(name, entry)| StorageView {
                name: name.clone(),
                write_ok: entry.write_ok,
                last_write_ms: entry.last_ok_wall_ms,
                last_error: entry.last_error.clone(),
                peers: entry.peers.clone(),
            })
            .collect()
    }

    /// A valid heartbeat datagram from `peer` arrived.
    pub fn peer_heard(&self, peer: HostId) {
        self.state.lock().unwrap().heard.insert(peer, Instant::now());
    }

    /// The cluster peers heard within the peer timeout.
    pub fn peers_heard(&self) -> Vec<HostId> {
        let state = self.state.lock().unwrap();
        let mut heard: Vec<HostId> = state
            .peers
            .iter()
            .filter(|peer| state.heard.get(&peer.host_id).is_some_and(|at| at.elapsed() <= state.settings.peer_timeout))
            .map(|peer| peer.host_id)
            .collect();
        heard.sort();
        heard
    }

    /// The self-fence rule applied to the current view.
    pub fn verdict(&self) -> Verdict {
        let state = self.state.lock().unwrap();
        let now = Instant::now();
        let last_storage_write = state.storage.values().filter_map(|entry| entry.last_ok).max();
        let cluster_peers: Vec<HostId> = state.peers.iter().map(|peer| peer.host_id).collect();
        let heard: Vec<(HostId, i64)> = state.heard.iter().map(|(id, at)| (*id, self.ms(*at))).collect();
        let settings = state.settings;
        self_fence::decide(&FenceInputs {
            now_ms: self.ms(now),
            last_server_contact_ms: self.ms(state.last_server_contact),
            last_storage_write_ms: last_storage_write.map(|at| self.ms(at)),
            own_id: state.host_id,
            cluster_peers: &cluster_peers,
            peers_heard: &heard,
            timeouts: FenceTimeouts {
                self_fence_ms: settings.self_fence_timeout.as_millis() as i64,
                lead_ms: settings.heartbeat_interval.as_millis() as i64,
                peer_ms: settings.peer_timeout.as_millis() as i64,
            },
        })
    }

    /// Why the agent is fenced, if it is.
    pub fn fenced(&self) -> Option<String> {
        self.state.lock().unwrap().fenced.clone()
    }

    /// Why a VM may not start here now (on `storage`, when it is known): the agent fenced itself, or
    /// the storage is lost to this host.
    pub fn start_refusal(&self, storage: Option<&str>) -> Option<String> {
        Self::refusal(&self.state.lock().unwrap(), storage)
    }

    fn refusal(state: &State, storage: Option<&str>) -> Option<String> {
        if let Some(reason) = &state.fenced {
            return Some(format!(
                "this host fenced itself ({reason}); it starts no VM until a management server welcomes it again"
            ));
        }
        let lost = storage.and_then(|storage| Some((storage, state.storage.get(storage)?.lost.as_ref()?)));
        lost.map(|(storage, error)| {
            format!("primary storage {storage} is lost to this host (heartbeat writes fail: {error})")
        })
    }

    /// The start gate: checked at the moment a VM starts, under the lock [`Health::fence`] takes. Refused
    /// once the agent has fenced itself (or the VM's storage is lost); otherwise the start counts as in
    /// flight until the permit is dropped, which the caller does only after the hypervisor call returned
    /// (and after stopping the VM again if the agent fenced itself meanwhile).
    pub fn begin_start(&self, storage: Option<&str>) -> Result<StartPermit<'_>, String> {
        let mut state = self.state.lock().unwrap();
        if let Some(reason) = Self::refusal(&state, storage) {
            return Err(reason);
        }
        state.starts_in_flight += 1;
        Ok(StartPermit { health: self })
    }

    /// The start gate now, in one look. Taken BEFORE listing the VMs, it makes the listing complete:
    /// when `fenced` and no start is in flight, no VM can start until a new welcome, so a listing that
    /// follows shows every VM that can run here.
    pub fn start_gate(&self) -> StartGate {
        let state = self.state.lock().unwrap();
        StartGate { fenced: state.fenced.is_some(), starts_in_flight: state.starts_in_flight }
    }

    /// Record the self-fence; `false` when the agent was already fenced.
    pub fn fence(&self, reason: String) -> bool {
        let newly = {
            let mut state = self.state.lock().unwrap();
            if state.fenced.is_some() {
                false
            } else {
                state.fenced = Some(reason);
                true
            }
        };
        if newly {
            self.fenced_tick.send_modify(|tick| *tick += 1);
        }
        newly
    }

    /// Ticks on every self-fence.
    pub fn fences(&self) -> watch::Receiver<u64> {
        self.fenced_tick.subscribe()
    }

    /// Storages that have just become lost (no successful write for the storage timeout), with the last
    /// error; storages that write again are no longer lost.
    pub fn update_lost_storage(&self) -> Vec<(String, String)> {
        let mut state = self.state.lock().unwrap();
        let now = self.ms(Instant::now());
        let timeout = state.settings.storage_timeout.as_millis() as i64;
        let mut newly = Vec::new();
        for (name, entry) in state.storage.iter_mut() {
            let last_ok = self.ms(entry.last_ok.unwrap_or(self.started));
            let lost = self_fence::storage_lost(now, last_ok, timeout);
            match (lost, entry.lost.is_some()) {
                (true, false) => {
                    let error = entry.last_error.clone().unwrap_or_else(|| "no successful write".to_owned());
                    entry.lost = Some(error.clone());
                    newly.push((name.clone(), error));
                }
                (false, true) => {
                    tracing::info!(storage = %name, "storage heartbeat writes succeed again");
                    entry.lost = None;
                }
                _ => {}
            }
        }
        newly
    }

    /// The storages lost now, with the error that made each one lost.
    pub fn lost_storages(&self) -> Vec<(String, String)> {
        let state = self.state.lock().unwrap();
        state.storage.iter().filter_map(|(name, entry)| Some((name.clone(), entry.lost.clone()?))).collect()
    }

    /// Why VMs cannot start on `storage` now (it is lost), if so.
    pub fn storage_refusal(&self, storage: &str) -> Option<String> {
        let state = self.state.lock().unwrap();
        state
            .storage
            .get(storage)
            .and_then(|entry| entry.lost.clone())
            .map(|error| format!("primary storage {storage} is lost to this host (heartbeat writes fail: {error})"))
    }

    /// Remember why the agent stopped `vm` on its own, for the inventories that follow.
    pub fn set_stop_reason(&self, vm: VmId, reason: AgentStopReason) {
        self.state.lock().unwrap().stop_reasons.insert(vm, reason);
    }

    /// The VM was started again: its stop reason no longer applies.
    pub fn clear_stop_reason(&self, vm: VmId) {
        self.state.lock().unwrap().stop_reasons.remove(&vm);
    }

    /// Add the agent's own stop reasons to an inventory.
    pub fn annotate(&self, mut vms: Vec<VmReport>) -> Vec<VmReport> {
        let mut state = self.state.lock().unwrap();
        // VMs that are gone (destroyed) need their reason no more.
        state.stop_reasons.retain(|vm, _| vms.iter().any(|report| report.vm_id == *vm));
        for report in &mut vms {
            if let Some(reason) = state.stop_reasons.get(&report.vm_id) {
                report.stop_reason = Some(reason.clone());
            }
        }
        vms
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::agent::AgentVmState;

    #[test]
    fn a_storage_not_tried_yet_is_not_reported_as_failing() {
        let health = Health::new(["nfs://a".to_owned(), "nfs://b".to_owned()]);
        assert!(health.storage_views().is_empty(), "nothing tried yet: nothing to report");
        health.storage_beat("nfs://b", Err("EIO".into()), None);
        let views = health.storage_views();
        assert_eq!(views.len(), 1);
        assert_eq!((views[0].name.as_str(), views[0].write_ok), ("nfs://b", false));
    }

    #[tokio::test(start_paused = true)]
    async fn a_storage_is_lost_after_the_timeout_and_found_again_after_a_write() {
        let health = Health::new(["nfs://a".to_owned(), "nfs://b".to_owned()]);
        health.storage_beat("nfs://a", Ok(Instant::now()), Some(Vec::new()));
        health.storage_beat("nfs://b", Ok(Instant::now()), Some(Vec::new()));
        tokio::time::advance(Duration::from_secs(2)).await;
        health.storage_beat("nfs://a", Ok(Instant::now()), None);
        health.storage_beat("nfs://b", Err("EIO".into()), None);
        assert!(health.update_lost_storage().is_empty());
        tokio::time::advance(Duration::from_millis(2500)).await;
        assert_eq!(health.update_lost_storage(), vec![("nfs://b".to_owned(), "EIO".to_owned())]);
        assert!(health.update_lost_storage().is_empty(), "reported once");
        assert_eq!(health.lost_storages(), vec![("nfs://b".to_owned(), "EIO".to_owned())], "and lost until written");
        assert!(health.storage_refusal("nfs://b").unwrap().contains("EIO"));
        assert!(health.storage_refusal("nfs://a").is_none());
        health.storage_beat("nfs://b", Ok(Instant::now()), None);
        health.update_lost_storage();
        assert!(health.storage_refusal("nfs://b").is_none());
        let views = health.storage_views();
        assert_eq!(views.len(), 2);
        assert!(views.iter().all(|view| view.write_ok && view.last_error.is_none()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_welcome_ends_a_self_fence_and_filters_the_own_host_from_the_peers() {
        let health = Health::new(Vec::new());
        let mut fences = health.fences();
        assert!(health.fence("isolated".into()));
        assert!(!health.fence("again".into()));
        assert!(fences.has_changed().unwrap());
        fences.mark_unchanged();
        let own = HostId::new_random();
        let other = HostId::new_random();
        let peer = |host_id| Peer { host_id, name: "p".into(), address: "127.0.0.1:1".into() };
        health.welcomed(own, HaSettings::default(), vec![peer(own), peer(other)], Instant::now());
        assert_eq!(health.fenced(), None);
        assert_eq!(health.peers().len(), 1);
        health.peer_heard(other);
        health.peer_heard(HostId::new_random());
        assert_eq!(health.peers_heard(), vec![other], "strangers are not peers");
        tokio::time::advance(Duration::from_millis(3100)).await;
        assert!(health.peers_heard().is_empty(), "heard too long ago");
    }

    #[test]
    fn inventories_carry_stop_reasons_until_the_vm_is_gone() {
        let health = Health::new(Vec::new());
        let vm = VmId::new_random();
        let report = |vm_id| VmReport {
            vm_id,
            name: "v".into(),
            state: AgentVmState::Stopped,
            generation: 1,
            stop_reason: None,
        };
        health.set_stop_reason(vm, AgentStopReason::SelfFenced { reason: "isolated".into() });
        let annotated = health.annotate(vec![report(vm)]);
        assert!(matches!(annotated[0].stop_reason, Some(AgentStopReason::SelfFenced { .. })));
        health.annotate(Vec::new());
        assert_eq!(health.annotate(vec![report(vm)])[0].stop_reason, None);
    }
}
