//! The HA engine's IO loop: a reconciler (DESIGN.md) that, while this server holds the leader lease
//! (`ha::lease`), every [`STEP_INTERVAL`] gathers [`Observations`] from the database and the agent
//! hub (network heartbeat times, the storage heartbeat readings agents report, VM states and why an
//! agent stopped a VM, OOBM power states, and the results of the BMC calls and VM starts it issued),
//! calls the pure [`decide`], writes the step (transitions, incident steps, VM moves, the new
//! [`EngineState`]) in one transaction guarded by the lease, and only then carries out the actions
//! that reach outside: BMC calls, VM starts (carrying the lease's epoch and the VM's new generation),
//! alerts, and live events for the console. A server that becomes leader loads the stored state and
//! resumes; whatever the crashed leader left in flight the core re-issues or sees in the observations.

use super::decide::{
    self, Action, ClusterObservation, EngineState, HaState, HostObservation, IncidentEvent, IncidentWhat, Observations,
    OobmAction, OobmObservation, OobmOutcome, OobmResult, StartOutcome, StartResult, StopCause, StorageSighting,
    StorageWrite, Timing, VmObservation, decide,
};
use super::lease::{LEASE_TTL, LeaseKeeper, holder_id};
use crate::app::{self, alerts};
use crate::db::{
    HostHaRecord, IncidentWrite, LeaseTerm, NewIncidentEvent, NewTransition, StepWrites, VmMove, VmStop, now_ms,
};
use crate::events::error_chain;
use crate::oobm::{self, BmcPower, OobmError, PowerCommand};
use crate::state::AppState;
use api::agent::{AgentStopReason, Command, CommandOutcome, VmSpec};
use api::v1::{
    Event, HaEvent, HaTimingSettings, HostHaState, PowerState, RestartPriority, StorageScope, Vm, VmState,
    incident_event_kind,
};
use api::{HostId, StoragePoolId, VmId, ZoneId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often the leader takes a step (and every server renews or tries the lease).
pub const STEP_INTERVAL: Duration = Duration::from_millis(250);

/// A result that arrived between two steps.
#[derive(Debug)]
enum Arrived {
    Oobm(OobmResult),
    Start(StartResult),
}

/// The leader's engine: the core's state and the results its actions sent back.
struct Engine {
    term: LeaseTerm,
    state: EngineState,
    /// The state last written, without its step time: an idle step writes nothing.
    last_written: Option<String>,
    results: mpsc::UnboundedReceiver<Arrived>,
    sender: mpsc::UnboundedSender<Arrived>,
    /// VMs whose StartVm this engine sent and no answer came back for yet.
    starts_in_flight: Arc<Mutex<HashSet<VmId>>>,
}

/// Run until `shutdown` turns true; then give the lease up so another server takes over at once.
pub async fn run(state: AppState, mut shutdown: tokio::sync::watch::Receiver<bool>) {
    let mut keeper = LeaseKeeper::new(state.db.clone(), state.hub.clone(), holder_id(), LEASE_TTL);
    let mut engine: Option<Engine> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        match keeper.tick(now_ms()).await {
            Ok(Some(term)) => {
                let current = match engine.take() {
                    Some(mut running) if running.term.epoch == term.epoch => {
                        running.term = term;
                        running
                    }
                    _ => Engine::resume(&state, term).await,
                };
                engine = step(&state, current).await;
            }
            Ok(None) => engine = None,
            Err(error) => {
                engine = None;
                tracing::warn!(error = %error_chain(&error), "cannot read the leader lease");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(STEP_INTERVAL) => {}
            _ = shutdown.changed() => {}
        }
    }
    keeper.release().await;
}

impl Engine {
    /// Become leader: load the state the last leader stored (a fresh one if none or unreadable).
    async fn resume(state: &AppState, term: LeaseTerm) -> Engine {
        let stored = match state.db.ha_engine_state_load().await {
            Ok(stored) => stored,
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "cannot load the HA engine state; starting afresh");
                None
            }
        };
        let engine_state = match stored {
            Some((epoch, json)) => match serde_json::from_str::<EngineState>(&json) {
                Ok(loaded) => {
                    tracing::info!(
                        previous_epoch = epoch,
                        epoch = term.epoch,
                        hosts = loaded.hosts.len(),
                        restarts = loaded.restarts.len(),
                        "HA engine resumes from the stored state"
                    );
                    loaded
                }
                Err(error) => {
                    tracing::error!(%error, "the stored HA engine state is unreadable; starting afresh");
                    EngineState::default()
                }
            },
            None => EngineState::default(),
        };
        let (sender, results) = mpsc::unbounded_channel();
        Engine { term, state: engine_state, last_written: None, results, sender, starts_in_flight: Arc::default() }
    }
}

