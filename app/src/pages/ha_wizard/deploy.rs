//! Step 7: test VMs of the step-6 offering on one chosen host of the wizard's cluster (Mold's guide:
//! "셧다운 할 호스트에 가상머신 생성"; three by default, named HA-TEST-VM1..3, the count editable).
//! Each goes through the deploy dialog's call (`api_client::deploy_vm` with the host chosen, started at
//! once), checked by admission control through [`run_admitted`], one after another. A VM of that name
//! already on the chosen host (an earlier run) is used as it is. Each VM's state shows live from the
//! store; the step is done when every test VM runs and is HA-protected. Sets [`Wizard::test_host`] and
//! [`Wizard::test_vms`]. Deploying onto a chosen host needs `ManagePool`.

use super::Wizard;
use crate::api_client;
use crate::components::admission::run_admitted;
use crate::components::badges::VmStateBadge;
use crate::components::dialog::FormError;
use crate::components::form::{Choice, ChoiceSelect};
use crate::components::format;
use crate::i18n::{server_text, t, tf};
use crate::session::{Ability, Session};
use crate::store::Store;
use api::v1::{AgentConnection, DeployVmRequest, Host, HostAllocation, StorageScope, VmState};
use api::{ClusterId, HostId, StoragePoolId, VmId};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;

/// The test VMs' names: "HA-TEST-VM" and a number from 1.
pub const NAME_PREFIX: &str = "HA-TEST-VM";
/// How many test VMs unless the operator asks for another number.
pub const DEFAULT_COUNT: usize = 3;
pub const MAX_COUNT: usize = 10;

/// The step is done when there are test VMs and every one of them runs with HA protection (tracked).
pub fn deploy_done(wizard: Wizard) -> bool {
    let Some(store) = use_context::<Store>() else { return false };
    let ids = wizard.test_vms.get();
    !ids.is_empty()
        && store.vms.with(|vms| {
            ids.iter().all(|id| vms.get(id).is_some_and(|vm| vm.state == VmState::Running && vm.ha_protected))
        })
}

/// Whether `name` is a test VM's name: "HA-TEST-VM" and a number.
pub fn is_test_vm_name(name: &str) -> bool {
    name.strip_prefix(NAME_PREFIX)
        .is_some_and(|number| !number.is_empty() && number.chars().all(|c| c.is_ascii_digit()))
}

/// Coming back to the wizard (a reload, a link to step 7 or 8): `test_vms` is not in the address, so
/// the test VMs of an earlier run in the wizard's cluster are taken up again, by name. Untracked reads
/// but the store's VMs, so that it can run in an effect.
pub fn adopt_test_vms(store: Store, wizard: Wizard) {
    if !wizard.test_vms.with_untracked(Vec::is_empty) {
        return;
    }
    let Some(cluster) = wizard.cluster.get_untracked() else { return };
    let mut found: Vec<(String, VmId)> = store.vms.with(|vms| {
        vms.values()
            .filter(|vm| vm.cluster_id == Some(cluster) && is_test_vm_name(&vm.name))
            .map(|vm| (vm.name.clone(), vm.id))
            .collect()
    });
    if found.is_empty() {
        return;
    }
    found.sort_by_key(|(name, _)| (name.len(), name.clone()));
    wizard.test_vms.set(found.into_iter().map(|(_, id)| id).collect());
}

/// "HA-TEST-VM1" … "HA-TEST-VM{count}".
pub fn test_vm_names(count: usize) -> Vec<String> {
    (1..=count).map(|number| format!("{NAME_PREFIX}{number}")).collect()
}

/// The typed count, if it is a whole number from 1 to [`MAX_COUNT`].
pub fn parse_count(text: &str) -> Option<usize> {
    text.trim().parse::<usize>().ok().filter(|count| (1..=MAX_COUNT).contains(count))
}

/// The cluster's first shared primary storage by name: HA can restart a VM elsewhere only from there.
fn shared_pool(store: Store, cluster: ClusterId) -> Option<StoragePoolId> {
    store.storage_pools.with(|pools| {
        pools
            .values()
            .filter(|pool| pool.scope == StorageScope::Cluster && pool.cluster_id == Some(cluster))
            .min_by(|a, b| a.name.cmp(&b.name))
            .map(|pool| pool.id)
    })
}

fn takes_vms(host: &Host) -> bool {
    host.allocation == HostAllocation::Enabled && host.connection == AgentConnection::Connected
}

