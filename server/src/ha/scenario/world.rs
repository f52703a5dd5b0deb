//! The simulated world on virtual time (100 ms ticks) and the run loop.
//!
//! What it models, and what it assumes of the real pieces:
//! * **Hosts** with power, a BMC (ok / unreachable / wrong password) and an **agent**. Each agent, every
//!   heartbeat interval: writes its storage heartbeat record on every shared storage it mounts (counter,
//!   time, `self_fenced`, running VM count), reads the other hosts' records there (noting when each
//!   counter last advanced), sends UDP peer heartbeats to its cluster, and sends its network heartbeat
//!   (with what it read and its inventory) to the management servers, retrying every 200 ms while that
//!   fails. The server acknowledges with the lease epoch.
//! * **Contact** (as agent/src/connection.rs counts it): only a server's acknowledgement of a heartbeat
//!   is contact, as of when that heartbeat was sent; a frame merely arriving from a server is not. A
//!   session opens only when both directions work (its handshake); while it is open heartbeats reach the
//!   servers even if the way back is cut, until the agent drops it for want of acks (half the self-fence
//!   timeout, at least three intervals). Opening a session sends the cluster's other agents a `Peers`
//!   frame. The directions can be cut one at a time (`one-way-cut`).
//! * **Self-fencing** (contract rule 4, as agent/src/self_fence.rs does it): an agent that reached neither a
//!   server nor any storage for the self-fence timeout less one heartbeat interval stops every VM; an agent
//!   that lost the servers that long and whose side (itself + peers heard within the suspect timeout) is a
//!   minority of its cluster, or exactly half without the cluster's lowest host, stops its VMs. Either way it writes
//!   `self_fenced: true` (cleared once a server hears it again). A host whose agent is dead is reset by
//!   its **watchdog** at the agent's last contact + the self-fence timeout (the agent pets it only on
//!   contact): that is the guarantee rule 5(c) relies on.
//! * **Primary storage**: up or down; a host whose writes there have failed for the storage timeout stops
//!   the VMs whose disks are there (`storage-lost`).
//! * **Stale commands**: an agent refuses a command whose epoch is older than the newest it has seen, or
//!   whose VM generation is older than the newest it has seen for that VM.
//! * **Management servers** share the database (inventory, the stored `EngineState` as JSON, a leader
//!   lease with an epoch). The lease holder renews it at every step; when it expires another server
//!   takes it (epoch + 1) and resumes from the stored state. See [`super::runtime`].

use super::format::{BmcMode, CutDirection, FaultKind, Scenario};
use super::invariants::{self, Checker};
use super::runtime::{self, Server};
use crate::ha::decide::{Decision, HaState, Millis, StopCause, Timing};
use api::v1::VmState;
use api::{ClusterId, HostId, StoragePoolId, VmId, ZoneId};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

pub const TICK_MS: i64 = 100;
/// Agents retry a failed network heartbeat this often.
const RETRY_MS: i64 = 200;
/// One-way latency of an agent command.
pub const COMMAND_LATENCY_MS: i64 = 50;

pub fn id_of(kind: u8, index: usize) -> uuid::Uuid {
    uuid::Uuid::from_u128(((kind as u128) << 64) | (index as u128 + 1))
}

/// One guest process on a host (possibly a stale copy).
#[derive(Clone, Debug)]
pub struct Guest {
    pub generation: i64,
    /// Running from this time on; booting before.
    pub running_from: Millis,
}

#[derive(Clone, Debug, Default)]
pub struct Reading {
    pub counter: u64,
    pub advanced_at: Millis,
    pub read_at: Millis,
    pub self_fenced: bool,
    pub running_vms: u32,
}

#[derive(Clone, Debug)]
pub struct Agent {
    pub started_at: Millis,
    pub max_epoch: u64,
    pub generations: BTreeMap<usize, i64>,
    pub last_server_ok: Millis,
    pub last_storage_ok: Millis,
    /// Per storage: since when its heartbeat writes fail.
    pub write_failing_since: BTreeMap<usize, Millis>,
    pub self_fenced: bool,
    /// Why VMs this agent stopped were stopped.
    pub stop_causes: BTreeMap<usize, StopCause>,
    pub peers_heard: BTreeMap<usize, Millis>,
    /// (storage, target host) -> what this agent read.
    pub readings: BTreeMap<(usize, usize), Reading>,
    pub next_heartbeat: Millis,
    pub next_network_try: Millis,
    /// Own storage writes: storage -> (ok, at).
    pub writes: BTreeMap<usize, (bool, Millis)>,
    /// The agent holds a session with the servers.
    pub connected: bool,
}

