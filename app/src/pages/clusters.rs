//! The clusters list: each cluster with its zone, HA and out-of-band switches, its failover plan in brief
//! (linking to the cluster's HA plan page), hosts, VMs and how much of its hosts' CPU and memory is
//! allocated. Pool operators and up switch HA (optionally with all the cluster's hosts) and out-of-band
//! management here; each row lists its hosts with
//! their power states (live).

use crate::components::badges::PowerStateBadge;
use crate::components::error_view::{ErrorView, Loading};
use crate::components::format;
use crate::components::ha_switch::{HaNotInEffect, HaSwitch, HaSwitchWhyNot, HaTarget};
use crate::components::oobm_switch::{OobmSwitch, OobmSwitchWhyNot, OobmTarget, not_in_effect_text, parents_off};
use crate::components::table::{DataTable, EmptyRow, UsageBar};
use crate::i18n::{t, tf};
use crate::session::{Ability, Session};
use crate::store::Store;
use api::ClusterId;
use api::v1::ClusterPlanSummary;
use leptos::prelude::*;
use leptos_router::components::A;

#[component]
pub fn ClustersPage() -> impl IntoView {
    let store = Store::expect();
    view! {
        <div class="page">
            <header class="page-header">
                <h1>{t("Clusters")}</h1>
                <p class="page-summary">
                    {move || tf("{count} clusters", &[("count", &store.clusters.with(|clusters| clusters.len()).to_string())])}
                </p>
                <HaSwitchWhyNot />
                <OobmSwitchWhyNot />
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
                                    <DataTable label=t("Clusters")>
                                        <thead>
                                            <tr>
                                                <th scope="col">{t("Name")}</th>
                                                <th scope="col">{t("Zone")}</th>
                                                <th scope="col">{t("HA")}</th>
                                                <th scope="col">{t("Out-of-band management")}</th>
                                                <th scope="col">{t("Host power")}</th>
                                                <th scope="col">{t("Failover plan")}</th>
                                                <th scope="col" class="num">{t("Hosts connected")}</th>
                                                <th scope="col" class="num">{t("VMs running")}</th>
                                                <th scope="col">{t("CPU")}</th>
                                                <th scope="col">{t("Memory")}</th>
                                                <th scope="col" class="actions">{t("Actions")}</th>
                                            </tr>
                                        </thead>
                                        <tbody>
                                            <Show when=move || {
                                                store.clusters.with(|clusters| clusters.is_empty())
                                            }>
                                                <EmptyRow columns=11 text=t("No clusters yet.") />
                                            </Show>
                                            <For
                                                each=move || store.cluster_ids(None)
                                                key=|id| *id
                                                children=|id| view! { <ClusterRow id /> }
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

#[component]
fn ClusterRow(id: ClusterId) -> impl IntoView {
    let store = Store::expect();
    // Read once, untracked: see `crate::components::vm_power`.
    let session = Session::expect();
    let may_manage_ha = session.may_untracked(Ability::ManageHa).is_ok();
    let may_manage_pool = session.may_untracked(Ability::ManagePool).is_ok();
    let cluster = Memo::new(move |_| store.cluster(id));
    move || {
        cluster.get().map(|cluster| {
            let (connected, hosts) = store.host_counts(|host| host.cluster_id == id);
            let (running, vms) = store.vm_counts(|vm| vm.cluster_id == Some(id));
            // Allocation over all the cluster's hosts: what HA has to fit somewhere else on a failure.
            let (cpu_used, cpu_total, memory_used, memory_total) = store.hosts.with(|all| {
                all.values().filter(|host| host.cluster_id == id).fold(
                    (0u64, 0u64, 0u64, 0u64),
                    |(cpu_used, cpu_total, memory_used, memory_total), host| {
                        (
                            cpu_used + u64::from(host.allocated.cpu_mhz),
                            cpu_total + u64::from(host.capacity.cpu_mhz),
                            memory_used + host.allocated.memory_mb,
                            memory_total + host.capacity.memory_mb,
                        )
                    },
                )
            });
            view! {
                <tr>
                    <th scope="row">{cluster.name.clone()}</th>
                    <td>{store.zone_name(cluster.zone_id)}</td>
                    <td>
                        <HaSwitch
                            target=HaTarget::Cluster(id)
                            name=tf("cluster {name}", &[("name", &cluster.name)])
                            on=Signal::stored(cluster.ha_enabled)
                        />
                        <HaNotInEffect on=Signal::stored(cluster.ha_enabled) zone=cluster.zone_id />
                    </td>
                    <td>
                        <OobmSwitch
                            target=OobmTarget::Cluster(id)
                            name=tf("cluster {name}", &[("name", &cluster.name)])
                            on=Signal::stored(cluster.oobm_enabled)
                        />
                        {cluster
                            .oobm_enabled
                            .then(|| not_in_effect_text(&parents_off(store, cluster.zone_id, None)))
                            .flatten()
                            .map(|text| view! { <p class="oobm-not-in-effect">{text}</p> })}
                    </td>
                    <td>
                        <HostPowerList cluster=id />
                    </td>
                    <td>
                        <span class="plan-cell">
                            <PlanPill summary=cluster.ha_plan.clone() limit=cluster.ha_failure_limit />
                            <a href=format!("/clusters/{id}/ha") aria-label=tf("HA plan of {cluster}", &[("cluster", &cluster.name)])>
                                {t("HA plan")}
                            </a>
                        </span>
                    </td>
                    <td class="num">{format!("{connected}/{hosts}")}</td>
                    <td class="num">{format!("{running}/{vms}")}</td>
                    <td class="usage-cell">
                        <span class="usage-text">{format!("{cpu_used} / {cpu_total} MHz")}</span>
                        <UsageBar used=cpu_used total=cpu_total />
                    </td>
                    <td class="usage-cell">
                        <span class="usage-text">{format::memory_of(memory_used, memory_total)}</span>
                        <UsageBar used=memory_used total=memory_total />
                    </td>
                    <td class="actions">
                        <HaSetupLinks cluster=id name=cluster.name.clone() may_manage_ha may_manage_pool />
                    </td>
                </tr>
            }
        })
    }
}

/// The HA setup wizard's steps for one cluster, each reachable alone: only the steps the role may carry
/// out, and the read-only host HA state for everyone.
#[component]
fn HaSetupLinks(cluster: ClusterId, name: String, may_manage_ha: bool, may_manage_pool: bool) -> impl IntoView {
    let link = move |step: u8, text: &'static str, label: String| {
        view! {
            <A href=format!("/ha/setup?step={step}&cluster={cluster}") attr:class="button button-small" attr:aria-label=label>
                {text}
            </A>
        }
    };
    let named = [("cluster", name.as_str())];
    view! {
        <div class="row-actions">
            {may_manage_ha.then(|| link(2, t("Enable HA…"), tf("Enable HA on cluster {cluster}…", &named)))}
            {may_manage_pool
                .then(|| {
                    link(
                        3,
                        t("Configure OOBM for hosts…"),
                        tf("Configure OOBM for the hosts of cluster {cluster}…", &named),
                    )
                })}
            {link(5, t("Check host HA state"), tf("Check the host HA state of cluster {cluster}", &named))}
            {may_manage_ha
                .then(|| link(7, t("Run a power-off test…"), tf("Run a power-off test on cluster {cluster}…", &named)))}
        </div>
    }
}

/// The failover plan as last evaluated, in brief: "max 1 of 1" in green, or "overcommitted" in red.
#[component]
fn PlanPill(summary: Option<ClusterPlanSummary>, limit: u32) -> impl IntoView {
    match summary {
        None => view! { <span class="pill">{t("not evaluated")}</span> }.into_any(),
        Some(summary) if summary.overcommitted => view! {
            <span class="pill pill-overcommitted" title=tf("Host failure limit {limit}", &[("limit", &limit.to_string())])>
                {t("overcommitted")}
            </span>
        }
        .into_any(),
        Some(summary) => {
            let capacity =
                summary.max_failure_capacity.map_or_else(|| t("none").to_owned(), |capacity| capacity.to_string());
            view! {
                <span class="pill pill-on" title=t("Max failure capacity of host failure limit")>
                    {tf("max {capacity} of {limit}", &[("capacity", &capacity), ("limit", &limit.to_string())])}
                </span>
            }
            .into_any()
        }
    }
}

/// The cluster's hosts, each with its power state; only this cell re-renders when a host changes.
#[component]
fn HostPowerList(cluster: ClusterId) -> impl IntoView {
    let store = Store::expect();
    let hosts = Memo::new(move |_| {
        store.hosts.with(|hosts| {
            store
                .host_ids(Some(cluster))
                .into_iter()
                .filter_map(|id| hosts.get(&id).map(|host| (id, host.name.clone(), host.power_state)))
                .collect::<Vec<_>>()
        })
    });
    move || {
        let hosts = hosts.get();
        if hosts.is_empty() {
            return view! { <span class="muted">{t("no hosts")}</span> }.into_any();
        }
        view! {
            <ul class="power-list" aria-label=t("Power of the cluster's hosts")>
                {hosts
                    .into_iter()
                    .map(|(id, name, power)| {
                        view! {
                            <li>
                                <a href=format!("/hosts/{id}")>{name}</a>
                                <PowerStateBadge power />
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        }
        .into_any()
    }
}
