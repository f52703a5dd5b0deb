//! The runtime's part in the simulated world: management servers with a leader lease, the engine step
//! (observations from the shared database, `decide`, the state stored as JSON, actions executed), BMC
//! calls and agent commands in flight, heartbeats and inventories arriving.
//!
//! A server that crashes loses its in-flight results; with `lose_actions` it crashes right after storing
//! a step's state and before executing that step's actions, the worst moment. A paused server resumes
//! with its old epoch and executes the actions it had decided: agents refuse the stale commands, and it
//! sends no BMC command once its lease has expired by its own clock.

use super::format::BmcMode;
use super::invariants;
use super::world::{COMMAND_LATENCY_MS, Tamper, World};
use crate::ha::decide::{
    self, Action, ClusterObservation, EngineState, HostObservation, Millis, Observations, OobmAction, OobmObservation,
    OobmOutcome, OobmResult, StartOutcome, StartResult, StopCause, StorageSighting, StorageWrite, VmObservation,
};
use api::v1::{OobmErrorKind, PowerState, VmState};

#[derive(Clone, Debug, Default)]
pub struct Server {
    pub up: bool,
    pub paused_until: Option<Millis>,
    /// Crash after storing the next step's state (true: before executing its actions).
    pub crash_pending: Option<bool>,
    /// Results that arrived since this server's last step.
    pub oobm_results: Vec<OobmResult>,
    pub start_results: Vec<StartResult>,
    /// The epoch this server believes it leads with, and until when (its own view of the lease).
    pub epoch: Option<u64>,
    pub lease_until: Millis,
    /// Actions decided just before a pause, executed when it resumes.
    pub delayed: Vec<Action>,
    /// Stall for this long right after storing the next step (before executing its actions).
    pub pause_next: Option<Millis>,
    pub next_step: Millis,
}

impl Server {
    pub fn new() -> Server {
        Server { up: true, ..Default::default() }
    }
}

/// An operation in flight.
#[derive(Clone, Debug)]
pub struct Pending {
    pub due: Millis,
    pub server: usize,
    pub op: Op,
}

#[derive(Clone, Debug)]
pub enum Op {
    Bmc { host: usize, action: OobmAction, attempt: u32 },
    Start { vm: usize, host: usize, generation: i64, epoch: u64 },
    StartAnswer { vm: usize, host: usize, generation: i64, outcome: StartOutcome },
}

pub fn any_server_up(world: &World) -> bool {
    world.servers.iter().any(|server| server.up && server.paused_until.is_none())
}

pub fn crash(world: &mut World, s: usize, lose_actions: bool) {
    if !world.servers[s].up {
        return;
    }
    if world.db.lease_holder == Some(s) {
        world.servers[s].crash_pending = Some(lose_actions);
        world.log(format!("management server {} will crash at its next step (the leader)", s + 1));
    } else {
        down(world, s);
    }
}

fn down(world: &mut World, s: usize) {
    let server = &mut world.servers[s];
    *server = Server::default();
    world.log(format!("management server {} crashes", s + 1));
}

pub fn start(world: &mut World, s: usize) {
    if world.servers[s].up {
        return;
    }
    world.servers[s] = Server::new();
    world.log(format!("management server {} starts", s + 1));
}

pub fn pause(world: &mut World, s: usize, duration: Millis) {
    if !world.servers[s].up {
        return;
    }
    world.servers[s].pause_next = Some(duration);
}

/// A heartbeat from host `h` arrives: liveness, storage report, inventory, epoch acknowledgement.
pub fn deliver_heartbeat(world: &mut World, h: usize, acknowledged: bool) {
    let now = world.now;
    let epoch = world.db.lease_epoch;
    let host = &mut world.hosts[h];
    let Some(agent) = host.agent.as_mut() else { return };
    // The server records the heartbeat, then acknowledges it: contact for the agent only if the ack
    // gets back (as of the heartbeat's sending, which is now).
    if acknowledged {
        agent.last_server_ok = now;
        agent.max_epoch = agent.max_epoch.max(epoch);
        if agent.self_fenced {
            agent.self_fenced = false;
            let name = host.name.clone();
            world.log(format!("{name}: agent reaches a server again (self-fence flag cleared)"));
        }
    }
    let agent = world.hosts[h].agent.as_ref().expect("present");
    let db = &mut world.db.hosts[h];
    db.last_heartbeat = Some(now);
    db.readings = agent.readings.clone();
    db.writes = agent.writes.clone();
    deliver_inventory(world, h);
}

