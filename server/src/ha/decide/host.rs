//! The host HA state machine (REFERENCE.md "Host HA state machine"), one host at a time.
//!
//! * Disabled: HA is off at zone, cluster or host. Ineligible(why): HA is on but the host cannot be
//!   protected. Available: heartbeats arrive.
//! * Available --no network heartbeat for `suspect_after_ms`--> Suspect --> Checking, which reads the
//!   storage channel: alive there is Degraded (isolated, not dead: never fenced, rechecked every
//!   step); silent there (proven by every storage it is read on, see `storage`) is a failover:
//!   Recovering/Recovered first when RESET attempts are configured, then Fencing.
//! * Fencing: OOBM OFF, then STATUS until Off. Failures retry with a doubling back-off and raise
//!   `fencing-failed`; nothing restarts on a guess. Fenced is entered only when (a) the BMC reported
//!   Off after OFF was issued, (b) the host's own storage record says it fenced itself and runs no VM,
//!   or (c) its self-fence deadline provably passed with no heartbeat on either channel.
//! * Fenced: its VMs restart (`restart`), the host goes to maintenance; when it is heard again it is
//!   Ineligible (maintenance) until an operator ends the maintenance.
//! * A heartbeat at any point before Fenced ends the failure handling (back to Available).

use super::storage::{self, StorageVerdict};
use super::{
    Action, AlertKind, AlertSubject, EngineState, FenceProgress, HaState, HostObservation, HostRecord, IncidentEvent,
    IncidentWhat, IneligibleReason, Millis, OobmAction, OobmOutcome, Out, RecoverProgress, Timing, Transition, View,
};
use api::HostId;
use api::v1::{AlertSeverity, OobmErrorKind, PowerState};

/// Why the host cannot be protected right now, if it cannot (its own liveness aside).
pub(crate) fn ineligible(view: &View<'_>, host: &HostObservation) -> Option<IneligibleReason> {
    if host.maintenance {
        return Some(IneligibleReason::Maintenance);
    }
    if host.provider.is_none() {
        return Some(IneligibleReason::NoProvider);
    }
    if !host.oobm.configured {
        return Some(IneligibleReason::OobmNotConfigured);
    }
    if !host.oobm.enabled {
        return Some(IneligibleReason::OobmNotEnabled);
    }
    if host.shared_storage.is_empty() {
        return Some(IneligibleReason::NoSharedStorage);
    }
    let neighbour = view.obs.hosts.iter().any(|other| {
        other.id != host.id
            && other.cluster == host.cluster
            && !other.maintenance
            && (view.network_alive(other) || (view.in_grace(other) && other.last_heartbeat_ms.is_some()))
            && other.shared_storage.iter().any(|storage| host.shared_storage.contains(storage))
    });
    if !neighbour {
        return Some(IneligibleReason::NoHealthyNeighbour);
    }
    None
}

/// Is any other host of the cluster heard on the network? If none is, the engine itself may be the
/// one cut off, and it must not act on silence.
fn cluster_heard(view: &View<'_>, host: &HostObservation) -> bool {
    view.obs.hosts.iter().any(|other| other.id != host.id && other.cluster == host.cluster && view.network_alive(other))
}

/// A state change decided in one pass.
struct Change {
    to: HaState,
    event: &'static str,
    reason: String,
}

fn change(to: HaState, event: &'static str, reason: impl Into<String>) -> Option<Change> {
    Some(Change { to, event, reason: reason.into() })
}

fn silence(view: &View<'_>, host: &HostObservation) -> String {
    match host.last_heartbeat_ms {
        Some(at) => format!("no network heartbeat for {} ms", view.now - at),
        None => "never heard on the network".to_owned(),
    }
}

