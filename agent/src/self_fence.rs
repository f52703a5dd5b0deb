//! The self-fencing rule, pure: from what the agent last heard on each channel, decide whether it must
//! force-stop its VMs now. The engine restarts a silent host's VMs once the host's self-fence deadline has
//! passed (or its storage record says it fenced itself), so this rule is half of the "never two copies"
//! guarantee: an agent that can no longer be sure it is the rightful runner of its VMs stops them in time.
//!
//! Times are milliseconds on the agent's monotonic clock; no IO or clock inside, so the table-driven tests
//! below pin the rule down.

use api::HostId;
use std::fmt;

/// The timing the rule works with (from the server's `Welcome`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FenceTimeouts {
    /// The agent must have stopped its VMs once it has been cut off this long.
    pub self_fence_ms: i64,
    /// How long before `self_fence_ms` the agent acts, so that the VMs are gone by the deadline (one
    /// heartbeat interval: the check period and the forced stop fit in it).
    pub lead_ms: i64,
    /// A peer heard more recently than this is on the agent's side of a partition.
    pub peer_ms: i64,
}

impl FenceTimeouts {
    /// Silence longer than this triggers the fence.
    pub fn act_after_ms(&self) -> i64 {
        (self.self_fence_ms - self.lead_ms).max(0)
    }
}

/// Everything the rule looks at.
#[derive(Clone, Debug)]
pub struct FenceInputs<'a> {
    pub now_ms: i64,
    /// When the agent sent the latest heartbeat (or hello) a management server acknowledged having
    /// recorded (or the agent's start, before any): never later than the engine's last heartbeat time.
    pub last_server_contact_ms: i64,
    /// The last successful write of the agent's own record on any shared storage; `None` when it never
    /// wrote one (no storage configured, or none writable since the start).
    pub last_storage_write_ms: Option<i64>,
    /// This host's id; `None` until a server has welcomed the agent (the partition rule then cannot apply).
    pub own_id: Option<HostId>,
    /// The other hosts of the cluster.
    pub cluster_peers: &'a [HostId],
    /// When each peer's heartbeat datagram last arrived (peers never heard are absent).
    pub peers_heard: &'a [(HostId, i64)],
    pub timeouts: FenceTimeouts,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FenceReason {
    /// Neither a management server nor the storage heartbeat reached for too long.
    Isolated { server_silent_ms: i64, storage_silent_ms: Option<i64> },
    /// Servers lost and this side of the partition has fewer than half of the cluster's hosts.
    Minority { side: usize, cluster: usize },
    /// Servers lost and this side has exactly half of the hosts, but not the lowest host id.
    TieWithoutLowestId { side: usize, cluster: usize },
}

impl fmt::Display for FenceReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FenceReason::Isolated { server_silent_ms, storage_silent_ms: Some(storage) } => write!(
                f,
                "no management server for {server_silent_ms} ms and no storage heartbeat written for {storage} ms"
            ),
            FenceReason::Isolated { server_silent_ms, storage_silent_ms: None } => {
                write!(f, "no management server for {server_silent_ms} ms and no storage heartbeat written at all")
            }
            FenceReason::Minority { side, cluster } => write!(
                f,
                "management servers lost and this side of the partition has {side} of the cluster's {cluster} hosts"
            ),
            FenceReason::TieWithoutLowestId { side, cluster } => write!(
                f,
                "management servers lost and this side has {side} of {cluster} hosts, without the lowest host id"
            ),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    KeepRunning,
    FenceNow(FenceReason),
}

