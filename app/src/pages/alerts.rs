//! Alerts (`/alerts`): what the server raised (pool overcommitted, capacity dropped, no host carries
//! `ha.tag`, and what the HA engine and out-of-band management raise), newest first, with a severity
//! badge, kind, message, where (cluster, host, VM), when raised, when its condition cleared, and who
//! acknowledged it when. "Open" (the default) shows those not acknowledged yet, "All" every one.
//! "Acknowledge" is for VM operators and up, as the server requires; others learn why not.
//!
//! The list is fetched again on every inventory reload (the server announces alert changes that way)
//! and every 15 s; the navigation's open count ([`AlertsNavLink`]) follows the same rhythm.

use crate::api_client::{self, ClientError};
use crate::components::badges::SeverityBadge;
use crate::components::dialog::WhyNot;
use crate::components::error_view::{ErrorView, Loading};
use crate::components::table::{DataTable, EmptyRow};
use crate::components::time::RelativeTime;
use crate::i18n::{server_text, t, tf};
use crate::session::{Ability, Session};
use crate::store::Store;
use api::v1::{Alert, AlertId, AlertQuery, AlertStatusFilter};
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::A;

/// How often alert lists are fetched again, besides on every inventory reload.
const REFRESH_SECONDS: i64 = 15;

/// At most this many open alerts are counted in the navigation.
const COUNT_LIMIT: u32 = 1000;

/// Changes whenever alert lists may be stale: on an inventory reload, and every [`REFRESH_SECONDS`].
fn staleness(store: Store) -> Memo<(u64, i64)> {
    Memo::new(move |_| (store.reloads.get(), store.now.get().timestamp() / REFRESH_SECONDS))
}

/// "Alerts" in the navigation, with the number of open alerts as a red count when there are any. The
/// link's accessible name stays "Alerts"; the count is its description ("3 open alerts").
#[component]
pub fn AlertsNavLink() -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let stale = staleness(store);
    let open = LocalResource::new(move || {
        stale.track();
        async move {
            let answer =
                api_client::alerts(&AlertQuery { status: AlertStatusFilter::Open, limit: Some(COUNT_LIMIT) }).await;
            if let Err(error) = &answer {
                session.notice(error);
            }
            answer.map(|alerts| alerts.len())
        }
    });
    // Unknown (not loaded, or failed: the alerts page then says why) shows no count.
    let count = Memo::new(move |_| open.get().and_then(Result::ok));
    let count_text = move || {
        count
            .get()
            .map(|count| if count >= COUNT_LIMIT as usize { format!("{COUNT_LIMIT}+") } else { count.to_string() })
    };
    let description = move || {
        count.get().map(|count| match count {
            0 => t("No open alerts").to_owned(),
            1 => t("1 open alert").to_owned(),
            _ => tf("{count} open alerts", &[("count", &count.to_string())]),
        })
    };
    view! {
        <A href="/alerts" attr:aria-label=t("Alerts") attr:title=description>
            {t("Alerts")}
            {move || {
                count_text()
                    .filter(|_| count.get().is_some_and(|count| count > 0))
                    .map(|text| view! { <span class="nav-count" aria-hidden="true">{text}</span> })
            }}
        </A>
    }
}

