//! The HA switches of a zone, cluster or host: a `role="switch"` button named "HA of NAME", for the
//! roles the server's `ManageHa` allows (pool operators and pool admins); others see the setting as a
//! pill and, on list pages, why they cannot switch it. HA is in effect for a host only when its zone,
//! its cluster and the host are all on, so a switch that is on under a parent that is off says so
//! ([`ha_parents_off`]). A cluster's switch comes with "Include hosts": every host of the cluster is
//! switched in the same transaction.

use crate::api_client;
use crate::components::badges::FlagBadge;
use crate::components::dialog::WhyNot;
use crate::i18n::{t, tf};
use crate::session::{Ability, Session};
use crate::store::Store;
use api::{ClusterId, HostId, ZoneId};
use leptos::prelude::*;
use leptos::task::spawn_local;

/// What a switch turns on or off.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HaTarget {
    Zone(ZoneId),
    Cluster(ClusterId),
    Host(HostId),
}

/// `Ok` when the signed-in role may switch HA (the server's `ManageHa`), else the reason in words.
/// Untracked, like [`Session::may_untracked`].
pub fn may_manage_ha(session: Session) -> Result<(), String> {
    session.may_untracked(Ability::ManageHa)
}

/// The parents whose HA is off, in words ("zone zone-1", "cluster cluster-a"); tracked.
pub fn ha_parents_off(store: Store, zone: ZoneId, cluster: Option<ClusterId>) -> Vec<String> {
    let mut off = Vec::new();
    if let Some(zone) = store.zone(zone).filter(|zone| !zone.ha_enabled) {
        off.push(tf("zone {name}", &[("name", &zone.name)]));
    }
    if let Some(cluster) = cluster.and_then(|cluster| store.cluster(cluster)).filter(|cluster| !cluster.ha_enabled) {
        off.push(tf("cluster {name}", &[("name", &cluster.name)]));
    }
    off
}

/// "Not in effect: HA is off for zone zone-1 and cluster cluster-a." when a switch above is off.
pub fn ha_not_in_effect_text(parents_off: &[String]) -> Option<String> {
    let (last, first) = parents_off.split_last()?;
    let listed = if first.is_empty() {
        last.clone()
    } else {
        tf("{first} and {last}", &[("first", &first.join(", ")), ("last", last)])
    };
    Some(tf("Not in effect: HA is off for {listed}.", &[("listed", &listed)]))
}

/// The note under a switch that is on while a parent is off (nothing otherwise); tracked.
#[component]
pub fn HaNotInEffect(
    #[prop(into)] on: Signal<bool>,
    zone: ZoneId,
    #[prop(optional)] cluster: Option<ClusterId>,
) -> impl IntoView {
    let store = Store::expect();
    move || {
        on.get()
            .then(|| ha_not_in_effect_text(&ha_parents_off(store, zone, cluster)))
            .flatten()
            .map(|text| view! { <p class="ha-not-in-effect">{text}</p> })
    }
}

/// The switch. `on` is the setting as shown now. A cluster's switch also offers "Include hosts".
#[component]
pub fn HaSwitch(target: HaTarget, #[prop(into)] name: String, #[prop(into)] on: Signal<bool>) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    if may_manage_ha(session).is_err() {
        return view! { {move || view! { <FlagBadge on=on.get() /> }} }.into_any();
    }
    let pending = RwSignal::new(false);
    // Switching every host with its cluster is what one wants most of the time.
    let include_hosts = RwSignal::new(true);
    let toggle = move |_| {
        let enabled = !on.get_untracked();
        let include = include_hosts.get_untracked();
        pending.set(true);
        spawn_local(async move {
            let outcome = match target {
                HaTarget::Zone(id) => api_client::set_zone_ha(id, enabled).await.map(|zone| {
                    store.zones.update(|zones| {
                        zones.insert(zone.id, zone);
                    })
                }),
                HaTarget::Cluster(id) => api_client::set_cluster_ha(id, enabled, include).await.map(|switched| {
                    store.clusters.update(|clusters| {
                        if let Some(cluster) = clusters.get_mut(&id) {
                            cluster.ha_enabled = switched.ha_enabled;
                        }
                    });
                    for host in switched.hosts_changed {
                        store.fetch_host_ha(host);
                    }
                }),
                HaTarget::Host(id) => api_client::set_host_ha(id, enabled).await.map(|ha| store.upsert_host_ha(ha)),
            };
            if let Err(error) = outcome {
                store.report(session, &error);
            }
            pending.set(false);
        });
    };
    let include_box = matches!(target, HaTarget::Cluster(_)).then(|| {
        view! {
            <label class="ha-include-hosts">
                <input
                    type="checkbox"
                    prop:checked=move || include_hosts.get()
                    on:change=move |event| include_hosts.set(event_target_checked(&event))
                    aria-label=tf("Include the hosts of {name}", &[("name", &name)])
                />
                {t("Include hosts")}
            </label>
        }
    });
    view! {
        <span class="ha-switch-group">
            <button
                type="button"
                class="oobm-switch ha-switch"
                role="switch"
                aria-checked=move || if on.get() { "true" } else { "false" }
                aria-label=tf("HA of {name}", &[("name", &name)])
                title=t("Turn HA on or off")
                disabled=move || pending.get()
                on:click=toggle
            >
                <span class="oobm-switch-track" aria-hidden="true">
                    <span class="oobm-switch-thumb"></span>
                </span>
                <span class="oobm-switch-text">{move || if on.get() { t("On") } else { t("Off") }}</span>
            </button>
            {include_box}
        </span>
    }
    .into_any()
}

/// For list pages: "Why can't I switch HA?" for roles without the switches.
#[component]
pub fn HaSwitchWhyNot() -> impl IntoView {
    may_manage_ha(Session::expect()).err().map(|reason| view! { <WhyNot action=t("switch HA") reason /> })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_note_names_every_switch_that_is_off() {
        assert_eq!(ha_not_in_effect_text(&[]), None);
        let off = ["zone z".to_owned(), "cluster c".to_owned()];
        assert_eq!(ha_not_in_effect_text(&off).unwrap(), "Not in effect: HA is off for zone z and cluster c.");
        assert_eq!(ha_not_in_effect_text(&off[..1]).unwrap(), "Not in effect: HA is off for zone z.");
    }
}
