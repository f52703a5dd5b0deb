//! `parapet-agent`: the host agent binary. Connects to a management server with the zone's join token
//! and registers this host; keeps a storage heartbeat on every mounted shared storage given with
//! `--mount-path`, exchanges peer heartbeats on `--peer-port` (UDP), fences itself when cut off, and
//! optionally pets a hardware watchdog (`--watchdog /dev/watchdog`).

use agent::hypervisor::memory::MemoryHypervisor;
use agent::watchdog::DeviceWatchdog;
use agent::{AgentConfig, Backoff, StorageMount};
use api::agent::HostRegistration;
use api::v1::{HypervisorKind, Resources};
use clap::{Parser, ValueEnum};
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone, Copy, ValueEnum)]
enum Backend {
    /// In-memory VMs (testing, simulation).
    Memory,
    /// libvirt (KVM hosts); needs the binary built with the `libvirt` feature.
    Libvirt,
}

#[derive(Parser)]
#[command(name = "parapet-agent", version, about = "Parapet host agent")]
struct Args {
    /// Management server URL, e.g. http://mgmt.example:8080.
    #[arg(long, env = "PARAPET_SERVER")]
    server: String,
    /// The zone's join token.
    #[arg(long, env = "PARAPET_JOIN_TOKEN", hide_env_values = true)]
    token: String,
    /// Host name as shown in the console [default: this machine's host name].
    #[arg(long)]
    name: Option<String>,
    /// Cluster (by name) this host belongs to.
    #[arg(long)]
    cluster: String,
    /// Address operators reach this host at.
    #[arg(long, default_value = "127.0.0.1")]
    address: String,
    /// CPU cores offered to VMs [default: this machine's].
    #[arg(long)]
    cpu_cores: Option<u32>,
    /// Speed of one core in MHz.
    #[arg(long, default_value_t = 2400)]
    core_mhz: u32,
    /// Memory offered to VMs in MB [default: this machine's].
    #[arg(long)]
    memory_mb: Option<u64>,
    /// URL of a mounted primary storage pool (repeatable).
    #[arg(long = "mount")]
    mounts: Vec<String>,
    /// Hypervisor backend.
    #[arg(long, value_enum, default_value = "memory")]
    backend: Backend,
    /// libvirt connection URI (with --backend libvirt).
    #[arg(long, default_value = "qemu:///system")]
    libvirt_uri: String,
    /// libvirt domain type (kvm on real hosts; test with the test driver).
    #[arg(long, default_value = "kvm")]
    libvirt_domain_type: String,
    /// Where a primary storage URL is mounted here, as URL=PATH (repeatable). The agent keeps its storage
    /// heartbeat record under PATH/.parapet-hb/; with --backend libvirt, VM disks live under PATH.
    #[arg(long = "mount-path", value_name = "URL=PATH")]
    mount_paths: Vec<String>,
    /// UDP port for the heartbeats between the agents of a cluster (0: any free port).
    #[arg(long, default_value_t = 7400)]
    peer_port: u16,
    /// Local address the peer heartbeat socket binds to.
    #[arg(long, default_value = "0.0.0.0")]
    peer_bind: std::net::IpAddr,
    /// Run no peer heartbeats (the agent cannot then tell the sides of a partition apart and keeps running
    /// only while it reaches a server or its storage).
    #[arg(long)]
    no_peer_heartbeat: bool,
    /// Arm this hardware watchdog device (e.g. /dev/watchdog) and pet it while the agent is healthy; the
    /// host resets if the agent dies or cannot stop its VMs when it must. Off by default.
    #[arg(long, value_name = "DEVICE")]
    watchdog: Option<std::path::PathBuf>,
}

/// The `--mount-path URL=PATH` pairs.
fn mount_paths(args: &Args) -> anyhow::Result<Vec<(String, std::path::PathBuf)>> {
    args.mount_paths
        .iter()
        .map(|text| {
            let (url, path) =
                text.rsplit_once('=').ok_or_else(|| anyhow::anyhow!("--mount-path {text:?}: expected URL=PATH"))?;
            Ok((url.to_owned(), std::path::PathBuf::from(path)))
        })
        .collect()
}

