//! The agent's one long-lived connection to the management server: handshake, heartbeats every
//! interval, an inventory on connect and on every VM change, commands executed and answered.
//! Reconnects with exponential back-off and jitter when the connection fails or ends. Around the sessions
//! run the agent's HA tasks: the storage heartbeat, the peer heartbeats and the guardian (self-fencing).

use crate::faults::NetworkFaults;
use crate::guardian::Guardian;
use crate::health::{HaSettings, Health};
use crate::hypervisor::{Hypervisor, HypervisorError};
use crate::peers::PeerHeartbeat;
use crate::storage_heartbeat::{StorageHeartbeat, StorageMount};
use crate::watchdog::Watchdog;
use api::agent::{
    AgentMessage, AgentStopReason, CONNECT_PATH, Command, CommandOutcome, Frame, HostRegistration, PROTOCOL_VERSION,
    ServerMessage,
};
use api::{CommandId, VmId};
use futures::{SinkExt, StreamExt};
use rand::Rng;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
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

/// The VM a command makes run here (and the storage of its disks, when the command names it): starts
/// and incoming migrations, which pass the start gate ([`Health::begin_start`]).
fn starts_vm(command: &Command) -> Option<(VmId, Option<&str>)> {
    match command {
        Command::StartVm { vm } | Command::PrepareMigration { vm } => Some((vm.vm_id, Some(vm.storage_url.as_str()))),
        Command::FinishMigration { vm_id, .. } => Some((*vm_id, None)),
        _ => None,
    }
}

/// Why a command that would make a VM run here is refused now: the agent fenced itself (until the next
/// welcome), or the VM's storage is lost to this host. An early answer; the start gate checks again at
/// the moment the VM starts.
fn start_refusal(health: &Health, command: &Command) -> Option<String> {
    let (_, storage) = starts_vm(command)?;
    health.start_refusal(storage)
}

/// The heartbeats one session sent that no server has acknowledged yet, with when each was sent.
#[derive(Debug, Default)]
struct Unacknowledged(VecDeque<(u64, Instant)>);

impl Unacknowledged {
    /// At most this many are remembered: a session without acks is dropped long before.
    const LIMIT: usize = 256;

    fn sent(&mut self, seq: u64, at: Instant) {
        if self.0.len() >= Self::LIMIT {
            self.0.pop_front();
        }
        self.0.push_back((seq, at));
    }

    /// What a message from the server proves about contact: only an acknowledgement of a heartbeat this
    /// session sent and that was not acknowledged before counts, as of when that heartbeat was SENT (the
    /// server recorded it no earlier). Older unacknowledged heartbeats are forgotten with it. Any other
    /// frame proves only that the server-to-agent direction works, not that the server hears the agent.
    fn contact_proven(&mut self, message: &ServerMessage) -> Option<Instant> {
        let ServerMessage::HeartbeatAck { seq } = message else { return None };
        let position = self.0.iter().position(|(sent, _)| sent == seq)?;
        let (_, at) = self.0[position];
        self.0.drain(..=position);
        Some(at)
    }
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

