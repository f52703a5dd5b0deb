//! "Safeguards" on a cluster's HA page: at a glance, what HA relies on and whether it is in place:
//!
//! * out-of-band management: on how many of the cluster's hosts a BMC is configured (`GET
//!   /hosts/{id}/oobm`, 404 while none is) and OOBM is in effect (`Host::oobm_enabled_effective`);
//!   without it a failed host cannot be fenced, so its VMs are not restarted;
//! * shared storage: whether every host mounts one shared (cluster-wide) primary storage, and whether
//!   the storage heartbeat is fine (no uncleared `storage-heartbeat-lost` / `primary-storage-down`
//!   alert for the cluster or its hosts);
//! * dedicated HA hosts: the `ha.tag` setting (from the plan) and which hosts carry it.
//!
//! Each line says ok or warning, in words, and what to do with a link (the HA setup wizard's OOBM steps).
//! The list is pure ([`safeguards`]); the panel gathers its inputs from the store, the plan, the
//! hosts' OOBM configurations and the alerts, again whenever the store reloads.

use crate::api_client;
use crate::i18n::{server_text, t, tf};
use crate::pages::ha_plan::PlanState;
use crate::store::Store;
use api::ClusterId;
use api::v1::{AlertQuery, AlertStatusFilter, Host, StorageScope};
use leptos::prelude::*;
use std::collections::BTreeSet;

/// Alert kinds that say the storage heartbeat is not fine.
const STORAGE_ALERTS: &[&str] = &["storage-heartbeat-lost", "primary-storage-down"];

/// What the safeguards are judged from.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inputs {
    pub cluster: Option<ClusterId>,
    pub hosts: usize,
    /// Hosts with a BMC configured; `None` while not known (still loading, or unreadable).
    pub oobm_configured: Option<usize>,
    pub oobm_effective: usize,
    /// Shared primary storages that every host of the cluster mounts (names).
    pub shared_by_all: Vec<String>,
    /// Storage heartbeat problems now (server messages); `None` while not known.
    pub storage_problems: Option<Vec<String>>,
    /// The `ha.tag` setting.
    pub ha_tag: Option<String>,
    /// Hosts of the cluster carrying the tag.
    pub tagged: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warning,
    Unknown,
}

/// One safeguard: its state in words and, when something is to be done, what and where.
#[derive(Clone, Debug, PartialEq)]
pub struct Safeguard {
    pub key: &'static str,
    pub name: String,
    pub level: Level,
    pub summary: String,
    pub fix: Option<(String, String)>,
}

fn count(n: usize) -> String {
    n.to_string()
}

