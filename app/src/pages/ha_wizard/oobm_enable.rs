//! Step 4: out-of-band management on for the zone, the cluster and every configured host of the
//! cluster (Mold's guide: "원격 관리 활성화"): OOBM is in effect for a host only when all three are on.
//! One button switches on whatever is still off; the table shows each host's switch and whether OOBM is
//! in effect, with the power state its BMC reports.

use super::oobm_configure::OobmConfigs;
use super::zone::on_off;
use super::{Step, Wizard, may_take, step_href};
use crate::api_client;
use crate::components::badges::PowerStateBadge;
use crate::components::dialog::FormError;
use crate::components::table::{DataTable, EmptyRow};
use crate::i18n::{t, tf};
use crate::session::Session;
use crate::store::Store;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// Done once OOBM is on for the zone and the cluster and in effect for every host of the cluster.
pub fn oobm_enable_done(wizard: Wizard) -> bool {
    let store = Store::expect();
    let Some(cluster) = wizard.cluster.get().and_then(|cluster| store.cluster(cluster)) else {
        return false;
    };
    let zone_on = store.zone(cluster.zone_id).is_some_and(|zone| zone.oobm_enabled);
    let hosts = store.host_ids(Some(cluster.id));
    zone_on
        && cluster.oobm_enabled
        && !hosts.is_empty()
        && hosts.iter().all(|host| store.host(*host).is_some_and(|host| host.oobm_enabled_effective))
}

