//! The HA plan of one cluster (`/clusters/:id/ha`), like XenCenter's HA plan page: "HA is guaranteed,
//! max N failures" in green, or in red "HA cannot be guaranteed", with the max failure capacity, what
//! the plan exists for, the host failure limit and whether the cluster is overcommitted
//! (`pages::ha_verdict`). Below: the host failure limit (pool operators and up; a limit above the
//! capacity is set only after "The pool will be overcommitted" is confirmed; `pages::ha_limit`), the
//! cluster's VMs with their restart priority, where changing a priority recomputes the capacity at
//! once as a what-if, without saving (`pages::ha_priorities`), and "Simulate failure"
//! (`pages::ha_failure`). Around them: "Pause HA for changes" with its reminder banner
//! (`pages::ha_pause`), the safeguards at a glance (`pages::ha_safeguards`) and the cluster's HA
//! timing form (`pages::ha_timing`). This file holds the page, what its parts share, and the what-if pool.
//!
//! The plan comes from `GET /clusters/{id}/ha/plan` and is fetched again whenever the store shows a
//! change that can move it (the cluster's hosts and VMs, its limit, an inventory reload). What-ifs go
//! to `POST /ha/plan/simulate` with that plan's pool, modified.

use crate::api_client;
use crate::components::error_view::Loading;
use crate::i18n::{t, tf};
use crate::pages::ha_failure::FailureSimulation;
use crate::pages::ha_limit::FailureLimit;
use crate::pages::ha_pause::HaPause;
use crate::pages::ha_priorities::PriorityTable;
use crate::pages::ha_safeguards::Safeguards;
use crate::pages::ha_timing::HaTiming;
use crate::pages::ha_verdict::Verdict;
use crate::session::Session;
use crate::store::Store;
use api::v1::{AgentConnection, ClusterHaPlan, HostAllocation, PlanPool, RestartPriority, VmState};
use api::{ClusterId, HostId, VmId};
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;
use std::collections::BTreeMap;

/// What the plan page's parts share.
#[derive(Clone, Copy)]
pub struct PlanState {
    pub cluster: ClusterId,
    /// The plan as the server computed it last.
    pub live: RwSignal<Option<ClusterHaPlan>>,
    /// Restart priorities chosen on this page and not saved yet (only those that differ).
    pub edits: RwSignal<BTreeMap<VmId, RestartPriority>>,
    /// The live pool with the edits applied, when they change it: the what-if to ask the planner.
    pub what_if: Memo<Option<PlanPool>>,
}

impl PlanState {
    /// The pool to plan with now: the what-if one, else the live one.
    pub fn pool_untracked(self) -> Option<PlanPool> {
        self.what_if
            .get_untracked()
            .or_else(|| self.live.with_untracked(|plan| plan.as_ref().map(|plan| plan.pool.clone())))
    }
}

/// "1 host failure", "2 host failures" (in Korean one form).
pub(super) fn host_failures(n: u32) -> String {
    let count = n.to_string();
    if n == 1 {
        tf("{count} host failure", &[("count", &count)])
    } else {
        tf("{count} host failures", &[("count", &count)])
    }
}

/// The priority the planner sees for a VM: its restart priority when HA-protected, else do-not-restart.
pub(super) fn effective_priority(protected: bool, priority: RestartPriority) -> RestartPriority {
    if protected { priority } else { RestartPriority::DoNotRestart }
}

/// Which VM each of the pool's VMs is. The server names VMs by name, and a later VM of the same name
/// as `name [id]`.
pub(super) fn pool_vm_ids(pool: &PlanPool, vms: &[(VmId, String)]) -> Vec<Option<VmId>> {
    let bracketed: Vec<Option<VmId>> = pool
        .vms
        .iter()
        .map(|planned| vms.iter().find(|(id, name)| planned.name == format!("{name} [{id}]")).map(|(id, _)| *id))
        .collect();
    pool.vms
        .iter()
        .zip(&bracketed)
        .map(|(planned, found)| {
            found.or_else(|| {
                vms.iter()
                    .find(|(id, name)| *name == planned.name && !bracketed.contains(&Some(*id)))
                    .map(|(id, _)| *id)
            })
        })
        .collect()
}

/// The pool with the edited priorities, or `None` when the edits change nothing in it.
fn apply_edits(pool: &PlanPool, ids: &[Option<VmId>], edits: &BTreeMap<VmId, RestartPriority>) -> Option<PlanPool> {
    let mut changed = pool.clone();
    for (planned, id) in changed.vms.iter_mut().zip(ids) {
        if let Some(priority) = id.and_then(|id| edits.get(&id)) {
            planned.priority = *priority;
        }
    }
    (changed != *pool).then_some(changed)
}

#[component]
pub fn HaPlanPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.with(|params| params.get("id").unwrap_or_default()));
    move || match id.get().parse::<ClusterId>() {
        Ok(cluster) => view! { <ClusterPlan cluster /> }.into_any(),
        Err(_) => view! {
            <div class="page">
                <header class="page-header">
                    <h1>{t("HA plan")}</h1>
                </header>
                <div class="error-panel" role="alert">
                    <p class="error-title">{t("Could not load this page")}</p>
                    <p>{tf("\"{id}\" is not a cluster id.", &[("id", &id.get())])}</p>
                </div>
            </div>
        }
        .into_any(),
    }
}

/// What the cluster's plan depends on, as the store shows it: when it changes, the plan is asked again.
#[derive(Clone, PartialEq)]
struct Inputs {
    reloads: u64,
    limit: Option<u32>,
    hosts: Vec<(HostId, HostAllocation, AgentConnection, Vec<String>)>,
    vms: Vec<(VmId, VmState, Option<HostId>, RestartPriority)>,
}

