//! One host: its summary (address, hypervisor, placement, capacity and allocation, connection, heartbeat,
//! tags, storage pools), its HA card (`components::ha_state`: switch, state, provider, transitions), the host operations of `host_actions` (enable/disable for new VMs, maintenance,
//! tags, removal), the progress of a maintenance, its power state and out-of-band management
//! (`host_oobm`), and the table of its VMs with Start/Stop buttons.
//! Everything updates live from the store.

use crate::api_client::{self, ClientError};
use crate::components::badges::{AllocationBadge, ConnectionBadge, FlagBadge, PowerStateBadge, VmStateBadge};
use crate::components::error_view::{ErrorView, Loading};
use crate::components::format;
use crate::components::ha_state::HostHaCard;
use crate::components::table::{DataTable, EmptyRow, UsageBar};
use crate::components::time::RelativeTime;
use crate::components::vm_power::VmPowerButtons;
use crate::i18n::{server_text, t, tf};
use crate::pages::host_actions::{HostActions, HostTags};
use crate::pages::host_oobm::HostOobmPanel;
use crate::session::Session;
use crate::store::Store;
use api::v1::{Host, HypervisorKind, MaintenanceProgress, StorageKind};
use api::{HostId, VmId};
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

#[component]
pub fn HostDetailPage() -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let params = use_params_map();
    let host_id = Memo::new(move |_| params.with(|params| params.get("id").unwrap_or_default()));

    // Asking the server for this one host (not only the store) gives its own message for an unknown id.
    let fetched = LocalResource::new(move || {
        let text = host_id.get();
        async move {
            let id = text
                .parse::<HostId>()
                .map_err(|_| ClientError::Invalid(tf("\"{text}\" is not a host id.", &[("text", &text)])))?;
            let host = api_client::host(id).await;
            if let Err(error) = &host {
                session.notice(error);
            }
            host
        }
    });

    view! {
        <div class="page">
            <Transition fallback=move || {
                view! {
                    <header class="page-header">
                        <p class="breadcrumb">
                            <a href="/hosts">{t("Hosts")}</a>
                        </p>
                    </header>
                    <Loading />
                }
            }>
                <ErrorBoundary fallback=move |errors| {
                    view! {
                        <header class="page-header">
                            <p class="breadcrumb">
                                <a href="/hosts">{t("Hosts")}</a>
                            </p>
                            <h1>{t("Host")}</h1>
                        </header>
                        <ErrorView
                            errors
                            retry=move || {
                                fetched.refetch();
                                store.reload();
                            }
                        />
                    }
                }>
                    {move || Suspend::new(async move {
                        let host = fetched.await?;
                        store.load.await?;
                        Ok::<_, ClientError>(view! { <HostView fetched=host /> })
                    })}
                </ErrorBoundary>
            </Transition>
        </div>
    }
}

