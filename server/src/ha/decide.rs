//! The HA engine's decision core (pure): `decide(state, observations, now_ms) -> Decision`.
//!
//! No IO, no clock, no randomness: the runtime (`ha/run.rs`) gathers [`Observations`] from the database,
//! the agents and the BMCs, calls [`decide`], stores the new [`EngineState`] (JSON) and executes the
//! [`Action`]s; the scenario runner (`ha/scenario.rs`) does the same on virtual time. A new leader loads
//! the stored state and resumes, so a crash between two steps leaves nothing half-done: every action
//! is either re-issued (it carries an attempt number, results name it) or visible in the next
//! observations.
//!
//! The rules (REFERENCE.md "Host HA state machine", "Never two copies"; docs in the submodules):
//! * [`host`]: the per-host state machine Disabled / Ineligible / Available / Suspect / Checking /
//!   Degraded / Recovering / Recovered / Fencing / Fenced, with fencing retries and the three ways a
//!   host is known not to run its VMs (contract rule 5).
//! * [`restart`]: which VMs restart, in which order, where (through the failover planner), retries.
//! * [`storage`]: the storage heartbeat verdict per host and the primary storage outage view.

mod host;
mod restart;
mod storage;
#[cfg(test)]
mod tests;

use api::v1::{AlertSeverity, OobmErrorKind, PowerState, RestartPriority, VmState};
use api::{ClusterId, HostId, StoragePoolId, VmId, ZoneId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// Milliseconds since the Unix epoch (virtual in the scenario runner).
pub type Millis = i64;

// ---------------------------------------------------------------------------------------------------
// Settings
// ---------------------------------------------------------------------------------------------------

/// Per-cluster timing settings (contract item 8). Every field has a default, so a stored subset works.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timing {
    /// How often agents send network heartbeats and write storage heartbeats.
    pub heartbeat_interval_ms: i64,
    /// Network silence after which an Available host becomes Suspect.
    pub suspect_after_ms: i64,
    /// A storage heartbeat counter that has not advanced for this long is silent.
    pub storage_timeout_ms: i64,
    /// An agent that reached neither a management server nor its storage for this long stops its VMs.
    pub self_fence_timeout_ms: i64,
    /// Added to the self-fence timeout before the engine relies on it (clock skew, delivery delays).
    pub self_fence_margin_ms: i64,
    /// First fencing retry delay; doubles per failed attempt up to `fence_backoff_max_ms`.
    pub fence_backoff_initial_ms: i64,
    pub fence_backoff_max_ms: i64,
    /// After an accepted OFF, how long STATUS may keep answering On before OFF is sent again.
    pub fence_confirm_timeout_ms: i64,
    /// A BMC action (OFF, STATUS, RESET) without any result after this long counts as lost.
    pub oobm_answer_timeout_ms: i64,
    /// How often STATUS is asked while waiting for Off.
    pub status_poll_ms: i64,
    /// RESET attempts (Recovering) before fencing; 0 skips recovery (the default: it costs time).
    pub recover_attempts: u32,
    /// After a RESET, how long to wait for the host's heartbeat (Recovered) before the next step.
    pub recover_wait_ms: i64,
    /// First VM restart retry delay; doubles per failure up to `restart_backoff_max_ms`.
    pub restart_backoff_initial_ms: i64,
    pub restart_backoff_max_ms: i64,
    /// A started VM that is seen stopped (not starting, not running) this long after its StartVm,
    /// without any result, counts as a failed start.
    pub start_timeout_ms: i64,
    /// An issued StartVm whose effect (the VM's record moved to the new generation) is not visible
    /// after this long was lost (e.g. the server crashed before executing it) and is issued again.
    pub action_lost_ms: i64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            heartbeat_interval_ms: 1000,
            suspect_after_ms: 3000,
            storage_timeout_ms: 4000,
            self_fence_timeout_ms: 8000,
            self_fence_margin_ms: 1000,
            fence_backoff_initial_ms: 1000,
            fence_backoff_max_ms: 30_000,
            fence_confirm_timeout_ms: 5000,
            oobm_answer_timeout_ms: 15_000,
            status_poll_ms: 1000,
            recover_attempts: 0,
            recover_wait_ms: 30_000,
            restart_backoff_initial_ms: 1000,
            restart_backoff_max_ms: 30_000,
            start_timeout_ms: 60_000,
            action_lost_ms: 5000,
        }
    }
}

