//! The zones list: each zone with its HA and out-of-band management switches and what it contains. Pool
//! operators and up turn HA (`components::ha_switch`) and out-of-band management (`components::oobm_switch`)
//! on and off here.

use crate::components::error_view::{ErrorView, Loading};
use crate::components::ha_switch::{HaSwitch, HaSwitchWhyNot, HaTarget};
use crate::components::oobm_switch::{OobmSwitch, OobmSwitchWhyNot, OobmTarget};
use crate::components::table::{DataTable, EmptyRow};
use crate::i18n::{t, tf};
use crate::session::{Ability, Session};
use crate::store::Store;
use api::ZoneId;
use leptos::prelude::*;
use leptos_router::components::A;

#[component]
pub fn ZonesPage() -> impl IntoView {
    let store = Store::expect();
    view! {
        <div class="page">
            <header class="page-header">
                <h1>{t("Zones")}</h1>
                <p class="page-summary">
                    {move || tf("{count} zones", &[("count", &store.zones.with(|zones| zones.len()).to_string())])}
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
                                    <DataTable label=t("Zones")>
                                        <thead>
                                            <tr>
                                                <th scope="col">{t("Name")}</th>
                                                <th scope="col">{t("HA")}</th>
                                                <th scope="col">{t("Out-of-band management")}</th>
                                                <th scope="col" class="num">{t("Clusters")}</th>
                                                <th scope="col" class="num">{t("Hosts connected")}</th>
                                                <th scope="col" class="num">{t("VMs running")}</th>
                                                <th scope="col" class="actions">{t("Actions")}</th>
                                            </tr>
                                        </thead>
                                        <tbody>
                                            <Show when=move || store.zones.with(|zones| zones.is_empty())>
                                                <EmptyRow columns=7 text=t("No zones yet.") />
                                            </Show>
                                            <For
                                                each=move || store.zone_ids()
                                                key=|id| *id
                                                children=|id| view! { <ZoneRow id /> }
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
fn ZoneRow(id: ZoneId) -> impl IntoView {
    let store = Store::expect();
    // Read once, untracked: see `crate::components::vm_power`.
    let may_set_up_ha = Session::expect().may_untracked(Ability::ManageHa).is_ok();
    let zone = Memo::new(move |_| store.zone(id));
    move || {
        zone.get().map(|zone| {
            let clusters = store.cluster_ids(Some(id)).len();
            let (connected, hosts) = store.host_counts(|host| host.zone_id == id);
            let (running, vms) = store.vm_counts(|vm| vm.zone_id == id);
            view! {
                <tr>
                    <th scope="row">{zone.name.clone()}</th>
                    <td>
                        <HaSwitch target=HaTarget::Zone(id) name=tf("zone {name}", &[("name", &zone.name)]) on=Signal::stored(zone.ha_enabled) />
                    </td>
                    <td>
                        <OobmSwitch
                            target=OobmTarget::Zone(id)
                            name=tf("zone {name}", &[("name", &zone.name)])
                            on=Signal::stored(zone.oobm_enabled)
                        />
                    </td>
                    <td class="num">{clusters}</td>
                    <td class="num">{format!("{connected}/{hosts}")}</td>
                    <td class="num">{format!("{running}/{vms}")}</td>
                    <td class="actions">
                        {may_set_up_ha
                            .then(|| {
                                view! {
                                    <A
                                        href=format!("/ha/setup?step=1&zone={id}")
                                        attr:class="button button-small"
                                        attr:aria-label=tf("HA setup for zone {zone}…", &[("zone", &zone.name)])
                                    >
                                        {t("HA setup…")}
                                    </A>
                                }
                            })}
                    </td>
                </tr>
            }
        })
    }
}