/// The host as the store knows it now, or as fetched if the store does not have it (yet).
#[component]
fn HostView(fetched: Host) -> impl IntoView {
    let store = Store::expect();
    let id = fetched.id;
    let host = Memo::new(move |_| store.host(id).unwrap_or_else(|| fetched.clone()));
    let heartbeat = Signal::derive(move || host.with(|host| host.last_heartbeat_at));
    let vm_counts = Memo::new(move |_| store.host_vm_counts(id));

    view! {
        <header class="page-header">
            <p class="breadcrumb">
                <a href="/hosts">{t("Hosts")}</a>
                <span aria-hidden="true">" / "</span>
                {move || store.cluster_name(host.with(|host| host.cluster_id))}
            </p>
            <div class="title-row">
                <h1>{move || host.with(|host| host.name.clone())}</h1>
                {move || {
                    host.with(|host| {
                        view! {
                            <ConnectionBadge connection=host.connection />
                            <AllocationBadge allocation=host.allocation />
                            <span class="title-power">
                                {t("Power")} " " <PowerStateBadge power=host.power_state />
                            </span>
                        }
                    })
                }}
            </div>
            <HostActions host />
        </header>

        <MaintenancePanel host />

        <section class="summary-grid" aria-label=t("Host summary")>
            <div class="panel">
                <h2>{t("Host")}</h2>
                <dl class="facts">
                    <dt>{t("Address")}</dt>
                    <dd class="mono">{move || host.with(|host| host.address.clone())}</dd>
                    <dt>{t("Hypervisor")}</dt>
                    <dd>
                        {move || {
                            host.with(|host| match host.hypervisor {
                                HypervisorKind::Kvm => "KVM",
                                HypervisorKind::Sim => t("Simulated"),
                            })
                        }}
                    </dd>
                    <dt>{t("Cluster")}</dt>
                    <dd>{move || store.cluster_name(host.with(|host| host.cluster_id))}</dd>
                    <dt>{t("Zone")}</dt>
                    <dd>{move || store.zone_name(host.with(|host| host.zone_id))}</dd>
                    <dt>{t("Connection")}</dt>
                    <dd>
                        {move || {
                            host.with(|host| view! { <ConnectionBadge connection=host.connection /> })
                        }}
                    </dd>
                    <dt>{t("Last heartbeat")}</dt>
                    <dd>
                        <RelativeTime at=heartbeat />
                    </dd>
                    <dt>{t("Tags")}</dt>
                    <dd>
                        <HostTags host />
                    </dd>
                </dl>
            </div>

            <div class="panel">
                <h2>{t("Capacity")}</h2>
                {move || {
                    host.with(|host| {
                        let (running, total) = vm_counts.get();
                        view! {
                            <dl class="facts">
                                <dt>{t("CPU")}</dt>
                                <dd class="usage-cell">
                                    <span class="usage-text">
                                        {format::mhz_of(host.allocated.cpu_mhz, host.capacity.cpu_mhz)}
                                    </span>
                                    <UsageBar
                                        used=u64::from(host.allocated.cpu_mhz)
                                        total=u64::from(host.capacity.cpu_mhz)
                                    />
                                </dd>
                                <dt>{t("Cores")}</dt>
                                <dd>
                                    {format!(
                                        "{} / {}",
                                        host.allocated.cpu_cores,
                                        host.capacity.cpu_cores,
                                    )}
                                </dd>
                                <dt>{t("Memory")}</dt>
                                <dd class="usage-cell">
                                    <span class="usage-text">
                                        {format::memory_of(
                                            host.allocated.memory_mb,
                                            host.capacity.memory_mb,
                                        )}
                                    </span>
                                    <UsageBar
                                        used=host.allocated.memory_mb
                                        total=host.capacity.memory_mb
                                    />
                                </dd>
                                <dt>{t("VMs")}</dt>
                                <dd>{tf("{running} running of {total}", &[("running", &running.to_string()), ("total", &total.to_string())])}</dd>
                            </dl>
                        }
                    })
                }}
            </div>

            <div class="panel">
                <h2>{t("Storage pools")}</h2>
                <StoragePoolList host=host />
            </div>
        </section>

        <HostHaCard host />

        <HostOobmPanel host />

        <section class="section">
            <DataTable label=t("Virtual machines on this host") caption=true>
                <thead>
                    <tr>
                        <th scope="col">{t("Name")}</th>
                        <th scope="col">{t("State")}</th>
                        <th scope="col">{t("CPU")}</th>
                        <th scope="col">{t("Memory")}</th>
                        <th scope="col">{t("HA")}</th>
                        <th scope="col">{t("Updated")}</th>
                        <th scope="col" class="actions">{t("Actions")}</th>
                    </tr>
                </thead>
                <tbody>
                    <Show when=move || vm_counts.get().1 == 0>
                        <EmptyRow columns=7 text=t("No virtual machines on this host.") />
                    </Show>
                    <For
                        each=move || store.vm_ids(|vm| vm.host_id == Some(id))
                        key=|vm_id| *vm_id
                        children=|vm_id| view! { <HostVmRow id=vm_id /> }
                    />
                </tbody>
            </DataTable>
        </section>
    }
}

#[component]
fn StoragePoolList(host: Memo<Host>) -> impl IntoView {
    let store = Store::expect();
    move || {
        let ids = host.with(|host| host.storage_pool_ids.clone());
        if ids.is_empty() {
            return view! { <p class="muted">{t("No storage pools.")}</p> }.into_any();
        }
        let rows = store.storage_pools.with(|pools| {
            ids.iter()
                .map(|id| match pools.get(id) {
                    Some(pool) => {
                        let kind = match pool.kind {
                            StorageKind::Nfs => "NFS",
                            StorageKind::Iscsi => "iSCSI",
                            StorageKind::Local => t("local"),
                        };
                        view! {
                            <li>
                                <span class="pool-name">{pool.name.clone()}</span>
                                <span class="tag">{kind}</span>
                                <span class="muted">{format!("{} GB", pool.capacity_gb)}</span>
                                <span class="mono muted pool-url">{pool.url.clone()}</span>
                            </li>
                        }
                        .into_any()
                    }
                    None => view! { <li class="muted">{id.to_string()}</li> }.into_any(),
                })
                .collect_view()
        });
        view! { <ul class="pool-list">{rows}</ul> }.into_any()
    }
}