#[component]
pub fn OobmEnableStep(wizard: Wizard) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let configs = OobmConfigs::expect();
    let may = may_take(Step::EnableOobm);
    let hosts = Memo::new(move |_| wizard.cluster_hosts());
    Effect::new(move || configs.want(&hosts.get()));
    let cluster = Memo::new(move |_| wizard.cluster.get().and_then(|cluster| store.cluster(cluster)));
    let zone = Memo::new(move |_| cluster.get().and_then(|cluster| store.zone(cluster.zone_id)));
    let pending = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    // Hosts with a configuration whose own switch is off; hosts without one are for step 3.
    let hosts_off = Memo::new(move |_| {
        hosts
            .get()
            .into_iter()
            .filter(|host| configs.get(*host).flatten().is_some_and(|config| !config.enabled))
            .collect::<Vec<_>>()
    });
    let unconfigured =
        Memo::new(move |_| hosts.get().into_iter().filter(|host| matches!(configs.get(*host), Some(None))).count());
    let anything_off = move || {
        zone.get().is_some_and(|zone| !zone.oobm_enabled)
            || cluster.get().is_some_and(|cluster| !cluster.oobm_enabled)
            || !hosts_off.get().is_empty()
    };
    let enable = move |_| {
        let (Some(zone), Some(cluster)) = (zone.get_untracked(), cluster.get_untracked()) else { return };
        let hosts = hosts_off.get_untracked();
        pending.set(true);
        error.set(None);
        spawn_local(async move {
            let mut failures = Vec::new();
            if !zone.oobm_enabled {
                match api_client::set_zone_oobm_enabled(zone.id, true).await {
                    Ok(zone) => store.zones.update(|zones| {
                        zones.insert(zone.id, zone);
                    }),
                    Err(failure) => failures.push(failure),
                }
            }
            if !cluster.oobm_enabled {
                match api_client::set_cluster_oobm_enabled(cluster.id, true).await {
                    Ok(cluster) => store.clusters.update(|clusters| {
                        clusters.insert(cluster.id, cluster);
                    }),
                    Err(failure) => failures.push(failure),
                }
            }
            for host in hosts {
                match api_client::set_host_oobm_enabled(host, true).await {
                    Ok(config) => configs.set(config),
                    Err(failure) => failures.push(failure),
                }
            }
            // Whether OOBM is in effect comes with each host (announced live; read again to be sure).
            for host in store.host_ids(Some(cluster.id)) {
                if let Ok(found) = api_client::host(host).await {
                    store.upsert_host(found);
                }
            }
            if let Some(failure) = failures.first() {
                session.notice(failure);
                error.set(Some(failures.iter().map(ToString::to_string).collect::<Vec<_>>().join(" ")));
            } else {
                super::zone::focus_next();
            }
            pending.set(false);
        });
    };
    let level = move |label: String, on: bool, testid: &'static str| {
        view! {
            <li data-testid=testid data-on=on.to_string()>
                <span class=if on { "pill pill-on" } else { "pill" }>{on_off(on)}</span>
                " "
                {label}
            </li>
        }
    };

    view! {
        <p class="wizard-intro">
            {t("Out-of-band management is in effect for a host only when it is on for its zone, its cluster and the host itself.")}
        </p>
        {move || {
            let (Some(zone), Some(cluster)) = (zone.get(), cluster.get()) else {
                return view! { <p class="wizard-warning">{t("Choose a cluster in step 2 first.")}</p> }.into_any();
            };
            view! {
                <ul class="wizard-levels">
                    {level(
                        tf("Out-of-band management of zone {zone}", &[("zone", &zone.name)]),
                        zone.oobm_enabled,
                        "ha-wizard-oobm-zone",
                    )}
                    {level(
                        tf("Out-of-band management of cluster {cluster}", &[("cluster", &cluster.name)]),
                        cluster.oobm_enabled,
                        "ha-wizard-oobm-cluster",
                    )}
                </ul>
            }
            .into_any()
        }}
        {move || {
            (unconfigured.get() > 0)
                .then(|| {
                    view! {
                        <p class="wizard-warning">
                            {tf(
                                "{count} hosts have no out-of-band management configured yet.",
                                &[("count", &unconfigured.get().to_string())],
                            )}
                            " "
                            <a href=step_href(Step::ConfigureOobm, wizard.zone.get(), wizard.cluster.get(), None)>
                                {t("Go to step 3")}
                            </a>
                        </p>
                    }
                })
        }}
        {move || {
            (may && anything_off())
                .then(|| {
                    view! {
                        <div class="wizard-action-row">
                            <button
                                type="button"
                                class="button button-primary"
                                data-testid="ha-wizard-oobm-enable"
                                disabled=move || pending.get()
                                on:click=enable
                            >
                                {move || {
                                    if pending.get() {
                                        t("Enabling…").to_owned()
                                    } else {
                                        tf(
                                            "Enable out-of-band management (zone, cluster and {count} hosts)",
                                            &[("count", &hosts_off.get().len().to_string())],
                                        )
                                    }
                                }}
                            </button>
                        </div>
                    }
                })
        }}
        <FormError error=error />
        <DataTable label=t("Out-of-band management switch of each host")>
            <thead>
                <tr>
                    <th scope="col">{t("Host")}</th>
                    <th scope="col">{t("Host switch")}</th>
                    <th scope="col">{t("In effect")}</th>
                    <th scope="col">{t("Power")}</th>
                </tr>
            </thead>
            <tbody>
                {move || {
                    let hosts = hosts.get();
                    if hosts.is_empty() {
                        return view! { <EmptyRow columns=4 text=t("Choose a cluster with hosts in step 2.") /> }
                            .into_any();
                    }
                    hosts
                        .into_iter()
                        .map(|host| {
                            let name = store.host_name(host);
                            let switch = move || match configs.get(host) {
                                None => t("…"),
                                Some(None) => t("Not configured"),
                                Some(Some(config)) => on_off(config.enabled),
                            };
                            let effective = move || store.host(host).is_some_and(|host| host.oobm_enabled_effective);
                            let power = move || store.host(host).map(|host| view! { <PowerStateBadge power=host.power_state /> });
                            view! {
                                <tr
                                    data-testid=format!("ha-wizard-oobm-enable-host-{name}")
                                    data-host=name.clone()
                                    data-effective=move || effective().to_string()
                                >
                                    <th scope="row">{name.clone()}</th>
                                    <td>{switch}</td>
                                    <td>{move || if effective() { t("Yes") } else { t("No") }}</td>
                                    <td>{power}</td>
                                </tr>
                            }
                        })
                        .collect_view()
                        .into_any()
                }}
            </tbody>
        </DataTable>
    }
}
