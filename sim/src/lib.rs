//! Simulated hosts: each runs the real agent code path (`agent::run`) over an in-memory hypervisor,
//! registering with the server like a real host. Fault knobs act like the physical world: power loss
//! ends the agent and every VM at once; power on boots the host again and its agent re-registers.
//! Each host can have a simulated BMC ([`bmc`]) that controls this power over Redfish.
//!
//! The hosts of a pool share a [`SimWorld`]: one directory per primary storage (in a temp dir) that every
//! host mounting it keeps its storage heartbeat in, and the pool's [`NetworkFaults`]: cuts between a host
//! and the servers, splits between groups of hosts, storage cuts. An agent crash stops the agent alone
//! while its VMs keep running, the dangerous case the engine must not mistake for a dead host.

pub mod bmc;
pub mod commands;

pub use bmc::{BmcFault, BmcInfo, BmcSettings, SimBmc};

use agent::Hypervisor;
use agent::hypervisor::memory::MemoryHypervisor;
use agent::{AgentConfig, NetworkFaults, StorageMount};
use api::agent::{AgentVmState, HostRegistration};
use api::v1::{HypervisorKind, Resources};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Clone, Debug)]
pub struct SimHostSpec {
    pub name: String,
    pub cluster: String,
    pub address: String,
    pub capacity: Resources,
    pub mounted_storage: Vec<String>,
    pub boot_delay: Duration,
    pub shutdown_delay: Duration,
}

impl SimHostSpec {
    /// A host like the demo's: 16 cores at 2.4 GHz and 64 GB, VMs booting in 1.5 s.
    pub fn standard(name: &str, cluster: &str, storage_url: &str, index: usize) -> Self {
        SimHostSpec {
            name: name.to_owned(),
            cluster: cluster.to_owned(),
            // Loopback addresses: a simulated host is never anywhere else.
            address: format!("127.0.1.{}", index + 1),
            capacity: Resources { cpu_cores: 16, cpu_mhz: 16 * 2400, memory_mb: 65536 },
            mounted_storage: vec![storage_url.to_owned()],
            boot_delay: Duration::from_millis(1500),
            shutdown_delay: Duration::from_millis(800),
        }
    }
}

/// What the simulated hosts of one pool share: a directory per primary storage, and the faults on their
/// network and storage.
pub struct SimWorld {
    pub faults: Arc<NetworkFaults>,
    storage_root: tempfile::TempDir,
}

impl SimWorld {
    /// A fresh world: no faults, storage directories in a new temp dir (removed when the world is dropped).
    pub fn new() -> std::io::Result<Arc<SimWorld>> {
        let storage_root = tempfile::Builder::new().prefix("parapet-sim-storage-").tempdir()?;
        Ok(Arc::new(SimWorld { faults: Arc::new(NetworkFaults::new()), storage_root }))
    }

    /// The directory standing for the primary storage `url` (created on first use): every host that
    /// mounts `url` gets the same one.
    pub fn storage_dir(&self, url: &str) -> PathBuf {
        let name: String =
            url.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '.') { c } else { '_' }).collect();
        let dir = self.storage_root.path().join(name);
        if let Err(error) = std::fs::create_dir_all(&dir) {
            tracing::warn!(storage = %url, dir = %dir.display(), "cannot create a storage directory: {error}");
        }
        dir
    }
}

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The host's power: whether it is on, its agent when that runs (it may have crashed while the host stays
/// on), and a counter bumped by every power change, so that a graceful shutdown in progress notices when
/// something else (a forced off, a restart) took over.
struct Power {
    on: bool,
    running: Option<Running>,
    generation: u64,
}

/// How long a graceful shutdown waits, once the guests have stopped, before it stops the agent: its
/// last inventory (every VM stopped) reaches the server first, as it would from a real host.
const SERVICES_STOP_AFTER_GUESTS: Duration = Duration::from_millis(500);