#[component]
fn HostVmRow(id: VmId) -> impl IntoView {
    let store = Store::expect();
    let vm = Memo::new(move |_| store.vm(id));
    move || {
        vm.get().map(|vm| {
            let updated = Signal::stored(Some(vm.updated_at));
            view! {
                <tr data-vm=vm.name.clone()>
                    <th scope="row">{vm.name.clone()}</th>
                    <td>
                        <VmStateBadge state=vm.state />
                        {vm.state_reason.clone().map(|reason| view! { <span class="state-reason">{server_text(&reason)}</span> })}
                    </td>
                    <td>{format::vcpus(vm.resources.cpu_cores, vm.resources.cpu_mhz)}</td>
                    <td>{format::memory(vm.resources.memory_mb)}</td>
                    <td>
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

/// How moving the host's VMs away for maintenance goes, while the host has maintenance progress. The
/// panel stays in place while its numbers change, so that screen readers announce the status line.
#[component]
fn MaintenancePanel(host: Memo<Host>) -> impl IntoView {
    let store = Store::expect();
    let id = host.with_untracked(|host| host.id);
    let progress = Memo::new(move |_| host.with(|host| host.maintenance.clone()));
    let shown = Memo::new(move |_| progress.with(Option::is_some));
    let finished = Memo::new(move |_| progress.with(|progress| progress.as_ref().is_some_and(|p| p.finished)));
    let numbers =
        Memo::new(move |_| progress.with(|progress| progress.as_ref().map_or((0, 0), |p| (p.moved, p.total))));
    let failed =
        Memo::new(move |_| progress.with(|progress| progress.as_ref().map(|p| p.failed.clone()).unwrap_or_default()));
    let status = move || {
        progress.with(|progress| progress.as_ref().map(|progress| status_text(progress, store.host_vm_counts(id).1)))
    };
    let percent = move || {
        let (moved, total) = numbers.get();
        if total == 0 { 100 } else { u64::from(moved.min(total)) * 100 / u64::from(total) }
    };
    move || {
        shown.get().then(|| {
            view! {
                <section class="panel maintenance-panel" aria-label=t("Maintenance progress")>
                    <h2>{move || if finished.get() { t("Maintenance") } else { t("Entering maintenance") }}</h2>
                    <Show when=move || !finished.get()>
                        <div
                            class="maintenance-bar"
                            role="progressbar"
                            aria-label=t("VMs moved")
                            aria-valuemin="0"
                            aria-valuemax=move || numbers.get().1
                            aria-valuenow=move || numbers.get().0
                            aria-valuetext=move || {
                                let (moved, total) = numbers.get();
                                tf("{moved} of {total} VMs moved", &[("moved", &moved.to_string()), ("total", &total.to_string())])
                            }
                        >
                            <span class="maintenance-fill" style:width=move || format!("{}%", percent())></span>
                        </div>
                    </Show>
                    <p class="maintenance-status" role="status">{status}</p>
                    {move || {
                        let failed = failed.get();
                        (!failed.is_empty()).then(|| {
                            view! {
                                <h3 class="maintenance-failures-title">{t("Could not move")}</h3>
                                <ul class="maintenance-failures" aria-label=t("VMs that could not be moved")>
                                    {failed.into_iter().map(|reason| view! { <li>{server_text(&reason)}</li> }).collect_view()}
                                </ul>
                            }
                        })
                    }}
                </section>
            }
        })
    }
}

/// The maintenance status line: how far the move is, or how it ended; `vms_left` counts the VMs on the
/// host now (the stopped ones are never moved).
fn status_text(progress: &MaintenanceProgress, vms_left: usize) -> String {
    let MaintenanceProgress { total, moved, current, failed, finished } = progress;
    let (moved, total) = (moved.to_string(), total.to_string());
    if !finished {
        return match current {
            Some(vm) => tf(
                "{moved} of {total} VMs moved. Moving {vm} now.",
                &[("moved", &moved), ("total", &total), ("vm", vm)],
            ),
            None => tf("{moved} of {total} VMs moved", &[("moved", &moved), ("total", &total)]),
        };
    }
    match (failed.len(), vms_left) {
        (0, 0) => t("In maintenance: no VMs left on this host").to_owned(),
        (0, 1) => t("In maintenance: no running VMs left on this host; its 1 stopped VM stays here").to_owned(),
        (0, left) => tf(
            "In maintenance: no running VMs left on this host; its {count} stopped VMs stay here",
            &[("count", &left.to_string())],
        ),
        (1, _) => t("In maintenance, but 1 VM could not be moved and still runs on this host").to_owned(),
        (failed, _) => tf(
            "In maintenance, but {count} VMs could not be moved and still run on this host",
            &[("count", &failed.to_string())],
        ),
    }
}