/// Where an alert is, from the store's names: "cluster-a", "cluster-a / kvm-a1", "… / web-01".
fn subject(store: Store, alert: &Alert) -> String {
    let parts: Vec<String> = [
        alert.cluster_id.map(|id| store.cluster_name(id)),
        alert.host_id.map(|id| store.host_name(id)),
        alert.vm_id.map(|id| store.vm(id).map_or_else(|| t("removed VM").to_owned(), |vm| vm.name)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() { t("the pool").to_owned() } else { parts.join(" / ") }
}

#[component]
pub fn AlertsPage() -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    // Read once, untracked: see crate::components::vm_power.
    let permitted = session.may_untracked(Ability::AcknowledgeAlerts);
    let can_acknowledge = permitted.is_ok();
    let status = RwSignal::new(AlertStatusFilter::Open);
    let stale = staleness(store);
    let alerts = LocalResource::new(move || {
        stale.track();
        let status = status.get();
        async move {
            let answer = api_client::alerts(&AlertQuery { status, limit: None }).await;
            if let Err(error) = &answer {
                session.notice(error);
            }
            answer
        }
    });
    let acknowledging = RwSignal::new(None::<AlertId>);
    let acknowledge = Callback::new(move |id: AlertId| {
        acknowledging.set(Some(id));
        spawn_local(async move {
            if let Err(error) = api_client::acknowledge_alert(id).await {
                store.report(session, &error);
            }
            acknowledging.set(None);
            alerts.refetch();
        });
    });
    let choose_status = move |value: String| {
        status.set(if value == "all" { AlertStatusFilter::All } else { AlertStatusFilter::Open });
    };

    view! {
        <div class="page">
            <header class="page-header">
                <h1>{t("Alerts")}</h1>
                <p class="page-summary">
                    {move || {
                        alerts
                            .get()
                            .and_then(Result::ok)
                            .map(|list| {
                                let open = list.iter().filter(|alert| alert.acknowledged_at.is_none()).count();
                                match open {
                                    1 => t("1 open alert").to_owned(),
                                    _ => tf("{count} open alerts", &[("count", &open.to_string())]),
                                }
                            })
                    }}
                </p>
            </header>
            <div class="toolbar">
                <label class="toolbar-field">
                    <span>{t("Show")}</span>
                    <select on:change:target=move |event| choose_status(event.target().value())>
                        <option value="open" selected>
                            {t("Open")}
                        </option>
                        <option value="all">{t("All")}</option>
                    </select>
                </label>
            </div>
            {permitted.err().map(|reason| view! { <WhyNot action=t("acknowledge alerts") reason /> })}
            <Transition fallback=Loading>
                <ErrorBoundary fallback=move |errors| {
                    view! { <ErrorView errors retry=move || alerts.refetch() /> }
                }>
                    {move || Suspend::new(async move {
                        let list = alerts.await?;
                        Ok::<_, ClientError>(
                            view! { <AlertTable list can_acknowledge acknowledging acknowledge /> },
                        )
                    })}
                </ErrorBoundary>
            </Transition>
        </div>
    }
}

#[component]
fn AlertTable(
    list: Vec<Alert>,
    can_acknowledge: bool,
    acknowledging: RwSignal<Option<AlertId>>,
    acknowledge: Callback<AlertId>,
) -> impl IntoView {
    let store = Store::expect();
    let empty = list.is_empty();
    let rows = list
        .into_iter()
        .map(|alert| {
            let id = alert.id;
            let place = subject(store, &alert);
            let raised = Signal::stored(Some(alert.raised_at));
            let cleared = match alert.cleared_at {
                Some(at) => {
                    let at = Signal::stored(Some(at));
                    view! { <RelativeTime at /> }.into_any()
                }
                None => view! { <span class="muted">{t("ongoing")}</span> }.into_any(),
            };
            let acknowledged = match (&alert.acknowledged_by, alert.acknowledged_at) {
                (Some(by), Some(at)) => {
                    let at = Signal::stored(Some(at));
                    view! { <span>{format!("{by}, ")} <RelativeTime at /></span> }.into_any()
                }
                _ => view! { <span class="muted">{t("not yet")}</span> }.into_any(),
            };
            let action = (can_acknowledge && alert.acknowledged_at.is_none()).then(|| {
                view! {
                    <button
                        type="button"
                        class="button button-small"
                        aria-label=tf("Acknowledge {kind} on {place}", &[("kind", &alert.kind), ("place", &place)])
                        disabled=move || acknowledging.get().is_some()
                        on:click=move |_| acknowledge.run(id)
                    >
                        {t("Acknowledge")}
                    </button>
                }
            });
            view! {
                <tr class=if alert.acknowledged_at.is_none() { "alert-open" } else { "alert-acknowledged" }>
                    <td>
                        <SeverityBadge severity=alert.severity />
                    </td>
                    <td class="mono">{alert.kind.clone()}</td>
                    <td class="alert-message">{server_text(&alert.message)}</td>
                    <td>{place.clone()}</td>
                    <td>
                        <RelativeTime at=raised />
                    </td>
                    <td>{cleared}</td>
                    <td>{acknowledged}</td>
                    <td class="actions">{action}</td>
                </tr>
            }
        })
        .collect_view();
    view! {
        <DataTable label=t("Alerts")>
            <thead>
                <tr>
                    <th scope="col">{t("Severity")}</th>
                    <th scope="col">{t("Kind")}</th>
                    <th scope="col">{t("Message")}</th>
                    <th scope="col">{t("Where")}</th>
                    <th scope="col">{t("Raised")}</th>
                    <th scope="col">{t("Cleared")}</th>
                    <th scope="col">{t("Acknowledged")}</th>
                    <th scope="col" class="actions">{t("Actions")}</th>
                </tr>
            </thead>
            <tbody>
                {empty.then(|| view! { <EmptyRow columns=8 text=t("No alerts.") /> })}
                {rows}
            </tbody>
        </DataTable>
    }
}
