//! Peer heartbeats: the agents of one cluster send each other a small UDP datagram every heartbeat
//! interval, so that an agent cut off from the management servers can tell which side of a partition it
//! is on (see [`crate::self_fence`]). The server sends the peer list (`Welcome`, `Peers`).
//!
//! A datagram is `PPH1 | from host id | to host id | boot nonce | sequence | HMAC-SHA256` (84 bytes), the
//! MAC keyed with the zone's join token that every agent of the zone holds: a stray or forged packet
//! cannot make a peer look alive. Naming the recipient keeps a datagram from being replayed to another
//! host, and the (boot, sequence) pair only moving forward keeps one from being replayed later.

use crate::faults::NetworkFaults;
use crate::health::Health;
use api::HostId;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::UdpSocket;
use uuid::Uuid;

const MAGIC: &[u8; 4] = b"PPH1";
const BODY_LEN: usize = 4 + 16 + 16 + 8 + 8;
pub const DATAGRAM_LEN: usize = BODY_LEN + 32;

type HmacSha256 = Hmac<Sha256>;

/// One heartbeat datagram's content.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Beat {
    pub from: HostId,
    pub to: HostId,
    /// Random per agent start: a restarted agent's sequence starts again.
    pub boot: u64,
    pub seq: u64,
}

fn mac(key: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length; this cannot fail.
    <HmacSha256 as Mac>::new_from_slice(key).expect("HMAC accepts any key length")
}

/// The datagram for `beat`, authenticated with `key`.
pub fn encode(beat: &Beat, key: &[u8]) -> [u8; DATAGRAM_LEN] {
    let mut datagram = [0u8; DATAGRAM_LEN];
    datagram[..4].copy_from_slice(MAGIC);
    datagram[4..20].copy_from_slice(beat.from.0.as_bytes());
    datagram[20..36].copy_from_slice(beat.to.0.as_bytes());
    datagram[36..44].copy_from_slice(&beat.boot.to_be_bytes());
    datagram[44..52].copy_from_slice(&beat.seq.to_be_bytes());
    let mut mac = mac(key);
    mac.update(&datagram[..BODY_LEN]);
    datagram[BODY_LEN..].copy_from_slice(&mac.finalize().into_bytes());
    datagram
}

/// The beat in a datagram, when it is well-formed and its MAC checks out under `key`.
pub fn decode(datagram: &[u8], key: &[u8]) -> Option<Beat> {
    if datagram.len() != DATAGRAM_LEN || &datagram[..4] != MAGIC {
        return None;
    }
    let mut mac = mac(key);
    mac.update(&datagram[..BODY_LEN]);
    mac.verify_slice(&datagram[BODY_LEN..]).ok()?;
    let id = |range: std::ops::Range<usize>| Uuid::from_slice(&datagram[range]).ok().map(HostId);
    let number = |range: std::ops::Range<usize>| datagram[range].try_into().ok().map(u64::from_be_bytes);
    Some(Beat { from: id(4..20)?, to: id(20..36)?, boot: number(36..44)?, seq: number(44..52)? })
}

/// Accepts each peer's beats only moving forward: a newer sequence of the same boot, or a new boot.
#[derive(Default)]
pub struct ReplayGuard {
    last: HashMap<HostId, (u64, u64)>,
}

impl ReplayGuard {
    pub fn accept(&mut self, beat: &Beat) -> bool {
        match self.last.get(&beat.from) {
            Some((boot, seq)) if *boot == beat.boot && beat.seq <= *seq => false,
            _ => {
                self.last.insert(beat.from, (beat.boot, beat.seq));
                true
            }
        }
    }
}

/// Sends and receives one agent's peer heartbeats.
pub struct PeerHeartbeat {
    pub socket: Arc<UdpSocket>,
    pub host_name: String,
    pub key: Vec<u8>,
    pub health: Arc<Health>,
    pub faults: Option<Arc<NetworkFaults>>,
}

impl PeerHeartbeat {
    /// Send and receive until dropped.
    pub async fn run(self) {
        let this = Arc::new(self);
        let receiver = this.clone();
        tokio::join!(this.send_loop(), receiver.receive_loop());
    }

    async fn send_loop(&self) {
        let boot: u64 = rand::random();
        let mut seq = 0u64;
        let mut resolved: HashMap<String, SocketAddr> = HashMap::new();
        loop {
            let interval = self.health.settings().heartbeat_interval;
            let started = tokio::time::Instant::now();
            if let Some(own) = self.health.host_id() {
                seq += 1;
                for peer in self.health.peers() {
                    if let Some(faults) = &self.faults
                        && !faults.peer_reachable(&self.host_name, &peer.name)
                    {
                        continue;
                    }
                    let target = match resolved.get(&peer.address) {
                        Some(target) => *target,
                        None => match resolve(&peer.address).await {
                            Some(target) => {
                                resolved.insert(peer.address.clone(), target);
                                target
                            }
                            None => {
                                tracing::debug!(peer = %peer.name, address = %peer.address, "cannot resolve a peer");
                                continue;
                            }
                        },
                    };
                    let datagram = encode(&Beat { from: own, to: peer.host_id, boot, seq }, &self.key);
                    if let Err(error) = self.socket.send_to(&datagram, target).await {
                        tracing::debug!(peer = %peer.name, "cannot send a peer heartbeat: {error}");
                    }
                }
            }
            tokio::time::sleep_until(started + interval).await;
        }
    }

