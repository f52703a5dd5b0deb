//! Step 2: HA on for a cluster of the chosen zone, with "Include hosts" switching every host of the
//! cluster in the same call (Mold's guide: "클러스터 HA 활성화", "호스트 포함"); the same call as the
//! cluster's switch (`components::ha_switch`). The table shows each host's own HA switch.

use super::zone::on_off;
use super::{Step, Wizard, may_take, step_href};
use crate::api_client;
use crate::components::dialog::FormError;
use crate::components::table::{DataTable, EmptyRow};
use crate::i18n::{t, tf};
use crate::session::Session;
use crate::store::Store;
use api::ids::ClusterId;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// Done once a cluster is chosen, HA is on for it and for every one of its hosts.
pub fn cluster_done(wizard: Wizard) -> bool {
    let store = Store::expect();
    let Some(cluster) = wizard.cluster.get().and_then(|cluster| store.cluster(cluster)) else {
        return false;
    };
    let hosts = store.host_ids(Some(cluster.id));
    store.want_host_ha(hosts.iter().copied());
    cluster.ha_enabled
        && !hosts.is_empty()
        && store.host_ha.with(|known| hosts.iter().all(|host| known.get(host).is_some_and(|ha| ha.enabled)))
}

#[component]
pub fn ClusterStep(wizard: Wizard) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let may = may_take(Step::Cluster);
    let clusters = Memo::new(move |_| store.cluster_ids(wizard.zone.get()));
    // One cluster: nothing to choose.
    Effect::new(move || {
        let clusters = clusters.get();
        if wizard.cluster.get_untracked().is_none() && clusters.len() == 1 {
            wizard.cluster.set(Some(clusters[0]));
        }
    });
    let include_hosts = RwSignal::new(true);
    let pending = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let chosen = Memo::new(move |_| wizard.cluster.get().and_then(|cluster| store.cluster(cluster)));
    let hosts = Memo::new(move |_| wizard.cluster_hosts());
    Effect::new(move || store.want_host_ha(hosts.get()));
    let hosts_off = Memo::new(move |_| {
        let hosts = hosts.get();
        store.host_ha.with(|known| hosts.iter().filter(|host| known.get(host).is_none_or(|ha| !ha.enabled)).count())
    });
    let enable = move |_| {
        let Some(cluster) = wizard.cluster.get_untracked() else { return };
        let include = include_hosts.get_untracked();
        pending.set(true);
        error.set(None);
        spawn_local(async move {
            match api_client::set_cluster_ha(cluster, true, include).await {
                Ok(switched) => {
                    store.clusters.update(|clusters| {
                        if let Some(cluster) = clusters.get_mut(&cluster) {
                            cluster.ha_enabled = switched.ha_enabled;
                        }
                    });
                    for host in switched.hosts_changed {
                        store.fetch_host_ha(host);
                    }
                    super::zone::focus_next();
                }
                Err(failure) => {
                    session.notice(&failure);
                    error.set(Some(failure.to_string()));
                }
            }
            pending.set(false);
        });
    };
    let choose = move |event: leptos::ev::Event| {
        wizard.cluster.set(event_target_value(&event).parse::<ClusterId>().ok());
    };
    let zone_off = move || {
        let zone = wizard.zone.get().and_then(|zone| store.zone(zone))?;
        (!zone.ha_enabled).then(|| {
            view! {
                <p class="wizard-warning" data-testid="ha-wizard-zone-off">
                    {tf("HA is still off for zone {zone}: it takes effect only once it is on there too.", &[("zone", &zone.name)])}
                    " "
                    <a href=step_href(Step::Zone, Some(zone.id), wizard.cluster.get(), None)>
                        {t("Go to step 1")}
                    </a>
                </p>
            }
        })
    };

    view! {
        <p class="wizard-intro">
            {t("Turn HA on for the cluster whose hosts should protect each other. With \"Include hosts\", every host of the cluster is switched on in the same step.")}
        </p>
        {zone_off}
        <div class="field">
            <label for="ha-wizard-cluster">{t("Cluster")}</label>
            <select id="ha-wizard-cluster" data-testid="ha-wizard-cluster" on:change=choose>
                <option value="" selected=move || wizard.cluster.get().is_none()>
                    {t("Choose a cluster")}
                </option>
                {move || {
                    clusters
                        .get()
                        .into_iter()
                        .map(|id| {
                            view! {
                                <option value=id.to_string() selected=move || wizard.cluster.get() == Some(id)>
                                    {store.cluster_name(id)}
                                </option>
                            }
                        })
                        .collect_view()
                }}
            </select>
        </div>
        {move || {
            chosen
                .get()
                .map(|cluster| {
                    let name = cluster.name.clone();
                    let needed = !cluster.ha_enabled || hosts_off.get() > 0;
                    let label = if cluster.ha_enabled {
                        tf("Enable HA for the hosts of cluster {cluster}", &[("cluster", &name)])
                    } else {
                        tf("Enable HA for cluster {cluster}", &[("cluster", &name)])
                    };
                    let action = (needed && may)
                        .then(|| {
                            view! {
                                <div class="wizard-action-row">
                                    <label class="checkbox" for="ha-wizard-include-hosts">
                                        <input
                                            type="checkbox"
                                            id="ha-wizard-include-hosts"
                                            data-testid="ha-wizard-include-hosts"
                                            prop:checked=move || include_hosts.get()
                                            on:change=move |event| include_hosts.set(event_target_checked(&event))
                                        />
                                        {t("Include hosts")}
                                    </label>
                                    <button
                                        type="button"
                                        class="button button-primary"
                                        data-testid="ha-wizard-cluster-enable"
                                        disabled=move || pending.get()
                                        on:click=enable
                                    >
                                        {label}
                                    </button>
                                </div>
                            }
                        });
                    view! {
                        <p
                            class="wizard-state"
                            data-testid="ha-wizard-cluster-state"
                            data-on=if cluster.ha_enabled { "true" } else { "false" }
                        >
                            <span class=if cluster.ha_enabled { "pill pill-on" } else { "pill" }>
                                {on_off(cluster.ha_enabled)}
                            </span>
                            " "
                            {tf(
                                "HA of cluster {cluster}: {state}",
                                &[("cluster", &name), ("state", on_off(cluster.ha_enabled))],
                            )}
                        </p>
                        {action}
                    }
                })
        }}
        <FormError error=error />
        <Show when=move || chosen.get().is_some()>
            <DataTable label=t("HA switch of each host")>
                <thead>
                    <tr>
                        <th scope="col">{t("Host")}</th>
                        <th scope="col">{t("HA switch")}</th>
                    </tr>
                </thead>
                <tbody>
                    {move || {
                        let hosts = hosts.get();
                        if hosts.is_empty() {
                            return view! { <EmptyRow columns=2 text=t("This cluster has no hosts.") /> }.into_any();
                        }
                        hosts
                            .into_iter()
                            .map(|host| {
                                let name = store.host_name(host);
                                let on = move || store.host_ha.with(|known| known.get(&host).map(|ha| ha.enabled));
                                view! {
                                    <tr data-testid=format!("ha-wizard-cluster-host-{name}") data-host=name.clone()>
                                        <th scope="row">{name.clone()}</th>
                                        <td data-on=move || on().map(|on| on.to_string()).unwrap_or_default()>
                                            {move || match on() {
                                                None => "…",
                                                Some(on) => on_off(on),
                                            }}
                                        </td>
                                    </tr>
                                }
                            })
                            .collect_view()
                            .into_any()
                    }}
                </tbody>
            </DataTable>
        </Show>
    }
}
