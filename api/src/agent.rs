//! Agent <-> server protocol, version 1.
//!
//! One long-lived WebSocket per agent at [`CONNECT_PATH`], authenticated by the zone's join token in an
//! `Authorization: Bearer` header. Every frame is a JSON text message wrapped in an envelope that carries
//! the protocol version, so a peer that speaks another version is answered with an error, not misread.
//! After the upgrade the agent sends `Hello`; the server answers `Welcome` (or `Error` and closes).
//! Then the agent sends a `Heartbeat` every second and an `Inventory` on connect and whenever a VM
//! changes; the server sends `Command`s, and the agent answers each with a `CommandResult`.
//!
//! HA additions (issue #5), all optional on the wire (`#[serde(default)]`) so that older peers still
//! parse: the agent's UDP port for peer heartbeats (`HostRegistration::peer_port`), the cluster's peers and
//! the HA timeouts in `Welcome` (and `Peers` when the peer list changes), what the agent reads on its
//! storage heartbeat channel in every `Heartbeat` (`storage`, `peers_heard`), and why the agent itself
//! stopped a VM (`VmReport::stop_reason`). The server answers every heartbeat it has recorded with a
//! `HeartbeatAck` carrying its `seq`; agents count only those as contact with a server.

use crate::ids::*;
use crate::v1::{HypervisorKind, Resources};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub const PROTOCOL_VERSION: u32 = 1;
pub const CONNECT_PATH: &str = "/api/agent/v1/connect";

/// A frame on the wire: `{"v": 1, "body": {"type": "...", ...}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Frame<T> {
    pub v: u32,
    pub body: T,
}

impl<T> Frame<T> {
    pub fn v1(body: T) -> Self {
        Frame { v: PROTOCOL_VERSION, body }
    }
}

/// What an agent tells the server about its host when it connects.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostRegistration {
    /// Unique within the zone; a host that reconnects under the same name is the same host.
    pub name: String,
    pub address: String,
    /// The cluster (by name, within the token's zone) the host belongs to.
    pub cluster: String,
    pub hypervisor: HypervisorKind,
    pub capacity: Resources,
    /// URLs of the primary storage pools this host has mounted.
    pub mounted_storage: Vec<String>,
    pub agent_version: String,
    /// The UDP port this agent receives peer heartbeats on, at `address`; `None` when it runs none
    /// (older agents).
    #[serde(default)]
    pub peer_port: Option<u16>,
}

/// Another host of the agent's cluster, as the server tells the agent in `Welcome` and `Peers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Peer {
    pub host_id: HostId,
    pub name: String,
    /// Where the peer receives heartbeat datagrams: a socket address `IP:PORT` (`[IPv6]:PORT`), or
    /// `NAME:PORT` to resolve. The host's registered `address` with its `peer_port`.
    pub address: String,
}

/// One host's record on a shared primary storage: the file `<mount>/.parapet-hb/<host name>.json`,
/// rewritten (temp file + rename) every heartbeat interval by that host's agent.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageRecord {
    /// The writing host's name.
    pub host: String,
    /// Increases by one on every write while the agent runs (starts again at 1 when the agent restarts).
    pub counter: u64,
    /// The writer's clock when it wrote, milliseconds since the epoch.
    pub written_at_ms: i64,
    /// The agent has fenced itself: it force-stopped every VM and starts none until the server
    /// welcomes it again.
    pub self_fenced: bool,
    /// VMs the host is running (anything not stopped or crashed) at the time of the write.
    pub running_vms: u32,
}

/// What an agent sees on one shared primary storage, sent with every heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageView {
    /// The storage's URL, as in `HostRegistration::mounted_storage`.
    pub name: String,
    /// Whether the agent's latest write of its own record succeeded.
    pub write_ok: bool,
    /// When the agent's own record was last written successfully (ms since the epoch).
    #[serde(default)]
    pub last_write_ms: Option<i64>,
    /// Why the latest write failed (none when it succeeded).
    #[serde(default)]
    pub last_error: Option<String>,
    /// The other hosts' records read from the storage by the latest read (the agent's own excluded).
    #[serde(default)]
    pub peers: Vec<StorageRecord>,
}

