//! Wire types for the HA engine: switches, providers, timing settings, host HA states, transitions, incidents.
//!
//! HA is in effect for a host only when its zone, its cluster and the host itself have it on
//! (CloudStack's semantics); a host also has an HA provider (`kvm` for real hosts, `sim` for
//! simulated ones). The engine's view of each host is a [`HostHaState`]; every change of it is a
//! stored [`HaTransition`], and each failover is an [`HaIncident`] with its timeline.

use crate::ids::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// An HA incident's identifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct IncidentId(pub uuid::Uuid);

impl IncidentId {
    pub fn new_random() -> Self {
        IncidentId(uuid::Uuid::new_v4())
    }
}

impl std::fmt::Display for IncidentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for IncidentId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s).map(IncidentId)
    }
}

/// How the engine checks and fences a host: `kvm` (a real host with a BMC) or `sim` (a simulated
/// host of `parapet-sim`, whose simulated BMC really cuts its power).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HaProvider {
    #[default]
    Kvm,
    Sim,
}

impl HaProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            HaProvider::Kvm => "kvm",
            HaProvider::Sim => "sim",
        }
    }
}

/// A host's HA state (REFERENCE.md's state machine). `ineligible` comes with a reason.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostHaState {
    /// HA is off at the zone, the cluster or the host.
    #[default]
    Disabled,
    /// HA is on but the host cannot be protected (OOBM off, no healthy neighbour, no shared
    /// storage, maintenance); the reason says which.
    Ineligible,
    /// Healthy: heartbeats arrive.
    Available,
    /// Network heartbeats missed for the suspect timeout.
    Suspect,
    /// Looking at the storage heartbeat.
    Checking,
    /// Silent on the network but alive on storage: isolated, not dead; not fenced.
    Degraded,
    /// A RESET through OOBM is being tried.
    Recovering,
    /// Reset done; waiting for the host to come back.
    Recovered,
    /// OOBM power OFF issued; waiting for STATUS = Off.
    Fencing,
    /// Confirmed off (or provably self-fenced): its VMs may start elsewhere.
    Fenced,
}

impl HostHaState {
    pub const ALL: [HostHaState; 10] = [
        HostHaState::Disabled,
        HostHaState::Ineligible,
        HostHaState::Available,
        HostHaState::Suspect,
        HostHaState::Checking,
        HostHaState::Degraded,
        HostHaState::Recovering,
        HostHaState::Recovered,
        HostHaState::Fencing,
        HostHaState::Fenced,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HostHaState::Disabled => "disabled",
            HostHaState::Ineligible => "ineligible",
            HostHaState::Available => "available",
            HostHaState::Suspect => "suspect",
            HostHaState::Checking => "checking",
            HostHaState::Degraded => "degraded",
            HostHaState::Recovering => "recovering",
            HostHaState::Recovered => "recovered",
            HostHaState::Fencing => "fencing",
            HostHaState::Fenced => "fenced",
        }
    }

    pub fn parse(text: &str) -> Option<HostHaState> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }
}

/// `PUT /zones/{id}/ha` and `PUT /hosts/{id}/ha`: turn HA on or off.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetHaEnabledRequest {
    pub enabled: bool,
    /// Hosts only: the HA provider. Left out, it follows the host's hypervisor (`sim` for a
    /// simulated host, else `kvm`); a `sim` provider on a real host is refused.
    #[serde(default)]
    pub provider: Option<HaProvider>,
}

/// `PUT /clusters/{id}/ha`: turn cluster HA on or off; with `include_hosts`, every host of the
/// cluster gets the same switch in the same transaction (CloudStack's "include hosts").
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetClusterHaRequest {
    pub enabled: bool,
    #[serde(default)]
    pub include_hosts: bool,
}

/// A cluster's HA switch and the hosts it changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterHaSwitched {
    pub cluster_id: ClusterId,
    pub ha_enabled: bool,
    /// Hosts whose own switch was set too (empty without `include_hosts`).
    pub hosts_changed: Vec<HostId>,
}

/// A cluster's HA timing settings, in milliseconds. Defaults: heartbeat 1 s, suspect after 3 s of
/// network silence, storage timeout 4 s, self-fence 8 s, fence retry back-off 1 s doubling to 30 s.
/// Every timeout must exceed the heartbeat interval, and the self-fence timeout the storage timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaTimingSettings {
    pub heartbeat_interval_ms: u64,
    /// Network silence after which a host is Suspect.
    pub suspect_after_ms: u64,
    /// A storage heartbeat counter that has not advanced for this long counts as stopped.
    pub storage_timeout_ms: u64,
    /// An agent that reached neither a management server nor its storage for this long stops its
    /// VMs (sent to agents in `Welcome`).
    pub self_fence_timeout_ms: u64,
    /// First wait before a failed fence is retried; doubled on each retry up to the maximum.
    pub fence_backoff_initial_ms: u64,
    pub fence_backoff_max_ms: u64,
}

impl Default for HaTimingSettings {
    fn default() -> Self {
        HaTimingSettings {
            heartbeat_interval_ms: 1000,
            suspect_after_ms: 3000,
            storage_timeout_ms: 4000,
            self_fence_timeout_ms: 8000,
            fence_backoff_initial_ms: 1000,
            fence_backoff_max_ms: 30_000,
        }
    }
}

/// `GET /clusters/{id}/ha/settings`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterHaSettings {
    pub cluster_id: ClusterId,
    pub ha_enabled: bool,
    pub timing: HaTimingSettings,
}

