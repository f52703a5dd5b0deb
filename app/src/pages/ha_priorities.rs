//! The "Restart priorities" part of a cluster's HA plan page: the cluster's VMs, each with a "Restart
//! priority" select. Choosing a priority is a what-if: the plan above is recomputed at once and nothing
//! is saved. "Save priorities" (pool operators and up) then sends each changed VM's HA settings, one at
//! a time, through admission control, so the overcommit warning may come first for any of them.
//!
//! A VM the planner sees as "do not restart" because it is not HA-protected becomes protected when it
//! is given another priority.
//!
//! Each row also edits the VM's start order (lower starts first; one order starts together) and the
//! delay after its order group. They do not change the plan, so they are edits of this table only,
//! saved with the priorities.

use crate::api_client;
use crate::components::admission::run_admitted;
use crate::components::badges::VmStateBadge;
use crate::components::dialog::{FormError, WhyNot};
use crate::components::format;
use crate::components::table::{DataTable, EmptyRow};
use crate::i18n::{t, tf};
use crate::pages::ha_plan::{PlanState, effective_priority};
use crate::session::{Ability, Session};
use crate::store::Store;
use api::VmId;
use api::v1::{RestartPriority, UpdateVmHaRequest, Vm, VmState};
use leptos::prelude::*;
use leptos::task::spawn_local;
use std::collections::BTreeMap;

/// The HA settings that give `vm` the planner priority `priority`.
fn priority_request(vm: &Vm, priority: RestartPriority) -> UpdateVmHaRequest {
    UpdateVmHaRequest {
        ha_protected: (!vm.ha_protected && priority != RestartPriority::DoNotRestart).then_some(true),
        restart_priority: Some(priority),
        ..Default::default()
    }
}

/// An edited start order and delay (seconds) of one VM.
type OrderEdit = (i32, u32);

/// Whether the planner counts the VM: it holds room on a host.
fn planned(state: VmState) -> bool {
    matches!(state, VmState::Running | VmState::Starting | VmState::Stopping | VmState::Migrating | VmState::Unknown)
}