    // The server records the host (and a heartbeat time) before it welcomes it: the welcome is contact
    // as of now, when the hello leaves.
    let hello_sent = Instant::now();
    sink.send(frame(AgentMessage::Hello { host: agent.registration.clone() }))
        .await
        .map_err(|_| not_welcomed(SessionError::Lost))?;
    let welcome = tokio::time::timeout(Duration::from_secs(10), next_server_message(&mut stream)).await;
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
            health.welcomed(host_id, settings, cluster_peers, hello_sent);
            settings
        }
        Ok(Some(ServerMessage::Error { code, message })) => {
            return Err(not_welcomed(SessionError::Refused(format!("{code}: {message}"))));
        }
        Ok(Some(_)) => return Err(not_welcomed(SessionError::Refused("expected a welcome".into()))),
    };
    let ended = |error: SessionError| SessionEnd { welcomed: true, error: chain(&error) };
    let lost = || ended(SessionError::Lost);
    // Without an acknowledged heartbeat for this long the connection is of no use (the server does not
    // hear the agent, or cannot record what it hears); reconnecting may reach another server. Half the
    // self-fence timeout: a server slow to answer for a few seconds keeps its agents, and a reconnect
    // still fits before the fence deadline.
    let silence_limit = (settings.self_fence_timeout / 2).max(settings.heartbeat_interval * 3);
    let mut unacknowledged = Unacknowledged::default();

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
                // Noted before it leaves: its ack then proves the server heard the agent no earlier.
                unacknowledged.sent(seq, Instant::now());
                sink.send(frame(message)).await.map_err(|_| lost())?;
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
            message = next_server_message(&mut stream) => {
                if let Some(sent) = message.as_ref().and_then(|message| unacknowledged.contact_proven(message)) {
                    health.heartbeat_acknowledged(sent);
                }
                match message {
                    None => return Err(lost()),
                    Some(ServerMessage::HeartbeatAck { .. }) => {}
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
    // A command that makes a VM run passes the start gate at the moment it starts, under the lock the
    // self-fence is recorded under: after a fence it is refused here, whatever the session checked
    // before; one that passed before the fence counts as in flight (the storage record then never says
    // "runs no VM") until it has returned and, if the agent fenced itself meanwhile, stopped its VM.
    let starting = starts_vm(&command).map(|(vm, storage)| (vm, storage.map(str::to_owned)));
    let permit = match &starting {
        Some((_, storage)) => match health.begin_start(storage.as_deref()) {
            Ok(permit) => Some(permit),
            Err(reason) => return CommandOutcome::Refused { reason },
        },
        None => None,
    };
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
    if let Some((vm, _)) = starting
        && let Some(reason) = health.fenced()
    {
        // The start raced the self-fence: pull the plug before the permit ends.
        health.set_stop_reason(vm, AgentStopReason::SelfFenced { reason: reason.clone() });
        match hypervisor.stop_vm(vm, true).await {
            Ok(()) | Err(HypervisorError::WrongState(_, "stopped")) | Err(HypervisorError::UnknownVm(_)) => {}
            // Still listed as running: the storage record counts it and the guardian keeps stopping it.
            Err(error) => tracing::error!(%vm, "cannot stop a VM that started while self-fencing: {error}"),
        }
        drop(permit);
        return CommandOutcome::Failed {
            reason: format!("this host fenced itself ({reason}) while the VM was starting; it was stopped again"),
        };
    }
    drop(permit);
    match result {
        Ok(()) => CommandOutcome::Done,
        Err(error) => CommandOutcome::Failed { reason: error.to_string() },
    }
}

/// The next message from the server; malformed frames are logged and skipped. `None` when the
/// connection ended. No frame counts as contact by arriving (see [`Unacknowledged::contact_proven`]).
async fn next_server_message<S>(stream: &mut S) -> Option<ServerMessage>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let next = stream.next().await?;
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
    use crate::health::HaSettings;
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
        health.welcomed(api::HostId::new_random(), crate::health::HaSettings::default(), Vec::new(), Instant::now());
        assert_eq!(start_refusal(&health, &start), None);
        // No write on nfs://a for the storage timeout: its VMs may not start; others may.
        tokio::time::advance(Duration::from_millis(4100)).await;
        health.storage_beat("nfs://a", Err("EIO".into()), None);
        health.update_lost_storage();
        assert!(start_refusal(&health, &start).unwrap().contains("nfs://a is lost"));
        assert_eq!(start_refusal(&health, &elsewhere), None);
    }

    #[tokio::test(start_paused = true)]
    async fn only_the_ack_of_a_heartbeat_sent_is_contact_and_it_counts_from_the_sending() {
        use crate::self_fence::Verdict;
        let health = Health::new(Vec::new());
        health.welcomed(api::HostId::new_random(), HaSettings::default(), Vec::new(), Instant::now());
        let mut unacknowledged = Unacknowledged::default();
        tokio::time::advance(Duration::from_millis(1000)).await;
        unacknowledged.sent(1, Instant::now());
        tokio::time::advance(Duration::from_millis(1000)).await;
        unacknowledged.sent(2, Instant::now());
        tokio::time::advance(Duration::from_millis(500)).await;
        // Frames that arrive from the server prove only that the server-to-agent direction works.
        let arriving = [
            ServerMessage::Peers { peers: Vec::new() },
            ServerMessage::Error { code: "x".into(), message: "y".into() },
            ServerMessage::Command {
                command_id: CommandId::new_random(),
                epoch: 1,
                command: stop(VmId::new_random(), 1),
            },
            ServerMessage::HeartbeatAck { seq: 7 },
        ];
        for message in &arriving {
            assert_eq!(unacknowledged.contact_proven(message), None, "{message:?}");
        }
        assert_eq!(health.since_server_contact(), Duration::from_millis(2500), "still the hello");
        // The ack of heartbeat 2 counts from when 2 was sent, not from its arrival.
        let sent = unacknowledged.contact_proven(&ServerMessage::HeartbeatAck { seq: 2 }).expect("sent");
        health.heartbeat_acknowledged(sent);
        assert_eq!(health.since_server_contact(), Duration::from_millis(500));
        for seq in [1, 2] {
            assert_eq!(unacknowledged.contact_proven(&ServerMessage::HeartbeatAck { seq }), None, "acked before");
        }
        // A one-way cut: frames keep arriving, no ack does. The agent acts T - L after sending heartbeat 2.
        tokio::time::advance(Duration::from_millis(6400)).await;
        for message in &arriving {
            assert_eq!(unacknowledged.contact_proven(message), None);
        }
        assert_eq!(health.verdict(), Verdict::KeepRunning);
        tokio::time::advance(Duration::from_millis(200)).await;
        assert!(matches!(health.verdict(), Verdict::FenceNow(_)), "{:?}", health.verdict());
    }

    /// How the fake management server of the tests below treats the agent after welcoming it.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Link {
        /// Both directions work and every heartbeat is recorded and acknowledged.
        Acknowledging,
        /// Agent to server cut: nothing the agent sends arrives (no pong either), while the server keeps
        /// sending frames (`Peers` every 100 ms).
        CutToServer,
        /// The server reads everything (answering pings) but cannot record the heartbeats (its database
        /// is gone): it sends nothing of its own.
        NotRecording,
    }

    /// A management server that accepts one agent connection (a reconnect is refused, as across a cut
    /// link) and welcomes it with a 100 ms interval and a 1 s self-fence timeout. Answers its URL and
    /// the number of heartbeats it acknowledged.
    async fn one_connection_server(link: Link) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let acked = Arc::new(AtomicUsize::new(0));
        let counter = acked.clone();
        tokio::spawn(async move {
            let Ok((tcp, _)) = listener.accept().await else { return };
            drop(listener);
            let Ok(socket) = tokio_tungstenite::accept_async(tcp).await else { return };
            let (mut sink, mut stream) = socket.split();
            let Some(Ok(Message::Text(_hello))) = stream.next().await else { return };
            let welcome = ServerMessage::Welcome {
                host_id: api::HostId::new_random(),
                heartbeat_interval_ms: 100,
                cluster_peers: Vec::new(),
                self_fence_timeout_ms: 1000,
                storage_timeout_ms: 400,
                peer_timeout_ms: 300,
            };
            let encode =
                |message: ServerMessage| Message::Text(serde_json::to_string(&Frame::v1(message)).unwrap().into());
            if sink.send(encode(welcome)).await.is_err() {
                return;
            }
            match link {
                Link::Acknowledging => {
                    while let Some(Ok(message)) = stream.next().await {
                        let Message::Text(text) = message else { continue };
                        let Ok(frame) = serde_json::from_str::<Frame<AgentMessage>>(&text) else { continue };
                        if let AgentMessage::Heartbeat { seq, .. } = frame.body {
                            if sink.send(encode(ServerMessage::HeartbeatAck { seq })).await.is_err() {
                                return;
                            }
                            counter.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                Link::CutToServer => loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    if sink.send(encode(ServerMessage::Peers { peers: Vec::new() })).await.is_err() {
                        return;
                    }
                },
                Link::NotRecording => while let Some(Ok(_)) = stream.next().await {},
            }
        });
        (url, acked)
    }

    fn spec(name: &str) -> VmSpec {
        VmSpec {
            vm_id: VmId::new_random(),
            name: name.into(),
            generation: 1,
            cpu_cores: 1,
            cpu_mhz: 100,
            memory_mb: 64,
            storage_url: "nfs://a".into(),
        }
    }

    fn memory_hypervisor() -> crate::hypervisor::memory::MemoryHypervisor {
        let capacity = api::v1::Resources { cpu_cores: 8, cpu_mhz: 8000, memory_mb: 8192 };
        crate::hypervisor::memory::MemoryHypervisor::new(capacity, Duration::from_millis(10), Duration::from_millis(10))
    }

    /// Runs an agent (no storage heartbeat: a server lost for the act-after time means isolated) with one
    /// running VM against a server behind `link`. Answers whether the agent stopped the VM (self-fenced)
    /// and how many heartbeats the server acknowledged; polls until the VM stopped, or until it still
    /// runs after 30 acknowledged heartbeats (3 s, three self-fence timeouts).
    async fn agent_behind(link: Link) -> (bool, usize) {
        use std::sync::atomic::Ordering;
        let (url, acked) = one_connection_server(link).await;
        let hypervisor = Arc::new(memory_hypervisor());
        let vm = spec("guest");
        hypervisor.start_vm(&vm).await.unwrap();
        let registration = HostRegistration {
            name: "h1".into(),
            address: "127.0.0.1".into(),
            cluster: "c".into(),
            hypervisor: api::v1::HypervisorKind::Sim,
            capacity: api::v1::Resources { cpu_cores: 8, cpu_mhz: 8000, memory_mb: 8192 },
            mounted_storage: Vec::new(),
            agent_version: "test".into(),
            peer_port: None,
        };
        let config = AgentConfig {
            backoff: Backoff { initial: Duration::from_millis(50), max: Duration::from_millis(200) },
            ..AgentConfig::new(&url, "token", registration)
        };
        let (shutdown, stop) = watch::channel(false);
        let agent = tokio::spawn(run(config, hypervisor.clone(), stop));
        let running = |vms: &[api::agent::VmReport]| {
            vms.iter().any(|report| report.vm_id == vm.vm_id && report.state == api::agent::AgentVmState::Running)
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let stopped = loop {
            let vms = hypervisor.list_vms().await;
            if vms.iter().any(|report| report.vm_id == vm.vm_id && report.state == api::agent::AgentVmState::Stopped) {
                break true;
            }
            if running(&vms) && acked.load(Ordering::SeqCst) >= 30 {
                break false;
            }
            assert!(std::time::Instant::now() < deadline, "{link:?}: neither fenced nor acknowledged: {vms:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        shutdown.send(true).unwrap();
        agent.await.unwrap();
        (stopped, acked.load(Ordering::SeqCst))
    }

    #[tokio::test]
    async fn an_agent_the_server_does_not_hear_or_record_fences_itself_whatever_arrives() {
        let (stopped, acked) = agent_behind(Link::Acknowledging).await;
        assert!(!stopped && acked >= 30, "acknowledged heartbeats are contact (stopped {stopped}, {acked} acks)");
        assert!(agent_behind(Link::CutToServer).await.0, "frames from the server are no contact");
        assert!(agent_behind(Link::NotRecording).await.0, "a server that records nothing is no contact");
    }

    /// A hypervisor whose starts wait until released before the VM exists (as a real define + start
    /// takes a while): the race between a start and a self-fence, made to happen.
    struct SlowStarts {
        inner: crate::hypervisor::memory::MemoryHypervisor,
        entered: tokio::sync::Notify,
        release: tokio::sync::Notify,
    }

    #[async_trait::async_trait]
    impl Hypervisor for SlowStarts {
        async fn start_vm(&self, spec: &VmSpec) -> Result<(), HypervisorError> {
            self.entered.notify_one();
            self.release.notified().await;
            self.inner.start_vm(spec).await
        }
        async fn stop_vm(&self, vm: VmId, force: bool) -> Result<(), HypervisorError> {
            self.inner.stop_vm(vm, force).await
        }
        async fn destroy_vm(&self, vm: VmId) -> Result<(), HypervisorError> {
            self.inner.destroy_vm(vm).await
        }
        async fn prepare_incoming(&self, spec: &VmSpec) -> Result<(), HypervisorError> {
            self.inner.prepare_incoming(spec).await
        }
        async fn migrate_out(&self, vm: VmId, target_address: &str) -> Result<(), HypervisorError> {
            self.inner.migrate_out(vm, target_address).await
        }
        async fn finish_incoming(&self, vm: VmId) -> Result<(), HypervisorError> {
            self.inner.finish_incoming(vm).await
        }
        async fn list_vms(&self) -> Vec<api::agent::VmReport> {
            self.inner.list_vms().await
        }
        async fn vms_on_storage(&self, storage_url: &str) -> Vec<VmId> {
            self.inner.vms_on_storage(storage_url).await
        }
        fn changes(&self) -> watch::Receiver<u64> {
            self.inner.changes()
        }
    }

    #[tokio::test]
    async fn a_start_under_way_at_the_self_fence_never_lets_the_record_say_the_host_runs_nothing() {
        use crate::storage_heartbeat::StorageHeartbeat;
        let health = Arc::new(Health::new(Vec::new()));
        health.welcomed(api::HostId::new_random(), HaSettings::default(), Vec::new(), Instant::now());
        let hypervisor = Arc::new(SlowStarts {
            inner: memory_hypervisor(),
            entered: tokio::sync::Notify::new(),
            release: tokio::sync::Notify::new(),
        });
        let beat = StorageHeartbeat::new("h1".into(), Vec::new(), health.clone(), hypervisor.clone(), None);
        let guardian =
            Guardian { host: "h1".into(), health: health.clone(), hypervisor: hypervisor.clone(), watchdog: None };
        let vm = spec("raced");
        let start = tokio::spawn({
            let (health, hypervisor, vm) = (health.clone(), hypervisor.clone(), vm.clone());
            async move { execute(hypervisor.as_ref(), &health, Command::StartVm { vm }).await }
        });
        hypervisor.entered.notified().await;
        // The agent fences itself while the start is inside the hypervisor: nothing is listed yet.
        assert!(health.fence("isolated".into()));
        assert!(!guardian.check().await, "a start still in the hypervisor: the host is not known to be safe");
        assert!(hypervisor.list_vms().await.is_empty());
        let record = beat.record(1, Duration::from_secs(1), 0).await;
        assert!(record.self_fenced);
        assert_ne!(
            record.running_vms, 0,
            "the record must not say \"fenced, runs nothing\" while a start is under way"
        );
        // A start arriving now is refused at the gate, whatever the session checked before.
        let late = execute(hypervisor.as_ref(), &health, Command::StartVm { vm: spec("late") }).await;
        assert!(matches!(&late, CommandOutcome::Refused { reason } if reason.contains("fenced itself")), "{late:?}");
        // The raced start lands; its own command stops the VM before the start counts as finished.
        hypervisor.release.notify_one();
        let outcome = start.await.unwrap();
        assert!(
            matches!(&outcome, CommandOutcome::Failed { reason } if reason.contains("while the VM was starting")),
            "{outcome:?}"
        );
        let vms = health.annotate(hypervisor.list_vms().await);
        assert_eq!(vms.len(), 1);
        assert_eq!(vms[0].state, api::agent::AgentVmState::Stopped);
        assert!(matches!(vms[0].stop_reason, Some(AgentStopReason::SelfFenced { .. })));
        // Only now may the record say so.
        let record = beat.record(2, Duration::from_secs(1), record.running_vms).await;
        assert_eq!((record.self_fenced, record.running_vms), (true, 0));
        assert!(guardian.check().await);
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