impl Agent {
    fn new(now: Millis, phase: Millis) -> Agent {
        Agent {
            started_at: now,
            max_epoch: 0,
            generations: BTreeMap::new(),
            last_server_ok: now,
            last_storage_ok: now,
            write_failing_since: BTreeMap::new(),
            self_fenced: false,
            stop_causes: BTreeMap::new(),
            peers_heard: BTreeMap::new(),
            readings: BTreeMap::new(),
            next_heartbeat: now + phase,
            next_network_try: now + phase,
            writes: BTreeMap::new(),
            connected: false,
        }
    }

    pub fn last_contact(&self) -> Millis {
        self.last_server_ok.max(self.last_storage_ok)
    }
}

#[derive(Clone, Debug)]
pub struct Host {
    pub id: HostId,
    pub name: String,
    pub cluster: usize,
    pub storage: Vec<usize>,
    pub memory_mb: u64,
    pub cpu_mhz: u64,
    pub tags: Vec<String>,
    pub powered: bool,
    /// The agent starts at this time (booting).
    pub boot_until: Option<Millis>,
    pub agent: Option<Agent>,
    /// The agent's last contact when it died (the watchdog fires at that + the self-fence timeout).
    pub watchdog_deadline: Option<Millis>,
    pub guests: BTreeMap<usize, Guest>,
    pub bmc: BmcMode,
    pub cut_from_servers: bool,
    /// Only the agent-to-servers direction is cut (`one-way-cut` to-servers).
    pub uplink_cut: bool,
    /// Only the servers-to-agent direction is cut (`one-way-cut` from-servers).
    pub downlink_cut: bool,
    pub cut_from_peers: bool,
    pub hb_loss: bool,
    /// Since when its link to the servers is up (`None`: down).
    pub server_link_since: Option<Millis>,
    pub phase: Millis,
    pub oobm: bool,
    pub provider: Option<crate::ha::decide::HaProvider>,
    pub ha: bool,
}

#[derive(Clone, Debug)]
pub struct Storage {
    pub id: StoragePoolId,
    pub name: String,
    pub up: bool,
    /// host -> its record.
    pub records: BTreeMap<usize, Reading>,
}

#[derive(Clone, Debug)]
pub struct VmDef {
    pub id: VmId,
    pub name: String,
    pub memory_mb: u64,
    pub cpu_mhz: u64,
    pub priority: api::v1::RestartPriority,
    pub storage: Option<usize>,
    pub start_order: i32,
    pub start_delay_s: u32,
    pub host_tags: Vec<String>,
    pub boot_ms: i64,
    pub zone: usize,
}

impl VmDef {
    pub fn protected(&self) -> bool {
        self.priority == api::v1::RestartPriority::Restart && self.storage.is_some()
    }
}

/// The database the management servers share.
#[derive(Clone, Debug)]
pub struct DbVm {
    pub host: Option<usize>,
    pub state: VmState,
    pub generation: i64,
    pub stop_cause: Option<StopCause>,
}

#[derive(Clone, Debug, Default)]
pub struct DbHost {
    pub last_heartbeat: Option<Millis>,
    /// The last heartbeat's storage report: readings (storage, target) and own writes.
    pub readings: BTreeMap<(usize, usize), Reading>,
    pub writes: BTreeMap<usize, (bool, Millis)>,
    pub maintenance: bool,
}

#[derive(Clone, Debug, Default)]
pub struct Db {
    pub hosts: Vec<DbHost>,
    pub vms: Vec<DbVm>,
    /// The stored engine state, and the server that wrote it. Another server loads it through JSON
    /// (as the runtime stores it); the writer itself reuses it (the JSON is the same, only slower).
    pub engine_state: crate::ha::decide::EngineState,
    pub engine_state_writer: Option<usize>,
    pub lease_holder: Option<usize>,
    pub lease_epoch: u64,
    pub lease_expires: Millis,
}

#[derive(Clone, Debug)]
pub struct Partition {
    /// host -> group index.
    pub group_of: BTreeMap<usize, usize>,
    pub servers_with: Option<usize>,
}

/// Counters for the verdict.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub steps: u64,
    pub power_offs: u32,
    pub fences: u32,
    pub fenced_hosts: BTreeSet<usize>,
    pub refused_commands: u32,
    pub start_commands: u32,
    /// Alert kinds raised, and for vm-restart-failed the VMs.
    pub alerts: BTreeSet<String>,
    pub restart_failed_vms: BTreeSet<usize>,
    /// VM -> when a StartVm for it was first issued by the engine.
    pub first_start_at: BTreeMap<usize, Millis>,
    pub leader_changes: u32,
}