/// The agent's complete inventory arrives: the database follows it for the VMs placed there.
pub fn deliver_inventory(world: &mut World, h: usize) {
    let now = world.now;
    let in_flight: Vec<(usize, i64)> = (0..world.vms.len())
        .filter_map(|vm| {
            let record = &world.db.vms[vm];
            (record.host == Some(h) && start_in_flight(world, vm, h, record.generation))
                .then_some((vm, record.generation))
        })
        .collect();
    let Some(agent) = world.hosts[h].agent.as_ref() else { return };
    for (vm, record) in world.db.vms.iter_mut().enumerate() {
        if record.host != Some(h) {
            continue;
        }
        // A start still on its way to this agent is not judged by its inventory.
        let received = agent.generations.get(&vm).is_some_and(|known| *known >= record.generation);
        if record.state == VmState::Starting && !received && in_flight.contains(&(vm, record.generation)) {
            continue;
        }
        match world.hosts[h].guests.get(&vm) {
            Some(guest) if guest.generation == record.generation => {
                record.state = if now >= guest.running_from { VmState::Running } else { VmState::Starting };
                record.stop_cause = None;
            }
            _ => {
                if record.state != VmState::Stopped {
                    record.state = VmState::Stopped;
                    // Not stopped by the agent on purpose: the host lost it (reset, reboot, crash).
                    record.stop_cause = Some(agent.stop_causes.get(&vm).copied().unwrap_or(StopCause::Crashed));
                }
            }
        }
    }
}

/// Finishes the operations whose time has come.
pub fn complete_pending(world: &mut World) {
    let now = world.now;
    let due: Vec<Pending> = world.pending.iter().filter(|pending| pending.due <= now).cloned().collect();
    world.pending.retain(|pending| pending.due > now);
    for pending in due {
        match pending.op {
            Op::Bmc { host, action, attempt } => bmc_done(world, pending.server, host, action, attempt),
            Op::Start { vm, host, generation, epoch } => {
                command_arrives(world, pending.server, vm, host, generation, epoch)
            }
            Op::StartAnswer { vm, host, generation, outcome } => {
                // The runtime records a start the agent answered it does not run as stopped.
                let record = &mut world.db.vms[vm];
                if matches!(outcome, StartOutcome::Failed { .. })
                    && record.host == Some(host)
                    && record.generation == generation
                {
                    record.state = VmState::Stopped;
                    record.stop_cause = None;
                }
                let server = &mut world.servers[pending.server];
                if server.up {
                    server.start_results.push(StartResult {
                        vm: world.vms[vm].id,
                        host: world.hosts[host].id,
                        generation,
                        at_ms: now,
                        outcome,
                    });
                }
            }
        }
    }
}

fn bmc_done(world: &mut World, s: usize, h: usize, action: OobmAction, attempt: u32) {
    let now = world.now;
    let outcome = match world.hosts[h].bmc {
        BmcMode::Unreachable => {
            OobmOutcome::Failed { kind: OobmErrorKind::Unreachable, message: "no answer from the BMC".into() }
        }
        BmcMode::WrongPassword => {
            OobmOutcome::Failed { kind: OobmErrorKind::Auth, message: "the BMC refused the credentials".into() }
        }
        BmcMode::Ok => match action {
            OobmAction::PowerOff => {
                world.power_off(h, "OOBM OFF");
                OobmOutcome::Done
            }
            OobmAction::PowerStatus => {
                OobmOutcome::Power { power: if world.hosts[h].powered { PowerState::On } else { PowerState::Off } }
            }
            OobmAction::Reset => {
                if world.hosts[h].powered {
                    world.hosts[h].guests.clear();
                    world.hosts[h].agent = None;
                    world.hosts[h].watchdog_deadline = None;
                    world.hosts[h].boot_until = Some(now + world.scenario.engine.boot_ms);
                    let name = world.hosts[h].name.clone();
                    world.log(format!("{name}: OOBM RESET: reboots"));
                }
                OobmOutcome::Done
            }
        },
    };
    let server = &mut world.servers[s];
    if server.up {
        server.oobm_results.push(OobmResult { host: world.hosts[h].id, action, attempt, at_ms: now, outcome });
    }
}

