//! Step 5: every host's HA state and provider (Mold's guide: "호스트 HA 상태 확인": Available, kvm or
//! sim), live from the store; for each host that is not Available, why, and a link to the step or
//! page that fixes it. Reading only: every role may look.

use super::{Step, Wizard, step_href};
use crate::components::ha_state::state_text;
use crate::components::table::{DataTable, EmptyRow};
use crate::i18n::{server_text, t, tf};
use crate::store::Store;
use api::HostId;
use api::v1::{HostHa, HostHaState};
use leptos::prelude::*;

/// Done once the chosen cluster has hosts and every one of them is Available.
pub fn host_state_done(wizard: Wizard) -> bool {
    let store = Store::expect();
    let hosts = wizard.cluster_hosts();
    store.want_host_ha(hosts.iter().copied());
    !hosts.is_empty()
        && store
            .host_ha
            .with(|known| hosts.iter().all(|host| known.get(host).is_some_and(|ha| ha.state == HostHaState::Available)))
}

/// Where a host that is not Available gets fixed: the wizard's step, or a page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fix {
    Step(Step),
    HostPage,
    /// Nothing to do but wait (a failover under way).
    Wait,
}

/// The fix for a host's state; `zone_on` and `cluster_on` are the HA switches above the host.
pub fn fix_for(ha: &HostHa, zone_on: bool, cluster_on: bool) -> Option<Fix> {
    match ha.state {
        HostHaState::Available => None,
        HostHaState::Disabled if !zone_on => Some(Fix::Step(Step::Zone)),
        HostHaState::Disabled => {
            let _ = cluster_on;
            Some(Fix::Step(Step::Cluster))
        }
        HostHaState::Ineligible => {
            let reason = ha.reason.as_deref().unwrap_or_default();
            if reason.contains("OOBM is not configured") {
                Some(Fix::Step(Step::ConfigureOobm))
            } else if reason.contains("OOBM is not enabled") {
                Some(Fix::Step(Step::EnableOobm))
            } else {
                Some(Fix::HostPage)
            }
        }
        HostHaState::Fenced | HostHaState::Degraded => Some(Fix::HostPage),
        HostHaState::Suspect
        | HostHaState::Checking
        | HostHaState::Recovering
        | HostHaState::Recovered
        | HostHaState::Fencing => Some(Fix::Wait),
    }
}

/// Why the host is not Available, in words (translated); the server's reason when it gave one.
fn why(ha: &HostHa, zone_on: bool, cluster_on: bool) -> String {
    if let Some(reason) = ha.reason.as_deref().filter(|reason| !reason.is_empty()) {
        return server_text(reason);
    }
    match ha.state {
        HostHaState::Disabled if !zone_on => t("HA is off for the host's zone.").to_owned(),
        HostHaState::Disabled if !cluster_on => t("HA is off for the host's cluster.").to_owned(),
        HostHaState::Disabled => t("HA is off for the host.").to_owned(),
        HostHaState::Fenced => {
            t("The host was fenced: it stays out of service until it is powered on and returned.").to_owned()
        }
        _ => t("A failover is under way.").to_owned(),
    }
}