pub struct World {
    pub scenario: Scenario,
    pub timing: Timing,
    pub now: Millis,
    pub clusters: Vec<(ClusterId, ZoneId, String)>,
    pub zones: Vec<String>,
    pub hosts: Vec<Host>,
    pub storages: Vec<Storage>,
    pub vms: Vec<VmDef>,
    pub db: Db,
    pub servers: Vec<Server>,
    pub partition: Option<Partition>,
    pub pending: Vec<runtime::Pending>,
    pub stats: Stats,
    pub timeline: Vec<(Millis, String)>,
    pub checker: Checker,
    /// Scheduled heals from faults with a duration: (at, fault).
    pub scheduled: Vec<(Millis, FaultKind)>,
    pub last_fault_at: Millis,
    pub first_fault_at: Option<Millis>,
    /// Tests only: agents count every frame from a server as contact, as they did before heartbeats
    /// were acknowledged (a one-way cut then keeps an agent from fencing itself in time).
    pub legacy_contact: bool,
}

/// The result of a run.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub name: String,
    pub timeline: Vec<(Millis, String)>,
    /// Invariant violations (each with its time).
    pub violations: Vec<String>,
    /// Expectations not met.
    pub failures: Vec<String>,
    pub stats: Stats,
    pub end_ms: Millis,
    /// Invariant 4 was judged (every fault healed and settled before the end).
    pub capacity_judged: bool,
    /// When every protected VM ran again after the first fault (if it did and stayed so).
    pub all_running_at: Option<Millis>,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.violations.is_empty() && self.failures.is_empty()
    }

    /// The timeline and the verdict, for people.
    pub fn render(&self) -> String {
        let mut text = format!("scenario: {}\n", self.name);
        for (at, line) in &self.timeline {
            let _ = writeln!(text, "{:>8.1}s  {line}", *at as f64 / 1000.0);
        }
        let _ = writeln!(
            text,
            "\nengine steps {}, OFF commands {}, fences {}, StartVm {}, stale commands refused {}, leader changes {}",
            self.stats.steps,
            self.stats.power_offs,
            self.stats.fences,
            self.stats.start_commands,
            self.stats.refused_commands,
            self.stats.leader_changes
        );
        for violation in &self.violations {
            let _ = writeln!(text, "INVARIANT VIOLATED: {violation}");
        }
        for failure in &self.failures {
            let _ = writeln!(text, "EXPECTATION FAILED: {failure}");
        }
        let _ = writeln!(text, "verdict: {}", if self.passed() { "PASS" } else { "FAIL" });
        text
    }
}

/// A hook that may alter each decision before it is executed (tests feed broken decisions).
pub type Tamper<'a> = &'a mut dyn FnMut(&World, &mut Decision);

pub fn run(scenario: &Scenario) -> Outcome {
    run_with(scenario, &mut |_, _| {})
}

pub fn run_with(scenario: &Scenario, tamper: Tamper<'_>) -> Outcome {
    run_world(World::new(scenario), tamper)
}

/// Runs a world built (and perhaps altered) by the caller.
pub fn run_world(mut world: World, tamper: Tamper<'_>) -> Outcome {
    let scenario = world.scenario.clone();
    let end = (scenario.duration_s * 1000.0).round() as Millis;
    let mut faults: Vec<(Millis, FaultKind)> =
        scenario.faults.iter().map(|fault| ((fault.at_s * 1000.0).round() as Millis, fault.kind.clone())).collect();
    faults.sort_by_key(|(at, _)| *at);
    let mut next_fault = 0;
    while world.now <= end {
        while next_fault < faults.len() && faults[next_fault].0 <= world.now {
            let kind = faults[next_fault].1.clone();
            world.first_fault_at.get_or_insert(world.now);
            world.apply_fault(&kind);
            next_fault += 1;
        }
        world.apply_scheduled();
        world.tick(tamper);
        world.now += TICK_MS;
    }
    world.now = end;
    world.finish()
}