pub fn safeguards(input: &Inputs) -> Vec<Safeguard> {
    let cluster = input.cluster.map(|id| id.to_string()).unwrap_or_default();
    let hosts = count(input.hosts);
    let oobm = {
        let effective = count(input.oobm_effective);
        let (level, summary, fix) = match input.oobm_configured {
            _ if input.hosts == 0 => (Level::Warning, t("The cluster has no hosts.").to_owned(), None),
            None => (
                Level::Unknown,
                tf("OOBM in effect on {effective} of {hosts} hosts.", &[("effective", &effective), ("hosts", &hosts)]),
                None,
            ),
            Some(configured) if configured < input.hosts => (
                Level::Warning,
                tf(
                    "A BMC is configured on {configured} of {hosts} hosts: a host without one cannot be fenced, so its VMs are not restarted.",
                    &[("configured", &count(configured)), ("hosts", &hosts)],
                ),
                Some((t("Configure OOBM").to_owned(), format!("/ha/setup?step=3&cluster={cluster}"))),
            ),
            Some(_) if input.oobm_effective < input.hosts => (
                Level::Warning,
                tf(
                    "Configured on every host, but OOBM is in effect on only {effective} of {hosts} hosts.",
                    &[("effective", &effective), ("hosts", &hosts)],
                ),
                Some((t("Enable OOBM").to_owned(), format!("/ha/setup?step=4&cluster={cluster}"))),
            ),
            Some(_) => (
                Level::Ok,
                tf("Configured and in effect on all {hosts} hosts.", &[("hosts", &hosts)]),
                Some((t("OOBM configuration").to_owned(), format!("/ha/setup?step=3&cluster={cluster}"))),
            ),
        };
        Safeguard { key: "oobm", name: t("Out-of-band management (OOBM)").to_owned(), level, summary, fix }
    };
    let storage = {
        let problems = input.storage_problems.as_deref();
        let (level, summary) = if input.hosts == 0 {
            (Level::Warning, t("The cluster has no hosts.").to_owned())
        } else if input.shared_by_all.is_empty() {
            (
                Level::Warning,
                t("No shared primary storage is mounted by every host: VMs on storage that other hosts cannot reach are not restarted.")
                    .to_owned(),
            )
        } else {
            let names = input.shared_by_all.join(", ");
            match problems {
                Some([]) => (
                    Level::Ok,
                    tf("Every host mounts {storages}; the storage heartbeat is fine.", &[("storages", &names)]),
                ),
                Some(problems) => (
                    Level::Warning,
                    tf(
                        "Every host mounts {storages}, but the storage heartbeat has problems: {problems}",
                        &[
                            ("storages", &names),
                            (
                                "problems",
                                &problems.iter().map(|problem| server_text(problem)).collect::<Vec<_>>().join("; "),
                            ),
                        ],
                    ),
                ),
                None => (Level::Unknown, tf("Every host mounts {storages}.", &[("storages", &names)])),
            }
        };
        let fix = problems
            .is_some_and(|problems| !problems.is_empty())
            .then(|| (t("See alerts").to_owned(), "/alerts".to_owned()));
        Safeguard { key: "storage", name: t("Shared storage").to_owned(), level, summary, fix }
    };
    let dedicated = {
        let (level, summary, fix) = match &input.ha_tag {
            None => (
                Level::Ok,
                t("Not used: the ha.tag setting is not set, so VMs restart on any host with room.").to_owned(),
                None,
            ),
            Some(tag) if input.tagged.is_empty() => (
                Level::Warning,
                tf(
                    "ha.tag is {tag} but no host of this cluster carries it: restarted VMs have no dedicated host. Add the tag to a host.",
                    &[("tag", tag)],
                ),
                Some((t("Hosts").to_owned(), "/hosts".to_owned())),
            ),
            Some(tag) => (
                Level::Ok,
                tf(
                    "Hosts carrying {tag}: {hosts}. They take only VMs restarted by HA.",
                    &[("tag", tag), ("hosts", &input.tagged.join(", "))],
                ),
                None,
            ),
        };
        Safeguard { key: "dedicated", name: t("Dedicated HA hosts").to_owned(), level, summary, fix }
    };
    vec![oobm, storage, dedicated]
}

fn level_text(level: Level) -> &'static str {
    match level {
        Level::Ok => t("OK"),
        Level::Warning => t("Warning"),
        Level::Unknown => t("Checking…"),
    }
}

fn level_class(level: Level) -> &'static str {
    match level {
        Level::Ok => "badge ha-guard-ok",
        Level::Warning => "badge ha-guard-warning",
        Level::Unknown => "badge ha-guard-unknown",
    }
}

