//! Integration: real `parapet-agent` processes on loopback, configured only through their command line
//! (`--mount-path` for the storage heartbeat, `--peer-port 0` for peer heartbeats, `--watchdog`), against a
//! small WebSocket server speaking the agent protocol. Checks what only whole processes show: records on a
//! shared directory, UDP heartbeats between processes, guests that keep running when every management
//! server is gone, and the self-fence when the storage goes too. Tests poll with deadlines.

use api::agent::{
    AgentMessage, AgentVmState, Command, Frame, HostRegistration, Peer, ServerMessage, StorageRecord, StorageView,
    VmReport, VmSpec,
};
use api::{CommandId, HostId, VmId};
use futures::{SinkExt, StreamExt};
use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const STORAGE: &str = "nfs://storage/primary";
const SELF_FENCE_MS: u64 = 2000;

#[derive(Default)]
struct Seen {
    sessions: HashMap<String, mpsc::Sender<ServerMessage>>,
    registrations: HashMap<String, HostRegistration>,
    storage: HashMap<String, Vec<StorageView>>,
    peers_heard: HashMap<String, Vec<HostId>>,
    inventories: HashMap<String, Vec<VmReport>>,
}

/// A management server that can be switched off: its listener and every session end at once.
struct Server {
    url: String,
    ids: Arc<HashMap<String, HostId>>,
    seen: Arc<Mutex<Seen>>,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

fn peers(ids: &HashMap<String, HostId>, seen: &Seen, except: &str) -> Vec<Peer> {
    seen.registrations
        .values()
        .filter(|registration| registration.name != except)
        .filter_map(|registration| {
            Some(Peer {
                host_id: ids[&registration.name],
                name: registration.name.clone(),
                address: format!("{}:{}", registration.address, registration.peer_port?),
            })
        })
        .collect()
}

fn encode(message: ServerMessage) -> Message {
    Message::Text(serde_json::to_string(&Frame::v1(message)).unwrap().into())
}

fn parse(message: &Message) -> Option<AgentMessage> {
    match message {
        Message::Text(text) => serde_json::from_str::<Frame<AgentMessage>>(text.as_str()).ok().map(|frame| frame.body),
        _ => None,
    }
}

impl Server {
    async fn start(hosts: &[&str]) -> Server {
        let ids: HashMap<String, HostId> = hosts
            .iter()
            .enumerate()
            .map(|(n, name)| ((*name).to_owned(), HostId(Uuid::from_u128(n as u128 + 1))))
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Server {
            url: format!("http://{}", listener.local_addr().unwrap()),
            ids: Arc::new(ids),
            seen: Arc::default(),
            tasks: Arc::default(),
        };
        let (ids, seen, tasks) = (server.ids.clone(), server.seen.clone(), server.tasks.clone());
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (ids, seen) = (ids.clone(), seen.clone());
                let session = tokio::spawn(async move {
                    if let Ok(socket) = tokio_tungstenite::accept_async(stream).await {
                        session(socket, ids, seen).await;
                    }
                });
                tasks.lock().unwrap().push(session);
            }
        });
        server.tasks.lock().unwrap().push(accept);
        server
    }

    /// Every management server is gone: the port refuses connections, open sessions drop.
    fn stop(&self) {
        for task in self.tasks.lock().unwrap().drain(..) {
            task.abort();
        }
    }

    /// Send a command to `host`'s current session (lost if that session is just ending).
    fn command(&self, host: &str, command: Command) {
        let command_id = CommandId::new_random();
        let sender = self.seen.lock().unwrap().sessions.get(host).cloned().expect("connected");
        let _ = sender.try_send(ServerMessage::Command { command_id, epoch: 1, command });
    }
}

