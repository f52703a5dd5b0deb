//! One VM: its state (with the agent's reason when in Error, and a progress line while it starts, stops
//! or migrates), where it runs and what it is made of, its actions (power, migrate, destroy) and its HA
//! settings (editable by pool operators and up; checked by admission control, so the overcommit warning
//! may come first). Everything updates live from the store.

use crate::api_client::{self, ClientError};
use crate::components::admission::run_admitted;
use crate::components::badges::VmStateBadge;
use crate::components::dialog::{FormError, WhyNot};
use crate::components::error_view::{ErrorView, Loading};
use crate::components::form::{Choice, ChoiceSelect, TextField};
use crate::components::format;
use crate::components::time::RelativeTime;
use crate::components::vm_actions::{VmActions, storage_label};
use crate::i18n::{server_text, t, tf};
use crate::session::{Ability, Session};
use crate::store::Store;
use api::VmId;
use api::v1::{RestartPriority, StorageScope, UpdateVmHaRequest, Vm, VmState};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_params_map;

#[component]
pub fn VmDetailPage() -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let params = use_params_map();
    let vm_id = Memo::new(move |_| params.with(|params| params.get("id").unwrap_or_default()));

    // Asking the server for this one VM (not only the store) gives its own message for an unknown id.
    let fetched = LocalResource::new(move || {
        let text = vm_id.get();
        async move {
            let id = text
                .parse::<VmId>()
                .map_err(|_| ClientError::Invalid(tf("\"{text}\" is not a VM id.", &[("text", &text)])))?;
            let vm = api_client::vm(id).await;
            if let Err(error) = &vm {
                session.notice(error);
            }
            vm
        }
    });
    let breadcrumb = || {
        view! {
            <p class="breadcrumb">
                <a href="/vms">{t("Virtual machines")}</a>
            </p>
        }
    };

    view! {
        <div class="page">
            <Transition fallback=move || view! { <header class="page-header">{breadcrumb()}</header> <Loading /> }>
                <ErrorBoundary fallback=move |errors| {
                    view! {
                        <header class="page-header">{breadcrumb()} <h1>{t("Virtual machine")}</h1></header>
                        <ErrorView
                            errors
                            retry=move || {
                                fetched.refetch();
                                store.reload();
                            }
                        />
                    }
                }>
                    {move || Suspend::new(async move {
                        let vm = fetched.await?;
                        store.load.await?;
                        Ok::<_, ClientError>(view! { <VmView fetched=vm /> })
                    })}
                </ErrorBoundary>
            </Transition>
        </div>
    }
}

/// The VM as the store knows it now, or as fetched if the store does not have it (any more).
#[component]
fn VmView(fetched: Vm) -> impl IntoView {
    let store = Store::expect();
    let id = fetched.id;
    let vm = Memo::new(move |_| store.vm(id).unwrap_or_else(|| fetched.clone()));
    let gone = Memo::new(move |_| store.vms.with(|vms| !vms.contains_key(&id)));
    let state = Memo::new(move |_| vm.with(|vm| vm.state));
    let progress = move || match state.get() {
        VmState::Starting => Some(t("Start in progress…")),
        VmState::Stopping => Some(t("Stop in progress…")),
        VmState::Migrating => Some(t("Migration in progress…")),
        _ => None,
    };

    view! {
        <header class="page-header">
            <p class="breadcrumb">
                <a href="/vms">{t("Virtual machines")}</a>
                <span aria-hidden="true">" / "</span>
                {move || vm.with(|vm| vm.cluster_id).map_or_else(|| t("not placed").to_owned(), |id| store.cluster_name(id))}
            </p>
            <div class="title-row">
                <h1>{move || vm.with(|vm| vm.name.clone())}</h1>
                {move || view! { <VmStateBadge state=state.get() /> }}
                {move || {
                    progress()
                        .map(|text| {
                            view! {
                                <span class="in-progress" role="status">
                                    <span class="spinner" aria-hidden="true"></span>
                                    {text}
                                </span>
                            }
                        })
                }}
            </div>
        </header>
        <Show when=move || gone.get()>
            <p class="vm-gone" role="alert">
                {t("This VM is no longer in the inventory: it was destroyed. What is shown is its last known state.")}
            </p>
        </Show>
        <Show when=move || state.get() == VmState::Error>
            <div class="vm-error" role="alert">
                <p class="vm-error-title">{t("The VM is in error")}</p>
                <p class="vm-error-reason">
                    {move || {
                        vm.with(|vm| vm.state_reason.clone())
                            .map_or_else(|| t("The host's agent gave no reason.").to_owned(), |reason| server_text(&reason))
                    }}
                </p>
            </div>
        </Show>
        <div class="vm-actions-bar">
            <VmActions vm />
        </div>
        <section class="summary-grid vm-summary" aria-label=t("VM summary")>
            <div class="panel">
                <h2>{t("Details")}</h2>
                <VmFacts vm />
            </div>
            <div class="panel">
                <h2>{t("HA settings")}</h2>
                <HaSection vm />
            </div>
        </section>
    }
}