/// The engine's state as compared between steps: everything but the step time.
fn comparable(state: &EngineState) -> String {
    let mut copy = state.clone();
    copy.last_step_ms = None;
    serde_json::to_string(&copy).unwrap_or_default()
}

/// One step. Answers the engine to keep, or `None` when leadership was lost during the step.
async fn step(state: &AppState, mut engine: Engine) -> Option<Engine> {
    let mut arrived = Vec::new();
    while let Ok(result) = engine.results.try_recv() {
        arrived.push(result);
    }
    let in_flight = engine.starts_in_flight.lock().unwrap().clone();
    let gathered = match gather(state, arrived, &in_flight).await {
        Ok(gathered) => gathered,
        Err(error) => {
            tracing::warn!(error = %error_chain(&error), "HA engine cannot gather its observations; skipping a step");
            return Some(engine);
        }
    };
    let now = now_ms();
    let previous = engine.state.clone();
    let observations = gathered.observations.clone();
    let decision = match tokio::task::spawn_blocking(move || decide(&previous, &observations, now)).await {
        Ok(decision) => decision,
        Err(error) => {
            tracing::error!(%error, "the HA decision core failed; skipping a step");
            return Some(engine);
        }
    };
    let plan = Plan::of(&decision.actions, &gathered);
    let state_json = serde_json::to_string(&decision.state).unwrap_or_default();
    let comparable_state = comparable(&decision.state);
    let unchanged =
        plan.writes == StepWrites::default() && engine.last_written.as_deref() == Some(comparable_state.as_str());
    let written = if unchanged {
        Default::default()
    } else {
        match state.db.ha_commit_step(&engine.term, now, &plan.writes, &state_json).await {
            Ok(Some(written)) => written,
            Ok(None) => {
                tracing::warn!(epoch = engine.term.epoch, "the leader lease was lost before the step was written");
                return None;
            }
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "cannot write the HA engine step; retrying next step");
                return Some(engine);
            }
        }
    };
    engine.last_written = Some(comparable_state);
    engine.state = decision.state;
    carry_out(state, &engine, plan, written, &gathered).await;
    Some(engine)
}

/// What one step gathered, and lookups the actions need.
struct Gathered {
    observations: Observations,
    vms: HashMap<VmId, Vm>,
    storage_urls: HashMap<StoragePoolId, String>,
    host_names: HashMap<HostId, String>,
}

fn timing_of(settings: &HaTimingSettings) -> Timing {
    let ms = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    Timing {
        heartbeat_interval_ms: ms(settings.heartbeat_interval_ms),
        suspect_after_ms: ms(settings.suspect_after_ms),
        storage_timeout_ms: ms(settings.storage_timeout_ms),
        self_fence_timeout_ms: ms(settings.self_fence_timeout_ms),
        fence_backoff_initial_ms: ms(settings.fence_backoff_initial_ms),
        fence_backoff_max_ms: ms(settings.fence_backoff_max_ms),
        ..Timing::default()
    }
}

/// The engine's view of an operator's timing settings, checked by the core's own rules too.
pub fn check_with_core(settings: &HaTimingSettings) -> Result<(), decide::TimingError> {
    timing_of(settings).validate()
}

fn provider_of(provider: api::v1::HaProvider) -> decide::HaProvider {
    match provider {
        api::v1::HaProvider::Kvm => decide::HaProvider::Kvm,
        api::v1::HaProvider::Sim => decide::HaProvider::Sim,
    }
}

