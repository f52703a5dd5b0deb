//! VM restarts: which VMs, in which order, where, and retries.
//!
//! * **Which**: the VMs of a Fenced host (only then: the host is confirmed not to run them) that were
//!   occupying it or were stopped by HA (storage loss, self-fence); and VMs a live, steady host reports
//!   stopped by itself (`storage-lost`, once the storage is back; `self-fenced`) or lost (`crashed`: a
//!   reset or reboot), restarted on that host first. Priority `restart` and `best-effort` with all
//!   disks on shared storage restart; the others are recorded stopped (`MarkVmStopped`, a new
//!   generation), with a `vm-restart-failed` alert for a protected VM on local storage.
//! * **Order**: per origin cluster, priority (`restart` before `best-effort`), then start order;
//!   a start-order group starts once every VM of the groups before it has started or failed once, plus
//!   the largest start delay of the group before. Within a group, bigger VMs first (they are the hardest
//!   to fit; the planner's own order).
//! * **Where**: through the failover planner (`plan::Model::simulate`), one VM at a time: the
//!   candidates are live hosts that accept VMs, mount the VM's storage (writing their heartbeat there),
//!   carry its host tags and are not failing; first the VM's own host when that host stopped or lost
//!   it, then its cluster, then the rest of its zone, never another zone; the host its last start
//!   failed on comes last. Hosts carrying `ha.tag` are the planner's dedicated hosts: they take HA
//!   restarts.
//! * **Retries**: a start that fails (answered Failed/Refused, or seen stopped after `start_timeout_ms`)
//!   or finds no host is retried after a doubling back-off, with a `vm-restart-failed` alert saying why.
//!   A start is never retried while the VM may still be starting where it was sent.

use super::storage;
use super::{
    Action, AlertKind, AlertSubject, EngineState, HaState, HostObservation, IncidentEvent, IncidentWhat, Millis, Out,
    RestartCause, RestartJob, RestartPhase, StartOutcome, StopCause, Timing, View, VmObservation,
};
use crate::ha::plan::Model;
use api::v1::{AlertSeverity, PlanHost, PlanPool, PlanVm, RestartPriority, VmState};
use api::{ClusterId, HostId, VmId};
use std::collections::{BTreeMap, BTreeSet};

/// Does a VM in this state hold (or may it hold) its host?
fn occupies(state: VmState) -> bool {
    matches!(state, VmState::Running | VmState::Starting | VmState::Stopping | VmState::Migrating | VmState::Unknown)
}

/// A VM on a fenced host that the engine must handle (restart or record stopped).
fn needs_handling(vm: &VmObservation) -> bool {
    occupies(vm.state)
        || vm.state == VmState::Error
        || (vm.state == VmState::Stopped
            && matches!(vm.stop_cause, Some(StopCause::StorageLost | StopCause::SelfFenced | StopCause::Crashed)))
}

fn restartable(vm: &VmObservation) -> bool {
    vm.priority != RestartPriority::DoNotRestart && vm.shared_storage
}

fn rank(priority: RestartPriority) -> u8 {
    match priority {
        RestartPriority::Restart => 0,
        RestartPriority::BestEffort => 1,
        RestartPriority::DoNotRestart => 2,
    }
}

fn vm_subject(cluster: ClusterId, host: Option<HostId>, vm: VmId) -> AlertSubject {
    AlertSubject { cluster: Some(cluster), host, vm: Some(vm), storage: None }
}

fn host_name(view: &View<'_>, host: HostId) -> String {
    view.hosts.get(&host).map_or_else(|| host.to_string(), |host| host.name.clone())
}

fn new_job(
    view: &View<'_>,
    vm: &VmObservation,
    from: &HostObservation,
    cause: RestartCause,
    since: Millis,
    incident: Option<u64>,
) -> RestartJob {
    RestartJob {
        vm: vm.id,
        vm_name: vm.name.clone(),
        from_host: from.id,
        cluster: from.cluster,
        cause,
        since_ms: since,
        priority: vm.priority,
        start_order: vm.start_order,
        start_delay_s: vm.start_delay_s,
        attempts: 0,
        failures: 0,
        phase: RestartPhase::Waiting { not_before_ms: view.now },
        incident,
        settled_at_ms: None,
        last_failure: None,
        last_failed_host: None,
    }
}