/// How a graceful shutdown ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GracefulOutcome {
    /// Every VM stopped in time; then the host powered off.
    PoweredOff,
    /// Some VM did not stop within the timeout (a hung guest); the host powered off anyway, as an OS
    /// does when its shutdown timeout expires.
    PoweredOffAfterTimeout,
    /// The host was already off, or another power change took over while the VMs were stopping.
    Superseded,
}

pub struct SimHost {
    pub spec: SimHostSpec,
    pub hypervisor: MemoryHypervisor,
    server_url: String,
    join_token: String,
    world: Arc<SimWorld>,
    power: Mutex<Power>,
}

impl SimHost {
    /// A host in a world of its own (its storage directories are its alone).
    pub fn new(spec: SimHostSpec, server_url: &str, join_token: &str) -> Arc<SimHost> {
        let world = SimWorld::new().expect("cannot create the simulator's storage temp dir");
        Self::in_world(spec, server_url, join_token, world)
    }

    /// A host that shares `world`'s storage directories and faults with the other hosts in it.
    pub fn in_world(spec: SimHostSpec, server_url: &str, join_token: &str, world: Arc<SimWorld>) -> Arc<SimHost> {
        let hypervisor = MemoryHypervisor::new(spec.capacity, spec.boot_delay, spec.shutdown_delay);
        Arc::new(SimHost {
            spec,
            hypervisor,
            server_url: server_url.to_owned(),
            join_token: join_token.to_owned(),
            world,
            power: Mutex::new(Power { on: false, running: None, generation: 0 }),
        })
    }

    pub fn is_powered_on(&self) -> bool {
        self.power.lock().unwrap().on
    }

    /// Whether the host's agent runs (off when the host is off or the agent crashed).
    pub fn is_agent_running(&self) -> bool {
        self.power.lock().unwrap().running.is_some()
    }

    /// The directory standing for the primary storage `url` of this host's world.
    pub fn storage_dir(&self, url: &str) -> PathBuf {
        self.world.storage_dir(url)
    }