#[component]
pub fn Safeguards(state: PlanState) -> impl IntoView {
    let store = Store::expect();
    let cluster = state.cluster;
    let host_ids = Memo::new(move |_| {
        store.hosts.with(|hosts| {
            hosts.values().filter(|host| host.cluster_id == cluster).map(|host| host.id).collect::<Vec<_>>()
        })
    });
    // BMCs configured: asked again when the hosts or the inventory change.
    let configured = LocalResource::new(move || {
        let ids = host_ids.get();
        store.reloads.track();
        async move {
            let mut configured = 0;
            for id in ids {
                match api_client::host_oobm(id).await {
                    Ok(_) => configured += 1,
                    // 404: nothing configured for this host.
                    Err(api_client::ClientError::Api { status: 404, .. }) => {}
                    Err(_) => return None,
                }
            }
            Some(configured)
        }
    });
    let storage_alerts = LocalResource::new(move || {
        store.reloads.track();
        async move {
            let query = AlertQuery { status: AlertStatusFilter::All, limit: Some(200) };
            api_client::alerts(&query).await.ok()
        }
    });
    let inputs = Memo::new(move |_| {
        let mine: Vec<Host> =
            store.hosts.with(|hosts| hosts.values().filter(|host| host.cluster_id == cluster).cloned().collect());
        let mounted: Vec<BTreeSet<_>> =
            mine.iter().map(|host| host.storage_pool_ids.iter().copied().collect()).collect();
        let host_set: BTreeSet<_> = host_ids.get().into_iter().collect();
        let shared_by_all = store.storage_pools.with(|pools| {
            let mut names: Vec<String> = pools
                .values()
                .filter(|pool| pool.scope == StorageScope::Cluster)
                .filter(|pool| !mounted.is_empty() && mounted.iter().all(|ids| ids.contains(&pool.id)))
                .map(|pool| pool.name.clone())
                .collect();
            names.sort();
            names
        });
        let storage_problems = storage_alerts.get().flatten().map(|alerts| {
            alerts
                .into_iter()
                .filter(|alert| alert.cleared_at.is_none() && STORAGE_ALERTS.contains(&alert.kind.as_str()))
                .filter(|alert| {
                    alert.cluster_id == Some(cluster) || alert.host_id.is_some_and(|host| host_set.contains(&host))
                })
                .map(|alert| alert.message)
                .collect()
        });
        let ha_tag = state.live.with(|plan| plan.as_ref().and_then(|plan| plan.ha_tag.clone()));
        let tagged = match &ha_tag {
            Some(tag) => mine.iter().filter(|host| host.tags.contains(tag)).map(|host| host.name.clone()).collect(),
            None => Vec::new(),
        };
        Inputs {
            cluster: Some(cluster),
            hosts: mine.len(),
            oobm_configured: configured.get().flatten(),
            oobm_effective: mine.iter().filter(|host| host.oobm_enabled_effective).count(),
            shared_by_all,
            storage_problems,
            ha_tag,
            tagged,
        }
    });
    let rows =
        move || {
            inputs.with(safeguards).into_iter().map(|guard| {
            let testid = format!("ha-safeguard-{}", guard.key);
            view! {
                <li class="ha-safeguard" data-testid=testid data-level=match guard.level {
                    Level::Ok => "ok",
                    Level::Warning => "warning",
                    Level::Unknown => "unknown",
                }>
                    <span class=level_class(guard.level)>{level_text(guard.level)}</span>
                    <div class="ha-safeguard-text">
                        <p class="ha-safeguard-name">{guard.name}</p>
                        <p>{guard.summary}</p>
                        {guard.fix.map(|(label, href)| view! { <a href=href class="ha-safeguard-fix">{label}</a> })}
                    </div>
                </li>
            }
        }).collect_view()
        };
    view! {
        <section class="panel ha-safeguards" aria-labelledby="ha-safeguards-heading" data-testid="ha-safeguards">
            <h2 id="ha-safeguards-heading">{t("Safeguards")}</h2>
            <ul class="ha-safeguard-list">{rows}</ul>
        </section>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> Inputs {
        Inputs {
            cluster: None,
            hosts: 3,
            oobm_configured: Some(3),
            oobm_effective: 3,
            shared_by_all: vec!["nfs-1".into()],
            storage_problems: Some(vec![]),
            ha_tag: None,
            tagged: vec![],
        }
    }

    fn levels(input: &Inputs) -> Vec<Level> {
        safeguards(input).into_iter().map(|guard| guard.level).collect()
    }

    #[test]
    fn every_safeguard_in_place_is_ok() {
        assert_eq!(levels(&base()), vec![Level::Ok, Level::Ok, Level::Ok]);
    }

    #[test]
    fn missing_safeguards_warn_with_what_to_do() {
        let guards = safeguards(&Inputs { oobm_configured: Some(2), ..base() });
        assert_eq!(guards[0].level, Level::Warning);
        assert!(guards[0].fix.as_ref().is_some_and(|(_, href)| href.contains("step=3")), "{guards:?}");
        let guards = safeguards(&Inputs { oobm_effective: 1, ..base() });
        assert!(guards[0].fix.as_ref().is_some_and(|(_, href)| href.contains("step=4")), "{guards:?}");
        assert_eq!(levels(&Inputs { shared_by_all: vec![], ..base() })[1], Level::Warning);
        let problems = Inputs { storage_problems: Some(vec!["primary storage nfs-1 is down".into()]), ..base() };
        let guards = safeguards(&problems);
        assert_eq!(guards[1].level, Level::Warning);
        assert!(guards[1].summary.contains("nfs-1 is down"));
        assert_eq!(levels(&Inputs { ha_tag: Some("ha_host".into()), ..base() })[2], Level::Warning);
        let tagged = Inputs { ha_tag: Some("ha_host".into()), tagged: vec!["kvm-a3".into()], ..base() };
        assert_eq!(levels(&tagged)[2], Level::Ok);
        assert_eq!(
            levels(&Inputs { oobm_configured: None, storage_problems: None, ..base() })[..2],
            [Level::Unknown, Level::Unknown]
        );
    }
}