/// New jobs: VMs of fenced hosts, and VMs stopped by a storage outage whose storage is back.
fn collect(view: &View<'_>, state: &mut EngineState, out: &mut Out) {
    // Forget VMs recorded stopped once their record moved on.
    let vms: BTreeMap<VmId, &VmObservation> = view.obs.vms.iter().map(|vm| (vm.id, vm)).collect();
    state.marked_stopped.retain(|id, generation| vms.get(id).is_some_and(|vm| vm.generation == *generation));
    for vm in &view.obs.vms {
        // A VM being restarted is followed by its job; one whose job is done (it ran again) can need a
        // new one, e.g. when its new host fails in turn.
        let busy = state.restarts.get(&vm.id).is_some_and(|job| !matches!(job.phase, RestartPhase::Done { .. }));
        if busy || state.marked_stopped.contains_key(&vm.id) {
            continue;
        }
        let Some(host_id) = vm.host else { continue };
        let Some(host) = view.hosts.get(&host_id) else { continue };
        let Some(record) = state.hosts.get(&host_id) else { continue };
        if record.state == HaState::Fenced && needs_handling(vm) {
            let since = record.detected_at_ms.unwrap_or(record.since_ms);
            if restartable(vm) {
                let job = new_job(view, vm, host, RestartCause::HostFenced, since, record.incident);
                state.restarts.insert(vm.id, job);
            } else {
                let generation = vm.generation + 1;
                let reason = if vm.priority == RestartPriority::DoNotRestart {
                    format!("host {} was fenced; restart priority do-not-restart", host.name)
                } else {
                    format!("host {} was fenced; its disks are not all on shared storage", host.name)
                };
                out.actions.push(Action::MarkVmStopped { vm: vm.id, generation, reason: reason.clone() });
                state.marked_stopped.insert(vm.id, generation);
                if vm.priority != RestartPriority::DoNotRestart {
                    out.raise(
                        AlertKind::VmRestartFailed,
                        AlertSeverity::Critical,
                        vm_subject(host.cluster, Some(host.id), vm.id),
                        format!("VM {} cannot be restarted: its disks are not all on shared storage", vm.name),
                    );
                    if let Some(incident) = record.incident {
                        out.actions.push(Action::Incident(IncidentEvent {
                            incident,
                            host: host.id,
                            at_ms: view.now,
                            what: IncidentWhat::VmRestartFailed {
                                vm: vm.id,
                                vm_name: vm.name.clone(),
                                reason: "its disks are not all on shared storage".into(),
                            },
                        }));
                    }
                }
            }
            continue;
        }
        // Stopped by its host (storage outage, self-fence) or lost by it (reset, crash), on a host that
        // is fine again: restart, once the storage is there.
        let host_steady = matches!(record.state, HaState::Available | HaState::Ineligible(_) | HaState::Disabled);
        let cause = match vm.stop_cause {
            Some(StopCause::StorageLost) => RestartCause::StorageReturned,
            Some(StopCause::SelfFenced) => RestartCause::SelfFenced,
            Some(StopCause::Crashed) => RestartCause::Crashed,
            _ => continue,
        };
        if vm.state == VmState::Stopped
            && restartable(vm)
            && host_steady
            && view.network_alive(host)
            && vm.storage.iter().all(|storage| {
                !state.storage_down.contains_key(storage) && storage::storage_up(view, *storage) == Some(true)
            })
        {
            let job = new_job(view, vm, host, cause, view.now, None);
            state.restarts.insert(vm.id, job);
        }
    }
}

