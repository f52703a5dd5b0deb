//! Simulated hosts: each runs the real agent code path (`agent::run`) over an in-memory hypervisor,
//! registering with the server like a real host. Fault knobs act like the physical world: power loss
//! ends the agent and every VM at once; power on boots the host again and its agent re-registers.

use agent::hypervisor::memory::MemoryHypervisor;
use agent::{AgentConfig, Backoff};
use api::agent::HostRegistration;
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

pub struct SimHost {
    pub spec: SimHostSpec,
    pub hypervisor: MemoryHypervisor,
    server_url: String,
    join_token: String,
    running: Mutex<Option<Running>>,
}

impl SimHost {
    pub fn new(spec: SimHostSpec, server_url: &str, join_token: &str) -> Arc<SimHost> {
        let hypervisor = MemoryHypervisor::new(spec.capacity, spec.boot_delay, spec.shutdown_delay);
        Arc::new(SimHost {
            spec,
            hypervisor,
            server_url: server_url.to_owned(),
            join_token: join_token.to_owned(),
            running: Mutex::new(None),
        })
    }

    pub fn is_powered_on(&self) -> bool {
        self.running.lock().unwrap().is_some()
    }

    /// Boot the host: its agent starts and registers. No effect when already on.
    pub fn power_on(&self) {
        let mut running = self.running.lock().unwrap();
        if running.is_some() {
            return;
        }
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
            },
            backoff: Backoff::default(),
        };
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(agent::run(config, Arc::new(self.hypervisor.clone()), stopped));
        *running = Some(Running { stop, task });
    }

    /// Pull the plug: the agent dies mid-whatever (its connection drops without a goodbye) and every
    /// VM is gone at once.
    pub fn power_off(&self) {
        if let Some(running) = self.running.lock().unwrap().take() {
            running.task.abort();
            drop(running.stop);
        }
        self.hypervisor.power_loss();
    }

    /// A clean shutdown of the agent (VMs are left as they are).
    pub async fn shutdown(&self) {
        let running = self.running.lock().unwrap().take();
        if let Some(running) = running {
            let _ = running.stop.send(true);
            let _ = running.task.await;
        }
    }
}

/// A set of simulated hosts sharing one server and join token.
pub struct SimPool {
    pub hosts: Vec<Arc<SimHost>>,
}

impl SimPool {
    /// Create and power on every host.
    pub fn start(server_url: &str, join_token: &str, specs: Vec<SimHostSpec>) -> SimPool {
        let hosts: Vec<_> = specs.into_iter().map(|spec| SimHost::new(spec, server_url, join_token)).collect();
        for host in &hosts {
            host.power_on();
        }
        SimPool { hosts }
    }

    pub fn host(&self, name: &str) -> Option<&Arc<SimHost>> {
        self.hosts.iter().find(|host| host.spec.name == name)
    }

    pub async fn shutdown(&self) {
        for host in &self.hosts {
            host.shutdown().await;
        }
    }
}