/// A timing setting that is refused; `field` is the JSON name, for a 400 that names it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct TimingError {
    pub field: &'static str,
    pub message: String,
}

impl Timing {
    /// The contract's validation: every timeout exceeds the heartbeat interval, the self-fence timeout
    /// exceeds the storage timeout, back-offs are positive and ordered.
    pub fn validate(&self) -> Result<(), TimingError> {
        let error = |field, message: String| Err(TimingError { field, message });
        if self.heartbeat_interval_ms <= 0 {
            return error("heartbeat_interval_ms", "must be positive".into());
        }
        for (field, value) in [
            ("suspect_after_ms", self.suspect_after_ms),
            ("storage_timeout_ms", self.storage_timeout_ms),
            ("self_fence_timeout_ms", self.self_fence_timeout_ms),
            ("fence_confirm_timeout_ms", self.fence_confirm_timeout_ms),
            ("oobm_answer_timeout_ms", self.oobm_answer_timeout_ms),
            ("start_timeout_ms", self.start_timeout_ms),
        ] {
            if value <= self.heartbeat_interval_ms {
                return error(
                    field,
                    format!("{value} ms must exceed the heartbeat interval ({} ms)", self.heartbeat_interval_ms),
                );
            }
        }
        if self.self_fence_timeout_ms <= self.storage_timeout_ms {
            return error(
                "self_fence_timeout_ms",
                format!(
                    "{} ms must exceed the storage timeout ({} ms)",
                    self.self_fence_timeout_ms, self.storage_timeout_ms
                ),
            );
        }
        for (field, value) in [
            ("self_fence_margin_ms", self.self_fence_margin_ms),
            ("fence_backoff_initial_ms", self.fence_backoff_initial_ms),
            ("status_poll_ms", self.status_poll_ms),
            ("recover_wait_ms", self.recover_wait_ms),
            ("restart_backoff_initial_ms", self.restart_backoff_initial_ms),
            ("action_lost_ms", self.action_lost_ms),
        ] {
            if value <= 0 {
                return error(field, "must be positive".into());
            }
        }
        if self.fence_backoff_max_ms < self.fence_backoff_initial_ms {
            return error("fence_backoff_max_ms", "must not be below fence_backoff_initial_ms".into());
        }
        if self.restart_backoff_max_ms < self.restart_backoff_initial_ms {
            return error("restart_backoff_max_ms", "must not be below restart_backoff_initial_ms".into());
        }
        Ok(())
    }

    /// `initial` doubled `failures` times, capped at `max`.
    pub fn backoff(initial: i64, max: i64, failures: u32) -> i64 {
        let shift = failures.min(20);
        initial.saturating_mul(1i64 << shift).min(max)
    }
}

// ---------------------------------------------------------------------------------------------------
// Observations (input)
// ---------------------------------------------------------------------------------------------------

/// Everything the engine sees at one step. Built by the runtime (or the scenario world) fresh each step;
/// results (`oobm_results`, `start_results`) are those that arrived since the previous step.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Observations {
    pub clusters: Vec<ClusterObservation>,
    pub hosts: Vec<HostObservation>,
    pub vms: Vec<VmObservation>,
    /// The global `ha.tag` setting: hosts carrying it take only HA restarts (see `HostObservation::tags`).
    pub ha_tag: Option<String>,
    pub oobm_results: Vec<OobmResult>,
    pub start_results: Vec<StartResult>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterObservation {
    pub id: ClusterId,
    pub zone: ZoneId,
    pub name: String,
    #[serde(default)]
    pub timing: Timing,
}