/// A start attempt failed: back off, alert once, tell the incident.
fn failed(view: &View<'_>, job: &mut RestartJob, reason: String, out: &mut Out) {
    let timing = view.timing(job.cluster);
    let delay = Timing::backoff(timing.restart_backoff_initial_ms, timing.restart_backoff_max_ms, job.failures);
    job.failures += 1;
    job.phase = RestartPhase::Waiting { not_before_ms: view.now + delay };
    job.settled_at_ms.get_or_insert(view.now);
    let first = job.last_failure.is_none();
    job.last_failure = Some(reason.clone());
    let severity =
        if job.priority == RestartPriority::Restart { AlertSeverity::Critical } else { AlertSeverity::Warning };
    out.raise(
        AlertKind::VmRestartFailed,
        severity,
        vm_subject(job.cluster, Some(job.from_host), job.vm),
        format!("VM {} could not be restarted: {reason}; retrying with back-off", job.vm_name),
    );
    if first && let Some(incident) = job.incident {
        out.actions.push(Action::Incident(IncidentEvent {
            incident,
            host: job.from_host,
            at_ms: view.now,
            what: IncidentWhat::VmRestartFailed { vm: job.vm, vm_name: job.vm_name.clone(), reason },
        }));
    }
}

/// Follow issued starts: running, failed, or handed back when the target host failed in turn.
fn follow(view: &View<'_>, state: &mut EngineState, out: &mut Out) {
    let vms: BTreeMap<VmId, &VmObservation> = view.obs.vms.iter().map(|vm| (vm.id, vm)).collect();
    let mut drop = Vec::new();
    for job in state.restarts.values_mut() {
        let Some(vm) = vms.get(&job.vm) else {
            drop.push(job.vm); // deleted
            continue;
        };
        match job.phase.clone() {
            RestartPhase::Starting { host, generation, issued_at_ms, answered } => {
                if vm.generation > generation {
                    drop.push(job.vm); // someone else moved it on
                    continue;
                }
                if vm.host == Some(host) && vm.generation == generation && vm.state == VmState::Running {
                    job.phase = RestartPhase::Done { host, at_ms: view.now };
                    job.settled_at_ms.get_or_insert(view.now);
                    let seconds = (view.now - job.since_ms) as f64 / 1000.0;
                    let (from, to) = (host_name(view, job.from_host), host_name(view, host));
                    out.clear(AlertKind::VmRestartFailed, vm_subject(job.cluster, Some(job.from_host), job.vm));
                    out.raise(
                        AlertKind::VmRestarted,
                        AlertSeverity::Info,
                        vm_subject(job.cluster, Some(host), job.vm),
                        format!(
                            "VM {} restarted on {to} (from {from}) {seconds:.1} s after the failure was detected",
                            job.vm_name
                        ),
                    );
                    if let Some(incident) = job.incident {
                        out.actions.push(Action::Incident(IncidentEvent {
                            incident,
                            host: job.from_host,
                            at_ms: view.now,
                            what: IncidentWhat::VmRestarted {
                                vm: job.vm,
                                vm_name: job.vm_name.clone(),
                                from: job.from_host,
                                to: host,
                                seconds,
                            },
                        }));
                    }
                    continue;
                }
                // The target failed in turn: once it is fenced, the VM is surely not running there.
                if state.hosts.get(&host).is_some_and(|record| record.state == HaState::Fenced) {
                    job.last_failed_host = Some(host);
                    let reason = format!("its new host {} failed and was fenced", host_name(view, host));
                    failed(view, job, reason, out);
                    continue;
                }
                let answer =
                    view.obs.start_results.iter().find(|result| result.vm == job.vm && result.generation == generation);
                let mut answered = answered;
                if let Some(result) = answer {
                    match &result.outcome {
                        StartOutcome::Done => answered = true,
                        StartOutcome::Failed { reason } | StartOutcome::Refused { reason } => {
                            // The agent's answer: it does not run there.
                            job.last_failed_host = Some(host);
                            failed(view, job, format!("{} refused or failed: {reason}", host_name(view, host)), out);
                            continue;
                        }
                    }
                }
                let timing = view.timing(job.cluster);
                let resumed_since = view.resumed_at.is_some_and(|resumed| issued_at_ms < resumed);
                if vm.generation < generation && (resumed_since || view.now - issued_at_ms > timing.action_lost_ms) {
                    // The record never moved: the start was never sent (a crash in between). Again.
                    job.phase = RestartPhase::Waiting { not_before_ms: view.now };
                    continue;
                }
                let stopped_there = vm.host == Some(host)
                    && vm.generation == generation
                    && matches!(vm.state, VmState::Stopped | VmState::Error);
                if stopped_there && resumed_since && !answered {
                    // Issued before the engine resumed (a crash or stall between the step and its
                    // commands) and the host, alive, does not run it: the command was lost. Again
                    // (a stale copy of it carries the old epoch, which the agent refuses).
                    job.phase = RestartPhase::Waiting { not_before_ms: view.now };
                    continue;
                }
                if stopped_there && view.now - issued_at_ms > timing.start_timeout_ms {
                    job.last_failed_host = Some(host);
                    failed(view, job, format!("it did not start on {} in time", host_name(view, host)), out);
                    continue;
                }
                job.phase = RestartPhase::Starting { host, generation, issued_at_ms, answered };
            }
            RestartPhase::Waiting { .. } => {
                if vm.state == VmState::Running && vm.host.is_some_and(|host| host != job.from_host) {
                    drop.push(job.vm); // started by someone else
                }
            }
            RestartPhase::Done { .. } => {}
        }
    }
    for vm in drop {
        state.restarts.remove(&vm);
    }
}