/// A StartVm command reaches host `h`'s agent (if it can).
fn command_arrives(world: &mut World, s: usize, vm: usize, h: usize, generation: i64, epoch: u64) {
    let now = world.now;
    // Modelled as needing both directions (the command in, its answer out).
    let reachable =
        world.reaches_servers(h) && world.hears_servers(h) && world.hosts[h].powered && world.hosts[h].agent.is_some();
    if !reachable {
        // The hub knows the command was not delivered: the agent never got it.
        answer(world, s, vm, h, generation, StartOutcome::Failed { reason: "host not connected".into() });
        return;
    }
    let def = world.vms[vm].clone();
    let free_memory = world.hosts[h]
        .memory_mb
        .saturating_sub(world.hosts[h].guests.keys().map(|&other| world.vms[other].memory_mb).sum::<u64>());
    let storage_ok =
        def.storage.is_none_or(|storage| world.storages[storage].up && world.hosts[h].storage.contains(&storage));
    let agent = world.hosts[h].agent.as_mut().expect("checked");
    let known = agent.generations.get(&vm).copied().unwrap_or(0);
    let outcome = if epoch < agent.max_epoch {
        world.stats.refused_commands += 1;
        StartOutcome::Refused { reason: format!("epoch {epoch} is older than {}", agent.max_epoch) }
    } else if generation < known {
        world.stats.refused_commands += 1;
        StartOutcome::Refused { reason: format!("generation {generation} is older than {known}") }
    } else {
        agent.max_epoch = epoch;
        agent.generations.insert(vm, generation);
        if world.hosts[h].guests.contains_key(&vm) {
            StartOutcome::Done
        } else if free_memory < def.memory_mb {
            StartOutcome::Failed { reason: format!("not enough memory ({free_memory} MB free)") }
        } else if !storage_ok {
            StartOutcome::Failed { reason: "its storage is not available here".into() }
        } else {
            invariants::on_guest_start(world, vm, h);
            world.hosts[h].guests.insert(vm, super::world::Guest { generation, running_from: now + def.boot_ms });
            if let Some(agent) = world.hosts[h].agent.as_mut() {
                agent.stop_causes.remove(&vm);
            }
            StartOutcome::Done
        }
    };
    if let StartOutcome::Refused { reason } = &outcome {
        let text = format!("{}: agent refuses StartVm {} ({reason})", world.hosts[h].name, def.name);
        world.log(text);
    }
    answer(world, s, vm, h, generation, outcome);
    deliver_inventory(world, h);
}

fn answer(world: &mut World, s: usize, vm: usize, h: usize, generation: i64, outcome: StartOutcome) {
    world.pending.push(Pending {
        due: world.now + COMMAND_LATENCY_MS,
        server: s,
        op: Op::StartAnswer { vm, host: h, generation, outcome },
    });
}

/// Lease handling and engine steps of every server.
pub fn servers_tick(world: &mut World, tamper: Tamper<'_>) {
    let now = world.now;
    for s in 0..world.servers.len() {
        if !world.servers[s].up {
            continue;
        }
        if let Some(until) = world.servers[s].paused_until {
            if now < until {
                continue;
            }
            world.servers[s].paused_until = None;
            let delayed = std::mem::take(&mut world.servers[s].delayed);
            let epoch = world.servers[s].epoch.unwrap_or(0);
            world.log(format!(
                "management server {} resumes and sends {} stale command(s) (epoch {epoch})",
                s + 1,
                delayed.len()
            ));
            for action in delayed {
                execute(world, s, epoch, &action);
            }
        }
        if now < world.servers[s].next_step {
            continue;
        }
        world.servers[s].next_step = now + world.scenario.engine.step_ms;
        // Lease: renew ours, or take an expired one (epoch + 1).
        let lease_ms = world.scenario.engine.lease_ms;
        let holder = world.db.lease_holder;
        if holder == Some(s) && now < world.db.lease_expires {
            world.db.lease_expires = now + lease_ms;
        } else if holder.is_none() || now >= world.db.lease_expires {
            world.db.lease_holder = Some(s);
            world.db.lease_epoch += 1;
            world.db.lease_expires = now + lease_ms;
            world.stats.leader_changes += 1;
            let epoch = world.db.lease_epoch;
            world.log(format!(
                "management server {} takes the leader lease (epoch {epoch}) and resumes from the stored state",
                s + 1
            ));
            world.servers[s].oobm_results.clear();
            world.servers[s].start_results.clear();
        } else {
            world.servers[s].epoch = None;
            continue;
        }
        world.servers[s].epoch = Some(world.db.lease_epoch);
        world.servers[s].lease_until = world.db.lease_expires;
        step(world, s, tamper);
    }
}