/// Decide whether the agent must fence itself now.
///
/// * While a management server was heard within the act-after time, keep running: the engine decides.
/// * Servers lost and no storage heartbeat written either: isolated, fence.
/// * Servers lost, storage fine: count this side of a partition (itself plus the cluster peers heard within
///   the peer timeout). Keep running with a strict majority, or with exactly half that includes the lowest
///   host id of the cluster; fence otherwise. Before any welcome the agent knows no cluster: keep running.
///   Nor does the rule apply while no peer has ever been heard: the peer channel itself does not work
///   (a firewall, no peer ports), and a management-server outage must not stop every guest. Keeping running
///   is safe there: a host alive on storage is never restarted elsewhere unless it says it fenced itself.
pub fn decide(inputs: &FenceInputs<'_>) -> Verdict {
    let act_after = inputs.timeouts.act_after_ms();
    let server_silent_ms = inputs.now_ms - inputs.last_server_contact_ms;
    if server_silent_ms <= act_after {
        return Verdict::KeepRunning;
    }
    let storage_silent_ms = inputs.last_storage_write_ms.map(|at| inputs.now_ms - at);
    if storage_silent_ms.is_none_or(|silent| silent > act_after) {
        return Verdict::FenceNow(FenceReason::Isolated { server_silent_ms, storage_silent_ms });
    }
    let Some(own_id) = inputs.own_id else {
        return Verdict::KeepRunning;
    };
    let peers: Vec<HostId> = inputs.cluster_peers.iter().copied().filter(|peer| *peer != own_id).collect();
    let heard = |peer: HostId| {
        inputs.peers_heard.iter().any(|(id, at)| *id == peer && inputs.now_ms - at <= inputs.timeouts.peer_ms)
    };
    let ever_heard = |peer: &HostId| inputs.peers_heard.iter().any(|(id, _)| id == peer);
    if !peers.is_empty() && !peers.iter().any(ever_heard) {
        return Verdict::KeepRunning;
    }
    let cluster = peers.len() + 1;
    let side = 1 + peers.iter().filter(|peer| heard(**peer)).count();
    if 2 * side > cluster {
        return Verdict::KeepRunning;
    }
    if 2 * side == cluster {
        let lowest = peers.iter().copied().chain([own_id]).min().unwrap_or(own_id);
        if lowest == own_id || heard(lowest) {
            return Verdict::KeepRunning;
        }
        return Verdict::FenceNow(FenceReason::TieWithoutLowestId { side, cluster });
    }
    Verdict::FenceNow(FenceReason::Minority { side, cluster })
}