    /// The agent's configuration: the real agent's, with this world's storage directories as mount
    /// points, peer heartbeats on the host's loopback address, and the world's fault hooks.
    fn agent_config(&self) -> AgentConfig {
        let registration = HostRegistration {
            name: self.spec.name.clone(),
            address: self.spec.address.clone(),
            cluster: self.spec.cluster.clone(),
            hypervisor: HypervisorKind::Sim,
            capacity: self.spec.capacity,
            mounted_storage: self.spec.mounted_storage.clone(),
            agent_version: concat!("sim-", env!("CARGO_PKG_VERSION")).to_owned(),
            peer_port: None,
        };
        let mut config = AgentConfig::new(&self.server_url, &self.join_token, registration);
        config.storage = self
            .spec
            .mounted_storage
            .iter()
            .map(|url| StorageMount { name: url.clone(), dir: self.world.storage_dir(url) })
            .collect();
        config.peer_listen = self.spec.address.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0));
        config.faults = Some(self.world.faults.clone());
        config
    }

    /// Start the agent; the caller holds the power lock and the host is on.
    fn start_agent(&self, power: &mut Power) {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(agent::run(self.agent_config(), Arc::new(self.hypervisor.clone()), stopped));
        power.running = Some(Running { stop, task });
    }

    /// Boot the host: its agent starts and registers. A host boots with no VM running, whatever happened
    /// while it was off. On a host that is on, this only restarts a crashed agent (its VMs stay).
    pub fn power_on(&self) {
        let mut power = self.power.lock().unwrap();
        if power.on {
            if power.running.is_none() {
                self.start_agent(&mut power);
            }
            return;
        }
        power.generation += 1;
        power.on = true;
        self.hypervisor.power_loss();
        self.start_agent(&mut power);
    }

    /// Pull the plug: the agent dies mid-whatever (its connection drops without a goodbye, its storage
    /// and peer heartbeats stop at once) and every VM is gone at once.
    pub fn power_off(&self) {
        let mut power = self.power.lock().unwrap();
        power.generation += 1;
        power.on = false;
        if let Some(running) = power.running.take() {
            running.task.abort();
            drop(running.stop);
        }
        self.hypervisor.power_loss();
    }

    /// The agent process dies (no goodbye, no more heartbeats on any channel) while the host stays on and
    /// its VMs keep running. `false` when no agent was running.
    pub fn crash_agent(&self) -> bool {
        let mut power = self.power.lock().unwrap();
        match power.running.take() {
            Some(running) => {
                running.task.abort();
                true
            }
            None => false,
        }
    }

    /// Start the agent again after a crash (the VMs it finds keep running). `false` when the host is off
    /// or its agent already runs.
    pub fn start_crashed_agent(&self) -> bool {
        let mut power = self.power.lock().unwrap();
        if !power.on || power.running.is_some() {
            return false;
        }
        self.start_agent(&mut power);
        true
    }

    /// The host loses (`true`) or regains the management servers: its connection drops and it cannot
    /// reconnect. Its peers and storage are unaffected.
    pub fn set_net_cut(&self, cut: bool) {
        self.world.faults.set_server_cut(&self.spec.name, cut);
    }

    /// The host's storage heartbeat writes fail (`true`) or work again.
    pub fn set_storage_cut(&self, cut: bool) {
        self.world.faults.set_storage_cut(&self.spec.name, cut);
    }

    /// A network blip: the host loses the servers and its peers for `duration`, then gets them back
    /// (its storage, on its own network, stays). Returns at once; the blip ends in the background.
    pub fn blip(&self, duration: Duration) {
        let faults = self.world.faults.clone();
        let name = self.spec.name.clone();
        faults.set_server_cut(&name, true);
        faults.set_peer_cut(&name, true);
        tokio::spawn(async move {
            tokio::time::sleep(duration).await;
            faults.set_server_cut(&name, false);
            faults.set_peer_cut(&name, false);
        });
    }

    /// An orderly shutdown, as the host's OS performs one when its BMC presses the power button: every
    /// VM is asked to shut down while the agent keeps reporting, then (once all have stopped, or after
    /// `timeout` if a guest ignores the request) the agent stops and the power goes off. A forced
    /// power change meanwhile supersedes it.
    pub async fn graceful_shutdown(&self, timeout: Duration) -> GracefulOutcome {
        let Some(generation) = self.powered_on_generation() else {
            return GracefulOutcome::Superseded;
        };
        let deadline = tokio::time::Instant::now() + timeout;
        let mut changes = self.hypervisor.changes();
        for vm in self.hypervisor.list_vms().await {
            if matches!(vm.state, AgentVmState::Starting | AgentVmState::Running) {
                // A VM that changed state meanwhile (stopped, migrated away) needs no request.
                let _ = self.hypervisor.stop_vm(vm.vm_id, false).await;
            }
        }
        let mut timed_out = false;
        loop {
            if self.powered_on_generation() != Some(generation) {
                return GracefulOutcome::Superseded;
            }
            let busy = self.hypervisor.list_vms().await.iter().any(|vm| {
                matches!(
                    vm.state,
                    AgentVmState::Starting
                        | AgentVmState::Running
                        | AgentVmState::Stopping
                        | AgentVmState::MigratingOut
                )
            });
            if !busy {
                break;
            }
            // Every VM transition and every power change (power_on/power_off clear the hypervisor)
            // ticks `changes`, so waiting on it misses nothing.
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => {
                    timed_out = true;
                    break;
                }
            }
        }
        // The OS stops its services (the agent among them) a moment after the guests, which leaves the
        // agent time to report the stopped VMs; then the power goes off.
        if !timed_out {
            tokio::time::sleep(SERVICES_STOP_AFTER_GUESTS).await;
        }
        let running = {
            let mut power = self.power.lock().unwrap();
            if power.generation != generation || !power.on {
                return GracefulOutcome::Superseded;
            }
            power.generation += 1;
            power.on = false;
            power.running.take()
        };
        let stopped_generation = generation + 1;
        if let Some(running) = running {
            let _ = running.stop.send(true);
            let _ = running.task.await;
        }
        let power = self.power.lock().unwrap();
        // If the host was booted again while the agent stopped, that boot already cleared the VMs.
        if power.generation == stopped_generation {
            self.hypervisor.power_loss();
        }
        if timed_out { GracefulOutcome::PoweredOffAfterTimeout } else { GracefulOutcome::PoweredOff }
    }

    fn powered_on_generation(&self) -> Option<u64> {
        let power = self.power.lock().unwrap();
        power.on.then_some(power.generation)
    }

    /// A clean shutdown of the agent (VMs are left as they are); the host counts as off afterwards.
    pub async fn shutdown(&self) {
        let running = {
            let mut power = self.power.lock().unwrap();
            power.generation += 1;
            power.on = false;
            power.running.take()
        };
        if let Some(running) = running {
            let _ = running.stop.send(true);
            let _ = running.task.await;
        }
    }
}