/// Where the VM runs and what it is made of; offering and template names are asked of the server.
#[component]
fn VmFacts(vm: Memo<Vm>) -> impl IntoView {
    let store = Store::expect();
    let offerings = LocalResource::new(api_client::offerings);
    let templates = LocalResource::new(api_client::templates);
    let updated = Signal::derive(move || Some(vm.with(|vm| vm.updated_at)));
    let offering = move || {
        let id = vm.with(|vm| vm.offering_id);
        offerings.with(|answer| match answer {
            None => "…".to_owned(),
            Some(Ok(list)) => list
                .iter()
                .find(|offering| offering.id == id)
                .map_or_else(|| tf("{id} (deleted)", &[("id", &id.to_string())]), |offering| offering.name.clone()),
            Some(Err(_)) => id.to_string(),
        })
    };
    let template = move || {
        let id = vm.with(|vm| vm.template_id);
        templates.with(|answer| match answer {
            None => "…".to_owned(),
            Some(Ok(list)) => list
                .iter()
                .find(|template| template.id == id)
                .map_or_else(|| id.to_string(), |template| format!("{} ({})", template.name, template.os)),
            Some(Err(_)) => id.to_string(),
        })
    };
    let storage = move || {
        let id = vm.with(|vm| vm.storage_pool_id);
        store.storage_pools.with(|pools| {
            pools.get(&id).map_or_else(
                || id.to_string(),
                |pool| storage_label(pool, pool.host_id.map(|owner| store.host_name(owner))),
            )
        })
    };
    let host = move || match vm.with(|vm| vm.host_id) {
        Some(id) => view! { <a href=format!("/hosts/{id}")>{store.host_name(id)}</a> }.into_any(),
        None => view! { <span class="muted">{t("not placed")}</span> }.into_any(),
    };

    view! {
        <dl class="facts">
            <dt>{t("Host")}</dt>
            <dd>{host}</dd>
            <dt>{t("Cluster")}</dt>
            <dd>{move || vm.with(|vm| vm.cluster_id).map_or_else(|| "—".to_owned(), |id| store.cluster_name(id))}</dd>
            <dt>{t("Zone")}</dt>
            <dd>{move || store.zone_name(vm.with(|vm| vm.zone_id))}</dd>
            <dt>{t("Offering")}</dt>
            <dd>{offering}</dd>
            <dt>{t("Template")}</dt>
            <dd>{template}</dd>
            <dt>{t("Network")}</dt>
            <dd>{move || vm.with(|vm| vm.network.clone())}</dd>
            <dt>{t("Storage pool")}</dt>
            <dd>{storage}</dd>
            <dt>{t("CPU")}</dt>
            <dd>{move || vm.with(|vm| format::vcpus(vm.resources.cpu_cores, vm.resources.cpu_mhz))}</dd>
            <dt>{t("Memory")}</dt>
            <dd>{move || vm.with(|vm| format::memory(vm.resources.memory_mb))}</dd>
            <dt>{t("Generation")}</dt>
            <dd class="mono">{move || vm.with(|vm| vm.generation)}</dd>
            <dt>{t("Updated")}</dt>
            <dd>
                <RelativeTime at=updated />
            </dd>
        </dl>
    }
}

/// The HA settings as the server has them; a change there (another operator) resets the form.
#[derive(Clone, Copy, PartialEq)]
struct HaSettings {
    protected: bool,
    priority: RestartPriority,
    order: i32,
    delay: u32,
}

/// The fields that differ from `current`, or which field is invalid.
fn ha_changes(
    current: HaSettings,
    protected: bool,
    priority: &str,
    order: &str,
    delay: &str,
) -> Result<UpdateVmHaRequest, String> {
    let priority = format::parse_priority(priority)
        .ok_or_else(|| t("Restart priority: choose restart, best-effort or do-not-restart.").to_owned())?;
    let order = order
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|order| (0..=1000).contains(order))
        .ok_or_else(|| t("Start order: give a whole number from 0 to 1000.").to_owned())?;
    let delay = delay
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|delay| *delay <= 3600)
        .ok_or_else(|| t("Start delay: give a whole number of seconds from 0 to 3600.").to_owned())?;
    Ok(UpdateVmHaRequest {
        ha_protected: (protected != current.protected).then_some(protected),
        restart_priority: (priority != current.priority).then_some(priority),
        start_order: (order != current.order).then_some(order),
        start_delay_seconds: (delay != current.delay).then_some(delay),
    })
}