/// Whether a storage whose own-record writes last succeeded at `last_ok_ms` (or, never since the agent
/// started, at the start) is lost: no successful write for longer than the storage timeout.
pub fn storage_lost(now_ms: i64, last_ok_ms: i64, storage_timeout_ms: i64) -> bool {
    now_ms - last_ok_ms > storage_timeout_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn id(n: u128) -> HostId {
        HostId(Uuid::from_u128(n))
    }

    const TIMEOUTS: FenceTimeouts = FenceTimeouts { self_fence_ms: 8000, lead_ms: 1000, peer_ms: 3000 };

    /// One row: host `own` of a cluster of hosts 1..=size, the servers silent for `server_silent`, the
    /// storage written `storage_ago` ago, peers `heard` within the peer timeout (the others 10 s ago).
    struct Row {
        name: &'static str,
        own: u128,
        size: u128,
        server_silent: i64,
        storage_ago: Option<i64>,
        heard: &'static [u128],
        welcomed: bool,
        expect: Option<&'static str>,
    }

    fn run(row: &Row) -> Verdict {
        let now = 100_000;
        let peers: Vec<HostId> = (1..=row.size).filter(|n| *n != row.own).map(id).collect();
        let heard: Vec<(HostId, i64)> = (1..=row.size)
            .filter(|n| *n != row.own)
            .map(|n| (id(n), if row.heard.contains(&n) { now - 500 } else { now - 10_000 }))
            .collect();
        decide(&FenceInputs {
            now_ms: now,
            last_server_contact_ms: now - row.server_silent,
            last_storage_write_ms: row.storage_ago.map(|ago| now - ago),
            own_id: row.welcomed.then(|| id(row.own)),
            cluster_peers: &peers,
            peers_heard: &heard,
            timeouts: TIMEOUTS,
        })
    }

    #[test]
    fn the_rule_table() {
        let rows = [
            Row {
                name: "all well",
                own: 1,
                size: 3,
                server_silent: 500,
                storage_ago: Some(500),
                heard: &[2, 3],
                welcomed: true,
                expect: None,
            },
            Row {
                name: "servers up, storage and peers gone: the engine decides",
                own: 2,
                size: 3,
                server_silent: 900,
                storage_ago: None,
                heard: &[],
                welcomed: true,
                expect: None,
            },
            Row {
                name: "a 3 s blip of everything",
                own: 2,
                size: 3,
                server_silent: 3000,
                storage_ago: Some(3000),
                heard: &[],
                welcomed: true,
                expect: None,
            },
            Row {
                name: "isolated from servers and storage",
                own: 2,
                size: 3,
                server_silent: 7001,
                storage_ago: Some(7001),
                heard: &[1, 3],
                welcomed: true,
                expect: Some("isolated"),
            },
            Row {
                name: "isolated, no storage ever written",
                own: 2,
                size: 3,
                server_silent: 7500,
                storage_ago: None,
                heard: &[1, 3],
                welcomed: true,
                expect: Some("isolated"),
            },
            Row {
                name: "isolated just below the act-after time",
                own: 2,
                size: 3,
                server_silent: 7000,
                storage_ago: Some(7000),
                heard: &[],
                welcomed: true,
                expect: None,
            },
            Row {
                name: "servers lost, storage fine, peers all heard",
                own: 3,
                size: 3,
                server_silent: 60_000,
                storage_ago: Some(800),
                heard: &[1, 2],
                welcomed: true,
                expect: None,
            },
            Row {
                name: "2|1 split: the pair keeps running",
                own: 3,
                size: 3,
                server_silent: 60_000,
                storage_ago: Some(800),
                heard: &[2],
                welcomed: true,
                expect: None,
            },
            Row {
                name: "2|1 split: the single host fences",
                own: 1,
                size: 3,
                server_silent: 7500,
                storage_ago: Some(800),
                heard: &[],
                welcomed: true,
                expect: Some("minority"),
            },
            Row {
                name: "2|2 split: the side with the lowest id keeps running",
                own: 2,
                size: 4,
                server_silent: 60_000,
                storage_ago: Some(800),
                heard: &[1],
                welcomed: true,
                expect: None,
            },
            Row {
                name: "2|2 split: the lowest id itself keeps running",
                own: 1,
                size: 4,
                server_silent: 60_000,
                storage_ago: Some(800),
                heard: &[4],
                welcomed: true,
                expect: None,
            },
            Row {
                name: "2|2 split: the other side fences",
                own: 3,
                size: 4,
                server_silent: 7500,
                storage_ago: Some(800),
                heard: &[4],
                welcomed: true,
                expect: Some("tie"),
            },
            Row {
                name: "1|1 of two hosts: the lowest keeps running",
                own: 1,
                size: 2,
                server_silent: 60_000,
                storage_ago: Some(800),
                heard: &[],
                welcomed: true,
                expect: None,
            },
            Row {
                name: "1|1 of two hosts: the other fences",
                own: 2,
                size: 2,
                server_silent: 60_000,
                storage_ago: Some(800),
                heard: &[],
                welcomed: true,
                expect: Some("tie"),
            },
            Row {
                name: "a lone host (cluster of one) keeps running without servers",
                own: 1,
                size: 1,
                server_silent: 60_000,
                storage_ago: Some(800),
                heard: &[],
                welcomed: true,
                expect: None,
            },
            Row {
                name: "minority, but servers heard lately: the engine decides",
                own: 1,
                size: 5,
                server_silent: 2000,
                storage_ago: Some(800),
                heard: &[],
                welcomed: true,
                expect: None,
            },
            Row {
                name: "never welcomed: no partition rule",
                own: 1,
                size: 3,
                server_silent: 60_000,
                storage_ago: Some(800),
                heard: &[],
                welcomed: false,
                expect: None,
            },
            Row {
                name: "never welcomed, isolated: fences",
                own: 1,
                size: 3,
                server_silent: 60_000,
                storage_ago: Some(9000),
                heard: &[],
                welcomed: false,
                expect: Some("isolated"),
            },
            Row {
                name: "3|2 split of five: the two fence",
                own: 4,
                size: 5,
                server_silent: 7500,
                storage_ago: Some(800),
                heard: &[5],
                welcomed: true,
                expect: Some("minority"),
            },
            Row {
                name: "3|2 split of five: the three run",
                own: 1,
                size: 5,
                server_silent: 7500,
                storage_ago: Some(800),
                heard: &[2, 3],
                welcomed: true,
                expect: None,
            },
        ];
        for row in &rows {
            let verdict = run(row);
            let got = match &verdict {
                Verdict::KeepRunning => None,
                Verdict::FenceNow(FenceReason::Isolated { .. }) => Some("isolated"),
                Verdict::FenceNow(FenceReason::Minority { .. }) => Some("minority"),
                Verdict::FenceNow(FenceReason::TieWithoutLowestId { .. }) => Some("tie"),
            };
            assert_eq!(got, row.expect, "{}: {verdict:?}", row.name);
        }
    }

    #[test]
    fn peers_outside_the_cluster_list_do_not_count() {
        let now = 50_000;
        // A stranger heard just now does not make a side; peer 1, heard long ago, shows the channel works.
        let stranger = (id(99), now);
        let verdict = decide(&FenceInputs {
            now_ms: now,
            last_server_contact_ms: 0,
            last_storage_write_ms: Some(now),
            own_id: Some(id(2)),
            cluster_peers: &[id(1), id(3)],
            peers_heard: &[stranger, (id(1), now - 10_000)],
            timeouts: TIMEOUTS,
        });
        assert_eq!(verdict, Verdict::FenceNow(FenceReason::Minority { side: 1, cluster: 3 }));
    }

    #[test]
    fn without_a_working_peer_channel_only_the_isolation_rule_applies() {
        let peers = [id(1), id(2)];
        let verdict = |heard: &[(HostId, i64)], storage: i64| {
            decide(&FenceInputs {
                now_ms: 50_000,
                last_server_contact_ms: 0,
                last_storage_write_ms: Some(storage),
                own_id: Some(id(3)),
                cluster_peers: &peers,
                peers_heard: heard,
                timeouts: TIMEOUTS,
            })
        };
        // No peer ever heard (UDP blocked): a server outage with working storage fences nothing.
        assert_eq!(verdict(&[], 49_500), Verdict::KeepRunning);
        // Isolated all the same when the storage goes too.
        assert!(matches!(verdict(&[], 40_000), Verdict::FenceNow(FenceReason::Isolated { .. })));
        // Once one peer has been heard, the channel works and silence means a partition.
        assert_eq!(
            verdict(&[(id(1), 1_000)], 49_500),
            Verdict::FenceNow(FenceReason::Minority { side: 1, cluster: 3 })
        );
    }

    #[test]
    fn reasons_read_well() {
        let reason = FenceReason::Isolated { server_silent_ms: 7100, storage_silent_ms: None };
        assert!(reason.to_string().contains("no storage heartbeat written at all"));
        assert!(FenceReason::Minority { side: 1, cluster: 3 }.to_string().contains("1 of the cluster's 3 hosts"));
    }

    #[test]
    fn storage_is_lost_after_the_timeout_only() {
        assert!(!storage_lost(10_000, 6_000, 4000));
        assert!(storage_lost(10_001, 6_000, 4000));
    }

    #[test]
    fn the_lead_never_makes_the_deadline_negative() {
        let timeouts = FenceTimeouts { self_fence_ms: 500, lead_ms: 1000, peer_ms: 100 };
        assert_eq!(timeouts.act_after_ms(), 0);
        assert_eq!(TIMEOUTS.act_after_ms(), 7000);
    }
}
