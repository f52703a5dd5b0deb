//! Integration: the agent's HA behaviour with real agent code in simulated hosts, against a small
//! management server that speaks the agent protocol (welcome with the cluster's peers and short HA
//! timeouts, `Peers` updates, commands) and records every heartbeat and inventory. Faults come from the
//! simulator's hooks: network cuts, splits, storage cuts, agent crashes. Tests poll with deadlines.

use agent::Hypervisor;
use api::agent::{
    AgentMessage, AgentStopReason, AgentVmState, CONNECT_PATH, Command, CommandOutcome, Frame, HostRegistration, Peer,
    ServerMessage, StorageRecord, StorageView, VmReport, VmSpec,
};
use api::{CommandId, HostId, VmId};
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use sim::{SimHostSpec, SimPool};
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use uuid::Uuid;

const STORAGE: &str = "nfs://storage/primary";
const HEARTBEAT_MS: u64 = 100;
const SELF_FENCE_MS: u64 = 2000;
const STORAGE_TIMEOUT_MS: u64 = 800;
const PEER_TIMEOUT_MS: u64 = 500;
/// How late past a deadline a check may still pass: scheduling on a busy 2-core machine.
const SLACK: Duration = Duration::from_millis(400);

#[derive(Default)]
struct Seen {
    sessions: HashMap<String, mpsc::Sender<ServerMessage>>,
    registrations: HashMap<String, HostRegistration>,
    welcomes: HashMap<String, usize>,
    heartbeats: HashMap<String, usize>,
    storage: HashMap<String, Vec<StorageView>>,
    peers_heard: HashMap<String, Vec<HostId>>,
    inventories: HashMap<String, Vec<VmReport>>,
    results: HashMap<CommandId, CommandOutcome>,
}

/// The HA timing the server sends in `Welcome`.
#[derive(Clone, Copy)]
struct Timing {
    heartbeat_ms: u64,
    self_fence_ms: u64,
    storage_ms: u64,
    peer_ms: u64,
}

/// Short timeouts, so that the tests take seconds.
const FAST: Timing = Timing {
    heartbeat_ms: HEARTBEAT_MS,
    self_fence_ms: SELF_FENCE_MS,
    storage_ms: STORAGE_TIMEOUT_MS,
    peer_ms: PEER_TIMEOUT_MS,
};

/// The defaults a real cluster runs with.
const DEFAULTS: Timing = Timing {
    heartbeat_ms: 1000,
    self_fence_ms: api::agent::DEFAULT_SELF_FENCE_TIMEOUT_MS,
    storage_ms: api::agent::DEFAULT_STORAGE_TIMEOUT_MS,
    peer_ms: api::agent::DEFAULT_PEER_TIMEOUT_MS,
};

/// The fake management server: host ids are fixed by name (the lowest id is the first name given).
#[derive(Clone)]
struct Server {
    ids: Arc<HashMap<String, HostId>>,
    seen: Arc<Mutex<Seen>>,
    timing: Timing,
}

