//! "Pause HA while you change the pool" on a cluster's HA page: pool operators and up switch the
//! cluster's HA off for a change (the confirmation says what is no longer protected: the hosts that are
//! no longer watched or fenced and the HA-protected VMs that are no longer restarted) and back on.
//! While the cluster's HA is off under a zone whose HA is on, a banner says so; the server raises the
//! `ha-paused` alert at the same time (alerts page, alert count, mail) and clears it when HA is on
//! again or the zone's HA is off. Hosts' own switches are left as they are.

use crate::api_client;
use crate::components::dialog::{Dialog, FormError, WhyNot, focus_when_mounted};
use crate::i18n::{t, tf};
use crate::session::{Ability, Session};
use crate::store::Store;
use api::ClusterId;
use api::v1::VmState;
use leptos::html;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos::web_sys::HtmlElement;

/// Where the cluster's HA stands, from the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseState {
    /// Cluster and zone HA on: it can be paused.
    Protecting,
    /// Cluster HA off while the zone's is on: paused, a reminder is due.
    Paused,
    /// The zone's HA is off: nothing to pause or remind of here.
    ZoneOff,
}

pub fn pause_state(zone_on: bool, cluster_on: bool) -> PauseState {
    match (zone_on, cluster_on) {
        (false, _) => PauseState::ZoneOff,
        (true, true) => PauseState::Protecting,
        (true, false) => PauseState::Paused,
    }
}

/// What pausing leaves unprotected, in words.
pub fn unprotected_text(cluster: &str, hosts: usize, vms: usize) -> String {
    tf(
        "While HA is paused, the {hosts} host(s) of {cluster} are not watched or fenced, and its {vms} running HA-protected VM(s) are not restarted if their host fails. An alert reminds everyone until HA is on again.",
        &[("cluster", cluster), ("hosts", &hosts.to_string()), ("vms", &vms.to_string())],
    )
}

#[component]
pub fn HaPause(cluster: ClusterId) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    // Read once, untracked: see crate::components::vm_power.
    let permitted = session.may_untracked(Ability::ManageHa);
    let editable = permitted.is_ok();
    let state = Memo::new(move |_| {
        let found = store.cluster(cluster)?;
        let zone_on = store.zone(found.zone_id).is_some_and(|zone| zone.ha_enabled);
        Some(pause_state(zone_on, found.ha_enabled))
    });
    let name = move || store.cluster(cluster).map(|found| found.name).unwrap_or_default();
    let pending = RwSignal::new(false);
    let error = RwSignal::new(None::<String>);
    let confirming = RwSignal::new(false);

    let switch = move |enabled: bool| {
        if !editable || pending.get_untracked() {
            return;
        }
        pending.set(true);
        error.set(None);
        spawn_local(async move {
            match api_client::set_cluster_ha(cluster, enabled, false).await {
                Ok(switched) => store.clusters.update(|clusters| {
                    if let Some(found) = clusters.get_mut(&cluster) {
                        found.ha_enabled = switched.ha_enabled;
                    }
                }),
                Err(failure) => {
                    session.notice(&failure);
                    error.set(Some(failure.to_string()));
                }
            }
            pending.set(false);
        });
    };
    let close = Callback::new(move |()| confirming.set(false));
    let confirm = Callback::new(move |()| {
        confirming.set(false);
        switch(false);
    });

    view! {
        <section class="panel ha-pause" aria-labelledby="ha-pause-heading" data-testid="ha-pause-panel">
            <h2 id="ha-pause-heading">{t("Pause HA for changes")}</h2>
            {move || match state.get() {
                Some(PauseState::Paused) => {
                    view! {
                        <div class="ha-paused-banner" role="alert" data-testid="ha-paused-banner">
                            <p class="ha-paused-title">{t("HA is paused for this cluster")}</p>
                            <p>
                                {t(
                                    "Its hosts are not watched and its VMs are not restarted after a host failure. Turn HA back on as soon as your change is done.",
                                )}
                            </p>
                            {editable
                                .then(|| {
                                    view! {
                                        <button
                                            type="button"
                                            class="button button-primary"
                                            data-testid="ha-resume"
                                            disabled=move || pending.get()
                                            on:click=move |_| switch(true)
                                        >
                                            {move || if pending.get() { t("Saving…") } else { t("Turn HA back on") }}
                                        </button>
                                    }
                                })}
                        </div>
                    }
                        .into_any()
                }
                Some(PauseState::Protecting) => {
                    view! {
                        <p class="field-hint">
                            {t(
                                "Changing hosts or storage of this cluster? Pause HA first so that the change is not taken for a failure, and turn it back on afterwards.",
                            )}
                        </p>
                        {editable
                            .then(|| {
                                view! {
                                    <button
                                        type="button"
                                        class="button"
                                        data-testid="ha-pause"
                                        disabled=move || pending.get()
                                        on:click=move |_| confirming.set(true)
                                    >
                                        {t("Pause HA")}
                                    </button>
                                }
                            })}
                    }
                        .into_any()
                }
                Some(PauseState::ZoneOff) => {
                    view! {
                        <p class="muted" data-testid="ha-zone-off">
                            {t("HA is off for this cluster's zone: there is nothing to pause.")}
                        </p>
                    }
                        .into_any()
                }
                None => ().into_any(),
            }}
            <FormError error />
            {permitted.err().map(|reason| view! { <WhyNot action=t("pause or resume HA") reason /> })}
        </section>
        {move || confirming.get().then(|| view! { <ConfirmPause cluster name=name() close confirm /> })}
    }
}