/// One engine step on server `s`.
fn step(world: &mut World, s: usize, tamper: Tamper<'_>) {
    let now = world.now;
    let previous: EngineState = if world.db.engine_state_writer == Some(s) {
        world.db.engine_state.clone()
    } else {
        // Another server wrote it: load it as the runtime does, from its JSON.
        let json = serde_json::to_string(&world.db.engine_state).expect("the engine state serializes");
        match serde_json::from_str::<EngineState>(&json) {
            Ok(state) if state == world.db.engine_state => state,
            Ok(_) => {
                world.checker.violation(now, "the engine state changes through JSON".into());
                world.db.engine_state.clone()
            }
            Err(error) => {
                world.checker.violation(now, format!("the stored engine state does not load: {error}"));
                EngineState::default()
            }
        }
    };
    let observations = observe(world, s);
    let mut decision = decide::decide(&previous, &observations, now);
    tamper(world, &mut decision);
    world.stats.steps += 1;
    invariants::on_decision(world, &observations, &decision);
    // One transaction: the state and the step's records (transitions, incident events, alerts, VMs
    // recorded stopped, maintenance). The commands (BMC, agents) follow it.
    world.db.engine_state = decision.state.clone();
    world.db.engine_state_writer = Some(s);
    let epoch = world.db.lease_epoch;
    let (records, commands): (Vec<Action>, Vec<Action>) = decision.actions.into_iter().partition(is_record);
    for action in &records {
        execute(world, s, epoch, action);
    }
    for action in &commands {
        move_record(world, action);
    }
    if let Some(lose_commands) = world.servers[s].crash_pending {
        if lose_commands {
            world.log(format!(
                "management server {} crashes after storing its step, before sending {} command(s)",
                s + 1,
                commands.len()
            ));
        } else {
            for action in &commands {
                execute(world, s, epoch, action);
            }
        }
        down(world, s);
        return;
    }
    if let Some(duration) = world.servers[s].pause_next.take() {
        world.servers[s].paused_until = Some(now + duration);
        world.log(format!(
            "management server {} stalls for {} s before sending {} command(s) (epoch {epoch})",
            s + 1,
            duration as f64 / 1000.0,
            commands.len()
        ));
        world.servers[s].delayed = commands;
        return;
    }
    for action in &commands {
        execute(world, s, epoch, action);
    }
}

