//! The invariants, checked against the world's truth (not the engine's belief):
//!
//! 1. **No VM runs on two hosts** (after every tick, and when a guest starts).
//! 2. **No VM restarts before its host is confirmed fenced or provably self-fenced** (at every StartVm
//!    the engine decides): no powered host runs it, and if the engine last saw it occupying a host,
//!    the engine holds that host Fenced.
//! 3. **No healthy host on the majority side is fenced** (at every OFF or RESET the engine decides): a
//!    host is healthy when it is powered, its agent runs and has not fenced itself, and either its link
//!    to the servers has been up for the suspect timeout, or it writes its storage heartbeat where a
//!    host the servers hear can read it and its side of any partition is the majority.
//! 4. **Every protected VM whose capacity exists ends up running** (at the end, when every fault has
//!    been healed for long enough): no protected VM is down while a healthy host of its zone that
//!    mounts its storage and carries its tags has room for it.
//!
//! Plus the scenario's own expectations (`expectations`).

use super::world::World;
use crate::ha::decide::{Action, Decision, HaState, Millis, Observations};
use api::v1::VmState;
use std::collections::BTreeSet;

/// Faults must have been healed this long before the end for invariant 4 to be judged.
pub const SETTLE_MS: Millis = 45_000;

#[derive(Clone, Debug, Default)]
pub struct Checker {
    pub violations: Vec<String>,
    /// VMs currently seen on two hosts (reported once per episode).
    doubled: BTreeSet<usize>,
    /// The protected-VMs deadline: evaluated once.
    pub deadline: Option<Result<(), String>>,
    /// When every protected VM was last seen running again after the first fault (if one was down).
    pub all_running_at: Option<Millis>,
    some_down: bool,
    /// Invariant 4 was judged (false: faults still active or not settled).
    pub capacity_judged: bool,
}

impl Checker {
    pub fn violation(&mut self, at: Millis, message: String) {
        if self.violations.len() < 50 {
            self.violations.push(format!("{:.1}s: {message}", at as f64 / 1000.0));
        }
    }
}

/// Hosts (powered) that hold a copy of VM `vm`.
pub fn copies(world: &World, vm: usize) -> Vec<usize> {
    (0..world.hosts.len()).filter(|&h| world.hosts[h].powered && world.hosts[h].guests.contains_key(&vm)).collect()
}

/// Is VM `vm` running (booted) on exactly one host? Answers the host.
pub fn running_on(world: &World, vm: usize) -> Option<usize> {
    let copies = copies(world, vm);
    match copies.as_slice() {
        [h] if world.now >= world.hosts[*h].guests[&vm].running_from => Some(*h),
        _ => None,
    }
}

fn protectable_host(world: &World, h: usize) -> bool {
    let host = &world.hosts[h];
    host.ha && host.oobm && host.provider.is_some()
}

/// Protected VMs the engine answers for: priority restart, shared storage, placed on a host HA covers.
pub fn answerable(world: &World) -> Vec<usize> {
    (0..world.vms.len())
        .filter(|&v| world.vms[v].protected())
        .filter(|&v| world.scenario.vms[v].host.is_some())
        .filter(|&v| world.db.vms[v].host.is_none_or(|h| protectable_host(world, h)))
        .collect()
}

/// The side of any partition host `h` is on is the majority of its cluster (ties: the lowest host).
pub fn majority_side(world: &World, h: usize) -> bool {
    let cluster = world.cluster_hosts(h);
    let side: Vec<usize> = cluster
        .iter()
        .copied()
        .filter(|&other| other == h || (world.hosts[other].powered && world.peers_connected(h, other)))
        .collect();
    let n = cluster.len();
    side.len() * 2 > n || (side.len() * 2 == n && side.contains(&cluster[0]))
}