impl World {
    pub fn new(scenario: &Scenario) -> World {
        let clusters_spec = scenario.all_clusters();
        let mut zones: Vec<String> = Vec::new();
        let clusters = clusters_spec
            .iter()
            .enumerate()
            .map(|(i, cluster)| {
                let zone = match zones.iter().position(|zone| *zone == cluster.zone) {
                    Some(zone) => zone,
                    None => {
                        zones.push(cluster.zone.clone());
                        zones.len() - 1
                    }
                };
                (ClusterId(id_of(1, i)), ZoneId(id_of(0, zone)), cluster.name.clone())
            })
            .collect::<Vec<_>>();
        let storages: Vec<Storage> = scenario
            .storage
            .iter()
            .enumerate()
            .map(|(i, storage)| Storage {
                id: StoragePoolId(id_of(2, i)),
                name: storage.name.clone(),
                up: true,
                records: BTreeMap::new(),
            })
            .collect();
        let storage_index = |name: &str| storages.iter().position(|storage| storage.name == name).expect("checked");
        let hosts: Vec<Host> = scenario
            .hosts
            .iter()
            .enumerate()
            .map(|(i, spec)| Host {
                id: HostId(id_of(3, i)),
                name: spec.name.clone(),
                cluster: clusters_spec.iter().position(|cluster| cluster.name == spec.cluster).expect("listed"),
                storage: scenario.host_storage(spec).iter().map(|name| storage_index(name)).collect(),
                memory_mb: spec.memory_mb,
                cpu_mhz: spec.cpu_mhz,
                tags: spec.tags.clone(),
                powered: !spec.off,
                boot_until: None,
                agent: (!spec.off).then(|| Agent::new(0, (i as i64 * 137) % 1000)),
                watchdog_deadline: None,
                guests: BTreeMap::new(),
                bmc: BmcMode::Ok,
                cut_from_servers: false,
                uplink_cut: false,
                downlink_cut: false,
                cut_from_peers: false,
                hb_loss: false,
                server_link_since: Some(-1_000_000),
                phase: (i as i64 * 137) % 1000,
                oobm: spec.oobm,
                provider: spec.provider(),
                ha: spec.ha,
            })
            .collect();
        let host_index = |name: &str| hosts.iter().position(|host| host.name == name).expect("checked");
        let mut vms = Vec::new();
        let mut db_vms = Vec::new();
        let mut placed: Vec<(usize, usize)> = Vec::new();
        for (i, spec) in scenario.vms.iter().enumerate() {
            let host = spec.host.as_deref().map(host_index);
            let zone_of_host = |h: usize| {
                let cluster = hosts[h].cluster;
                zones.iter().position(|zone| *zone == clusters_spec[cluster].zone).unwrap_or(0)
            };
            vms.push(VmDef {
                id: VmId(id_of(4, i)),
                name: spec.name.clone(),
                memory_mb: spec.memory_mb,
                cpu_mhz: spec.cpu_mhz,
                priority: spec.priority,
                storage: scenario.vm_storage(spec).map(|name| storage_index(&name)),
                start_order: spec.start_order,
                start_delay_s: spec.start_delay_s,
                host_tags: spec.host_tags.clone(),
                boot_ms: spec.boot_ms,
                zone: host.map_or(0, zone_of_host),
            });
            db_vms.push(DbVm {
                host,
                state: if host.is_some() { VmState::Running } else { VmState::Stopped },
                generation: 1,
                stop_cause: None,
            });
            if let Some(host) = host {
                placed.push((i, host));
            }
        }
        let mut hosts = hosts;
        for (vm, host) in placed {
            if hosts[host].powered {
                hosts[host].guests.insert(vm, Guest { generation: 1, running_from: 0 });
                if let Some(agent) = hosts[host].agent.as_mut() {
                    agent.generations.insert(vm, 1);
                }
            }
        }
        let db = Db {
            hosts: scenario
                .hosts
                .iter()
                .map(|spec| DbHost { maintenance: spec.maintenance, ..Default::default() })
                .collect(),
            vms: db_vms,
            engine_state: crate::ha::decide::EngineState::default(),
            engine_state_writer: None,
            lease_holder: None,
            lease_epoch: 0,
            lease_expires: 0,
        };
        let servers = (0..scenario.engine.servers).map(|_| Server::new()).collect();
        World {
            scenario: scenario.clone(),
            timing: scenario.timing.clone(),
            now: 0,
            clusters,
            zones,
            hosts,
            storages,
            vms,
            db,
            servers,
            partition: None,
            pending: Vec::new(),
            stats: Stats::default(),
            timeline: Vec::new(),
            checker: Checker::default(),
            scheduled: Vec::new(),
            last_fault_at: 0,
            first_fault_at: None,
            legacy_contact: false,
        }
    }

    pub fn log(&mut self, line: impl Into<String>) {
        self.timeline.push((self.now, line.into()));
    }

    pub fn host_index(&self, name: &str) -> usize {
        self.hosts.iter().position(|host| host.name == name).expect("checked by the format")
    }

    pub fn host_by_id(&self, id: HostId) -> Option<usize> {
        self.hosts.iter().position(|host| host.id == id)
    }

    pub fn vm_by_id(&self, id: VmId) -> Option<usize> {
        self.vms.iter().position(|vm| vm.id == id)
    }

    fn storage_index(&self, name: &str) -> usize {
        self.storages.iter().position(|storage| storage.name == name).expect("checked by the format")
    }

    // -----------------------------------------------------------------------------------------------
    // Network
    // -----------------------------------------------------------------------------------------------

    /// Does what host `h` sends reach the management servers?
    pub fn reaches_servers(&self, h: usize) -> bool {
        !self.hosts[h].uplink_cut && self.linked_to_servers(h)
    }

    /// Does what the management servers send reach host `h`?
    pub fn hears_servers(&self, h: usize) -> bool {
        !self.hosts[h].downlink_cut && self.linked_to_servers(h)
    }

