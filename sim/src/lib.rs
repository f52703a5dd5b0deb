//! Simulated hosts: each runs the real agent code path (`agent::run`) over an in-memory hypervisor,
//! registering with the server like a real host. Fault knobs act like the physical world: power loss
//! ends the agent and every VM at once; power on boots the host again and its agent re-registers.
//! Each host can have a simulated BMC ([`bmc`]) that controls this power over Redfish.

pub mod bmc;
pub mod commands;

pub use bmc::{BmcFault, BmcInfo, BmcSettings, SimBmc};

use agent::Hypervisor;
use agent::hypervisor::memory::MemoryHypervisor;
use agent::{AgentConfig, Backoff};
use api::agent::{AgentVmState, HostRegistration};
use api::v1::{HypervisorKind, Resources};
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

struct Running {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// The host's power: its running agent when on, and a counter bumped by every power change, so that a
/// graceful shutdown in progress notices when something else (a forced off, a restart) took over.
struct Power {
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
    power: Mutex<Power>,
}

impl SimHost {
    pub fn new(spec: SimHostSpec, server_url: &str, join_token: &str) -> Arc<SimHost> {
        let hypervisor = MemoryHypervisor::new(spec.capacity, spec.boot_delay, spec.shutdown_delay);
        Arc::new(SimHost {
            spec,
            hypervisor,
            server_url: server_url.to_owned(),
            join_token: join_token.to_owned(),
            power: Mutex::new(Power { running: None, generation: 0 }),
        })
    }

    pub fn is_powered_on(&self) -> bool {
        self.power.lock().unwrap().running.is_some()
    }

    /// Boot the host: its agent starts and registers. No effect when already on. A host boots with no VM
    /// running, whatever happened while it was off.
    pub fn power_on(&self) {
        let mut power = self.power.lock().unwrap();
        if power.running.is_some() {
            return;
        }
        power.generation += 1;
        self.hypervisor.power_loss();
        let config = AgentConfig {
            server_url: self.server_url.clone(),
            join_token: self.join_token.clone(),
            registration: HostRegistration {
                name: self.spec.name.clone(),
                address: self.spec.address.clone(),
                cluster: self.spec.cluster.clone(),
                hypervisor: HypervisorKind::Sim,
                capacity: self.spec.capacity,
                mounted_storage: self.spec.mounted_storage.clone(),
                agent_version: concat!("sim-", env!("CARGO_PKG_VERSION")).to_owned(),
                peer_port: None,
            },
            backoff: Backoff::default(),
        };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(agent::run(config, Arc::new(self.hypervisor.clone()), stopped));
        power.running = Some(Running { stop, task });
    }

    /// Pull the plug: the agent dies mid-whatever (its connection drops without a goodbye) and every
    /// VM is gone at once.
    pub fn power_off(&self) {
        let mut power = self.power.lock().unwrap();
        power.generation += 1;
        if let Some(running) = power.running.take() {
            running.task.abort();
            drop(running.stop);
        }
        self.hypervisor.power_loss();
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
            if power.generation != generation || power.running.is_none() {
                return GracefulOutcome::Superseded;
            }
            power.generation += 1;
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
        power.running.as_ref().map(|_| power.generation)
    }

    /// A clean shutdown of the agent (VMs are left as they are).
    pub async fn shutdown(&self) {
        let running = {
            let mut power = self.power.lock().unwrap();
            power.generation += 1;
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
}

impl SimPool {
    /// Create and power on every host, without BMCs.
    pub fn start(server_url: &str, join_token: &str, specs: Vec<SimHostSpec>) -> SimPool {
        let hosts: Vec<_> = specs.into_iter().map(|spec| SimHost::new(spec, server_url, join_token)).collect();
        for host in &hosts {
            host.power_on();
        }
        SimPool { hosts, bmcs: Vec::new() }
    }

    /// Create every host with a Redfish BMC listening on its own port of 127.0.0.1, then power the hosts
    /// on. Fails when a BMC cannot listen.
    pub fn start_with_bmcs(
        server_url: &str,
        join_token: &str,
        specs: Vec<SimHostSpec>,
        settings: &BmcSettings,
    ) -> std::io::Result<SimPool> {
        let hosts: Vec<_> = specs.into_iter().map(|spec| SimHost::new(spec, server_url, join_token)).collect();
        let bmcs = hosts.iter().map(|host| SimBmc::start(host.clone(), settings)).collect::<Result<Vec<_>, _>>()?;
        for host in &hosts {
            host.power_on();
        }
        Ok(SimPool { hosts, bmcs })
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
