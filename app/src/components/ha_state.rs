//! A host's HA state as the engine sees it: the badge (`badge badge-ha badge-ha-STATE`, the word in
//! `data-ha-state`, since "disabled" is also a word of other states), the cell of the hosts list, and
//! the host page's card with switch, state and why, provider, since when, and the transitions. All live
//! from the store (`Event::Ha`).

use crate::components::format;
use crate::components::ha_switch::{HaNotInEffect, HaSwitch, HaTarget};
use crate::components::table::{DataTable, EmptyRow};
use crate::components::time::RelativeTime;
use crate::store::Store;
use api::HostId;
use api::v1::{Host, HostHaState};
use leptos::prelude::*;

/// The state in words, capitalised ("Fenced").
pub fn state_text(state: HostHaState) -> &'static str {
    match state {
        HostHaState::Disabled => "Disabled",
        HostHaState::Ineligible => "Ineligible",
        HostHaState::Available => "Available",
        HostHaState::Suspect => "Suspect",
        HostHaState::Checking => "Checking",
        HostHaState::Degraded => "Degraded",
        HostHaState::Recovering => "Recovering",
        HostHaState::Recovered => "Recovered",
        HostHaState::Fencing => "Fencing",
        HostHaState::Fenced => "Fenced",
    }
}

/// What a state means, for the badge's title.
fn state_meaning(state: HostHaState) -> &'static str {
    match state {
        HostHaState::Disabled => "HA is off for the host, its cluster or its zone",
        HostHaState::Ineligible => "HA is on, but the host cannot be protected",
        HostHaState::Available => "Protected: heartbeats arrive",
        HostHaState::Suspect => "Network heartbeats missed",
        HostHaState::Checking => "Looking at the storage heartbeat",
        HostHaState::Degraded => "Silent on the network but alive on storage: isolated, not fenced",
        HostHaState::Recovering => "A reset through out-of-band management is being tried",
        HostHaState::Recovered => "Reset done; waiting for the host to come back",
        HostHaState::Fencing => "Power off issued through out-of-band management; waiting for it to be confirmed",
        HostHaState::Fenced => "Confirmed off: its VMs may start elsewhere",
    }
}

#[component]
pub fn HaStateBadge(state: HostHaState, #[prop(optional)] reason: Option<String>) -> impl IntoView {
    let reason = reason.filter(|reason| !reason.is_empty());
    let word = state.as_str();
    let title = match &reason {
        Some(reason) => format!("HA: {} ({reason})", state_meaning(state)),
        None => format!("HA: {}", state_meaning(state)),
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
                {why.map(|why| view! { <span class="state-reason">{why}</span> })}
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
        <section class="panel ha-card" aria-label="High availability">
            <h2>"High availability"</h2>
            {move || match ha.get() {
                None => view! { <p class="muted">"Loading the host's HA state…"</p> }.into_any(),
                Some(ha) => {
                    let why = ha.reason.clone();
                    view! {
                        <dl class="facts">
                            <dt>"HA of this host"</dt>
                            <dd>
                                <HaSwitch target=HaTarget::Host(id) name=format!("host {name}") on=enabled />
                                <HaNotInEffect on=enabled zone cluster />
                            </dd>
                            <dt>"State"</dt>
                            <dd class="ha-state-line">
                                <HaStateBadge state=ha.state reason=why.clone().unwrap_or_default() />
                                {why.map(|why| view! { <span class="ha-reason">{why}</span> })}
                            </dd>
                            <dt>"Provider"</dt>
                            <dd class="mono">{ha.provider.as_str()}</dd>
                            <dt>"Since"</dt>
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
                                    {if running { "Failover in progress: open the incident" } else { "Latest HA incident" }}
                                </a>
                            </p>
                        }
                    })
            }}
            <h3>"Transitions"</h3>
            <DataTable label="HA transitions">
                <thead>
                    <tr>
                        <th scope="col">"Time"</th>
                        <th scope="col">"From → to"</th>
                        <th scope="col">"Event"</th>
                        <th scope="col">"Reason"</th>
                    </tr>
                </thead>
                <tbody>
                    {move || {
                        let transitions = ha.with(|ha| ha.as_ref().map(|ha| ha.transitions.clone()).unwrap_or_default());
                        if transitions.is_empty() {
                            return view! { <EmptyRow columns=4 text="No HA transitions yet." /> }.into_any();
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
                                        <td>{transition.reason}</td>
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