/// What the engine sees: built from the shared database and this server's results.
fn observe(world: &mut World, s: usize) -> Observations {
    let now = world.now;
    let timing = world.timing.clone();
    let clusters = world
        .clusters
        .iter()
        .map(|(id, zone, name)| ClusterObservation { id: *id, zone: *zone, name: name.clone(), timing: timing.clone() })
        .collect();
    let mut hosts = Vec::new();
    for (h, host) in world.hosts.iter().enumerate() {
        let db = &world.db.hosts[h];
        let mut storage_seen = Vec::new();
        for (o, observer) in world.db.hosts.iter().enumerate() {
            if o == h {
                continue;
            }
            for ((storage, target), reading) in &observer.readings {
                if *target == h {
                    storage_seen.push(StorageSighting {
                        observer: world.hosts[o].id,
                        storage: world.storages[*storage].id,
                        counter: reading.counter,
                        advanced_at_ms: reading.advanced_at,
                        read_at_ms: reading.read_at,
                        self_fenced: reading.self_fenced,
                        running_vms: reading.running_vms,
                    });
                }
            }
        }
        let (cluster_id, zone_id, _) = world.clusters[host.cluster];
        hosts.push(HostObservation {
            id: host.id,
            name: host.name.clone(),
            cluster: cluster_id,
            zone: zone_id,
            ha_disabled: (!host.ha).then(|| "HA is off for the host".to_owned()),
            provider: host.provider,
            maintenance: db.maintenance,
            accepts_vms: true,
            oobm: OobmObservation {
                configured: host.oobm,
                enabled: host.oobm,
                power: PowerState::Unknown,
                power_read_at_ms: None,
            },
            last_heartbeat_ms: db.last_heartbeat,
            memory_mb: host.memory_mb,
            cpu_mhz: host.cpu_mhz,
            tags: host.tags.clone(),
            shared_storage: host.storage.iter().map(|&storage| world.storages[storage].id).collect(),
            storage_seen,
            storage_writes: db
                .writes
                .iter()
                .map(|(storage, (ok, at))| StorageWrite { storage: world.storages[*storage].id, ok: *ok, at_ms: *at })
                .collect(),
        });
    }
    let vms = world
        .vms
        .iter()
        .enumerate()
        .map(|(v, vm)| {
            let record = &world.db.vms[v];
            let silent = record
                .host
                .is_none_or(|h| world.db.hosts[h].last_heartbeat.is_none_or(|at| now - at > timing.suspect_after_ms));
            let state = if record.host.is_some() && silent && record.state != VmState::Stopped {
                VmState::Unknown
            } else {
                record.state
            };
            VmObservation {
                id: vm.id,
                name: vm.name.clone(),
                host: record.host.map(|h| world.hosts[h].id),
                state,
                stop_cause: record.stop_cause,
                generation: record.generation,
                priority: vm.priority,
                start_order: vm.start_order,
                start_delay_s: vm.start_delay_s,
                memory_mb: vm.memory_mb,
                cpu_mhz: vm.cpu_mhz,
                shared_storage: vm.storage.is_some(),
                storage: vm.storage.map(|storage| world.storages[storage].id).into_iter().collect(),
                host_tags: vm.host_tags.clone(),
            }
        })
        .collect();
    let server = &mut world.servers[s];
    Observations {
        clusters,
        hosts,
        vms,
        ha_tag: world.scenario.ha_tag.clone(),
        oobm_results: std::mem::take(&mut server.oobm_results),
        start_results: std::mem::take(&mut server.start_results),
    }
}

/// The database part of a StartVm, written with the step's state: the VM's record moves to the new
/// host and generation (compare-and-set: never back to an older generation).
fn move_record(world: &mut World, action: &Action) {
    let Action::StartVm { vm, host, generation, .. } = action else { return };
    let (Some(v), Some(h)) = (world.vm_by_id(*vm), world.host_by_id(*host)) else { return };
    let record = &mut world.db.vms[v];
    if *generation > record.generation {
        record.host = Some(h);
        record.generation = *generation;
        record.state = VmState::Starting;
        record.stop_cause = None;
    }
}

/// Is a StartVm of `vm` on `host` under `generation` still to be delivered (in flight, or held by a
/// stalled server)? The runtime does not judge such a VM by the host's inventory.
pub fn start_in_flight(world: &World, vm: usize, host: usize, generation: i64) -> bool {
    let pending = world.pending.iter().any(|pending| {
        matches!(pending.op, Op::Start { vm: v, host: h, generation: g, .. } if v == vm && h == host && g == generation)
    });
    let (vm_id, host_id) = (world.vms[vm].id, world.hosts[host].id);
    pending
        || world.servers.iter().any(|server| {
            server.delayed.iter().any(|action| {
                matches!(action, Action::StartVm { vm, host, generation: g, .. } if *vm == vm_id && *host == host_id && *g == generation)
            })
        })
}

/// Actions that are database writes, stored in the same transaction as the step's state.
fn is_record(action: &Action) -> bool {
    !matches!(
        action,
        Action::FencePowerOff { .. } | Action::PowerStatus { .. } | Action::Reset { .. } | Action::StartVm { .. }
    )
}