/// Resources a host has promised: observed occupying VMs plus starts issued but not yet observed there.
struct Load {
    used: BTreeMap<HostId, (u64, u64)>,
}

impl Load {
    fn new(view: &View<'_>, state: &EngineState) -> Load {
        let mut used: BTreeMap<HostId, (u64, u64)> = BTreeMap::new();
        let vms: BTreeMap<VmId, &VmObservation> = view.obs.vms.iter().map(|vm| (vm.id, vm)).collect();
        for vm in view.obs.vms.iter().filter(|vm| occupies(vm.state)) {
            if let Some(host) = vm.host {
                let entry = used.entry(host).or_default();
                entry.0 += vm.memory_mb;
                entry.1 += vm.cpu_mhz;
            }
        }
        for job in state.restarts.values() {
            if let RestartPhase::Starting { host, .. } = job.phase
                && let Some(vm) = vms.get(&job.vm)
                && !(vm.host == Some(host) && occupies(vm.state))
            {
                let entry = used.entry(host).or_default();
                entry.0 += vm.memory_mb;
                entry.1 += vm.cpu_mhz;
            }
        }
        Load { used }
    }

    fn add(&mut self, host: HostId, vm: &VmObservation) {
        let entry = self.used.entry(host).or_default();
        entry.0 += vm.memory_mb;
        entry.1 += vm.cpu_mhz;
    }
}

/// Can `host` take `vm` at all (capacity aside)?
/// The host the VM left qualifies too, once it is steady again (a fenced host that returned and left
/// maintenance, or a host that lost the VM's storage and has it back).
fn candidate(view: &View<'_>, state: &EngineState, host: &HostObservation, vm: &VmObservation) -> bool {
    let steady = state
        .hosts
        .get(&host.id)
        .is_none_or(|record| matches!(record.state, HaState::Available | HaState::Disabled | HaState::Ineligible(_)));
    steady
        && view.network_alive(host)
        && host.accepts_vms
        && !host.maintenance
        && vm.storage.iter().all(|storage| {
            host.shared_storage.contains(storage)
                && !storage::host_write_failing(view, host, *storage)
                && !state.storage_down.contains_key(storage)
        })
        && vm.host_tags.iter().all(|tag| host.tags.contains(tag))
}