/// "Pause HA for {cluster}?": what is no longer protected, then Cancel or Pause HA.
#[component]
fn ConfirmPause(cluster: ClusterId, name: String, close: Callback<()>, confirm: Callback<()>) -> impl IntoView {
    let store = Store::expect();
    let cancel = NodeRef::<html::Button>::new();
    focus_when_mounted(move || cancel.get().map(HtmlElement::from));
    let hosts = store.hosts.with_untracked(|hosts| hosts.values().filter(|host| host.cluster_id == cluster).count());
    let vms: Vec<String> = store.vms.with_untracked(|vms| {
        let mut names: Vec<String> = vms
            .values()
            .filter(|vm| vm.cluster_id == Some(cluster) && vm.ha_protected && vm.state == VmState::Running)
            .map(|vm| vm.name.clone())
            .collect();
        names.sort();
        names
    });
    let text = unprotected_text(&name, hosts, vms.len());
    view! {
        <Dialog title=tf("Pause HA for {cluster}?", &[("cluster", &name)]) on_close=close>
            <p data-testid="ha-pause-consequence">{text}</p>
            {(!vms.is_empty())
                .then(|| {
                    view! {
                        <p>{t("VMs no longer restarted:")}</p>
                        <ul class="ha-pause-vms" data-testid="ha-pause-vms">
                            {vms.into_iter().map(|vm| view! { <li>{vm}</li> }).collect_view()}
                        </ul>
                    }
                })}
            <div class="dialog-actions">
                <button type="button" class="button" node_ref=cancel on:click=move |_| close.run(())>
                    {t("Cancel")}
                </button>
                <button
                    type="button"
                    class="button button-danger"
                    data-testid="ha-pause-confirm"
                    on:click=move |_| confirm.run(())
                >
                    {t("Pause HA")}
                </button>
            </div>
        </Dialog>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_only_while_the_zone_is_on() {
        assert_eq!(pause_state(true, true), PauseState::Protecting);
        assert_eq!(pause_state(true, false), PauseState::Paused);
        assert_eq!(pause_state(false, false), PauseState::ZoneOff);
        assert_eq!(pause_state(false, true), PauseState::ZoneOff);
        assert!(unprotected_text("c1", 3, 2).contains("3 host(s) of c1"));
    }

    #[test]
    fn the_servers_reminder_reads_in_korean() {
        let message = "HA is paused for cluster cluster-a while zone zone-1 has HA on: its hosts are not watched and \
                       its VMs are not restarted after a host failure. Turn cluster HA back on when the change is done";
        let korean = crate::i18n::with_lang(crate::i18n::Lang::Ko, || crate::i18n::server_text(message));
        assert!(korean.starts_with("Zone zone-1의 고가용성은 켜져 있지만 클러스터 cluster-a의"), "{korean}");
    }
}