/// The HA provider a host needs for HA to apply (REFERENCE "Switches").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HaProvider {
    Kvm,
    Sim,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostObservation {
    pub id: HostId,
    pub name: String,
    pub cluster: ClusterId,
    pub zone: ZoneId,
    /// `None` when HA is in effect (zone, cluster and host switches all on); else why not
    /// ("HA is off for zone z1").
    #[serde(default)]
    pub ha_disabled: Option<String>,
    #[serde(default)]
    pub provider: Option<HaProvider>,
    /// In maintenance (or entering it).
    #[serde(default)]
    pub maintenance: bool,
    /// Allocation enabled: may receive VMs (restarts included).
    #[serde(default = "yes")]
    pub accepts_vms: bool,
    #[serde(default)]
    pub oobm: OobmObservation,
    /// When a network heartbeat of this host last arrived at any management server (and was recorded;
    /// only then does the server acknowledge it, and the agent counts only acknowledged heartbeats as
    /// contact, from their sending: its self-fence clock never runs ahead of this one).
    #[serde(default)]
    pub last_heartbeat_ms: Option<Millis>,
    pub memory_mb: u64,
    pub cpu_mhz: u64,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Shared (cluster- or zone-scoped) primary storage this host mounts; heartbeats are written there.
    #[serde(default)]
    pub shared_storage: Vec<StoragePoolId>,
    /// This host's storage heartbeat as OTHER hosts read it (one entry per observer and storage).
    #[serde(default)]
    pub storage_seen: Vec<StorageSighting>,
    /// This host's own storage heartbeat writes, as it last reported them (one entry per storage).
    #[serde(default)]
    pub storage_writes: Vec<StorageWrite>,
}

fn yes() -> bool {
    true
}

/// Out-of-band management as configured and last read (the power sync or the engine's own STATUS).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct OobmObservation {
    pub configured: bool,
    /// In effect: enabled for zone, cluster and host.
    pub enabled: bool,
    pub power: PowerState,
    pub power_read_at_ms: Option<Millis>,
}

/// One observer's reading of a host's storage heartbeat record on one storage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StorageSighting {
    pub observer: HostId,
    pub storage: StoragePoolId,
    pub counter: u64,
    /// When the observer first read the current counter value (i.e. saw it advance).
    pub advanced_at_ms: Millis,
    /// When the observer last read the record successfully (same counter or not).
    pub read_at_ms: Millis,
    #[serde(default)]
    pub self_fenced: bool,
    #[serde(default)]
    pub running_vms: u32,
}

/// A host's report of its own storage heartbeat write on one storage.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageWrite {
    pub storage: StoragePoolId,
    pub ok: bool,
    pub at_ms: Millis,
}