/// `PUT /clusters/{id}/ha/settings`: absent fields stay as they are; the result is validated as a
/// whole (a 400 names the field).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateHaTimingRequest {
    #[serde(default)]
    pub heartbeat_interval_ms: Option<u64>,
    #[serde(default)]
    pub suspect_after_ms: Option<u64>,
    #[serde(default)]
    pub storage_timeout_ms: Option<u64>,
    #[serde(default)]
    pub self_fence_timeout_ms: Option<u64>,
    #[serde(default)]
    pub fence_backoff_initial_ms: Option<u64>,
    #[serde(default)]
    pub fence_backoff_max_ms: Option<u64>,
}

/// One change of a host's HA state, as stored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaTransition {
    pub host_id: HostId,
    pub from: HostHaState,
    pub to: HostHaState,
    /// What caused it, e.g. `network-heartbeat-missed`, `fence-confirmed`.
    pub event: String,
    /// Why, in words.
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// `GET /hosts/{id}/ha`: a host's switches, provider, HA state and latest transitions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostHa {
    pub host_id: HostId,
    pub host_name: String,
    pub cluster_id: ClusterId,
    /// The host's own switch.
    pub enabled: bool,
    /// Zone, cluster and host all on.
    pub enabled_effective: bool,
    pub provider: HaProvider,
    pub state: HostHaState,
    /// Why the host is in its state (always set for `ineligible`).
    pub reason: Option<String>,
    /// When it entered its state.
    pub since: Option<DateTime<Utc>>,
    /// Newest first (at most 100).
    pub transitions: Vec<HaTransition>,
}

/// Kinds of incident events. Strings, not an enum, so that new kinds reach older consoles as text.
pub mod incident_event_kind {
    /// The host stopped answering (its first step out of Available).
    pub const DETECTED: &str = "detected";
    /// A change of the host's HA state (the message names both states).
    pub const STATE_CHANGED: &str = "state-changed";
    /// OOBM power OFF issued.
    pub const FENCE_ISSUED: &str = "fence-issued";
    /// The BMC confirmed Off, or the host provably fenced itself.
    pub const FENCED: &str = "fenced";
    /// The fence could not be confirmed; retrying with back-off.
    pub const FENCE_FAILED: &str = "fence-failed";
    /// A VM was started on another host (with from, to and the seconds since detection).
    pub const VM_RESTARTED: &str = "vm-restarted";
    /// A VM could not be restarted (the message says why).
    pub const VM_RESTART_FAILED: &str = "vm-restart-failed";
    /// The incident ended (the verdict says how).
    pub const RESOLVED: &str = "resolved";
}

/// One failover: a host that failed, from detection to the end of its VMs' restarts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HaIncident {
    pub id: IncidentId,
    pub host_id: HostId,
    pub host_name: String,
    pub cluster_id: Option<ClusterId>,
    pub started_at: DateTime<Utc>,
    /// `null` while it runs.
    pub ended_at: Option<DateTime<Utc>>,
    /// How it ended, e.g. `all protected VMs restarted`, `host came back`.
    pub verdict: Option<String>,
    /// From start to end (or to now while it runs).
    pub duration_seconds: f64,
}

/// One step of an incident's timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HaIncidentEvent {
    pub at: DateTime<Utc>,
    /// See [`incident_event_kind`].
    pub kind: String,
    pub vm_id: Option<VmId>,
    pub vm_name: Option<String>,
    pub from_host_id: Option<HostId>,
    pub to_host_id: Option<HostId>,
    /// For a VM restart: seconds from the incident's start to the VM running elsewhere.
    pub seconds: Option<f64>,
    pub message: String,
}

/// `GET /ha/incidents/{id}`: an incident with its timeline, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HaIncidentDetail {
    pub incident: HaIncident,
    pub events: Vec<HaIncidentEvent>,
}

/// Query of `GET /ha/incidents`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HaIncidentQuery {
    /// Only this host's incidents.
    #[serde(default)]
    pub host_id: Option<HostId>,
    /// At most this many, newest first [default 100, at most 1000].
    #[serde(default)]
    pub limit: Option<u32>,
}

/// A live HA change for the console (carried by `Event::Ha`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "ha", rename_all = "kebab-case")]
pub enum HaEvent {
    /// A host's HA state changed.
    HostState { host_id: HostId, transition: HaTransition, reason: Option<String> },
    /// An incident began, changed or ended; `event` is the step just recorded.
    Incident { incident: HaIncident, event: Option<HaIncidentEvent> },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_parse_their_own_names() {
        for state in HostHaState::ALL {
            assert_eq!(HostHaState::parse(state.as_str()), Some(state));
            assert_eq!(serde_json::to_value(state).unwrap(), state.as_str());
        }
        assert_eq!(HostHaState::parse("zombie"), None);
    }

    #[test]
    fn timing_updates_refuse_unknown_fields() {
        assert!(serde_json::from_str::<UpdateHaTimingRequest>(r#"{"suspect_ms":1}"#).is_err());
        let request: UpdateHaTimingRequest = serde_json::from_str(r#"{"suspect_after_ms":5000}"#).unwrap();
        assert_eq!(request.suspect_after_ms, Some(5000));
    }

    #[test]
    fn cluster_switch_defaults_to_cluster_only() {
        let request: SetClusterHaRequest = serde_json::from_str(r#"{"enabled":true}"#).unwrap();
        assert!(!request.include_hosts);
    }
}