impl Server {
    async fn start(hosts: &[&str], timing: Timing) -> (String, Server) {
        let ids =
            hosts.iter().enumerate().map(|(n, name)| ((*name).to_owned(), HostId(Uuid::from_u128(n as u128 + 1))));
        let server = Server { ids: Arc::new(ids.collect()), seen: Arc::default(), timing };
        let app = axum::Router::new().route(CONNECT_PATH, axum::routing::get(connect)).with_state(server.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (url, server)
    }

    /// Every registered host but `except`, as peers.
    fn peers(&self, seen: &Seen, except: &str) -> Vec<Peer> {
        let mut peers: Vec<Peer> = seen
            .registrations
            .values()
            .filter(|registration| registration.name != except)
            .filter_map(|registration| {
                Some(Peer {
                    host_id: self.ids[&registration.name],
                    name: registration.name.clone(),
                    address: format!("{}:{}", registration.address, registration.peer_port?),
                })
            })
            .collect();
        peers.sort_by_key(|peer| peer.host_id);
        peers
    }

    fn id(&self, host: &str) -> HostId {
        self.ids[host]
    }

    fn welcomes(&self, host: &str) -> usize {
        self.seen.lock().unwrap().welcomes.get(host).copied().unwrap_or(0)
    }

    fn heartbeats(&self, host: &str) -> usize {
        self.seen.lock().unwrap().heartbeats.get(host).copied().unwrap_or(0)
    }

    fn storage(&self, host: &str) -> Vec<StorageView> {
        self.seen.lock().unwrap().storage.get(host).cloned().unwrap_or_default()
    }

    fn peers_heard(&self, host: &str) -> Vec<HostId> {
        self.seen.lock().unwrap().peers_heard.get(host).cloned().unwrap_or_default()
    }

    fn inventory(&self, host: &str) -> Vec<VmReport> {
        self.seen.lock().unwrap().inventories.get(host).cloned().unwrap_or_default()
    }

    /// The record of `of` as `observer` last reported it from `STORAGE`.
    fn record_seen(&self, observer: &str, of: &str) -> Option<StorageRecord> {
        let views = self.storage(observer);
        let view = views.iter().find(|view| view.name == STORAGE)?;
        view.peers.iter().find(|record| record.host == of).cloned()
    }

    /// Send a command to `host` (connected); answers its id.
    fn command(&self, host: &str, command: Command) -> CommandId {
        let command_id = CommandId::new_random();
        let sender = self.seen.lock().unwrap().sessions.get(host).cloned().expect("the host is connected");
        sender.try_send(ServerMessage::Command { command_id, epoch: 1, command }).unwrap();
        command_id
    }

    fn result(&self, command: CommandId) -> Option<CommandOutcome> {
        self.seen.lock().unwrap().results.get(&command).cloned()
    }
}

async fn connect(upgrade: WebSocketUpgrade, State(server): State<Server>) -> Response {
    upgrade.on_upgrade(move |socket| session(socket, server))
}

fn parse(message: &Message) -> Option<AgentMessage> {
    match message {
        Message::Text(text) => serde_json::from_str::<Frame<AgentMessage>>(text.as_str()).ok().map(|frame| frame.body),
        _ => None,
    }
}

fn encode(message: &ServerMessage) -> Message {
    Message::Text(serde_json::to_string(&Frame::v1(message.clone())).unwrap().into())
}

async fn session(socket: WebSocket, server: Server) {
    let (mut sink, mut stream) = socket.split();
    let Some(Ok(first)) = stream.next().await else { return };
    let Some(AgentMessage::Hello { host }) = parse(&first) else { return };
    let name = host.name.clone();
    let (sender, mut outbox) = mpsc::channel::<ServerMessage>(64);
    let acks = sender.clone();
    // Registration, the welcome's peer list and the others' `Peers` updates in one critical section, so
    // that a later update always carries a later (larger) list.
    let cluster_peers = {
        let mut seen = server.seen.lock().unwrap();
        seen.registrations.insert(name.clone(), host);
        *seen.welcomes.entry(name.clone()).or_default() += 1;
        seen.sessions.insert(name.clone(), sender);
        for (other, sender) in seen.sessions.iter().filter(|(other, _)| **other != name) {
            let _ = sender.try_send(ServerMessage::Peers { peers: server.peers(&seen, other) });
        }
        server.peers(&seen, &name)
    };
    let welcome = ServerMessage::Welcome {
        host_id: server.id(&name),
        heartbeat_interval_ms: server.timing.heartbeat_ms,
        cluster_peers,
        self_fence_timeout_ms: server.timing.self_fence_ms,
        storage_timeout_ms: server.timing.storage_ms,
        peer_timeout_ms: server.timing.peer_ms,
    };
    if sink.send(encode(&welcome)).await.is_err() {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(message) = outbox.recv().await {
            if sink.send(encode(&message)).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(message)) = stream.next().await {
        let mut seen = server.seen.lock().unwrap();
        match parse(&message) {
            Some(AgentMessage::Heartbeat { seq, storage, peers_heard, .. }) => {
                *seen.heartbeats.entry(name.clone()).or_default() += 1;
                seen.storage.insert(name.clone(), storage);
                seen.peers_heard.insert(name.clone(), peers_heard);
                // Recorded: acknowledged, as a real server does (agents count only acks as contact).
                let _ = acks.try_send(ServerMessage::HeartbeatAck { seq });
            }
            Some(AgentMessage::Inventory { vms }) => {
                seen.inventories.insert(name.clone(), vms);
            }
            Some(AgentMessage::CommandResult { command_id, outcome }) => {
                seen.results.insert(command_id, outcome);
            }
            _ if matches!(message, Message::Close(_)) => break,
            _ => {}
        }
    }
    writer.abort();
}

/// Poll `check` every 20 ms until it gives a value; fail naming `what` after `limit`.
async fn within<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {limit:?} waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(Duration::from_secs(15), what, check).await
}

struct Context {
    server: Server,
    pool: SimPool,
    names: Vec<String>,
}

fn spec(vm_id: VmId, name: &str, storage: &str) -> VmSpec {
    VmSpec {
        vm_id,
        name: name.to_owned(),
        generation: 1,
        cpu_cores: 1,
        cpu_mhz: 1000,
        memory_mb: 1024,
        storage_url: storage.to_owned(),
    }
}

impl Context {
    /// A cluster of `hosts` (mounting `storages`), every host registered and hearing all the others.
    async fn start(hosts: &[&str], storages: &[&str]) -> Context {
        Self::start_with(hosts, storages, FAST).await
    }