/// Why a VM that is stopped stopped (the engine restarts VMs HA stopped, never one an operator stopped).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopCause {
    Operator,
    /// Its host lost the VM's primary storage and stopped it.
    StorageLost,
    /// Its host's agent self-fenced.
    SelfFenced,
    /// The guest crashed or failed to start.
    Crashed,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VmObservation {
    pub id: VmId,
    pub name: String,
    pub host: Option<HostId>,
    pub state: VmState,
    #[serde(default)]
    pub stop_cause: Option<StopCause>,
    pub generation: i64,
    /// Effective restart priority: `do-not-restart` for a VM that is not HA-protected.
    pub priority: RestartPriority,
    #[serde(default)]
    pub start_order: i32,
    #[serde(default)]
    pub start_delay_s: u32,
    pub memory_mb: u64,
    pub cpu_mhz: u64,
    /// All its disks are on shared storage (only then can it restart elsewhere).
    pub shared_storage: bool,
    /// The storage its disks are on.
    #[serde(default)]
    pub storage: Vec<StoragePoolId>,
    /// Placement constraints: a host must carry every one of these tags.
    #[serde(default)]
    pub host_tags: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OobmAction {
    PowerOff,
    PowerStatus,
    Reset,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum OobmOutcome {
    /// The BMC accepted the command.
    Done,
    /// The BMC reported this power state (STATUS; or OFF when the runtime also polled STATUS).
    Power {
        power: PowerState,
    },
    Failed {
        kind: OobmErrorKind,
        message: String,
    },
}

/// The result of a BMC action the runtime ran for the engine.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OobmResult {
    pub host: HostId,
    pub action: OobmAction,
    /// The attempt the action carried (STATUS: the fencing attempt it belongs to).
    pub attempt: u32,
    pub at_ms: Millis,
    #[serde(flatten)]
    pub outcome: OobmOutcome,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum StartOutcome {
    Done,
    /// The agent answered that it could not start it (it does not run there).
    Failed {
        reason: String,
    },
    /// The agent refused the command (older epoch or generation).
    Refused {
        reason: String,
    },
}

/// The answer to a `StartVm` the engine issued.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StartResult {
    pub vm: VmId,
    pub host: HostId,
    pub generation: i64,
    pub at_ms: Millis,
    #[serde(flatten)]
    pub outcome: StartOutcome,
}

// ---------------------------------------------------------------------------------------------------
// Host HA states
// ---------------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IneligibleReason {
    OobmNotConfigured,
    OobmNotEnabled,
    NoHealthyNeighbour,
    NoSharedStorage,
    Maintenance,
    NoProvider,
    /// HA is on but the host has never been heard since.
    NoHeartbeat,
}

impl IneligibleReason {
    pub fn as_str(self) -> &'static str {
        match self {
            IneligibleReason::OobmNotConfigured => "OOBM is not configured",
            IneligibleReason::OobmNotEnabled => "OOBM is not enabled",
            IneligibleReason::NoHealthyNeighbour => "no healthy neighbour host shares its storage",
            IneligibleReason::NoSharedStorage => "no shared storage",
            IneligibleReason::Maintenance => "in maintenance",
            IneligibleReason::NoProvider => "no HA provider",
            IneligibleReason::NoHeartbeat => "no heartbeat since HA was enabled",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HaState {
    Disabled,
    Ineligible(IneligibleReason),
    Available,
    Suspect,
    Checking,
    Degraded,
    Recovering,
    Recovered,
    Fencing,
    Fenced,
}

impl HaState {
    pub fn name(self) -> &'static str {
        match self {
            HaState::Disabled => "Disabled",
            HaState::Ineligible(_) => "Ineligible",
            HaState::Available => "Available",
            HaState::Suspect => "Suspect",
            HaState::Checking => "Checking",
            HaState::Degraded => "Degraded",
            HaState::Recovering => "Recovering",
            HaState::Recovered => "Recovered",
            HaState::Fencing => "Fencing",
            HaState::Fenced => "Fenced",
        }
    }

    /// States in which the engine is handling a possible failure of the host.
    pub fn is_failure_handling(self) -> bool {
        matches!(
            self,
            HaState::Suspect
                | HaState::Checking
                | HaState::Degraded
                | HaState::Recovering
                | HaState::Recovered
                | HaState::Fencing
                | HaState::Fenced
        )
    }
}

impl fmt::Display for HaState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HaState::Ineligible(reason) => write!(f, "Ineligible ({})", reason.as_str()),
            other => f.write_str(other.name()),
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Actions (output)
// ---------------------------------------------------------------------------------------------------

/// Alert kinds the engine raises (kebab-case names, as stored).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AlertKind {
    HostFailed,
    HostFenced,
    FencingFailed,
    VmRestarted,
    VmRestartFailed,
    StorageHeartbeatLost,
    PrimaryStorageDown,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::HostFailed => "host-failed",
            AlertKind::HostFenced => "host-fenced",
            AlertKind::FencingFailed => "fencing-failed",
            AlertKind::VmRestarted => "vm-restarted",
            AlertKind::VmRestartFailed => "vm-restart-failed",
            AlertKind::StorageHeartbeatLost => "storage-heartbeat-lost",
            AlertKind::PrimaryStorageDown => "primary-storage-down",
        }
    }
}

