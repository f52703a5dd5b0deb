//! The actions of one VM on its page: Start, Stop (graceful), Force stop and Restart for VM operators
//! and up; Migrate (a running VM on shared storage, to another host of its cluster) for pool operators
//! and up; Destroy (a stopped VM, after its name is typed) for VM operators and up.
//!
//! Power answers (202, the VM now Starting/Stopping) and the migration's answer (the VM `migrating`) go
//! straight into the store; the end arrives later as live events. A refused power action shows the
//! server's message in the frame's alert; the dialogs show theirs inside the dialog. Start and migrate
//! are checked by admission control: the overcommit warning may come first. Also home of the host and
//! storage labels that the deploy dialog and the VM page reuse.

use crate::api_client;
use crate::components::admission::run_admitted;
use crate::components::dialog::{Dialog, FormError, WhyNot};
use crate::components::form::{Choice, ChoiceSelect};
use crate::components::format;
use crate::i18n::{server_text, t, tf};
use crate::session::{Ability, Session};
use crate::store::Store;
use api::HostId;
use api::v1::{AgentConnection, Host, HostAllocation, StorageKind, StoragePool, StorageScope, Vm, VmState};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::hooks::use_navigate;

/// "host-01 — 12.0 GiB free", with why the host takes no new VM when it does not.
pub fn host_option_label(host: &Host) -> String {
    let free = format::memory(host.capacity.memory_mb.saturating_sub(host.allocated.memory_mb));
    let args = [("name", host.name.as_str()), ("free", free.as_str())];
    match (host.allocation, host.connection) {
        (_, AgentConnection::Disconnected) => tf("{name} — {free} free (agent disconnected)", &args),
        (HostAllocation::Disabled, _) => tf("{name} — {free} free (disabled)", &args),
        (HostAllocation::Maintenance, _) => tf("{name} — {free} free (in maintenance)", &args),
        (HostAllocation::Enabled, AgentConnection::Connected) => tf("{name} — {free} free", &args),
    }
}

/// Whether new VMs (and migrations) may go to the host.
pub fn takes_vms(host: &Host) -> bool {
    host.allocation == HostAllocation::Enabled && host.connection == AgentConnection::Connected
}