/// Where the planner puts `vm` among `hosts` (with their load), if anywhere.
fn plan_one(view: &View<'_>, hosts: &[&HostObservation], load: &Load, vm: &VmObservation) -> Option<HostId> {
    if hosts.is_empty() {
        return None;
    }
    const PHANTOM: &str = "\u{0}failed";
    let mut plan_hosts: Vec<PlanHost> = hosts
        .iter()
        .enumerate()
        .map(|(i, host)| PlanHost {
            name: format!("h{i}"),
            memory_mb: host.memory_mb,
            cpu_mhz: host.cpu_mhz,
            live: true,
            ha_dedicated: view.obs.ha_tag.as_ref().is_some_and(|tag| host.tags.contains(tag)),
        })
        .collect();
    plan_hosts.push(PlanHost {
        name: PHANTOM.into(),
        memory_mb: vm.memory_mb,
        cpu_mhz: vm.cpu_mhz,
        live: true,
        ha_dedicated: false,
    });
    let mut plan_vms = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let (memory, cpu) = load.used.get(&host.id).copied().unwrap_or_default();
        if memory > 0 || cpu > 0 {
            plan_vms.push(PlanVm {
                name: format!("load{i}"),
                memory_mb: memory,
                cpu_mhz: cpu,
                host: Some(format!("h{i}")),
                priority: RestartPriority::DoNotRestart,
                shared_storage: false,
            });
        }
    }
    plan_vms.push(PlanVm {
        name: "\u{0}vm".into(),
        memory_mb: vm.memory_mb,
        cpu_mhz: vm.cpu_mhz,
        host: Some(PHANTOM.into()),
        priority: RestartPriority::Restart,
        shared_storage: true,
    });
    let model = Model::new(&PlanPool { hosts: plan_hosts, vms: plan_vms, failure_limit: 1 }).ok()?;
    let failure = model.simulate(&[PHANTOM.to_owned()]).ok()?;
    let placed = failure.placements.iter().find(|placement| placement.vm == "\u{0}vm")?.host.as_ref()?;
    let index: usize = placed.strip_prefix('h')?.parse().ok()?;
    hosts.get(index).map(|host| host.id)
}

/// Tiers of candidates: own host (storage outage only), cluster, rest of the zone.
fn place<'a>(
    view: &View<'a>,
    state: &EngineState,
    load: &Load,
    job: &RestartJob,
    vm: &VmObservation,
) -> Result<HostId, String> {
    let from = view.hosts.get(&job.from_host).copied();
    let zone = from.map(|host| host.zone);
    let candidates: Vec<&HostObservation> =
        view.obs.hosts.iter().filter(|host| candidate(view, state, host, vm)).collect();
    let tiers = |candidates: &[&'a HostObservation]| {
        let mut tiers: Vec<Vec<&HostObservation>> = Vec::new();
        if job.cause != RestartCause::HostFenced {
            tiers.push(candidates.iter().copied().filter(|host| host.id == job.from_host).collect());
        }
        tiers.push(candidates.iter().copied().filter(|host| host.cluster == job.cluster).collect());
        tiers.push(
            candidates.iter().copied().filter(|host| host.cluster != job.cluster && Some(host.zone) == zone).collect(),
        );
        tiers
    };
    // The host its last start failed on comes last: first without it, then with it.
    let others: Vec<&HostObservation> =
        candidates.iter().copied().filter(|host| Some(host.id) != job.last_failed_host).collect();
    for set in [&others, &candidates] {
        for tier in tiers(set) {
            if let Some(host) = plan_one(view, &tier, load, vm) {
                return Ok(host);
            }
        }
    }
    let tiers = tiers(&candidates);
    let cluster = view.clusters.get(&job.cluster).map_or_else(|| job.cluster.to_string(), |c| c.name.clone());
    let tags =
        if vm.host_tags.is_empty() { String::new() } else { format!(" carrying tags {}", vm.host_tags.join(", ")) };
    if tiers.iter().all(Vec::is_empty) {
        return Err(format!("no live host in cluster {cluster} or its zone{tags} mounts its storage and accepts VMs"));
    }
    Err(format!(
        "no live host in cluster {cluster} or its zone{tags} has {} MB memory and {} MHz CPU free",
        vm.memory_mb, vm.cpu_mhz
    ))
}

type GroupKey = (ClusterId, u8, i32);

fn group(job: &RestartJob) -> GroupKey {
    (job.cluster, rank(job.priority), job.start_order)
}