async fn session(
    socket: tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>,
    ids: Arc<HashMap<String, HostId>>,
    seen: Arc<Mutex<Seen>>,
) {
    let (mut sink, mut stream) = socket.split();
    let Some(Ok(first)) = stream.next().await else { return };
    let Some(AgentMessage::Hello { host }) = parse(&first) else { return };
    let name = host.name.clone();
    let (sender, mut outbox) = mpsc::channel(64);
    let acks = sender.clone();
    let cluster_peers = {
        let mut seen = seen.lock().unwrap();
        seen.registrations.insert(name.clone(), host);
        seen.sessions.insert(name.clone(), sender);
        for (other, sender) in seen.sessions.iter().filter(|(other, _)| **other != name) {
            let _ = sender.try_send(ServerMessage::Peers { peers: peers(&ids, &seen, other) });
        }
        peers(&ids, &seen, &name)
    };
    let welcome = ServerMessage::Welcome {
        host_id: ids[&name],
        heartbeat_interval_ms: 200,
        cluster_peers,
        self_fence_timeout_ms: SELF_FENCE_MS,
        storage_timeout_ms: 1000,
        peer_timeout_ms: 800,
    };
    if sink.send(encode(welcome)).await.is_err() {
        return;
    }
    let writer = tokio::spawn(async move {
        while let Some(message) = outbox.recv().await {
            if sink.send(encode(message)).await.is_err() {
                break;
            }
        }
    });
    // The writer dies with this task when the server stops.
    let _writer = AbortOnDrop(writer);
    while let Some(Ok(message)) = stream.next().await {
        let mut seen = seen.lock().unwrap();
        match parse(&message) {
            Some(AgentMessage::Heartbeat { seq, storage, peers_heard, .. }) => {
                seen.storage.insert(name.clone(), storage);
                seen.peers_heard.insert(name.clone(), peers_heard);
                // Recorded: acknowledged, as a real server does (agents count only acks as contact).
                let _ = acks.try_send(ServerMessage::HeartbeatAck { seq });
            }
            Some(AgentMessage::Inventory { vms }) => {
                seen.inventories.insert(name.clone(), vms);
            }
            _ => {}
        }
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The agent processes; killed when the test ends, however it ends.
struct Agents(Vec<Child>);

impl Drop for Agents {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn start_agent(server: &str, name: &str, storage_dir: &Path, watchdog: Option<&Path>, log: &Path) -> Child {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_parapet-agent"));
    command
        .args(["--server", server, "--token", "join-token", "--name", name, "--cluster", "cluster-a"])
        .args(["--address", "127.0.0.1", "--cpu-cores", "8", "--memory-mb", "16384"])
        .args(["--mount", STORAGE, "--mount-path"])
        .arg(format!("{STORAGE}={}", storage_dir.display()))
        .args(["--peer-port", "0", "--peer-bind", "127.0.0.1"])
        .env("PARAPET_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    if let Some(watchdog) = watchdog {
        command.arg("--watchdog").arg(watchdog);
    }
    command.spawn().expect("parapet-agent starts")
}

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
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn record(storage_dir: &Path, host: &str) -> Option<StorageRecord> {
    let bytes = std::fs::read(storage_dir.join(".parapet-hb").join(format!("{host}.json"))).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Take the storage away from every host: its record directory becomes a file.
fn break_storage(storage_dir: &Path) -> PathBuf {
    let records = storage_dir.join(".parapet-hb");
    for attempt in 0..100 {
        let _ = std::fs::rename(&records, records.with_extension(format!("broken-{attempt}")));
        if std::fs::OpenOptions::new().write(true).create_new(true).open(&records).is_ok() {
            return records;
        }
    }
    panic!("cannot break the storage");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_agents_keep_guests_running_without_servers_and_fence_when_storage_goes_too() {
    let hosts = ["proc-1", "proc-2", "proc-3"];
    let dir = tempfile::tempdir().unwrap();
    let storage_dir = dir.path().join("primary");
    std::fs::create_dir(&storage_dir).unwrap();
    let watchdog = dir.path().join("watchdog");
    std::fs::write(&watchdog, b"").unwrap();
    let server = Server::start(&hosts).await;
    let mut agents = Agents(Vec::new());
    for (index, host) in hosts.iter().enumerate() {
        let log = dir.path().join(format!("{host}.log"));
        agents.0.push(start_agent(&server.url, host, &storage_dir, (index == 0).then_some(watchdog.as_path()), &log));
    }
    let logs = || {
        hosts
            .iter()
            .map(|host| std::fs::read_to_string(dir.path().join(format!("{host}.log"))).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n")
    };
    let seen = &server.seen;
    within(Duration::from_secs(30), "every agent hears both peers over UDP and reads both records", || async {
        let seen = seen.lock().unwrap();
        hosts
            .iter()
            .all(|host| {
                seen.peers_heard.get(*host).is_some_and(|heard| heard.len() == 2)
                    && seen
                        .storage
                        .get(*host)
                        .is_some_and(|views| views.len() == 1 && views[0].write_ok && views[0].peers.len() == 2)
            })
            .then_some(())
    })
    .await;

    // One VM per host, started through the protocol. On a loaded machine a session may be replaced just
    // as a command goes out; a host that does not list its VM gets the command again.
    let vms: Vec<VmId> = hosts.iter().map(|_| VmId::new_random()).collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let missing: Vec<(&str, VmId)> = {
            let seen = seen.lock().unwrap();
            hosts
                .iter()
                .zip(&vms)
                .filter(|(host, vm)| {
                    !seen.inventories.get(**host).is_some_and(|inventory| inventory.iter().any(|r| r.vm_id == **vm))
                })
                .map(|(host, vm)| (*host, *vm))
                .collect()
        };
        if missing.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "VMs never started on {missing:?}\n{}", logs());
        for (host, vm_id) in missing {
            let vm = VmSpec {
                vm_id,
                name: format!("vm-{host}"),
                generation: 1,
                cpu_cores: 1,
                cpu_mhz: 1000,
                memory_mb: 1024,
                storage_url: STORAGE.into(),
            };
            server.command(host, Command::StartVm { vm });
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    within(Duration::from_secs(30), "every VM runs", || async {
        let seen = seen.lock().unwrap();
        hosts
            .iter()
            .zip(&vms)
            .all(|(host, vm)| {
                seen.inventories.get(*host).is_some_and(|inventory| {
                    inventory.iter().any(|report| report.vm_id == *vm && report.state == AgentVmState::Running)
                })
            })
            .then_some(())
    })
    .await;
    within(Duration::from_secs(10), "the records count the running VMs", || async {
        hosts.iter().all(|host| record(&storage_dir, host).is_some_and(|r| r.running_vms == 1)).then_some(())
    })
    .await;

    // Every management server goes away: the storage and the peers still say all is well, so the guests
    // keep running well past the self-fence timeout.
    server.stop();
    let counters: Vec<u64> = hosts.iter().map(|host| record(&storage_dir, host).unwrap().counter).collect();
    tokio::time::sleep(Duration::from_millis(SELF_FENCE_MS * 2)).await;
    for (host, counter) in hosts.iter().zip(&counters) {
        let now = record(&storage_dir, host).unwrap();
        assert!(now.counter > *counter, "{host} keeps writing its record: {now:?}\n{}", logs());
        assert!(!now.self_fenced && now.running_vms == 1, "{host} keeps its VM without servers: {now:?}\n{}", logs());
    }

    // Then the storage goes too: isolated, every agent stops its VM and says so once the storage is back.
    let broken = break_storage(&storage_dir);
    tokio::time::sleep(Duration::from_millis(SELF_FENCE_MS) + Duration::from_millis(500)).await;
    std::fs::remove_file(&broken).unwrap();
    within(Duration::from_secs(10), "every record says self-fenced with no VM running", || async {
        hosts
            .iter()
            .all(|host| record(&storage_dir, host).is_some_and(|r| r.self_fenced && r.running_vms == 0))
            .then_some(())
    })
    .await;
    let text = logs();
    assert!(text.contains("self-fencing"), "the agents log why they fenced: {text}");

    // The watchdog device was petted while the agent was healthy; a clean stop (SIGINT) disarms it.
    let pid = agents.0[0].id().to_string();
    assert!(std::process::Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let child = &mut agents.0[0];
    within(Duration::from_secs(10), "proc-1 stops on SIGINT", || {
        let exited = child.try_wait().unwrap().is_some();
        async move { exited.then_some(()) }
    })
    .await;
    let pets = std::fs::read(&watchdog).unwrap();
    assert!(pets.len() > 10 && pets.ends_with(b"V"), "{} pets, last {:?}", pets.len(), pets.last());
    assert!(pets[..pets.len() - 1].iter().all(|byte| *byte == 0));
}