/// Why a VM that is not running stopped, as far as its host's agent told this server: stopped by the
/// agent itself (storage lost, self-fenced); gone from the host's complete inventory or crashed there
/// without anyone stopping it (`Crashed`: a reset, reboot or guest crash); else stopped on purpose.
fn stop_cause(state: &AppState, vm: VmId, host: HostId, vm_state: VmState) -> Option<StopCause> {
    if !matches!(vm_state, VmState::Stopped | VmState::Error) {
        return None;
    }
    match state.hub.ha_views.stop_reason(vm, host) {
        Some(AgentStopReason::StorageLost { .. }) => return Some(StopCause::StorageLost),
        Some(AgentStopReason::SelfFenced { .. }) => return Some(StopCause::SelfFenced),
        None => {}
    }
    if state.hub.is_connected(host) && state.hub.ha_views.crashed(host, vm) {
        Some(StopCause::Crashed)
    } else {
        Some(StopCause::Operator)
    }
}

/// Build the observations from the database, the hub and the results that arrived.
async fn gather(
    state: &AppState,
    arrived: Vec<Arrived>,
    starts_in_flight: &HashSet<VmId>,
) -> Result<Gathered, crate::db::DbError> {
    let db = &state.db;
    let clusters = db.cluster_list().await?;
    let timings = db.cluster_ha_timing_all().await?;
    let hosts = db.host_list().await?;
    let records: HashMap<HostId, HostHaRecord> =
        db.host_ha_list().await?.into_iter().map(|record| (record.host_id, record)).collect();
    let briefs = db.oobm_briefs().await?;
    let pools = db.storage_pool_list().await?;
    let vms = db.vm_list().await?;
    let offerings: HashMap<_, _> =
        db.offering_list().await?.into_iter().map(|offering| (offering.id, offering.host_tags)).collect();
    let ha_tag = db.ha_tag().await?;

    let pool_by_url: HashMap<(ZoneId, &str), &api::v1::StoragePool> =
        pools.iter().map(|pool| ((pool.zone_id, pool.url.as_str()), pool)).collect();
    let shared: HashMap<StoragePoolId, bool> =
        pools.iter().map(|pool| (pool.id, pool.scope == StorageScope::Cluster)).collect();
    let host_by_name: HashMap<(ZoneId, &str), HostId> =
        hosts.iter().map(|host| ((host.zone_id, host.name.as_str()), host.id)).collect();
    let zone_of: HashMap<HostId, ZoneId> = hosts.iter().map(|host| (host.id, host.zone_id)).collect();

    // Storage heartbeat readings, by the host read (never the reader's own record).
    let mut seen: HashMap<HostId, Vec<StorageSighting>> = HashMap::new();
    for sighting in state.hub.ha_views.sightings() {
        let Some(zone) = zone_of.get(&sighting.observer) else { continue };
        let Some(subject) = host_by_name.get(&(*zone, sighting.subject_name.as_str())) else { continue };
        let Some(pool) = pool_by_url.get(&(*zone, sighting.storage_url.as_str())) else { continue };
        if *subject == sighting.observer {
            continue;
        }
        seen.entry(*subject).or_default().push(StorageSighting {
            observer: sighting.observer,
            storage: pool.id,
            counter: sighting.counter,
            advanced_at_ms: sighting.advanced_at_ms,
            read_at_ms: sighting.read_at_ms,
            self_fenced: sighting.self_fenced,
            running_vms: sighting.running_vms,
        });
    }
    let own_writes = state.hub.ha_views.own_writes();

    let mut host_observations = Vec::with_capacity(hosts.len());
    for host in &hosts {
        let record = records.get(&host.id);
        let brief = briefs.get(&host.id);
        let writes = own_writes
            .get(&host.id)
            .map(|writes| {
                writes
                    .iter()
                    .filter_map(|write| {
                        pool_by_url.get(&(host.zone_id, write.storage_url.as_str())).map(|pool| StorageWrite {
                            storage: pool.id,
                            ok: write.ok,
                            at_ms: write.at_ms,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        host_observations.push(HostObservation {
            id: host.id,
            name: host.name.clone(),
            cluster: host.cluster_id,
            zone: host.zone_id,
            ha_disabled: match record {
                Some(record) => app::ha::why_disabled(record),
                None => Some("HA is off".into()),
            },
            provider: record.map(|record| provider_of(record.provider)),
            maintenance: host.allocation == api::v1::HostAllocation::Maintenance || host.maintenance.is_some(),
            accepts_vms: host.allocation == api::v1::HostAllocation::Enabled,
            oobm: OobmObservation {
                configured: brief.is_some_and(|brief| brief.configured),
                enabled: brief.is_some_and(|brief| brief.effective),
                power: match brief {
                    Some(brief) if brief.effective => brief.power_state.unwrap_or(PowerState::Unknown),
                    _ => PowerState::Disabled,
                },
                power_read_at_ms: brief.and_then(|brief| brief.power_read_at_ms),
            },
            last_heartbeat_ms: host.last_heartbeat_at.map(|at| at.timestamp_millis()),
            memory_mb: host.capacity.memory_mb,
            cpu_mhz: u64::from(host.capacity.cpu_mhz),
            tags: host.tags.clone(),
            shared_storage: host
                .storage_pool_ids
                .iter()
                .copied()
                .filter(|pool| shared.get(pool).copied().unwrap_or(false))
                .collect(),
            storage_seen: seen.remove(&host.id).unwrap_or_default(),
            storage_writes: writes,
        });
    }

    let pending_starts: HashMap<HostId, Vec<VmId>> =
        hosts.iter().map(|host| (host.id, state.hub.starts_pending(host.id))).collect();
    let mut vm_observations = Vec::with_capacity(vms.len());
    for vm in &vms {
        // A start sent (by this engine, or by anyone through this server's hub) and not answered
        // yet: the host's inventory may not list the VM yet, which must not read as "stopped".
        let start_pending = starts_in_flight.contains(&vm.id)
            || vm.host_id.is_some_and(|host| pending_starts.get(&host).is_some_and(|vms| vms.contains(&vm.id)));
        let vm_state = if vm.state == VmState::Stopped && start_pending { VmState::Starting } else { vm.state };
        let stop_cause = vm.host_id.and_then(|host| stop_cause(state, vm.id, host, vm_state));
        vm_observations.push(VmObservation {
            id: vm.id,
            name: vm.name.clone(),
            host: vm.host_id,
            state: vm_state,
            stop_cause,
            generation: vm.generation,
            priority: if vm.ha_protected { vm.restart_priority } else { RestartPriority::DoNotRestart },
            start_order: vm.start_order,
            start_delay_s: vm.start_delay_seconds,
            memory_mb: vm.resources.memory_mb,
            cpu_mhz: u64::from(vm.resources.cpu_mhz),
            shared_storage: shared.get(&vm.storage_pool_id).copied().unwrap_or(false),
            storage: vec![vm.storage_pool_id],
            host_tags: offerings.get(&vm.offering_id).cloned().unwrap_or_default(),
        });
    }

    let mut oobm_results = Vec::new();
    let mut start_results = Vec::new();
    for result in arrived {
        match result {
            Arrived::Oobm(result) => oobm_results.push(result),
            Arrived::Start(result) => start_results.push(result),
        }
    }
    let observations = Observations {
        clusters: clusters
            .iter()
            .map(|cluster| ClusterObservation {
                id: cluster.id,
                zone: cluster.zone_id,
                name: cluster.name.clone(),
                timing: timing_of(&timings.get(&cluster.id).copied().unwrap_or_default()),
            })
            .collect(),
        hosts: host_observations,
        vms: vm_observations,
        ha_tag,
        oobm_results,
        start_results,
    };
    Ok(Gathered {
        observations,
        storage_urls: pools.iter().map(|pool| (pool.id, pool.url.clone())).collect(),
        host_names: hosts.iter().map(|host| (host.id, host.name.clone())).collect(),
        vms: vms.into_iter().map(|vm| (vm.id, vm)).collect(),
    })
}

fn api_state(state: HaState) -> HostHaState {
    match state {
        HaState::Disabled => HostHaState::Disabled,
        HaState::Ineligible(_) => HostHaState::Ineligible,
        HaState::Available => HostHaState::Available,
        HaState::Suspect => HostHaState::Suspect,
        HaState::Checking => HostHaState::Checking,
        HaState::Degraded => HostHaState::Degraded,
        HaState::Recovering => HostHaState::Recovering,
        HaState::Recovered => HostHaState::Recovered,
        HaState::Fencing => HostHaState::Fencing,
        HaState::Fenced => HostHaState::Fenced,
    }
}

/// The actions of one step, sorted into what is written with the step and what is done after.
struct Plan {
    writes: StepWrites,
    /// Per entry of `writes.vm_moves`: the start to send once the move is written.
    starts: Vec<(VmId, HostId, i64)>,
    oobm: Vec<(HostId, OobmAction, u32)>,
    alerts: Vec<Action>,
    /// Host state changes to announce.
    transitions: Vec<api::v1::HaTransition>,
}

impl Plan {
    fn of(actions: &[Action], gathered: &Gathered) -> Plan {
        let mut plan = Plan {
            writes: StepWrites::default(),
            starts: Vec::new(),
            oobm: Vec::new(),
            alerts: Vec::new(),
            transitions: Vec::new(),
        };
        let name = |host: &HostId| gathered.host_names.get(host).cloned().unwrap_or_else(|| host.to_string());
        for action in actions {
            match action {
                Action::FencePowerOff { host, attempt } => plan.oobm.push((*host, OobmAction::PowerOff, *attempt)),
                Action::PowerStatus { host, attempt } => plan.oobm.push((*host, OobmAction::PowerStatus, *attempt)),
                Action::Reset { host, attempt } => plan.oobm.push((*host, OobmAction::Reset, *attempt)),
                Action::StartVm { vm, host, generation, .. } => {
                    plan.writes.vm_moves.push(VmMove { vm: *vm, host: *host, generation: *generation });
                    plan.starts.push((*vm, *host, *generation));
                }
                Action::MarkVmStopped { vm, generation, reason } => {
                    plan.writes.vm_stops.push(VmStop { vm: *vm, generation: *generation, reason: reason.clone() })
                }
                Action::PutHostInMaintenance { host, .. } => plan.writes.maintenance.push(*host),
                Action::RaiseAlert(_) | Action::ClearAlert { .. } => plan.alerts.push(action.clone()),
                Action::RecordTransition(transition) => {
                    let (from, to) = (api_state(transition.from), api_state(transition.to));
                    plan.writes.transitions.push(NewTransition {
                        host_id: transition.host,
                        from,
                        to,
                        event: transition.event.clone(),
                        reason: transition.reason.clone(),
                        at_ms: transition.at_ms,
                    });
                    plan.transitions.push(api::v1::HaTransition {
                        host_id: transition.host,
                        from,
                        to,
                        event: transition.event.clone(),
                        reason: transition.reason.clone(),
                        at: crate::db::ms_to_time(transition.at_ms),
                    });
                }
                Action::Incident(event) => plan.writes.incidents.extend(incident_writes(event, &name)),
            }
        }
        plan
    }
}

/// An incident step of the core as rows of the incident tables.
fn incident_writes(event: &IncidentEvent, name: &dyn Fn(&HostId) -> String) -> Vec<IncidentWrite> {
    let host_id = event.host;
    let at_ms = event.at_ms;
    let plain = |kind: &str, message: String| NewIncidentEvent {
        at_ms,
        kind: kind.to_owned(),
        vm_id: None,
        vm_name: None,
        from_host_id: None,
        to_host_id: None,
        duration_ms: None,
        message,
    };
    let step = |event: NewIncidentEvent| IncidentWrite::Event { host_id, event };
    match &event.what {
        IncidentWhat::Detected { reason } => vec![
            IncidentWrite::Open { host_id, at_ms },
            step(plain(incident_event_kind::DETECTED, format!("host {} failure detected: {reason}", name(&host_id)))),
        ],
        IncidentWhat::StateChanged { from, to, reason } => {
            vec![step(plain(incident_event_kind::STATE_CHANGED, format!("{from} → {to}: {reason}")))]
        }
        IncidentWhat::FenceAttempt { attempt } => vec![step(plain(
            incident_event_kind::FENCE_ISSUED,
            format!("OOBM power OFF sent to {} (attempt {attempt})", name(&host_id)),
        ))],
        IncidentWhat::FenceFailed { attempt, reason } => vec![step(plain(
            incident_event_kind::FENCE_FAILED,
            format!("fencing attempt {attempt} not confirmed: {reason}"),
        ))],
        IncidentWhat::Fenced { how } => vec![step(plain(incident_event_kind::FENCED, how.clone()))],
        IncidentWhat::VmRestarted { vm, vm_name, from, to, seconds } => vec![step(NewIncidentEvent {
            vm_id: Some(*vm),
            vm_name: Some(vm_name.clone()),
            from_host_id: Some(*from),
            to_host_id: Some(*to),
            duration_ms: Some((seconds * 1000.0).round() as i64),
            ..plain(
                incident_event_kind::VM_RESTARTED,
                format!("VM {vm_name} restarted on {} ({seconds:.1} s after detection)", name(to)),
            )
        })],
        IncidentWhat::VmRestartFailed { vm, vm_name, reason } => vec![step(NewIncidentEvent {
            vm_id: Some(*vm),
            vm_name: Some(vm_name.clone()),
            from_host_id: Some(host_id),
            ..plain(incident_event_kind::VM_RESTART_FAILED, format!("VM {vm_name} cannot be restarted: {reason}"))
        })],
        IncidentWhat::Closed { duration_ms, summary } => vec![
            step(NewIncidentEvent {
                duration_ms: Some(*duration_ms),
                ..plain(incident_event_kind::RESOLVED, summary.clone())
            }),
            IncidentWrite::Close { host_id, at_ms, verdict: summary.clone() },
        ],
    }
}

/// After the step is written: BMC calls and VM starts in the background (their results come back
/// for the next step), alerts, and live events. Nothing reaches a BMC or an agent once the lease
/// has expired by this server's clock: another server may lead by then.
async fn carry_out(
    state: &AppState,
    engine: &Engine,
    plan: Plan,
    written: crate::db::StepWritten,
    gathered: &Gathered,
) {
    let lease_valid = now_ms() < engine.term.expires_at_ms;
    if !lease_valid && (!plan.oobm.is_empty() || !plan.starts.is_empty()) {
        tracing::warn!(
            epoch = engine.term.epoch,
            "the lease expired during the step; its BMC calls and starts are skipped"
        );
    }
    for (host, action, attempt) in plan.oobm.into_iter().filter(|_| lease_valid) {
        let state = state.clone();
        let sender = engine.sender.clone();
        tokio::spawn(async move {
            let outcome = bmc_call(&state, host, action).await;
            let _ = sender.send(Arrived::Oobm(OobmResult { host, action, attempt, at_ms: now_ms(), outcome }));
        });
    }
    for (index, (vm, host, generation)) in plan.starts.into_iter().enumerate().filter(|_| lease_valid) {
        // Only an answer that the VM does not run there is a failure; a start that never got an
        // answer (timed out, disconnected) is reported as nothing: the core waits for the inventory.
        let not_running = |reason: String| {
            let _ = engine.sender.send(Arrived::Start(StartResult {
                vm,
                host,
                generation,
                at_ms: now_ms(),
                outcome: StartOutcome::Failed { reason },
            }));
        };
        if !written.moved.get(index).copied().unwrap_or(false) {
            // The core re-issues a start whose record move it does not see.
            tracing::warn!(%vm, %host, generation, "HA restart not sent: the VM's record changed meanwhile");
            continue;
        }
        let Some(spec) = spec_for(gathered, vm, generation) else {
            tracing::warn!(%vm, "HA restart not sent: the VM or its storage is no longer known");
            continue;
        };
        match state.hub.send_with_epoch(host, Command::StartVm { vm: spec }, engine.term.epoch) {
            Ok((_, in_flight)) => {
                let sender = engine.sender.clone();
                let starts_in_flight = engine.starts_in_flight.clone();
                starts_in_flight.lock().unwrap().insert(vm);
                let state = state.clone();
                tokio::spawn(async move {
                    let answer = in_flight.outcome().await;
                    starts_in_flight.lock().unwrap().remove(&vm);
                    let outcome = match answer {
                        Ok(CommandOutcome::Done) => StartOutcome::Done,
                        Ok(CommandOutcome::Failed { reason }) => StartOutcome::Failed { reason },
                        Ok(CommandOutcome::Refused { reason }) => StartOutcome::Refused { reason },
                        Err(error) => {
                            tracing::warn!(%vm, error = %error, "no answer to an HA restart");
                            return;
                        }
                    };
                    if let StartOutcome::Failed { reason } | StartOutcome::Refused { reason } = &outcome {
                        // The agent says it does not run the VM: the record must not say "starting".
                        record_not_started(&state, vm, host, generation, reason).await;
                    }
                    let _ = sender.send(Arrived::Start(StartResult { vm, host, generation, at_ms: now_ms(), outcome }));
                });
            }
            // Never handed to the agent: it does not run the VM.
            Err(error) => not_running(error.to_string()),
        }
    }
    for action in plan.alerts {
        apply_alert(state, action).await;
    }
    for transition in plan.transitions {
        let host_id = transition.host_id;
        let reason = (!transition.reason.is_empty()).then(|| transition.reason.clone());
        state.events.announce(Event::Ha { change: HaEvent::HostState { host_id, transition, reason } });
        state.events.announce_host(&state.db, host_id).await;
    }
    for id in written.incidents {
        match state.db.ha_incident_fetch(id).await {
            Ok(Some(detail)) => {
                let event = detail.events.last().cloned();
                state.events.announce(Event::Ha { change: HaEvent::Incident { incident: detail.incident, event } });
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(error = %error_chain(&error), "cannot read an incident to announce it"),
        }
    }
    for vm in written.vms_changed {
        state.events.publish_vm(&state.db, vm).await;
    }
}

/// The agent answered that it does not run `vm` (started under `generation` on `host`): record it
/// stopped with why, unless the record has moved on meanwhile.
async fn record_not_started(state: &AppState, vm: VmId, host: HostId, generation: i64, reason: &str) {
    let why = format!("HA restart on this host failed: {reason}");
    match state.db.ha_vm_start_failed(vm, host, generation, &why).await {
        Ok(true) => state.events.publish_vm(&state.db, vm).await,
        Ok(false) => {}
        Err(error) => tracing::warn!(%vm, error = %error_chain(&error), "cannot record a failed HA restart"),
    }
}

/// What the agent needs to start `vm` under `generation`.
fn spec_for(gathered: &Gathered, vm: VmId, generation: i64) -> Option<VmSpec> {
    let record = gathered.vms.get(&vm)?;
    Some(VmSpec {
        vm_id: vm,
        name: record.name.clone(),
        generation,
        cpu_cores: record.resources.cpu_cores,
        cpu_mhz: record.resources.cpu_mhz / record.resources.cpu_cores.max(1),
        memory_mb: record.resources.memory_mb,
        storage_url: gathered.storage_urls.get(&record.storage_pool_id)?.clone(),
    })
}

fn failed(error: &OobmError) -> OobmOutcome {
    OobmOutcome::Failed { kind: error.kind(), message: error.to_string() }
}

/// One BMC call for the engine. OFF is a hard power-off followed by one STATUS read (recorded like
/// any other), so a BMC that confirms Off at once saves the engine a step; STATUS is recorded too.
async fn bmc_call(state: &AppState, host: HostId, action: OobmAction) -> OobmOutcome {
    let (record, bmc) = match app::ha::engine_bmc(state, host).await {
        Ok(found) => found,
        Err(error) => return failed(&error),
    };
    let timeout = state.settings.oobm.call_timeout;
    match action {
        OobmAction::PowerOff => {
            let off = oobm::bounded(timeout, bmc.send(PowerCommand::ForceOff)).await;
            match (app::oobm::refresh(state, &record).await, off) {
                // Some BMCs refuse OFF for a host that is already off: Off is Off.
                (Ok(BmcPower::Off), _) => OobmOutcome::Power { power: PowerState::Off },
                (_, Ok(())) => OobmOutcome::Done,
                (_, Err(error)) => failed(&error),
            }
        }
        OobmAction::PowerStatus => match app::oobm::refresh(state, &record).await {
            Ok(power) => OobmOutcome::Power { power: power.into() },
            Err(error) => failed(&error),
        },
        OobmAction::Reset => match oobm::bounded(timeout, bmc.send(PowerCommand::ForceRestart)).await {
            Ok(()) => OobmOutcome::Done,
            Err(error) => failed(&error),
        },
    }
}

/// The dedupe key of an engine alert: its kind and the most specific thing it is about.
fn alert_key(alert_kind: &str, subject: &decide::AlertSubject) -> String {
    let about = subject
        .vm
        .map(|id| id.to_string())
        .or_else(|| subject.host.map(|id| id.to_string()))
        .or_else(|| subject.storage.map(|id| id.to_string()))
        .or_else(|| subject.cluster.map(|id| id.to_string()))
        .unwrap_or_else(|| "global".into());
    alerts::dedupe_key(alert_kind, about)
}

async fn apply_alert(state: &AppState, action: Action) {
    match action {
        Action::RaiseAlert(alert) => {
            let kind = alert.kind.as_str();
            let key = alert_key(kind, &alert.subject);
            let new = alerts::NewAlert {
                kind: kind.to_owned(),
                severity: alert.severity,
                cluster_id: alert.subject.cluster,
                host_id: alert.subject.host,
                vm_id: alert.subject.vm,
                message: alert.message,
                dedupe_key: key.clone(),
            };
            if let Err(error) = alerts::raise(state, new).await {
                tracing::warn!(error = %error_chain(&error), kind, "cannot raise an HA alert");
            }
            // A restarted VM is news each time, not a lasting condition: each restart is its own alert.
            if alert.kind == decide::AlertKind::VmRestarted
                && let Err(error) = alerts::clear(state, &key).await
            {
                tracing::warn!(error = %error_chain(&error), "cannot settle a VM-restarted alert");
            }
        }
        Action::ClearAlert { kind, subject } => {
            if let Err(error) = alerts::clear(state, &alert_key(kind.as_str(), &subject)).await {
                tracing::warn!(error = %error_chain(&error), kind = kind.as_str(), "cannot clear an HA alert");
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timing_settings_reach_the_core_and_its_rules_agree_with_the_defaults() {
        let timing = timing_of(&HaTimingSettings::default());
        assert_eq!((timing.suspect_after_ms, timing.self_fence_timeout_ms), (3000, 8000));
        check_with_core(&HaTimingSettings::default()).unwrap();
        let bad = HaTimingSettings { storage_timeout_ms: 900, ..Default::default() };
        assert_eq!(check_with_core(&bad).unwrap_err().field, "storage_timeout_ms");
    }

    #[test]
    fn a_closed_incident_records_its_verdict_and_a_restart_its_seconds() {
        let host = HostId::new_random();
        let to = HostId::new_random();
        let name = |id: &HostId| if *id == to { "h2".to_owned() } else { "h1".to_owned() };
        let restarted = IncidentEvent {
            incident: 1,
            host,
            at_ms: 5_000,
            what: IncidentWhat::VmRestarted {
                vm: VmId::new_random(),
                vm_name: "web".into(),
                from: host,
                to,
                seconds: 7.25,
            },
        };
        match &incident_writes(&restarted, &name)[..] {
            [IncidentWrite::Event { event, .. }] => {
                assert_eq!((event.duration_ms, event.to_host_id), (Some(7_250), Some(to)));
                assert!(event.message.contains("h2"), "{}", event.message);
            }
            other => panic!("{other:?}"),
        }
        let closed = IncidentEvent {
            incident: 1,
            host,
            at_ms: 9_000,
            what: IncidentWhat::Closed { duration_ms: 8_000, summary: "all restarted".into() },
        };
        let writes = incident_writes(&closed, &name);
        assert!(matches!(&writes[1], IncidentWrite::Close { verdict, at_ms: 9_000, .. } if verdict == "all restarted"));
        let detected =
            IncidentEvent { incident: 1, host, at_ms: 1_000, what: IncidentWhat::Detected { reason: "x".into() } };
        assert!(matches!(incident_writes(&detected, &name)[0], IncidentWrite::Open { at_ms: 1_000, .. }));
    }
}