/// May jobs of group `key` start now? Every earlier group of the same cluster has settled, and the
/// largest start delay of the group just before has passed since it settled.
fn gate_open(state: &EngineState, key: GroupKey, now: Millis) -> bool {
    let mut earlier: BTreeMap<GroupKey, (Option<Millis>, u32, bool)> = BTreeMap::new();
    for job in state.restarts.values().filter(|job| job.cluster == key.0 && group(job) < key) {
        let entry = earlier.entry(group(job)).or_insert((Some(i64::MIN), 0, true));
        match job.settled_at_ms {
            Some(at) => entry.0 = entry.0.map(|t| t.max(at)),
            None => entry.2 = false,
        }
        entry.1 = entry.1.max(job.start_delay_s);
    }
    if earlier.values().any(|(_, _, settled)| !settled) {
        return false;
    }
    match earlier.values().next_back() {
        Some((Some(settled), delay, _)) => now >= settled + i64::from(*delay) * 1000,
        _ => true,
    }
}

/// Issue the starts that are due, in order.
fn issue(view: &View<'_>, state: &mut EngineState, out: &mut Out) {
    let vms: BTreeMap<VmId, &VmObservation> = view.obs.vms.iter().map(|vm| (vm.id, vm)).collect();
    let mut load = Load::new(view, state);
    let mut order: Vec<(GroupKey, std::cmp::Reverse<u64>, String, VmId)> = state
        .restarts
        .values()
        .filter(|job| matches!(job.phase, RestartPhase::Waiting { not_before_ms } if not_before_ms <= view.now))
        .filter_map(|job| {
            vms.get(&job.vm).map(|vm| (group(job), std::cmp::Reverse(vm.memory_mb), vm.name.clone(), job.vm))
        })
        .collect();
    order.sort();
    let mut open_gates: BTreeMap<GroupKey, bool> = BTreeMap::new();
    for (key, _, _, id) in order {
        let open = *open_gates.entry(key).or_insert_with(|| gate_open(state, key, view.now));
        if !open {
            continue;
        }
        let vm = vms[&id];
        let job = state.restarts.get(&id).expect("listed").clone();
        match place(view, state, &load, &job, vm) {
            Ok(host) => {
                load.add(host, vm);
                let generation = vm.generation + 1;
                let job = state.restarts.get_mut(&id).expect("listed");
                job.attempts += 1;
                job.phase = RestartPhase::Starting { host, generation, issued_at_ms: view.now, answered: false };
                out.actions.push(Action::StartVm { vm: id, host, generation, attempt: job.attempts });
            }
            Err(reason) => {
                let job = state.restarts.get_mut(&id).expect("listed");
                failed(view, job, reason, out);
            }
        }
    }
}

/// Close the incidents of fenced hosts whose VMs are all handled; forget finished batches.
fn close(view: &View<'_>, state: &mut EngineState, out: &mut Out) {
    let busy: BTreeSet<HostId> = state
        .restarts
        .values()
        .filter(|job| !matches!(job.phase, RestartPhase::Done { .. }))
        .map(|job| job.from_host)
        .collect();
    for (host, record) in state.hosts.iter_mut() {
        if record.state != HaState::Fenced || busy.contains(host) {
            continue;
        }
        if let Some(incident) = record.incident.take() {
            let restarted: Vec<&RestartJob> = state
                .restarts
                .values()
                .filter(|job| job.from_host == *host && job.incident == Some(incident))
                .collect();
            let duration_ms = view.now - record.detected_at_ms.unwrap_or(record.since_ms);
            out.actions.push(Action::Incident(IncidentEvent {
                incident,
                host: *host,
                at_ms: view.now,
                what: IncidentWhat::Closed {
                    duration_ms,
                    summary: format!("host fenced; {} VM(s) restarted elsewhere", restarted.len()),
                },
            }));
        }
    }
    if state.restarts.values().all(|job| matches!(job.phase, RestartPhase::Done { .. })) {
        state.restarts.clear();
    }
}

pub(crate) fn step(view: &View<'_>, state: &mut EngineState, out: &mut Out) {
    collect(view, state, out);
    follow(view, state, out);
    issue(view, state, out);
    close(view, state, out);
}
