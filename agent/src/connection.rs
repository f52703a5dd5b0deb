//! The agent's one long-lived connection to the management server: handshake, heartbeats every
//! interval, an inventory on connect and on every VM change, commands executed and answered.
//! Reconnects with exponential back-off and jitter when the connection fails or ends. Around the sessions
//! run the agent's HA tasks: the storage heartbeat, the peer heartbeats and the guardian (self-fencing).

use crate::faults::NetworkFaults;
use crate::guardian::Guardian;
use crate::health::{HaSettings, Health};
use crate::hypervisor::Hypervisor;
use crate::peers::PeerHeartbeat;
use crate::storage_heartbeat::{StorageHeartbeat, StorageMount};
use crate::watchdog::Watchdog;
use api::agent::{
    AgentMessage, CONNECT_PATH, Command, CommandOutcome, Frame, HostRegistration, PROTOCOL_VERSION, ServerMessage,
};
use api::{CommandId, VmId};
use futures::{SinkExt, StreamExt};
use rand::Rng;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

#[derive(Clone, Debug)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    /// At most 2 s between attempts: the agent judges itself cut off after a few seconds without a server,
    /// so after a short network blip it must be back quickly.
    fn default() -> Self {
        Backoff { initial: Duration::from_millis(200), max: Duration::from_secs(2) }
    }
}

impl Backoff {
    /// The delay before attempt `failures + 1`: doubling from `initial` up to `max`, with +-20 % jitter
    /// so that a whole pool does not reconnect in lock-step after a server restart.
    pub fn delay(&self, failures: u32) -> Duration {
        let base = self.initial.saturating_mul(2u32.saturating_pow(failures.min(16))).min(self.max);
        let jitter = rand::thread_rng().gen_range(0.8..1.2);
        base.mul_f64(jitter)
    }
}

#[derive(Clone, Debug)]
pub struct AgentConfig {
    /// The management server, e.g. `http://127.0.0.1:8080`.
    pub server_url: String,
    pub join_token: String,
    pub registration: HostRegistration,
    pub backoff: Backoff,
    /// The shared primary storages to keep a heartbeat record on (each a storage URL of
    /// `registration.mounted_storage` and its mount point here).
    pub storage: Vec<StorageMount>,
    /// Where to receive peer heartbeat datagrams (port 0: any free port); `None`: no peer heartbeats.
    /// The bound port is reported as `HostRegistration::peer_port`.
    pub peer_listen: Option<SocketAddr>,
    /// Simulated network and storage faults (the simulator only; `None` on real hosts).
    pub faults: Option<Arc<NetworkFaults>>,
    /// The hardware watchdog to pet, when armed.
    pub watchdog: Option<Arc<dyn Watchdog>>,
}