#[component]
fn HaSection(vm: Memo<Vm>) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let permitted = session.may_untracked(Ability::ManageHa);
    let editable = permitted.is_ok();
    // Outlives the form, which is rebuilt when the saved settings come back.
    let notice = RwSignal::new(None::<&'static str>);
    let settings = Memo::new(move |_| {
        vm.with(|vm| HaSettings {
            protected: vm.ha_protected,
            priority: vm.restart_priority,
            order: vm.start_order,
            delay: vm.start_delay_seconds,
        })
    });
    let on_local_storage = Memo::new(move |_| {
        let pool = vm.with(|vm| vm.storage_pool_id);
        store.storage_pools.with(|pools| pools.get(&pool).is_some_and(|pool| pool.scope == StorageScope::Host))
    });

    view! {
        <Show when=move || on_local_storage.get()>
            <p class="field-hint">{t("Its disks are on local storage: HA cannot restart it on another host.")}</p>
        </Show>
        {move || {
            let id = vm.with_untracked(|vm| vm.id);
            view! { <HaForm id current=settings.get() editable notice /> }
        }}
        {move || notice.get().map(|text| view! { <p class="form-saved" role="status">{text}</p> })}
        {permitted.err().map(|reason| view! { <WhyNot action=t("change HA settings") reason /> })}
    }
}

/// A restart priority as the form offers it: its API word in English.
fn priority_option(priority: RestartPriority) -> &'static str {
    match priority {
        RestartPriority::Restart => t("restart"),
        RestartPriority::BestEffort => t("best-effort"),
        RestartPriority::DoNotRestart => t("do-not-restart"),
    }
}

#[component]
fn HaForm(
    id: VmId,
    current: HaSettings,
    editable: bool,
    /// Where the outcome of a save is told.
    notice: RwSignal<Option<&'static str>>,
) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let protected = RwSignal::new(current.protected);
    let priority = RwSignal::new(format::priority_word(current.priority).to_owned());
    let order = RwSignal::new(current.order.to_string());
    let delay = RwSignal::new(current.delay.to_string());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let priority_choices =
        format::PRIORITIES.map(|choice| Choice::new(format::priority_word(choice), priority_option(choice))).to_vec();

    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        if pending.get_untracked() || !editable {
            return;
        }
        notice.set(None);
        let request = match ha_changes(
            current,
            protected.get_untracked(),
            &priority.get_untracked(),
            &order.get_untracked(),
            &delay.get_untracked(),
        ) {
            Ok(request) => request,
            Err(message) => {
                error.set(Some(message));
                return;
            }
        };
        error.set(None);
        if request == UpdateVmHaRequest::default() {
            notice.set(Some(t("Nothing to save: no setting changed.")));
            return;
        }
        pending.set(true);
        spawn_local(async move {
            match run_admitted(store, |choice| api_client::update_vm_ha(id, &request, choice)).await {
                // The new settings rebuild this form with them.
                Some(Ok(vm)) => {
                    store.upsert_vm(vm);
                    notice.set(Some(t("HA settings saved.")));
                }
                Some(Err(failure)) => {
                    session.notice(&failure);
                    error.set(Some(server_text(&failure.to_string())));
                }
                None => {}
            }
            pending.set(false);
        });
    };

    view! {
        <form class="ha-form" on:submit=on_submit novalidate>
            <label class="checkbox">
                <input type="checkbox" disabled=!editable bind:checked=protected />
                {t("HA protected")}
            </label>
            <ChoiceSelect
                id="ha-priority"
                label=t("Restart priority")
                choices=Signal::stored(priority_choices)
                value=priority
                disabled=!editable
            />
            <div class="field-row">
                <TextField id="ha-order" label=t("Start order") value=order kind="number" disabled=!editable />
                <TextField
                    id="ha-delay"
                    label=t("Start delay (seconds)")
                    value=delay
                    kind="number"
                    disabled=!editable
                />
            </div>
            <p class="field-hint">{t("Lower orders start first; the delay is waited after this VM's order group.")}</p>
            <FormError error=error />
            {editable
                .then(|| {
                    view! {
                        <div class="form-actions">
                            <button type="submit" class="button button-primary" disabled=move || pending.get()>
                                {move || if pending.get() { t("Saving…") } else { t("Save HA settings") }}
                            </button>
                        </div>
                    }
                })}
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CURRENT: HaSettings = HaSettings { protected: true, priority: RestartPriority::Restart, order: 0, delay: 0 };

    #[test]
    fn only_changed_ha_fields_are_sent() {
        let request = ha_changes(CURRENT, true, "best-effort", " 0 ", "30");
        assert_eq!(
            request,
            Ok(UpdateVmHaRequest {
                restart_priority: Some(RestartPriority::BestEffort),
                start_delay_seconds: Some(30),
                ..Default::default()
            })
        );
    }

    #[test]
    fn bad_ha_fields_are_named() {
        assert!(
            ha_changes(CURRENT, true, "restart", "-1", "0").is_err_and(|message| message.starts_with("Start order"))
        );
        assert!(
            ha_changes(CURRENT, true, "restart", "1", "3601").is_err_and(|message| message.starts_with("Start delay"))
        );
    }
}