/// A set of simulated hosts sharing one server and join token, each with its BMC when started by
/// [`SimPool::start_with_bmcs`].
pub struct SimPool {
    pub hosts: Vec<Arc<SimHost>>,
    /// One per host, in the order of `hosts` (empty for a pool started by [`SimPool::start`]).
    pub bmcs: Vec<Arc<SimBmc>>,
    /// The storage directories and faults the hosts share.
    pub world: Arc<SimWorld>,
}

impl SimPool {
    /// Create and power on every host, without BMCs.
    pub fn start(server_url: &str, join_token: &str, specs: Vec<SimHostSpec>) -> SimPool {
        let world = SimWorld::new().expect("cannot create the simulator's storage temp dir");
        let hosts: Vec<_> =
            specs.into_iter().map(|spec| SimHost::in_world(spec, server_url, join_token, world.clone())).collect();
        for host in &hosts {
            host.power_on();
        }
        SimPool { hosts, bmcs: Vec::new(), world }
    }

    /// Create every host with a Redfish BMC listening on its own port of 127.0.0.1, then power the hosts
    /// on. Fails when a BMC cannot listen.
    pub fn start_with_bmcs(
        server_url: &str,
        join_token: &str,
        specs: Vec<SimHostSpec>,
        settings: &BmcSettings,
    ) -> std::io::Result<SimPool> {
        let world = SimWorld::new()?;
        let hosts: Vec<_> =
            specs.into_iter().map(|spec| SimHost::in_world(spec, server_url, join_token, world.clone())).collect();
        let bmcs = hosts.iter().map(|host| SimBmc::start(host.clone(), settings)).collect::<Result<Vec<_>, _>>()?;
        for host in &hosts {
            host.power_on();
        }
        Ok(SimPool { hosts, bmcs, world })
    }

    /// Split the pool's network between the hosts named in `first` and `second`: their peer heartbeats
    /// no longer cross, and only `first` still reaches the servers (the second group's connections drop).
    /// Fails naming an unknown host.
    pub fn split(&self, first: &[&str], second: &[&str]) -> Result<(), String> {
        for name in first.iter().chain(second) {
            if self.host(name).is_none() {
                return Err(format!("no host named {name}"));
            }
        }
        self.world.faults.split(first, second);
        Ok(())
    }

    /// End a split.
    pub fn unsplit(&self) {
        self.world.faults.unsplit();
    }

    pub fn host(&self, name: &str) -> Option<&Arc<SimHost>> {
        self.hosts.iter().find(|host| host.spec.name == name)
    }

    /// The BMC of the host called `name`.
    pub fn bmc(&self, name: &str) -> Option<&Arc<SimBmc>> {
        self.bmcs.iter().find(|bmc| bmc.host().spec.name == name)
    }

    /// Stop every BMC, then stop every agent cleanly.
    pub async fn shutdown(&self) {
        for bmc in &self.bmcs {
            bmc.stop().await;
        }
        for host in &self.hosts {
            host.shutdown().await;
        }
    }
}