/// "kvm-a1 — 60.0 GiB free" with why it cannot take VMs, if it cannot.
fn host_label(host: &Host) -> String {
    let free = format::memory(host.capacity.memory_mb.saturating_sub(host.allocated.memory_mb));
    let label = tf("{host} — {memory} free", &[("host", &host.name), ("memory", &free)]);
    let unusable = match (host.allocation, host.connection) {
        (_, AgentConnection::Disconnected) => Some(t("agent disconnected")),
        (HostAllocation::Disabled, _) => Some(t("disabled")),
        (HostAllocation::Maintenance, _) => Some(t("in maintenance")),
        (HostAllocation::Enabled, AgentConnection::Connected) => None,
    };
    match unusable {
        Some(why) => format!("{label} ({why})"),
        None => label,
    }
}

/// How deploying one test VM went.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Waiting,
    Deploying,
    Deployed(VmId),
    /// A VM of that name was already on the chosen host.
    Reused(VmId),
    Failed(String),
    Cancelled,
}

impl Outcome {
    fn vm(&self) -> Option<VmId> {
        match self {
            Outcome::Deployed(id) | Outcome::Reused(id) => Some(*id),
            _ => None,
        }
    }

    fn text(&self) -> String {
        match self {
            Outcome::Waiting => t("Waiting").to_owned(),
            Outcome::Deploying => t("Deploying…").to_owned(),
            Outcome::Deployed(_) => t("Deployed").to_owned(),
            Outcome::Reused(_) => t("Already there; used as it is").to_owned(),
            Outcome::Failed(why) => why.clone(),
            Outcome::Cancelled => t("Cancelled").to_owned(),
        }
    }
}

