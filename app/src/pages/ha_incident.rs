//! One HA incident (`/ha/incidents/:id`): the failed host, when it started, whether it still runs, its
//! total duration and verdict; the VMs restarted elsewhere (VM, from host, to host, seconds since
//! detection); and the whole timeline: detection, each state change, fence issued / fenced / fence
//! failed, each VM restart or failed restart, the end. Live while it runs (`Event::Ha` through the
//! store); fetched again after every inventory reload.

use crate::api_client::{self, ClientError};
use crate::components::error_view::{ErrorView, Loading};
use crate::components::format;
use crate::components::table::{DataTable, EmptyRow};
use crate::i18n::{server_text, t, tf};
use crate::pages::ha_incidents::{IncidentStatusBadge, duration_text, incident_seconds};
use crate::session::Session;
use crate::store::Store;
use api::HostId;
use api::v1::{HaIncidentEvent, IncidentId, incident_event_kind as kind};
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

/// A timeline step's kind in words.
fn kind_text(word: &str) -> &str {
    match word {
        kind::DETECTED => t("Detected"),
        kind::STATE_CHANGED => t("State changed"),
        kind::FENCE_ISSUED => t("Fence issued"),
        kind::FENCED => t("Fenced"),
        kind::FENCE_FAILED => t("Fence failed"),
        kind::VM_RESTARTED => t("VM restarted"),
        kind::VM_RESTART_FAILED => t("VM restart failed"),
        kind::RESOLVED => t("Resolved"),
        other => other,
    }
}

#[component]
pub fn HaIncidentPage() -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let params = use_params_map();
    let text = Memo::new(move |_| params.with(|params| params.get("id").unwrap_or_default()));
    let fetched = LocalResource::new(move || {
        let text = text.get();
        async move {
            let id = text
                .parse::<IncidentId>()
                .map_err(|_| ClientError::Invalid(tf("\"{id}\" is not an incident id.", &[("id", &text)])))?;
            match api_client::ha_incident(id).await {
                Ok(detail) => {
                    store.upsert_incident_detail(detail);
                    Ok(id)
                }
                Err(error) => {
                    session.notice(&error);
                    Err(error)
                }
            }
        }
    });
    // After a reload (a reconnect may have lost events) the timeline is fetched again in the background.
    Effect::new(move |previous: Option<u64>| {
        let reloads = store.reloads.get();
        if previous.is_some_and(|previous| previous != reloads)
            && let Ok(id) = text.get_untracked().parse::<IncidentId>()
        {
            leptos::task::spawn_local(async move {
                if let Ok(detail) = api_client::ha_incident(id).await {
                    store.upsert_incident_detail(detail);
                }
            });
        }
        reloads
    });
    view! {
        <div class="page">
            <Transition fallback=move || {
                view! {
                    <header class="page-header">
                        <p class="breadcrumb">
                            <a href="/ha/incidents">{t("HA incidents")}</a>
                        </p>
                    </header>
                    <Loading />
                }
            }>
                <ErrorBoundary fallback=move |errors| {
                    view! {
                        <header class="page-header">
                            <p class="breadcrumb">
                                <a href="/ha/incidents">{t("HA incidents")}</a>
                            </p>
                            <h1>{t("HA incident")}</h1>
                        </header>
                        <ErrorView errors retry=move || fetched.refetch() />
                    }
                }>
                    {move || Suspend::new(async move {
                        let id = fetched.await?;
                        store.load.await?;
                        Ok::<_, ClientError>(view! { <IncidentView id /> })
                    })}
                </ErrorBoundary>
            </Transition>
        </div>
    }
}

