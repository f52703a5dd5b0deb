//! The VM list: every VM (its name linking to its page) with its state badge, placement, size, HA
//! protection and Start/Stop buttons, filterable by name and state, and the "Deploy VM" button. Rows
//! update live from the store.

use crate::components::badges::{FlagBadge, VmStateBadge, vm_state_label};
use crate::components::deploy_dialog::DeployVmButton;
use crate::components::error_view::{ErrorView, Loading};
use crate::components::format;
use crate::components::table::{DataTable, EmptyRow};
use crate::components::time::RelativeTime;
use crate::components::vm_power::VmPowerButtons;
use crate::i18n::{server_text, t, tf};
use crate::store::Store;
use api::VmId;
use api::v1::{RestartPriority, Vm, VmState};
use leptos::prelude::*;

const STATES: [VmState; 7] = [
    VmState::Running,
    VmState::Starting,
    VmState::Stopping,
    VmState::Migrating,
    VmState::Stopped,
    VmState::Unknown,
    VmState::Error,
];

#[component]
pub fn VmsPage() -> impl IntoView {
    let store = Store::expect();
    let search = RwSignal::new(String::new());
    let state_filter = RwSignal::new(String::new());
    let keep = move |vm: &Vm| {
        let search = search.with(|search| search.trim().to_lowercase());
        let state = state_filter.get();
        (search.is_empty() || vm.name.to_lowercase().contains(&search))
            && (state.is_empty() || vm.state.as_str() == state)
    };

    view! {
        <div class="page">
            <header class="page-header page-header-split">
                <div>
                    <h1>{t("Virtual machines")}</h1>
                    <p class="page-summary">
                        {move || {
                            let (running, total) = store.vm_counts(|_| true);
                            tf("{running} of {total} running", &[("running", &running.to_string()), ("total", &total.to_string())])
                        }}
                    </p>
                </div>
                <div class="page-actions">
                    <DeployVmButton />
                </div>
            </header>
            <div class="toolbar">
                <label class="toolbar-field">
                    <span>{t("Filter by name")}</span>
                    <input type="search" placeholder="web-01" bind:value=search />
                </label>
                <label class="toolbar-field">
                    <span>{t("State")}</span>
                    <select bind:value=state_filter>
                        <option value="">{t("All states")}</option>
                        {STATES
                            .iter()
                            .map(|state| {
                                view! { <option value=state.as_str()>{vm_state_label(*state)}</option> }
                            })
                            .collect_view()}
                    </select>
                </label>
            </div>
            <Transition fallback=Loading>
                <ErrorBoundary fallback=move |errors| {
                    view! { <ErrorView errors retry=move || store.reload() /> }
                }>
                    {move || Suspend::new(async move {
                        store
                            .load
                            .await
                            .map(|()| {
                                view! {
                                    <DataTable label=t("Virtual machines")>
                                        <thead>
                                            <tr>
                                                <th scope="col">{t("Name")}</th>
                                                <th scope="col">{t("State")}</th>
                                                <th scope="col">{t("Host")}</th>
                                                <th scope="col">{t("Cluster")}</th>
                                                <th scope="col">{t("Zone")}</th>
                                                <th scope="col">{t("CPU")}</th>
                                                <th scope="col">{t("Memory")}</th>
                                                <th scope="col">{t("HA")}</th>
                                                <th scope="col">{t("Updated")}</th>
                                                <th scope="col" class="actions">{t("Actions")}</th>
                                            </tr>
                                        </thead>
                                        <tbody>
                                            <Show when=move || store.vm_ids(keep).is_empty()>
                                                <EmptyRow columns=10 text=t("No virtual machines match.") />
                                            </Show>
                                            <For
                                                each=move || store.vm_ids(keep)
                                                key=|id| *id
                                                children=|id| view! { <VmRow id /> }
                                            />
                                        </tbody>
                                    </DataTable>
                                }
                            })
                    })}
                </ErrorBoundary>
            </Transition>
        </div>
    }
}

fn restart_priority(priority: RestartPriority) -> &'static str {
    match priority {
        RestartPriority::Restart => t("restart"),
        RestartPriority::BestEffort => t("best effort"),
        RestartPriority::DoNotRestart => t("do not restart"),
    }
}

#[component]
fn VmRow(id: VmId) -> impl IntoView {
    let store = Store::expect();
    let vm = Memo::new(move |_| store.vm(id));
    move || {
        vm.get().map(|vm| {
            let updated = Signal::stored(Some(vm.updated_at));
            let host = vm.host_id.map_or_else(
                || view! { <span class="muted">{t("not placed")}</span> }.into_any(),
                |host_id| view! { <a href=format!("/hosts/{host_id}")>{store.host_name(host_id)}</a> }.into_any(),
            );
            let cluster = vm.cluster_id.map_or_else(|| "—".to_owned(), |cluster_id| store.cluster_name(cluster_id));
            view! {
                <tr>
                    <th scope="row">
                        <a href=format!("/vms/{}", vm.id)>{vm.name.clone()}</a>
                    </th>
                    <td>
                        <VmStateBadge state=vm.state />
                        {vm
                            .state_reason
                            .clone()
                            .map(|reason| view! { <span class="state-reason">{server_text(&reason)}</span> })}
                    </td>
                    <td>{host}</td>
                    <td>{cluster}</td>
                    <td>{store.zone_name(vm.zone_id)}</td>
                    <td>{format::vcpus(vm.resources.cpu_cores, vm.resources.cpu_mhz)}</td>
                    <td>{format::memory(vm.resources.memory_mb)}</td>
                    <td title=restart_priority(vm.restart_priority)>
                        <FlagBadge on=vm.ha_protected />
                    </td>
                    <td>
                        <RelativeTime at=updated />
                    </td>
                    <td class="actions">
                        <VmPowerButtons vm_id=vm.id name=vm.name.clone() state=vm.state />
                    </td>
                </tr>
            }
        })
    }
}