#[component]
pub fn DeployStep(wizard: Wizard) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let may = session.may_untracked(Ability::ManagePool).is_ok();
    let templates = LocalResource::new(api_client::templates);

    let host = RwSignal::new(wizard.test_host.get_untracked().map(|id| id.to_string()).unwrap_or_default());
    let count = RwSignal::new(DEFAULT_COUNT.to_string());
    let template = RwSignal::new(String::new());
    let rows = RwSignal::new(Vec::<(String, Outcome)>::new());
    let error = RwSignal::new(None::<String>);
    let count_error = RwSignal::new(None::<&'static str>);
    let pending = RwSignal::new(false);
    // Only before a run of this view: a run sets the test VMs itself.
    Effect::new(move |_| {
        if rows.with_untracked(Vec::is_empty) && !pending.get_untracked() {
            adopt_test_vms(store, wizard);
        }
    });

    let host_choices = Memo::new(move |_| {
        let Some(cluster) = wizard.cluster.get() else { return Vec::new() };
        store.hosts.with(|hosts| {
            store
                .host_ids(Some(cluster))
                .into_iter()
                .filter_map(|id| hosts.get(&id))
                .map(|host| Choice { enabled: takes_vms(host), ..Choice::new(host.id, host_label(host)) })
                .collect::<Vec<_>>()
        })
    });
    // The first host that takes VMs, until the operator chooses.
    Effect::new(move |_| {
        if host.with_untracked(String::is_empty)
            && let Some(first) = host_choices.with(|choices| choices.iter().find(|choice| choice.enabled).cloned())
        {
            host.set(first.value);
        }
    });
    let template_choices = Memo::new(move |_| {
        templates.with(|answer| match answer {
            Some(Ok(list)) => list
                .iter()
                .map(|found| Choice::new(found.id, format!("{} ({}, {} GB)", found.name, found.os, found.disk_gb)))
                .collect::<Vec<_>>(),
            _ => Vec::new(),
        })
    });
    Effect::new(move |_| {
        if template.with_untracked(String::is_empty)
            && let Some(first) = template_choices.with(|choices| choices.first().cloned())
        {
            template.set(first.value);
        }
    });

    // What is missing before VMs can be deployed, in words.
    let blocker = Memo::new(move |_| {
        let Some(cluster) = wizard.cluster.get() else {
            return Some(t("Choose the cluster in step 2 first."));
        };
        if wizard.offering.get().is_none() {
            return Some(t("Create or choose the HA offering in step 6 first."));
        }
        if shared_pool(store, cluster).is_none() {
            return Some(t(
                "The cluster has no shared primary storage: HA cannot restart a VM on another host without it.",
            ));
        }
        None
    });

    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let Some(names) = parse_count(&count.get_untracked()).map(test_vm_names) else {
            count_error.set(Some(t("Give a number of VMs from 1 to 10.")));
            return;
        };
        count_error.set(None);
        let (Some(cluster), Some(offering_id)) = (wizard.cluster.get_untracked(), wizard.offering.get_untracked())
        else {
            return;
        };
        let Ok(host_id) = host.get_untracked().parse::<HostId>() else {
            error.set(Some(t("Host: choose the host the test VMs go to.").to_owned()));
            return;
        };
        let Ok(template_id) = template.get_untracked().parse() else {
            error.set(Some(t("Template: choose a template.").to_owned()));
            return;
        };
        let Some(storage_pool_id) = untrack(|| shared_pool(store, cluster)) else { return };
        error.set(None);
        pending.set(true);
        wizard.test_host.set(Some(host_id));
        wizard.test_vms.set(Vec::new());
        rows.set(names.iter().map(|name| (name.clone(), Outcome::Waiting)).collect());
        let set_row = move |index: usize, outcome: Outcome| {
            rows.update(|rows| {
                if let Some(row) = rows.get_mut(index) {
                    row.1 = outcome;
                }
            })
        };
        spawn_local(async move {
            for (index, name) in names.into_iter().enumerate() {
                set_row(index, Outcome::Deploying);
                let existing = store
                    .vms
                    .with_untracked(|vms| vms.values().find(|vm| vm.name == name).map(|vm| (vm.id, vm.host_id)));
                match existing {
                    Some((id, Some(on))) if on == host_id => {
                        wizard.test_vms.update(|vms| {
                            if !vms.contains(&id) {
                                vms.push(id);
                            }
                        });
                        set_row(index, Outcome::Reused(id));
                        continue;
                    }
                    Some((_, on)) => {
                        let place = on.map(|on| store.host_name(on)).unwrap_or_else(|| t("no host").to_owned());
                        set_row(
                            index,
                            Outcome::Failed(tf(
                                "A VM named {name} already exists on {host}: remove it, or choose that host.",
                                &[("name", &name), ("host", &place)],
                            )),
                        );
                        continue;
                    }
                    None => {}
                }
                let request = DeployVmRequest {
                    name,
                    offering_id,
                    template_id,
                    network: "default".to_owned(),
                    storage_pool_id,
                    host_id: Some(host_id),
                    start: true,
                };
                match run_admitted(store, |choice| api_client::deploy_vm(&request, choice)).await {
                    Some(Ok(deployed)) => {
                        let id = deployed.vm.id;
                        store.upsert_vm(deployed.vm);
                        wizard.test_vms.update(|vms| {
                            if !vms.contains(&id) {
                                vms.push(id);
                            }
                        });
                        set_row(index, Outcome::Deployed(id));
                    }
                    Some(Err(failure)) => {
                        session.notice(&failure);
                        set_row(index, Outcome::Failed(server_text(&failure.to_string())));
                    }
                    None => {
                        // Cancelled at the overcommit warning: the rest are not deployed either.
                        rows.update(|rows| {
                            for row in rows.iter_mut().skip(index) {
                                row.1 = Outcome::Cancelled;
                            }
                        });
                        break;
                    }
                }
            }
            pending.set(false);
        });
    };

    // The table's rows: this run's, else the wizard's test VMs (coming back to the step).
    let table_rows = Memo::new(move |_| {
        let current = rows.get();
        if !current.is_empty() {
            return current;
        }
        let ids = wizard.test_vms.get();
        store.vms.with(|vms| {
            ids.iter().filter_map(|id| vms.get(id)).map(|vm| (vm.name.clone(), Outcome::Deployed(vm.id))).collect()
        })
    });
    let row_view = move |(name, outcome): (String, Outcome)| {
        let vm = outcome.vm().and_then(|id| store.vm(id));
        let state = vm.as_ref().map(|vm| vm.state);
        let on = vm.as_ref().and_then(|vm| vm.host_id).map(|id| store.host_name(id)).unwrap_or_default();
        let protected = vm.as_ref().map(|vm| if vm.ha_protected { t("Yes") } else { t("No") }).unwrap_or_default();
        let failed = matches!(outcome, Outcome::Failed(_));
        let (testid, attr) = (format!("wizard-deploy-vm-{name}"), name.clone());
        view! {
            <tr data-testid=testid data-vm-name=attr data-vm-state=state.map(VmState::as_str)>
                <th scope="row">{name}</th>
                <td>{on}</td>
                <td>{state.map(|state| view! { <VmStateBadge state /> })}</td>
                <td>{protected}</td>
                <td class:form-error=failed>{outcome.text()}</td>
            </tr>
        }
    };
    let table = move || {
        let list = table_rows.get();
        (!list.is_empty()).then(|| {
            view! {
                <table class="table wizard-vms" aria-label=t("Test VMs")>
                    <thead>
                        <tr>
                            <th scope="col">{t("VM")}</th>
                            <th scope="col">{t("Host")}</th>
                            <th scope="col">{t("State")}</th>
                            <th scope="col">{t("HA protected")}</th>
                            <th scope="col">{t("Deploy")}</th>
                        </tr>
                    </thead>
                    <tbody>{list.into_iter().map(row_view).collect_view()}</tbody>
                </table>
            }
        })
    };
    let status = move || {
        if deploy_done(wizard) {
            let host = wizard.test_host.get().map(|id| store.host_name(id)).unwrap_or_default();
            let n = wizard.test_vms.with(Vec::len).to_string();
            view! {
                <p class="wizard-status wizard-status-ok" role="status" data-testid="wizard-deploy-done">
                    {tf("All {count} test VMs run on {host}, protected by HA.", &[("count", &n), ("host", &host)])}
                </p>
            }
            .into_any()
        } else if !wizard.test_vms.with(Vec::is_empty) {
            view! {
                <p class="wizard-status" role="status">
                    {t("Waiting until every test VM runs with HA protection…")}
                </p>
            }
            .into_any()
        } else {
            ().into_any()
        }
    };

    let controls = move || {
        if !may {
            return view! {
                <p class="wizard-role-note" data-testid="wizard-role-note-deploy">
                    {t("Only pool operators and pool admins can deploy VMs onto a chosen host; your role can follow this step but not take it.")}
                </p>
            }
            .into_any();
        }
        if let Some(missing) = blocker.get() {
            return view! { <p class="wizard-status wizard-status-blocked">{missing}</p> }.into_any();
        }
        let count_described = move || count_error.get().map(|_| "wizard-deploy-count-error");
        view! {
            <form class="wizard-form" on:submit=on_submit novalidate>
                <div class="field-row">
                    <ChoiceSelect
                        id="wizard-deploy-host"
                        label=t("Host for the test VMs")
                        placeholder=Signal::derive(move || t("Choose a host").to_owned())
                        choices=host_choices
                        value=host
                    />
                    <div class="field" class:field-invalid=move || count_error.get().is_some()>
                        <label for="wizard-deploy-count">{t("Number of test VMs")}</label>
                        <input
                            id="wizard-deploy-count"
                            type="number"
                            min="1"
                            max=MAX_COUNT.to_string()
                            autocomplete="off"
                            bind:value=count
                            aria-invalid=move || count_error.get().is_some().then_some("true")
                            aria-describedby=count_described
                        />
                        {move || {
                            count_error
                                .get()
                                .map(|message| {
                                    view! { <span id="wizard-deploy-count-error" class="field-error">{message}</span> }
                                })
                        }}
                    </div>
                    <ChoiceSelect
                        id="wizard-deploy-template"
                        label=t("Template")
                        placeholder=Signal::derive(move || t("Choose a template").to_owned())
                        choices=template_choices
                        value=template
                    />
                </div>
                <p class="field-hint">
                    {move || {
                        let names = parse_count(&count.get()).map(test_vm_names).unwrap_or_default();
                        tf("Names: {names}. Network: default; disks on the cluster's shared storage.", &[("names", &names.join(", "))])
                    }}
                </p>
                <FormError error />
                <div class="wizard-actions">
                    <button type="submit" class="button button-primary" disabled=move || pending.get()>
                        {move || if pending.get() { t("Deploying…") } else { t("Deploy test VMs") }}
                    </button>
                </div>
            </form>
        }
        .into_any()
    };

    view! {
        <div class="wizard-step wizard-step-deploy">
            <p class="wizard-intro">
                {t("The test VMs all go to one host of the cluster: the host the power-off test switches off in step 8.")}
            </p>
            {controls}
            {table}
            {status}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_test_vms_by_default() {
        assert_eq!(test_vm_names(DEFAULT_COUNT), ["HA-TEST-VM1", "HA-TEST-VM2", "HA-TEST-VM3"]);
    }

    #[test]
    fn test_vm_names_are_the_prefix_and_a_number() {
        assert!(is_test_vm_name("HA-TEST-VM12"));
        assert!(!is_test_vm_name("HA-TEST-VM"));
        assert!(!is_test_vm_name("HA-TEST-VM1-copy"));
    }

    #[test]
    fn the_count_is_a_small_whole_number() {
        assert_eq!(parse_count(" 5 "), Some(5));
        assert_eq!(parse_count("0"), None);
        assert_eq!(parse_count("11"), None);
        assert_eq!(parse_count("two"), None);
    }
}
