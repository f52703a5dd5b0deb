//! The agent connection hub: which host's agent is connected on which session, commands out to
//! agents, and their results back to whoever waits for them.

pub mod ha_views;
pub mod session;

use api::agent::{Command, CommandOutcome, ServerMessage};
use api::{CommandId, HostId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("the agent of host {0} is not connected")]
    NotConnected(HostId),
    #[error("the agent of host {0} disconnected before answering")]
    Disconnected(HostId),
    #[error("the agent of host {host} did not answer within {seconds} s")]
    TimedOut { host: HostId, seconds: u64 },
}

struct Session {
    connection_id: u64,
    sender: mpsc::Sender<ServerMessage>,
}

struct Pending {
    host: HostId,
    /// The VM a start (or migration's prepare) is for: until answered, the host's inventory may not
    /// list it yet, and that does not mean it stopped.
    starting: Option<api::VmId>,
    reply: oneshot::Sender<CommandOutcome>,
}

#[derive(Default)]
struct HubState {
    sessions: HashMap<HostId, Session>,
    pending: HashMap<CommandId, Pending>,
}

#[derive(Clone)]
pub struct AgentHub {
    state: Arc<Mutex<HubState>>,
    next_connection: Arc<AtomicU64>,
    /// The leadership epoch in force as this server last read the leader lease (`ha::lease`), sent
    /// with every command; it only grows. The HA engine sends its own term's epoch instead.
    epoch: Arc<AtomicI64>,
    command_timeout: Duration,
    /// What agents report for the HA engine (storage heartbeat readings, stop reasons).
    pub ha_views: ha_views::HaViews,
    /// Who leads the HA engine, as this server last saw it (for `GET /ha/leader`).
    pub leadership: Arc<Mutex<Leadership>>,
    /// One gate per host: a session's start (host marked connected, session attached) and an older
    /// session's end (detached, host marked disconnected) each hold it, so they never interleave
    /// (`session::take_over`, `session::hand_back`).
    gates: Arc<Mutex<HashMap<HostId, Arc<tokio::sync::Mutex<()>>>>>,
}

/// This server's view of the leader lease.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Leadership {
    /// This server's holder id in the lease.
    pub me: String,
    /// This server holds the lease now.
    pub leading: bool,
    pub holder: String,
    pub epoch: i64,
    pub expires_at_ms: i64,
}

impl AgentHub {
    pub fn new(command_timeout: Duration) -> Self {
        AgentHub {
            state: Arc::default(),
            next_connection: Arc::new(AtomicU64::new(1)),
            epoch: Arc::new(AtomicI64::new(1)),
            command_timeout,
            ha_views: ha_views::HaViews::default(),
            leadership: Arc::default(),
            gates: Arc::default(),
        }
    }

    /// The epoch ordinary commands carry.
    pub fn epoch(&self) -> i64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// The lease says `epoch` is in force: commands carry at least that from now on.
    pub fn raise_epoch(&self, epoch: i64) {
        self.epoch.fetch_max(epoch, Ordering::SeqCst);
    }

    /// VMs with a start (or a migration's prepare) sent to `host` and not answered yet.
    pub fn starts_pending(&self, host: HostId) -> Vec<api::VmId> {
        let state = self.state.lock().unwrap();
        state.pending.values().filter(|pending| pending.host == host).filter_map(|pending| pending.starting).collect()
    }

    /// Hand a message that is not a command (e.g. `Peers`) to a host's agent; false when it is not
    /// connected here or its queue is full.
    pub fn notify(&self, host: HostId, message: ServerMessage) -> bool {
        let state = self.state.lock().unwrap();
        state.sessions.get(&host).is_some_and(|session| session.sender.try_send(message).is_ok())
    }

    pub fn is_connected(&self, host: HostId) -> bool {
        self.state.lock().unwrap().sessions.contains_key(&host)
    }

    pub fn connected_hosts(&self) -> Vec<HostId> {
        self.state.lock().unwrap().sessions.keys().copied().collect()
    }

    /// Waits for `host`'s gate (see `gates`); the gate opens again when the guard is dropped.
    async fn host_gate(&self, host: HostId) -> tokio::sync::OwnedMutexGuard<()> {
        let gate = Arc::clone(self.gates.lock().unwrap().entry(host).or_default());
        gate.lock_owned().await
    }

    /// A new session for `host` replaces any older one (whose sender is dropped, ending it).
    fn attach(&self, host: HostId, sender: mpsc::Sender<ServerMessage>) -> u64 {
        let connection_id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        self.state.lock().unwrap().sessions.insert(host, Session { connection_id, sender });
        connection_id
    }

    /// Forget the session if it is still the current one for the host; its waiting commands fail
    /// at once. Answers whether it was current.
    fn detach(&self, host: HostId, connection_id: u64) -> bool {
        let mut state = self.state.lock().unwrap();
        if state.sessions.get(&host).map(|session| session.connection_id) != Some(connection_id) {
            return false;
        }
        state.sessions.remove(&host);
        state.pending.retain(|_, pending| pending.host != host);
        true
    }

    fn resolve(&self, command_id: CommandId, outcome: CommandOutcome) -> bool {
        match self.state.lock().unwrap().pending.remove(&command_id) {
            Some(pending) => pending.reply.send(outcome).is_ok(),
            None => false,
        }
    }