/// Where a host in a steady state (Disabled, Ineligible, Available, or Fenced heard again) belongs.
fn steady(view: &View<'_>, host: &HostObservation, current: HaState) -> Option<Change> {
    let alive = view.network_alive(host);
    let target = match ineligible(view, host) {
        Some(reason) => HaState::Ineligible(reason),
        None if alive => HaState::Available,
        // Protectable and silent: whether it just went silent or died while it could not be
        // protected (no neighbour, HA off), its failure is handled now.
        None if host.last_heartbeat_ms.is_some() && current != HaState::Fenced => {
            if view.in_grace(host) {
                return None; // the engine just resumed: the host may not have reached it yet
            }
            return change(HaState::Suspect, "network-heartbeat-missed", silence(view, host));
        }
        None if current == HaState::Fenced => return None,
        None => HaState::Ineligible(IneligibleReason::NoHeartbeat),
    };
    if target == current {
        return None;
    }
    let (event, reason) = match target {
        HaState::Available if current == HaState::Fenced => {
            ("host-returned", "heard again, not in maintenance".to_owned())
        }
        HaState::Available => {
            ("eligible", "heartbeats arrive; OOBM, shared storage and a neighbour are in place".to_owned())
        }
        HaState::Ineligible(why) if current == HaState::Fenced => {
            ("host-returned", format!("heard again; {}", why.as_str()))
        }
        HaState::Ineligible(why) => ("ineligible", why.as_str().to_owned()),
        _ => unreachable!("steady targets are Available or Ineligible"),
    };
    change(target, event, reason)
}

/// The failover's first step after the storage channel went silent: RESET when configured, else fence.
fn fail_over(timing: &Timing, reason: String) -> Option<Change> {
    if timing.recover_attempts > 0 {
        change(HaState::Recovering, "dead-on-both-channels", format!("{reason}; trying a RESET"))
    } else {
        change(HaState::Fencing, "dead-on-both-channels", reason)
    }
}

/// Is there an OOBM power reading of Off taken at or after `since`?
fn off_confirmed(view: &View<'_>, host: &HostObservation, since: Millis) -> bool {
    let from_results = view.obs.oobm_results.iter().any(|result| {
        result.host == host.id
            && result.at_ms >= since
            && matches!(result.outcome, OobmOutcome::Power { power: PowerState::Off })
    });
    let from_sync = host.oobm.power == PowerState::Off && host.oobm.power_read_at_ms.is_some_and(|at| at >= since);
    from_results || from_sync
}

