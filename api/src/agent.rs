//! Agent <-> server protocol, version 1.
//!
//! One long-lived WebSocket per agent at [`CONNECT_PATH`], authenticated by the zone's join token in an
//! `Authorization: Bearer` header. Every frame is a JSON text message wrapped in an envelope that carries
//! the protocol version, so a peer that speaks another version is answered with an error, not misread.
//! After the upgrade the agent sends `Hello`; the server answers `Welcome` (or `Error` and closes).
//! Then the agent sends a `Heartbeat` every second and an `Inventory` on connect and whenever a VM
//! changes; the server sends `Command`s, and the agent answers each with a `CommandResult`.

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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_version_and_tagged_body() {
        let frame = Frame::v1(AgentMessage::Heartbeat { seq: 7, sent_at: DateTime::UNIX_EPOCH });
        let json = serde_json::to_value(&frame).unwrap();
        assert_eq!(json["v"], 1);
        assert_eq!(json["body"]["type"], "heartbeat");
        let back: Frame<AgentMessage> = serde_json::from_value(json).unwrap();
        assert_eq!(back, frame);
    }

    #[test]
    fn unknown_message_types_do_not_parse() {
        let text = r#"{"v":1,"body":{"type":"format-disk"}}"#;
        assert!(serde_json::from_str::<Frame<AgentMessage>>(text).is_err());
    }
}
