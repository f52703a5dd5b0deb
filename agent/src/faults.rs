//! Fault injection for simulated hosts: network cuts between a host and the management servers, splits
//! between groups of hosts (peer heartbeats dropped), and storage cuts (heartbeat writes fail). The
//! simulator hands one shared [`NetworkFaults`] to the agents of a pool through `AgentConfig::faults`;
//! the agent's transports consult it (a real agent has none). Cuts act inside the agent's own transport
//! code, so the code under test is the code that runs on real hosts, only the wire is cut.

use std::collections::BTreeSet;
use std::sync::Mutex;
use tokio::sync::watch;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct FaultState {
    /// Hosts that cannot reach any management server.
    server_cut: BTreeSet<String>,
    /// Hosts whose peer heartbeats go nowhere and who hear no peer (their whole network is down).
    peer_cut: BTreeSet<String>,
    /// Hosts whose storage heartbeat writes and reads fail.
    storage_cut: BTreeSet<String>,
    /// A split of the network into two groups: datagrams between them are dropped, and only the first
    /// group still reaches the servers. Hosts in neither group are unaffected.
    split: Option<(BTreeSet<String>, BTreeSet<String>)>,
}

/// The faults currently on a simulated pool's network and storage, keyed by host name.
#[derive(Debug)]
pub struct NetworkFaults {
    state: Mutex<FaultState>,
    /// Ticks on every change, so a connected agent drops its session as soon as it is cut.
    changed: watch::Sender<u64>,
}

impl Default for NetworkFaults {
    fn default() -> Self {
        NetworkFaults { state: Mutex::default(), changed: watch::channel(0).0 }
    }
}

impl NetworkFaults {
    pub fn new() -> Self {
        Self::default()
    }

    fn change(&self, edit: impl FnOnce(&mut FaultState)) {
        edit(&mut self.state.lock().unwrap());
        self.changed.send_modify(|counter| *counter += 1);
    }

    /// Ticks whenever a fault is set or cleared.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// `host` loses (`true`) or regains the management servers.
    pub fn set_server_cut(&self, host: &str, cut: bool) {
        self.change(|state| set(&mut state.server_cut, host, cut));
    }

    /// `host` loses (`true`) or regains its peers: datagrams neither leave nor arrive.
    pub fn set_peer_cut(&self, host: &str, cut: bool) {
        self.change(|state| set(&mut state.peer_cut, host, cut));
    }

    /// `host`'s storage heartbeat writes fail (`true`) or work again.
    pub fn set_storage_cut(&self, host: &str, cut: bool) {
        self.change(|state| set(&mut state.storage_cut, host, cut));
    }

    /// Split the network between `first` and `second`; the servers stay reachable from `first` only.
    pub fn split(&self, first: &[&str], second: &[&str]) {
        let group = |hosts: &[&str]| hosts.iter().map(|host| (*host).to_owned()).collect();
        self.change(|state| state.split = Some((group(first), group(second))));
    }

    pub fn unsplit(&self) {
        self.change(|state| state.split = None);
    }

    /// Whether `host` can reach the management servers.
    pub fn server_reachable(&self, host: &str) -> bool {
        let state = self.state.lock().unwrap();
        !state.server_cut.contains(host) && !state.split.as_ref().is_some_and(|(_, second)| second.contains(host))
    }

    /// Whether a datagram from `from` reaches `to`.
    pub fn peer_reachable(&self, from: &str, to: &str) -> bool {
        let state = self.state.lock().unwrap();
        if state.peer_cut.contains(from) || state.peer_cut.contains(to) {
            return false;
        }
        match &state.split {
            Some((first, second)) => {
                !(first.contains(from) && second.contains(to) || second.contains(from) && first.contains(to))
            }
            None => true,
        }
    }

    /// Whether `host` can write to (and read from) its storage.
    pub fn storage_ok(&self, host: &str) -> bool {
        !self.state.lock().unwrap().storage_cut.contains(host)
    }

    /// One line per fault in effect, for the simulator's `list`.
    pub fn describe(&self) -> Vec<String> {
        let state = self.state.lock().unwrap();
        let names = |set: &BTreeSet<String>| set.iter().cloned().collect::<Vec<_>>().join(",");
        let mut lines = Vec::new();
        if !state.server_cut.is_empty() {
            lines.push(format!("cut from the servers: {}", names(&state.server_cut)));
        }
        if !state.peer_cut.is_empty() {
            lines.push(format!("cut from their peers: {}", names(&state.peer_cut)));
        }
        if !state.storage_cut.is_empty() {
            lines.push(format!("cut from storage: {}", names(&state.storage_cut)));
        }
        if let Some((first, second)) = &state.split {
            lines.push(format!("split: {}|{} (servers with the first group)", names(first), names(second)));
        }
        lines
    }
}

fn set(set: &mut BTreeSet<String>, host: &str, member: bool) {
    if member {
        set.insert(host.to_owned());
    } else {
        set.remove(host);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_split_drops_datagrams_across_groups_and_keeps_servers_with_the_first() {
        let faults = NetworkFaults::new();
        faults.split(&["a", "b"], &["c"]);
        assert!(faults.peer_reachable("a", "b"));
        assert!(!faults.peer_reachable("a", "c") && !faults.peer_reachable("c", "b"));
        assert!(faults.peer_reachable("a", "d"), "hosts outside both groups are unaffected");
        assert!(faults.server_reachable("a") && !faults.server_reachable("c"));
        faults.unsplit();
        assert!(faults.peer_reachable("a", "c") && faults.server_reachable("c"));
    }

    #[test]
    fn cuts_are_per_host_and_heal() {
        let faults = NetworkFaults::new();
        let mut changes = faults.changes();
        faults.set_server_cut("a", true);
        faults.set_storage_cut("b", true);
        faults.set_peer_cut("c", true);
        assert!(changes.has_changed().unwrap());
        changes.mark_unchanged();
        assert!(!faults.server_reachable("a") && faults.server_reachable("b"));
        assert!(!faults.storage_ok("b") && faults.storage_ok("a"));
        assert!(
            !faults.peer_reachable("a", "c") && !faults.peer_reachable("c", "a") && faults.peer_reachable("a", "b")
        );
        assert_eq!(faults.describe().len(), 3);
        faults.set_server_cut("a", false);
        assert!(faults.server_reachable("a"));
        assert!(changes.has_changed().unwrap());
    }
}