    /// Is host `h`'s link to the management servers up (in at least one direction)?
    fn linked_to_servers(&self, h: usize) -> bool {
        let host = &self.hosts[h];
        if host.cut_from_servers {
            return false;
        }
        match &self.partition {
            Some(partition) => match (partition.servers_with, partition.group_of.get(&h)) {
                (Some(group), Some(mine)) => group == *mine,
                (Some(_), None) => true,
                (None, _) => true,
            },
            None => true,
        }
    }

    /// Can hosts `a` and `b` exchange peer heartbeats?
    pub fn peers_connected(&self, a: usize, b: usize) -> bool {
        if self.hosts[a].cut_from_peers || self.hosts[b].cut_from_peers {
            return false;
        }
        match &self.partition {
            Some(partition) => partition.group_of.get(&a) == partition.group_of.get(&b),
            None => true,
        }
    }

    /// Does host `h` write its storage heartbeat on storage `s` right now?
    pub fn can_write(&self, h: usize, s: usize) -> bool {
        self.storages[s].up && !self.hosts[h].hb_loss
    }

    /// Hosts of the cluster of `h`, lowest index first.
    pub fn cluster_hosts(&self, h: usize) -> Vec<usize> {
        (0..self.hosts.len()).filter(|&other| self.hosts[other].cluster == self.hosts[h].cluster).collect()
    }

    // -----------------------------------------------------------------------------------------------
    // Faults
    // -----------------------------------------------------------------------------------------------

    fn schedule_heal(&mut self, duration_s: Option<f64>, heal: FaultKind) {
        if let Some(duration) = duration_s {
            self.scheduled.push((self.now + (duration * 1000.0).round() as Millis, heal));
        }
    }

    fn apply_scheduled(&mut self) {
        let now = self.now;
        let due: Vec<FaultKind> =
            self.scheduled.iter().filter(|(at, _)| *at <= now).map(|(_, kind)| kind.clone()).collect();
        self.scheduled.retain(|(at, _)| *at > now);
        for kind in due {
            self.apply_fault(&kind);
        }
    }

    pub fn power_off(&mut self, h: usize, why: &str) {
        let host = &mut self.hosts[h];
        if !host.powered {
            return;
        }
        host.powered = false;
        host.agent = None;
        host.boot_until = None;
        host.watchdog_deadline = None;
        host.guests.clear();
        let name = host.name.clone();
        self.log(format!("{name} powers off ({why}): its VMs and agent stop"));
    }

    pub fn power_on(&mut self, h: usize, why: &str) {
        let boot = self.scenario.engine.boot_ms;
        let host = &mut self.hosts[h];
        if host.powered {
            return;
        }
        host.powered = true;
        host.boot_until = Some(self.now + boot);
        let name = host.name.clone();
        self.log(format!("{name} powers on ({why}); its agent starts in {} s", boot / 1000));
    }

