//! One agent's WebSocket session: the `Hello`/`Welcome` handshake, then heartbeats, inventories and
//! command results in, commands out. A bad frame is answered with an `Error` and logged; it never
//! ends the server, and only a protocol violation at the handshake ends the session.

use crate::app;
use crate::db::ZoneRecord;
use crate::events::error_chain;
use crate::state::AppState;
use api::HostId;
use api::agent::{AgentMessage, Frame, HostRegistration, PROTOCOL_VERSION, ServerMessage, VmReport};
use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use std::time::Duration;
use tokio::sync::{mpsc, watch};

const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// Heartbeats between two announcements of a host's last-heartbeat time to the console.
const ANNOUNCE_EVERY_HEARTBEATS: u64 = 5;

/// Why a text frame could not be taken: an error code and message for the agent.
#[derive(Debug, PartialEq)]
pub struct FrameError {
    pub code: &'static str,
    pub message: String,
}

/// Parse one text frame, telling a version mismatch apart from a malformed message.
pub fn parse_frame(text: &str) -> Result<AgentMessage, FrameError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|error| FrameError { code: "malformed-message", message: format!("not JSON: {error}") })?;
    match value.get("v").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(PROTOCOL_VERSION) => {}
        Some(v) => {
            return Err(FrameError {
                code: "unsupported-version",
                message: format!("protocol version {v} is not supported; this server speaks {PROTOCOL_VERSION}"),
            });
        }
        None => {
            return Err(FrameError {
                code: "malformed-message",
                message: "the frame has no version field \"v\"".into(),
            });
        }
    }
    serde_json::from_value::<Frame<AgentMessage>>(value)
        .map(|frame| frame.body)
        .map_err(|error| FrameError { code: "malformed-message", message: error.to_string() })
}

fn encode(message: &ServerMessage) -> Message {
    Message::Text(serde_json::to_string(&Frame::v1(message)).unwrap_or_default().into())
}

fn error_message(code: &str, message: impl Into<String>) -> ServerMessage {
    ServerMessage::Error { code: code.to_owned(), message: message.into() }
}

/// Drive one authenticated agent connection until it ends.
pub async fn run(state: AppState, zone: ZoneRecord, socket: WebSocket) {
    let (mut sink, mut stream) = socket.split();

    let registration = match tokio::time::timeout(HELLO_TIMEOUT, next_hello(&mut stream)).await {
        Ok(Ok(registration)) => registration,
        Ok(Err(error)) => {
            tracing::warn!(zone = %zone.zone.name, code = error.code, "agent handshake refused: {}", error.message);
            let _ = sink.send(encode(&error_message(error.code, error.message))).await;
            let _ = sink.close().await;
            return;
        }
        Err(_) => {
            tracing::warn!(zone = %zone.zone.name, "agent sent no hello within {} s", HELLO_TIMEOUT.as_secs());
            let _ = sink.send(encode(&error_message("hello-timeout", "no hello received in time"))).await;
            return;
        }
    };

    let host_id = match app::hosts::register(&state, &zone, &registration).await {
        Ok(host_id) => host_id,
        Err(error) => {
            tracing::warn!(host = %registration.name, error = %error_chain(&error), "agent registration refused");
            let _ = sink.send(encode(&error_message("registration-refused", error.to_string()))).await;
            let _ = sink.close().await;
            return;
        }
    };

    let (sender, mut outbox) = mpsc::channel::<ServerMessage>(256);
    // The cluster's peers and HA timing (the agent's self-fence and partition rules need them); the
    // cluster's other agents get the new peer list. Without them the agent keeps its defaults.
    let (cluster_peers, timing) = match app::ha::welcome_agent(&state, host_id, registration.peer_port).await {
        Ok(found) => found,
        Err(error) => {
            tracing::warn!(host = %registration.name, error = %error_chain(&error), "cannot read the HA peers");
            (Vec::new(), api::v1::HaTimingSettings::default())
        }
    };
    let welcome = ServerMessage::Welcome {
        host_id,
        heartbeat_interval_ms: state.settings.heartbeat_interval.as_millis() as u64,
        cluster_peers,
        self_fence_timeout_ms: timing.self_fence_timeout_ms,
        storage_timeout_ms: timing.storage_timeout_ms,
        // A peer silent as long as a host must be before it is suspect is no longer heard.
        peer_timeout_ms: timing.suspect_after_ms,
    };
    if sink.send(encode(&welcome)).await.is_err() {
        return;
    }
    let connection_id = take_over(&state, host_id, sender.clone()).await;
    tracing::info!(host = %registration.name, %host_id, "agent connected");
    state.events.publish_host(&state.db, host_id).await;

    let writer = tokio::spawn(async move {
        while let Some(message) = outbox.recv().await {
            if sink.send(encode(&message)).await.is_err() {
                break;
            }
        }
        let _ = sink.close().await;
    });

    // Inventories are applied by a task of their own, latest first: each is complete, so a burst
    // (hundreds of VMs changing at once) costs one application, and the read loop keeps answering
    // pings and taking heartbeats and command results meanwhile.
    let (inventories, latest) = watch::channel(None);
    let applier = tokio::spawn(apply_inventories(state.clone(), host_id, registration.name.clone(), latest));
    read_loop(&state, host_id, &registration.name, &sender, &inventories, &mut stream).await;
    drop(inventories);
    // The last inventory lands before the host's VMs may be marked unknown below.
    let _ = applier.await;

    writer.abort();
    if hand_back(&state, host_id, connection_id).await {
        tracing::info!(host = %registration.name, %host_id, "agent disconnected");
    }
}