impl AgentConfig {
    /// A configuration without storage heartbeats, peer heartbeats, faults or watchdog.
    pub fn new(server_url: &str, join_token: &str, registration: HostRegistration) -> Self {
        AgentConfig {
            server_url: server_url.to_owned(),
            join_token: join_token.to_owned(),
            registration,
            backoff: Backoff::default(),
            storage: Vec::new(),
            peer_listen: None,
            faults: None,
            watchdog: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("cannot connect")]
    Connect(#[source] tokio_tungstenite::tungstenite::Error),
    #[error("cannot connect: {0}")]
    Unreachable(String),
    #[error("the server refused the agent: {0}")]
    Refused(String),
    #[error("connection lost")]
    Lost,
    #[error("the server sent no welcome in time")]
    NoWelcome,
    #[error("no frame from the server for {} ms", .0.as_millis())]
    Silent(Duration),
    #[error("this host fenced itself; reconnecting for a fresh welcome")]
    SelfFenced,
    #[error("the network to the management servers is cut (simulated fault)")]
    Cut,
}

/// What the agent remembers across connections, to refuse stale commands.
#[derive(Default)]
struct Fences {
    /// Highest leadership epoch seen; commands from an older one are refused.
    epoch: i64,
    /// Highest generation seen per VM; commands naming an older one are refused.
    generations: HashMap<VmId, i64>,
}

impl Fences {
    fn admit(&mut self, epoch: i64, command: &Command) -> Result<(), String> {
        if epoch < self.epoch {
            return Err(format!("command from leadership epoch {epoch}, but epoch {} has been seen", self.epoch));
        }
        self.epoch = epoch;
        let (vm, generation) = match command {
            Command::StartVm { vm } | Command::PrepareMigration { vm } => (vm.vm_id, vm.generation),
            Command::StopVm { vm_id, generation, .. }
            | Command::DestroyVm { vm_id, generation }
            | Command::MigrateOut { vm_id, generation, .. }
            | Command::FinishMigration { vm_id, generation } => (*vm_id, *generation),
        };
        let known = self.generations.entry(vm).or_insert(generation);
        if generation < *known {
            return Err(format!("command for VM generation {generation}, but generation {known} has been seen"));
        }
        *known = generation;
        Ok(())
    }
}

/// Why a command that would make a VM run here is refused now: the agent fenced itself (until the next
/// welcome), or the VM's storage is lost to this host.
fn start_refusal(health: &Health, command: &Command) -> Option<String> {
    let spec = match command {
        Command::StartVm { vm } | Command::PrepareMigration { vm } => Some(vm),
        Command::FinishMigration { .. } => None,
        _ => return None,
    };
    if let Some(reason) = health.fenced() {
        return Some(format!(
            "this host fenced itself ({reason}); it starts no VM until a management server welcomes it again"
        ));
    }
    spec.and_then(|spec| health.storage_refusal(&spec.storage_url))
}

/// Tasks that live as long as the agent: aborted when it stops (or when the simulator aborts it).
#[derive(Default)]
struct Background(Vec<tokio::task::JoinHandle<()>>);

impl Background {
    fn spawn(&mut self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.0.push(tokio::spawn(task));
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Everything one running agent shares between its sessions.
struct Agent {
    config: AgentConfig,
    registration: HostRegistration,
    hypervisor: Arc<dyn Hypervisor>,
    health: Arc<Health>,
    fences: Mutex<Fences>,
}

/// Run the agent until `shutdown` turns true: start the storage heartbeat, the peer heartbeats and the
/// guardian, then connect, serve the session, back off, reconnect.
pub async fn run(config: AgentConfig, hypervisor: Arc<dyn Hypervisor>, mut shutdown: watch::Receiver<bool>) {
    let health = Arc::new(Health::new(config.storage.iter().map(|mount| mount.name.clone())));
    let mut registration = config.registration.clone();
    let mut background = Background::default();
    if let Some(listen) = config.peer_listen {
        match UdpSocket::bind(listen).await {
            Ok(socket) => {
                registration.peer_port = socket.local_addr().ok().map(|address| address.port());
                background.spawn(
                    PeerHeartbeat {
                        socket: Arc::new(socket),
                        host_name: registration.name.clone(),
                        key: config.join_token.as_bytes().to_vec(),
                        health: health.clone(),
                        faults: config.faults.clone(),
                    }
                    .run(),
                );
            }
            Err(error) => {
                tracing::error!(host = %registration.name, %listen, "no peer heartbeats: cannot bind: {error}");
            }
        }
    }
    background.spawn(
        StorageHeartbeat::new(
            registration.name.clone(),
            config.storage.clone(),
            health.clone(),
            hypervisor.clone(),
            config.faults.clone(),
        )
        .run(),
    );
    background.spawn(
        Guardian {
            host: registration.name.clone(),
            health: health.clone(),
            hypervisor: hypervisor.clone(),
            watchdog: config.watchdog.clone(),
        }
        .run(),
    );
    let agent = Agent { config, registration, hypervisor, health, fences: Mutex::new(Fences::default()) };
    let mut failures = 0u32;
    loop {
        if *shutdown.borrow() {
            break;
        }
        let result = tokio::select! {
            result = session(&agent) => result,
            _ = shutdown.changed() => break,
        };
        match result {
            Ok(()) => failures = 0,
            Err(SessionEnd { welcomed, error }) => {
                if welcomed {
                    failures = 0;
                }
                tracing::warn!(host = %agent.registration.name, "agent session ended: {error}");
            }
        }
        let delay = agent.config.backoff.delay(failures);
        failures = failures.saturating_add(1);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => break,
        }
    }
    drop(background);
    if let Some(watchdog) = &agent.config.watchdog {
        watchdog.disarm();
    }
}

struct SessionEnd {
    welcomed: bool,
    error: String,
}

fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn frame(message: AgentMessage) -> Message {
    Message::Text(serde_json::to_string(&Frame::v1(message)).unwrap_or_default().into())
}

/// How long connecting (TCP, TLS, upgrade) may take: a cut network must not hold the agent for the
/// minutes a TCP connect can take to give up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether the simulated network lets this host reach the servers (always, on a real host).
fn server_reachable(agent: &Agent) -> bool {
    agent.config.faults.as_ref().is_none_or(|faults| faults.server_reachable(&agent.registration.name))
}

async fn session(agent: &Agent) -> Result<(), SessionEnd> {
    let config = &agent.config;
    let health = &agent.health;
    let hypervisor = &agent.hypervisor;
    let not_welcomed = |error: SessionError| SessionEnd { welcomed: false, error: chain(&error) };
    if !server_reachable(agent) {
        return Err(not_welcomed(SessionError::Cut));
    }
    let url = format!("{}{CONNECT_PATH}", config.server_url.trim_end_matches('/').replacen("http", "ws", 1));
    let mut request = url.into_client_request().map_err(|error| not_welcomed(SessionError::Connect(error)))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", config.join_token))
        .map_err(|_| not_welcomed(SessionError::Refused("the join token is not a valid header value".into())))?;
    request.headers_mut().insert("authorization", bearer);
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, tokio_tungstenite::connect_async(request))
        .await
        .map_err(|_| not_welcomed(SessionError::Unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))))?;
    let (socket, _) = connected.map_err(|error| match &error {
        tokio_tungstenite::tungstenite::Error::Http(response) => not_welcomed(SessionError::Refused(format!(
            "HTTP {} ({})",
            response.status(),
            response.body().as_ref().map(|body| String::from_utf8_lossy(body).into_owned()).unwrap_or_default()
        ))),
        _ => not_welcomed(SessionError::Connect(error)),
    })?;
    let (mut sink, mut stream) = socket.split();