    async fn start_with(hosts: &[&str], storages: &[&str], timing: Timing) -> Context {
        let (url, server) = Server::start(hosts, timing).await;
        let specs = hosts
            .iter()
            .enumerate()
            .map(|(index, name)| {
                let mut spec = SimHostSpec::standard(name, "cluster-a", storages[0], index);
                spec.mounted_storage = storages.iter().map(|storage| (*storage).to_owned()).collect();
                spec.boot_delay = Duration::from_millis(50);
                spec.shutdown_delay = Duration::from_millis(50);
                spec
            })
            .collect();
        let pool = SimPool::start(&url, "join-token", specs);
        let context = Context { server, pool, names: hosts.iter().map(|name| (*name).to_owned()).collect() };
        for host in hosts {
            let expected: Vec<HostId> =
                hosts.iter().filter(|other| *other != host).map(|other| context.server.id(other)).collect();
            let (server, expected) = (&context.server, &expected);
            eventually(&format!("{host} hears every peer"), || async move {
                let mut heard = server.peers_heard(host);
                heard.sort();
                (heard == *expected).then_some(())
            })
            .await;
        }
        context
    }

    fn host(&self, name: &str) -> &Arc<sim::SimHost> {
        self.pool.host(name).unwrap()
    }

    /// Start a VM directly on the host's hypervisor (as one already running there) and wait until it runs.
    async fn running_vm(&self, host: &str, storage: &str) -> VmId {
        let vm_id = VmId::new_random();
        let hypervisor = &self.host(host).hypervisor;
        hypervisor.start_vm(&spec(vm_id, &format!("vm-on-{host}"), storage)).await.unwrap();
        eventually("the VM runs", || async move {
            hypervisor.list_vms_now().iter().any(|(id, state)| *id == vm_id && *state == "running").then_some(())
        })
        .await;
        vm_id
    }

    /// VMs that are not stopped on the host.
    fn active_vms(&self, host: &str) -> usize {
        self.host(host).hypervisor.list_vms_now().iter().filter(|(_, state)| *state != "stopped").count()
    }

    /// Wait until every VM of `host` has stopped; answers how long that took from `since`.
    async fn all_stopped(&self, host: &str, since: Instant, limit: Duration) -> Duration {
        within(limit, &format!("{host} has stopped its VMs"), || async move {
            (self.active_vms(host) == 0).then(|| since.elapsed())
        })
        .await
    }