#[component]
pub fn PriorityTable(state: PlanState) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    // Read once, untracked: see crate::components::vm_power.
    let permitted = session.may_untracked(Ability::ManageHa);
    let can_save = permitted.is_ok();
    let cluster = state.cluster;
    let vm_ids = move || store.vm_ids(|vm| vm.cluster_id == Some(cluster));
    let orders = RwSignal::new(BTreeMap::<VmId, OrderEdit>::new());
    let changed = Memo::new(move |_| {
        state.edits.with(|edits| {
            orders.with(|orders| edits.len() + orders.keys().filter(|id| !edits.contains_key(id)).count())
        })
    });
    let progress = RwSignal::new(None::<String>);
    let error = RwSignal::new(None::<String>);
    let notice = RwSignal::new(None::<String>);
    let busy = move || progress.with(Option::is_some);

    let save = move |_| {
        if !can_save || progress.get_untracked().is_some() {
            return;
        }
        let edits = state.edits.get_untracked();
        let order_edits = orders.get_untracked();
        // In the table's order (by name), each with the settings to send.
        let order: Vec<(VmId, String, UpdateVmHaRequest)> = store.vms.with_untracked(|vms| {
            untrack(vm_ids)
                .into_iter()
                .filter_map(|id| {
                    let vm = vms.get(&id)?;
                    let priority = edits.get(&id).copied();
                    let start = order_edits.get(&id).copied();
                    if priority.is_none() && start.is_none() {
                        return None;
                    }
                    let mut request = priority.map(|priority| priority_request(vm, priority)).unwrap_or_default();
                    if let Some((start_order, delay)) = start {
                        request.start_order = Some(start_order);
                        request.start_delay_seconds = Some(delay);
                    }
                    Some((vm.id, vm.name.clone(), request))
                })
                .collect()
        });
        error.set(None);
        notice.set(None);
        spawn_local(async move {
            let total = order.len();
            for (index, (id, name, request)) in order.into_iter().enumerate() {
                progress.set(Some(tf(
                    "Saving {name} ({index} of {total})…",
                    &[("name", &name), ("index", &(index + 1).to_string()), ("total", &total.to_string())],
                )));
                match run_admitted(store, |choice| api_client::update_vm_ha(id, &request, choice)).await {
                    Some(Ok(vm)) => {
                        store.upsert_vm(vm);
                        state.edits.update(|edits| {
                            edits.remove(&id);
                        });
                        orders.update(|orders| {
                            orders.remove(&id);
                        });
                    }
                    Some(Err(failure)) => {
                        session.notice(&failure);
                        error.set(Some(tf("{name}: {error}", &[("name", &name), ("error", &failure.to_string())])));
                        break;
                    }
                    None => {
                        notice.set(Some(tf(
                            "Stopped at {name}: cancelled at the overcommit warning. The changes left are not saved.",
                            &[("name", &name)],
                        )));
                        break;
                    }
                }
            }
            progress.set(None);
            if state.edits.with_untracked(BTreeMap::is_empty) && orders.with_untracked(BTreeMap::is_empty) {
                notice.set(Some(t("Restart priorities saved.").to_owned()));
            }
        });
    };
    let discard = move |_| {
        state.edits.set(BTreeMap::new());
        orders.set(BTreeMap::new());
        notice.set(None);
        error.set(None);
    };

    view! {
        <section class="panel ha-priorities" aria-labelledby="ha-priorities-heading">
            <h2 id="ha-priorities-heading">{t("Restart priorities")}</h2>
            <p class="field-hint">
                {t("Changing a priority recomputes the plan above at once. Nothing is saved until you press Save priorities.")}
            </p>
            <DataTable label=t("Restart priorities of the cluster's VMs")>
                <thead>
                    <tr>
                        <th scope="col">{t("VM")}</th>
                        <th scope="col">{t("State")}</th>
                        <th scope="col">{t("Host")}</th>
                        <th scope="col">{t("Memory")}</th>
                        <th scope="col">{t("CPU")}</th>
                        <th scope="col">{t("Restart priority")}</th>
                        <th scope="col">{t("Start order")}</th>
                        <th scope="col">{t("Delay after its group (s)")}</th>
                    </tr>
                </thead>
                <tbody>
                    <Show when=move || vm_ids().is_empty()>
                        <EmptyRow columns=8 text=t("This cluster has no VMs.") />
                    </Show>
                    <For each=vm_ids key=|id| *id children=move |id| view! { <PriorityRow state orders id /> } />
                </tbody>
            </DataTable>
            <div class="form-actions ha-priority-actions">
                {can_save
                    .then(|| {
                        view! {
                            <button
                                type="button"
                                class="button button-primary"
                                disabled=move || changed.get() == 0 || busy()
                                on:click=save
                            >
                                {t("Save priorities")}
                            </button>
                        }
                    })}
                <button type="button" class="button" disabled=move || changed.get() == 0 || busy() on:click=discard>
                    {t("Discard changes")}
                </button>
                <span class="muted">
                    {move || match changed.get() {
                        0 => t("No unsaved changes").to_owned(),
                        1 => t("1 change not saved").to_owned(),
                        n => tf("{count} changes not saved", &[("count", &n.to_string())]),
                    }}
                </span>
            </div>
            {move || progress.get().map(|text| view! { <p class="in-progress" role="status">{text}</p> })}
            <FormError error />
            {move || notice.get().map(|text| view! { <p class="ha-notice" role="status">{text}</p> })}
            {permitted.err().map(|reason| view! { <WhyNot action=t("save restart priorities") reason /> })}
        </section>
    }
}