    sink.send(frame(AgentMessage::Hello { host: agent.registration.clone() }))
        .await
        .map_err(|_| not_welcomed(SessionError::Lost))?;
    let welcome = tokio::time::timeout(Duration::from_secs(10), next_server_message(&mut stream, health)).await;
    let settings = match welcome {
        Err(_) => return Err(not_welcomed(SessionError::NoWelcome)),
        Ok(None) => return Err(not_welcomed(SessionError::Lost)),
        Ok(Some(ServerMessage::Welcome {
            heartbeat_interval_ms,
            host_id,
            cluster_peers,
            self_fence_timeout_ms,
            storage_timeout_ms,
            peer_timeout_ms,
        })) => {
            tracing::info!(
                host = %agent.registration.name, %host_id, peers = cluster_peers.len(),
                "registered with the management server"
            );
            let settings = HaSettings::from_welcome(
                heartbeat_interval_ms,
                self_fence_timeout_ms,
                storage_timeout_ms,
                peer_timeout_ms,
            );
            health.welcomed(host_id, settings, cluster_peers);
            settings
        }
        Ok(Some(ServerMessage::Error { code, message })) => {
            return Err(not_welcomed(SessionError::Refused(format!("{code}: {message}"))));
        }
        Ok(Some(_)) => return Err(not_welcomed(SessionError::Refused("expected a welcome".into()))),
    };
    let ended = |error: SessionError| SessionEnd { welcomed: true, error: chain(&error) };
    let lost = || ended(SessionError::Lost);
    // Without a frame from the server for this long the connection is dead (a pong answers every
    // heartbeat's ping); reconnecting may reach another server. Half the self-fence timeout: a server slow
    // to read for a few seconds keeps its agents, and a reconnect still fits before the fence deadline.
    let silence_limit = (settings.self_fence_timeout / 2).max(settings.heartbeat_interval * 3);

