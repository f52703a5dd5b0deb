//! The scenario file format (TOML, documented in docs/ha-scenarios.md): the pool, the fault schedule
//! and the expected outcome. Parsing checks every reference, so a typo is an error naming the field.

use crate::ha::decide::{HaProvider, Timing};
use api::v1::RestartPriority;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ScenarioError {
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("not a valid scenario: {0}")]
    Syntax(String),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> ScenarioError {
    ScenarioError::Invalid { field: field.into(), message: message.into() }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// Virtual seconds to run.
    #[serde(default = "default_duration")]
    pub duration_s: f64,
    /// Timing settings of every cluster (defaults: the contract's).
    #[serde(default)]
    pub timing: Timing,
    #[serde(default)]
    pub engine: EngineSettings,
    #[serde(default)]
    pub ha_tag: Option<String>,
    #[serde(default, rename = "cluster")]
    pub clusters: Vec<ClusterSpec>,
    #[serde(default, rename = "storage")]
    pub storage: Vec<StorageSpec>,
    #[serde(rename = "host")]
    pub hosts: Vec<HostSpec>,
    #[serde(default, rename = "vm")]
    pub vms: Vec<VmSpec>,
    #[serde(default, rename = "fault")]
    pub faults: Vec<Fault>,
    #[serde(default)]
    pub expect: Expect,
}