    async fn receive_loop(&self) {
        let mut guard = ReplayGuard::default();
        let mut buffer = [0u8; 512];
        loop {
            let length = match self.socket.recv_from(&mut buffer).await {
                Ok((length, _)) => length,
                Err(error) => {
                    // ICMP errors from an earlier send surface here on some systems; they are not fatal.
                    tracing::debug!("peer heartbeat receive error: {error}");
                    continue;
                }
            };
            let Some(beat) = decode(&buffer[..length], &self.key) else {
                tracing::debug!("dropping a datagram that is not a valid peer heartbeat");
                continue;
            };
            if Some(beat.to) != self.health.host_id() {
                continue;
            }
            let Some(peer) = self.health.peers().into_iter().find(|peer| peer.host_id == beat.from) else {
                continue;
            };
            if let Some(faults) = &self.faults
                && !faults.peer_reachable(&peer.name, &self.host_name)
            {
                continue;
            }
            if guard.accept(&beat) {
                self.health.peer_heard(beat.from);
            }
        }
    }
}

async fn resolve(address: &str) -> Option<SocketAddr> {
    if let Ok(address) = address.parse() {
        return Some(address);
    }
    tokio::net::lookup_host(address).await.ok()?.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn beat(seq: u64) -> Beat {
        Beat { from: HostId(Uuid::from_u128(1)), to: HostId(Uuid::from_u128(2)), boot: 77, seq }
    }

    #[test]
    fn datagrams_round_trip_under_the_right_key_only() {
        let datagram = encode(&beat(5), b"join-token");
        assert_eq!(decode(&datagram, b"join-token"), Some(beat(5)));
        assert_eq!(decode(&datagram, b"another-token"), None, "another zone's token");
        let mut forged = datagram;
        forged[50] ^= 1;
        assert_eq!(decode(&forged, b"join-token"), None, "a changed sequence breaks the MAC");
        assert_eq!(decode(&datagram[..60], b"join-token"), None, "short");
        assert_eq!(decode(b"hello, stray packet", b"join-token"), None);
    }

    #[test]
    fn replays_are_refused_and_a_restarted_peer_is_accepted() {
        let mut guard = ReplayGuard::default();
        assert!(guard.accept(&beat(1)));
        assert!(guard.accept(&beat(2)));
        assert!(!guard.accept(&beat(2)), "the same datagram again");
        assert!(!guard.accept(&beat(1)), "an older one");
        assert!(guard.accept(&Beat { boot: 78, ..beat(1) }), "the peer's agent restarted");
    }

    #[tokio::test]
    async fn two_agents_hear_each_other_over_loopback() {
        use crate::health::HaSettings;
        use api::agent::Peer;
        let a_socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let b_socket = Arc::new(UdpSocket::bind("127.0.0.1:0").await.unwrap());
        let (a_id, b_id) = (HostId::new_random(), HostId::new_random());
        let settings = HaSettings { heartbeat_interval: std::time::Duration::from_millis(50), ..HaSettings::default() };
        let health = |own, peer: Peer| {
            let health = Arc::new(Health::new(Vec::new()));
            health.welcomed(own, settings, vec![peer], tokio::time::Instant::now());
            health
        };
        let a_health =
            health(a_id, Peer { host_id: b_id, name: "b".into(), address: b_socket.local_addr().unwrap().to_string() });
        let b_health =
            health(b_id, Peer { host_id: a_id, name: "a".into(), address: a_socket.local_addr().unwrap().to_string() });
        // b holds another zone's token: a hears nothing from it, and b hears nothing from a.
        let faults = Arc::new(NetworkFaults::new());
        let spawn = |socket, name: &str, key: &[u8], health| {
            tokio::spawn(
                PeerHeartbeat {
                    socket,
                    host_name: name.into(),
                    key: key.to_vec(),
                    health,
                    faults: Some(faults.clone()),
                }
                .run(),
            )
        };
        let a = spawn(a_socket.clone(), "a", b"token-1", a_health.clone());
        let b = spawn(b_socket.clone(), "b", b"token-2", b_health.clone());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(a_health.peers_heard().is_empty() && b_health.peers_heard().is_empty());
        b.abort();
        let b = spawn(b_socket, "b", b"token-1", b_health.clone());
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while a_health.peers_heard() != vec![b_id] || b_health.peers_heard() != vec![a_id] {
            assert!(tokio::time::Instant::now() < deadline, "the agents never heard each other");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        a.abort();
        b.abort();
    }
}