fn inputs(store: Store, cluster: ClusterId) -> Inputs {
    Inputs {
        reloads: store.reloads.get(),
        limit: store.cluster(cluster).map(|cluster| cluster.ha_failure_limit),
        hosts: store.hosts.with(|hosts| {
            hosts
                .values()
                .filter(|host| host.cluster_id == cluster)
                .map(|host| (host.id, host.allocation, host.connection, host.tags.clone()))
                .collect()
        }),
        vms: store.vms.with(|vms| {
            vms.values()
                .filter(|vm| vm.cluster_id == Some(cluster))
                .map(|vm| (vm.id, vm.state, vm.host_id, effective_priority(vm.ha_protected, vm.restart_priority)))
                .collect()
        }),
    }
}

#[component]
fn ClusterPlan(cluster: ClusterId) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let inputs = Memo::new(move |_| inputs(store, cluster));
    let fetched = LocalResource::new(move || {
        inputs.track();
        async move {
            let plan = api_client::cluster_ha_plan(cluster).await;
            if let Err(error) = &plan {
                session.notice(error);
            }
            plan
        }
    });
    let live = RwSignal::new(None::<ClusterHaPlan>);
    Effect::new(move || {
        if let Some(Ok(plan)) = fetched.get() {
            live.set(Some(plan));
        }
    });
    let fetch_error =
        Memo::new(move |_| fetched.with(|answer| answer.as_ref()?.as_ref().err().map(ToString::to_string)));
    let names = Memo::new(move |_| {
        store.vms.with(|vms| {
            vms.values()
                .filter(|vm| vm.cluster_id == Some(cluster))
                .map(|vm| (vm.id, vm.name.clone()))
                .collect::<Vec<_>>()
        })
    });
    let edits = RwSignal::new(BTreeMap::new());
    let what_if = Memo::new(move |_| {
        if edits.with(BTreeMap::is_empty) {
            return None;
        }
        live.with(|plan| {
            let pool = &plan.as_ref()?.pool;
            let ids = names.with(|names| pool_vm_ids(pool, names));
            edits.with(|edits| apply_edits(pool, &ids, edits))
        })
    });
    let state = PlanState { cluster, live, edits, what_if };
    let name = move || {
        store
            .cluster(cluster)
            .map(|cluster| cluster.name)
            .or_else(|| live.with(|plan| plan.as_ref().map(|plan| plan.cluster_name.clone())))
    };
    // Built once the store and the first plan are in; later refreshes update the parts in place.
    let ready = Memo::new(move |_| live.with(Option::is_some) && store.load.with(|load| matches!(load, Some(Ok(())))));
    let ever_ready = Memo::new(move |before: Option<&bool>| before.copied().unwrap_or(false) || ready.get());

    view! {
        <div class="page">
            <header class="page-header">
                <p class="breadcrumb">
                    <a href="/clusters">{t("Clusters")}</a>
                </p>
                <h1>
                    {move || {
                        tf(
                            "HA plan: {cluster}",
                            &[("cluster", &name().unwrap_or_else(|| t("cluster").to_owned()))],
                        )
                    }}
                </h1>
            </header>
            {move || {
                fetch_error.get().map(|message| view! { <PlanFetchError message retry=move || fetched.refetch() /> })
            }}
            {move || {
                if ever_ready.get() {
                    view! {
                        <HaPause cluster />
                        <Verdict state />
                        <Safeguards state />
                        <FailureLimit state />
                        <PriorityTable state />
                        <FailureSimulation state />
                        <HaTiming cluster />
                    }
                        .into_any()
                } else if fetch_error.with(Option::is_none) {
                    view! { <Loading /> }.into_any()
                } else {
                    ().into_any()
                }
            }}
        </div>
    }
}

#[component]
fn PlanFetchError(message: String, #[prop(into)] retry: Callback<()>) -> impl IntoView {
    view! {
        <div class="error-panel" role="alert">
            <p class="error-title">{t("Could not load the failover plan")}</p>
            <p>{message}</p>
            <button type="button" class="button" on:click=move |_| retry.run(())>
                {t("Try again")}
            </button>
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::v1::{PlanHost, PlanVm};

    fn pool(names: &[&str]) -> PlanPool {
        PlanPool {
            hosts: vec![PlanHost {
                name: "h1".into(),
                memory_mb: 1024,
                cpu_mhz: 1000,
                live: true,
                ha_dedicated: false,
            }],
            vms: names
                .iter()
                .map(|name| PlanVm {
                    name: (*name).to_owned(),
                    memory_mb: 256,
                    cpu_mhz: 100,
                    host: Some("h1".into()),
                    priority: RestartPriority::BestEffort,
                    shared_storage: true,
                })
                .collect(),
            failure_limit: 1,
        }
    }

    #[test]
    fn pool_vms_are_found_by_name_or_by_name_and_id() {
        let (a, b) = (VmId::new_random(), VmId::new_random());
        let vms = vec![(a, "web".to_owned()), (b, "web".to_owned())];
        let planned = pool(&["web", &format!("web [{b}]"), "gone"]);
        assert_eq!(pool_vm_ids(&planned, &vms), vec![Some(a), Some(b), None]);
    }

    #[test]
    fn edits_that_change_nothing_are_no_what_if() {
        let id = VmId::new_random();
        let planned = pool(&["web"]);
        let ids = vec![Some(id)];
        assert_eq!(apply_edits(&planned, &ids, &BTreeMap::from([(id, RestartPriority::BestEffort)])), None);
        let changed = apply_edits(&planned, &ids, &BTreeMap::from([(id, RestartPriority::Restart)]));
        assert_eq!(changed.map(|pool| pool.vms[0].priority), Some(RestartPriority::Restart));
    }
}
