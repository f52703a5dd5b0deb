//! Deploying a VM: the "Deploy VM" button of the VMs page and its "Deploy a VM" dialog.
//!
//! The dialog asks for a name, an offering, a template, a network, a cluster and one of the primary
//! storages usable there (the cluster's shared pools, then the local pools of its hosts), and, for pool
//! operators and up, a host (the first choice, "Automatic placement", lets the server pick). On success
//! the new VM goes into the store and the console opens its page. A deploy that starts the VM is checked
//! by admission control: the overcommit warning may come first (see `components::admission`).

use crate::api_client;
use crate::api_client::ClientResult;
use crate::components::admission::run_admitted;
use crate::components::dialog::{Dialog, FormError, WhyNot};
use crate::components::form::{Choice, ChoiceSelect, TextField};
use crate::components::format;
use crate::components::vm_actions::{host_option_label, storage_label, takes_vms};
use crate::i18n::{server_text, t, tf};
use crate::session::{Ability, Session};
use crate::store::Store;
use api::v1::{DeployVmRequest, StorageScope};
use api::{ClusterId, HostId, StoragePoolId};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;

/// A primary storage a VM of the chosen cluster can use.
#[derive(Clone, PartialEq)]
struct PoolChoice {
    id: StoragePoolId,
    label: String,
    /// The host a local pool belongs to: a VM on it can only run there.
    owner: Option<HostId>,
}

/// The cluster's shared pools, then the local pools of its hosts, each sorted by name (tracked).
fn usable_pools(store: Store, cluster: ClusterId) -> Vec<PoolChoice> {
    let hosts = store.host_ids(Some(cluster));
    let mut shared = Vec::new();
    let mut local = Vec::new();
    store.storage_pools.with(|pools| {
        for pool in pools.values() {
            match (pool.scope, pool.host_id) {
                (StorageScope::Cluster, _) if pool.cluster_id == Some(cluster) => shared.push(pool.clone()),
                (StorageScope::Host, Some(owner)) if hosts.contains(&owner) => local.push(pool.clone()),
                _ => {}
            }
        }
    });
    shared.sort_by(|a, b| a.name.cmp(&b.name));
    local.sort_by(|a, b| a.name.cmp(&b.name));
    shared
        .iter()
        .chain(&local)
        .map(|pool| PoolChoice {
            id: pool.id,
            label: storage_label(pool, pool.host_id.map(|owner| store.host_name(owner))),
            owner: pool.host_id,
        })
        .collect()
}

/// A VM name is a host name: 1 to 63 letters, digits or inner hyphens (as the server checks).
fn valid_vm_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The choices made of a loaded list; none while it loads or when it failed (tracked).
fn loaded_choices<T: 'static>(list: LocalResource<ClientResult<Vec<T>>>, choice: impl Fn(&T) -> Choice) -> Vec<Choice> {
    list.with(|answer| match answer {
        Some(Ok(items)) => items.iter().map(choice).collect(),
        _ => Vec::new(),
    })
}

/// The message of a failed list load (offerings, templates), once it is in.
fn failure_of<T>(answer: Option<&Result<T, api_client::ClientError>>) -> Option<String> {
    answer.and_then(|answer| answer.as_ref().err()).map(|error| server_text(&error.to_string()))
}

/// The dialog's fields as typed, before validation.
struct DeployForm {
    name: String,
    offering: String,
    template: String,
    network: String,
    storage: String,
    host: String,
    start: bool,
}

/// Checks the fields and builds the request, or says which field is wrong.
fn deploy_request(form: DeployForm) -> Result<DeployVmRequest, String> {
    let name = form.name.trim().to_owned();
    if !valid_vm_name(&name) {
        return Err(t("Name: use 1 to 63 letters, digits or hyphens (not first or last), like web-01.").to_owned());
    }
    let offering_id = form.offering.parse().map_err(|_| t("Offering: choose an offering.").to_owned())?;
    let template_id = form.template.parse().map_err(|_| t("Template: choose a template.").to_owned())?;
    let network = form.network.trim().to_owned();
    if network.is_empty() || network.len() > 64 {
        return Err(t("Network: give a network name of 1 to 64 characters.").to_owned());
    }
    let storage_pool_id =
        form.storage.parse().map_err(|_| t("Primary storage: choose where the VM's disks go.").to_owned())?;
    let host_id = if form.host.is_empty() {
        None
    } else {
        Some(form.host.parse().map_err(|_| t("Host: choose a host or automatic placement.").to_owned())?)
    };
    Ok(DeployVmRequest { name, offering_id, template_id, network, storage_pool_id, host_id, start: form.start })
}