/// Why the agent itself stopped a VM, without a command from the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum AgentStopReason {
    /// The agent could not write its heartbeat record on the VM's primary storage for the storage
    /// timeout: the storage is lost to this host.
    StorageLost { storage: String, error: String },
    /// The agent fenced itself (isolated, or on the minority side of a partition).
    SelfFenced { reason: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AgentVmState {
    /// Prepared to receive a migrating VM; paused, writing nothing.
    Incoming,
    /// Being handed over to another host.
    MigratingOut,
    Starting,
    Running,
    Stopping,
    Stopped,
    Crashed,
}

/// One VM as the hypervisor on the host sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VmReport {
    pub vm_id: VmId,
    pub name: String,
    pub state: AgentVmState,
    pub generation: i64,
    /// Set when the agent stopped this VM on its own (storage lost, self-fence); kept until the VM is
    /// started again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<AgentStopReason>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum AgentMessage {
    Hello {
        host: HostRegistration,
    },
    Heartbeat {
        seq: u64,
        sent_at: DateTime<Utc>,
        /// The storage heartbeat channel: one view per shared primary storage the host mounts.
        #[serde(default)]
        storage: Vec<StorageView>,
        /// Cluster peers whose heartbeat datagrams arrived within the peer timeout.
        #[serde(default)]
        peers_heard: Vec<HostId>,
    },
    /// The complete list of VMs the hypervisor knows; replaces what the server knew.
    Inventory {
        vms: Vec<VmReport>,
    },
    CommandResult {
        command_id: CommandId,
        outcome: CommandOutcome,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum CommandOutcome {
    Done,
    Failed {
        reason: String,
    },
    /// The command named an older epoch or VM generation than the agent has seen.
    Refused {
        reason: String,
    },
}

/// What the agent needs to run a VM.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VmSpec {
    pub vm_id: VmId,
    pub name: String,
    pub generation: i64,
    pub cpu_cores: u32,
    pub cpu_mhz: u32,
    pub memory_mb: u64,
    /// URL of the primary storage the VM's disks live on.
    pub storage_url: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Command {
    StartVm {
        vm: VmSpec,
    },
    /// Graceful stop; with `force`, pull the plug at once.
    StopVm {
        vm_id: VmId,
        generation: i64,
        force: bool,
    },
    /// Forget a stopped VM (undefine it); its disks are the storage's business.
    DestroyVm {
        vm_id: VmId,
        generation: i64,
    },
    /// Live migration, step 1 (destination): reserve room and wait, paused, for the VM.
    PrepareMigration {
        vm: VmSpec,
    },
    /// Step 2 (source): hand the running VM over to the destination; done once it no longer runs here.
    MigrateOut {
        vm_id: VmId,
        generation: i64,
        /// The destination host's address (a real hypervisor connects to it).
        target_address: String,
    },
    /// Step 3 (destination): resume the VM that arrived.
    FinishMigration {
        vm_id: VmId,
        generation: i64,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage {
    Welcome {
        host_id: HostId,
        heartbeat_interval_ms: u64,
        /// The other hosts of this host's cluster (the majority of a partition counts these plus itself).
        #[serde(default)]
        cluster_peers: Vec<Peer>,
        /// An agent that reaches neither a server nor its storage for this long force-stops its VMs.
        #[serde(default = "default_self_fence_timeout_ms")]
        self_fence_timeout_ms: u64,
        /// An agent whose writes to a storage fail for this long stops the VMs on it.
        #[serde(default = "default_storage_timeout_ms")]
        storage_timeout_ms: u64,
        /// A peer whose datagrams stopped for this long is no longer heard (it is on the other side).
        #[serde(default = "default_peer_timeout_ms")]
        peer_timeout_ms: u64,
    },
    /// The cluster's peer list changed (a host joined, left or moved).
    Peers {
        peers: Vec<Peer>,
    },
    Command {
        command_id: CommandId,
        /// The sender's leadership epoch; agents refuse commands from an older one.
        epoch: i64,
        command: Command,
    },
    Error {
        code: String,
        message: String,
    },
    /// The server has recorded the agent's heartbeat `seq` where the HA engine reads it, and only then
    /// sends this. It is the only frame an agent counts as contact with a management server, and it
    /// counts from the time the agent SENT heartbeat `seq` (docs/agent-ha.md): a frame that merely
    /// arrives from a server proves nothing about what the server heard.
    HeartbeatAck {
        seq: u64,
    },
}

pub const DEFAULT_SELF_FENCE_TIMEOUT_MS: u64 = 8000;
pub const DEFAULT_STORAGE_TIMEOUT_MS: u64 = 4000;
pub const DEFAULT_PEER_TIMEOUT_MS: u64 = 3000;

fn default_self_fence_timeout_ms() -> u64 {
    DEFAULT_SELF_FENCE_TIMEOUT_MS
}

fn default_storage_timeout_ms() -> u64 {
    DEFAULT_STORAGE_TIMEOUT_MS
}

fn default_peer_timeout_ms() -> u64 {
    DEFAULT_PEER_TIMEOUT_MS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_version_and_tagged_body() {
        let frame = Frame::v1(AgentMessage::Heartbeat {
            seq: 7,
            sent_at: DateTime::UNIX_EPOCH,
            storage: Vec::new(),
            peers_heard: Vec::new(),
        });
        let json = serde_json::to_value(&frame).unwrap();
        assert_eq!(json["v"], 1);
        assert_eq!(json["body"]["type"], "heartbeat");
        let back: Frame<AgentMessage> = serde_json::from_value(json).unwrap();
        assert_eq!(back, frame);
    }

    #[test]
    fn a_heartbeat_ack_names_the_heartbeat() {
        let text = r#"{"v":1,"body":{"type":"heartbeat-ack","seq":42}}"#;
        let frame: Frame<ServerMessage> = serde_json::from_str(text).unwrap();
        assert_eq!(frame.body, ServerMessage::HeartbeatAck { seq: 42 });
    }

    #[test]
    fn unknown_message_types_do_not_parse() {
        let text = r#"{"v":1,"body":{"type":"format-disk"}}"#;
        assert!(serde_json::from_str::<Frame<AgentMessage>>(text).is_err());
    }

    #[test]
    fn messages_of_older_peers_still_parse_with_defaults() {
        let welcome = r#"{"v":1,"body":{"type":"welcome","host_id":"6f1c1f43-3b0e-4f0b-9a57-0e6a1f1e2a10","heartbeat_interval_ms":1000}}"#;
        match serde_json::from_str::<Frame<ServerMessage>>(welcome).unwrap().body {
            ServerMessage::Welcome {
                cluster_peers,
                self_fence_timeout_ms,
                storage_timeout_ms,
                peer_timeout_ms,
                ..
            } => {
                assert!(cluster_peers.is_empty());
                assert_eq!((self_fence_timeout_ms, storage_timeout_ms, peer_timeout_ms), (8000, 4000, 3000));
            }
            other => panic!("not a welcome: {other:?}"),
        }
        let heartbeat = r#"{"v":1,"body":{"type":"heartbeat","seq":3,"sent_at":"2026-11-22T10:00:00Z"}}"#;
        match serde_json::from_str::<Frame<AgentMessage>>(heartbeat).unwrap().body {
            AgentMessage::Heartbeat { seq: 3, storage, peers_heard, .. } => {
                assert!(storage.is_empty() && peers_heard.is_empty());
            }
            other => panic!("not a heartbeat: {other:?}"),
        }
        let report = r#"{"vm_id":"6f1c1f43-3b0e-4f0b-9a57-0e6a1f1e2a10","name":"a","state":"running","generation":2}"#;
        assert_eq!(serde_json::from_str::<VmReport>(report).unwrap().stop_reason, None);
        let hello = r#"{"name":"h","address":"10.0.0.5","cluster":"c","hypervisor":"kvm",
            "capacity":{"cpu_cores":1,"cpu_mhz":1,"memory_mb":1},"mounted_storage":[],"agent_version":"0"}"#;
        assert_eq!(serde_json::from_str::<HostRegistration>(hello).unwrap().peer_port, None);
    }

    #[test]
    fn the_storage_record_format_is_stable() {
        let record = StorageRecord {
            host: "kvm-a1".into(),
            counter: 42,
            written_at_ms: 1_700_000_000_000,
            self_fenced: true,
            running_vms: 0,
        };
        assert_eq!(
            serde_json::to_value(&record).unwrap(),
            serde_json::json!({"host": "kvm-a1", "counter": 42, "written_at_ms": 1_700_000_000_000i64,
                "self_fenced": true, "running_vms": 0})
        );
        let reason = AgentStopReason::StorageLost { storage: "nfs://s/p".into(), error: "EIO".into() };
        assert_eq!(serde_json::to_value(&reason).unwrap()["kind"], "storage-lost");
    }
}