/// Decide the next state of a host from its current one (no side effects but fencing bookkeeping).
fn next(
    view: &View<'_>,
    host: &HostObservation,
    record: &mut HostRecord,
    outages: storage::Outages<'_>,
    out: &mut Out,
) -> Option<Change> {
    let timing = view.host_timing(host).clone();
    if let Some(why) = &host.ha_disabled {
        return (record.state != HaState::Disabled).then(|| Change {
            to: HaState::Disabled,
            event: "ha-disabled",
            reason: why.clone(),
        });
    }
    let alive = view.network_alive(host);
    match record.state {
        HaState::Disabled | HaState::Ineligible(_) | HaState::Available => steady(view, host, record.state),
        HaState::Suspect => {
            if alive {
                change(HaState::Available, "network-heartbeat-resumed", "heard again")
            } else {
                change(HaState::Checking, "checking-storage-heartbeat", silence(view, host))
            }
        }
        HaState::Checking => {
            if alive {
                return change(HaState::Available, "network-heartbeat-resumed", "heard again");
            }
            match storage::verdict(view.now, &timing, host, outages) {
                StorageVerdict::Alive => change(
                    HaState::Degraded,
                    "alive-on-storage",
                    format!("{}, but its storage heartbeat advances: isolated, not dead", silence(view, host)),
                ),
                // Just resumed: the host may simply not have reached the engine yet.
                _ if view.in_grace(host) => None,
                StorageVerdict::Silent => fail_over(
                    &timing,
                    format!("{} and its storage heartbeat is silent on every storage read", silence(view, host)),
                ),
                StorageVerdict::Unknown => {
                    // Nobody can tell from the storage. Fence (OOBM confirms, nothing restarts on a
                    // guess) once the engine is not blind itself, unless one of its storages is down
                    // (it may merely be cut off, nothing of it can run anyway, and the storage's return
                    // will tell) or other hosts read its record right now (their readings will tell).
                    let storage_down = host.shared_storage.iter().any(|storage| outages.down.contains_key(storage));
                    if !storage_down
                        && !storage::being_read(view.now, &timing, host)
                        && cluster_heard(view, host)
                        && view.now - record.since_ms > timing.storage_timeout_ms
                    {
                        fail_over(&timing, format!("{}; no host can read its storage heartbeat", silence(view, host)))
                    } else {
                        None
                    }
                }
            }
        }
        HaState::Degraded => {
            if alive {
                return change(HaState::Available, "network-heartbeat-resumed", "heard again");
            }
            if let Some(reason) = storage::self_fenced_record(host) {
                return change(HaState::Fenced, "self-fenced", reason);
            }
            match storage::verdict(view.now, &timing, host, outages) {
                StorageVerdict::Silent if !view.in_grace(host) => {
                    fail_over(&timing, format!("{} and its storage heartbeat stopped too", silence(view, host)))
                }
                _ => None,
            }
        }
        HaState::Recovering => {
            if alive {
                return change(HaState::Available, "network-heartbeat-resumed", "heard again");
            }
            let recover = record.recover.as_mut()?;
            for result in view.obs.oobm_results.iter().filter(|r| r.host == host.id && r.action == OobmAction::Reset) {
                if result.attempt != recover.attempt {
                    continue;
                }
                match &result.outcome {
                    OobmOutcome::Failed { message, .. } => {
                        return change(HaState::Fencing, "reset-failed", format!("RESET failed: {message}"));
                    }
                    _ => recover.reset_done_at_ms = Some(result.at_ms),
                }
            }
            if recover.reset_done_at_ms.is_some() {
                change(
                    HaState::Recovered,
                    "reset-done",
                    format!("RESET {} accepted; waiting for the host", recover.attempt),
                )
            } else if view.now - recover.reset_sent_at_ms > timing.oobm_answer_timeout_ms {
                change(HaState::Fencing, "reset-failed", "the BMC did not answer the RESET")
            } else {
                None
            }
        }
        HaState::Recovered => {
            if alive {
                return change(HaState::Available, "network-heartbeat-resumed", "heard again after RESET");
            }
            let recover = record.recover.as_ref()?;
            let done = recover.reset_done_at_ms.unwrap_or(recover.reset_sent_at_ms);
            if view.now - done <= timing.recover_wait_ms {
                None
            } else if recover.attempt < timing.recover_attempts {
                change(
                    HaState::Recovering,
                    "recovery-timed-out",
                    format!("not back {} ms after RESET", view.now - done),
                )
            } else {
                change(
                    HaState::Fencing,
                    "recovery-failed",
                    format!("not back after {} RESET attempt(s)", recover.attempt),
                )
            }
        }
        HaState::Fencing => {
            if alive {
                return change(HaState::Available, "network-heartbeat-resumed", "heard again while fencing");
            }
            let fence = record.fence.clone()?;
            if off_confirmed(view, host, fence.started_at_ms) {
                return change(HaState::Fenced, "power-off-confirmed", "the BMC reports the host Off after OFF");
            }
            if let Some(reason) = storage::self_fenced_record(host) {
                return change(HaState::Fenced, "self-fenced", reason);
            }
            if let Some(reason) = storage::self_fence_deadline_passed(view.now, &timing, host) {
                return change(HaState::Fenced, "self-fence-deadline-passed", reason);
            }
            if storage::verdict(view.now, &timing, host, outages) == StorageVerdict::Alive {
                return change(
                    HaState::Degraded,
                    "alive-on-storage",
                    "its storage heartbeat advances again: not fencing a live host",
                );
            }
            progress_fencing(view, host, record, &timing, out);
            None
        }
        HaState::Fenced => {
            if alive {
                steady(view, host, HaState::Fenced)
            } else {
                None
            }
        }
    }
}

