//! Step 8: the power-off test (Mold's guide: "호스트 셧다운 후 HA 기능 확인"). Out-of-band power OFF
//! for the test host, after a confirmation that names the VMs going down with it; then, live from the
//! store (`host_ha`, `incidents`, `incident_events`, VMs): the host going Suspect, Checking, Fencing,
//! Fenced, each test VM running again on another host with the seconds since the power-off, and the
//! verdict ([`verdict`]). A report to download (JSON) or print ([`report`]). Last, power the host on
//! again and return it to service: the engine puts a fenced host into maintenance, so once its agent is
//! back and the engine has heard it, maintenance is cancelled, and the step waits until the host is
//! Available again. Powering and cancelling maintenance need `ManagePool` (the server's `ManageOobm`
//! and `ManagePool`: pool operators and pool admins).

#[path = "power_test_verdict.rs"]
pub mod verdict;

#[path = "report.rs"]
pub mod report;

use super::Wizard;
use crate::api_client;
use crate::components::badges::VmStateBadge;
use crate::components::dialog::{Dialog, FormError, focus_when_mounted};
use crate::components::format;
use crate::components::ha_state::{HaStateBadge, state_text};
use crate::i18n::{server_text, t, tf};
use crate::session::{Ability, Session};
use crate::store::Store;
use api::VmId;
use api::v1::{
    AgentConnection, HaIncident, HaIncidentEvent, HaIncidentQuery, HostAllocation, HostHaState, PowerAction, VmState,
    incident_event_kind as kind,
};
use chrono::{DateTime, Utc};
use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos::web_sys::HtmlElement;
use report::{ReportInput, ReportLinks, StateStep, VmLine};
use std::collections::{BTreeMap, BTreeSet};
use verdict::{DEADLINE_SECONDS, Verdict, VmWatch};

/// The states a powered-off host is expected to pass through, in order.
const MILESTONES: [HostHaState; 4] =
    [HostHaState::Suspect, HostHaState::Checking, HostHaState::Fencing, HostHaState::Fenced];

/// How long powering the host on and its return may take before the step says it did not come back.
const RETURN_DEADLINE_SECONDS: i64 = 600;

/// The step is done once the test has a verdict (tracked): the test host had an incident, and either
/// every protected test VM runs on another host or the incident has ended (the engine's own verdict).
pub fn power_test_done(wizard: Wizard) -> bool {
    let Some(store) = use_context::<Store>() else { return false };
    let (Some(host), ids) = (wizard.test_host.get(), wizard.test_vms.get()) else { return false };
    if ids.is_empty() {
        return false;
    }
    let (had_incident, ended) = store.incidents.with(|incidents| {
        let mine = incidents.values().filter(|incident| incident.host_id == host);
        let mut any = false;
        let mut ended = false;
        for incident in mine {
            any = true;
            ended |= incident.ended_at.is_some();
        }
        (any, ended)
    });
    let all_moved = store.vms.with(|vms| {
        ids.iter().all(|id| {
            vms.get(id).is_some_and(|vm| {
                !vm.ha_protected || (vm.state == VmState::Running && vm.host_id.is_some_and(|on| on != host))
            })
        })
    });
    had_incident && (all_moved || ended)
}

fn seconds_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

fn seconds_text(seconds: f64) -> String {
    tf("{seconds} s", &[("seconds", &format!("{:.0}", seconds.max(0.0)))])
}

/// Bringing the host back after the test.
#[derive(Clone, Debug, PartialEq)]
enum Return {
    Idle,
    PoweringOn,
    /// Powered on at this time: waiting for its agent and for the engine to hear it.
    WaitingForHost(DateTime<Utc>),
    CancellingMaintenance(DateTime<Utc>),
    WaitingAvailable(DateTime<Utc>),
    Done,
    Failed(String),
}

