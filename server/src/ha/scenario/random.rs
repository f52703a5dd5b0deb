//! Seeded random scenarios: a pool (one or two clusters in one zone, 2 to 5 hosts each, VMs of every
//! priority, some on local storage, start orders) and 1 to 5 faults of every kind (one-way cuts too)
//! within the first 50 s, then every fault healed at 60 s and 60 s to settle, so that invariant 4 is
//! judged too.
//! The same seed always gives the same scenario (and, the world being deterministic, the same run).

use super::format::{
    BmcMode, ClusterSpec, CutDirection, EngineSettings, Expect, Fault, FaultKind, HostSpec, Scenario, StorageSpec,
    VmSpec,
};
use crate::ha::decide::Timing;
use api::v1::RestartPriority;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// When every fault is healed.
pub const HEAL_AT_S: f64 = 60.0;
pub const DURATION_S: f64 = 120.0;

pub fn generate(seed: u64) -> Scenario {
    let mut rng = StdRng::seed_from_u64(seed);
    let cluster_count = if rng.gen_bool(0.3) { 2 } else { 1 };
    let mut clusters = Vec::new();
    let mut storage = Vec::new();
    let mut hosts = Vec::new();
    let mut vms = Vec::new();
    for c in 0..cluster_count {
        let cluster = format!("c{}", c + 1);
        let nfs = format!("nfs{}", c + 1);
        clusters.push(ClusterSpec { name: cluster.clone(), zone: "z1".into() });
        storage.push(StorageSpec { name: nfs.clone() });
        let host_count = rng.gen_range(2..=5);
        let first = hosts.len();
        for h in 0..host_count {
            hosts.push(HostSpec {
                name: format!("{cluster}h{}", h + 1),
                cluster: cluster.clone(),
                memory_mb: rng.gen_range(4..=8) * 1024,
                cpu_mhz: 32000,
                storage: Some(vec![nfs.clone()]),
                tags: Vec::new(),
                oobm: true,
                provider: "sim".into(),
                ha: true,
                maintenance: false,
                off: false,
            });
        }
        for v in 0..rng.gen_range(1..=3 * host_count) {
            let host = first + rng.gen_range(0..host_count);
            let memory = rng.gen_range(1..=3) * 512;
            let used: u64 = vms
                .iter()
                .filter(|vm: &&VmSpec| vm.host.as_deref() == Some(hosts[host].name.as_str()))
                .map(|vm| vm.memory_mb)
                .sum();
            if used + memory > hosts[host].memory_mb {
                continue;
            }
            let priority = match rng.gen_range(0..10) {
                0..=5 => RestartPriority::Restart,
                6..=7 => RestartPriority::BestEffort,
                _ => RestartPriority::DoNotRestart,
            };
            vms.push(VmSpec {
                name: format!("{cluster}v{}", v + 1),
                host: Some(hosts[host].name.clone()),
                memory_mb: memory,
                cpu_mhz: 1000,
                priority,
                storage: None,
                local: rng.gen_bool(0.1),
                start_order: rng.gen_range(0..=2),
                start_delay_s: if rng.gen_bool(0.2) { rng.gen_range(1..=3) } else { 0 },
                host_tags: Vec::new(),
                boot_ms: rng.gen_range(2..=10) * 100,
            });
        }
    }
    let servers = rng.gen_range(1..=3);
    let host_names: Vec<String> = hosts.iter().map(|host| host.name.clone()).collect();
    let storage_names: Vec<String> = storage.iter().map(|storage| storage.name.clone()).collect();
    let mut faults = Vec::new();
    for _ in 0..rng.gen_range(1..=5) {
        let at_s = f64::from(rng.gen_range(50..=500)) / 10.0;
        let host = host_names[rng.gen_range(0..host_names.len())].clone();
        let duration = |rng: &mut StdRng| Some(f64::from(rng.gen_range(10..=200)) / 10.0);
        let kind = match rng.gen_range(0..14) {
            0 | 1 => FaultKind::PowerLoss { host },
            2 => FaultKind::AgentCrash { host },
            3 if rng.gen_bool(0.3) => {
                let direction = if rng.gen_bool(0.5) { CutDirection::ToServers } else { CutDirection::FromServers };
                FaultKind::OneWayCut { host, direction, duration_s: duration(&mut rng) }
            }
            3 => FaultKind::NetCut { host, peers: rng.gen_bool(0.5), duration_s: duration(&mut rng) },
            4 => {
                FaultKind::Blip { host, duration_s: f64::from(rng.gen_range(10..=40)) / 10.0, peers: rng.gen_bool(0.3) }
            }
            5 => {
                let mut groups = vec![Vec::new(), Vec::new()];
                for name in &host_names {
                    groups[usize::from(rng.gen_bool(0.5))].push(name.clone());
                }
                groups.retain(|group| !group.is_empty());
                let servers_with = if rng.gen_bool(0.8) { Some(rng.gen_range(0..groups.len())) } else { None };
                FaultKind::Partition { groups, servers_with, duration_s: duration(&mut rng) }
            }
            6 => FaultKind::StorageHbLoss { host, duration_s: duration(&mut rng) },
            7 => FaultKind::StorageDown {
                storage: storage_names[rng.gen_range(0..storage_names.len())].clone(),
                duration_s: duration(&mut rng),
            },
            8 | 9 => FaultKind::Bmc {
                host,
                state: if rng.gen_bool(0.5) { BmcMode::Unreachable } else { BmcMode::WrongPassword },
            },
            10 => FaultKind::ServerCrash {
                server: rng.gen_range(1..=servers),
                lose_actions: rng.gen_bool(0.7),
                restart_after_s: if rng.gen_bool(0.7) { Some(f64::from(rng.gen_range(10..=100)) / 10.0) } else { None },
            },
            11 => FaultKind::ServerPause {
                server: rng.gen_range(1..=servers),
                duration_s: f64::from(rng.gen_range(10..=80)) / 10.0,
            },
            12 => FaultKind::PowerOn { host },
            _ => FaultKind::AgentRestart { host },
        };
        faults.push(Fault { at_s, kind });
    }
    // Heal everything, bring every server back, end maintenance, and let it settle.
    let heal = |kind: FaultKind| Fault { at_s: HEAL_AT_S, kind };
    faults.push(heal(FaultKind::HealPartition));
    for host in &host_names {
        faults.push(heal(FaultKind::NetHeal { host: host.clone() }));
        faults.push(heal(FaultKind::StorageHbRestore { host: host.clone() }));
        faults.push(heal(FaultKind::Bmc { host: host.clone(), state: BmcMode::Ok }));
        faults.push(heal(FaultKind::AgentRestart { host: host.clone() }));
        faults.push(Fault { at_s: HEAL_AT_S + 10.0, kind: FaultKind::EndMaintenance { host: host.clone() } });
    }
    for storage in &storage_names {
        faults.push(heal(FaultKind::StorageUp { storage: storage.clone() }));
    }
    for server in 1..=servers {
        faults.push(heal(FaultKind::ServerStart { server }));
    }
    Scenario {
        name: format!("random seed {seed}"),
        description: "generated".into(),
        duration_s: DURATION_S,
        timing: Timing::default(),
        engine: EngineSettings { servers, ..EngineSettings::default() },
        ha_tag: None,
        clusters,
        storage,
        hosts,
        vms,
        faults,
        expect: Expect::default(),
    }
}