#[component]
fn IncidentView(id: IncidentId) -> impl IntoView {
    let store = Store::expect();
    let incident = Memo::new(move |_| store.incidents.with(|incidents| incidents.get(&id).cloned()));
    let events =
        Memo::new(move |_| store.incident_events.with(|timelines| timelines.get(&id).cloned().unwrap_or_default()));
    let restarts = Memo::new(move |_| {
        events.with(|events| {
            events.iter().filter(|event| event.kind == kind::VM_RESTARTED).cloned().collect::<Vec<HaIncidentEvent>>()
        })
    });
    let host_link = move |host: Option<HostId>| match host {
        Some(host) => view! { <a href=format!("/hosts/{host}")>{store.host_name(host)}</a> }.into_any(),
        None => view! { <span class="muted">"—"</span> }.into_any(),
    };
    move || {
        let Some(incident) = incident.get() else {
            return view! { <p class="muted">{t("This incident is not known.")}</p> }.into_any();
        };
        let running = incident.ended_at.is_none();
        let started = incident.started_at;
        let counted = incident.clone();
        view! {
            <header class="page-header">
                <p class="breadcrumb">
                    <a href="/ha/incidents">{t("HA incidents")}</a>
                </p>
                <div class="title-row">
                    <h1>{tf("HA incident: {host}", &[("host", &incident.host_name)])}</h1>
                    <IncidentStatusBadge running />
                </div>
            </header>
            <section class="panel ha-incident-summary" aria-label=t("Incident summary")>
                <dl class="facts">
                    <dt>{t("Host")}</dt>
                    <dd>
                        <a href=format!("/hosts/{}", incident.host_id)>{incident.host_name.clone()}</a>
                    </dd>
                    <dt>{t("Started")}</dt>
                    <dd>{format::timestamp(incident.started_at)}</dd>
                    <dt>{t("Ended")}</dt>
                    <dd>{incident.ended_at.map(format::timestamp).unwrap_or_else(|| t("still running").to_owned())}</dd>
                    <dt>{t("Total duration")}</dt>
                    <dd class="ha-incident-duration">
                        {move || duration_text(incident_seconds(&counted, store.now.get()))}
                    </dd>
                    <dt>{t("Verdict")}</dt>
                    <dd class="ha-verdict" role="status">
                        {incident
                            .verdict
                            .as_deref()
                            .map_or_else(|| t("pending: the failover is still running").to_owned(), server_text)}
                    </dd>
                </dl>
            </section>
            <section class="section">
                <DataTable label=t("VM restarts") caption=true>
                    <thead>
                        <tr>
                            <th scope="col">{t("VM")}</th>
                            <th scope="col">{t("From host")}</th>
                            <th scope="col">{t("To host")}</th>
                            <th scope="col" class="num">{t("Seconds")}</th>
                        </tr>
                    </thead>
                    <tbody>
                        {move || {
                            let restarts = restarts.get();
                            if restarts.is_empty() {
                                return view! { <EmptyRow columns=4 text=t("No VM restarted yet.") /> }.into_any();
                            }
                            restarts
                                .into_iter()
                                .map(|event| {
                                    let name = event.vm_name.clone().unwrap_or_else(|| t("unnamed VM").to_owned());
                                    let row_name = name.clone();
                                    view! {
                                        <tr data-vm=row_name>
                                            <th scope="row">
                                                {match event.vm_id {
                                                    Some(vm) => view! { <a href=format!("/vms/{vm}")>{name}</a> }.into_any(),
                                                    None => view! { <span>{name}</span> }.into_any(),
                                                }}
                                            </th>
                                            <td>{host_link(event.from_host_id)}</td>
                                            <td>{host_link(event.to_host_id)}</td>
                                            <td class="num">
                                                {event.seconds.map(|seconds| tf("{seconds} s", &[("seconds", &format!("{seconds:.1}"))])).unwrap_or_default()}
                                            </td>
                                        </tr>
                                    }
                                })
                                .collect_view()
                                .into_any()
                        }}
                    </tbody>
                </DataTable>
            </section>
            <section class="section">
                <DataTable label=t("Timeline") caption=true>
                    <thead>
                        <tr>
                            <th scope="col">{t("Time")}</th>
                            <th scope="col" class="num">{t("After")}</th>
                            <th scope="col">{t("Step")}</th>
                            <th scope="col">{t("What happened")}</th>
                        </tr>
                    </thead>
                    <tbody>
                        {move || {
                            let events = events.get();
                            if events.is_empty() {
                                return view! { <EmptyRow columns=4 text=t("No steps recorded yet.") /> }.into_any();
                            }
                            events
                                .into_iter()
                                .map(|event| {
                                    let after = (event.at - started).num_milliseconds() as f64 / 1000.0;
                                    let detail = server_text(&event.message);
                                    view! {
                                        <tr class=format!("ha-step ha-step-{}", event.kind) data-kind=event.kind.clone()>
                                            <td>{format::timestamp(event.at)}</td>
                                            <td class="num">{tf("+{seconds} s", &[("seconds", &format!("{after:.1}"))])}</td>
                                            <td>{kind_text(&event.kind).to_owned()}</td>
                                            <td>{detail}</td>
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
        .into_any()
    }
}
