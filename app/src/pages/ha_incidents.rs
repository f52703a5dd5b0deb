//! HA incidents (`/ha/incidents`): every failover the engine handled, newest first: the host, when it
//! started, how long it took (counting while it runs), its verdict, and whether it still runs; each
//! links to its timeline (`ha_incident`). Live: `Event::Ha` adds and updates incidents in the store,
//! and the list is fetched again after every inventory reload (events may have been missed).

use crate::api_client::{self, ClientError};
use crate::components::error_view::{ErrorView, Loading};
use crate::components::format;
use crate::components::table::{DataTable, EmptyRow};
use crate::i18n::{server_text, t, tf};
use crate::session::Session;
use crate::store::Store;
use api::v1::{HaIncident, HaIncidentQuery, IncidentId};
use chrono::{DateTime, Utc};
use leptos::prelude::*;

/// How many incidents the list asks for.
const LISTED: u32 = 200;

/// "9.8 s", "2 min 5 s", "1 h 3 min".
pub fn duration_text(seconds: f64) -> String {
    let seconds = seconds.max(0.0);
    if seconds < 60.0 {
        return tf("{seconds} s", &[("seconds", &format!("{seconds:.1}"))]);
    }
    let whole = seconds.round() as u64;
    if whole < 3600 {
        tf(
            "{minutes} min {seconds} s",
            &[("minutes", &(whole / 60).to_string()), ("seconds", &(whole % 60).to_string())],
        )
    } else {
        tf(
            "{hours} h {minutes} min",
            &[("hours", &(whole / 3600).to_string()), ("minutes", &((whole % 3600) / 60).to_string())],
        )
    }
}

/// An incident's duration: as recorded once it ended, else counted to `now`.
pub fn incident_seconds(incident: &HaIncident, now: DateTime<Utc>) -> f64 {
    match incident.ended_at {
        Some(_) => incident.duration_seconds,
        None => ((now - incident.started_at).num_milliseconds() as f64 / 1000.0).max(incident.duration_seconds),
    }
}

/// "Running" or "Ended", as a badge.
#[component]
pub fn IncidentStatusBadge(running: bool) -> impl IntoView {
    let (word, text) = if running { ("running", t("Running")) } else { ("ended", t("Ended")) };
    view! {
        <span class=format!("badge badge-incident badge-incident-{word}") data-incident-state=word>
            {text}
        </span>
    }
}

#[component]
pub fn HaIncidentsPage() -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let listed = LocalResource::new(move || async move {
        let answer = api_client::ha_incidents(&HaIncidentQuery { host_id: None, limit: Some(LISTED) }).await;
        match answer {
            Ok(list) => {
                store.upsert_incidents(list);
                Ok(())
            }
            Err(error) => {
                session.notice(&error);
                Err(error)
            }
        }
    });
    // After a reload (a reconnect may have lost events) the list is fetched again in the background.
    Effect::new(move |previous: Option<u64>| {
        let reloads = store.reloads.get();
        if previous.is_some_and(|previous| previous != reloads) {
            leptos::task::spawn_local(async move {
                if let Ok(list) =
                    api_client::ha_incidents(&HaIncidentQuery { host_id: None, limit: Some(LISTED) }).await
                {
                    store.upsert_incidents(list);
                }
            });
        }
        reloads
    });
    let ids = Memo::new(move |_| {
        store.incidents.with(|incidents| {
            let mut sorted: Vec<(DateTime<Utc>, IncidentId)> =
                incidents.values().map(|incident| (incident.started_at, incident.id)).collect();
            sorted.sort_by(|a, b| b.cmp(a));
            sorted.into_iter().map(|(_, id)| id).collect::<Vec<_>>()
        })
    });
    view! {
        <div class="page">
            <header class="page-header">
                <h1>{t("HA incidents")}</h1>
                <p class="page-summary">
                    {move || {
                        let (running, total) = store.incidents.with(|incidents| {
                            (incidents.values().filter(|incident| incident.ended_at.is_none()).count(), incidents.len())
                        });
                        let (total, running) = (total.to_string(), running.to_string());
                        let args = [("count", total.as_str()), ("running", running.as_str())];
                        if total == "1" {
                            tf("{count} incident ({running} running)", &args)
                        } else {
                            tf("{count} incidents ({running} running)", &args)
                        }
                    }}
                </p>
            </header>
            <Transition fallback=Loading>
                <ErrorBoundary fallback=move |errors| {
                    view! { <ErrorView errors retry=move || listed.refetch() /> }
                }>
                    {move || Suspend::new(async move {
                        listed.await?;
                        store.load.await?;
                        Ok::<_, ClientError>(view! {
                            <DataTable label=t("HA incidents")>
                                <thead>
                                    <tr>
                                        <th scope="col">{t("Host")}</th>
                                        <th scope="col">{t("Started")}</th>
                                        <th scope="col">{t("Duration")}</th>
                                        <th scope="col">{t("Status")}</th>
                                        <th scope="col">{t("Verdict")}</th>
                                        <th scope="col">{t("Timeline")}</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    <Show when=move || ids.with(Vec::is_empty)>
                                        <EmptyRow columns=6 text=t("No HA incidents: no host has failed while HA protected it.") />
                                    </Show>
                                    <For each=move || ids.get() key=|id| *id children=|id| view! { <IncidentRow id /> } />
                                </tbody>
                            </DataTable>
                        })
                    })}
                </ErrorBoundary>
            </Transition>
        </div>
    }
}

#[component]
fn IncidentRow(id: IncidentId) -> impl IntoView {
    let store = Store::expect();
    let incident = Memo::new(move |_| store.incidents.with(|incidents| incidents.get(&id).cloned()));
    move || {
        incident.get().map(|incident| {
            let running = incident.ended_at.is_none();
            let counted = incident.clone();
            view! {
                <tr data-host=incident.host_name.clone() data-incident=id.to_string()>
                    <th scope="row">
                        <a href=format!("/hosts/{}", incident.host_id)>{incident.host_name.clone()}</a>
                    </th>
                    <td>{format::timestamp(incident.started_at)}</td>
                    <td class="num">{move || duration_text(incident_seconds(&counted, store.now.get()))}</td>
                    <td>
                        <IncidentStatusBadge running />
                    </td>
                    <td>{incident.verdict.as_deref().map_or_else(|| "—".to_owned(), server_text)}</td>
                    <td>
                        <a
                            href=format!("/ha/incidents/{id}")
                            aria-label=tf("Timeline of the incident of {host}", &[("host", &incident.host_name)])
                        >
                            {t("Timeline")}
                        </a>
                    </td>
                </tr>
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_an_operator_says_them() {
        assert_eq!(duration_text(9.84), "9.8 s");
        assert_eq!(duration_text(-1.0), "0.0 s");
        assert_eq!(duration_text(125.2), "2 min 5 s");
        assert_eq!(duration_text(3720.0), "1 h 2 min");
    }
}
