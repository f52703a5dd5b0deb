//! The infrastructure view: pool totals and the zone > cluster > host > VM tree, collapsible per node;
//! each cluster links to its HA plan page.
//! Each node re-renders on its own when its item changes, so open/closed branches stay as the person left
//! them while states change live.

use crate::components::badges::{AllocationBadge, ConnectionBadge, FlagBadge, VmStateBadge};
use crate::components::error_view::{ErrorView, Loading};
use crate::i18n::{server_text, t, tf};
use crate::store::Store;
use api::v1::AgentConnection;
use api::{ClusterId, HostId, VmId, ZoneId};
use leptos::prelude::*;

#[component]
pub fn InfrastructurePage() -> impl IntoView {
    let store = Store::expect();
    view! {
        <div class="page">
            <header class="page-header">
                <h1>{t("Infrastructure")}</h1>
            </header>
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
                                    <Totals />
                                    <section class="panel tree-panel">
                                        <h2>{t("Zones, clusters, hosts and VMs")}</h2>
                                        <Show
                                            when=move || !store.zones.with(|zones| zones.is_empty())
                                            fallback=|| {
                                                view! { <p class="muted">{t("No zones yet.")}</p> }
                                            }
                                        >
                                            <ul class="tree">
                                                <For
                                                    each=move || store.zone_ids()
                                                    key=|id| *id
                                                    children=|id| view! { <ZoneNode id /> }
                                                />
                                            </ul>
                                        </Show>
                                    </section>
                                }
                            })
                    })}
                </ErrorBoundary>
            </Transition>
        </div>
    }
}

/// The pool at a glance: counts, with what needs attention highlighted.
#[component]
fn Totals() -> impl IntoView {
    let store = Store::expect();
    let hosts = Memo::new(move |_| store.host_counts(|_| true));
    let vms = Memo::new(move |_| store.vm_counts(|_| true));
    let troubled_vms = Memo::new(move |_| {
        store.vm_counts(|vm| matches!(vm.state, api::v1::VmState::Error | api::v1::VmState::Unknown)).1
    });
    view! {
        <section class="totals" aria-label=t("Pool totals")>
            <div class="total">
                <span class="total-value">{move || store.zones.with(|zones| zones.len())}</span>
                <span class="total-label">{t("Zones")}</span>
            </div>
            <div class="total">
                <span class="total-value">
                    {move || store.clusters.with(|clusters| clusters.len())}
                </span>
                <span class="total-label">{t("Clusters")}</span>
            </div>
            <div class=move || {
                let (connected, total) = hosts.get();
                if connected < total { "total total-warn" } else { "total" }
            }>
                <span class="total-value">
                    {move || {
                        let (connected, total) = hosts.get();
                        format!("{connected}/{total}")
                    }}
                </span>
                <span class="total-label">{t("Hosts connected")}</span>
            </div>
            <div class="total">
                <span class="total-value">
                    {move || {
                        let (running, total) = vms.get();
                        format!("{running}/{total}")
                    }}
                </span>
                <span class="total-label">{t("VMs running")}</span>
            </div>
            <div class=move || {
                if troubled_vms.get() > 0 { "total total-bad" } else { "total" }
            }>
                <span class="total-value">{move || troubled_vms.get()}</span>
                <span class="total-label">{t("VMs in error or unknown")}</span>
            </div>
        </section>
    }
}

#[component]
fn ZoneNode(id: ZoneId) -> impl IntoView {
    let store = Store::expect();
    let zone = Memo::new(move |_| store.zone(id));
    let unplaced = move || store.vm_ids(|vm| vm.zone_id == id && vm.host_id.is_none());
    view! {
        <TreeBranch class="tree-zone" name=Signal::derive(move || zone.with(|zone| zone.as_ref().map(|zone| zone.name.clone()).unwrap_or_default())) head=move || view! {
                    <span class="tree-kind">{t("Zone")}</span>
                    {move || {
                        zone.get()
                            .map(|zone| {
                                view! {
                                    <span class="tree-name">{zone.name}</span>
                                    <span class="tree-flags">
                                        {t("HA")} " " <FlagBadge on=zone.ha_enabled /> " " {t("OOBM")} " "
                                        <FlagBadge on=zone.oobm_enabled />
                                    </span>
                                }
                            })
                    }}
                }>
                <ul class="tree">
                    <For
                        each=move || store.cluster_ids(Some(id))
                        key=|id| *id
                        children=|id| view! { <ClusterNode id /> }
                    />
                    <Show when=move || !unplaced().is_empty()>
                        <li class="tree-node tree-unplaced">
                            <span class="tree-kind">{t("Not placed")}</span>
                            <ul class="tree-vms">
                                <For
                                    each=unplaced
                                    key=|id| *id
                                    children=|id| view! { <VmLeaf id /> }
                                />
                            </ul>
                        </li>
                    </Show>
                </ul>
        </TreeBranch>
    }
}