/// Invariant 3's notion of a healthy host (see the module documentation).
pub fn healthy(world: &World, h: usize) -> bool {
    let host = &world.hosts[h];
    let Some(agent) = host.agent.as_ref() else { return false };
    if !host.powered || agent.self_fenced {
        return false;
    }
    // The engine can only know what had time to reach it: an agent that just started (or a link
    // that just came up) has not been heard yet.
    let timing = &world.timing;
    let suspect = timing.suspect_after_ms;
    let up_for = world.now - agent.started_at;
    if up_for >= suspect && host.server_link_since.is_some_and(|since| world.now - since >= suspect) {
        return true;
    }
    if up_for < timing.storage_timeout_ms + 2 * timing.heartbeat_interval_ms {
        return false;
    }
    let witnessed = host.storage.iter().any(|&s| {
        world.can_write(h, s)
            && (0..world.hosts.len()).any(|o| {
                o != h
                    && world.hosts[o].powered
                    && world.hosts[o].agent.is_some()
                    && world.reaches_servers(o)
                    && world.hosts[o].storage.contains(&s)
                    && world.can_write(o, s)
            })
    });
    witnessed && majority_side(world, h)
}

pub fn on_guest_start(world: &mut World, vm: usize, h: usize) {
    let others: Vec<usize> = copies(world, vm).into_iter().filter(|&other| other != h).collect();
    if !others.is_empty() {
        let names: Vec<String> = others.iter().map(|&o| world.hosts[o].name.clone()).collect();
        let message = format!(
            "VM {} starts on {} while it runs on {}: two copies",
            world.vms[vm].name,
            world.hosts[h].name,
            names.join(", ")
        );
        let now = world.now;
        world.checker.violation(now, message);
    }
}

/// Invariants 2 and 3, at each engine decision.
pub fn on_decision(world: &mut World, observations: &Observations, decision: &Decision) {
    let now = world.now;
    for action in &decision.actions {
        match action {
            Action::StartVm { vm, host, .. } => {
                let Some(v) = world.vm_by_id(*vm) else { continue };
                let target = world.host_by_id(*host).map_or_else(|| host.to_string(), |h| world.hosts[h].name.clone());
                let copies = copies(world, v);
                if !copies.is_empty() {
                    let names: Vec<String> = copies.iter().map(|&h| world.hosts[h].name.clone()).collect();
                    let message = format!(
                        "StartVm {} on {target} while it still runs on {}: restart before its host was fenced",
                        world.vms[v].name,
                        names.join(", ")
                    );
                    world.checker.violation(now, message);
                    continue;
                }
                let Some(seen) = observations.vms.iter().find(|seen| seen.id == *vm) else { continue };
                let occupying = matches!(
                    seen.state,
                    VmState::Running | VmState::Starting | VmState::Stopping | VmState::Migrating | VmState::Unknown
                );
                if occupying && let Some(old) = seen.host {
                    let fenced = decision.state.hosts.get(&old).is_some_and(|record| record.state == HaState::Fenced);
                    if !fenced {
                        let old_name =
                            world.host_by_id(old).map_or_else(|| old.to_string(), |h| world.hosts[h].name.clone());
                        let message = format!(
                            "StartVm {} on {target} while the engine last saw it {:?} on {old_name}, which it does not hold Fenced",
                            world.vms[v].name, seen.state
                        );
                        world.checker.violation(now, message);
                    }
                }
            }
            Action::FencePowerOff { host, .. } | Action::Reset { host, .. } => {
                let Some(h) = world.host_by_id(*host) else { continue };
                if healthy(world, h) {
                    let message = format!(
                        "{} of {}, a healthy host on the majority side",
                        if matches!(action, Action::Reset { .. }) { "RESET" } else { "OFF" },
                        world.hosts[h].name
                    );
                    world.checker.violation(now, message);
                }
            }
            _ => {}
        }
    }
}