/// The new session becomes `host_id`'s current one, under the host's gate: the host is marked
/// connected (again: `register` did it before the handshake, but an older session of the same agent
/// may have ended since and marked it disconnected) and the session attached. An older session that
/// ends at the same moment either finishes first, and this overwrites its marking, or finds itself
/// replaced and marks nothing. Answers the session's connection id.
async fn take_over(state: &AppState, host_id: HostId, sender: mpsc::Sender<ServerMessage>) -> u64 {
    let _gate = state.hub.host_gate(host_id).await;
    if let Err(error) = state.db.host_set_connected(host_id, true).await {
        tracing::warn!(%host_id, error = %error_chain(&error), "cannot mark a host connected");
    }
    state.hub.attach(host_id, sender)
}

/// The session ends. If it is still `host_id`'s current one, it is detached and the host marked
/// disconnected (its VMs unknown), under the host's gate; answers whether it was current.
async fn hand_back(state: &AppState, host_id: HostId, connection_id: u64) -> bool {
    let _gate = state.hub.host_gate(host_id).await;
    if !state.hub.detach(host_id, connection_id) {
        return false;
    }
    app::hosts::mark_disconnected(state, host_id).await;
    true
}

async fn next_hello(stream: &mut futures::stream::SplitStream<WebSocket>) -> Result<HostRegistration, FrameError> {
    loop {
        let Some(Ok(message)) = stream.next().await else {
            return Err(FrameError { code: "closed", message: "connection closed before hello".into() });
        };
        match message {
            Message::Text(text) => {
                return match parse_frame(&text)? {
                    AgentMessage::Hello { host } => Ok(host),
                    _ => Err(FrameError { code: "hello-expected", message: "the first message must be hello".into() }),
                };
            }
            Message::Close(_) => {
                return Err(FrameError { code: "closed", message: "connection closed before hello".into() });
            }
            _ => continue,
        }
    }
}

/// Apply the latest complete inventory whenever one arrived, until the session ends.
async fn apply_inventories(
    state: AppState,
    host_id: HostId,
    host_name: String,
    mut latest: watch::Receiver<Option<Vec<VmReport>>>,
) {
    while latest.changed().await.is_ok() {
        let Some(vms) = latest.borrow_and_update().clone() else { continue };
        if let Err(error) = app::vms::apply_inventory(&state, host_id, &vms).await {
            tracing::warn!(host = %host_name, "cannot apply a VM inventory: {error}");
        }
    }
}

async fn read_loop(
    state: &AppState,
    host_id: HostId,
    host_name: &str,
    sender: &mpsc::Sender<ServerMessage>,
    inventories: &watch::Sender<Option<Vec<VmReport>>>,
    stream: &mut futures::stream::SplitStream<WebSocket>,
) {
    let silence = state.settings.agent_silence_timeout;
    loop {
        let message = match tokio::time::timeout(silence, stream.next()).await {
            Err(_) => {
                tracing::warn!(host = %host_name, "agent silent for {} s; closing its session", silence.as_secs());
                return;
            }
            Ok(None) | Ok(Some(Err(_))) => return,
            Ok(Some(Ok(message))) => message,
        };
        let text = match message {
            Message::Text(text) => text,
            Message::Close(_) => return,
            Message::Binary(_) => {
                let _ =
                    sender.try_send(error_message("malformed-message", "binary frames are not part of the protocol"));
                continue;
            }
            Message::Ping(_) | Message::Pong(_) => continue,
        };
        match parse_frame(&text) {
            Ok(message) => handle(state, host_id, host_name, sender, inventories, message).await,
            Err(error) => {
                tracing::warn!(host = %host_name, code = error.code, "bad frame from agent: {}", error.message);
                let _ = sender.try_send(error_message(error.code, error.message));
            }
        }
    }
}