fn fence_failed_alert(host: &HostObservation, record: &HostRecord, next_try_ms: i64, out: &mut Out) {
    let fence = record.fence.as_ref().expect("fencing");
    out.raise(
        AlertKind::FencingFailed,
        AlertSeverity::Critical,
        AlertSubject { cluster: Some(host.cluster), host: Some(host.id), ..Default::default() },
        format!(
            "fencing host {} failed ({}); retrying in {} s. Its VMs are not restarted until it is confirmed off or its self-fence deadline has passed",
            host.name,
            fence.last_error.as_deref().unwrap_or("unknown error"),
            (next_try_ms + 999) / 1000
        ),
    );
}

/// One failed fencing attempt: back off, alert, note it in the incident.
fn fence_attempt_failed(
    view: &View<'_>,
    host: &HostObservation,
    record: &mut HostRecord,
    timing: &Timing,
    error: String,
    out: &mut Out,
) {
    let fence = record.fence.as_mut().expect("fencing");
    let delay = Timing::backoff(timing.fence_backoff_initial_ms, timing.fence_backoff_max_ms, fence.failures);
    fence.failures += 1;
    fence.off_sent_at_ms = None;
    fence.off_done_at_ms = None;
    fence.status_pending = false;
    fence.retry_at_ms = Some(view.now + delay);
    fence.last_error = Some(error.clone());
    let attempt = fence.attempt;
    incident_event(record, host.id, view.now, IncidentWhat::FenceFailed { attempt, reason: error }, out);
    fence_failed_alert(host, record, delay, out);
}

fn describe_failure(kind: OobmErrorKind, message: &str) -> String {
    let kind = match kind {
        OobmErrorKind::Unreachable => "BMC unreachable",
        OobmErrorKind::Auth => "BMC refused the credentials",
        OobmErrorKind::Timeout => "BMC timed out",
        OobmErrorKind::Unsupported => "BMC does not support it",
        OobmErrorKind::Protocol => "unexpected BMC answer",
    };
    format!("{kind}: {message}")
}