/// The "Deploy VM" button, for roles that may deploy; others learn why they cannot.
#[component]
pub fn DeployVmButton() -> impl IntoView {
    let session = Session::expect();
    let open = RwSignal::new(false);
    match session.may_untracked(Ability::OperateVms) {
        Ok(()) => view! {
            <button type="button" class="button button-primary" on:click=move |_| open.set(true)>
                {t("Deploy VM")}
            </button>
            <Show when=move || open.get()>
                <DeployDialog on_close=Callback::new(move |()| open.set(false)) />
            </Show>
        }
        .into_any(),
        Err(reason) => view! { <WhyNot action=t("deploy VMs") reason /> }.into_any(),
    }
}

#[component]
fn DeployDialog(on_close: Callback<()>) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let host_choice = session.may_untracked(Ability::ManagePool);
    let may_choose_host = host_choice.is_ok();
    let navigate = use_navigate();
    let offerings = LocalResource::new(api_client::offerings);
    let templates = LocalResource::new(api_client::templates);

    let first_pool = move |cluster: &str| {
        let cluster = cluster.parse::<ClusterId>().ok()?;
        untrack(|| usable_pools(store, cluster)).first().map(|pool| pool.id.to_string())
    };
    let first_cluster = untrack(|| store.cluster_ids(None).first().map(ToString::to_string)).unwrap_or_default();
    let name = RwSignal::new(String::new());
    let offering = RwSignal::new(String::new());
    let template = RwSignal::new(String::new());
    let network = RwSignal::new("default".to_owned());
    let storage = RwSignal::new(first_pool(&first_cluster).unwrap_or_default());
    let cluster = RwSignal::new(first_cluster);
    let host = RwSignal::new(String::new());
    let start = RwSignal::new(true);
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);

    let cluster_id = Memo::new(move |_| cluster.with(|cluster| cluster.parse::<ClusterId>().ok()));
    let pools = Memo::new(move |_| cluster_id.get().map(|cluster| usable_pools(store, cluster)).unwrap_or_default());
    // The host a chosen local pool belongs to: then only that host can take the VM.
    let pool_owner = Memo::new(move |_| {
        storage.with(|chosen| pools.with(|pools| pools.iter().find(|pool| pool.id.to_string() == *chosen)?.owner))
    });
    let offering_choices = Memo::new(move |_| {
        loaded_choices(offerings, |choice| {
            let size = format::memory(choice.memory_mb);
            let cores = choice.cpu_cores.to_string();
            let mhz = choice.cpu_mhz.to_string();
            Choice::new(
                choice.id,
                tf(
                    "{name} ({cores} × {mhz} MHz, {size})",
                    &[("name", &choice.name), ("cores", &cores), ("mhz", &mhz), ("size", &size)],
                ),
            )
        })
    });
    let template_choices = Memo::new(move |_| {
        loaded_choices(templates, |choice| {
            let disk = choice.disk_gb.to_string();
            Choice::new(
                choice.id,
                tf("{name} ({os}, {disk} GB)", &[("name", &choice.name), ("os", &choice.os), ("disk", &disk)]),
            )
        })
    });
    let cluster_choices = Memo::new(move |_| {
        store.clusters.with(|clusters| {
            store
                .cluster_ids(None)
                .into_iter()
                .filter_map(|id| clusters.get(&id))
                .map(|found| Choice::new(found.id, format!("{} ({})", found.name, store.zone_name(found.zone_id))))
                .collect::<Vec<_>>()
        })
    });
    let pool_choices = Memo::new(move |_| {
        pools.with(|pools| pools.iter().map(|pool| Choice::new(pool.id, pool.label.clone())).collect())
    });
    let host_choices = Memo::new(move |_| {
        let (Some(cluster), owner) = (cluster_id.get(), pool_owner.get()) else {
            return Vec::new();
        };
        store.hosts.with(|hosts| {
            store
                .host_ids(Some(cluster))
                .into_iter()
                .filter(|id| owner.is_none_or(|owner| owner == *id))
                .filter_map(|id| hosts.get(&id))
                .map(|host| Choice { enabled: takes_vms(host), ..Choice::new(host.id, host_option_label(host)) })
                .collect()
        })
    });

    let choose_cluster = Callback::new(move |value: String| {
        storage.set(first_pool(&value).unwrap_or_default());
        cluster.set(value);
        host.set(String::new());
    });
    let choose_storage = Callback::new(move |value: String| {
        storage.set(value);
        let owner = pool_owner.get_untracked().filter(|_| may_choose_host);
        host.set(owner.map(|owner| owner.to_string()).unwrap_or_default());
    });

    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let form = DeployForm {
            name: name.get_untracked(),
            offering: offering.get_untracked(),
            template: template.get_untracked(),
            network: network.get_untracked(),
            storage: storage.get_untracked(),
            host: if may_choose_host { host.get_untracked() } else { String::new() },
            start: start.get_untracked(),
        };
        let request = match deploy_request(form) {
            Ok(request) => request,
            Err(message) => {
                error.set(Some(message));
                return;
            }
        };
        error.set(None);
        pending.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            match run_admitted(store, |choice| api_client::deploy_vm(&request, choice)).await {
                Some(Ok(deployed)) => {
                    let id = deployed.vm.id;
                    store.upsert_vm(deployed.vm);
                    navigate(&format!("/vms/{id}"), Default::default());
                }
                Some(Err(failure)) => {
                    session.notice(&failure);
                    error.set(Some(server_text(&failure.to_string())));
                    pending.set(false);
                }
                None => pending.set(false),
            }
        });
    };
    let load_failures = move || {
        let failures: Vec<String> = [
            offerings.with(|answer| failure_of(answer.as_ref())),
            templates.with(|answer| failure_of(answer.as_ref())),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!failures.is_empty()).then(|| view! { <p class="form-error">{failures.join(" ")}</p> })
    };

    view! {
        <Dialog title=t("Deploy a VM") on_close>
            <form class="dialog-form" on:submit=on_submit novalidate>
                <TextField id="deploy-name" label=t("Name") value=name placeholder="web-01" autofocus=true />
                <div class="field-row">
                    <ChoiceSelect
                        id="deploy-offering"
                        label=t("Offering")
                        placeholder=t("Choose an offering")
                        choices=offering_choices
                        value=offering
                    />
                    <ChoiceSelect
                        id="deploy-template"
                        label=t("Template")
                        placeholder=t("Choose a template")
                        choices=template_choices
                        value=template
                    />
                </div>
                {load_failures}
                <TextField id="deploy-network" label=t("Network") value=network />
                <div class="field-row">
                    <ChoiceSelect
                        id="deploy-cluster"
                        label=t("Cluster")
                        placeholder=t("Choose a cluster")
                        choices=cluster_choices
                        value=cluster
                        on_choose=choose_cluster
                    />
                    <ChoiceSelect
                        id="deploy-storage"
                        label=t("Primary storage")
                        placeholder=Signal::derive(move || {
                            if pools.with(Vec::is_empty) { t("None in this cluster") } else { t("Choose a storage") }
                                .to_owned()
                        })
                        choices=pool_choices
                        value=storage
                        on_choose=choose_storage
                    />
                </div>
                <Show when=move || pool_owner.get().is_some()>
                    <p class="field-hint">
                        {t("Local storage: the VM can run only on that storage's host, and HA cannot restart it elsewhere.")}
                    </p>
                </Show>
                {match host_choice {
                    Ok(()) => view! {
                        <ChoiceSelect
                            id="deploy-host"
                            label=t("Host")
                            placeholder=t("Automatic placement")
                            choices=host_choices
                            value=host
                        />
                    }
                    .into_any(),
                    Err(reason) => view! {
                        <div class="field">
                            <span class="field-label">{t("Host")}</span>
                            <p class="field-static">{t("Automatic placement")}</p>
                            <WhyNot action=t("choose the host") reason />
                        </div>
                    }
                    .into_any(),
                }}
                <label class="checkbox">
                    <input type="checkbox" bind:checked=start />
                    {t("Start after deploy")}
                </label>
                <FormError error=error />
                <div class="dialog-actions">
                    <button type="button" class="button" on:click=move |_| on_close.run(())>
                        {t("Cancel")}
                    </button>
                    <button type="submit" class="button button-primary" disabled=move || pending.get()>
                        {move || if pending.get() { t("Deploying…") } else { t("Deploy") }}
                    </button>
                </div>
            </form>
        </Dialog>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(name: &str) -> DeployForm {
        DeployForm {
            name: name.to_owned(),
            offering: api::OfferingId::new_random().to_string(),
            template: api::TemplateId::new_random().to_string(),
            network: "default".to_owned(),
            storage: StoragePoolId::new_random().to_string(),
            host: String::new(),
            start: true,
        }
    }

    #[test]
    fn names_are_host_names() {
        assert!(
            deploy_request(form(" web-01 ")).is_ok_and(|request| request.name == "web-01" && request.host_id.is_none())
        );
        assert!(deploy_request(form("-web")).is_err_and(|message| message.starts_with("Name")));
        assert!(deploy_request(form("web_01")).is_err());
        assert!(deploy_request(form(&"a".repeat(64))).is_err());
    }

    #[test]
    fn missing_choices_name_their_field() {
        let mut missing = form("web-01");
        missing.template = String::new();
        assert!(deploy_request(missing).is_err_and(|message| message.starts_with("Template")));
    }
}