    /// Applies one fault (or heal) now.
    pub fn apply_fault(&mut self, kind: &FaultKind) {
        self.last_fault_at = self.now;
        match kind {
            FaultKind::PowerLoss { host } => {
                let h = self.host_index(host);
                self.power_off(h, "power loss");
            }
            FaultKind::PowerOn { host } => {
                let h = self.host_index(host);
                self.power_on(h, "host returning");
            }
            FaultKind::AgentCrash { host } => {
                let h = self.host_index(host);
                let sf = self.timing.self_fence_timeout_ms;
                let host = &mut self.hosts[h];
                if let Some(agent) = host.agent.take() {
                    host.watchdog_deadline = Some(agent.last_contact() + sf);
                    let name = host.name.clone();
                    self.log(format!("{name}: agent crashes (VMs keep running; watchdog armed)"));
                }
            }
            FaultKind::AgentRestart { host } => {
                let h = self.host_index(host);
                let now = self.now;
                let host = &mut self.hosts[h];
                if host.powered && host.agent.is_none() && host.boot_until.is_none() {
                    let mut agent = Agent::new(now, 0);
                    agent.generations = host.guests.iter().map(|(vm, guest)| (*vm, guest.generation)).collect();
                    host.agent = Some(agent);
                    host.watchdog_deadline = None;
                    let name = host.name.clone();
                    self.log(format!("{name}: agent restarts"));
                }
            }
            FaultKind::NetCut { host, peers, duration_s } => {
                let h = self.host_index(host);
                self.hosts[h].cut_from_servers = true;
                self.hosts[h].cut_from_peers |= *peers;
                let what = if *peers { "the servers and its peers" } else { "the servers" };
                self.log(format!("network cut between {host} and {what}"));
                self.schedule_heal(*duration_s, FaultKind::NetHeal { host: host.clone() });
            }
            FaultKind::OneWayCut { host, direction, duration_s } => {
                let h = self.host_index(host);
                let what = match direction {
                    CutDirection::ToServers => {
                        self.hosts[h].uplink_cut = true;
                        "what it sends is lost, what the servers send arrives"
                    }
                    CutDirection::FromServers => {
                        self.hosts[h].downlink_cut = true;
                        "the servers hear it, nothing they send arrives"
                    }
                };
                self.log(format!("one-way cut between {host} and the servers: {what}"));
                self.schedule_heal(*duration_s, FaultKind::NetHeal { host: host.clone() });
            }
            FaultKind::NetHeal { host } => {
                let h = self.host_index(host);
                self.hosts[h].cut_from_servers = false;
                self.hosts[h].uplink_cut = false;
                self.hosts[h].downlink_cut = false;
                self.hosts[h].cut_from_peers = false;
                self.log(format!("network of {host} healed"));
            }
            FaultKind::Blip { host, duration_s, peers } => {
                let h = self.host_index(host);
                self.hosts[h].cut_from_servers = true;
                self.hosts[h].cut_from_peers |= *peers;
                self.log(format!("{duration_s} s network blip of {host}"));
                self.schedule_heal(Some(*duration_s), FaultKind::NetHeal { host: host.clone() });
            }
            FaultKind::Partition { groups, servers_with, duration_s } => {
                let mut group_of = BTreeMap::new();
                for (g, group) in groups.iter().enumerate() {
                    for host in group {
                        group_of.insert(self.host_index(host), g);
                    }
                }
                self.partition = Some(Partition { group_of, servers_with: *servers_with });
                let text: Vec<String> = groups.iter().map(|group| format!("[{}]", group.join(", "))).collect();
                let servers = servers_with.map_or("every group".to_owned(), |g| format!("group {g}"));
                self.log(format!("network partition {} (servers reachable from {servers})", text.join(" | ")));
                self.schedule_heal(*duration_s, FaultKind::HealPartition);
            }
            FaultKind::HealPartition => {
                self.partition = None;
                self.log("partition healed");
            }
            FaultKind::StorageHbLoss { host, duration_s } => {
                let h = self.host_index(host);
                self.hosts[h].hb_loss = true;
                self.log(format!("{host} loses its storage heartbeat (its VM disks still work)"));
                self.schedule_heal(*duration_s, FaultKind::StorageHbRestore { host: host.clone() });
            }
            FaultKind::StorageHbRestore { host } => {
                let h = self.host_index(host);
                self.hosts[h].hb_loss = false;
                self.log(format!("{host} storage heartbeat restored"));
            }
            FaultKind::StorageDown { storage, duration_s } => {
                let s = self.storage_index(storage);
                self.storages[s].up = false;
                self.log(format!("primary storage {storage} goes down"));
                self.schedule_heal(*duration_s, FaultKind::StorageUp { storage: storage.clone() });
            }
            FaultKind::StorageUp { storage } => {
                let s = self.storage_index(storage);
                self.storages[s].up = true;
                self.log(format!("primary storage {storage} is back"));
            }
            FaultKind::Bmc { host, state } => {
                let h = self.host_index(host);
                self.hosts[h].bmc = *state;
                self.log(format!("BMC of {host}: {state:?}"));
            }
            FaultKind::ServerCrash { server, lose_actions, restart_after_s } => {
                runtime::crash(self, server - 1, *lose_actions);
                if let Some(after) = restart_after_s {
                    self.schedule_heal(Some(*after), FaultKind::ServerStart { server: *server });
                }
            }
            FaultKind::ServerStart { server } => runtime::start(self, server - 1),
            FaultKind::ServerPause { server, duration_s } => {
                runtime::pause(self, server - 1, (duration_s * 1000.0).round() as Millis)
            }
            FaultKind::EndMaintenance { host } => {
                let h = self.host_index(host);
                self.db.hosts[h].maintenance = false;
                self.log(format!("operator ends the maintenance of {host}"));
            }
        }
    }

    // -----------------------------------------------------------------------------------------------
    // One tick
    // -----------------------------------------------------------------------------------------------

    fn tick(&mut self, tamper: Tamper<'_>) {
        self.physics();
        runtime::complete_pending(self);
        for h in 0..self.hosts.len() {
            self.agent_tick(h);
        }
        runtime::servers_tick(self, tamper);
        invariants::after_tick(self);
    }