async fn handle(
    state: &AppState,
    host_id: HostId,
    host_name: &str,
    sender: &mpsc::Sender<ServerMessage>,
    inventories: &watch::Sender<Option<Vec<VmReport>>>,
    message: AgentMessage,
) {
    match message {
        AgentMessage::Hello { .. } => {
            let _ =
                sender.try_send(error_message("already-registered", "hello was already received on this connection"));
        }
        AgentMessage::Heartbeat { seq, storage, peers_heard, .. } => {
            let received_ms = crate::db::now_ms();
            state.hub.ha_views.record_heartbeat(host_id, received_ms, &storage, &peers_heard);
            match state.db.host_record_heartbeat(host_id, received_ms).await {
                // Acknowledged only once recorded where the HA engine reads it: the agent counts a server
                // as reached through these acks alone, from when it sent the heartbeat, so its self-fence
                // clock never runs ahead of the engine's `last_heartbeat_ms` (docs/agent-ha.md).
                Ok(()) => {
                    let _ = sender.try_send(ServerMessage::HeartbeatAck { seq });
                }
                Err(error) => {
                    tracing::warn!(host = %host_name, error = %error_chain(&error), "cannot record a heartbeat");
                }
            }
            if seq % ANNOUNCE_EVERY_HEARTBEATS == 0 {
                // Only the heartbeat time moved: the failover plan did not change.
                state.events.announce_host(&state.db, host_id).await;
            }
        }
        AgentMessage::Inventory { vms } => {
            state.hub.ha_views.record_inventory(host_id, &vms);
            inventories.send_replace(Some(vms));
        }
        AgentMessage::CommandResult { command_id, outcome } => {
            if !state.hub.resolve(command_id, outcome) {
                tracing::debug!(host = %host_name, %command_id, "result for a command nobody waits for");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_another_version_or_shape_are_told_apart() {
        assert_eq!(parse_frame("{").unwrap_err().code, "malformed-message");
        assert_eq!(parse_frame(r#"{"body":{}}"#).unwrap_err().code, "malformed-message");
        assert_eq!(parse_frame(r#"{"v":2,"body":{"type":"heartbeat"}}"#).unwrap_err().code, "unsupported-version");
        assert_eq!(
            parse_frame(r#"{"v":1,"body":{"type":"reboot-everything"}}"#).unwrap_err().code,
            "malformed-message"
        );
        let ok = parse_frame(r#"{"v":1,"body":{"type":"heartbeat","seq":3,"sent_at":"2026-01-01T00:00:00Z"}}"#);
        assert!(matches!(ok, Ok(AgentMessage::Heartbeat { seq: 3, .. })));
    }

    /// An agent that reconnects before the server has seen its old connection end: the old session's
    /// end (detach, then marking the host disconnected and its VMs unknown) runs at the same moment as
    /// the new session's start. Whatever the order, the new session must end up current with the host
    /// marked connected; before the host gate, the old session's marking often landed last (a live
    /// agent shown disconnected, its VMs unknown, until it reconnected again).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_session_ending_as_its_replacement_starts_never_leaves_the_host_disconnected() {
        let (state, _dir) = crate::state::test_state("session-test-admin-1").await;
        let zone = state.db.zone_insert("zone-1", "not-a-real-token-hash").await.unwrap();
        let cluster = state.db.cluster_insert(zone.id, "cluster-1").await.unwrap();
        let registration = crate::db::testdb::registration("kvm-1", "cluster-1", &[]);
        let host = state.db.host_register(zone.id, cluster.id, &registration).await.unwrap();
        let mut current = take_over(&state, host, mpsc::channel(1).0).await;

        for round in 0..40 {
            let old = current;
            let ending = tokio::spawn({
                let state = state.clone();
                async move { hand_back(&state, host, old).await }
            });
            let starting = tokio::spawn({
                let state = state.clone();
                async move { take_over(&state, host, mpsc::channel(1).0).await }
            });
            let (ended, started) = (ending.await.unwrap(), starting.await.unwrap());
            current = started;
            assert!(state.hub.is_connected(host), "round {round}: no session is current");
            let row = state.db.host_fetch(host).await.unwrap().unwrap();
            assert_eq!(
                row.connection,
                api::v1::AgentConnection::Connected,
                "round {round}: the new session is current but the host is marked disconnected \
                 (the old session was current when it ended: {ended})"
            );
        }
    }
}
