//! The zones list: each zone with its HA and out-of-band management switches and what it contains. Pool
//! operators and up turn HA (`components::ha_switch`) and out-of-band management (`components::oobm_switch`)
//! on and off here.

use crate::components::error_view::{ErrorView, Loading};
use crate::components::ha_switch::{HaSwitch, HaSwitchWhyNot, HaTarget};
use crate::components::oobm_switch::{OobmSwitch, OobmSwitchWhyNot, OobmTarget};
use crate::components::table::{DataTable, EmptyRow};
use crate::store::Store;
use api::ZoneId;
use leptos::prelude::*;

#[component]
pub fn ZonesPage() -> impl IntoView {
    let store = Store::expect();
    view! {
        <div class="page">
            <header class="page-header">
                <h1>"Zones"</h1>
                <p class="page-summary">
                    {move || format!("{} zones", store.zones.with(|zones| zones.len()))}
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
                                    <DataTable label="Zones">
                                        <thead>
                                            <tr>
                                                <th scope="col">"Name"</th>
                                                <th scope="col">"HA"</th>
                                                <th scope="col">"Out-of-band management"</th>
                                                <th scope="col" class="num">"Clusters"</th>
                                                <th scope="col" class="num">"Hosts connected"</th>
                                                <th scope="col" class="num">"VMs running"</th>
                                            </tr>
                                        </thead>
                                        <tbody>
                                            <Show when=move || store.zones.with(|zones| zones.is_empty())>
                                                <EmptyRow columns=6 text="No zones yet." />
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
                        <HaSwitch target=HaTarget::Zone(id) name=format!("zone {}", zone.name) on=Signal::stored(zone.ha_enabled) />
                    </td>
                    <td>
                        <OobmSwitch
                            target=OobmTarget::Zone(id)
                            name=format!("zone {}", zone.name)
                            on=Signal::stored(zone.oobm_enabled)
                        />
                    </td>
                    <td class="num">{clusters}</td>
                    <td class="num">{format!("{connected}/{hosts}")}</td>
                    <td class="num">{format!("{running}/{vms}")}</td>
                </tr>
            }
        })
    }
}
