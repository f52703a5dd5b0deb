//! "Simulate failure" on a cluster's HA plan page: tick the hosts that fail (in the order ticked),
//! press "Simulate", and see where each protected (and best-effort) VM of those hosts would restart, or
//! why it cannot. It asks the planner (`POST /ha/plan/simulate`) with the pool the page shows, unsaved
//! priority changes included; nothing changes on the server.

use crate::api_client;
use crate::components::dialog::FormError;
use crate::components::format;
use crate::components::table::{DataTable, EmptyRow};
use crate::i18n::{server_text, t, tf};
use crate::pages::ha_plan::PlanState;
use crate::session::Session;
use api::v1::{PlanFailure, PlanSimulateRequest, RestartPriority};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::collections::BTreeMap;

/// One simulation's answer, with each VM's priority as planned.
#[derive(Clone)]
struct Outcome {
    failure: PlanFailure,
    priorities: BTreeMap<String, RestartPriority>,
    what_if: bool,
}

/// "kvm-a1", "kvm-a1 and kvm-a2", "kvm-a1, kvm-a2 and kvm-a3".
fn names_text(names: &[String]) -> String {
    match names {
        [] => String::new(),
        [only] => only.clone(),
        [first @ .., last] => tf("{first} and {last}", &[("first", &first.join(", ")), ("last", last)]),
    }
}

/// `names` with `name` ticked or unticked; ticking adds at the end, so the order is the failure order.
fn toggled(names: &[String], name: &str, ticked: bool) -> Vec<String> {
    let mut names: Vec<String> = names.iter().filter(|known| *known != name).cloned().collect();
    if ticked {
        names.push(name.to_owned());
    }
    names
}

#[component]
pub fn FailureSimulation(state: PlanState) -> impl IntoView {
    let session = Session::expect();
    let hosts = Memo::new(move |_| {
        state.live.with(|plan| {
            plan.as_ref()
                .map(|plan| plan.pool.hosts.iter().map(|host| (host.name.clone(), host.live)).collect::<Vec<_>>())
                .unwrap_or_default()
        })
    });
    let failing = RwSignal::new(Vec::<String>::new());
    let outcome = RwSignal::new(None::<Outcome>);
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);

    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let fail = failing.get_untracked();
        if fail.is_empty() {
            error.set(Some(t("Hosts that fail: tick at least one host.").to_owned()));
            return;
        }
        let Some(pool) = state.pool_untracked() else {
            error.set(Some(t("The failover plan is not loaded yet.").to_owned()));
            return;
        };
        let what_if = state.what_if.with_untracked(Option::is_some);
        let priorities = pool.vms.iter().map(|vm| (vm.name.clone(), vm.priority)).collect();
        error.set(None);
        pending.set(true);
        spawn_local(async move {
            let request = PlanSimulateRequest { pool, fail: Some(fail), admit_start: None, on: None };
            match api_client::simulate_plan(&request).await {
                Ok(response) => match response.failures.into_iter().next() {
                    Some(failure) => outcome.set(Some(Outcome { failure, priorities, what_if })),
                    None => error.set(Some(t("The planner gave no answer for these hosts.").to_owned())),
                },
                Err(failure) => {
                    session.notice(&failure);
                    error.set(Some(failure.to_string()));
                }
            }
            pending.set(false);
        });
    };
    let checkbox = move |(name, live): (String, bool)| {
        let ticked_name = name.clone();
        let toggled_name = name.clone();
        view! {
            <label class="checkbox">
                <input
                    type="checkbox"
                    disabled=!live
                    prop:checked=move || failing.with(|failing| failing.contains(&ticked_name))
                    on:change:target=move |event| {
                        let ticked = event.target().checked();
                        failing.update(|failing| *failing = toggled(failing, &toggled_name, ticked));
                    }
                />
                {name}
                {(!live)
                    .then(|| {
                        view! { <span class="field-hint">{t("(down or not taking VMs: already counted as failed)")}</span> }
                    })}
            </label>
        }
    };

    view! {
        <section class="panel ha-simulate" aria-labelledby="ha-simulate-heading">
            <h2 id="ha-simulate-heading">{t("Simulate failure")}</h2>
            <form class="ha-simulate-form" on:submit=on_submit novalidate>
                <fieldset class="ha-hosts">
                    <legend>{t("Hosts that fail")}</legend>
                    {move || hosts.get().into_iter().map(checkbox).collect_view()}
                </fieldset>
                <div class="form-actions">
                    <button type="submit" class="button button-primary" disabled=move || pending.get()>
                        {move || if pending.get() { t("Simulating…") } else { t("Simulate") }}
                    </button>
                    <span class="muted">{move || failing.with(|failing| names_text(failing))}</span>
                </div>
            </form>
            <FormError error />
            {move || outcome.get().map(|outcome| view! { <OutcomeView outcome /> })}
        </section>
    }
}