/// Invariant 1 and the deadline bookkeeping, after every tick.
pub fn after_tick(world: &mut World) {
    let now = world.now;
    // Which powered hosts hold each VM, and whether it has booted there: one pass over the guests.
    let mut holders: Vec<Vec<usize>> = vec![Vec::new(); world.vms.len()];
    let mut booted = vec![false; world.vms.len()];
    for (h, host) in world.hosts.iter().enumerate().filter(|(_, host)| host.powered) {
        for (&vm, guest) in &host.guests {
            holders[vm].push(h);
            booted[vm] = now >= guest.running_from;
        }
    }
    for (v, copies) in holders.iter().enumerate() {
        if copies.len() > 1 {
            if world.checker.doubled.insert(v) {
                let names: Vec<String> = copies.iter().map(|&h| world.hosts[h].name.clone()).collect();
                let message = format!("VM {} runs on {} hosts: {}", world.vms[v].name, copies.len(), names.join(", "));
                world.checker.violation(now, message);
            }
        } else {
            world.checker.doubled.remove(&v);
        }
    }
    let Some(first) = world.first_fault_at else { return };
    let down: Vec<usize> = answerable(world).into_iter().filter(|&v| !(holders[v].len() == 1 && booted[v])).collect();
    if down.is_empty() {
        if world.checker.some_down {
            world.checker.some_down = false;
            world.checker.all_running_at = Some(now);
            world.log(format!("all protected VMs run ({:.1} s after the first fault)", (now - first) as f64 / 1000.0));
        }
    } else {
        world.checker.some_down = true;
        world.checker.all_running_at = None;
    }
    if let Some(within) = world.scenario.expect.protected_running_within_s
        && world.checker.deadline.is_none()
        && now >= first + (within * 1000.0).round() as Millis
    {
        let result = if down.is_empty() {
            Ok(())
        } else {
            let names: Vec<String> = down.iter().map(|&v| world.vms[v].name.clone()).collect();
            Err(format!("protected VMs not running {within} s after the first fault: {}", names.join(", ")))
        };
        world.checker.deadline = Some(result);
    }
}

/// Is the world free of faults (what invariant 4 needs to be judged)?
pub fn healed(world: &World) -> bool {
    world.partition.is_none()
        && world.scheduled.is_empty()
        && world.hosts.iter().all(|host| {
            !host.cut_from_servers
                && !host.uplink_cut
                && !host.downlink_cut
                && !host.cut_from_peers
                && !host.hb_loss
                && host.bmc == super::format::BmcMode::Ok
                && (!host.powered || host.agent.is_some())
        })
        && world.storages.iter().all(|storage| storage.up)
        && world.servers.iter().any(|server| server.up)
        && world.now - world.last_fault_at >= SETTLE_MS
}

/// Invariant 4, at the end.
pub fn at_end(world: &mut World) {
    if !healed(world) {
        return;
    }
    world.checker.capacity_judged = true;
    let now = world.now;
    for v in answerable(world) {
        if !copies(world, v).is_empty() {
            continue;
        }
        let vm = world.vms[v].clone();
        let Some(storage) = vm.storage else { continue };
        let room = (0..world.hosts.len()).find(|&h| {
            let host = &world.hosts[h];
            let zone = world.zones.iter().position(|zone| *zone == world.scenario.all_clusters()[host.cluster].zone);
            let (used_memory, used_cpu) = host
                .guests
                .keys()
                .fold((0u64, 0u64), |(m, c), &other| (m + world.vms[other].memory_mb, c + world.vms[other].cpu_mhz));
            host.powered
                && host.agent.is_some()
                && world.reaches_servers(h)
                && !world.db.hosts[h].maintenance
                && host.storage.contains(&storage)
                && vm.host_tags.iter().all(|tag| host.tags.contains(tag))
                && zone == Some(vm.zone)
                && host.memory_mb >= used_memory + vm.memory_mb
                && host.cpu_mhz >= used_cpu + vm.cpu_mhz
        });
        if let Some(h) = room {
            let message =
                format!("protected VM {} is not running although {} has room for it", vm.name, world.hosts[h].name);
            world.checker.violation(now, message);
        }
    }
}