fn default_duration() -> f64 {
    60.0
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSettings {
    /// How often the leader runs a step.
    pub step_ms: i64,
    /// Management servers (each may hold the leader lease).
    pub servers: usize,
    /// Leader lease duration; renewed at every step.
    pub lease_ms: i64,
    /// A BMC call's latency when the BMC answers.
    pub bmc_latency_ms: i64,
    /// How long a call to an unreachable BMC takes to fail.
    pub bmc_timeout_ms: i64,
    /// From power-on until the agent connects.
    pub boot_ms: i64,
}

impl Default for EngineSettings {
    fn default() -> Self {
        EngineSettings {
            step_ms: 500,
            servers: 1,
            lease_ms: 3000,
            bmc_latency_ms: 200,
            bmc_timeout_ms: 2000,
            boot_ms: 5000,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    pub name: String,
    #[serde(default = "default_zone")]
    pub zone: String,
}

fn default_zone() -> String {
    "z1".into()
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSpec {
    pub name: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    pub name: String,
    #[serde(default = "default_cluster")]
    pub cluster: String,
    #[serde(default = "default_host_memory")]
    pub memory_mb: u64,
    #[serde(default = "default_host_cpu")]
    pub cpu_mhz: u64,
    /// Shared storage it mounts (default: every declared storage).
    #[serde(default)]
    pub storage: Option<Vec<String>>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// OOBM configured and enabled.
    #[serde(default = "yes")]
    pub oobm: bool,
    /// `sim`, `kvm` or `none`.
    #[serde(default = "default_provider")]
    pub provider: String,
    /// HA switches (zone, cluster, host) all on.
    #[serde(default = "yes")]
    pub ha: bool,
    #[serde(default)]
    pub maintenance: bool,
    /// Starts powered off.
    #[serde(default)]
    pub off: bool,
}

fn default_cluster() -> String {
    "c1".into()
}
fn default_host_memory() -> u64 {
    16384
}
fn default_host_cpu() -> u64 {
    32000
}
fn yes() -> bool {
    true
}
fn default_provider() -> String {
    "sim".into()
}

impl HostSpec {
    pub fn provider(&self) -> Option<HaProvider> {
        match self.provider.as_str() {
            "kvm" => Some(HaProvider::Kvm),
            "sim" => Some(HaProvider::Sim),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmSpec {
    pub name: String,
    /// Where it runs at the start; absent: stopped.
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default = "default_vm_memory")]
    pub memory_mb: u64,
    #[serde(default = "default_vm_cpu")]
    pub cpu_mhz: u64,
    #[serde(default = "default_priority")]
    pub priority: RestartPriority,
    /// Storage its disks are on (default: its host's first shared storage). Ignored with `local`.
    #[serde(default)]
    pub storage: Option<String>,
    /// Its disks are on the host's local storage: it cannot restart elsewhere.
    #[serde(default)]
    pub local: bool,
    #[serde(default)]
    pub start_order: i32,
    #[serde(default)]
    pub start_delay_s: u32,
    #[serde(default)]
    pub host_tags: Vec<String>,
    /// How long it takes to boot.
    #[serde(default = "default_boot")]
    pub boot_ms: i64,
}

fn default_vm_memory() -> u64 {
    2048
}
fn default_vm_cpu() -> u64 {
    1000
}
fn default_priority() -> RestartPriority {
    RestartPriority::Restart
}
fn default_boot() -> i64 {
    500
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BmcMode {
    Ok,
    Unreachable,
    WrongPassword,
}

/// Which way a `one-way-cut` cuts the link between a host and the management servers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CutDirection {
    /// What the agent sends is lost; what the servers send still arrives.
    ToServers,
    /// The servers hear the agent; nothing they send arrives.
    FromServers,
}

// No deny_unknown_fields here: serde cannot combine it with `flatten`; the kind's variants deny them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fault {
    /// Virtual seconds from the start.
    pub at_s: f64,
    #[serde(flatten)]
    pub kind: FaultKind,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum FaultKind {
    /// The host loses power: its VMs and agent die at once; its BMC reports Off.
    PowerLoss {
        host: String,
    },
    /// The host is powered on (the host returning): its agent connects after `engine.boot_ms`, with no VM.
    PowerOn {
        host: String,
    },
    /// The agent process dies; VMs keep running; the watchdog resets the host after the self-fence timeout.
    AgentCrash {
        host: String,
    },
    /// The crashed agent starts again (if the watchdog has not reset the host yet).
    AgentRestart {
        host: String,
    },
    /// The network between the host and the management servers (and, with `peers`, the other hosts)
    /// is cut, for `duration_s` or until `net-heal`.
    NetCut {
        host: String,
        #[serde(default)]
        peers: bool,
        #[serde(default)]
        duration_s: Option<f64>,
    },
    /// One direction between the host and the management servers is cut, for `duration_s` or until
    /// `net-heal` (peers and storage unaffected).
    OneWayCut {
        host: String,
        direction: CutDirection,
        #[serde(default)]
        duration_s: Option<f64>,
    },
    NetHeal {
        host: String,
    },
    /// A short cut between the host and the servers (default 3 s).
    Blip {
        host: String,
        #[serde(default = "default_blip")]
        duration_s: f64,
        #[serde(default)]
        peers: bool,
    },
    /// The hosts split into groups that cannot reach each other; the servers stay reachable from
    /// group `servers_with` only (index; absent: from every group).
    Partition {
        groups: Vec<Vec<String>>,
        #[serde(default)]
        servers_with: Option<usize>,
        #[serde(default)]
        duration_s: Option<f64>,
    },
    HealPartition,
    /// The host can no longer write or read storage heartbeats (its VMs' disks still work).
    StorageHbLoss {
        host: String,
        #[serde(default)]
        duration_s: Option<f64>,
    },
    StorageHbRestore {
        host: String,
    },
    /// Primary storage outage: nothing can be written or read there; hosts stop the VMs on it.
    StorageDown {
        storage: String,
        #[serde(default)]
        duration_s: Option<f64>,
    },
    StorageUp {
        storage: String,
    },
    /// The host's BMC becomes unreachable, refuses the password, or works again.
    Bmc {
        host: String,
        state: BmcMode,
    },
    /// Management server `server` (1-based) crashes; with `lose_actions` (default) right after storing
    /// its next step's state and before executing that step's actions.
    ServerCrash {
        server: usize,
        #[serde(default = "yes")]
        lose_actions: bool,
        #[serde(default)]
        restart_after_s: Option<f64>,
    },
    ServerStart {
        server: usize,
    },
    /// The server stalls (GC pause, lost database): it resumes after `duration_s` and executes the
    /// actions it had decided before, with its old epoch.
    ServerPause {
        server: usize,
        duration_s: f64,
    },
    /// An operator ends the host's maintenance.
    EndMaintenance {
        host: String,
    },
}

fn default_blip() -> f64 {
    3.0
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Expect {
    /// VM -> the host it must run on at the end.
    pub running_on: BTreeMap<String, String>,
    /// VMs that must run (anywhere) at the end.
    pub running: Vec<String>,
    /// VMs that must not run at the end.
    pub stopped: Vec<String>,
    /// Exactly these hosts reached Fenced (when given).
    pub fenced: Option<Vec<String>>,
    /// At most this many Fenced transitions in all.
    pub max_fences: Option<u32>,
    /// At most this many OOBM power-off commands sent.
    pub max_power_offs: Option<u32>,
    /// Host -> its HA state at the end ("Fenced", "Available", "Ineligible", "Degraded", ...).
    pub host_states: BTreeMap<String, String>,
    /// Every protected VM runs within this many seconds of the first fault.
    pub protected_running_within_s: Option<f64>,
    /// Alert kinds raised at least once.
    pub alerts: Vec<String>,
    /// Alert kinds never raised.
    pub no_alerts: Vec<String>,
    /// `vm-restart-failed` was raised for exactly these VMs (when given).
    pub restart_failed: Option<Vec<String>>,
    /// Start order: `first` was started at least `min_gap_s` before `then`.
    pub order: Vec<OrderExpectation>,
    /// At least this many agent commands were refused as stale (older epoch or generation).
    pub min_refused_commands: Option<u32>,
    /// Ineligible hosts at the end and why (host -> reason text, as `IneligibleReason::as_str`).
    pub ineligible: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrderExpectation {
    pub first: String,
    pub then: String,
    #[serde(default)]
    pub min_gap_s: f64,
}

impl Scenario {
    pub fn parse(text: &str) -> Result<Scenario, ScenarioError> {
        let scenario: Scenario = toml::from_str(text).map_err(|error| ScenarioError::Syntax(error.to_string()))?;
        scenario.check()?;
        Ok(scenario)
    }

    /// Storage mounted by `host` (its own list, or every declared storage).
    pub fn host_storage(&self, host: &HostSpec) -> Vec<String> {
        host.storage.clone().unwrap_or_else(|| self.storage.iter().map(|storage| storage.name.clone()).collect())
    }

    /// Clusters, with the ones only named by hosts added (in zone z1).
    pub fn all_clusters(&self) -> Vec<ClusterSpec> {
        let mut clusters = self.clusters.clone();
        for host in &self.hosts {
            if !clusters.iter().any(|cluster| cluster.name == host.cluster) {
                clusters.push(ClusterSpec { name: host.cluster.clone(), zone: default_zone() });
            }
        }
        clusters
    }

    /// The storage a VM's disks are on, if shared.
    pub fn vm_storage(&self, vm: &VmSpec) -> Option<String> {
        if vm.local {
            return None;
        }
        if let Some(storage) = &vm.storage {
            return Some(storage.clone());
        }
        let host = self.hosts.iter().find(|host| Some(&host.name) == vm.host.as_ref())?;
        self.host_storage(host).into_iter().next()
    }

    fn check(&self) -> Result<(), ScenarioError> {
        self.timing.validate().map_err(|error| invalid(format!("timing.{}", error.field), error.message))?;
        if self.duration_s <= 0.0 || self.duration_s > 3600.0 {
            return Err(invalid("duration_s", "must be between 0 and 3600"));
        }
        if self.engine.step_ms <= 0 || self.engine.servers == 0 || self.engine.lease_ms <= self.engine.step_ms {
            return Err(invalid("engine", "step_ms > 0, servers >= 1 and lease_ms > step_ms"));
        }
        let storages: BTreeSet<&str> = self.storage.iter().map(|storage| storage.name.as_str()).collect();
        if storages.len() != self.storage.len() {
            return Err(invalid("storage.name", "a storage name appears twice"));
        }
        let mut hosts = BTreeSet::new();
        for host in &self.hosts {
            if !hosts.insert(host.name.as_str()) {
                return Err(invalid("host.name", format!("{:?} appears twice", host.name)));
            }
            for storage in self.host_storage(host) {
                if !storages.contains(storage.as_str()) {
                    return Err(invalid(
                        format!("host {}: storage", host.name),
                        format!("no storage named {storage:?}"),
                    ));
                }
            }
            if !matches!(host.provider.as_str(), "sim" | "kvm" | "none") {
                return Err(invalid(format!("host {}: provider", host.name), "sim, kvm or none"));
            }
        }
        if hosts.is_empty() {
            return Err(invalid("host", "at least one host"));
        }
        let host_known = |field: String, name: &str| {
            if hosts.contains(name) { Ok(()) } else { Err(invalid(field, format!("no host named {name:?}"))) }
        };
        let mut vms = BTreeSet::new();
        for vm in &self.vms {
            if !vms.insert(vm.name.as_str()) {
                return Err(invalid("vm.name", format!("{:?} appears twice", vm.name)));
            }
            if let Some(host) = &vm.host {
                host_known(format!("vm {}: host", vm.name), host)?;
            }
            if let Some(storage) = &vm.storage
                && !storages.contains(storage.as_str())
            {
                return Err(invalid(format!("vm {}: storage", vm.name), format!("no storage named {storage:?}")));
            }
            if !vm.local && self.vm_storage(vm).is_none() {
                return Err(invalid(format!("vm {}: storage", vm.name), "name its shared storage or set local = true"));
            }
        }
        let vm_known = |field: String, name: &str| {
            if vms.contains(name) { Ok(()) } else { Err(invalid(field, format!("no VM named {name:?}"))) }
        };
        let storage_known = |field: String, name: &str| {
            if storages.contains(name) { Ok(()) } else { Err(invalid(field, format!("no storage named {name:?}"))) }
        };
        let server_known = |field: String, server: usize| {
            if (1..=self.engine.servers).contains(&server) {
                Ok(())
            } else {
                Err(invalid(field, format!("servers are numbered 1 to {}", self.engine.servers)))
            }
        };
        for (i, fault) in self.faults.iter().enumerate() {
            let field = format!("fault[{i}]");
            if !(0.0..=self.duration_s).contains(&fault.at_s) {
                return Err(invalid(format!("{field}.at_s"), "within the scenario's duration"));
            }
            match &fault.kind {
                FaultKind::PowerLoss { host }
                | FaultKind::PowerOn { host }
                | FaultKind::AgentCrash { host }
                | FaultKind::AgentRestart { host }
                | FaultKind::NetCut { host, .. }
                | FaultKind::OneWayCut { host, .. }
                | FaultKind::NetHeal { host }
                | FaultKind::Blip { host, .. }
                | FaultKind::StorageHbLoss { host, .. }
                | FaultKind::StorageHbRestore { host }
                | FaultKind::Bmc { host, .. }
                | FaultKind::EndMaintenance { host } => host_known(format!("{field}.host"), host)?,
                FaultKind::Partition { groups, servers_with, .. } => {
                    let mut seen = BTreeSet::new();
                    for host in groups.iter().flatten() {
                        host_known(format!("{field}.groups"), host)?;
                        if !seen.insert(host) {
                            return Err(invalid(format!("{field}.groups"), format!("{host:?} is in two groups")));
                        }
                    }
                    if servers_with.is_some_and(|group| group >= groups.len()) {
                        return Err(invalid(format!("{field}.servers_with"), "an index into groups"));
                    }
                }
                FaultKind::HealPartition => {}
                FaultKind::StorageDown { storage, .. } | FaultKind::StorageUp { storage } => {
                    storage_known(format!("{field}.storage"), storage)?
                }
                FaultKind::ServerCrash { server, .. }
                | FaultKind::ServerStart { server }
                | FaultKind::ServerPause { server, .. } => server_known(format!("{field}.server"), *server)?,
            }
        }
        let expect = &self.expect;
        for (vm, host) in &expect.running_on {
            vm_known("expect.running_on".into(), vm)?;
            host_known("expect.running_on".into(), host)?;
        }
        for vm in expect.running.iter().chain(&expect.stopped) {
            vm_known("expect.running/stopped".into(), vm)?;
        }
        for host in expect.fenced.iter().flatten().chain(expect.host_states.keys()).chain(expect.ineligible.keys()) {
            host_known("expect.fenced/host_states/ineligible".into(), host)?;
        }
        for vm in expect.restart_failed.iter().flatten() {
            vm_known("expect.restart_failed".into(), vm)?;
        }
        for order in &expect.order {
            vm_known("expect.order.first".into(), &order.first)?;
            vm_known("expect.order.then".into(), &order.then)?;
        }
        Ok(())
    }
}