/// "primary (NFS, shared)" or "local-01 (local, on host-01)".
pub fn storage_label(pool: &StoragePool, host_name: Option<String>) -> String {
    let kind = match pool.kind {
        StorageKind::Nfs => "NFS",
        StorageKind::Iscsi => "iSCSI",
        StorageKind::Local => t("local"),
    };
    let args = [("name", pool.name.as_str()), ("kind", kind)];
    match (pool.scope, host_name) {
        (StorageScope::Host, Some(host)) => {
            tf("{name} ({kind}, on {host})", &[("name", &pool.name), ("kind", kind), ("host", &host)])
        }
        (StorageScope::Host, None) => tf("{name} ({kind}, one host)", &args),
        (StorageScope::Cluster, _) => tf("{name} ({kind}, shared)", &args),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Power {
    Start,
    Stop,
    ForceStop,
    Restart,
}

impl Power {
    fn allowed(self, state: VmState) -> bool {
        match self {
            Power::Start => matches!(state, VmState::Stopped | VmState::Error),
            Power::Stop => matches!(state, VmState::Running | VmState::Starting | VmState::Error),
            Power::ForceStop => {
                matches!(state, VmState::Running | VmState::Starting | VmState::Stopping | VmState::Error)
            }
            Power::Restart => state == VmState::Running,
        }
    }

    /// Button text, CSS class and tooltip.
    fn looks(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Power::Start => (t("Start"), "button button-start", t("Boot the VM on its host")),
            Power::Stop => {
                (t("Stop"), "button button-stop", t("Ask the guest to shut down (forced if it does not in time)"))
            }
            Power::ForceStop => {
                (t("Force stop"), "button button-stop", t("Pull the plug at once, without a guest shutdown"))
            }
            Power::Restart => (t("Restart"), "button", t("Shut the guest down, then start it again")),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Open {
    Migrate,
    Destroy,
}

fn destroyable(state: VmState) -> bool {
    matches!(state, VmState::Stopped | VmState::Error)
}

#[component]
pub fn VmActions(#[prop(into)] vm: Signal<Vm>) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    // Read once, untracked: see crate::components::vm_power.
    let operate = session.may_untracked(Ability::OperateVms);
    let manage = session.may_untracked(Ability::ManagePool);
    let can_operate = operate.is_ok();
    let can_manage = manage.is_ok();
    let pending = RwSignal::new(false);
    let open = RwSignal::new(None::<Open>);
    let state = Memo::new(move |_| vm.with(|vm| vm.state));
    let name = Memo::new(move |_| vm.with(|vm| vm.name.clone()));
    let on_local_storage = Memo::new(move |_| {
        let pool = vm.with(|vm| vm.storage_pool_id);
        store.storage_pools.with(|pools| pools.get(&pool).is_some_and(|pool| pool.scope == StorageScope::Host))
    });

    let act = move |power: Power| {
        let id = vm.with_untracked(|vm| vm.id);
        pending.set(true);
        spawn_local(async move {
            let answer = match power {
                Power::Start => run_admitted(store, |choice| api_client::start_vm(id, choice)).await,
                Power::Stop => Some(api_client::stop_vm_with(id, false).await),
                Power::ForceStop => Some(api_client::stop_vm_with(id, true).await),
                Power::Restart => Some(api_client::restart_vm(id).await),
            };
            match answer {
                Some(Ok(accepted)) => store.upsert_vm(accepted.vm),
                Some(Err(error)) => store.report(session, &error),
                None => {}
            }
            pending.set(false);
        });
    };
    let power_button = move |power: Power| {
        let (word, class, title) = power.looks();
        view! {
            <button
                type="button"
                class=class
                title=title
                disabled=move || !can_operate || pending.get() || !power.allowed(state.get())
                on:click=move |_| act(power)
            >
                {word}
            </button>
        }
    };
    let close = Callback::new(move |()| open.set(None));

    view! {
        <div class="vm-actions" role="group" aria-label=t("VM actions")>
            {power_button(Power::Start)}
            {power_button(Power::Stop)}
            {power_button(Power::ForceStop)}
            {power_button(Power::Restart)}
            {can_manage
                .then(|| {
                    view! {
                        <button
                            type="button"
                            class="button"
                            title=move || {
                                if on_local_storage.get() {
                                    t("Its disks are on local storage: it cannot move")
                                } else {
                                    t("Move the running VM to another host of its cluster")
                                }
                            }
                            disabled=move || {
                                pending.get() || state.get() != VmState::Running || on_local_storage.get()
                            }
                            on:click=move |_| open.set(Some(Open::Migrate))
                        >
                            {t("Migrate")}
                        </button>
                    }
                })}
            <button
                type="button"
                class="button button-danger"
                title=t("Remove the stopped VM and its disks for good")
                disabled=move || !can_operate || pending.get() || !destroyable(state.get())
                on:click=move |_| open.set(Some(Open::Destroy))
            >
                {t("Destroy")}
            </button>
        </div>
        <Show when=move || pending.get()>
            <p class="in-progress" role="status">
                {t("Sending…")}
            </p>
        </Show>
        {operate.err().map(|reason| view! { <WhyNot action=t("start, stop or destroy this VM") reason /> })}
        {manage.err().map(|reason| view! { <WhyNot action=t("migrate this VM") reason /> })}
        <Show when=move || can_manage && on_local_storage.get()>
            <p class="field-hint">
                {move || {
                    tf("{name}'s disks are on local storage, so it cannot be migrated.", &[("name", &name.get())])
                }}
            </p>
        </Show>
        {move || match open.get() {
            Some(Open::Migrate) => view! { <MigrateDialog vm on_close=close /> }.into_any(),
            Some(Open::Destroy) => view! { <DestroyDialog vm on_close=close /> }.into_any(),
            None => ().into_any(),
        }}
    }
}

/// "Migrate web-01": choose another connected, enabled host of the VM's cluster.
#[component]
fn MigrateDialog(vm: Signal<Vm>, on_close: Callback<()>) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let (id, name, source, cluster) = vm.with_untracked(|vm| (vm.id, vm.name.clone(), vm.host_id, vm.cluster_id));
    let target = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);
    let targets = Memo::new(move |_| {
        let Some(cluster) = cluster else {
            return Vec::new();
        };
        store.hosts.with(|hosts| {
            store
                .host_ids(Some(cluster))
                .into_iter()
                .filter(|host_id| Some(*host_id) != source)
                .filter_map(|host_id| hosts.get(&host_id))
                .filter(|host| takes_vms(host))
                .map(|host| Choice::new(host.id, host_option_label(host)))
                .collect::<Vec<_>>()
        })
    });

    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        if pending.get_untracked() {
            return;
        }
        let Ok(host_id) = target.get_untracked().parse::<HostId>() else {
            error.set(Some(t("Destination host: choose the host to move the VM to.").to_owned()));
            return;
        };
        error.set(None);
        pending.set(true);
        spawn_local(async move {
            match run_admitted(store, |choice| api_client::migrate_vm(id, host_id, choice)).await {
                Some(Ok(migrating)) => {
                    store.upsert_vm(migrating);
                    on_close.run(());
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

    view! {
        <Dialog title=tf("Migrate {name}", &[("name", &name)]) on_close>
            <form class="dialog-form" on:submit=on_submit novalidate>
                <p>
                    {tf(
                        "{name} keeps running while it moves. Only hosts of its cluster that are connected and enabled can take it.",
                        &[("name", &name)],
                    )}
                </p>
                <ChoiceSelect
                    id="migrate-target"
                    label=t("Destination host")
                    placeholder=Signal::derive(move || {
                        if targets.with(Vec::is_empty) { t("No host can take it") } else { t("Choose a host") }.to_owned()
                    })
                    choices=targets
                    value=target
                    autofocus=true
                />
                <FormError error=error />
                <div class="dialog-actions">
                    <button type="button" class="button" on:click=move |_| on_close.run(())>
                        {t("Cancel")}
                    </button>
                    <button type="submit" class="button button-primary" disabled=move || pending.get()>
                        {move || if pending.get() { t("Starting migration…") } else { t("Start migration") }}
                    </button>
                </div>
            </form>
        </Dialog>
    }
}

/// "Destroy web-01": the VM's name must be typed; on success the console returns to the VM list.
#[component]
fn DestroyDialog(vm: Signal<Vm>, on_close: Callback<()>) -> impl IntoView {
    let store = Store::expect();
    let session = Session::expect();
    let navigate = use_navigate();
    let (id, name) = vm.with_untracked(|vm| (vm.id, vm.name.clone()));
    let typed = RwSignal::new(String::new());
    let error = RwSignal::new(None::<String>);
    let pending = RwSignal::new(false);

    let expected = name.clone();
    let on_submit = move |event: SubmitEvent| {
        event.prevent_default();
        if pending.get_untracked() {
            return;
        }
        if typed.with_untracked(|typed| typed.trim() != expected) {
            error.set(Some(tf("VM name: type {name} exactly to confirm.", &[("name", &expected)])));
            return;
        }
        error.set(None);
        pending.set(true);
        let navigate = navigate.clone();
        spawn_local(async move {
            match api_client::destroy_vm(id).await {
                Ok(()) => {
                    store.vms.update(|vms| {
                        vms.remove(&id);
                    });
                    navigate("/vms", Default::default());
                }
                Err(failure) => {
                    session.notice(&failure);
                    error.set(Some(server_text(&failure.to_string())));
                    pending.set(false);
                }
            }
        });
    };

    view! {
        <Dialog title=tf("Destroy {name}", &[("name", &name)]) on_close>
            <form class="dialog-form" on:submit=on_submit novalidate>
                <p>
                    {tf(
                        "This removes {name} and its disks for good; it cannot be undone. Its host confirms the VM is gone first.",
                        &[("name", &name)],
                    )}
                </p>
                <div class="field">
                    <label for="destroy-confirm">{t("Type the VM name to confirm")}</label>
                    <input id="destroy-confirm" type="text" autocomplete="off" autofocus placeholder=name.clone() bind:value=typed />
                </div>
                <FormError error=error />
                <div class="dialog-actions">
                    <button type="button" class="button" on:click=move |_| on_close.run(())>
                        {t("Cancel")}
                    </button>
                    <button type="submit" class="button button-danger" disabled=move || pending.get()>
                        {move || if pending.get() { t("Destroying…") } else { t("Destroy VM") }}
                    </button>
                </div>
            </form>
        </Dialog>
    }
}
