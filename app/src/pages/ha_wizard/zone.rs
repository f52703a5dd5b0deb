//! Step 1: HA on for a zone (Mold's guide: "Zone HA 활성화"), after a confirmation. The zone is chosen
//! here or comes with the address; a pool with one zone has it chosen already.

use super::{Step, Wizard, may_take};
use crate::api_client;
use crate::components::dialog::{Dialog, FormError, focus_when_mounted};
use crate::i18n::{t, tf};
use crate::session::Session;
use crate::store::Store;
use api::ids::ZoneId;
use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// Done once a zone is chosen and HA is on for it.
pub fn zone_done(wizard: Wizard) -> bool {
    let store = Store::expect();
    wizard.zone.get().and_then(|zone| store.zone(zone)).is_some_and(|zone| zone.ha_enabled)
}

/// Moves the focus to the wizard's Next button, else to the step's heading (after a step's action
/// succeeded and its button may be gone).
pub fn focus_next() {
    use leptos::wasm_bindgen::JsCast;
    // After the next frame: Next is enabled by then (the page follows the store asynchronously).
    request_animation_frame(|| {
        let element = |id: &str| {
            document().get_element_by_id(id).and_then(|found| found.dyn_into::<leptos::web_sys::HtmlElement>().ok())
        };
        // Next when it is enabled, else the step's heading (the keyboard goes on from there).
        let enabled = element("ha-wizard-next").filter(|next| !next.has_attribute("disabled"));
        if let Some(target) = enabled.or_else(|| element("ha-wizard-heading")) {
            let _ = target.focus();
        }
    });
}

/// On/off in words (translated).
pub fn on_off(on: bool) -> &'static str {
    if on { t("On") } else { t("Off") }
}

#[component]
pub fn ZoneStep(wizard: Wizard) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let may = may_take(Step::Zone);
    // One zone: nothing to choose.
    Effect::new(move || {
        let zones = store.zone_ids();
        if wizard.zone.get_untracked().is_none() && zones.len() == 1 {
            wizard.zone.set(Some(zones[0]));
        }
    });
    let asking = RwSignal::new(false);
    let pending = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let trigger = NodeRef::<html::Button>::new();
    let confirm = NodeRef::<html::Button>::new();
    let chosen = Memo::new(move |_| wizard.zone.get().and_then(|zone| store.zone(zone)));
    let close = Callback::new(move |()| {
        asking.set(false);
        if let Some(trigger) = trigger.get_untracked() {
            let _ = trigger.focus();
        }
    });
    let enable = move |_| {
        let Some(zone) = wizard.zone.get_untracked() else { return };
        pending.set(true);
        error.set(None);
        spawn_local(async move {
            match api_client::set_zone_ha(zone, true).await {
                Ok(zone) => {
                    store.zones.update(|zones| {
                        zones.insert(zone.id, zone);
                    });
                    asking.set(false);
                    // The button that opened the dialog is gone; the keyboard goes on with Next.
                    focus_next();
                }
                Err(failure) => {
                    session.notice(&failure);
                    error.set(Some(failure.to_string()));
                    asking.set(false);
                }
            }
            pending.set(false);
        });
    };
    let choose = move |event: leptos::ev::Event| {
        let value = event_target_value(&event);
        wizard.zone.set(value.parse::<ZoneId>().ok());
        // A cluster of another zone no longer fits.
        if let Some(cluster) = wizard.cluster.get_untracked().and_then(|id| store.cluster(id))
            && Some(cluster.zone_id) != wizard.zone.get_untracked()
        {
            wizard.cluster.set(None);
        }
    };

    view! {
        <p class="wizard-intro">
            {t("HA works only where it is on at every level: the zone, the cluster and the host. Start with the zone.")}
        </p>
        <div class="field">
            <label for="ha-wizard-zone">{t("Zone")}</label>
            <select id="ha-wizard-zone" data-testid="ha-wizard-zone" on:change=choose>
                <option value="" selected=move || wizard.zone.get().is_none()>
                    {t("Choose a zone")}
                </option>
                {move || {
                    store
                        .zone_ids()
                        .into_iter()
                        .map(|id| {
                            view! {
                                <option value=id.to_string() selected=move || wizard.zone.get() == Some(id)>
                                    {store.zone_name(id)}
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
                .map(|zone| {
                    let name = zone.name.clone();
                    let state = tf("HA of zone {zone}: {state}", &[("zone", &name), ("state", on_off(zone.ha_enabled))]);
                    let action = (!zone.ha_enabled && may)
                        .then(|| {
                            view! {
                                <button
                                    type="button"
                                    class="button button-primary"
                                    data-testid="ha-wizard-zone-enable"
                                    node_ref=trigger
                                    disabled=move || pending.get()
                                    on:click=move |_| asking.set(true)
                                >
                                    {tf("Enable HA for zone {zone}", &[("zone", &name)])}
                                </button>
                            }
                        });
                    view! {
                        <p
                            class="wizard-state"
                            data-testid="ha-wizard-zone-state"
                            data-on=if zone.ha_enabled { "true" } else { "false" }
                        >
                            <span class=if zone.ha_enabled { "pill pill-on" } else { "pill" }>
                                {on_off(zone.ha_enabled)}
                            </span>
                            " "
                            {state}
                        </p>
                        {action}
                    }
                })
        }}
        <FormError error=error />
        <Show when=move || asking.get()>
            {move || {
                let name = chosen.get().map(|zone| zone.name).unwrap_or_default();
                focus_when_mounted(move || confirm.get().map(Into::into));
                view! {
                    <Dialog title=t("Enable HA for the zone") on_close=close>
                        <p>
                            {tf(
                                "Turn HA on for zone {zone}? Its hosts are protected once HA is also on for their cluster and for each host, and out-of-band management can power them off.",
                                &[("zone", &name)],
                            )}
                        </p>
                        <div class="dialog-actions">
                            <button
                                type="button"
                                class="button button-quiet"
                                on:click=move |_| close.run(())
                            >
                                {t("Cancel")}
                            </button>
                            <button
                                type="button"
                                class="button button-primary"
                                data-testid="ha-wizard-zone-confirm"
                                node_ref=confirm
                                disabled=move || pending.get()
                                on:click=enable
                            >
                                {t("Enable HA")}
                            </button>
                        </div>
                    </Dialog>
                }
            }}
        </Show>
    }
}