    /// Hand a command to the host's agent; the returned future waits for its result. Fails at once
    /// when the agent is not connected, and never waits longer than the command timeout.
    pub fn send(&self, host: HostId, command: Command) -> Result<(CommandId, CommandInFlight), AgentError> {
        self.send_with_epoch(host, command, self.epoch())
    }

    /// [`send`](Self::send) under a given epoch: the HA engine's commands carry its own term's, so
    /// that agents refuse them once a newer leader has spoken to them.
    pub fn send_with_epoch(
        &self,
        host: HostId,
        command: Command,
        epoch: i64,
    ) -> Result<(CommandId, CommandInFlight), AgentError> {
        let command_id = CommandId::new_random();
        let (reply, outcome) = oneshot::channel();
        let starting = match &command {
            Command::StartVm { vm } | Command::PrepareMigration { vm } => Some(vm.vm_id),
            _ => None,
        };
        {
            let mut state = self.state.lock().unwrap();
            let session = state.sessions.get(&host).ok_or(AgentError::NotConnected(host))?;
            let message = ServerMessage::Command { command_id, epoch, command };
            session.sender.try_send(message).map_err(|_| AgentError::Disconnected(host))?;
            state.pending.insert(command_id, Pending { host, starting, reply });
        }
        let in_flight = CommandInFlight { host, command_id, outcome, timeout: self.command_timeout, hub: self.clone() };
        Ok((command_id, in_flight))
    }
}

/// A command sent to an agent whose result has not come back yet.
pub struct CommandInFlight {
    host: HostId,
    command_id: CommandId,
    outcome: oneshot::Receiver<CommandOutcome>,
    timeout: Duration,
    hub: AgentHub,
}

impl CommandInFlight {
    pub async fn outcome(self) -> Result<CommandOutcome, AgentError> {
        match tokio::time::timeout(self.timeout, self.outcome).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(AgentError::Disconnected(self.host)),
            Err(_) => {
                self.hub.state.lock().unwrap().pending.remove(&self.command_id);
                Err(AgentError::TimedOut { host: self.host, seconds: self.timeout.as_secs() })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::VmId;

    fn stop_command() -> Command {
        Command::StopVm { vm_id: VmId::new_random(), generation: 1, force: false }
    }

    #[tokio::test]
    async fn a_command_to_a_disconnected_host_fails_at_once() {
        let hub = AgentHub::new(Duration::from_secs(30));
        let host = HostId::new_random();
        assert!(matches!(hub.send(host, stop_command()), Err(AgentError::NotConnected(h)) if h == host));
    }

    #[tokio::test]
    async fn results_reach_the_waiter_and_a_detach_fails_waiting_commands() {
        let hub = AgentHub::new(Duration::from_secs(30));
        let host = HostId::new_random();
        let (sender, mut receiver) = mpsc::channel(8);
        let connection = hub.attach(host, sender);

        let (command_id, in_flight) = hub.send(host, stop_command()).unwrap();
        assert!(matches!(receiver.recv().await, Some(ServerMessage::Command { epoch: 1, .. })));
        assert!(hub.resolve(command_id, CommandOutcome::Done));
        assert_eq!(in_flight.outcome().await.unwrap(), CommandOutcome::Done);

        let (_, in_flight) = hub.send(host, stop_command()).unwrap();
        assert!(hub.detach(host, connection));
        assert!(matches!(in_flight.outcome().await, Err(AgentError::Disconnected(_))));
        assert!(!hub.is_connected(host));
    }

    #[tokio::test]
    async fn an_old_session_cannot_detach_its_replacement() {
        let hub = AgentHub::new(Duration::from_secs(30));
        let host = HostId::new_random();
        let old = hub.attach(host, mpsc::channel(1).0);
        let _new = hub.attach(host, mpsc::channel(1).0);
        assert!(!hub.detach(host, old));
        assert!(hub.is_connected(host));
    }

    #[tokio::test]
    async fn commands_carry_the_epoch_in_force_which_only_grows() {
        let hub = AgentHub::new(Duration::from_secs(30));
        let host = HostId::new_random();
        let (sender, mut receiver) = mpsc::channel(8);
        hub.attach(host, sender);
        hub.raise_epoch(7);
        hub.raise_epoch(3);
        let _sent = hub.send(host, stop_command()).unwrap();
        assert!(matches!(receiver.recv().await, Some(ServerMessage::Command { epoch: 7, .. })));
        let _sent = hub.send_with_epoch(host, stop_command(), 5).unwrap();
        assert!(matches!(receiver.recv().await, Some(ServerMessage::Command { epoch: 5, .. })));
        assert!(hub.notify(host, ServerMessage::Peers { peers: vec![] }));
        assert!(!hub.notify(HostId::new_random(), ServerMessage::Peers { peers: vec![] }));
    }

    #[tokio::test(start_paused = true)]
    async fn an_unanswered_command_times_out() {
        let hub = AgentHub::new(Duration::from_secs(5));
        let host = HostId::new_random();
        let (sender, _receiver) = mpsc::channel(8);
        hub.attach(host, sender);
        let (_, in_flight) = hub.send(host, stop_command()).unwrap();
        assert!(matches!(in_flight.outcome().await, Err(AgentError::TimedOut { seconds: 5, .. })));
    }
}