#[component]
fn ClusterNode(id: ClusterId) -> impl IntoView {
    let store = Store::expect();
    let cluster = Memo::new(move |_| store.cluster(id));
    let hosts = Memo::new(move |_| store.host_counts(|host| host.cluster_id == id));
    view! {
        <TreeBranch class="tree-cluster" name=Signal::derive(move || cluster.with(|cluster| cluster.as_ref().map(|cluster| cluster.name.clone()).unwrap_or_default())) head=move || view! {
                    <span class="tree-kind">{t("Cluster")}</span>
                    {move || {
                        cluster.get()
                            .map(|cluster| {
                                view! {
                                    <span class="tree-name">{cluster.name.clone()}</span>
                                    <span class="tree-flags">
                                        {t("HA")} " " <FlagBadge on=cluster.ha_enabled />
                                    </span>
                                    <a
                                        class="tree-link"
                                        href=format!("/clusters/{id}/ha")
                                        aria-label=tf("HA plan of {cluster}", &[("cluster", &cluster.name)])
                                    >
                                        {t("HA plan")}
                                    </a>
                                }
                            })
                    }}
                    <span class="tree-count">
                        {move || {
                            let (connected, total) = hosts.get();
                            tf("{connected}/{total} hosts connected", &[("connected", &connected.to_string()), ("total", &total.to_string())])
                        }}
                    </span>
                }>
                <ul class="tree">
                    <For
                        each=move || store.host_ids(Some(id))
                        key=|id| *id
                        children=|id| view! { <HostNode id /> }
                    />
                </ul>
        </TreeBranch>
    }
}

#[component]
fn HostNode(id: HostId) -> impl IntoView {
    let store = Store::expect();
    let host = Memo::new(move |_| store.host(id));
    let vm_counts = Memo::new(move |_| store.host_vm_counts(id));
    view! {
        <TreeBranch class="tree-host" name=Signal::derive(move || host.with(|host| host.as_ref().map(|host| host.name.clone()).unwrap_or_default())) head=move || view! {
                    <span class="tree-kind">{t("Host")}</span>
                    {move || {
                        host.get()
                            .map(|host| {
                                let down = host.connection == AgentConnection::Disconnected;
                                view! {
                                    <a
                                        class=if down { "tree-name host-down" } else { "tree-name" }
                                        href=format!("/hosts/{}", host.id)
                                    >
                                        {host.name}
                                    </a>
                                    <ConnectionBadge connection=host.connection />
                                    <AllocationBadge allocation=host.allocation />
                                }
                            })
                    }}
                    <span class="tree-count">
                        {move || {
                            let (running, total) = vm_counts.get();
                            tf("{running}/{total} VMs running", &[("running", &running.to_string()), ("total", &total.to_string())])
                        }}
                    </span>
                }>
                <ul class="tree-vms">
                    <For
                        each=move || store.vm_ids(|vm| vm.host_id == Some(id))
                        key=|id| *id
                        children=|id| view! { <VmLeaf id /> }
                    />
                </ul>
        </TreeBranch>
    }
}

#[component]
fn VmLeaf(id: VmId) -> impl IntoView {
    let store = Store::expect();
    let vm = Memo::new(move |_| store.vm(id));
    move || {
        vm.get().map(|vm| {
            view! {
                <li class="tree-vm" title=vm.state_reason.as_deref().map(server_text)>
                    <span class="tree-vm-name">{vm.name}</span>
                    <VmStateBadge state=vm.state />
                </li>
            }
        })
    }
}

/// One branch of the tree: a row with a show/hide button and the node's own line (name, flags and
/// links, `head`), then its children. Not `<details>`: a `<summary>` may hold no links, and each row
/// links to its object.
#[component]
fn TreeBranch(
    class: &'static str,
    #[prop(into)] name: Signal<String>,
    #[prop(into)] head: ViewFn,
    children: Children,
) -> impl IntoView {
    let open = RwSignal::new(true);
    view! {
        <li class=format!("tree-node {class}")>
            <div class="tree-row">
                <button
                    type="button"
                    class="tree-toggle"
                    aria-expanded=move || if open.get() { "true" } else { "false" }
                    aria-label=move || name.with(|name| tf("Show or hide what {name} holds", &[("name", name)]))
                    on:click=move |_| open.update(|open| *open = !*open)
                ></button>
                {head.run()}
            </div>
            <div class="tree-body" hidden=move || !open.get()>
                {children()}
            </div>
        </li>
    }
}