/// Executes one action as the runtime would.
fn execute(world: &mut World, s: usize, epoch: u64, action: &Action) {
    let now = world.now;
    let lease_valid = now < world.servers[s].lease_until;
    let name_of = |world: &World, host: api::HostId| {
        world.host_by_id(host).map_or_else(|| host.to_string(), |h| world.hosts[h].name.clone())
    };
    match action {
        Action::FencePowerOff { host, attempt }
        | Action::PowerStatus { host, attempt }
        | Action::Reset { host, attempt } => {
            let Some(h) = world.host_by_id(*host) else { return };
            if !lease_valid {
                world.log(format!("management server {} skips a BMC command: its lease has expired", s + 1));
                return;
            }
            let kind = match action {
                Action::FencePowerOff { .. } => {
                    world.stats.power_offs += 1;
                    world.log(format!("engine: OOBM OFF {} (attempt {attempt})", world.hosts[h].name));
                    OobmAction::PowerOff
                }
                Action::PowerStatus { .. } => OobmAction::PowerStatus,
                _ => {
                    world.log(format!("engine: OOBM RESET {} (attempt {attempt})", world.hosts[h].name));
                    OobmAction::Reset
                }
            };
            let delay = match world.hosts[h].bmc {
                BmcMode::Unreachable => world.scenario.engine.bmc_timeout_ms,
                _ => world.scenario.engine.bmc_latency_ms,
            };
            world.pending.push(Pending {
                due: now + delay,
                server: s,
                op: Op::Bmc { host: h, action: kind, attempt: *attempt },
            });
        }
        Action::StartVm { vm, host, generation, attempt } => {
            let (Some(v), Some(h)) = (world.vm_by_id(*vm), world.host_by_id(*host)) else { return };
            world.stats.start_commands += 1;
            world.stats.first_start_at.entry(v).or_insert(now);
            let text = format!(
                "engine: StartVm {} on {} (generation {generation}, attempt {attempt}, epoch {epoch})",
                world.vms[v].name, world.hosts[h].name
            );
            world.log(text);
            world.pending.push(Pending {
                due: now + COMMAND_LATENCY_MS,
                server: s,
                op: Op::Start { vm: v, host: h, generation: *generation, epoch },
            });
        }
        Action::MarkVmStopped { vm, generation, reason } => {
            let Some(v) = world.vm_by_id(*vm) else { return };
            let record = &mut world.db.vms[v];
            record.state = VmState::Stopped;
            record.generation = *generation;
            record.stop_cause = None;
            let text = format!("engine: {} recorded stopped ({reason})", world.vms[v].name);
            world.log(text);
        }
        Action::PutHostInMaintenance { host, .. } => {
            if let Some(h) = world.host_by_id(*host) {
                world.db.hosts[h].maintenance = true;
                let text = format!("engine: {} put in maintenance", world.hosts[h].name);
                world.log(text);
            }
        }
        Action::RaiseAlert(alert) => {
            world.stats.alerts.insert(alert.kind.as_str().to_owned());
            if alert.kind == decide::AlertKind::VmRestartFailed
                && let Some(v) = alert.subject.vm.and_then(|vm| world.vm_by_id(vm))
            {
                world.stats.restart_failed_vms.insert(v);
            }
            world.log(format!("alert {} ({:?}): {}", alert.kind.as_str(), alert.severity, alert.message));
        }
        Action::ClearAlert { kind, subject } => {
            let about = subject.host.map(|host| name_of(world, host)).unwrap_or_default();
            world.log(format!("alert {} cleared {about}", kind.as_str()));
        }
        Action::RecordTransition(transition) => {
            let name = name_of(world, transition.host);
            if transition.to == decide::HaState::Fenced
                && let Some(h) = world.host_by_id(transition.host)
            {
                world.stats.fences += 1;
                world.stats.fenced_hosts.insert(h);
            }
            world.log(format!(
                "{name}: {} -> {} [{}] {}",
                transition.from, transition.to, transition.event, transition.reason
            ));
        }
        Action::Incident(event) => {
            if let decide::IncidentWhat::Closed { duration_ms, summary } = &event.what {
                let name = name_of(world, event.host);
                world.log(format!(
                    "incident {} ({name}) closed after {:.1} s: {summary}",
                    event.incident,
                    *duration_ms as f64 / 1000.0
                ));
            }
        }
    }
}