impl Return {
    fn word(&self) -> &'static str {
        match self {
            Return::Idle => "idle",
            Return::PoweringOn => "powering-on",
            Return::WaitingForHost(_) => "waiting-for-host",
            Return::CancellingMaintenance(_) => "cancelling-maintenance",
            Return::WaitingAvailable(_) => "waiting-available",
            Return::Done => "done",
            Return::Failed(_) => "failed",
        }
    }

    fn text(&self, host: &str) -> String {
        match self {
            Return::Idle => String::new(),
            Return::PoweringOn => tf("Powering {host} on…", &[("host", host)]),
            Return::WaitingForHost(_) => tf("Waiting for {host}'s agent to connect again…", &[("host", host)]),
            Return::CancellingMaintenance(_) => {
                tf("Taking {host} out of the maintenance HA put it into…", &[("host", host)])
            }
            Return::WaitingAvailable(_) => tf("Waiting until {host} is Available for HA again…", &[("host", host)]),
            Return::Done => tf("{host} is back in service and Available for HA.", &[("host", host)]),
            Return::Failed(why) => why.clone(),
        }
    }
}

#[component]
pub fn PowerTestStep(wizard: Wizard) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let may = session.may_untracked(Ability::ManagePool).is_ok();

    let off_at = RwSignal::new(None::<DateTime<Utc>>);
    let confirm_open = RwSignal::new(false);
    let off_pending = RwSignal::new(false);
    let off_error = RwSignal::new(None::<String>);
    let off_answer = RwSignal::new(None::<String>);
    // First time each test VM was seen running on another host: (host, seconds after the power-off).
    let seen_elsewhere = RwSignal::new(BTreeMap::<VmId, f64>::new());
    let ran_on_fenced = RwSignal::new(BTreeSet::<VmId>::new());
    let back = RwSignal::new(Return::Idle);

    Effect::new(move |_| super::deploy::adopt_test_vms(store, wizard));
    let host_id = Memo::new(move |_| wizard.test_host.get());
    let host = Memo::new(move |_| host_id.get().and_then(|id| store.host(id)));
    let host_name =
        Memo::new(move |_| host.with(|host| host.as_ref().map(|host| host.name.clone()).unwrap_or_default()));
    let ha = Memo::new(move |_| host_id.get().and_then(|id| store.host_ha(id)));
    let ha_state = Memo::new(move |_| ha.with(|ha| ha.as_ref().map(|ha| ha.state)));
    Effect::new(move |_| {
        if let Some(id) = host_id.get() {
            store.want_host_ha([id]);
        }
    });

    // The incident of this test: the host's newest one that began after the power-off.
    let incident = Memo::new(move |_| {
        let (Some(id), Some(off)) = (host_id.get(), off_at.get()) else { return None };
        store.incidents.with(|incidents| {
            incidents
                .values()
                .filter(|incident| incident.host_id == id && incident.started_at >= off - chrono::TimeDelta::seconds(5))
                .max_by_key(|incident| incident.started_at)
                .cloned()
        })
    });
    let incident_id = Memo::new(move |_| incident.with(|incident| incident.as_ref().map(|incident| incident.id)));
    let events = Memo::new(move |_| {
        let Some(id) = incident_id.get() else {
            return Vec::<HaIncidentEvent>::new();
        };
        store.incident_events.with(|timelines| timelines.get(&id).cloned().unwrap_or_default())
    });
    // The incident's whole timeline once it is known (steps before this page saw it), and again after a
    // reload; the incidents of the host after a reload (events may have been missed meanwhile).
    Effect::new(move |_| {
        if let Some(id) = incident_id.get() {
            store.reloads.track();
            spawn_local(async move {
                match api_client::ha_incident(id).await {
                    Ok(detail) => store.upsert_incident_detail(detail),
                    Err(failure) => session.notice(&failure),
                }
            });
        }
    });
    // The host's incidents on arrival and after every reload (events may have been missed meanwhile).
    Effect::new(move |_| {
        store.reloads.track();
        let Some(id) = host_id.get() else { return };
        spawn_local(async move {
            let query = HaIncidentQuery { host_id: Some(id), limit: Some(5) };
            match api_client::ha_incidents(&query).await {
                Ok(list) => store.upsert_incidents(list),
                Err(failure) => session.notice(&failure),
            }
        });
    });
    // Coming back to a test that is under way (a reload): its origin is the running incident's start.
    Effect::new(move |_| {
        if off_at.get().is_some() {
            return;
        }
        let Some(id) = host_id.get() else { return };
        let running = store.incidents.with(|incidents| {
            incidents
                .values()
                .filter(|incident| incident.host_id == id && incident.ended_at.is_none())
                .map(|incident| incident.started_at)
                .max()
        });
        if let Some(started) = running {
            off_at.set(Some(started));
        }
    });

    // Watch the test VMs: when each first runs elsewhere, and whether one runs on the fenced host.
    Effect::new(move |_| {
        let (Some(off), Some(failed)) = (off_at.get(), host_id.get()) else { return };
        let now = store.now.get();
        let fenced = ha_state.get() == Some(HostHaState::Fenced);
        let ids = wizard.test_vms.get();
        store.vms.with(|vms| {
            for id in &ids {
                let Some(vm) = vms.get(id) else { continue };
                if vm.state != VmState::Running {
                    continue;
                }
                match vm.host_id {
                    Some(on) if on != failed && !seen_elsewhere.with_untracked(|seen| seen.contains_key(id)) => {
                        let seconds = seconds_between(off, now);
                        seen_elsewhere.update(|seen| {
                            seen.insert(*id, seconds);
                        });
                    }
                    Some(on) if on == failed && fenced && !ran_on_fenced.with_untracked(|seen| seen.contains(id)) => {
                        ran_on_fenced.update(|seen| {
                            seen.insert(*id);
                        });
                    }
                    _ => {}
                }
            }
        });
    });

    let watches = Memo::new(move |_| {
        let off = off_at.get();
        let ids = wizard.test_vms.get();
        let events = events.get();
        store.vms.with(|vms| {
            ids.iter()
                .filter_map(|id| vms.get(id))
                .map(|vm| {
                    let mut mine = events.iter().filter(|event| event.vm_id == Some(vm.id));
                    let restarted: Vec<&HaIncidentEvent> =
                        mine.clone().filter(|event| event.kind == kind::VM_RESTARTED).collect();
                    let failure = mine
                        .rfind(|event| event.kind == kind::VM_RESTART_FAILED)
                        .map(|event| server_text(&event.message));
                    let by_event = match (off, restarted.first()) {
                        (Some(off), Some(event)) => Some(seconds_between(off, event.at)),
                        _ => None,
                    };
                    VmWatch {
                        id: vm.id,
                        name: vm.name.clone(),
                        protected: vm.ha_protected,
                        host: vm.host_id,
                        state: vm.state,
                        restarted_after: by_event.or_else(|| seen_elsewhere.with(|seen| seen.get(&vm.id).copied())),
                        restarts: restarted.len(),
                        restart_failure: failure,
                        ran_on_fenced_host: ran_on_fenced.with(|seen| seen.contains(&vm.id)),
                    }
                })
                .collect::<Vec<_>>()
        })
    });
    let elapsed = Memo::new(move |_| off_at.get().map(|off| seconds_between(off, store.now.get())));
    let outcome = Memo::new(move |_| {
        let Some(failed) = host_id.get() else { return Verdict::NotStarted };
        verdict::verdict(failed, &watches.get(), elapsed.get(), DEADLINE_SECONDS)
    });
    // The host's HA states since the power-off, oldest first.
    let steps = Memo::new(move |_| {
        let Some(off) = off_at.get() else { return Vec::new() };
        let mut found: Vec<StateStep> = ha.with(|ha| {
            ha.as_ref()
                .map(|ha| {
                    ha.transitions
                        .iter()
                        .filter(|transition| transition.at >= off - chrono::TimeDelta::seconds(1))
                        .map(|transition| StateStep {
                            state: transition.to.as_str(),
                            at: transition.at,
                            seconds: seconds_between(off, transition.at),
                        })
                        .collect()
                })
                .unwrap_or_default()
        });
        found.sort_by_key(|step| step.at);
        found
    });

    // ---- the report -----------------------------------------------------------------------------------
    let report_text = Memo::new(move |_| {
        let verdict = outcome.get();
        let failed_name = host_name.get();
        let vms = watches.with(|watches| {
            watches
                .iter()
                .map(|vm| VmLine {
                    name: vm.name.clone(),
                    id: vm.id.to_string(),
                    from_host: failed_name.clone(),
                    to_host: vm.host.filter(|on| Some(*on) != host_id.get()).map(|on| store.host_name(on)),
                    state: vm.state.as_str(),
                    protected: vm.protected,
                    seconds: vm.restarted_after,
                    restarts: vm.restarts,
                })
                .collect()
        });
        let incident_json = incident.get().map(|incident: HaIncident| {
            serde_json::json!({
                "id": incident.id.to_string(),
                "started_at": incident.started_at,
                "ended_at": incident.ended_at,
                "verdict": incident.verdict,
                "duration_seconds": incident.duration_seconds,
                "events": events.get(),
            })
        });
        let input = ReportInput {
            cluster: wizard.cluster.get().map(|id| store.cluster_name(id)).unwrap_or_default(),
            host: failed_name.clone(),
            host_id: host_id.get().map(|id| id.to_string()).unwrap_or_default(),
            powered_off_at: off_at.get(),
            deadline_seconds: DEADLINE_SECONDS,
            verdict: &verdict,
            states: steps.get(),
            vms,
            incident: incident_json,
            generated_at: Utc::now(),
        };
        serde_json::to_string_pretty(&report::report_json(&input)).unwrap_or_default()
    });

    // ---- powering off -----------------------------------------------------------------------------------
    // Why the test cannot start now, if it cannot.
    let not_ready = Memo::new(move |_| {
        let Some(host) = host.get() else {
            return Some(t("Deploy the test VMs onto a host in step 7 first."));
        };
        if wizard.test_vms.with(Vec::is_empty) {
            return Some(t("Deploy the test VMs onto a host in step 7 first."));
        }
        if !host.oobm_enabled_effective {
            return Some(t(
                "Out-of-band management is not in effect for this host: configure and enable it in steps 3 and 4.",
            ));
        }
        if ha_state.get() != Some(HostHaState::Available) {
            return Some(t("The host is not Available for HA: see step 5 for why."));
        }
        if !super::deploy::deploy_done(wizard) {
            return Some(t("Wait until every test VM runs with HA protection (step 7)."));
        }
        None
    });
    // The VMs that go down with the host: every VM with a live process there, test VMs first.
    let at_risk = Memo::new(move |_| {
        let Some(id) = host_id.get() else { return Vec::new() };
        let tests = wizard.test_vms.get();
        store.vms.with(|vms| {
            let mut found: Vec<(bool, String, VmState, bool)> = vms
                .values()
                .filter(|vm| vm.host_id == Some(id))
                .filter(|vm| {
                    matches!(
                        vm.state,
                        VmState::Running
                            | VmState::Starting
                            | VmState::Stopping
                            | VmState::Migrating
                            | VmState::Unknown
                    )
                })
                .map(|vm| (!tests.contains(&vm.id), vm.name.clone(), vm.state, vm.ha_protected))
                .collect();
            found.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
            found
        })
    });
    let power_off = move || {
        let Some(id) = host_id.get_untracked() else { return };
        off_pending.set(true);
        off_error.set(None);
        seen_elsewhere.set(BTreeMap::new());
        ran_on_fenced.set(BTreeSet::new());
        off_at.set(Some(Utc::now()));
        spawn_local(async move {
            match api_client::oobm_power(id, PowerAction::Off).await {
                Ok(result) => {
                    confirm_open.set(false);
                    off_answer.set(Some(tf(
                        "The BMC accepted OFF in {ms} ms. Watch the host and the test VMs below.",
                        &[("ms", &result.elapsed_ms.to_string())],
                    )));
                }
                Err(failure) => {
                    session.notice(&failure);
                    off_at.set(None);
                    off_error.set(Some(server_text(&failure.to_string())));
                }
            }
            off_pending.set(false);
        });
    };

    // ---- bringing the host back ----------------------------------------------------------------------
    let power_on = move || {
        let Some(id) = host_id.get_untracked() else { return };
        back.set(Return::PoweringOn);
        spawn_local(async move {
            match api_client::oobm_power(id, PowerAction::On).await {
                Ok(_) => back.set(Return::WaitingForHost(Utc::now())),
                Err(failure) => {
                    session.notice(&failure);
                    back.set(Return::Failed(server_text(&failure.to_string())));
                }
            }
        });
    };
    // Advances the return as the store shows the host come back.
    Effect::new(move |_| {
        let phase = back.get();
        let (Some(id), Some(host)) = (host_id.get(), host.get()) else { return };
        let state = ha_state.get();
        let now = store.now.get();
        let since = match phase {
            Return::WaitingForHost(since) | Return::CancellingMaintenance(since) | Return::WaitingAvailable(since) => {
                since
            }
            _ => return,
        };
        if (now - since).num_seconds() > RETURN_DEADLINE_SECONDS && phase != Return::CancellingMaintenance(since) {
            back.set(Return::Failed(tf(
                "{host} did not come back within 10 minutes; see its page for why.",
                &[("host", &host.name)],
            )));
            return;
        }
        match phase {
            // The agent is back and the engine has heard it (no longer Fenced).
            Return::WaitingForHost(_)
                if host.connection == AgentConnection::Connected
                    && state.is_some_and(|state| state != HostHaState::Fenced) =>
            {
                let in_maintenance = host.allocation == HostAllocation::Maintenance || host.maintenance.is_some();
                if !in_maintenance {
                    back.set(Return::WaitingAvailable(since));
                    return;
                }
                back.set(Return::CancellingMaintenance(since));
                spawn_local(async move {
                    match api_client::cancel_maintenance(id).await {
                        Ok(host) => {
                            store.upsert_host(host);
                            back.set(Return::WaitingAvailable(since));
                        }
                        Err(failure) => {
                            session.notice(&failure);
                            back.set(Return::Failed(server_text(&failure.to_string())));
                        }
                    }
                });
            }
            Return::WaitingAvailable(_) if state == Some(HostHaState::Available) => back.set(Return::Done),
            _ => {}
        }
    });
    let may_return = Memo::new(move |_| {
        let off = host.with(|host| host.as_ref().is_some_and(|host| host.connection == AgentConnection::Disconnected));
        matches!(ha_state.get(), Some(HostHaState::Fenced)) || (off_at.get().is_some() && off)
    });

    // ---- views ----------------------------------------------------------------------------------------
    let milestones = move || {
        let reached = steps.get();
        MILESTONES
            .into_iter()
            .map(|state| {
                let step = reached.iter().find(|step| step.state == state.as_str()).cloned();
                let done = step.is_some();
                view! {
                    <li class="wizard-milestone" class:wizard-milestone-reached=done data-ha-milestone=state.as_str() data-reached=done.to_string()>
                        <span class="wizard-milestone-state">{state_text(state)}</span>
                        <span class="wizard-milestone-time">
                            {step.map(|step| seconds_text(step.seconds)).unwrap_or_else(|| "—".to_owned())}
                        </span>
                    </li>
                }
            })
            .collect_view()
    };
    let transitions = move || {
        let list = steps.get();
        (!list.is_empty()).then(|| {
            view! {
                <table class="table wizard-transitions" aria-label=t("Host HA states since the power-off")>
                    <thead>
                        <tr>
                            <th scope="col">{t("State")}</th>
                            <th scope="col">{t("After the power-off")}</th>
                        </tr>
                    </thead>
                    <tbody>
                        {list
                            .into_iter()
                            .map(|step| {
                                let state = HostHaState::parse(step.state).unwrap_or_default();
                                view! {
                                    <tr>
                                        <td><HaStateBadge state /></td>
                                        <td class="num">{seconds_text(step.seconds)}</td>
                                    </tr>
                                }
                            })
                            .collect_view()}
                    </tbody>
                </table>
            }
        })
    };
    let vm_rows = move || {
        let failed = host_id.get();
        let waiting = elapsed.get().is_some();
        watches
            .get()
            .into_iter()
            .map(|vm| {
                let on = vm.host.map(|on| store.host_name(on)).unwrap_or_default();
                let moved = failed.is_some_and(|failed| vm.running_elsewhere(failed));
                let result = if !vm.protected {
                    t("Not protected by HA: not restarted").to_owned()
                } else if moved {
                    tf(
                        "Running on {host} after {seconds}",
                        &[("host", &on), ("seconds", &vm.restarted_after.map(seconds_text).unwrap_or_default())],
                    )
                } else if let Some(failure) = vm.restart_failure.clone() {
                    failure
                } else if waiting {
                    t("Waiting for HA to restart it…").to_owned()
                } else {
                    t("Running on the test host").to_owned()
                };
                let name = vm.name.clone();
                let (testid, attr) = (format!("wizard-power-vm-{name}"), name.clone());
                let state = vm.state;
                view! {
                    <tr
                        data-testid=testid
                        data-vm-name=attr
                        data-vm-state=state.as_str()
                        data-moved=moved.to_string()
                    >
                        <th scope="row">{name}</th>
                        <td>{on}</td>
                        <td><VmStateBadge state /></td>
                        <td>{result}</td>
                    </tr>
                }
            })
            .collect_view()
    };
    let verdict_view = move || {
        let verdict = outcome.get();
        let word = verdict.word();
        let body = match &verdict {
            Verdict::NotStarted => view! { <p>{t("Not run yet: power the host off to start the test.")}</p> }.into_any(),
            Verdict::InProgress => view! {
                <p>
                    {tf(
                        "In progress: {seconds} since the power-off; every protected test VM must run on another host within {deadline}.",
                        &[("seconds", &elapsed.get().map(seconds_text).unwrap_or_default()), ("deadline", &seconds_text(DEADLINE_SECONDS))],
                    )}
                </p>
            }
            .into_any(),
            Verdict::Pass => view! {
                <p>
                    <strong>{t("Pass")}</strong>
                    " "
                    {t("Every protected test VM runs on another host, started once, within the deadline.")}
                </p>
            }
            .into_any(),
            Verdict::Fail(reasons) => view! {
                <p><strong>{t("Fail")}</strong></p>
                <ul>{reasons.iter().map(|reason| view! { <li>{reason.clone()}</li> }).collect_view()}</ul>
            }
            .into_any(),
        };
        view! {
            <div class=format!("wizard-verdict wizard-verdict-{word}") role="status" data-testid="wizard-verdict" data-verdict=word>
                {body}
            </div>
        }
    };
    let incident_line = move || {
        incident.get().map(|incident| {
            let link = format!("/ha/incidents/{}", incident.id);
            let status = match &incident.verdict {
                Some(verdict) => tf("Incident ended: {verdict}.", &[("verdict", &server_text(verdict))]),
                None => t("Incident in progress.").to_owned(),
            };
            view! {
                <p class="wizard-incident">
                    {status}
                    " "
                    <a href=link>{t("Open the incident")}</a>
                </p>
            }
        })
    };

    let confirm_button = NodeRef::<html::Button>::new();
    let off_button = NodeRef::<html::Button>::new();
    // Closing the confirmation without powering off gives the focus back to the button that opened it.
    let close_confirm = move || {
        confirm_open.set(false);
        if let Some(button) = off_button.get_untracked() {
            let _ = HtmlElement::from(button).focus();
        }
    };
    let confirm_dialog = move || {
        confirm_open.get().then(|| {
            focus_when_mounted(move || confirm_button.get().map(HtmlElement::from));
            let name = host_name.get_untracked();
            let vms = at_risk.get();
            let list = if vms.is_empty() {
                view! { <p>{tf("No VMs run on {host} now.", &[("host", &name)])}</p> }.into_any()
            } else {
                view! {
                    <p>{tf("These VMs go down with {host}:", &[("host", &name)])}</p>
                    <ul class="power-vms" aria-label=tf("VMs running on {host}", &[("host", &name)])>
                        {vms
                            .into_iter()
                            .map(|(other, vm, state, protected)| {
                                let note = match (other, protected) {
                                    (false, _) => t("test VM, protected by HA"),
                                    (true, true) => t("protected by HA"),
                                    (true, false) => t("not protected: stays off"),
                                };
                                let attr = vm.clone();
                                view! {
                                    <li data-vm-name=attr>
                                        <span>{vm}</span>
                                        " "
                                        <VmStateBadge state />
                                        " "
                                        <span class="field-hint">{note}</span>
                                    </li>
                                }
                            })
                            .collect_view()}
                    </ul>
                }
                .into_any()
            };
            let title = tf("Power off {host}?", &[("host", &name)]);
            let label = tf("Power off {host}", &[("host", &name)]);
            view! {
                <Dialog title on_close=Callback::new(move |()| close_confirm())>
                    <div class="dialog-form power-confirm">
                        <p class="host-warning" role="alert">
                            {tf("OFF {host}: the host loses its power at once, like pulling the plug, and stays off.", &[("host", &name)])}
                        </p>
                        {list}
                        <FormError error=off_error />
                        <div class="dialog-actions">
                            <button type="button" class="button button-quiet" on:click=move |_| close_confirm()>
                                {t("Cancel")}
                            </button>
                            <button
                                type="button"
                                class="button button-danger"
                                node_ref=confirm_button
                                data-testid="wizard-power-off-confirm"
                                disabled=move || off_pending.get()
                                on:click=move |_| power_off()
                            >
                                {label}
                            </button>
                        </div>
                    </div>
                </Dialog>
            }
        })
    };

    let controls = move || {
        if !may {
            return view! {
                <p class="wizard-role-note" data-testid="wizard-role-note-power">
                    {t("Only pool operators and pool admins can power the host off and on; your role can watch the test here.")}
                </p>
            }
            .into_any();
        }
        let name = host_name.get();
        let started = off_at.get().is_some();
        view! {
            <div class="wizard-actions">
                {(!started)
                    .then(|| {
                        let blocked = not_ready.get();
                        view! {
                            <button
                                type="button"
                                class="button button-danger"
                                data-testid="wizard-power-off"
                                node_ref=off_button
                                disabled=blocked.is_some()
                                on:click=move |_| {
                                    off_error.set(None);
                                    confirm_open.set(true);
                                }
                            >
                                {tf("Power off {host}…", &[("host", &name)])}
                            </button>
                            {blocked.map(|why| view! { <p class="wizard-status wizard-status-blocked">{why}</p> })}
                        }
                    })}
                {move || {
                    may_return
                        .get()
                        .then(|| {
                            let busy = !matches!(back.get(), Return::Idle | Return::Failed(_));
                            view! {
                                <button
                                    type="button"
                                    class="button button-primary"
                                    data-testid="wizard-power-on"
                                    disabled=busy
                                    on:click=move |_| power_on()
                                >
                                    {tf("Power {host} on and return it to service", &[("host", &host_name.get_untracked())])}
                                </button>
                            }
                        })
                }}
            </div>
        }
        .into_any()
    };
    let return_status = move || {
        let phase = back.get();
        (phase != Return::Idle).then(|| {
            let failed = matches!(phase, Return::Failed(_));
            let ok = phase == Return::Done;
            view! {
                <p
                    class="wizard-status"
                    class:wizard-status-ok=ok
                    class:form-error=failed
                    role="status"
                    data-testid="wizard-return-status"
                    data-phase=phase.word()
                >
                    {phase.text(&host_name.get())}
                </p>
            }
        })
    };

    view! {
        <div class="wizard-step wizard-step-power">
            <p class="wizard-intro">
                {t("The test host is switched off through out-of-band management, like pulling its plug. HA should notice, fence the host and restart its protected VMs on other hosts, each once.")}
            </p>
            <p class="wizard-host-line">
                {move || tf("Test host: {host}", &[("host", &host_name.get())])}
                " "
                <span data-testid="wizard-host-ha">
                    {move || ha_state.get().map(|state| view! { <HaStateBadge state /> })}
                </span>
            </p>
            {controls}
            {move || off_answer.get().map(|answer| view! { <p class="wizard-status" role="status">{answer}</p> })}
            {move || (!confirm_open.get()).then(|| off_error.get()).flatten().map(|error| view! { <p class="form-error" role="alert">{error}</p> })}
            {confirm_dialog}
            {return_status}
            <section class="wizard-report" aria-labelledby="wizard-report-title">
                <h3 id="wizard-report-title">
                    {move || tf("HA power-off test of {host}", &[("host", &host_name.get())])}
                </h3>
                {move || {
                    off_at
                        .get()
                        .map(|at| {
                            view! { <p>{tf("Powered off at {time}.", &[("time", &format::timestamp(at))])}</p> }
                        })
                }}
                {verdict_view}
                {incident_line}
                <h4>{t("Host HA state")}</h4>
                <ol class="wizard-milestones" aria-label=t("Expected HA states")>{milestones}</ol>
                {transitions}
                <h4>{t("Test VMs")}</h4>
                <table class="table wizard-vms" aria-label=t("Test VMs after the power-off")>
                    <thead>
                        <tr>
                            <th scope="col">{t("VM")}</th>
                            <th scope="col">{t("Host")}</th>
                            <th scope="col">{t("State")}</th>
                            <th scope="col">{t("Result")}</th>
                        </tr>
                    </thead>
                    <tbody>{vm_rows}</tbody>
                </table>
            </section>
            <Show when=move || off_at.get().is_some()>
                <ReportLinks
                    json=Signal::derive(move || report_text.get())
                    file=Signal::derive(move || report::file_name(&host_name.get()))
                />
            </Show>
        </div>
    }
}