/// What an alert is about; with the kind, it is the alert's identity (deduplication key).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AlertSubject {
    pub cluster: Option<ClusterId>,
    pub host: Option<HostId>,
    pub vm: Option<VmId>,
    pub storage: Option<StoragePoolId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EngineAlert {
    pub kind: AlertKind,
    pub severity: AlertSeverity,
    pub subject: AlertSubject,
    pub message: String,
}

/// One step of a failover, for the console's incident timeline.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "what", rename_all = "kebab-case")]
pub enum IncidentWhat {
    /// The host was first missed (the incident's start).
    Detected {
        reason: String,
    },
    StateChanged {
        from: HaState,
        to: HaState,
        reason: String,
    },
    FenceAttempt {
        attempt: u32,
    },
    FenceFailed {
        attempt: u32,
        reason: String,
    },
    /// The host is known not to run its VMs (fenced or self-fenced).
    Fenced {
        how: String,
    },
    VmRestarted {
        vm: VmId,
        vm_name: String,
        from: HostId,
        to: HostId,
        seconds: f64,
    },
    VmRestartFailed {
        vm: VmId,
        vm_name: String,
        reason: String,
    },
    /// Every VM is running again or has been given up; `duration_ms` from detection.
    Closed {
        duration_ms: i64,
        summary: String,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IncidentEvent {
    pub incident: u64,
    pub host: HostId,
    pub at_ms: Millis,
    #[serde(flatten)]
    pub what: IncidentWhat,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub host: HostId,
    pub from: HaState,
    pub to: HaState,
    /// What happened, short and stable ("network-heartbeat-missed").
    pub event: String,
    /// Why, for people ("no network heartbeat for 3100 ms").
    pub reason: String,
    pub at_ms: Millis,
}

/// What the runtime executes after a step.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// OOBM hard power-off (never graceful). Report an `OobmResult` with this attempt.
    FencePowerOff {
        host: HostId,
        attempt: u32,
    },
    /// OOBM STATUS. Report an `OobmResult` (action `power-status`, the fencing attempt).
    PowerStatus {
        host: HostId,
        attempt: u32,
    },
    /// OOBM RESET of a hung host (Recovering). Report an `OobmResult`.
    Reset {
        host: HostId,
        attempt: u32,
    },
    /// Start the VM on `host` under `generation` (the VM's record moves there with that generation
    /// before the command is sent, so the old host's agent refuses anything older).
    StartVm {
        vm: VmId,
        host: HostId,
        generation: i64,
        attempt: u32,
    },
    /// Record the VM as stopped (its host is confirmed not to run it and it will not restart);
    /// `generation` is the new one, so the old host refuses stale commands.
    MarkVmStopped {
        vm: VmId,
        generation: i64,
        reason: String,
    },
    PutHostInMaintenance {
        host: HostId,
        reason: String,
    },
    RaiseAlert(EngineAlert),
    ClearAlert {
        kind: AlertKind,
        subject: AlertSubject,
    },
    RecordTransition(Transition),
    Incident(IncidentEvent),
}

// ---------------------------------------------------------------------------------------------------
// Engine state (stored as JSON between steps)
// ---------------------------------------------------------------------------------------------------

/// The engine's memory between steps. Stored by the runtime after every step; a new leader resumes
/// from it. Unknown fields are ignored and missing ones default, so it can grow additively.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineState {
    pub hosts: BTreeMap<HostId, HostRecord>,
    /// VMs being restarted (and, until the whole batch is done, those that were).
    pub restarts: BTreeMap<VmId, RestartJob>,
    /// Primary storage seen down (no host can write its heartbeat there), since when.
    pub storage_down: BTreeMap<StoragePoolId, Millis>,
    /// When each storage last came back after being seen down: a heartbeat record that did not
    /// advance while the storage was down proves nothing about its host.
    pub storage_back_at: BTreeMap<StoragePoolId, Millis>,
    /// Alerts this engine raised and has not cleared (kind + subject), so each is raised once.
    pub open_alerts: BTreeSet<(AlertKind, AlertSubject)>,
    /// VMs the engine recorded as stopped (MarkVmStopped) and the generation it gave them, so they
    /// are not handled twice.
    pub marked_stopped: BTreeMap<VmId, i64>,
    pub next_incident: u64,
    pub last_step_ms: Option<Millis>,
    /// When the engine last resumed after a gap (first step, new leader, stalled server): heartbeats
    /// that nobody could receive meanwhile are not silence, so nothing turns Suspect (or loses its
    /// healthy neighbour) until a suspect timeout after this.
    pub resumed_at_ms: Option<Millis>,
}