/// Fencing's timers and results: OFF, STATUS until Off, retries with back-off.
fn progress_fencing(view: &View<'_>, host: &HostObservation, record: &mut HostRecord, timing: &Timing, out: &mut Out) {
    let results: Vec<_> = view.obs.oobm_results.iter().filter(|result| result.host == host.id).collect();
    for result in results {
        let Some(fence) = record.fence.as_mut() else { return };
        if result.attempt != fence.attempt {
            continue; // an older attempt's answer (only an Off reading still counts, checked above)
        }
        match (result.action, &result.outcome) {
            (OobmAction::PowerOff, OobmOutcome::Failed { kind, message }) if fence.off_sent_at_ms.is_some() => {
                let error = format!("OFF failed: {}", describe_failure(*kind, message));
                fence_attempt_failed(view, host, record, timing, error, out);
            }
            (OobmAction::PowerOff, _) if fence.off_sent_at_ms.is_some() => {
                fence.off_done_at_ms.get_or_insert(result.at_ms);
                fence.status_pending = false;
                fence.status_sent_at_ms = None;
            }
            (OobmAction::PowerStatus, OobmOutcome::Failed { kind, message }) => {
                fence.status_pending = false;
                let error = format!("STATUS failed: {}", describe_failure(*kind, message));
                if *kind == OobmErrorKind::Auth {
                    fence_attempt_failed(view, host, record, timing, error, out);
                } else {
                    fence.last_error = Some(error);
                }
            }
            (OobmAction::PowerStatus, _) => fence.status_pending = false,
            _ => {}
        }
    }
    let Some(fence) = record.fence.as_mut() else { return };
    let now = view.now;
    // The engine resumed (new leader, stalled server) since the last command: its answer went to a
    // server that may be gone. Ask again at once (OFF is idempotent); this is not a failure.
    if let Some(resumed) = view.resumed_at {
        if fence.off_done_at_ms.is_none() && fence.off_sent_at_ms.is_some_and(|sent| sent < resumed) {
            fence.off_sent_at_ms = None;
            fence.retry_at_ms = None;
        }
        if fence.status_pending && fence.status_sent_at_ms.is_some_and(|sent| sent < resumed) {
            fence.status_pending = false;
            fence.status_sent_at_ms = None;
        }
    }
    match (fence.off_sent_at_ms, fence.off_done_at_ms) {
        (None, _) => {
            if fence.retry_at_ms.is_none_or(|at| now >= at) {
                fence.attempt += 1;
                fence.off_sent_at_ms = Some(now);
                fence.retry_at_ms = None;
                let attempt = fence.attempt;
                out.actions.push(Action::FencePowerOff { host: host.id, attempt });
                incident_event(record, host.id, now, IncidentWhat::FenceAttempt { attempt }, out);
            }
        }
        (Some(sent), None) => {
            if now - sent > timing.oobm_answer_timeout_ms {
                fence_attempt_failed(view, host, record, timing, "the BMC did not answer OFF".into(), out);
            }
        }
        (Some(_), Some(done)) => {
            if now - done > timing.fence_confirm_timeout_ms {
                let error = fence.last_error.clone().map_or_else(
                    || "the BMC did not report Off after OFF".to_owned(),
                    |e| format!("not confirmed Off ({e})"),
                );
                fence_attempt_failed(view, host, record, timing, error, out);
                return;
            }
            let lost = fence.status_pending
                && fence.status_sent_at_ms.is_some_and(|at| now - at > timing.oobm_answer_timeout_ms);
            let due =
                !fence.status_pending && fence.status_sent_at_ms.is_none_or(|at| now - at >= timing.status_poll_ms);
            if lost || due {
                fence.status_pending = true;
                fence.status_sent_at_ms = Some(now);
                out.actions.push(Action::PowerStatus { host: host.id, attempt: fence.attempt });
            }
        }
    }
}

/// Adds an event to the host's incident: published at once when the incident is open, else kept
/// until the failure becomes a failover.
fn incident_event(record: &mut HostRecord, host: HostId, at_ms: Millis, what: IncidentWhat, out: &mut Out) {
    match record.incident {
        Some(incident) => out.actions.push(Action::Incident(IncidentEvent { incident, host, at_ms, what })),
        None => record.pending_incident.push((at_ms, what)),
    }
}

fn open_incident(state_next_incident: &mut u64, record: &mut HostRecord, host: HostId, out: &mut Out) {
    if record.incident.is_some() {
        return;
    }
    *state_next_incident += 1;
    let incident = *state_next_incident;
    record.incident = Some(incident);
    for (at_ms, what) in record.pending_incident.drain(..) {
        out.actions.push(Action::Incident(IncidentEvent { incident, host, at_ms, what }));
    }
}

