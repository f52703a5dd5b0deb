//! The out-of-band management switch of a zone, cluster or host: a `role="switch"` button named
//! "Out-of-band management of NAME", for pool operators and up; others see the setting as a pill.
//! OOBM is in effect for a host only when its zone, its cluster and the host are all on, so a switch
//! that is on under a parent that is off says so ([`parents_off`]).

use crate::api_client;
use crate::components::badges::FlagBadge;
use crate::components::dialog::WhyNot;
use crate::components::oobm_dialog::may_manage_oobm;
use crate::i18n::{t, tf};
use crate::session::Session;
use crate::store::Store;
use api::v1::HostOobm;
use api::{ClusterId, HostId, ZoneId};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// What a switch turns on or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OobmTarget {
    Zone(ZoneId),
    Cluster(ClusterId),
    Host(HostId),
}

/// The parents that are off, in words ("zone zone-1", "cluster cluster-a"); tracked. A cluster's
/// parent is its zone; a host's are its zone and cluster.
pub fn parents_off(store: Store, zone: ZoneId, cluster: Option<ClusterId>) -> Vec<String> {
    let mut off = Vec::new();
    if let Some(zone) = store.zone(zone).filter(|zone| !zone.oobm_enabled) {
        off.push(tf("zone {name}", &[("name", &zone.name)]));
    }
    if let Some(cluster) = cluster.and_then(|cluster| store.cluster(cluster)).filter(|cluster| !cluster.oobm_enabled) {
        off.push(tf("cluster {name}", &[("name", &cluster.name)]));
    }
    off
}

/// "Not in effect: out-of-band management is off for zone zone-1 and cluster cluster-a." when a switch
/// above is off, else nothing.
pub fn not_in_effect_text(parents_off: &[String]) -> Option<String> {
    let (last, first) = parents_off.split_last()?;
    let listed = if first.is_empty() {
        last.clone()
    } else {
        tf("{first} and {last}", &[("first", &first.join(", ")), ("last", last)])
    };
    Some(tf("Not in effect: out-of-band management is off for {listed}.", &[("listed", &listed)]))
}

/// The switch. `on` is the setting as shown now; `on_host_changed` receives a host's configuration
/// after its switch changed (zones and clusters go into the store, and the server's reload follows).
#[component]
pub fn OobmSwitch(
    target: OobmTarget,
    #[prop(into)] name: String,
    #[prop(into)] on: Signal<bool>,
    /// Why the switch cannot be used now (e.g. nothing configured yet), shown as its title.
    #[prop(optional, into)]
    unavailable: Option<Signal<Option<String>>>,
    #[prop(optional, into)] on_host_changed: Option<Callback<HostOobm>>,
) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    if may_manage_oobm(session).is_err() {
        return view! { {move || view! { <FlagBadge on=on.get() /> }} }.into_any();
    }
    let pending = RwSignal::new(false);
    let unavailable = move || unavailable.and_then(|reason| reason.get());
    let toggle = move |_| {
        let enabled = !on.get_untracked();
        pending.set(true);
        spawn_local(async move {
            let outcome = match target {
                OobmTarget::Zone(id) => api_client::set_zone_oobm_enabled(id, enabled).await.map(|zone| {
                    store.zones.update(|zones| {
                        zones.insert(zone.id, zone);
                    })
                }),
                OobmTarget::Cluster(id) => api_client::set_cluster_oobm_enabled(id, enabled).await.map(|cluster| {
                    store.clusters.update(|clusters| {
                        clusters.insert(cluster.id, cluster);
                    })
                }),
                OobmTarget::Host(id) => api_client::set_host_oobm_enabled(id, enabled).await.map(|host| {
                    if let Some(changed) = on_host_changed {
                        changed.run(host);
                    }
                }),
            };
            if let Err(error) = outcome {
                store.report(session, &error);
            }
            pending.set(false);
        });
    };
    view! {
        <button
            type="button"
            class="oobm-switch"
            role="switch"
            aria-checked=move || if on.get() { "true" } else { "false" }
            aria-label=tf("Out-of-band management of {name}", &[("name", &name)])
            title=move || unavailable().unwrap_or_else(|| t("Turn out-of-band management on or off").to_owned())
            disabled=move || pending.get() || unavailable().is_some()
            on:click=toggle
        >
            <span class="oobm-switch-track" aria-hidden="true">
                <span class="oobm-switch-thumb"></span>
            </span>
            <span class="oobm-switch-text">{move || if on.get() { t("On") } else { t("Off") }}</span>
        </button>
    }
    .into_any()
}

/// For list pages: "Why can't I switch out-of-band management?" for roles without the switches.
#[component]
pub fn OobmSwitchWhyNot() -> impl IntoView {
    may_manage_oobm(Session::expect())
        .err()
        .map(|reason| view! { <WhyNot action=t("switch out-of-band management") reason /> })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_names_every_switch_that_is_off() {
        assert_eq!(not_in_effect_text(&[]), None);
        let off = ["zone z".to_owned(), "cluster c".to_owned(), "host h".to_owned()];
        assert_eq!(
            not_in_effect_text(&off).unwrap(),
            "Not in effect: out-of-band management is off for zone z, cluster c and host h."
        );
        assert_eq!(not_in_effect_text(&off[..1]).unwrap(), "Not in effect: out-of-band management is off for zone z.");
    }
}