/// A gap between two steps longer than this is a resumption (see `EngineState::resumed_at_ms`).
pub const RESUME_GAP_MS: Millis = 2000;

/// One host's HA state and the bookkeeping of the step it is in.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostRecord {
    pub state: HaState,
    pub since_ms: Millis,
    /// When the current failure was first detected (Suspect), for incident durations.
    #[serde(default)]
    pub detected_at_ms: Option<Millis>,
    #[serde(default)]
    pub fence: Option<FenceProgress>,
    #[serde(default)]
    pub recover: Option<RecoverProgress>,
    /// The open incident, once the failure became a failover (Fencing, Recovering or self-fenced).
    #[serde(default)]
    pub incident: Option<u64>,
    /// Incident events gathered since detection, published if the failure becomes a failover.
    #[serde(default)]
    pub pending_incident: Vec<(Millis, IncidentWhat)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FenceProgress {
    pub started_at_ms: Millis,
    pub attempt: u32,
    /// Failed attempts so far (drives the back-off).
    pub failures: u32,
    /// When the current attempt's OFF was issued; `None` while waiting for the back-off.
    pub off_sent_at_ms: Option<Millis>,
    /// The current attempt's OFF was accepted at this time.
    pub off_done_at_ms: Option<Millis>,
    /// When the last STATUS was issued (and not answered yet, if `status_pending`).
    pub status_sent_at_ms: Option<Millis>,
    pub status_pending: bool,
    /// When the next OFF may be sent (back-off).
    pub retry_at_ms: Option<Millis>,
    pub last_error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverProgress {
    pub attempt: u32,
    pub reset_sent_at_ms: Millis,
    pub reset_done_at_ms: Option<Millis>,
}

/// Why a VM is being restarted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartCause {
    /// Its host was fenced (or self-fenced).
    HostFenced,
    /// Its storage came back after an outage that stopped it.
    StorageReturned,
    /// Its host fenced itself (partition or isolation) and is heard again without it.
    SelfFenced,
    /// Its host, alive, no longer runs it and did not stop it on purpose (host reset, guest crash).
    Crashed,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RestartJob {
    pub vm: VmId,
    pub vm_name: String,
    pub from_host: HostId,
    pub cluster: ClusterId,
    pub cause: RestartCause,
    /// When the failure behind it was detected (the "seconds" of vm-restarted count from here).
    pub since_ms: Millis,
    pub priority: RestartPriority,
    pub start_order: i32,
    pub start_delay_s: u32,
    /// Attempts issued so far.
    pub attempts: u32,
    pub failures: u32,
    pub phase: RestartPhase,
    /// The incident of the failover this restart belongs to.
    #[serde(default)]
    pub incident: Option<u64>,
    /// First start or first failure: the start-order group may move on after it (plus its delay).
    pub settled_at_ms: Option<Millis>,
    pub last_failure: Option<String>,
    /// The host its last failed start went to: avoided next time while another host can take it.
    #[serde(default)]
    pub last_failed_host: Option<HostId>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "kebab-case")]
