//! A host's HA state as the engine sees it: the badge (`badge badge-ha badge-ha-STATE`, the word in
//! `data-ha-state`, since "disabled" is also a word of other states), the cell of the hosts list, and
//! the host page's card with switch, state and why, provider, since when, and the transitions. All live
//! from the store (`Event::Ha`).

use crate::components::format;
use crate::components::ha_switch::{HaNotInEffect, HaSwitch, HaTarget};
use crate::components::table::{DataTable, EmptyRow};
use crate::components::time::RelativeTime;
use crate::i18n::{server_text, t, tf};
use crate::store::Store;
use api::HostId;
use api::v1::{Host, HostHaState};
use leptos::prelude::*;

/// The state in words, capitalised ("Fenced").
pub fn state_text(state: HostHaState) -> &'static str {
    match state {
        HostHaState::Disabled => t("Disabled"),
        HostHaState::Ineligible => t("Ineligible"),
        HostHaState::Available => t("Available"),
        HostHaState::Suspect => t("Suspect"),
        HostHaState::Checking => t("Checking"),
        HostHaState::Degraded => t("Degraded"),
        HostHaState::Recovering => t("Recovering"),
        HostHaState::Recovered => t("Recovered"),
        HostHaState::Fencing => t("Fencing"),
        HostHaState::Fenced => t("Fenced"),
    }
}

/// What a state means, for the badge's title.
fn state_meaning(state: HostHaState) -> &'static str {
    match state {
        HostHaState::Disabled => t("HA is off for the host, its cluster or its zone"),
        HostHaState::Ineligible => t("HA is on, but the host cannot be protected"),
        HostHaState::Available => t("Protected: heartbeats arrive"),
        HostHaState::Suspect => t("Network heartbeats missed"),
        HostHaState::Checking => t("Looking at the storage heartbeat"),
        HostHaState::Degraded => t("Silent on the network but alive on storage: isolated, not fenced"),
        HostHaState::Recovering => t("A reset through out-of-band management is being tried"),
        HostHaState::Recovered => t("Reset done; waiting for the host to come back"),
        HostHaState::Fencing => t("Power off issued through out-of-band management; waiting for it to be confirmed"),
        HostHaState::Fenced => t("Confirmed off: its VMs may start elsewhere"),
    }
}

#[component]
pub fn HaStateBadge(state: HostHaState, #[prop(optional)] reason: Option<String>) -> impl IntoView {
    let reason = reason.filter(|reason| !reason.is_empty());
    let word = state.as_str();
    let title = match &reason {
        Some(reason) => {
            tf("HA: {meaning} ({reason})", &[("meaning", state_meaning(state)), ("reason", &server_text(reason))])
        }
        None => tf("HA: {meaning}", &[("meaning", state_meaning(state))]),
    };
    view! {
        <span class=format!("badge badge-ha badge-ha-{word}") data-ha-state=word title=title>
            {state_text(state)}
        </span>
    }
}

/// The hosts list's HA cell: the badge, with an ineligible host's reason beside it.
#[component]
pub fn HostHaCell(host: HostId) -> impl IntoView {
    let store = Store::expect();
    store.want_host_ha([host]);
    let shown =
        Memo::new(move |_| store.host_ha.with(|known| known.get(&host).map(|ha| (ha.state, ha.reason.clone()))));
    move || match shown.get() {
        None => view! { <span class="muted">"…"</span> }.into_any(),
        Some((state, reason)) => {
            let why = (state == HostHaState::Ineligible).then(|| reason.clone()).flatten();
            view! {
                <HaStateBadge state reason=reason.unwrap_or_default() />
                {why.map(|why| view! { <span class="state-reason">{server_text(&why)}</span> })}
            }
            .into_any()
        }
    }
}

/// The host page's HA card.
#[component]
pub fn HostHaCard(host: Memo<Host>) -> impl IntoView {
    let store = Store::expect();
    let id = host.with_untracked(|host| host.id);
    store.want_host_ha([id]);
    let ha = Memo::new(move |_| store.host_ha(id));
    let enabled = Signal::derive(move || ha.with(|ha| ha.as_ref().is_some_and(|ha| ha.enabled)));
    let since = Signal::derive(move || ha.with(|ha| ha.as_ref().and_then(|ha| ha.since)));
    let zone = host.with_untracked(|host| host.zone_id);
    let cluster = host.with_untracked(|host| host.cluster_id);
    let name = host.with_untracked(|host| host.name.clone());
    let running_incident = Memo::new(move |_| {
        store.incidents.with(|incidents| {
            incidents
                .values()
                .filter(|incident| incident.host_id == id)
                .max_by_key(|incident| incident.started_at)
                .map(|incident| (incident.id, incident.ended_at.is_none()))
        })
    });
    view! {
        <section class="panel ha-card" aria-label=t("High availability")>
            <h2>{t("High availability")}</h2>
            {move || match ha.get() {
                None => view! { <p class="muted">{t("Loading the host's HA state…")}</p> }.into_any(),
                Some(ha) => {
                    let why = ha.reason.clone();
                    view! {
                        <dl class="facts">
                            <dt>{t("HA of this host")}</dt>
                            <dd>
                                <HaSwitch target=HaTarget::Host(id) name=tf("host {name}", &[("name", &name)]) on=enabled />
                                <HaNotInEffect on=enabled zone cluster />
                            </dd>
                            <dt>{t("State")}</dt>
                            <dd class="ha-state-line">
                                <HaStateBadge state=ha.state reason=why.clone().unwrap_or_default() />
                                {why.map(|why| view! { <span class="ha-reason">{server_text(&why)}</span> })}
                            </dd>
                            <dt>{t("Provider")}</dt>
                            <dd class="mono">{ha.provider.as_str()}</dd>
                            <dt>{t("Since")}</dt>
                            <dd>
                                {ha.since.map(format::timestamp).unwrap_or_else(|| "—".to_owned())} " ("
                                <RelativeTime at=since /> ")"
                            </dd>
                        </dl>
                    }
                    .into_any()
                }
            }}
            {move || {
                running_incident
                    .get()
                    .map(|(incident, running)| {
                        view! {
                            <p class="ha-incident-link">
                                <a href=format!("/ha/incidents/{incident}")>
                                    {if running { t("Failover in progress: open the incident") } else { t("Latest HA incident") }}
                                </a>
                            </p>
                        }
                    })
            }}
            <h3>{t("Transitions")}</h3>
            <DataTable label=t("HA transitions")>
                <thead>
                    <tr>
                        <th scope="col">{t("Time")}</th>
                        <th scope="col">{t("From → to")}</th>
                        <th scope="col">{t("Event")}</th>
                        <th scope="col">{t("Reason")}</th>
                    </tr>
                </thead>
                <tbody>
                    {move || {
                        let transitions = ha.with(|ha| ha.as_ref().map(|ha| ha.transitions.clone()).unwrap_or_default());
                        if transitions.is_empty() {
                            return view! { <EmptyRow columns=4 text=t("No HA transitions yet.") /> }.into_any();
                        }
                        transitions
                            .into_iter()
                            .map(|transition| {
                                view! {
                                    <tr data-to=transition.to.as_str()>
                                        <td>{format::timestamp(transition.at)}</td>
                                        <td>
                                            <HaStateBadge state=transition.from />
                                            " → "
                                            <HaStateBadge state=transition.to />
                                        </td>
                                        <td class="mono">{transition.event}</td>
                                        <td>{server_text(&transition.reason)}</td>
                                    </tr>
                                }
                            })
                            .collect_view()
                            .into_any()
                    }}
                </tbody>
            </DataTable>
        </section>
    }
}