    let mut changes = hypervisor.changes();
    changes.mark_changed();
    let mut fenced = health.fences();
    fenced.mark_unchanged();
    let mut faults = config.faults.as_ref().map(|faults| faults.changes());
    let (results, mut results_out) = mpsc::channel::<(CommandId, CommandOutcome)>(64);
    let mut heartbeat = tokio::time::interval(settings.heartbeat_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                let silent = health.since_server_contact();
                if silent > silence_limit {
                    return Err(ended(SessionError::Silent(silent)));
                }
                seq += 1;
                let message = AgentMessage::Heartbeat {
                    seq,
                    sent_at: chrono::Utc::now(),
                    storage: health.storage_views(),
                    peers_heard: health.peers_heard(),
                };
                sink.send(frame(message)).await.map_err(|_| lost())?;
                sink.send(Message::Ping(Vec::new().into())).await.map_err(|_| lost())?;
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return Err(lost());
                }
                let vms = health.annotate(hypervisor.list_vms().await);
                sink.send(frame(AgentMessage::Inventory { vms })).await.map_err(|_| lost())?;
            }
            Some((command_id, outcome)) = results_out.recv() => {
                sink.send(frame(AgentMessage::CommandResult { command_id, outcome })).await.map_err(|_| lost())?;
            }
            _ = fenced.changed() => return Err(ended(SessionError::SelfFenced)),
            Some(Ok(())) = async { match faults.as_mut() { Some(faults) => Some(faults.changed().await), None => None } } => {
                if !server_reachable(agent) {
                    // The cable is cut: no goodbye reaches the server.
                    return Err(ended(SessionError::Cut));
                }
            }
            message = next_server_message(&mut stream, health) => {
                match message {
                    None => return Err(lost()),
                    Some(ServerMessage::Command { command_id, epoch, command }) => {
                        let admitted = agent.fences.lock().unwrap().admit(epoch, &command);
                        let admitted = admitted.and_then(|()| match start_refusal(health, &command) {
                            Some(reason) => Err(reason),
                            None => Ok(()),
                        });
                        match admitted {
                            Err(reason) => {
                                tracing::warn!(%command_id, "refusing a command: {reason}");
                                let _ = results.try_send((command_id, CommandOutcome::Refused { reason }));
                            }
                            Ok(()) => {
                                let hypervisor = hypervisor.clone();
                                let health = health.clone();
                                let results = results.clone();
                                tokio::spawn(async move {
                                    let outcome = execute(hypervisor.as_ref(), &health, command).await;
                                    let _ = results.send((command_id, outcome)).await;
                                });
                            }
                        }
                    }
                    Some(ServerMessage::Peers { peers }) => {
                        tracing::info!(peers = peers.len(), "the cluster's peer list changed");
                        health.set_peers(peers);
                    }
                    Some(ServerMessage::Error { code, message }) => {
                        tracing::warn!(code, "the server reported an error: {message}");
                    }
                    Some(ServerMessage::Welcome { .. }) => {
                        tracing::warn!("unexpected second welcome; ignored");
                    }
                }
            }
        }
    }
}

async fn execute(hypervisor: &dyn Hypervisor, health: &Health, command: Command) -> CommandOutcome {
    let result = match command {
        Command::StartVm { vm } => {
            let started = hypervisor.start_vm(&vm).await;
            if started.is_ok() {
                health.clear_stop_reason(vm.vm_id);
            }
            started
        }
        Command::StopVm { vm_id, force, .. } => hypervisor.stop_vm(vm_id, force).await,
        Command::DestroyVm { vm_id, .. } => hypervisor.destroy_vm(vm_id).await,
        Command::PrepareMigration { vm } => hypervisor.prepare_incoming(&vm).await,
        Command::MigrateOut { vm_id, target_address, .. } => hypervisor.migrate_out(vm_id, &target_address).await,
        Command::FinishMigration { vm_id, .. } => hypervisor.finish_incoming(vm_id).await,
    };
    match result {
        Ok(()) => CommandOutcome::Done,
        Err(error) => CommandOutcome::Failed { reason: error.to_string() },
    }
}