pub enum RestartPhase {
    /// Waiting for its turn or its back-off.
    Waiting { not_before_ms: Millis },
    /// StartVm issued.
    Starting { host: HostId, generation: i64, issued_at_ms: Millis, answered: bool },
    /// Running on `host`.
    Done { host: HostId, at_ms: Millis },
}

/// The result of one step.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub state: EngineState,
    pub actions: Vec<Action>,
}

// ---------------------------------------------------------------------------------------------------
// The step
// ---------------------------------------------------------------------------------------------------

/// Lookups over one step's observations.
pub(crate) struct View<'a> {
    pub obs: &'a Observations,
    pub now: Millis,
    pub resumed_at: Option<Millis>,
    pub hosts: BTreeMap<HostId, &'a HostObservation>,
    pub clusters: BTreeMap<ClusterId, &'a ClusterObservation>,
    pub default_timing: Timing,
}

impl<'a> View<'a> {
    fn new(obs: &'a Observations, now: Millis, resumed_at: Option<Millis>) -> Self {
        View {
            obs,
            now,
            resumed_at,
            hosts: obs.hosts.iter().map(|host| (host.id, host)).collect(),
            clusters: obs.clusters.iter().map(|cluster| (cluster.id, cluster)).collect(),
            default_timing: Timing::default(),
        }
    }

    pub fn timing(&self, cluster: ClusterId) -> &Timing {
        self.clusters.get(&cluster).map_or(&self.default_timing, |cluster| &cluster.timing)
    }

    pub fn host_timing(&self, host: &HostObservation) -> &Timing {
        self.timing(host.cluster)
    }

    /// A network heartbeat arrived within the suspect timeout.
    pub fn network_alive(&self, host: &HostObservation) -> bool {
        host.last_heartbeat_ms.is_some_and(|at| self.now - at <= self.host_timing(host).suspect_after_ms)
    }

    /// Within a suspect timeout of the engine's resumption: silence is not judged yet.
    pub fn in_grace(&self, host: &HostObservation) -> bool {
        self.resumed_at.is_some_and(|at| self.now - at <= self.host_timing(host).suspect_after_ms)
    }
}

/// Collects the actions of one step and keeps alerts raised once.
pub(crate) struct Out {
    pub actions: Vec<Action>,
    pub open_alerts: BTreeSet<(AlertKind, AlertSubject)>,
}

impl Out {
    pub fn raise(&mut self, kind: AlertKind, severity: AlertSeverity, subject: AlertSubject, message: String) {
        // Raised once per condition; a restarted-VM notice is one event each time.
        if kind != AlertKind::VmRestarted && !self.open_alerts.insert((kind, subject.clone())) {
            return;
        }
        self.actions.push(Action::RaiseAlert(EngineAlert { kind, severity, subject, message }));
    }

    pub fn clear(&mut self, kind: AlertKind, subject: AlertSubject) {
        if self.open_alerts.remove(&(kind, subject.clone())) {
            self.actions.push(Action::ClearAlert { kind, subject });
        }
    }
}

/// One engine step: pure. See the module documentation.
pub fn decide(state: &EngineState, observations: &Observations, now_ms: Millis) -> Decision {
    let mut next = state.clone();
    if state.last_step_ms.is_none_or(|last| now_ms - last > RESUME_GAP_MS) {
        next.resumed_at_ms = Some(now_ms);
    }
    let view = View::new(observations, now_ms, next.resumed_at_ms);
    let mut out = Out { actions: Vec::new(), open_alerts: std::mem::take(&mut next.open_alerts) };
    storage::step(&view, &mut next, &mut out);
    host::step(&view, &mut next, &mut out);
    restart::step(&view, &mut next, &mut out);
    next.open_alerts = out.open_alerts;
    next.last_step_ms = Some(now_ms);
    Decision { state: next, actions: out.actions }
}