    /// Boots, watchdogs, server links.
    fn physics(&mut self) {
        let now = self.now;
        for h in 0..self.hosts.len() {
            // Heard by the servers: over an open session even when the way back is cut.
            let connected = self.hosts[h].agent.as_ref().is_some_and(|agent| agent.connected);
            let reaches = self.reaches_servers(h) && (self.hears_servers(h) || connected);
            let host = &mut self.hosts[h];
            match (reaches && host.powered, host.server_link_since) {
                (true, None) => host.server_link_since = Some(now),
                (false, Some(_)) => host.server_link_since = None,
                _ => {}
            }
            if let Some(boot) = host.boot_until
                && now >= boot
            {
                host.boot_until = None;
                host.agent = Some(Agent::new(now, host.phase));
                let name = host.name.clone();
                self.log(format!("{name}: agent starts after boot (no VM)"));
                continue;
            }
            if let Some(deadline) = host.watchdog_deadline
                && host.agent.is_none()
                && now >= deadline
            {
                host.watchdog_deadline = None;
                host.guests.clear();
                host.boot_until = Some(now + self.scenario.engine.boot_ms);
                let name = host.name.clone();
                self.log(format!("{name}: watchdog resets the host (its agent was dead): VMs stop, reboot"));
            }
        }
    }

    fn running_count(&self, h: usize) -> u32 {
        self.hosts[h].guests.len() as u32
    }

    /// Stops every guest of host `h` (self-fence), remembering why.
    fn stop_all(&mut self, h: usize, cause: StopCause, why: &str) {
        let host = &mut self.hosts[h];
        let Some(agent) = host.agent.as_mut() else { return };
        agent.self_fenced = true;
        // Fencing ends the session; only a new welcome ends the fence.
        agent.connected = false;
        let stopped: Vec<usize> = host.guests.keys().copied().collect();
        for vm in &stopped {
            agent.stop_causes.insert(*vm, cause);
        }
        host.guests.clear();
        let name = host.name.clone();
        let names: Vec<String> = stopped.iter().map(|&vm| self.vms[vm].name.clone()).collect();
        self.log(format!("{name}: agent self-fences ({why}); stops [{}]", names.join(", ")));
    }

