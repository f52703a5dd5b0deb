//! One host: its summary (address, hypervisor, placement, capacity and allocation, connection, heartbeat,
//! tags, storage pools) and the table of its VMs with Start/Stop buttons. Everything updates live.

use crate::api_client::{self, ClientError};
use crate::components::badges::{AllocationBadge, ConnectionBadge, FlagBadge, VmStateBadge};
use crate::components::error_view::{ErrorView, Loading};
use crate::components::format;
use crate::components::table::{DataTable, EmptyRow, UsageBar};
use crate::components::time::RelativeTime;
use crate::components::vm_power::VmPowerButtons;
use crate::session::Session;
use crate::store::Store;
use api::v1::{Host, HypervisorKind, StorageKind};
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
            let id =
                text.parse::<HostId>().map_err(|_| ClientError::Invalid(format!("\"{text}\" is not a host id.")))?;
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
                            <a href="/hosts">"Hosts"</a>
                        </p>
                    </header>
                    <Loading />
                }
            }>
                <ErrorBoundary fallback=move |errors| {
                    view! {
                        <header class="page-header">
                            <p class="breadcrumb">
                                <a href="/hosts">"Hosts"</a>
                            </p>
                            <h1>"Host"</h1>
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
                <a href="/hosts">"Hosts"</a>
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
                        }
                    })
                }}
            </div>
        </header>

        <section class="summary-grid" aria-label="Host summary">
            <div class="panel">
                <h2>"Host"</h2>
                <dl class="facts">
                    <dt>"Address"</dt>
                    <dd class="mono">{move || host.with(|host| host.address.clone())}</dd>
                    <dt>"Hypervisor"</dt>
                    <dd>
                        {move || {
                            host.with(|host| match host.hypervisor {
                                HypervisorKind::Kvm => "KVM",
                                HypervisorKind::Sim => "Simulated",
                            })
                        }}
                    </dd>
                    <dt>"Cluster"</dt>
                    <dd>{move || store.cluster_name(host.with(|host| host.cluster_id))}</dd>
                    <dt>"Zone"</dt>
                    <dd>{move || store.zone_name(host.with(|host| host.zone_id))}</dd>
                    <dt>"Connection"</dt>
                    <dd>
                        {move || {
                            host.with(|host| view! { <ConnectionBadge connection=host.connection /> })
                        }}
                    </dd>
                    <dt>"Last heartbeat"</dt>
                    <dd>
                        <RelativeTime at=heartbeat />
                    </dd>
                    <dt>"Tags"</dt>
                    <dd>
                        {move || {
                            let tags = host.with(|host| host.tags.clone());
                            if tags.is_empty() {
                                view! { <span class="muted">"none"</span> }.into_any()
                            } else {
                                tags.into_iter()
                                    .map(|tag| view! { <span class="tag">{tag}</span> })
                                    .collect_view()
                                    .into_any()
                            }
                        }}
                    </dd>
                </dl>
            </div>

            <div class="panel">
                <h2>"Capacity"</h2>
                {move || {
                    host.with(|host| {
                        let (running, total) = vm_counts.get();
                        view! {
                            <dl class="facts">
                                <dt>"CPU"</dt>
                                <dd class="usage-cell">
                                    <span class="usage-text">
                                        {format::mhz_of(host.allocated.cpu_mhz, host.capacity.cpu_mhz)}
                                    </span>
                                    <UsageBar
                                        used=u64::from(host.allocated.cpu_mhz)
                                        total=u64::from(host.capacity.cpu_mhz)
                                    />
                                </dd>
                                <dt>"Cores"</dt>
                                <dd>
                                    {format!(
                                        "{} / {}",
                                        host.allocated.cpu_cores,
                                        host.capacity.cpu_cores,
                                    )}
                                </dd>
                                <dt>"Memory"</dt>
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
                                <dt>"VMs"</dt>
                                <dd>{format!("{running} running of {total}")}</dd>
                            </dl>
                        }
                    })
                }}
            </div>

            <div class="panel">
                <h2>"Storage pools"</h2>
                <StoragePoolList host=host />
            </div>
        </section>

        <section class="section">
            <DataTable label="Virtual machines on this host" caption=true>
                <thead>
                    <tr>
                        <th scope="col">"Name"</th>
                        <th scope="col">"State"</th>
                        <th scope="col">"CPU"</th>
                        <th scope="col">"Memory"</th>
                        <th scope="col">"HA"</th>
                        <th scope="col">"Updated"</th>
                        <th scope="col" class="actions">"Actions"</th>
                    </tr>
                </thead>
                <tbody>
                    <Show when=move || vm_counts.get().1 == 0>
                        <EmptyRow columns=7 text="No virtual machines on this host." />
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
            return view! { <p class="muted">"No storage pools."</p> }.into_any();
        }
        let rows = store.storage_pools.with(|pools| {
            ids.iter()
                .map(|id| match pools.get(id) {
                    Some(pool) => {
                        let kind = match pool.kind {
                            StorageKind::Nfs => "NFS",
                            StorageKind::Iscsi => "iSCSI",
                            StorageKind::Local => "local",
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
                        {vm.state_reason.clone().map(|reason| view! { <span class="state-reason">{reason}</span> })}
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
