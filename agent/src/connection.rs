//! The agent's one long-lived connection to the management server: handshake, heartbeats every
//! interval, an inventory on connect and on every VM change, commands executed and answered.
//! Reconnects with exponential back-off and jitter when the connection fails or ends.

use crate::hypervisor::Hypervisor;
use api::agent::{
    AgentMessage, CONNECT_PATH, Command, CommandOutcome, Frame, HostRegistration, PROTOCOL_VERSION, ServerMessage,
};
use api::{CommandId, VmId};
use futures::{SinkExt, StreamExt};
use rand::Rng;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
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
    fn default() -> Self {
        Backoff { initial: Duration::from_millis(200), max: Duration::from_secs(5) }
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
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("cannot connect")]
    Connect(#[source] tokio_tungstenite::tungstenite::Error),
    #[error("the server refused the agent: {0}")]
    Refused(String),
    #[error("connection lost")]
    Lost,
    #[error("the server sent no welcome in time")]
    NoWelcome,
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

/// Run the agent until `shutdown` turns true: connect, serve the session, back off, reconnect.
pub async fn run(config: AgentConfig, hypervisor: Arc<dyn Hypervisor>, mut shutdown: watch::Receiver<bool>) {
    let fences = Arc::new(Mutex::new(Fences::default()));
    let mut failures = 0u32;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let session = session(&config, hypervisor.clone(), fences.clone());
        let result = tokio::select! {
            result = session => result,
            _ = shutdown.changed() => return,
        };
        match result {
            Ok(()) => failures = 0,
            Err(SessionEnd { welcomed, error }) => {
                if welcomed {
                    failures = 0;
                }
                tracing::warn!(host = %config.registration.name, "agent session ended: {error}");
            }
        }
        let delay = config.backoff.delay(failures);
        failures = failures.saturating_add(1);
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = shutdown.changed() => return,
        }
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

async fn session(
    config: &AgentConfig,
    hypervisor: Arc<dyn Hypervisor>,
    fences: Arc<Mutex<Fences>>,
) -> Result<(), SessionEnd> {
    let not_welcomed = |error: SessionError| SessionEnd { welcomed: false, error: chain(&error) };
    let url = format!("{}{CONNECT_PATH}", config.server_url.trim_end_matches('/').replacen("http", "ws", 1));
    let mut request = url.into_client_request().map_err(|error| not_welcomed(SessionError::Connect(error)))?;
    let bearer = HeaderValue::from_str(&format!("Bearer {}", config.join_token))
        .map_err(|_| not_welcomed(SessionError::Refused("the join token is not a valid header value".into())))?;
    request.headers_mut().insert("authorization", bearer);
    let (socket, _) = tokio_tungstenite::connect_async(request).await.map_err(|error| match &error {
        tokio_tungstenite::tungstenite::Error::Http(response) => not_welcomed(SessionError::Refused(format!(
            "HTTP {} ({})",
            response.status(),
            response.body().as_ref().map(|body| String::from_utf8_lossy(body).into_owned()).unwrap_or_default()
        ))),
        _ => not_welcomed(SessionError::Connect(error)),
    })?;
    let (mut sink, mut stream) = socket.split();

    sink.send(frame(AgentMessage::Hello { host: config.registration.clone() }))
        .await
        .map_err(|_| not_welcomed(SessionError::Lost))?;
    let heartbeat_interval = match tokio::time::timeout(Duration::from_secs(10), next_server_message(&mut stream)).await
    {
        Err(_) => return Err(not_welcomed(SessionError::NoWelcome)),
        Ok(None) => return Err(not_welcomed(SessionError::Lost)),
        Ok(Some(ServerMessage::Welcome { heartbeat_interval_ms, host_id, .. })) => {
            tracing::info!(host = %config.registration.name, %host_id, "registered with the management server");
            Duration::from_millis(heartbeat_interval_ms.max(100))
        }
        Ok(Some(ServerMessage::Error { code, message })) => {
            return Err(not_welcomed(SessionError::Refused(format!("{code}: {message}"))));
        }
        Ok(Some(_)) => return Err(not_welcomed(SessionError::Refused("expected a welcome".into()))),
    };
    let lost = || SessionEnd { welcomed: true, error: chain(&SessionError::Lost) };

    let mut changes = hypervisor.changes();
    changes.mark_changed();
    let (results, mut results_out) = mpsc::channel::<(CommandId, CommandOutcome)>(64);
    let mut heartbeat = tokio::time::interval(heartbeat_interval);
    heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seq = 0u64;
    loop {
        tokio::select! {
            _ = heartbeat.tick() => {
                seq += 1;
                let message = AgentMessage::Heartbeat { seq, sent_at: chrono::Utc::now(), storage: Vec::new(), peers_heard: Vec::new() };
                sink.send(frame(message)).await.map_err(|_| lost())?;
            }
            changed = changes.changed() => {
                if changed.is_err() {
                    return Err(lost());
                }
                let vms = hypervisor.list_vms().await;
                sink.send(frame(AgentMessage::Inventory { vms })).await.map_err(|_| lost())?;
            }
            Some((command_id, outcome)) = results_out.recv() => {
                sink.send(frame(AgentMessage::CommandResult { command_id, outcome })).await.map_err(|_| lost())?;
            }
            message = next_server_message(&mut stream) => {
                match message {
                    None => return Err(lost()),
                    Some(ServerMessage::Command { command_id, epoch, command }) => {
                        let admitted = fences.lock().unwrap().admit(epoch, &command);
                        match admitted {
                            Err(reason) => {
                                tracing::warn!(%command_id, "refusing a stale command: {reason}");
                                let _ = results.try_send((command_id, CommandOutcome::Refused { reason }));
                            }
                            Ok(()) => {
                                let hypervisor = hypervisor.clone();
                                let results = results.clone();
                                tokio::spawn(async move {
                                    let outcome = execute(hypervisor.as_ref(), command).await;
                                    let _ = results.send((command_id, outcome)).await;
                                });
                            }
                        }
                    }
                    Some(ServerMessage::Error { code, message }) => {
                        tracing::warn!(code, "the server reported an error: {message}");
                    }
                    Some(ServerMessage::Welcome { .. }) => {
                        tracing::warn!("unexpected second welcome; ignored");
                    }
                    Some(ServerMessage::Peers { .. }) => {}
                }
            }
        }
    }
}

async fn execute(hypervisor: &dyn Hypervisor, command: Command) -> CommandOutcome {
    let result = match command {
        Command::StartVm { vm } => hypervisor.start_vm(&vm).await,
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

/// The next message from the server; malformed frames are logged and skipped. `None` when the
/// connection ended.
async fn next_server_message<S>(stream: &mut S) -> Option<ServerMessage>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match stream.next().await? {
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