/// One VM with its priority select; an unsaved choice is marked.
#[component]
fn PriorityRow(state: PlanState, orders: RwSignal<BTreeMap<VmId, OrderEdit>>, id: VmId) -> impl IntoView {
    let store = Store::expect();
    let vm = Memo::new(move |_| store.vm(id));
    let saved_start = Memo::new(move |_| vm.with(|vm| vm.as_ref().map(|vm| (vm.start_order, vm.start_delay_seconds))));
    let start = Memo::new(move |_| orders.with(|orders| orders.get(&id).copied()).or(saved_start.get()));
    let start_invalid = RwSignal::new(false);
    // `which`: 0 = order, 1 = delay. A value that is not a whole number (or a negative delay) is marked
    // and not kept.
    let edit_start = move |which: u8, text: String| {
        let (Some(saved), Some(current)) = (saved_start.get_untracked(), start.get_untracked()) else { return };
        let next = match which {
            0 => text.trim().parse::<i32>().ok().map(|order| (order, current.1)),
            _ => text.trim().parse::<u32>().ok().map(|delay| (current.0, delay)),
        };
        start_invalid.set(next.is_none());
        if let Some(next) = next {
            orders.update(|orders| {
                if next == saved {
                    orders.remove(&id);
                } else {
                    orders.insert(id, next);
                }
            });
        }
    };
    let saved = Memo::new(move |_| {
        vm.with(|vm| vm.as_ref().map(|vm| effective_priority(vm.ha_protected, vm.restart_priority)))
    });
    let edited = Memo::new(move |_| state.edits.with(|edits| edits.get(&id).copied()));
    let chosen = Memo::new(move |_| edited.get().or(saved.get()));
    let choose = move |word: String| {
        let (Some(priority), Some(saved)) = (format::parse_priority(&word), saved.get_untracked()) else {
            return;
        };
        state.edits.update(|edits| {
            if priority == saved {
                edits.remove(&id);
            } else {
                edits.insert(id, priority);
            }
        });
    };
    let options = move || {
        format::PRIORITIES
            .into_iter()
            .map(|priority| {
                view! {
                    <option
                        value=format::priority_word(priority)
                        prop:selected=move || chosen.get() == Some(priority)
                    >
                        {format::priority_label(priority)}
                    </option>
                }
            })
            .collect_view()
    };
    move || {
        vm.get().map(|vm| {
            let host = vm.host_id.map_or_else(|| t("not placed").to_owned(), |host| store.host_name(host));
            let note = (!planned(vm.state)).then(|| t("not running: not in the plan"));
            view! {
                <tr class=move || {
                    if edited.get().is_some() || orders.with(|orders| orders.contains_key(&id)) { "ha-edited" } else { "" }
                }>
                    <th scope="row">
                        <a href=format!("/vms/{}", vm.id)>{vm.name.clone()}</a>
                    </th>
                    <td>
                        <VmStateBadge state=vm.state />
                    </td>
                    <td>{host}</td>
                    <td>{format::memory(vm.resources.memory_mb)}</td>
                    <td>{format!("{} MHz", vm.resources.cpu_mhz)}</td>
                    <td>
                        <div class="ha-priority-cell">
                            <select
                                aria-label=tf("Restart priority of {name}", &[("name", &vm.name)])
                                on:change:target=move |event| choose(event.target().value())
                            >
                                {options}
                            </select>
                            {move || {
                                edited.get().is_some().then(|| view! { <span class="ha-changed">{t("changed")}</span> })
                            }}
                            {note.map(|note| view! { <span class="field-hint">{note}</span> })}
                        </div>
                    </td>
                    <td>
                        <input
                            type="number"
                            class="ha-start-input"
                            step="1"
                            aria-label=tf("Start order of {name}", &[("name", &vm.name)])
                            aria-invalid=move || if start_invalid.get() { "true" } else { "false" }
                            prop:value=move || start.get().map(|(order, _)| order.to_string()).unwrap_or_default()
                            on:change:target=move |event| edit_start(0, event.target().value())
                        />
                    </td>
                    <td>
                        <input
                            type="number"
                            class="ha-start-input"
                            min="0"
                            step="1"
                            aria-label=tf("Delay after the start order group of {name}, in seconds", &[("name", &vm.name)])
                            aria-invalid=move || if start_invalid.get() { "true" } else { "false" }
                            prop:value=move || start.get().map(|(_, delay)| delay.to_string()).unwrap_or_default()
                            on:change:target=move |event| edit_start(1, event.target().value())
                        />
                    </td>
                </tr>
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planned_vms_hold_room_on_a_host() {
        assert!(planned(VmState::Running));
        assert!(planned(VmState::Unknown));
        assert!(!planned(VmState::Stopped));
        assert!(!planned(VmState::Error));
    }
}