/// Side effects of entering a state.
fn enter(
    view: &View<'_>,
    host: &HostObservation,
    record: &mut HostRecord,
    next_incident: &mut u64,
    from: HaState,
    change: &Change,
    out: &mut Out,
) {
    let now = view.now;
    let subject = AlertSubject { cluster: Some(host.cluster), host: Some(host.id), ..Default::default() };
    out.actions.push(Action::RecordTransition(Transition {
        host: host.id,
        from,
        to: change.to,
        event: change.event.to_owned(),
        reason: change.reason.clone(),
        at_ms: now,
    }));
    if change.to == HaState::Suspect {
        record.detected_at_ms = Some(now);
        record.pending_incident.clear();
        record.pending_incident.push((now, IncidentWhat::Detected { reason: change.reason.clone() }));
    }
    if change.to.is_failure_handling() || record.incident.is_some() {
        let what = IncidentWhat::StateChanged { from, to: change.to, reason: change.reason.clone() };
        incident_event(record, host.id, now, what, out);
    }
    if change.to != HaState::Fencing {
        record.fence = None;
    }
    if !matches!(change.to, HaState::Recovering | HaState::Recovered) {
        record.recover = None;
    }
    match change.to {
        HaState::Recovering => {
            open_incident(next_incident, record, host.id, out);
            let attempt = record.recover.as_ref().map_or(1, |recover| recover.attempt + 1);
            record.recover = Some(RecoverProgress { attempt, reset_sent_at_ms: now, reset_done_at_ms: None });
            out.actions.push(Action::Reset { host: host.id, attempt });
        }
        HaState::Fencing => {
            open_incident(next_incident, record, host.id, out);
            out.raise(
                AlertKind::HostFailed,
                AlertSeverity::Critical,
                subject.clone(),
                format!("host {} failed: {}; fencing it", host.name, change.reason),
            );
            record.fence = Some(FenceProgress {
                started_at_ms: now,
                attempt: 1,
                failures: 0,
                off_sent_at_ms: Some(now),
                off_done_at_ms: None,
                status_sent_at_ms: None,
                status_pending: false,
                retry_at_ms: None,
                last_error: None,
            });
            out.actions.push(Action::FencePowerOff { host: host.id, attempt: 1 });
            incident_event(record, host.id, now, IncidentWhat::FenceAttempt { attempt: 1 }, out);
        }
        HaState::Fenced => {
            open_incident(next_incident, record, host.id, out);
            incident_event(record, host.id, now, IncidentWhat::Fenced { how: change.reason.clone() }, out);
            out.clear(AlertKind::FencingFailed, subject.clone());
            out.raise(
                AlertKind::HostFenced,
                AlertSeverity::Warning,
                subject,
                format!(
                    "host {} is fenced ({}); its VMs restart elsewhere; it stays in maintenance",
                    host.name, change.reason
                ),
            );
            out.actions.push(Action::PutHostInMaintenance {
                host: host.id,
                reason: format!("fenced by HA: {}", change.reason),
            });
        }
        HaState::Available | HaState::Ineligible(_) | HaState::Disabled => {
            out.clear(AlertKind::FencingFailed, subject.clone());
            out.clear(AlertKind::HostFailed, subject.clone());
            out.clear(AlertKind::HostFenced, subject);
            if let Some(incident) = record.incident.take() {
                let summary = if from == HaState::Fenced {
                    "the fenced host is back".to_owned()
                } else {
                    format!("the host came back before it was fenced ({})", change.reason)
                };
                let duration_ms = now - record.detected_at_ms.unwrap_or(now);
                out.actions.push(Action::Incident(IncidentEvent {
                    incident,
                    host: host.id,
                    at_ms: now,
                    what: IncidentWhat::Closed { duration_ms, summary },
                }));
            }
            record.pending_incident.clear();
            record.detected_at_ms = None;
        }
        HaState::Suspect | HaState::Checking | HaState::Degraded | HaState::Recovered => {}
    }
}

/// Every host's state machine for this step.
pub(crate) fn step(view: &View<'_>, state: &mut EngineState, out: &mut Out) {
    // Hosts that left the inventory are forgotten.
    state.hosts.retain(|id, _| view.hosts.contains_key(id));
    for host in &view.obs.hosts {
        let mut record = state.hosts.remove(&host.id).unwrap_or_else(|| HostRecord {
            state: HaState::Disabled,
            since_ms: view.now,
            detected_at_ms: None,
            fence: None,
            recover: None,
            incident: None,
            pending_incident: Vec::new(),
        });
        // A few passes, so that Suspect -> Checking -> Fencing can happen within one step; bounded so
        // that no pair of rules can loop.
        for _ in 0..6 {
            let outages = storage::Outages { down: &state.storage_down, back_at: &state.storage_back_at };
            let Some(change) = next(view, host, &mut record, outages, out) else { break };
            let from = record.state;
            record.state = change.to;
            record.since_ms = view.now;
            enter(view, host, &mut record, &mut state.next_incident, from, &change, out);
        }
        state.hosts.insert(host.id, record);
    }
}