/// The hypervisor behind the chosen backend.
async fn hypervisor(args: &Args, capacity: Resources) -> anyhow::Result<(Arc<dyn agent::Hypervisor>, HypervisorKind)> {
    match args.backend {
        Backend::Memory => Ok((
            Arc::new(MemoryHypervisor::new(capacity, Duration::from_secs(2), Duration::from_secs(1))),
            HypervisorKind::Sim,
        )),
        #[cfg(feature = "libvirt")]
        Backend::Libvirt => {
            let storage_mounts = mount_paths(args)?;
            let config = agent::hypervisor::libvirt::LibvirtConfig {
                uri: args.libvirt_uri.clone(),
                domain_type: args.libvirt_domain_type.clone(),
                storage_mounts,
                poll_interval: Duration::from_secs(1),
            };
            let hypervisor = agent::hypervisor::libvirt::LibvirtHypervisor::connect(config)
                .await
                .map_err(|error| anyhow::anyhow!("cannot open libvirt at {}: {error}", args.libvirt_uri))?;
            Ok((hypervisor, HypervisorKind::Kvm))
        }
        #[cfg(not(feature = "libvirt"))]
        Backend::Libvirt => {
            anyhow::bail!("this parapet-agent was built without libvirt; rebuild with `--features libvirt`")
        }
    }
}

fn machine_memory_mb() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|line| line.starts_with("MemTotal:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("PARAPET_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let name = match args.name.clone() {
        Some(name) => name,
        None => std::fs::read_to_string("/etc/hostname")
            .map(|text| text.trim().to_owned())
            .map_err(|error| anyhow::anyhow!("--name not given and /etc/hostname unreadable: {error}"))?,
    };
    let cpu_cores =
        args.cpu_cores.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1));
    let memory_mb = args
        .memory_mb
        .or_else(machine_memory_mb)
        .ok_or_else(|| anyhow::anyhow!("--memory-mb not given and /proc/meminfo unreadable"))?;
    let capacity = Resources { cpu_cores, cpu_mhz: cpu_cores * args.core_mhz, memory_mb };
    let (hypervisor, kind) = hypervisor(&args, capacity).await?;
    let mut storage = Vec::new();
    for (url, dir) in mount_paths(&args)? {
        if !args.mounts.contains(&url) {
            anyhow::bail!("--mount-path {url}={}: {url} is not one of the --mount storages", dir.display());
        }
        storage.push(StorageMount { name: url, dir });
    }
    for url in &args.mounts {
        if !storage.iter().any(|mount| &mount.name == url) {
            tracing::warn!(storage = %url, "no --mount-path for this storage: no storage heartbeat on it");
        }
    }
    let watchdog = match &args.watchdog {
        None => None,
        Some(path) => {
            let device = DeviceWatchdog::open(path)
                .map_err(|error| anyhow::anyhow!("--watchdog {}: cannot open: {error}", path.display()))?;
            let default_fence = Duration::from_millis(api::agent::DEFAULT_SELF_FENCE_TIMEOUT_MS);
            match device.timeout() {
                Some(timeout) if timeout >= default_fence => tracing::warn!(
                    "the watchdog resets the host after {timeout:?}, not before the self-fence timeout \
                     ({default_fence:?} by default): set a shorter timeout in its driver"
                ),
                Some(timeout) => tracing::info!("hardware watchdog armed; it resets the host after {timeout:?}"),
                None => tracing::warn!("hardware watchdog armed; its timeout is unknown (no sysfs entry)"),
            }
            Some(Arc::new(device) as Arc<dyn agent::watchdog::Watchdog>)
        }
    };
    let config = AgentConfig {
        server_url: args.server.clone(),
        join_token: args.token.clone(),
        storage,
        peer_listen: (!args.no_peer_heartbeat).then(|| std::net::SocketAddr::new(args.peer_bind, args.peer_port)),
        faults: None,
        watchdog,
        registration: HostRegistration {
            name,
            address: args.address.clone(),
            cluster: args.cluster.clone(),
            hypervisor: kind,
            capacity,
            mounted_storage: args.mounts.clone(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
            peer_port: None,
        },
        backoff: Backoff::default(),
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        let _ = stop.send(true);
    });
    agent::run(config, hypervisor, stopped).await;
    Ok(())
}