    fn agent_tick(&mut self, h: usize) {
        let now = self.now;
        let timing = self.timing.clone();
        if self.hosts[h].agent.is_none() || !self.hosts[h].powered {
            return;
        }
        // Heartbeat round: storage, peers.
        let due = self.hosts[h].agent.as_ref().is_some_and(|agent| now >= agent.next_heartbeat);
        if due {
            let storages = self.hosts[h].storage.clone();
            let running = self.running_count(h);
            for &s in &storages {
                let ok = self.can_write(h, s);
                let self_fenced = self.hosts[h].agent.as_ref().is_some_and(|agent| agent.self_fenced);
                if ok {
                    let record = self.storages[s].records.entry(h).or_default();
                    record.counter += 1;
                    record.advanced_at = now;
                    record.self_fenced = self_fenced;
                    record.running_vms = running;
                }
                let readable: Vec<(usize, Reading)> = if ok {
                    self.storages[s]
                        .records
                        .iter()
                        .filter(|(other, _)| **other != h)
                        .map(|(o, r)| (*o, r.clone()))
                        .collect()
                } else {
                    Vec::new()
                };
                let agent = self.hosts[h].agent.as_mut().expect("checked");
                agent.writes.insert(s, (ok, now));
                if ok {
                    agent.last_storage_ok = now;
                    agent.write_failing_since.remove(&s);
                } else {
                    agent.write_failing_since.entry(s).or_insert(now);
                }
                for (other, record) in readable {
                    let reading = agent.readings.entry((s, other)).or_default();
                    if reading.counter != record.counter || reading.read_at == 0 {
                        reading.counter = record.counter;
                        reading.advanced_at = now;
                    }
                    reading.read_at = now;
                    reading.self_fenced = record.self_fenced;
                    reading.running_vms = record.running_vms;
                }
            }
            for other in self.cluster_hosts(h) {
                if other != h
                    && self.hosts[other].powered
                    && self.peers_connected(h, other)
                    && let Some(peer) = self.hosts[other].agent.as_mut()
                {
                    peer.peers_heard.insert(h, now);
                }
            }
            let agent = self.hosts[h].agent.as_mut().expect("checked");
            agent.next_heartbeat += timing.heartbeat_interval_ms;
            agent.next_network_try = now;
        }
        // The agent drops a session without acks for half the self-fence timeout (at least three
        // intervals), and one whose link is down both ways.
        let (up, down) = (self.reaches_servers(h) && runtime::any_server_up(self), self.hears_servers(h));
        let silence_limit = (timing.self_fence_timeout_ms / 2).max(3 * timing.heartbeat_interval_ms);
        if let Some(agent) = self.hosts[h].agent.as_mut()
            && agent.connected
            && ((!up && !down) || now - agent.last_server_ok > silence_limit)
        {
            agent.connected = false;
        }
        // Network heartbeat (with inventory and storage report), retried while it fails. A session opens
        // only when both directions work; an open one carries heartbeats while only the way back is cut.
        let try_network = self.hosts[h].agent.as_ref().is_some_and(|agent| now >= agent.next_network_try);
        if try_network {
            let connected = self.hosts[h].agent.as_ref().is_some_and(|agent| agent.connected);
            if up && (connected || down) {
                if !connected {
                    self.hosts[h].agent.as_mut().expect("checked").connected = true;
                    self.peers_frame(h);
                }
                runtime::deliver_heartbeat(self, h, down);
                let agent = self.hosts[h].agent.as_mut().expect("checked");
                agent.next_network_try = agent.next_heartbeat;
            } else {
                let agent = self.hosts[h].agent.as_mut().expect("checked");
                agent.next_network_try = now + RETRY_MS;
            }
        }
        // Storage loss: stop the VMs whose disks are on a storage written in vain for the timeout.
        let lost: Vec<usize> = self.hosts[h]
            .agent
            .as_ref()
            .map(|agent| {
                agent
                    .write_failing_since
                    .iter()
                    .filter(|(s, since)| now - **since >= timing.storage_timeout_ms && !self.storages[**s].up)
                    .map(|(s, _)| *s)
                    .collect()
            })
            .unwrap_or_default();
        for s in lost {
            let victims: Vec<usize> =
                self.hosts[h].guests.keys().copied().filter(|&vm| self.vms[vm].storage == Some(s)).collect();
            if victims.is_empty() {
                continue;
            }
            let host = &mut self.hosts[h];
            let agent = host.agent.as_mut().expect("checked");
            for vm in &victims {
                host.guests.remove(vm);
                agent.stop_causes.insert(*vm, StopCause::StorageLost);
            }
            let names: Vec<String> = victims.iter().map(|&vm| self.vms[vm].name.clone()).collect();
            let (host_name, storage_name) = (self.hosts[h].name.clone(), self.storages[s].name.clone());
            self.log(format!("{host_name}: lost storage {storage_name}; stops [{}]", names.join(", ")));
            if self.reaches_servers(h) {
                runtime::deliver_inventory(self, h);
            }
        }
        // Self-fencing (contract rule 4).
        let Some(agent) = self.hosts[h].agent.as_ref() else { return };
        if agent.self_fenced && self.hosts[h].guests.is_empty() {
            return;
        }
        // Like the real agent (agent/src/self_fence.rs): act one heartbeat interval before the
        // self-fence timeout, so that the VMs are gone by the deadline the engine relies on.
        let act_after = timing.self_fence_timeout_ms - timing.heartbeat_interval_ms;
        if now - agent.last_contact() > act_after {
            let why = format!("no server and no storage for {} ms", now - agent.last_contact());
            self.stop_all(h, StopCause::SelfFenced, &why);
            return;
        }
        let lost_servers = now - agent.last_server_ok > act_after;
        if lost_servers {
            let cluster = self.cluster_hosts(h);
            let side: Vec<usize> = cluster
                .iter()
                .copied()
                .filter(|&other| {
                    other == h || agent.peers_heard.get(&other).is_some_and(|at| now - at <= timing.suspect_after_ms)
                })
                .collect();
            let n = cluster.len();
            let lowest = cluster[0];
            let minority = side.len() * 2 < n || (side.len() * 2 == n && !side.contains(&lowest));
            if minority && !self.hosts[h].guests.is_empty() {
                let why = format!("lost the servers; its side has {} of {n} hosts", side.len());
                self.stop_all(h, StopCause::SelfFenced, &why);
            }
        }
    }

    /// Host `h` opened a session: the servers send the other agents of its cluster a `Peers` frame. It
    /// proves nothing about what the servers hear; only [`World::legacy_contact`] agents count it.
    fn peers_frame(&mut self, h: usize) {
        if !self.legacy_contact {
            return;
        }
        let now = self.now;
        for other in self.cluster_hosts(h) {
            if other == h || !self.hears_servers(other) {
                continue;
            }
            if let Some(agent) = self.hosts[other].agent.as_mut()
                && agent.connected
            {
                agent.last_server_ok = now;
            }
        }
    }

    fn finish(mut self) -> Outcome {
        invariants::at_end(&mut self);
        let failures = super::invariants::expectations(&self);
        Outcome {
            name: self.scenario.name.clone(),
            timeline: std::mem::take(&mut self.timeline),
            violations: self.checker.violations.clone(),
            failures,
            stats: self.stats.clone(),
            end_ms: self.now,
            capacity_judged: self.checker.capacity_judged,
            all_running_at: self.checker.all_running_at,
        }
    }

    /// The engine's current view of host `h`'s HA state (from the stored state).
    pub fn ha_state(&self, h: usize) -> Option<HaState> {
        self.db.engine_state.hosts.get(&self.hosts[h].id).map(|record| record.state)
    }
}