    /// The host's record as written on `STORAGE`, read from the storage directory itself.
    fn record_on_disk(&self, host: &str) -> Option<StorageRecord> {
        let path = self.pool.world.storage_dir(STORAGE).join(".parapet-hb").join(format!("{host}.json"));
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Assert that none of `hosts` loses a VM for `period`.
    async fn keep_running(&self, hosts: &[&str], period: Duration) {
        let counts: Vec<usize> = hosts.iter().map(|host| self.active_vms(host)).collect();
        let deadline = Instant::now() + period;
        while Instant::now() < deadline {
            for (host, count) in hosts.iter().zip(&counts) {
                assert_eq!(self.active_vms(host), *count, "{host} must keep its VMs running");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn shutdown(&self) {
        self.pool.shutdown().await;
        let _ = &self.names;
    }
}

const FENCE_LIMIT: Duration = Duration::from_millis(SELF_FENCE_MS);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_records_advance_and_every_peer_reports_them() {
    let context = Context::start(&["hb-1", "hb-2", "hb-3"], &[STORAGE]).await;
    let server = &context.server;
    let first = eventually("hb-2 reports hb-1's record", || async { server.record_seen("hb-2", "hb-1") }).await;
    let later = eventually("hb-1's counter advances as hb-3 sees it", || async {
        server.record_seen("hb-3", "hb-1").filter(|record| record.counter >= first.counter + 3)
    })
    .await;
    assert!(later.written_at_ms > first.written_at_ms, "{first:?} then {later:?}");
    assert!(!later.self_fenced);
    for observer in ["hb-1", "hb-2", "hb-3"] {
        let views = server.storage(observer);
        assert_eq!(views.len(), 1, "{observer}: one view per mounted storage: {views:?}");
        let view = &views[0];
        assert!(view.write_ok && view.last_error.is_none() && view.last_write_ms.is_some(), "{view:?}");
        let mut hosts: Vec<&str> = view.peers.iter().map(|record| record.host.as_str()).collect();
        hosts.sort();
        let expected: Vec<&str> = ["hb-1", "hb-2", "hb-3"].into_iter().filter(|host| *host != observer).collect();
        assert_eq!(hosts, expected, "{observer} reads every other record and not its own");
    }
    // The file on the storage is the record.
    let on_disk = context.record_on_disk("hb-2").expect("hb-2's record file");
    assert_eq!(on_disk.host, "hb-2");
    assert!(on_disk.counter >= 1);
    context.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_cut_from_servers_and_storage_stops_its_vms_within_the_self_fence_timeout() {
    // One VM on the heartbeated storage (the storage rule stops it at the storage timeout) and one on a
    // storage without heartbeat (only the self-fence stops it).
    const UNWATCHED: &str = "nfs://storage/unwatched";
    let context = Context::start(&["iso-1", "iso-2", "iso-3"], &[STORAGE]).await;
    let vms = [context.running_vm("iso-2", STORAGE).await, context.running_vm("iso-2", UNWATCHED).await];
    context.running_vm("iso-1", STORAGE).await;
    let host = context.host("iso-2");

    let cut = Instant::now();
    host.set_storage_cut(true);
    host.set_net_cut(true);
    let took = context.all_stopped("iso-2", cut, FENCE_LIMIT + SLACK).await;
    println!("FIGURE isolated host stopped its VMs {took:?} after the cut (self-fence timeout {FENCE_LIMIT:?})");
    assert!(took >= FENCE_LIMIT / 2, "not before the host has been cut off for a while: {took:?}");
    assert!(took <= FENCE_LIMIT + SLACK);
    context.keep_running(&["iso-1"], Duration::from_millis(300)).await;

    // Storage back, network still cut: the record tells the engine the host fenced itself.
    host.set_storage_cut(false);
    let server = &context.server;
    let record = eventually("a peer reads iso-2's self-fenced record", || async {
        server.record_seen("iso-1", "iso-2").filter(|record| record.self_fenced)
    })
    .await;
    assert_eq!(record.running_vms, 0, "{record:?}");
    assert!(context.record_on_disk("iso-2").unwrap().self_fenced);

    // Network back: a fresh welcome ends the fence; the inventory says why the VMs stopped; starts work.
    let welcomes = server.welcomes("iso-2");
    host.set_net_cut(false);
    eventually("iso-2 is welcomed again", || async { (server.welcomes("iso-2") > welcomes).then_some(()) }).await;
    let inventory = eventually("iso-2 reports why its VMs stopped", || async {
        let inventory = server.inventory("iso-2");
        (inventory.len() == 2 && inventory.iter().all(|report| report.stop_reason.is_some())).then_some(inventory)
    })
    .await;
    let reason = |vm: VmId| inventory.iter().find(|report| report.vm_id == vm).unwrap().stop_reason.clone();
    assert!(matches!(reason(vms[0]), Some(AgentStopReason::StorageLost { .. })), "{inventory:?}");
    assert!(matches!(reason(vms[1]), Some(AgentStopReason::SelfFenced { .. })), "{inventory:?}");
    assert!(inventory.iter().all(|report| report.state == AgentVmState::Stopped), "{inventory:?}");
    let start = server.command("iso-2", Command::StartVm { vm: spec(vms[0], "again", STORAGE) });
    let outcome = eventually("the start is answered", || async { server.result(start) }).await;
    assert_eq!(outcome, CommandOutcome::Done);
    eventually("iso-2's record no longer says fenced", || async {
        server.record_seen("iso-1", "iso-2").filter(|record| !record.self_fenced && record.running_vms == 1)
    })
    .await;
    context.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_1_split_fences_the_single_host_and_the_pair_keeps_running() {
    let context = Context::start(&["sp-1", "sp-2", "sp-3"], &[STORAGE]).await;
    for host in ["sp-1", "sp-2", "sp-3"] {
        context.running_vm(host, STORAGE).await;
    }
    // The servers stay with sp-2 and sp-3; sp-1 (the lowest id) is alone.
    let split = Instant::now();
    context.pool.split(&["sp-2", "sp-3"], &["sp-1"]).unwrap();
    let took = context.all_stopped("sp-1", split, FENCE_LIMIT + SLACK).await;
    println!("FIGURE minority host stopped its VMs {took:?} after the split");
    assert!(took >= FENCE_LIMIT / 2, "a partition is judged only after the servers are gone a while: {took:?}");
    context.keep_running(&["sp-2", "sp-3"], FENCE_LIMIT).await;
    assert_eq!(context.active_vms("sp-2") + context.active_vms("sp-3"), 2);
    let server = &context.server;
    let record = eventually("the majority reads sp-1's self-fenced record", || async {
        server.record_seen("sp-2", "sp-1").filter(|record| record.self_fenced)
    })
    .await;
    assert_eq!(record.running_vms, 0);
    eventually("sp-2 no longer hears sp-1", || async {
        (!server.peers_heard("sp-2").contains(&server.id("sp-1"))).then_some(())
    })
    .await;
    context.pool.unsplit();
    let welcomes = server.welcomes("sp-1");
    eventually("sp-1 is welcomed again", || async { (server.welcomes("sp-1") > welcomes).then_some(()) }).await;
    context.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_2_2_split_without_servers_fences_the_side_without_the_lowest_id() {
    let context = Context::start(&["tie-1", "tie-2", "tie-3", "tie-4"], &[STORAGE]).await;
    for host in ["tie-1", "tie-2", "tie-3", "tie-4"] {
        context.running_vm(host, STORAGE).await;
    }
    // Both halves lose the servers: tie-1 (the lowest id) and tie-2 against tie-3 and tie-4.
    let split = Instant::now();
    context.host("tie-1").set_net_cut(true);
    context.host("tie-2").set_net_cut(true);
    context.pool.split(&["tie-1", "tie-2"], &["tie-3", "tie-4"]).unwrap();
    for host in ["tie-3", "tie-4"] {
        let took = context.all_stopped(host, split, FENCE_LIMIT + SLACK).await;
        println!("FIGURE {host} (tie, without the lowest id) stopped its VMs {took:?} after the split");
    }
    context.keep_running(&["tie-1", "tie-2"], FENCE_LIMIT / 2).await;
    assert_eq!(context.active_vms("tie-1") + context.active_vms("tie-2"), 2, "the lowest id's side keeps running");
    assert!(context.record_on_disk("tie-3").unwrap().self_fenced);
    assert!(!context.record_on_disk("tie-1").unwrap().self_fenced);
    context.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_cut_stops_the_vms_on_that_storage_only() {
    const OTHER: &str = "nfs://storage/second";
    let context = Context::start(&["st-1", "st-2"], &[STORAGE, OTHER]).await;
    let on_first = context.running_vm("st-1", STORAGE).await;
    let on_second = context.running_vm("st-1", OTHER).await;
    let neighbour = context.running_vm("st-2", STORAGE).await;

    // The first storage fails for every host: its record directory turns into a file.
    let records = context.pool.world.storage_dir(STORAGE).join(".parapet-hb");
    for attempt in 0.. {
        // The agents keep writing meanwhile: move the directory away, then take its name with a file.
        assert!(attempt < 100, "cannot break the storage");
        let _ = std::fs::rename(&records, records.with_extension(format!("broken-{attempt}")));
        if std::fs::OpenOptions::new().write(true).create_new(true).open(&records).is_ok() {
            break;
        }
    }
    let outage = Instant::now();
    let hypervisor = &context.host("st-1").hypervisor;
    let state = |vm: VmId| {
        hypervisor.list_vms_now().iter().find(|(id, _)| *id == vm).map(|(_, state)| *state).unwrap_or("gone")
    };
    let took =
        within(Duration::from_millis(STORAGE_TIMEOUT_MS) * 2 + SLACK, "the VM on the lost storage stops", || {
            let stopped = state(on_first) == "stopped";
            async move { stopped.then(|| outage.elapsed()) }
        })
        .await;
    println!("FIGURE VM on a lost storage stopped {took:?} after the outage (storage timeout {STORAGE_TIMEOUT_MS} ms)");
    assert!(took >= Duration::from_millis(STORAGE_TIMEOUT_MS) / 2, "{took:?}");
    assert_eq!(state(on_second), "running", "the VM on the other storage keeps running");
    let server = &context.server;
    eventually("st-2's VM on the lost storage stops too", || async {
        server
            .inventory("st-2")
            .iter()
            .any(|report| report.vm_id == neighbour && report.state == AgentVmState::Stopped)
            .then_some(())
    })
    .await;
    let report = eventually("the inventory says the storage was lost", || async {
        server.inventory("st-1").into_iter().find(|report| report.vm_id == on_first && report.stop_reason.is_some())
    })
    .await;
    match report.stop_reason {
        Some(AgentStopReason::StorageLost { storage, error }) => {
            assert_eq!(storage, STORAGE);
            assert!(!error.is_empty());
        }
        other => panic!("expected storage-lost, got {other:?}"),
    }
    let view = server.storage("st-1").into_iter().find(|view| view.name == STORAGE).unwrap();
    assert!(!view.write_ok && view.last_error.is_some(), "{view:?}");
    // The agent did not fence itself: it reaches the servers and its other storage.
    assert!(!context.record_on_disk_of(OTHER, "st-1").self_fenced);
    // Starting a VM on the lost storage is refused; once it is back, the start works.
    let refused = server.command("st-1", Command::StartVm { vm: spec(on_first, "again", STORAGE) });
    match eventually("the start is answered", || async { server.result(refused) }).await {
        CommandOutcome::Refused { reason } => assert!(reason.contains("is lost to this host"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    std::fs::remove_file(&records).unwrap();
    eventually("st-1 writes its record on the storage again", || async {
        server.storage("st-1").into_iter().find(|view| view.name == STORAGE && view.write_ok)
    })
    .await;
    // The guardian lifts the refusal on its next pass after a successful write.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let start = server.command("st-1", Command::StartVm { vm: spec(on_first, "again", STORAGE) });
        let outcome = eventually("the start is answered", || async { server.result(start) }).await;
        if outcome == CommandOutcome::Done {
            break;
        }
        assert!(Instant::now() < deadline, "the start never worked after the storage came back: {outcome:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A storage cut of one host alone (its own storage path fails) stops that host's VMs on its storages.
    context.host("st-2").set_storage_cut(true);
    let vm = context.running_vm("st-2", OTHER).await;
    eventually("st-2's VM stops when its storage is cut", || async {
        server
            .inventory("st-2")
            .iter()
            .any(|report| report.vm_id == vm && matches!(report.stop_reason, Some(AgentStopReason::StorageLost { .. })))
            .then_some(())
    })
    .await;
    let views = server.storage("st-2");
    assert!(views.len() == 2 && views.iter().all(|view| !view.write_ok), "{views:?}");
    context.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_blip_fences_nothing_and_a_crashed_agent_leaves_its_vms_running() {
    let context = Context::start(&["bl-1", "bl-2", "bl-3"], &[STORAGE]).await;
    let vm = context.running_vm("bl-2", STORAGE).await;
    let server = &context.server;
    let welcomes = server.welcomes("bl-2");
    context.host("bl-2").blip(Duration::from_millis(SELF_FENCE_MS / 4));
    context.keep_running(&["bl-2"], FENCE_LIMIT + SLACK).await;
    eventually("bl-2 reconnects after the blip", || async { (server.welcomes("bl-2") > welcomes).then_some(()) }).await;
    assert!(!context.record_on_disk("bl-2").unwrap().self_fenced);

    // The agent dies; the VM keeps running and no channel shows a heartbeat any more.
    let host = context.host("bl-2");
    assert!(host.crash_agent());
    assert!(host.is_powered_on() && !host.is_agent_running());
    tokio::time::sleep(Duration::from_millis(HEARTBEAT_MS * 3)).await;
    let counter = context.record_on_disk("bl-2").unwrap().counter;
    let heartbeats = server.heartbeats("bl-2");
    context.keep_running(&["bl-2"], FENCE_LIMIT + SLACK).await;
    assert_eq!(context.record_on_disk("bl-2").unwrap().counter, counter, "no storage heartbeat from a dead agent");
    assert_eq!(server.heartbeats("bl-2"), heartbeats, "no network heartbeat either");
    assert!(context.host("bl-2").hypervisor.list_vms_now().iter().any(|(id, state)| *id == vm && *state == "running"));
    // It comes back: registers again and finds its VM still running.
    let welcomes = server.welcomes("bl-2");
    assert!(host.start_crashed_agent());
    eventually("bl-2's agent is back", || async { (server.welcomes("bl-2") > welcomes).then_some(()) }).await;
    eventually("bl-2 reports the VM running", || async {
        server
            .inventory("bl-2")
            .iter()
            .any(|report| report.vm_id == vm && report.state == AgentVmState::Running)
            .then_some(())
    })
    .await;
    context.shutdown().await;
}

impl Context {
    fn record_on_disk_of(&self, storage: &str, host: &str) -> StorageRecord {
        let path = self.pool.world.storage_dir(storage).join(".parapet-hb").join(format!("{host}.json"));
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_second_blip_at_default_timing_fences_nothing() {
    let hosts = ["def-1", "def-2", "def-3"];
    let context = Context::start_with(&hosts, &[STORAGE], DEFAULTS).await;
    for host in hosts {
        context.running_vm(host, STORAGE).await;
    }
    let server = &context.server;
    let welcomes = server.welcomes("def-2");
    let blip = Instant::now();
    context.host("def-2").blip(Duration::from_secs(3));
    let reconnected = eventually("def-2 is welcomed again after the blip", || async {
        (server.welcomes("def-2") > welcomes).then(|| blip.elapsed())
    })
    .await;
    println!("FIGURE a 3 s blip at default timing: def-2 welcomed again {reconnected:?} after it began");
    // Watch past the self-fence timeout counted from the blip's start: no VM stops anywhere.
    let watched = Duration::from_millis(DEFAULTS.self_fence_ms + 1000).saturating_sub(blip.elapsed());
    context.keep_running(&hosts, watched).await;
    for host in hosts {
        assert_eq!(context.active_vms(host), 1, "{host}");
        assert!(!context.record_on_disk(host).unwrap().self_fenced, "{host} never fenced");
    }
    println!("FIGURE fences after a 3 s blip: 0");
    context.shutdown().await;
}