#[component]
pub fn HostStateStep(wizard: Wizard) -> impl IntoView {
    let store = Store::expect();
    // The chosen cluster's hosts; every host of the pool while none is chosen.
    let hosts = Memo::new(move |_| match wizard.cluster.get() {
        Some(cluster) => store.host_ids(Some(cluster)),
        None => store.host_ids(None),
    });
    Effect::new(move || store.want_host_ha(hosts.get()));
    let refresh = move |_| {
        for host in hosts.get_untracked() {
            store.fetch_host_ha(host);
        }
    };
    let fix_link = move |host: HostId, fix: Fix| -> AnyView {
        let zone = wizard.zone.get_untracked();
        let cluster = wizard.cluster.get_untracked();
        match fix {
            Fix::Step(step) => view! {
                <a href=step_href(step, zone, cluster, None) data-testid="ha-wizard-fix" data-fix-step=step.number()>
                    {tf(
                        "Go to step {number}: {title}",
                        &[("number", &step.number().to_string()), ("title", step.title())],
                    )}
                </a>
            }
            .into_any(),
            Fix::HostPage => view! {
                <a href=format!("/hosts/{host}") data-testid="ha-wizard-fix" data-fix="host">
                    {t("Open the host's page")}
                </a>
            }
            .into_any(),
            Fix::Wait => view! { <span data-fix="wait">{t("Wait for the failover to end.")}</span> }.into_any(),
        }
    };

    view! {
        <p class="wizard-intro">
            {t("Every host should be Available: HA is on for it and it can be protected. The table follows the hosts live.")}
        </p>
        <div class="wizard-action-row">
            <button type="button" class="button" data-testid="ha-wizard-host-state-refresh" on:click=refresh>
                {t("Read again")}
            </button>
        </div>
        <DataTable label=t("HA state of each host")>
            <thead>
                <tr>
                    <th scope="col">{t("Host")}</th>
                    <th scope="col">{t("HA state")}</th>
                    <th scope="col">{t("Provider")}</th>
                    <th scope="col">{t("Why")}</th>
                    <th scope="col">{t("Fix")}</th>
                </tr>
            </thead>
            <tbody>
                {move || {
                    let hosts = hosts.get();
                    if hosts.is_empty() {
                        return view! { <EmptyRow columns=5 text=t("No hosts to show.") /> }.into_any();
                    }
                    hosts
                        .into_iter()
                        .map(|host| {
                            let name = store.host_name(host);
                            let ha = Memo::new(move |_| store.host_ha.with(|known| known.get(&host).cloned()));
                            let switches = move || {
                                let found = store.host(host);
                                let zone_on = found
                                    .as_ref()
                                    .and_then(|found| store.zone(found.zone_id))
                                    .is_some_and(|zone| zone.ha_enabled);
                                let cluster_on = found
                                    .as_ref()
                                    .and_then(|found| store.cluster(found.cluster_id))
                                    .is_some_and(|cluster| cluster.ha_enabled);
                                (zone_on, cluster_on)
                            };
                            let state = move || ha.get().map(|ha| ha.state.as_str()).unwrap_or_default();
                            view! {
                                <tr data-testid=format!("ha-wizard-host-state-{name}") data-host=name.clone() data-ha-state=state>
                                    <th scope="row">{name.clone()}</th>
                                    <td>
                                        {move || match ha.get() {
                                            None => view! { <span class="muted">"…"</span> }.into_any(),
                                            Some(ha) => {
                                                let word = ha.state.as_str();
                                                view! {
                                                    <span class=format!("badge badge-ha badge-ha-{word}") data-ha-state=word>
                                                        {state_text(ha.state)}
                                                    </span>
                                                }
                                                    .into_any()
                                            }
                                        }}
                                    </td>
                                    <td data-testid="ha-wizard-provider">
                                        {move || ha.get().map(|ha| ha.provider.as_str())}
                                    </td>
                                    <td class="state-reason">
                                        {move || {
                                            ha.get()
                                                .filter(|ha| ha.state != HostHaState::Available)
                                                .map(|ha| {
                                                    let (zone_on, cluster_on) = switches();
                                                    why(&ha, zone_on, cluster_on)
                                                })
                                        }}
                                    </td>
                                    <td>
                                        {move || {
                                            ha.get()
                                                .and_then(|ha| {
                                                    let (zone_on, cluster_on) = switches();
                                                    fix_for(&ha, zone_on, cluster_on)
                                                })
                                                .map(|fix| fix_link(host, fix))
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use api::ClusterId;
    use api::v1::HaProvider;

    fn ha(state: HostHaState, reason: Option<&str>) -> HostHa {
        HostHa {
            host_id: HostId::new_random(),
            host_name: "h1".into(),
            cluster_id: ClusterId::new_random(),
            enabled: true,
            enabled_effective: true,
            provider: HaProvider::Sim,
            state,
            reason: reason.map(Into::into),
            since: None,
            transitions: Vec::new(),
        }
    }

    #[test]
    fn each_state_that_is_not_available_has_its_fix() {
        assert_eq!(fix_for(&ha(HostHaState::Available, None), true, true), None);
        assert_eq!(fix_for(&ha(HostHaState::Disabled, None), false, true), Some(Fix::Step(Step::Zone)));
        assert_eq!(fix_for(&ha(HostHaState::Disabled, None), true, false), Some(Fix::Step(Step::Cluster)));
        let oobm = ha(HostHaState::Ineligible, Some("OOBM is not configured"));
        assert_eq!(fix_for(&oobm, true, true), Some(Fix::Step(Step::ConfigureOobm)));
        let off = ha(HostHaState::Ineligible, Some("OOBM is not enabled"));
        assert_eq!(fix_for(&off, true, true), Some(Fix::Step(Step::EnableOobm)));
        let storage = ha(HostHaState::Ineligible, Some("no shared storage"));
        assert_eq!(fix_for(&storage, true, true), Some(Fix::HostPage));
        assert_eq!(fix_for(&ha(HostHaState::Checking, None), true, true), Some(Fix::Wait));
    }
}