/// The scenario's expected outcome, as a list of what did not hold.
pub fn expectations(world: &World) -> Vec<String> {
    let expect = &world.scenario.expect;
    let mut failures = Vec::new();
    let vm_index = |name: &str| world.vms.iter().position(|vm| vm.name == name).expect("checked");
    let where_runs = |v: usize| running_on(world, v).map_or("nowhere".to_owned(), |h| world.hosts[h].name.clone());
    for (vm, host) in &expect.running_on {
        let v = vm_index(vm);
        if running_on(world, v).map(|h| world.hosts[h].name.as_str()) != Some(host.as_str()) {
            failures.push(format!("{vm} should run on {host}; it runs {}", where_runs(v)));
        }
    }
    for vm in &expect.running {
        if running_on(world, vm_index(vm)).is_none() {
            failures.push(format!("{vm} should run; it does not"));
        }
    }
    for vm in &expect.stopped {
        let v = vm_index(vm);
        if !copies(world, v).is_empty() {
            failures.push(format!("{vm} should not run; it runs on {}", where_runs(v)));
        }
    }
    let fenced: BTreeSet<String> = world.stats.fenced_hosts.iter().map(|&h| world.hosts[h].name.clone()).collect();
    if let Some(expected) = &expect.fenced {
        let expected: BTreeSet<String> = expected.iter().cloned().collect();
        if fenced != expected {
            failures.push(format!("fenced hosts should be {expected:?}; they are {fenced:?}"));
        }
    }
    if let Some(max) = expect.max_fences
        && world.stats.fences > max
    {
        failures.push(format!("at most {max} fence(s) expected; there were {}", world.stats.fences));
    }
    if let Some(max) = expect.max_power_offs
        && world.stats.power_offs > max
    {
        failures.push(format!("at most {max} OFF command(s) expected; there were {}", world.stats.power_offs));
    }
    for (host, state) in &expect.host_states {
        let h = world.host_index(host);
        let actual = world.ha_state(h).map_or("none".to_owned(), |state| state.name().to_owned());
        if actual != *state {
            failures.push(format!("{host} should end {state}; it is {actual}"));
        }
    }
    for (host, reason) in &expect.ineligible {
        let h = world.host_index(host);
        match world.ha_state(h) {
            Some(HaState::Ineligible(why)) if why.as_str() == reason => {}
            other => failures.push(format!("{host} should be Ineligible ({reason}); it is {other:?}")),
        }
    }
    if expect.protected_running_within_s.is_some() {
        match &world.checker.deadline {
            Some(Ok(())) => {}
            Some(Err(message)) => failures.push(message.clone()),
            None => failures.push("the deadline was never reached (no fault, or the run is too short)".into()),
        }
    }
    for kind in &expect.alerts {
        if !world.stats.alerts.contains(kind) {
            failures.push(format!("alert {kind} should have been raised"));
        }
    }
    for kind in &expect.no_alerts {
        if world.stats.alerts.contains(kind) {
            failures.push(format!("alert {kind} should not have been raised"));
        }
    }
    if let Some(expected) = &expect.restart_failed {
        let expected: BTreeSet<String> = expected.iter().cloned().collect();
        let actual: BTreeSet<String> =
            world.stats.restart_failed_vms.iter().map(|&v| world.vms[v].name.clone()).collect();
        if actual != expected {
            failures.push(format!("vm-restart-failed should be raised for {expected:?}; it was for {actual:?}"));
        }
    }
    for order in &expect.order {
        let (first, then) = (vm_index(&order.first), vm_index(&order.then));
        match (world.stats.first_start_at.get(&first), world.stats.first_start_at.get(&then)) {
            (Some(a), Some(b)) if *b - *a >= (order.min_gap_s * 1000.0).round() as Millis => {}
            (a, b) => failures.push(format!(
                "{} should start at least {} s before {} (started at {:?} and {:?} ms)",
                order.first, order.min_gap_s, order.then, a, b
            )),
        }
    }
    if let Some(min) = expect.min_refused_commands
        && world.stats.refused_commands < min
    {
        failures
            .push(format!("at least {min} stale command(s) should be refused; {} were", world.stats.refused_commands));
    }
    failures
}
