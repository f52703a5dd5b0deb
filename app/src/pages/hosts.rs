//! The hosts list: every host (its name links to its page) with its agent connection, allocation
//! (enabled, disabled or maintenance, plus "3/5 moved" while a maintenance moves its VMs away), its
//! power state as out-of-band management last read it, its HA state (live from `Event::Ha`), CPU/memory allocation, VMs and the age of its
//! last heartbeat (re-rendered every second). Rows update live from the store.

use crate::components::badges::{AllocationBadge, ConnectionBadge, PowerStateBadge};
use crate::components::error_view::{ErrorView, Loading};
use crate::components::format;
use crate::components::ha_state::HostHaCell;
use crate::components::table::{DataTable, EmptyRow, UsageBar};
use crate::components::time::RelativeTime;
use crate::i18n::{t, tf};
use crate::store::Store;
use api::HostId;
use leptos::prelude::*;

#[component]
pub fn HostsPage() -> impl IntoView {
    let store = Store::expect();
    view! {
        <div class="page">
            <header class="page-header">
                <h1>{t("Hosts")}</h1>
                <p class="page-summary">
                    {move || {
                        let (connected, total) = store.host_counts(|_| true);
                        tf("{connected} of {total} connected", &[("connected", &connected.to_string()), ("total", &total.to_string())])
                    }}
                </p>
            </header>
            <Transition fallback=Loading>
                <ErrorBoundary fallback=move |errors| {
                    view! { <ErrorView errors retry=move || store.reload() /> }
                }>
                    {move || Suspend::new(async move {
                        store.load.await.map(|()| view! { <HostTable /> })
                    })}
                </ErrorBoundary>
            </Transition>
        </div>
    }
}

#[component]
fn HostTable() -> impl IntoView {
    let store = Store::expect();
    view! {
        <DataTable label=t("Hosts")>
            <thead>
                <tr>
                    <th scope="col">{t("Name")}</th>
                    <th scope="col">{t("Cluster")}</th>
                    <th scope="col">{t("State")}</th>
                    <th scope="col">{t("Allocation")}</th>
                    <th scope="col">{t("Power")}</th>
                    <th scope="col">{t("HA")}</th>
                    <th scope="col">{t("CPU")}</th>
                    <th scope="col">{t("Memory")}</th>
                    <th scope="col" class="num">{t("VMs")}</th>
                    <th scope="col">{t("Last heartbeat")}</th>
                </tr>
            </thead>
            <tbody>
                <Show when=move || store.hosts.with(|hosts| hosts.is_empty())>
                    <EmptyRow columns=10 text=t("No hosts yet.") />
                </Show>
                <For each=move || store.host_ids(None) key=|id| *id children=|id| view! { <HostRow id /> } />
            </tbody>
        </DataTable>
    }
}

/// One host's row; only this row re-renders when that host (or one of its VMs) changes.
#[component]
fn HostRow(id: HostId) -> impl IntoView {
    let store = Store::expect();
    let host = Memo::new(move |_| store.host(id));
    let vm_counts = Memo::new(move |_| store.host_vm_counts(id));
    let heartbeat = Signal::derive(move || host.with(|host| host.as_ref().and_then(|h| h.last_heartbeat_at)));
    move || {
        host.get().map(|host| {
            let (running, total) = vm_counts.get();
            view! {
                <tr>
                    <th scope="row">
                        <a href=format!("/hosts/{}", host.id)>{host.name.clone()}</a>
                    </th>
                    <td>{store.cluster_name(host.cluster_id)}</td>
                    <td>
                        <ConnectionBadge connection=host.connection />
                    </td>
                    <td>
                        <AllocationBadge allocation=host.allocation />
                        {host
                            .maintenance
                            .as_ref()
                            .filter(|progress| !progress.finished)
                            .map(|progress| {
                                view! {
                                    <span class="maintenance-hint">
                                        {tf("{moved}/{total} moved", &[("moved", &progress.moved.to_string()), ("total", &progress.total.to_string())])}
                                    </span>
                                }
                            })}
                    </td>
                    <td>
                        <PowerStateBadge power=host.power_state />
                    </td>
                    <td>
                        <HostHaCell host=host.id />
                    </td>
                    <td class="usage-cell">
                        <span class="usage-text">
                            {format::mhz_of(host.allocated.cpu_mhz, host.capacity.cpu_mhz)}
                        </span>
                        <UsageBar
                            used=u64::from(host.allocated.cpu_mhz)
                            total=u64::from(host.capacity.cpu_mhz)
                        />
                    </td>
                    <td class="usage-cell">
                        <span class="usage-text">
                            {format::memory_of(host.allocated.memory_mb, host.capacity.memory_mb)}
                        </span>
                        <UsageBar used=host.allocated.memory_mb total=host.capacity.memory_mb />
                    </td>
                    <td class="num">{format!("{running}/{total}")}</td>
                    <td>
                        <RelativeTime at=heartbeat />
                    </td>
                </tr>
            }
        })
    }
}