#[component]
fn OutcomeView(outcome: Outcome) -> impl IntoView {
    let Outcome { failure, priorities, what_if } = outcome;
    let (class, verdict) = if failure.protected_all_restart {
        ("ha-good", t("Every protected VM restarts."))
    } else {
        ("ha-bad", t("Some protected VMs cannot restart."))
    };
    let empty = failure.placements.is_empty();
    let failed = names_text(&failure.failed);
    let heading = if failure.failed.len() == 1 {
        tf("If {hosts} fails", &[("hosts", &failed)])
    } else {
        tf("If {hosts} fail", &[("hosts", &failed)])
    };
    let rows = failure
        .placements
        .into_iter()
        .map(|placement| {
            let priority = priorities.get(&placement.vm).copied().map_or("", format::priority_label);
            let target = match (placement.host, placement.reason) {
                (Some(host), _) => view! { <td>{host}</td> }.into_any(),
                (None, reason) => view! {
                    <td class="ha-no-restart">
                        {tf(
                            "Does not restart: {reason}",
                            &[("reason", &reason.map_or_else(|| t("no room").to_owned(), |reason| server_text(&reason)))],
                        )}
                    </td>
                }
                .into_any(),
            };
            view! {
                <tr>
                    <th scope="row">{placement.vm}</th>
                    <td>{priority}</td>
                    {target}
                </tr>
            }
        })
        .collect_view();
    view! {
        <div class="ha-outcome">
            <h3>{heading}</h3>
            <p class=format!("ha-outcome-verdict {class}") role="status">
                {verdict}
            </p>
            {what_if
                .then(|| {
                    view! { <p class="ha-what-if">{t("With the restart priorities chosen above, not saved yet.")}</p> }
                })}
            <DataTable label=t("Where the VMs go")>
                <thead>
                    <tr>
                        <th scope="col">{t("VM")}</th>
                        <th scope="col">{t("Restart priority")}</th>
                        <th scope="col">{t("Restarts on")}</th>
                    </tr>
                </thead>
                <tbody>
                    {empty
                        .then(|| {
                            view! { <EmptyRow columns=3 text=t("No protected or best-effort VM runs on these hosts.") /> }
                        })}
                    {rows}
                </tbody>
            </DataTable>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_lists_read_as_a_sentence() {
        let names = |list: &[&str]| list.iter().map(|name| (*name).to_owned()).collect::<Vec<_>>();
        assert_eq!(names_text(&names(&["a"])), "a");
        assert_eq!(names_text(&names(&["a", "b", "c"])), "a, b and c");
    }

    #[test]
    fn ticking_keeps_the_failure_order() {
        let ticked = toggled(&toggled(&[], "b", true), "a", true);
        assert_eq!(ticked, vec!["b".to_owned(), "a".to_owned()]);
        assert_eq!(toggled(&ticked, "b", false), vec!["a".to_owned()]);
    }
}