/// The next message from the server; malformed frames are logged and skipped. Every frame (pongs
/// included) counts as contact with the server. `None` when the connection ended.
async fn next_server_message<S>(stream: &mut S, health: &Health) -> Option<ServerMessage>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let next = stream.next().await?;
        if next.is_ok() {
            health.server_contact();
        }
        match next {
            Ok(Message::Text(text)) => match serde_json::from_str::<Frame<ServerMessage>>(&text) {
                Ok(frame) if frame.v == PROTOCOL_VERSION => return Some(frame.body),
                Ok(frame) => tracing::warn!("ignoring a frame of protocol version {}", frame.v),
                Err(error) => tracing::warn!("ignoring a malformed frame from the server: {error}"),
            },
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::agent::VmSpec;

    fn stop(vm_id: VmId, generation: i64) -> Command {
        Command::StopVm { vm_id, generation, force: false }
    }

    #[test]
    fn stale_epochs_and_generations_are_refused() {
        let mut fences = Fences::default();
        let vm = VmId::new_random();
        assert!(fences.admit(2, &stop(vm, 3)).is_ok());
        assert!(fences.admit(1, &stop(vm, 3)).unwrap_err().contains("epoch 1"));
        assert!(fences.admit(2, &stop(vm, 2)).unwrap_err().contains("generation 2"));
        let start = Command::StartVm {
            vm: VmSpec {
                vm_id: vm,
                name: "x".into(),
                generation: 4,
                cpu_cores: 1,
                cpu_mhz: 1,
                memory_mb: 1,
                storage_url: String::new(),
            },
        };
        assert!(fences.admit(3, &start).is_ok());
        assert!(fences.admit(3, &stop(vm, 3)).is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn a_fenced_agent_refuses_starts_until_welcomed_and_a_lost_storage_refuses_its_vms() {
        let health = Health::new(["nfs://a".to_owned()]);
        let spec = |storage: &str| VmSpec {
            vm_id: VmId::new_random(),
            name: "x".into(),
            generation: 1,
            cpu_cores: 1,
            cpu_mhz: 1,
            memory_mb: 1,
            storage_url: storage.into(),
        };
        let start = Command::StartVm { vm: spec("nfs://a") };
        let elsewhere = Command::StartVm { vm: spec("nfs://b") };
        let finish = Command::FinishMigration { vm_id: VmId::new_random(), generation: 1 };
        let stop = stop(VmId::new_random(), 1);
        assert_eq!(start_refusal(&health, &start), None);
        health.fence("isolated".into());
        for command in [&start, &elsewhere, &finish] {
            let refusal = start_refusal(&health, command).expect("refused while fenced");
            assert!(refusal.contains("fenced itself (isolated)"), "{refusal}");
        }
        assert_eq!(start_refusal(&health, &stop), None, "stopping is always allowed");
        health.welcomed(api::HostId::new_random(), crate::health::HaSettings::default(), Vec::new());
        assert_eq!(start_refusal(&health, &start), None);
        // No write on nfs://a for the storage timeout: its VMs may not start; others may.
        tokio::time::advance(Duration::from_millis(4100)).await;
        health.storage_beat("nfs://a", Err("EIO".into()), None);
        health.update_lost_storage();
        assert!(start_refusal(&health, &start).unwrap().contains("nfs://a is lost"));
        assert_eq!(start_refusal(&health, &elsewhere), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let backoff = Backoff { initial: Duration::from_millis(100), max: Duration::from_secs(2) };
        let first = backoff.delay(0);
        assert!(first >= Duration::from_millis(80) && first <= Duration::from_millis(120), "{first:?}");
        let third = backoff.delay(2);
        assert!(third >= Duration::from_millis(320) && third <= Duration::from_millis(480), "{third:?}");
        let capped = backoff.delay(30);
        assert!(capped <= Duration::from_millis(2400), "{capped:?}");
    }
}
